"""Auto-checks for the exercises (hand-written, not exported).

Each chapter has a module (`gptlib.checks.ch1`, ...) of `check_*` functions. A check calls the learner's
function on fault-revealing inputs (distinct sizes, unit-scale values, non-trivial weights, isolation cases),
compares it with the reference in gptlib and raises `CheckFailed` with a hint naming the likely mistake.
On success it prints one line, so a notebook's check cell shows what was verified.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

__all__ = ["CheckFailed", "Checker", "checker", "close", "unchanged"]


class CheckFailed(AssertionError):
    """An exercise check failed; the message says which case and what is likely wrong."""


class Checker:
    def __init__(self, name: str):
        self.name, self.passed = name, 0

    def expect(self, ok: bool, case: str, hint: str) -> None:
        """Count one check; raise CheckFailed(case + hint) when `ok` is false."""
        if not bool(ok):
            raise CheckFailed(f"{self.name}: {case} — {hint}")
        self.passed += 1

    def close(self, got: Any, want: torch.Tensor, case: str, hint: str, atol: float = 1e-5,
              rtol: float = 1e-4) -> None:
        """Shapes must match exactly, then values within tolerance."""
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{self.name}: {case} — expected a torch.Tensor, got {type(got).__name__}")
        if tuple(got.shape) != tuple(want.shape):
            raise CheckFailed(f"{self.name}: {case} — shape {tuple(got.shape)}, expected {tuple(want.shape)}. "
                              f"{hint}")
        err = (got.detach().double() - want.detach().double()).abs().max().item() if got.numel() else 0.0
        self.expect(torch.allclose(got.detach().double(), want.detach().double(), atol=atol, rtol=rtol),
                    case, f"max |error| {err:.3g}. {hint}")


@contextmanager
def checker(name: str) -> Iterator[Checker]:
    """`with checker("merge") as c: c.expect(...)`; prints a one-line summary when every check passed.

    A learner's function that raises (NotImplementedError in the student edition) fails the check with the
    original error chained, so the traceback still points at their line."""
    c = Checker(name)
    try:
        yield c
    except CheckFailed:
        raise
    except NotImplementedError as e:
        raise CheckFailed(f"{name}: not implemented yet ({e})") from e
    except Exception as e:  # the learner's code crashed: say where we were
        raise CheckFailed(f"{name}: your function raised {type(e).__name__}: {e}") from e
    print(f"✔ {name}: all {c.passed} checks passed")


def unchanged(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, bool]:
    """Call fn(*args, **kwargs) and report whether it modified any argument in place."""
    before = copy.deepcopy((args, kwargs))
    out = fn(*args, **kwargs)

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, torch.Tensor):
            return a.shape == b.shape and bool(torch.equal(a, b))
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    return out, same(before, (args, kwargs))


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol)
