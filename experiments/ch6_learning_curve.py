"""Chapter 6, genre classification as a learning curve: test accuracy against the number of labelled
passages.

For each number of labelled training passages per class (8, 32, 128, all = 320 on the CPU profile's
data), each seed and each method, train to convergence with early stopping on the validation
passages, then score the held-out test plays. One JSON line per run is appended to the records file:

    {"experiment", "method", "per_class", "seed", "config", "commit", "command",
     "result": {"test_k", "test_n", "test_acc", "test_lo", "test_hi" (95% Wilson), "val_k", "val_n",
                "val_loss", "steps", "best_step", "seconds"}}

Methods (all read the same 64-token windows of the plays, split by play as in the chapter):

    bag of tokens   logistic regression on log(1 + token counts)
    linear probe    a linear head on the frozen pretrained model's last-token state (computed once)
    full FT         the pretrained model and a head, every parameter trained
    LoRA r=4        rank-4 adapters on every Linear of the blocks, plus the head
    random init     the same network as full FT from random weights

Training: AdamW (weight decay 0.1 on matrices, as in the chapter), constant learning rate after 10
warm-up steps, batches of min(16, n) passages drawn at random; every `eval_every` steps the
validation accuracy is measured and the best state kept (ties: the lower validation loss); training
stops after `patience` evaluations without improvement or at `max_steps`. Early stopping reads
validation *accuracy*, not loss: on these plays every method's validation loss is lowest within the
first few steps, before any learning (it sits near log 3, the loss of a uniform guess, and rises as
soon as the scores grow confident), so stopping on the loss would keep barely trained models. The
learning rates are the chapter's, except the two baselines', lowered from 0.05 and 1e-2 to 1e-2 and
3e-3 (the higher rates are not compared in these records). The seed chooses the labelled subset, the head's (or the random
network's) initialisation and the batches. Every method gets the same budget: the same
`max_steps`, batch size, evaluation schedule and patience. Runs already in the records file are
skipped, so an interrupted run resumes.

    OMP_NUM_THREADS=1 nice -n 19 python experiments/ch6_learning_curve.py           # the whole grid
    OMP_NUM_THREADS=1 python experiments/ch6_learning_curve.py --fresh   # ... after the base model changed
    python experiments/ch6_learning_curve.py --quick     # every method at 8 per class, seed 0
    # one point
    python experiments/ch6_learning_curve.py --methods "bag of tokens" --per-class 8 --seeds 0
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import gptlib
sys.path.insert(0, str(Path(__file__).resolve().parent))
import records_io  # noqa: E402  (experiments/records_io.py, also when a notebook loads this file)
from gptlib.classify import (GENRE_CLASSES, BagOfTokensClassifier, GPTClassifier, genre_dataset,
                             genre_split, last_token_states)
from gptlib.lora import add_lora
from gptlib.model import GPT
from gptlib.stats import wilson_interval
from gptlib.tokenizer import course_tokenizer

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "experiments" / "records" / "ch6_learning_curve.jsonl"
SHIPPED = gptlib.DATA_DIR / "models" / "shakespeare-4x256"
METHODS = ("bag of tokens", "linear probe", "full FT", "LoRA r=4", "random init")
LR = {"bag of tokens": 1e-2, "linear probe": 3e-3, "full FT": 1e-3, "LoRA r=4": 3e-3,
      "random init": 1e-3}
CONFIG = {"window": 64, "per_class_pool": {"train": 320, "val": 30, "test": 150}, "batch_size": 16,
          "warmup": 10, "eval_every": 10, "patience": 4, "max_steps": 150, "weight_decay": 0.1,
          "lr": LR}


def commit() -> str:
    return records_io.commit("gptlib", "experiments/ch6_learning_curve.py")


def load_data() -> dict:
    tok = course_tokenizer()
    plays = genre_split()
    return {s: genre_dataset(plays[s], tok, CONFIG["window"], CONFIG["per_class_pool"][s])
            for s in ("train", "val", "test")}


def subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of `per_class` training passages of each class, chosen by the seed (nested: not "
      "required)."""
    g = torch.Generator().manual_seed(1000 + seed)
    idx = [torch.nonzero(labels == c).flatten() for c in range(len(GENRE_CLASSES))]
    picks = [i[torch.randperm(len(i), generator=g)[:per_class]] for i in idx]
    return torch.cat(picks).sort().values


