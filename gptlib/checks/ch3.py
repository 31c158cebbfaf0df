"""Checks for the Chapter 3 exercises (positional encoding). Hand-written, not exported.

Each check compares the learner's function with the reference in gptlib.position on fault-revealing inputs
(distinct sizes, a head size that is not a multiple of 4, non-power-of-2 head counts, T = 1, positions that do
not start at 0, a non-default base), on random sizes and positions beyond any cached table (fresh each run), with
gradients, and with inputs on another device (meta, or CUDA when present). When a result is wrong, it is compared
with the results of the usual mistakes so that the message can name the likely one.
"""
from __future__ import annotations

import math

import torch

from gptlib import position as ref
from gptlib.checks import checker

__all__ = ["check_sinusoidal_table", "check_rope_rotate", "check_alibi_slopes", "check_alibi_bias"]


# ---------------------------------------------------------------------------------------------------- sinusoidal
def _table(T: int, d: int, base: float, *, exponent=2.0, swap=False, start=0, halves=False) -> torch.Tensor:
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    omega = base ** (-exponent * torch.arange(d // 2, dtype=torch.float64) / d)
    s, co = torch.sin(p * omega), torch.cos(p * omega)
    if swap:
        s, co = co, s
    if halves:
        return torch.cat((s, co), dim=1)
    return torch.stack((s, co), dim=-1).flatten(1)


def check_sinusoidal_table(fn) -> None:
    """fn(T, d, base=10000.0) -> (T, d) float32 with PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(...)."""
    with checker("sinusoidal_table", fn, solution=ref.sinusoidal_table) as c:
        big = (c.rng.randint(1025, 3000), 2 * c.rng.randint(1, 12), None)       # longer than any cached table
        for T, d, base in ((7, 6, None), (1, 10, None), (50, 16, None), (9, 8, 100.0), (5, 2, None), big):
            b = 10000.0 if base is None else base
            case = f"sinusoidal_table({T}, {d}{'' if base is None else f', base={base}'})" + (
                f" (random, seed {c.seed})" if (T, d, base) == big else "")
            got = c.call(case, fn, T, d) if base is None else c.call(case, fn, T, d, base)
            mistakes = {"sin and cos swapped? Even columns (0, 2, ...) hold sin, odd columns cos":
                            lambda: _table(T, d, b, swap=True),
                        "frequency exponent: pair i uses base^(-2i/d) (2i is the even column index), not base^(-i/d)":
                            lambda: _table(T, d, b, exponent=1.0),
                        "positions start at 0: row 0 must be sin(0) = 0, cos(0) = 1": lambda: _table(T, d, b, start=1),
                        "interleave the pairs: sin in even columns, cos in odd columns, not all sines then all "
                        "cosines": lambda: _table(T, d, b, halves=True),
                        "the base argument is ignored? Use base, not a fixed 10000": lambda: _table(T, d, 10000.0)}
            c.close(got, ref.sinusoidal_table(T, d, b), case,
                    "compare with PE[p, 2i] = sin(p · base^(-2i/d)), PE[p, 2i+1] = cos(p · base^(-2i/d))",
                    atol=1e-3 if T > 1000 else 1e-4, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------- RoPE
def _rope(x: torch.Tensor, pos: torch.Tensor, base: float, *, exponent=2.0, sign=1.0, halves=False,
          stacked=False) -> torch.Tensor:
    hs = x.size(-1)
    theta = base ** (-exponent * torch.arange(hs // 2, dtype=torch.float64) / hs)
    a = sign * pos.double()[:, None] * theta
    x = x.double()
    x1, x2 = (x[..., : hs // 2], x[..., hs // 2:]) if halves else (x[..., 0::2], x[..., 1::2])
    r1, r2 = x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()
    if halves or stacked:
        return torch.cat((r1, r2), dim=-1)
    return torch.stack((r1, r2), dim=-1).flatten(-2)


def check_rope_rotate(fn) -> None:
    """fn(x (..., T, hs), positions (T,), base=10000.0) -> x with interleaved pairs rotated by pos · base^(-2i/hs)."""
    with checker("rope_rotate", fn, solution=ref.rope_rotate) as c:
        g = torch.Generator().manual_seed(3)
        far = torch.tensor(c.rng.sample(range(1025, 4096), 6))               # beyond any cached cos/sin table
        cases = [((2, 3, 5, 8), torch.arange(5), None),                    # B=2, nh=3, T=5, hs=8
                 ((2, 3, 5, 8), torch.tensor([3, 0, 7, 7, 100]), None),     # positions are not the row index
                 ((4, 6, 10), torch.tensor([2, 5, 1, 9, 4, 0]), 100.0),      # 3-D input, hs=10, another base
                 ((1, 1, 1, 6), torch.tensor([0]), None),                    # T = 1 at position 0: nothing moves
                 ((1, 2, 1, 6), torch.tensor([4]), None),                    # T = 1 at position 4
                 ((2, 2, 6, 2 * c.rng.randint(2, 16)), far, None)]          # random hs, far positions
        for i, (shape, pos, base) in enumerate(cases):
            last = i == len(cases) - 1
            b = 10000.0 if base is None else base
            x = torch.randn(*shape, generator=g)
            args = (x, pos.clone()) if base is None else (x, pos.clone(), base)
            case = (f"rope_rotate(x of shape {shape}, positions={pos.tolist()}"
                    f"{'' if base is None else f', base={base}'})" + (f" (random, seed {c.seed})" if last else ""))
            got = c.call(case, fn, *args, inplace="x (or positions) was modified in place: build a new tensor instead")
            if isinstance(got, torch.Tensor) and got.shape == x.shape:  # a rotation keeps every vector's length
                norm_ok = torch.allclose(got.detach().double().norm(dim=-1), x.double().norm(dim=-1), atol=1e-3)
                c.expect(norm_ok, case, "the vector norms changed, so this is not a rotation: each pair must get "
                                        "both cos and sin terms (even·cos − odd·sin, even·sin + odd·cos)")
            mistakes = {"rotate the interleaved pairs (x[..., 0::2], x[..., 1::2]), not the two halves "
                        "(x[..., :hs/2], x[..., hs/2:])": lambda: _rope(x, pos, b, halves=True),
                        "rotation direction: counter-clockwise is even·cos − odd·sin, even·sin + odd·cos (you rotate "
                        "by minus the angle)": lambda: _rope(x, pos, b, sign=-1.0),
                        "frequency exponent: pair i uses base^(-2i/hs), not base^(-i/hs)":
                            lambda: _rope(x, pos, b, exponent=1.0),
                        "use positions[t] for row t, not the row index t": lambda: _rope(x, torch.arange(len(pos)), b),
                        "positions are off by one? Row t is rotated by positions[t]": lambda: _rope(x, pos + 1, b),
                        "the base argument is ignored? Use base, not a fixed 10000": lambda: _rope(x, pos, 10000.0),
                        "put each rotated pair back in its place (interleave), e.g. torch.stack((even, odd), "
                        "dim=-1).flatten(-2)": lambda: _rope(x, pos, b, stacked=True)}
            c.close(got, ref.rope_rotate(x, pos, b), case, "pair i of row t is rotated by positions[t] · "
                    "base^(-2i/hs); check which pairs, angle and direction", atol=5e-3 if last else 1e-4,
                    mistakes=mistakes)
        x = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
        case = "rope_rotate(float64 x (2, 4, 6), arange(4))"
        c.close(c.call(case, fn, x, torch.arange(4)), ref.rope_rotate(x, torch.arange(4)), case,
                "return the dtype of x", atol=1e-4)
        # gradients by value: d/dx of a rotation is the inverse rotation
        x0 = torch.randn(2, 3, 5, 8, generator=torch.Generator().manual_seed(5))
        xg, xr = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        pos = torch.tensor([3, 0, 7, 7, 100])
        case = "rope_rotate(x (2, 3, 5, 8), [3, 0, 7, 7, 100]), backward"
        got = c.call(case, fn, xg, pos)
        c.grads(case, got, ref.rope_rotate(xr, pos), {"x": xg}, {"x": xr}, "the rotation must stay in the autograd "
                "graph (no torch.no_grad(), no .detach()): queries and keys are trained through it", atol=1e-4)
        # another device: the angles / frequencies must be built on x.device
        xm, pm = c.to_device(x0), c.to_device(pos)
        case = f"rope_rotate(x (2, 3, 5, 8), positions) on device {c.device!r}"
        got = c.device_run(case, fn, xm, pm)
        if got is not None:
            c.like(got, ref.rope_rotate(xm, pm), case, "return a tensor like x")


# --------------------------------------------------------------------------------------------------------- ALiBi
def _geometric(n: int, first: int = 1) -> list[float]:
    return [2.0 ** (-8.0 * (h + first) / n) for h in range(n)]


def check_alibi_slopes(fn) -> None:
    """fn(n_head) -> (n_head,) float32 slopes as in Press et al., including the non-power-of-2 rule."""
    with checker("alibi_slopes", fn, solution=ref.alibi_slopes) as c:
        fixed = (8, 1, 4, 16, 12, 3, 6, 24)
        for n in fixed + (c.rng.choice([m for m in range(5, 200) if m & (m - 1)]),):
            case = f"alibi_slopes({n})" + ("" if n in fixed else f" (random, seed {c.seed})")
            got = c.call(case, fn, n)
            want = ref.alibi_slopes(n)
            power = n & (n - 1) == 0
            lower = 2 ** math.floor(math.log2(n))
            rule = ("non-power-of-2 head counts follow the paper's rule: the slopes of 2^a = "
                    f"{lower} heads, then every other slope ([0::2]) of {2 * lower} heads")
            mistakes = {"slopes must decrease: head 0 gets the largest slope 2^(-8/n)": want.flip(0),
                        "the first slope is 2^(-8/n), not 1: the exponents are -8(h+1)/n for h = 0..n-1":
                            torch.tensor(_geometric(n, first=0))}
            if not power:
                mistakes.update({
                    rule + ", not 2^(-8(h+1)/n) with n itself": torch.tensor(_geometric(n)),
                    rule + ": take the even-indexed slopes [0::2], not [1::2]":
                        torch.tensor(_geometric(lower) + _geometric(2 * lower)[1::2][: n - lower]),
                    rule + ", not the first n of 2^(a+1)": torch.tensor(_geometric(2 * lower)[:n])})
            c.close(got, want, case, "expected 2^(-8/n), 2^(-16/n), ..., 2^(-8) for a power of two n" if power
                    else rule, atol=1e-6, mistakes=mistakes)


def check_alibi_bias(fn) -> None:
    """fn(slopes (n_head,), T) -> (n_head, T, T): -slopes[h]·(i − j) for j <= i, 0 above the diagonal."""
    with checker("alibi_bias", fn, device_from="slopes", solution=ref.alibi_bias) as c:
        rs = torch.tensor([c.rng.uniform(0.01, 1.0) for _ in range(c.rng.randint(2, 6))])
        cases = [(torch.tensor([0.5, 0.125, 0.7]), 5), (torch.tensor([0.5, 0.125, 0.7]), 3),
                 (torch.tensor([0.3]), 4), (torch.tensor([0.5, 0.25]), 1),
                 (torch.tensor([0.9, 0.05, 0.3, 0.6, 0.2]), 7), (rs, c.rng.randint(8, 100))]
        for n, (slopes, T) in enumerate(cases):
            case = f"alibi_bias(slopes={[round(s, 4) for s in slopes.tolist()]}, T={T})" + (
                f" (random, seed {c.seed})" if n == len(cases) - 1 else "")
            got = c.call(case, fn, slopes.clone(), T, inplace="slopes were modified in place")
            want = ref.alibi_bias(slopes, T)
            i = torch.arange(T)
            d = (i[:, None] - i[None, :]).double()                     # i - j
            s = slopes.double()[:, None, None]
            mistakes = {"sign: the bias must be <= 0, keys further back get a more negative bias (-slope · distance)":
                            -want,
                        "rows are queries i, columns keys j: bias[h, i, j] = -slope·(i − j) lies below the diagonal "
                        "(transposed?)": want.transpose(-2, -1),
                        "above the diagonal (keys j > i) the bias must be 0, not -slope·(i − j)": -s * d,
                        "above the diagonal (keys j > i) the bias must be 0, not -slope·|i − j|": -s * d.abs(),
                        "multiply by each head's slope: bias[h] = -slopes[h]·(i − j)":
                            -(d.clamp(min=0)).expand_as(want),
                        "head h must use slopes[h] (heads reversed?)": want.flip(0)}
            c.close(got, want, case, "expected bias[h, i, j] = -slopes[h]·(i − j) for j <= i and 0 for j > i",
                    atol=1e-6, mistakes=mistakes)
        # another device, and a T beyond any cached table (GPT-2's 1024 included)
        sm, T = c.to_device(torch.tensor([0.5, 0.125, 0.7])), c.rng.randint(1025, 2100)
        case = f"alibi_bias(slopes on device {c.device!r}, T={T}) (random T, seed {c.seed})"
        got = c.device_run(case, fn, sm, T)
        if got is not None:
            c.like(got, ref.alibi_bias(sm, T), case, "expected (n_head, T, T) on the slopes' device")
