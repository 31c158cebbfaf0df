"""Checks for Chapter 6's exercises (fine-tuning): the instruction-tuning loss mask.

check_mask_prompt runs the learner's `mask_prompt(ids, n_prompt, ignore_index=-100)` on a hand-written example
whose every usual mistake gives a different result (masking the answer, the shift off by one either way, no
shift, the end token left out, 0 instead of -100), on random lengths, on a one-token prompt and an empty answer
(only the end token counts), on int32 and uint8 ids (the result is int64), with another ignore_index, on another
device (CUDA, else "meta"), checks that `ids` is not modified, that n_prompt outside 1..L-1 is a ValueError naming
the numbers, and that gptlib's own solution is not called.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from gptlib.checks import CheckFailed, Checker, checker
from gptlib.finetune import mask_prompt

__all__ = ["check_mask_prompt"]


# ------------------------------------------------------------------------------------------ the loss mask
@contextmanager
def _no_finetune_reference(c: Checker, learner: Any, reference: Callable, what: str) -> Iterator[None]:
    """Fail when the learner's code calls `reference` (gptlib's solution) while it runs."""
    code = reference.__code__
    if getattr(learner, "__code__", None) is code:
        yield
        return
    hit: list[bool] = []

    def profile(frame, event, arg):  # noqa: ARG001 - sys.setprofile's signature
        if event == "call" and frame.f_code is code and c._codes:
            f = frame.f_back
            while f is not None and f.f_code not in c._codes:
                f = f.f_back
            if f is not None:
                hit.append(True)

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(old)
    if hit:
        raise CheckFailed(f"{c.name}: {c.case} — your code calls gptlib.finetune's {what}, the solution of this "
                          "exercise: write it yourself (slicing and one assignment)")


def _mask_reference(ids: torch.Tensor, n_prompt: int, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """An independent reference: position t counts iff its target ids[t + 1] is not a prompt token."""
    x = ids[:-1].long()
    t = torch.arange(1, ids.numel(), device=ids.device)
    y = torch.where(t >= n_prompt, ids[1:].long(), torch.full_like(x, ignore_index))
    return x, y


def _mask_mistakes(ids: torch.Tensor, n: int, ig: int) -> dict[str, Any]:
    y = ids[1:].long()

    def fill(t: torch.Tensor, sl: slice) -> torch.Tensor:
        t = t.clone()
        t[sl] = ig
        return t

    return {
        "you masked the answer and kept the prompt: the labels of the prompt's targets are ignore_index, the "
        "answer's and the end token's count": lambda: fill(y, slice(n - 1, None)),
        "off by one: position n_prompt - 1 (the last prompt token) predicts the FIRST answer token, so it counts; "
        "only the first n_prompt - 1 targets are prompt tokens": lambda: fill(y, slice(0, n)),
        "off by one: the target at position n_prompt - 2 is the last prompt token and must be ignored "
        "(mask n_prompt - 1 targets)": lambda: fill(y, slice(0, max(n - 2, 0))),
        "no shift: y is ids[1:] (the NEXT tokens), not ids[:-1]": lambda: fill(ids[:-1].long(), slice(0, n - 1)),
        "the end token's label must count (the model must learn to stop): do not mask the last target":
            lambda: fill(fill(y, slice(0, n - 1)), slice(-1, None)),
        "ignored labels must be ignore_index (-100), not 0: cross_entropy would train the model to predict token 0":
            lambda: torch.cat([torch.zeros(n - 1, dtype=torch.int64, device=ids.device), y[n - 1:]]),
    }


def check_mask_prompt(fn: Callable) -> None:
    """fn(ids (L,), n_prompt, ignore_index=-100) -> (x, y): x = ids[:-1], y = ids[1:] with the prompt's targets
    ignored; int64, on ids.device, ids unchanged; n_prompt outside 1..L-1 is a ValueError."""
    with checker("mask_prompt", fn, device_from="ids") as c, _no_finetune_reference(c, fn, mask_prompt, "mask_prompt"):
        inplace = ("ids was modified: slices of ids are views, so make y a new tensor (.clone()) before writing "
                   "ignore_index into it")

        def run(case: str, ids: torch.Tensor, n: int, ig: int | None = None) -> None:
            args = (ids, n) if ig is None else (ids, n, ig)
            got = c.call(case, fn, *args, inplace=inplace)
            c.expect(isinstance(got, tuple) and len(got) == 2, case, "return a tuple (x, y)")
            want_x, want_y = _mask_reference(ids, n, -100 if ig is None else ig)
            c.close(got[0], want_x, f"{case}: x", "x is ids[:-1] (the model's input), as int64 "
                    "(.to(torch.int64))", atol=0, rtol=0)
            c.close(got[1], want_y, f"{case}: y", "y is ids[1:] with ignore_index on the first n_prompt - 1 targets, "
                    "as int64", atol=0, rtol=0, mistakes=lambda: _mask_mistakes(ids, n, -100 if ig is None else ig))

        # by hand: prompt p0 p1 p2, answer a0 a1, end E -> y = [-100, -100, a0, a1, E]
        ids = torch.tensor([11, 12, 13, 21, 22, 99])
        run("ids [p0 p1 p2 a0 a1 END], n_prompt=3", ids, 3)
        L = c.rng.randrange(8, 40)
        n = c.rng.randrange(2, L - 2)
        run(f"random ids, L={L}, n_prompt={n}", torch.randint(0, 1026, (L,), generator=c.gen()), n)
        run("a one-token prompt (n_prompt=1): every target counts", torch.tensor([1024, 5, 6, 1023]), 1)
        run("an empty answer: only the end token counts (n_prompt = L - 1)", torch.tensor([1024, 5, 6, 1025, 1023]), 4)
        run("int32 ids (the labels must be int64 for cross_entropy)",
            torch.tensor([7, 8, 9, 10, 11], dtype=torch.int32), 2)
        run("uint8 ids (the labels must be int64; -100 does not fit in uint8)",
            torch.tensor([7, 8, 9, 10, 11], dtype=torch.uint8), 3)
        run("ignore_index=-1", torch.tensor([3, 4, 5, 6, 7, 8]), 4, -1)

        # another device (CUDA, else meta): the result stays on ids.device
        dev = c.to_device(torch.tensor([11, 12, 13, 21, 22, 99]))
        got = c.device_run(f"ids on {c.device}, n_prompt=3", fn, dev, 3)
        if got is not None:
            want = _mask_reference(dev, 3)
            c.expect(isinstance(got, tuple) and len(got) == 2, f"ids on {c.device}", "return a tuple (x, y)")
            c.like(got[0], want[0], f"ids on {c.device}: x", "x on ids.device, int64")
            c.like(got[1], want[1], f"ids on {c.device}: y", "y on ids.device, int64")

        # bad n_prompt: a ValueError that names the numbers
        for bad, why in ((0, "no prompt token"), (6, "no end token")):
            case = f"n_prompt={bad} for 6 ids ({why})"
            c.case = case
            try:
                fn(torch.tensor([11, 12, 13, 21, 22, 99]), bad)
            except ValueError as e:
                c.expect(str(bad) in str(e), case, f"the ValueError should name n_prompt={bad} and the valid range "
                         f"1..5 (got {str(e)!r})")
            else:
                c.expect(False, case, "n_prompt must be in 1..L-1: raise ValueError (a silent result trains on "
                         "the wrong tokens — with n_prompt=0, y[:-1] would mask all but the last target)")
