"""Checks for Chapter 6's exercises (fine-tuning): the classification head's pooling (last_token_states).

Each check compares the learner's code with gptlib.finetune's reference on inputs chosen so the usual mistakes
show; random cases use the run's seed (printed in a failure); every check also runs on another device (CUDA, else
"meta") and in a low-precision dtype, and fails when the learner's code calls gptlib.finetune's own solution.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from gptlib.checks import CheckFailed, Checker, checker
from gptlib.finetune import last_token_states


# ------------------------------------------------------------------------------------ classify: last token
@contextmanager
def _no_finetune_reference(c: Checker, learner: Any, reference: Callable, what: str) -> Iterator[None]:
    """Fail when the learner's code calls `reference` (gptlib's solution) while it runs; the reference itself may
    be checked (then nothing is watched)."""
    code = reference.__code__
    if getattr(learner, "__code__", None) is code:
        yield
        return
    hit: list[bool] = []

    def profile(frame, event, arg):  # noqa: ARG001 - sys.setprofile's signature
        if event == "call" and frame.f_code is code and c._codes:
            f = frame.f_back                                        # called from the learner's code (not the check)?
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
                          "exercise: write it yourself (with torch operations)")


def _last_token_mistakes(h: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
    m = mask.long()
    lengths = m.sum(-1)
    rows = torch.arange(h.size(0), device=h.device)
    T = h.size(1)
    return {
        "you took position -1 in every row: with right padding that is a pad's state; take each row's last REAL "
        "token, at position length - 1 (length = the number of 1s in its mask row)": lambda: h[:, -1],
        "you took the first token (position 0): with causal attention it has seen only itself; take the last "
        "real token, at position length - 1": lambda: h[:, 0],
        "off by one: position `length` is the first pad after the passage; the last real token is at "
        "length - 1": lambda: h[rows, lengths.clamp(max=T - 1)],
        "you averaged over all positions, pads included: take one state, the last real token's":
            lambda: h.mean(1),
        "you averaged over the real tokens: that is mean pooling, another head; take the last real token's state "
        "(the only one that has seen the whole passage)":
            lambda: (h * m[..., None].to(h.dtype)).sum(1) / lengths[:, None].to(h.dtype),
    }


def check_last_token_states(fn: Callable) -> None:
    """last_token_states(h (B, T, C), attention_mask (B, T), right padding) -> (B, C)."""
    ref = last_token_states
    with checker("last_token_states", fn, device_from="h") as c, \
            _no_finetune_reference(c, fn, ref, "last_token_states"):
        def run(case: str, h: torch.Tensor, mask: torch.Tensor, hint: str) -> None:
            got = c.call(case, fn, h, mask,
                         inplace="the inputs were modified in place: read h and attention_mask, do not write them")
            c.close(got, ref(h, mask), case, hint, atol=0, rtol=0, mistakes=lambda: _last_token_mistakes(h, mask))

        g = c.gen()
        h = torch.randn(3, 5, 4, generator=g)
        mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
        run("h (3, 5, 4), lengths 3, 5 (no padding), 1", h, mask,
            "row b's answer is h[b, length_b - 1]: h[0, 2], h[1, 4], h[2, 0]")
        run("the same batch with a boolean mask", h, mask.bool(), "a True/False mask counts like 1/0")
        run("a batch whose rows have no padding", h, torch.ones(3, 5, dtype=torch.long),
            "without padding every row's last real token is at position T - 1")
        run("one passage of one token, h (1, 1, 4)", h[:1, :1], torch.ones(1, 1, dtype=torch.long),
            "B = 1 and T = 1 must still give a (1, C) result")
        for k in range(4):
            B, T, C = c.rng.randint(2, 9), c.rng.randint(2, 40), c.rng.choice([8, 16, 33])
            lengths = torch.randint(1, T + 1, (B,), generator=g)
            lengths[0] = T                                              # one row without padding
            m = (torch.arange(T)[None] < lengths[:, None]).long()
            run(f"random h ({B}, {T}, {C}), lengths {lengths.tolist()} (seed {c.seed})",
                torch.randn(B, T, C, generator=g), m, "pick h[b, length_b - 1] in each row b")
        hb = torch.randn(4, 6, 8, generator=g).bfloat16()
        mb = (torch.arange(6)[None] < torch.tensor([6, 2, 4, 1])[:, None]).long()
        run("h in bfloat16 (4, 6, 8)", hb, mb, "return h's own values, in h's dtype")
        hg = torch.randn(4, 6, 8, generator=g, requires_grad=True)
        rg = ref(hg, mb)
        got = c.call("gradient of h (4, 6, 8)", fn, hg, mb)
        c.grads("gradient of h (4, 6, 8)", got, rg, {"h": hg}, {"h": hg},
                "only the chosen states get gradient (indexing, not a copy made under no_grad or .detach())")
        hd, md = c.to_device(torch.randn(3, 7, 8, generator=g)), c.to_device(mb[:3, :6].new_ones(3, 7))
        md[1, 3:] = 0
        case = f"h and attention_mask on {c.device}"
        got = c.device_run(case, fn, hd, md)
        if got is not None:
            c.like(got, ref(hd, md), case, "return the states on h.device")
