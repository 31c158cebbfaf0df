"""The Chapter 3 checks pass on gptlib.position, fail on a stub, and catch the usual positional-encoding mistakes."""
import math

import torch

from gptlib import position
from gptlib.checks import ch3
from mutation import Mutant, check_tests, robustness_tests

REFERENCES = {
    "check_sinusoidal_table": position.sinusoidal_table,
    "check_rope_rotate": position.rope_rotate,
    "check_alibi_slopes": position.alibi_slopes,
    "check_alibi_bias": position.alibi_bias,
}


# ---------------------------------------------------------------------------------------------- sinusoidal_table
def table_variant(*, swap=False, exponent=2.0, start=0, halves=False, fixed_base=False):
    def sinusoidal_table(T, d, base=10000.0):
        if fixed_base:
            base = 10000.0
        p = torch.arange(start, start + T, dtype=torch.float32)[:, None]
        omega = base ** (-exponent * torch.arange(d // 2, dtype=torch.float32) / d)
        s, c = torch.sin(p * omega), torch.cos(p * omega)
        if swap:
            s, c = c, s
        if halves:
            return torch.cat((s, c), dim=1)
        out = torch.empty(T, d)
        out[:, 0::2], out[:, 1::2] = s, c
        return out
    return sinusoidal_table


def table_float64(T, d, base=10000.0):
    return position.sinusoidal_table(T, d, base).double()


# --------------------------------------------------------------------------------------------------- rope_rotate
def rope_variant(*, halves=False, sign=1.0, exponent=2.0, row_index=False, plus_one=False, fixed_base=False,
                 concat=False, in_place=False):
    def rope_rotate(x, positions, base=10000.0):
        hs = x.size(-1)
        if fixed_base:
            base = 10000.0
        pos = torch.arange(x.size(-2)) if row_index else positions + (1 if plus_one else 0)
        theta = base ** (-exponent * torch.arange(hs // 2, dtype=torch.float32) / hs)
        a = sign * pos.float()[:, None] * theta
        if halves:
            x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
        else:
            x1, x2 = x[..., 0::2], x[..., 1::2]
        r1, r2 = x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()
        if halves or concat:
            out = torch.cat((r1, r2), dim=-1)
        else:
            out = torch.stack((r1, r2), dim=-1).flatten(-2)
        if in_place:
            x.copy_(out)
            return x
        return out
    return rope_rotate


def rope_no_norm(x, positions, base=10000.0):
    """cos applied, sin forgotten on one coordinate: not a rotation."""
    hs = x.size(-1)
    a = positions.float()[:, None] * base ** (-torch.arange(0, hs, 2).float() / hs)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * a.cos() - x2 * a.sin(), x2 * a.cos()), dim=-1).flatten(-2)


# -------------------------------------------------------------------------------------------------- alibi_slopes
def slopes_variant(kind):
    def geometric(n, first=1):
        return [2.0 ** (-8.0 * (h + first) / n) for h in range(n)]

    def alibi_slopes(n_head):
        lower = 2 ** math.floor(math.log2(n_head))
        if kind == "reversed":
            return position.alibi_slopes(n_head).flip(0)
        if kind == "from_one":
            return torch.tensor(geometric(n_head, first=0))
        if kind == "geometric_always":
            return torch.tensor(geometric(n_head))
        if kind == "odd_indices":
            s = geometric(n_head) if lower == n_head else geometric(lower) + geometric(2 * lower)[1::2][: n_head - lower]
            return torch.tensor(s)
        if kind == "next_power":
            return torch.tensor(geometric(2 ** math.ceil(math.log2(n_head)))[:n_head])
        raise AssertionError(kind)
    return alibi_slopes


# ---------------------------------------------------------------------------------------------------- alibi_bias
def bias_variant(kind):
    def alibi_bias(slopes, T):
        i = torch.arange(T)
        d = (i[:, None] - i[None, :]).float()              # i - j
        s = slopes[:, None, None]
        if kind == "sign":
            return s * d.clamp(min=0)
        if kind == "transposed":
            return -s * (-d).clamp(min=0)
        if kind == "upper_not_zero":
            return -s * d
        if kind == "symmetric":
            return -s * d.abs()
        if kind == "no_slope":
            return -d.clamp(min=0).expand(len(slopes), T, T)
        if kind == "heads_reversed":
            return -slopes.flip(0)[:, None, None] * d.clamp(min=0)
        if kind == "in_place":
            slopes.neg_()
            return slopes[:, None, None] * d.clamp(min=0)
        raise AssertionError(kind)
    return alibi_bias


# ---- new mutants (issue 11): device, dtype, gradients, sizes beyond a cached table ----
def rope_cpu_theta(x, positions, base=10000.0):        # frequencies built on the CPU
    hs = x.size(-1)
    theta = base ** (-torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    a = positions.float()[:, None] * theta
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()), dim=-1).flatten(-2)


def rope_float32_out(x, positions, base=10000.0):      # computes in float32 and forgets .to(x.dtype)
    return position.rope_rotate(x.float(), positions, base)


def rope_no_grad(x, positions, base=10000.0):          # "a fixed transform": computed without autograd
    with torch.no_grad():
        return position.rope_rotate(x, positions, base)


_COS_SIN_LEN = 1024


def rope_cached_table(x, positions, base=10000.0):     # cos/sin precomputed for 1024 positions, then indexed
    hs = x.size(-1)
    theta = base ** (-torch.arange(0, hs, 2, dtype=torch.float32, device=x.device) / hs)
    table = torch.arange(_COS_SIN_LEN, device=x.device).float()[:, None] * theta
    a = table[positions]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()), dim=-1).flatten(-2)


