"""Chapter 5, a learning-rate sweep: the `nano` model at five peak learning rates, 3 seeds each.

Every run is the run of experiments/ch5_positions.py (the same Trainer, model, data and measurement)
with the learned position table, a shorter budget (400 steps of 16 windows of 64 tokens, about
410,000 tokens) and its own peak learning rate; warmup 20 steps, cosine decay to a tenth of the peak.
The result is the validation loss on the first 128 windows of 64 validation tokens. One JSON line
per run is appended to the records file:

    {"experiment", "lr", "seed", "config", "commit", "command",
     "result": {"val_64", "train_loss", "first_losses", "seconds"}}

Runs already in the records file are skipped. Each run takes about ten seconds of one CPU thread, so
the notebook re-runs one point in full and compares:

    OMP_NUM_THREADS=1 nice -n 19 python experiments/ch5_lr_sweep.py
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ch5_positions as P

RECORDS = P.ROOT / "experiments" / "records" / "ch5_lr_sweep.jsonl"
LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
BASE = {**P.CONFIG, "max_steps": 400, "batch_size": 16, "warmup_steps": 20}


def config_for(lr: float) -> dict:
    return {**BASE, "lr": lr, "min_lr": lr / 10}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lrs", nargs="+", type=float, default=list(LRS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--records", default=str(RECORDS))
    args = ap.parse_args(argv)
    path = Path(args.records)
    done = P.records_io.done(path,
                             lambda r: (json.dumps(r["config"], sort_keys=True), r["seed"]))
    data = P.load_tokens()
    for seed in args.seeds:
        for lr in args.lrs:
            config = config_for(lr)
            if (json.dumps(config, sort_keys=True), seed) in done:
                continue
            res = P.run_one("learned", seed, data, config)
            rec = {"experiment": "ch5_lr_sweep", "lr": lr, "seed": seed, "config": config,
                   "commit": P.commit(), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                   "result": res}
            P.records_io.append(path, rec)
            print(f"lr {lr:g} seed {seed}: val {res['val_64']:.3f} ({res['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
