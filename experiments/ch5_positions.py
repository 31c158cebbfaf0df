"""Chapter 5, positional encodings compared in training: each scheme of gptlib.position, 3 seeds.

Every run trains the same small model (the `nano` preset: 2 layers, 64 wide, 4 heads, context 64,
dropout 0) with the course's Trainer on all training plays, with the same steps, batch, learning
rate and schedule; only `position` and the seed change. The budget (1200 steps of 32 windows, about
2.5M tokens) takes the learned table, RoPE and ALiBi below the add-k bigram on the validation plays
(4.065 nats/token) in every seed: a comparison between models that have not beaten the bigram
compares nothing. Sinusoidal does not reach it at this budget (4.20 to 4.45).

One more scheme tests why: `sinusoidal-0.02` is the sinusoidal table multiplied by 0.02 (its
values shrink from about 1 to the token embeddings' initial scale, standard deviation 0.02),
everything else equal. If the table's size is what holds sinusoidal back, this run learns like
the others.

Each model is measured

  * inside its context: the mean loss over the first EVAL_WINDOWS windows of 64 validation tokens;
  * past its context: the same weights rebuilt with block_size=128 (computed positions only; the
    learned table has no rows past 63, so it cannot run), the mean loss over EVAL_WINDOWS windows of
    128 tokens, at positions 0-63 and at positions 64-127, and the per-position curve in bins of 8.

One JSON line per run is appended to the records file:

    {"experiment", "position", "seed", "config", "commit", "command",
     "result": {"val_64", "at128_inside", "at128_past", "per_position_128", "train_loss",
                "first_losses", "seconds"}}

`first_losses` are the training losses of the first REPLAY steps: the notebook re-runs them live
(the same Trainer, stopped after REPLAY steps) and asserts they equal the record.

Runs already in the records file are skipped, so an interrupted run resumes. Deterministic on the
CPU with one thread (the notebook re-runs the cheapest point and compares):

    OMP_NUM_THREADS=1 nice -n 19 python experiments/ch5_positions.py            # the whole grid
    python experiments/ch5_positions.py --positions learned --seeds 0            # one point
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records_io  # noqa: E402  (experiments/records_io.py, also when a notebook loads this file)
from gptlib.data import VAL_PLAYS, encode_plays, load_plays, split_by_play
from gptlib.loss import windows
from gptlib.model import GPT, GPTConfig
from gptlib.position import POSITIONS
from gptlib.tokenizer import course_tokenizer
from gptlib.train import Trainer
from gptlib.trainconfig import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "experiments" / "records" / "ch5_positions.jsonl"
CONFIG = {"model": "nano", "dropout": 0.0, "max_steps": 1200, "batch_size": 32, "lr": 1e-2,
          "min_lr": 1e-3, "warmup_steps": 30, "eval_windows": 128, "threads": 1}
REPLAY = 40
# variants of a gptlib scheme: name -> (GPTConfig.position, factor applied to its fixed table)
SCALED = {"sinusoidal-0.02": ("sinusoidal", 0.02)}
SCHEMES = (*POSITIONS, *SCALED)


def commit() -> str:
    return records_io.commit("gptlib", "experiments")


def load_tokens():
    tok = course_tokenizer()
    train_plays, val_plays = split_by_play(load_plays(), VAL_PLAYS)
    return tok, encode_plays(train_plays, tok), encode_plays(val_plays, tok)


def trainer_for(position: str, seed: int, train_ids, val_ids, tok,
                config: dict = CONFIG) -> Trainer:
    """The Trainer of one (position, seed), before its first step; nothing is written to disk.
    `position` is one of SCHEMES: a gptlib position, or a SCALED variant of one."""
    base, scale = SCALED.get(position, (position, 1.0))
    cfg = TrainConfig(model=config["model"], set={"dropout": config["dropout"], "position": base},
                      max_steps=config["max_steps"], batch_size=config["batch_size"],
                      lr=config["lr"], min_lr=config["min_lr"],
                      warmup_steps=config["warmup_steps"], eval_every=0, eval_batches=1,
                      seed=seed, device="cpu", progress=False)
    trainer = Trainer(cfg, train_tokens=train_ids, val_tokens=val_ids, tokenizer=tok, write=False,
                      verbose=False)
    if scale != 1.0:
        trainer.model.transformer.wpe.pe.mul_(scale)          # a buffer: fixed, never trained
    return trainer


def train(position: str, seed: int, train_ids, val_ids, tok, config: dict = CONFIG) -> Trainer:
    """The run of one (position, seed), trained to config["max_steps"]."""
    trainer = trainer_for(position, seed, train_ids, val_ids, tok, config)
    trainer.fit()
    return trainer


def per_position_loss(model: GPT, val_ids, T: int, n_windows: int) -> np.ndarray:
    """Mean loss at each position of the first n_windows consecutive validation windows of T."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, n_windows, 32):
            xb, yb = windows(val_ids, [i * T for i in range(s, min(n_windows, s + 32))], T)
            out.append(F.cross_entropy(model(xb).transpose(1, 2), yb, reduction="none"))
    return torch.cat(out).double().mean(0).numpy()


def stretched(model: GPT, T: int, scale: float = 1.0) -> GPT:
    """The same weights in a model whose block_size is T (positions computed for the new length,
    a sinusoidal table multiplied by `scale`)."""
    big = GPT(GPTConfig(**{**model.config.__dict__, "block_size": T}))
    missing, unexpected = big.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all("pe" in k or "rotary" in k for k in missing), (missing, unexpected)
    if scale != 1.0:
        big.transformer.wpe.pe.mul_(scale)
    return big


def measure(model: GPT, val_ids, n_windows: int, scale: float = 1.0) -> dict:
    at64 = per_position_loss(model, val_ids, 64, n_windows)
    res = {"val_64": float(at64.mean())}
    if model.config.position != "learned":
        at128 = per_position_loss(stretched(model, 128, scale), val_ids, 128, n_windows)
        res |= {"at128_inside": float(at128[:64].mean()), "at128_past": float(at128[64:].mean()),
                "per_position_128": [round(float(x), 5) for x in at128.reshape(16, 8).mean(1)]}
    return res


def run_one(position: str, seed: int, data, config: dict = CONFIG) -> dict:
    tok, train_ids, val_ids = data
    torch.set_num_threads(config["threads"])
    t0 = time.perf_counter()
    trainer = train(position, seed, train_ids, val_ids, tok, config)
    scale = SCALED.get(position, (position, 1.0))[1]
    res = measure(trainer.model, val_ids, config["eval_windows"], scale)
    res["train_loss"] = float(np.mean([r["loss"] for r in trainer.history[-20:]]))
    res["first_losses"] = [r["loss"] for r in trainer.history[:REPLAY]]
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--positions", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--records", default=str(RECORDS))
    args = ap.parse_args(argv)
    path = Path(args.records)
    done = records_io.done(path, lambda r: (r["position"], r["seed"]) if r["config"] == CONFIG
                           else None)
    data = load_tokens()
    for seed in args.seeds:
        for p in args.positions:
            if (p, seed) in done:
                continue
            res = run_one(p, seed, data)
            rec = {"experiment": "ch5_positions", "position": p, "seed": seed, "config": CONFIG,
                   "commit": commit(), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                   "result": res}
            records_io.append(path, rec)
            print(f"{p:11s} seed {seed}: val {res['val_64']:.3f} "
                  f"({res['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