def table_cached_1024(T, d, base=10000.0):            # a 1024-row table sliced
    return position.sinusoidal_table(1024, d, base)[:T]


def bias_cpu_arange(slopes, T):                        # torch.arange(T) on the CPU
    i = torch.arange(T)
    return slopes.float()[:, None, None] * (i[None, :] - i[:, None]).clamp(max=0)


def bias_float64(slopes, T):                           # float64 distances: a float64 bias
    i = torch.arange(T, device=slopes.device)
    return slopes[:, None, None] * (i[None, :] - i[:, None]).clamp(max=0).double()


_BIAS_CACHE = (torch.arange(1024)[None, :] - torch.arange(1024)[:, None]).clamp(max=0)


def bias_cached_1024(slopes, T):                       # distances cached for 1024 positions, sliced
    return slopes.float()[:, None, None] * _BIAS_CACHE.to(slopes.device)[:T, :T]


# ------------------------------------------------------------------------ issue 19's classes
def rope_library(*args, **kwargs):                         # returns gptlib's own solution
    return position.rope_rotate(*args, **kwargs)


ISSUE19 = [
    Mutant("check_rope_rotate", "calls gptlib's position.rope_rotate", rope_library,
           hint="gptlib.position.rope_rotate, the solution", kind="solution"),
]

