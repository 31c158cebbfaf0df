"""Build data/models/shakespeare-4x256-chat/: the course's base model instruction-tuned (Chapter 6's
supervised fine-tuning) and saved with its chat template, for Chapter 7's chat and
`python -m gptlib.chat data/models/shakespeare-4x256-chat`.

    OMP_NUM_THREADS=1 python data/models/build_chat.py          # about 3-5 min on one CPU core

Reads the base model from data/models/shakespeare-4x256/ (whatever is there: re-run this script after
that folder is replaced). Training is Chapter 6's CPU-profile recipe: the four instruction tasks of
gptlib.sft, 24 examples of each task from each of the 32 training plays (the six plays of
gptlib.data.VAL_PLAYS are held out, as in Chapters 5 and 6), examples that fit 80 tokens; the model
grown by <|user|> and <|assistant|>; Chapter 5's Trainer, AdamW, batches of 32, peak learning rate 2e-3
with cosine decay to 2e-4, no dropout, seed 0, on the CPU in float32. The folder gets
Hugging Face GPT-2 files (config.json, model.safetensors, vocab.json, merges.txt,
special_tokens_map.json, tokenizer_config.json with "chat_template"), generation_config.json
(<|endoftext|>, the end of an assistant turn, as eos) and a model card README.md with the numbers of
this run.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

import gptlib
from gptlib.chat import save_chat_template
from gptlib.data import VAL_PLAYS, load_plays, split_by_play
from gptlib.model import GPT
from gptlib.sft import (CHAT_TEMPLATE, SFT_TASKS, SFTTask, encode_instruction, instruction_examples,
                        sft_extend_vocab, sft_tokenizer, split_instructions)
from gptlib.tokenizer import BPETokenizer
from gptlib.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]
BASE = gptlib.DATA_DIR / "models" / "shakespeare-4x256"
OUT = gptlib.DATA_DIR / "models" / "shakespeare-4x256-chat"
RECIPE = {"train_per_play": 24, "eval_per_play": 8, "max_tokens": 80, "steps": 200, "batch_size": 32,
          "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 10, "weight_decay": 0.0, "dropout": 0.0,
          "seed": 0}


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, default=BASE, help="the pretrained model folder")
    ap.add_argument("--out", type=Path, default=OUT, help="the chat model folder (replaced)")
    ap.add_argument("--steps", type=int, default=RECIPE["steps"])
    args = ap.parse_args(argv)
    if not (args.base / "config.json").is_file():
        raise SystemExit(f"{args.base} has no config.json: pass --base MODEL_DIR (a save_pretrained "
                         "folder of the course's GPT)")
    torch.set_num_threads(1)
    recipe = {**RECIPE, "steps": args.steps}
    t0, cpu0 = time.perf_counter(), time.process_time()
    base = GPT.from_pretrained(args.base).eval()
    tok = sft_tokenizer(BPETokenizer.from_pretrained(args.base))

    def short(ex) -> bool:
        return (len(tok.encode_ordinary(ex.prompt_text)) + len(tok.encode_ordinary(ex.answer)) + 3
                <= recipe["max_tokens"])

    train_plays, eval_plays = split_by_play(load_plays())
    held_out = instruction_examples(eval_plays, recipe["eval_per_play"], keep=short)
    train = split_instructions(instruction_examples(train_plays, recipe["train_per_play"], keep=short),
                               held_out)
    block = base.config.block_size
    data = {name: [encode_instruction(tok, ex, block) for ex in exs]
            for name, exs in (("train", train), ("eval", held_out))}
    model = sft_extend_vocab(base, tok.vocab_size, dropout=recipe["dropout"])
    task = SFTTask(data["train"], data["eval"], tok.eot_token)
    cfg = TrainConfig(device="cpu", compile="no", max_steps=recipe["steps"],
                      batch_size=recipe["batch_size"], lr=recipe["lr"], min_lr=recipe["min_lr"],
                      warmup_steps=recipe["warmup_steps"], weight_decay=recipe["weight_decay"],
                      eval_every=recipe["steps"] // 4, eval_batches=8, dtype="float32",
                      seed=recipe["seed"], progress=False)
    history = Trainer(cfg, model=model, task=task, write=False, verbose=False).fit()
    model.eval()
    vals = [(r["step"], round(r["val_loss"], 4)) for r in history if "val_loss" in r]
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0

    if args.out.exists():
        shutil.rmtree(args.out)
    model.save_pretrained(args.out)
    tok.save_pretrained(args.out, model_max_length=block)
    save_chat_template(args.out, CHAT_TEMPLATE)
    eot = tok.eot_token
    (args.out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot, "max_length": block}, indent=2)
        + "\n")
    command = "OMP_NUM_THREADS=1 python data/models/build_chat.py" + "".join(f" {a}" for a in sys.argv[1:])
    per_task = {t: sum(ex.task == t for ex in train) for t in SFT_TASKS}
    card = f"""# shakespeare-4x256-chat

The course's small GPT (`data/models/shakespeare-4x256/`, Chapter 5) instruction-tuned with Chapter 6's supervised fine-tuning, saved with its chat template. It is the model
Chapter 7 chats with (`python -m gptlib.chat data/models/shakespeare-4x256-chat`). It knows four narrow
tasks, not conversation: replies are short, often wrong, and in the plays' English.

* **Source**: built in this repository by `data/models/build_chat.py` (commit {commit()}) from
  `data/models/shakespeare-4x256/`; no outside weights or data.
* **Licence**: weights MIT (like the course's code); training text public domain (the plays in
  `data/shakespeare/`).
* **Rebuild**: `{command}` (replaces this folder; deterministic on the CPU with one thread).

## Format

`<|user|>` the request `<|assistant|>` then a space, the answer and `<|endoftext|>`, the end of the
assistant's turn (`eos_token_id` in `generation_config.json`). `<|user|>` and `<|assistant|>` are the
special ids {tok.special_tokens['<|user|>']} and {tok.special_tokens['<|assistant|>']}; the embedding grew
from {base.config.vocab_size} to {tok.vocab_size} rows (each new row the mean of the old ones).
`tokenizer_config.json` holds the Jinja `chat_template` (transformers' convention):

```
{CHAT_TEMPLATE}
```

## Training

* Data: the instruction tasks of `gptlib.sft` ({', '.join(f'{t} {n}' for t, n in per_task.items())};
  {len(train)} examples) from the {len(train_plays)} training plays; {len(held_out)} held-out examples
  from the six plays of `gptlib.data.VAL_PLAYS` ({', '.join(VAL_PLAYS)}), none in training.
* Recipe: {json.dumps(recipe)}; loss on the answer and `<|endoftext|>` only (the prompt masked).
* Held-out loss (per answer token): {', '.join(f'{v:.3f} at step {s}' for s, v in vals)}; training loss
  of the last step {history[-1]['loss']:.3f}.
* Time: {wall:.0f} s wall, {cpu:.0f} s CPU, one thread ({platform.processor() or platform.machine()},
  torch {torch.__version__}).
"""
    (args.out / "README.md").write_text(card, encoding="utf-8")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) in {wall:.0f} s; held-out loss {vals}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
