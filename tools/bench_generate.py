"""Decoding benchmarks (Chapter 7), printed as ratios against a reference timed in the same run.

    python tools/bench_generate.py [--threads N] [--repeats R]

1. KV cache vs no cache: a 4-layer, 256-wide GPT (random weights), 16-token prompt, 256 new tokens,
   batch 1, greedy; the tokens must be identical.
2. gptlib vs transformers at GPT-2 124M's shape (random weights, 16-token prompt, 128 new tokens):
   gptlib's cached greedy `generate` against `GPT2LMHeadModel.generate` on the same weights. A third
   contender explains the gap: the same gptlib model with each block's Linear weights stored as
   transformers' Conv1D stores them, (in, out) in memory (same values and shapes; `weight` becomes a
   transposed view). One decoding step is a matrix-vector product per weight, and the kernel's speed
   depends on that layout (MKL on an AMD EPYC: x @ W.T reads a (768, 2304) weight about 1.7x slower
   than x @ W does a (2304, 768) one). gptlib keeps nn.Linear's (out, in) layout, as nanoGPT and
   torch do; this line shows what the layout alone is worth on the machine at hand.
Runs alternate between the contenders and the best of `repeats` counts, so a busy machine slows both
alike. Nothing here is asserted about time; only the tokens are compared.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path

import torch

from gptlib.generate import generate
from gptlib.model import GPT, GPTConfig


def best_of(fns: dict, repeats: int) -> dict:
    """{name: (best seconds, output)}, the contenders run in turn, `repeats` rounds."""
    times: dict = {k: [] for k in fns}
    outs: dict = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {k: (min(v), outs[k]) for k, v in times.items()}


def cache_vs_no_cache(repeats: int) -> float:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=1024, block_size=512, n_layer=4, n_head=4, n_embd=256)).eval()
    x = torch.randint(0, 1024, (1, 16))
    generate(model, x, 8)                                                   # warm-up
    r = best_of({"cache": lambda: generate(model, x, 256),
                 "no cache": lambda: generate(model, x, 256, use_cache=False)}, repeats)
    (tc, a), (tn, b) = r["cache"], r["no cache"]
    ratio = tn / tc
    print(f"4 x 256 model, 16 + 256 tokens, batch 1: {256 / tc:.0f} tokens/s with the KV cache, "
          f"{256 / tn:.0f} without: {ratio:.2f}x; tokens identical: {torch.equal(a, b)}")
    return ratio


def versus_transformers(repeats: int) -> float:
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    ours = GPT(GPTConfig.preset("gpt2")).eval()
    with tempfile.TemporaryDirectory() as d:
        ours.save_pretrained(Path(d) / "m")
        theirs = GPT2LMHeadModel.from_pretrained(Path(d) / "m").eval()
    x = torch.randint(0, 50257, (1, 16))
    mask = torch.ones_like(x)
    conv1d_layout = copy.deepcopy(ours)
    for name, m in conv1d_layout.named_modules():
        if isinstance(m, torch.nn.Linear) and name.startswith("transformer.h."):
            # same (out, in) shape, (in, out) storage
            m.weight = torch.nn.Parameter(m.weight.detach().t().contiguous().t())

    def hf():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return theirs.generate(x, attention_mask=mask, do_sample=False, max_new_tokens=128,
                                   use_cache=True, pad_token_id=0)
    generate(ours, x, 4)
    hf()
    generate(conv1d_layout, x, 4)
    r = best_of({"gptlib": lambda: generate(ours, x, 128), "transformers": hf,
                 "layout": lambda: generate(conv1d_layout, x, 128)}, repeats)
    (tg, a), (th, b), (tl, c) = r["gptlib"], r["transformers"], r["layout"]
    ratio = th / tg
    print(f"GPT-2 124M shape, 16 + 128 tokens, greedy: gptlib {128 / tg:.1f} tokens/s, "
          f"transformers "
          f"{128 / th:.1f} tokens/s: gptlib/transformers = {ratio:.2f}x; tokens identical: "
          f"{torch.equal(a, b)}")
    print(f"  gptlib, block weights stored (in, out) like Conv1D: {128 / tl:.1f} tokens/s: "
          f"{th / tl:.2f}x transformers; tokens identical: {torch.equal(c, b)}")
    return ratio


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=("cache", "transformers"), default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, best of {args.repeats}")
    if args.only != "transformers":
        cache_vs_no_cache(args.repeats)
    if args.only != "cache":
        versus_transformers(args.repeats)