MUTANTS = [
    *ISSUE19,
    Mutant("check_sinusoidal_table", "sin and cos swapped", table_variant(swap=True), hint="swapped"),
    Mutant("check_sinusoidal_table", "frequency exponent i/d instead of 2i/d", table_variant(exponent=1.0),
           hint="exponent"),
    Mutant("check_sinusoidal_table", "positions start at 1", table_variant(start=1), hint="positions start at 0"),
    Mutant("check_sinusoidal_table", "sines then cosines, not interleaved", table_variant(halves=True),
           hint="interleave"),
    Mutant("check_sinusoidal_table", "base argument ignored", table_variant(fixed_base=True), hint="base"),
    Mutant("check_sinusoidal_table", "returns float64", table_float64, hint="float32"),
    Mutant("check_rope_rotate", "rotates halves instead of interleaved pairs", rope_variant(halves=True),
           hint="interleaved pairs"),
    Mutant("check_rope_rotate", "rotates in the wrong direction", rope_variant(sign=-1.0), hint="direction"),
    Mutant("check_rope_rotate", "frequency exponent i/hs", rope_variant(exponent=1.0), hint="exponent"),
    Mutant("check_rope_rotate", "ignores positions, uses the row index", rope_variant(row_index=True),
           hint="positions[t]"),
    Mutant("check_rope_rotate", "positions start at 1", rope_variant(plus_one=True), hint="off by one"),
    Mutant("check_rope_rotate", "base argument ignored", rope_variant(fixed_base=True), hint="base"),
    Mutant("check_rope_rotate", "rotated pairs concatenated, not re-interleaved", rope_variant(concat=True),
           hint="interleave"),
    Mutant("check_rope_rotate", "modifies x in place", rope_variant(in_place=True), hint="in place"),
    Mutant("check_rope_rotate", "not a rotation (sin term dropped)", rope_no_norm, hint="not a rotation"),
    Mutant("check_alibi_slopes", "slopes reversed", slopes_variant("reversed"), hint="decrease"),
    Mutant("check_alibi_slopes", "first slope 1 (exponent starts at 0)", slopes_variant("from_one"),
           hint="first slope"),
    Mutant("check_alibi_slopes", "geometric 2^(-8(h+1)/n) for every n", slopes_variant("geometric_always"),
           hint="non-power-of-2"),
    Mutant("check_alibi_slopes", "odd-indexed extra slopes", slopes_variant("odd_indices"), hint="[0::2]"),
    Mutant("check_alibi_slopes", "first n slopes of the next power of two", slopes_variant("next_power"),
           hint="non-power-of-2"),
    Mutant("check_alibi_bias", "sign flipped", bias_variant("sign"), hint="sign"),
    Mutant("check_alibi_bias", "transposed (key rows, query columns)", bias_variant("transposed"),
           hint="transposed"),
    Mutant("check_alibi_bias", "non-zero above the diagonal", bias_variant("upper_not_zero"),
           hint="above the diagonal"),
    Mutant("check_alibi_bias", "symmetric -slope·|i-j|", bias_variant("symmetric"), hint="above the diagonal"),
    Mutant("check_alibi_bias", "slope not applied", bias_variant("no_slope"), hint="each head's slope"),
    Mutant("check_alibi_bias", "heads use reversed slopes", bias_variant("heads_reversed"), hint="slopes[h]"),
    Mutant("check_alibi_bias", "negates slopes in place", bias_variant("in_place"), hint="in place"),
    # new (issue 11) — device
    Mutant("check_rope_rotate", "frequencies built on the CPU", rope_cpu_theta, hint="build it on x.device",
           kind="device"),
    Mutant("check_alibi_bias", "arange built on the CPU", bias_cpu_arange, hint="build it on slopes.device",
           kind="device"),
    # new — dtype
    Mutant("check_rope_rotate", "float32 result for float64 x", rope_float32_out, hint="keep the dtype", kind="dtype"),
    Mutant("check_alibi_bias", "float64 bias", bias_float64, hint="dtype torch.float64", kind="dtype"),
    # new — gradients
    Mutant("check_rope_rotate", "rotation computed under no_grad", rope_no_grad, hint="no gradient", kind="gradient"),
    # new — sizes beyond a cached table
    Mutant("check_rope_rotate", "cos/sin cached for 1024 positions", rope_cached_table, hint="random", kind="edge"),
    Mutant("check_sinusoidal_table", "a 1024-row table sliced", table_cached_1024, hint="random", kind="edge"),
    Mutant("check_alibi_bias", "distances cached for 1024 positions", bias_cached_1024, hint="random T", kind="edge"),
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch3, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch3, REFERENCES)