class Head(nn.Module):
    """The linear probe: a head on precomputed features."""

    def __init__(self, n_embd: int, n_classes: int):
        super().__init__()
        self.head = nn.Linear(n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


@torch.no_grad()
def features(body: GPT, ids: torch.Tensor) -> torch.Tensor:
    body.eval()
    mask = torch.ones_like(ids)
    return torch.cat([last_token_states(body.hidden_states(ids[s:s + 64]), mask[s:s + 64])
                      for s in range(0, len(ids), 64)])


def build(method: str, seed: int, base: GPT) -> tuple[nn.Module, str]:
    """(model, input kind): "ids" (token windows) or "feats" (the probe's precomputed states)."""
    torch.manual_seed(seed)
    n = len(GENRE_CLASSES)
    if method == "bag of tokens":
        return BagOfTokensClassifier(base.config, n), "ids"
    if method == "linear probe":
        return Head(base.config.n_embd, n), "feats"
    if method == "full FT":
        return GPTClassifier(copy.deepcopy(base), n), "ids"
    if method == "random init":
        return GPTClassifier(GPT(base.config), n), "ids"
    if method == "LoRA r=4":
        model = GPTClassifier(copy.deepcopy(base), n)
        add_lora(model, r=4, alpha=4, targets=["c_attn", "c_proj", "c_fc"])
        model.head.requires_grad_(True)
        return model, "ids"
    raise ValueError(f"unknown method {method!r}; the methods are {METHODS}")


def forward(model: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "feats":
        return model(x)
    return model(x, torch.ones_like(x))


@torch.no_grad()
def evaluate(model: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """(mean cross-entropy, correct predictions)."""
    model.eval()
    logits = torch.cat([forward(model, kind, x[s:s + 128]) for s in range(0, len(x), 128)])
    return float(F.cross_entropy(logits, y)), int((logits.argmax(-1) == y).sum())


def train(method: str, per_class: int, seed: int, data: dict, base: GPT, feats: dict) -> dict:
    model, kind = build(method, seed, base)
    inputs = feats if kind == "feats" else {s: d["ids"] for s, d in data.items()}
    idx = subset(data["train"]["labels"], per_class, seed)
    xt, yt = inputs["train"][idx], data["train"]["labels"][idx]
    xv, yv = inputs["val"], data["val"]["labels"]
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2],
               "weight_decay": CONFIG["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    lr = LR[method]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(seed)
    bs = min(CONFIG["batch_size"], len(idx))
    best = (-1, float("inf"), 0, copy.deepcopy(model.state_dict()))   # (val correct, val loss, step, state)
    bad, t0, step = 0, time.perf_counter(), 0
    for step in range(1, CONFIG["max_steps"] + 1):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, step / CONFIG["warmup"])
        model.train()
        b = torch.randint(0, len(idx), (bs,), generator=g)
        loss = F.cross_entropy(forward(model, kind, xt[b]), yt[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % CONFIG["eval_every"] == 0:
            val_loss, val_k = evaluate(model, kind, xv, yv)
            if (val_k, -val_loss) > (best[0], -best[1]):
                best, bad = (val_k, val_loss, step, copy.deepcopy(model.state_dict())), 0
            else:
                bad += 1
                if bad >= CONFIG["patience"]:
                    break
    model.load_state_dict(best[3])
    _, k = evaluate(model, kind, inputs["test"], data["test"]["labels"])
    n = len(data["test"]["labels"])
    lo, hi = wilson_interval(k, n)
    return {"test_k": k, "test_n": n, "test_acc": k / n, "test_lo": lo, "test_hi": hi,
            "val_k": best[0], "val_n": len(yv), "val_loss": best[1], "steps": step,
            "best_step": best[2], "seconds": round(time.perf_counter() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--per-class", nargs="+", type=int, default=[8, 32, 128, 320])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true",
                    help="the smallest point of the grid: 8 passages per class, seed 0 (every method)")
    ap.add_argument("--fresh", action="store_true",
                    help="start a new records file (the old one is renamed *.old): after the base "
                         "model changes, its records no longer describe it")
    ap.add_argument("--out", type=Path, default=RECORDS)
    ap.add_argument("--print-only", action="store_true", help="print the records, do not append "
                                                              "them")
    args = ap.parse_args(argv)
    if args.quick:
        args.per_class, args.seeds = [8], [0]
    torch.set_num_threads(1)                            # one core; results do not depend on threads
    if args.fresh and args.out.exists() and not args.print_only:
        args.out.replace(args.out.with_suffix(".jsonl.old"))
    done = records_io.done(args.out, lambda r: (r["method"], r["per_class"], r["seed"]))
    data = load_data()
    base = GPT.from_pretrained(SHIPPED, dropout=0.0).eval()
    feats = None
    script = sys.argv[0]
    if Path(script).is_absolute():
        script = str(Path(script).relative_to(ROOT))
    cmd = "python " + " ".join([script, *sys.argv[1:]])
    for per_class in args.per_class:
        for seed in args.seeds:
            for method in args.methods:
                if (method, per_class, seed) in done and not args.print_only:
                    continue
                if method == "linear probe" and feats is None:
                    feats = {s: features(base, d["ids"]) for s, d in data.items()}
                result = train(method, per_class, seed, data, base, feats or {})
                rec = {"experiment": "ch6_learning_curve", "method": method, "per_class": per_class,
                       "seed": seed, "config": CONFIG, "commit": commit(), "command": cmd,
                       "result": result}
                line = json.dumps(rec)
                print(line, flush=True)
                if not args.print_only:
                    records_io.append(args.out, rec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
