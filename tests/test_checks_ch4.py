"""Chapter 4's exercise checks: each passes on gptlib's reference, fails on a stub and on curated mutants."""
import math

import torch
import torch.nn.functional as F

from gptlib import layers as L
from gptlib import model as M
from gptlib.checks import ch4
from mutation import Mutant, check_tests, robustness_tests


# --------------------------------------------------------------------------------------------- LayerNorm
def _affine(ln, y):
    y = y * ln.weight
    return y + ln.bias if ln.bias is not None else y


class LNEpsOutsideSqrt(M.LayerNorm):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        return _affine(self, (x - mean) / (torch.sqrt(var) + self.eps))


class LNUnbiasedVar(M.LayerNorm):
    def forward(self, x):
        return _affine(self, (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + self.eps))


class LNNoAffine(M.LayerNorm):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt((x - mean).pow(2).mean(-1, keepdim=True) + self.eps)


class LNNoShift(M.LayerNorm):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt((x - mean).pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LNWrongAxis(M.LayerNorm):
    def forward(self, x):
        mean = x.mean(0, keepdim=True)
        return _affine(self, (x - mean) / torch.sqrt((x - mean).pow(2).mean(0, keepdim=True) + self.eps))


class LNInPlace(M.LayerNorm):
    def forward(self, x):
        x -= x.mean(-1, keepdim=True)
        return _affine(self, x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


# --------------------------------------------------------------------------------------------- GELU
K = math.sqrt(2 / math.pi)


def gelu_exact(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def gelu_no_cubic(x):
    return 0.5 * x * (1 + torch.tanh(K * x))


def gelu_wrong_constant(x):
    return 0.5 * x * (1 + torch.tanh(2 / math.pi * (x + 0.044715 * x**3)))


def gelu_no_half(x):
    return x * (1 + torch.tanh(K * (x + 0.044715 * x**3)))


# --------------------------------------------------------------------------------------------- Block
class BlockNoAttnResidual(M.Block):
    def forward(self, x, *, rotary=None, attn_bias=None):
        x = self.attn(self.ln_1(x), rotary=rotary, attn_bias=attn_bias)
        return x + self.mlp(self.ln_2(x))


class BlockNoMlpResidual(M.Block):
    def forward(self, x, *, rotary=None, attn_bias=None):
        x = x + self.attn(self.ln_1(x), rotary=rotary, attn_bias=attn_bias)
        return self.mlp(self.ln_2(x))


class BlockPostLN(M.Block):
    def forward(self, x, *, rotary=None, attn_bias=None):
        x = self.ln_1(x + self.attn(x, rotary=rotary, attn_bias=attn_bias))
        return self.ln_2(x + self.mlp(x))


class BlockDropsHooks(M.Block):
    def forward(self, x, *, rotary=None, attn_bias=None):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class BlockLn1Twice(M.Block):
    def forward(self, x, *, rotary=None, attn_bias=None):
        x = x + self.attn(self.ln_1(x), rotary=rotary, attn_bias=attn_bias)
        return x + self.mlp(self.ln_1(x))


class BlockInPlace(M.Block):
    def forward(self, x, *, rotary=None, attn_bias=None):
        x += self.attn(self.ln_1(x), rotary=rotary, attn_bias=attn_bias)
        x += self.mlp(self.ln_2(x))
        return x


# --------------------------------------------------------------------------------------------- counting
def count_no_wpe(cfg):
    return M.count_params(cfg) - (cfg.block_size * cfg.n_embd if cfg.position == "learned" else 0)


def count_head_twice(cfg):
    return M.count_params(cfg) + (cfg.vocab_size * cfg.n_embd if cfg.tie_weights else 0)


def count_wpe_always(cfg):
    return M.count_params(cfg) + (cfg.block_size * cfg.n_embd if cfg.position != "learned" else 0)


def count_ln_bias_always(cfg):
    return M.count_params(cfg) + (0 if cfg.bias else (2 * cfg.n_layer + 1) * cfg.n_embd)


def count_no_ln_f(cfg):
    return M.count_params(cfg) - (2 if cfg.bias else 1) * cfg.n_embd


def count_no_biases(cfg):
    C = cfg.n_embd
    return M.count_params(cfg) - (cfg.n_layer * (3 * C + C + 4 * C + C) if cfg.bias else 0)


def count_float(cfg):
    return float(M.count_params(cfg))


# ---- new mutants (issue 11): shortcuts, gradients, large inputs, dtypes, devices, messages ----
class LNFused(M.LayerNorm):                            # the shortcut the exercise forbids
    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class LNStatsNoGrad(M.LayerNorm):                      # statistics computed outside the graph
    def forward(self, x):
        with torch.no_grad():
            mean = x.mean(-1, keepdim=True)
            var = (x - mean).pow(2).mean(-1, keepdim=True)
        return _affine(self, (x - mean) / torch.sqrt(var + self.eps))


class LNNaiveVariance(M.LayerNorm):                    # E[x²] − E[x]²: cancels when |mean| ≫ std
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = (x * x).mean(-1, keepdim=True) - mean * mean
        return _affine(self, (x - mean) / torch.sqrt(var + self.eps))


class LNFloat32(M.LayerNorm):                          # "for safety" computes in float32 and keeps it
    def forward(self, x):
        x = x.float()
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        y = (x - mean) / torch.sqrt(var + self.eps) * self.weight.float()
        return y + self.bias.float() if self.bias is not None else y


class LNCpuZeroBias(M.LayerNorm):                      # a missing bias replaced by zeros built on the CPU
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        y = (x - mean) / torch.sqrt((x - mean).pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return y + (self.bias if self.bias is not None else torch.zeros(x.size(-1)))


def gelu_fused(x):                                     # the shortcut the exercise forbids
    return F.gelu(x, approximate="tanh")


def gelu_tanh_via_exp(x):                              # tanh(z) = (e^2z - 1) / (e^2z + 1): overflows for |x| >= ~11
    z = 2 * K * (x + 0.044715 * x**3)
    return 0.5 * x * (1 + (torch.exp(z) - 1) / (torch.exp(z) + 1))


def gelu_rounded_constant(x):                          # 0.7979 for sqrt(2/pi)
    return 0.5 * x * (1 + torch.tanh(0.7979 * (x + 0.044715 * x**3)))


def gelu_float64(x):                                   # computes in float64 "for accuracy" and returns float64
    x = x.double()
    return 0.5 * x * (1 + torch.tanh(K * (x + 0.044715 * x**3)))


class BlockDetachedResidual(M.Block):                  # the residual path cut from the graph
    def forward(self, x, *, rotary=None, attn_bias=None):
        x = x.detach() + self.attn(self.ln_1(x), rotary=rotary, attn_bias=attn_bias)
        return x + self.mlp(self.ln_2(x))


class BlockOwnDropout(M.Block):                        # adds F.dropout itself: active in eval() too
    def forward(self, x, *, rotary=None, attn_bias=None):
        p = self.attn.attn_dropout.p
        x = x + F.dropout(self.attn(self.ln_1(x), rotary=rotary, attn_bias=attn_bias), p)
        return x + F.dropout(self.mlp(self.ln_2(x)), p)


def count_by_building(cfg):                            # builds the model (on meta) instead of counting
    with torch.device("meta"):
        return M.GPT(cfg).num_params()


REFERENCES = {"check_layer_norm": M.LayerNorm, "check_gelu_tanh": L.gelu_tanh, "check_block": M.Block,
              "check_count_params": M.count_params,
              "check_hidden_states": M.GPT.hidden_states}   # hidden_states(model, idx) = model.hidden_states(idx)

# ------------------------------------------------------------------------ issue 19's classes
def gelu_library(x):                                       # returns gptlib's own solution
    return L.gelu_tanh(x)


class LayerNormLibrary(M.LayerNorm):                       # subclasses gptlib's own solution
    pass


ISSUE19 = [
    Mutant("check_gelu_tanh", "calls gptlib's layers.gelu_tanh", gelu_library,
           hint="gptlib.layers.gelu_tanh, the solution", kind="solution"),
    Mutant("check_layer_norm", "subclasses gptlib's layers.LayerNorm", LayerNormLibrary,
           hint="subclasses gptlib.layers.LayerNorm", kind="solution"),
]

MUTANTS = [
    *ISSUE19,
    Mutant("check_layer_norm", "eps outside the square root", LNEpsOutsideSqrt, hint="inside the square root"),
    Mutant("check_layer_norm", "unbiased variance", LNUnbiasedVar, hint="biased variance"),
    Mutant("check_layer_norm", "forgets weight and bias", LNNoAffine, hint="learned scale and shift"),
    Mutant("check_layer_norm", "forgets the bias", LNNoShift, hint="shift is missing"),
    Mutant("check_layer_norm", "normalises over the batch axis", LNWrongAxis, hint="last dimension"),
    Mutant("check_layer_norm", "subtracts the mean in place", LNInPlace, hint="in place"),
    Mutant("check_gelu_tanh", "exact erf GELU", gelu_exact, hint="tanh approximation"),
    Mutant("check_gelu_tanh", "no 0.044715 x^3 term", gelu_no_cubic, hint="0.044715"),
    Mutant("check_gelu_tanh", "2/pi instead of sqrt(2/pi)", gelu_wrong_constant, hint="sqrt(2/pi)"),
    Mutant("check_gelu_tanh", "no 0.5 factor", gelu_no_half, hint="0.5 * x"),
    Mutant("check_block", "no residual around attention", BlockNoAttnResidual, hint="residual missing"),
    Mutant("check_block", "no residual around the MLP", BlockNoMlpResidual, hint="residual missing"),
    Mutant("check_block", "post-LN", BlockPostLN, hint="post-LN"),
    Mutant("check_block", "drops rotary/attn_bias", BlockDropsHooks, hint="pass rotary"),
    Mutant("check_block", "ln_1 before the MLP too", BlockLn1Twice, hint="ln_2"),
    Mutant("check_block", "x += in place", BlockInPlace, hint="in place"),
    Mutant("check_count_params", "forgets wpe", count_no_wpe, hint="wpe"),
    Mutant("check_count_params", "counts the tied head twice", count_head_twice, hint="count it once"),
    Mutant("check_count_params", "counts a position table for every scheme", count_wpe_always,
           hint="only position='learned'"),
    Mutant("check_count_params", "LayerNorm biases with bias=False", count_ln_bias_always,
           hint="LayerNorms have no bias"),
    Mutant("check_count_params", "forgets ln_f", count_no_ln_f, hint="ln_f"),
    Mutant("check_count_params", "forgets the Linear biases", count_no_biases, hint="biases missing"),
    Mutant("check_count_params", "returns a float", count_float, hint="python int"),
    # new (issue 11) — shortcuts the text forbids
    Mutant("check_layer_norm", "calls F.layer_norm", LNFused, hint="from scratch", kind="shortcut"),
    Mutant("check_gelu_tanh", "calls F.gelu(approximate='tanh')", gelu_fused, hint="torch.tanh", kind="shortcut"),
    Mutant("check_count_params", "builds the model on meta to count it", count_by_building, hint="config alone",
           kind="shortcut"),
    # new — gradients by value
    Mutant("check_layer_norm", "mean and variance under no_grad", LNStatsNoGrad, hint="autograd graph",
           kind="gradient"),
    Mutant("check_block", "residual detached", BlockDetachedResidual, hint="residual paths", kind="gradient"),
    # new — large-magnitude inputs
    Mutant("check_layer_norm", "variance as E[x²] − E[x]²", LNNaiveVariance, hint="cancellation", kind="edge"),
    Mutant("check_gelu_tanh", "tanh written with exp", gelu_tanh_via_exp, hint="overflows", kind="edge"),
    # new — dtypes
    Mutant("check_layer_norm", "computes and returns float32", LNFloat32, hint="keep the dtype", kind="dtype"),
    Mutant("check_gelu_tanh", "returns float64 for float32 x", gelu_float64, hint="keep the dtype", kind="dtype"),
    # new — device
    Mutant("check_layer_norm", "zeros for a missing bias built on the CPU", LNCpuZeroBias,
           hint="build it on x.device", kind="device"),
    # new — dropout > 0 and eval()
    Mutant("check_block", "its own F.dropout, active in eval()", BlockOwnDropout, hint="eval()", kind="edge"),
    # new — messages
    Mutant("check_gelu_tanh", "0.7979 for sqrt(2/pi)", gelu_rounded_constant, hint="rounded constant", kind="message"),
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch4, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch4, REFERENCES)


# --------------------------------------------------------------------------------------------- capstone: hidden_states
# (kept apart from MUTANTS above; each mutant below must fail check_hidden_states with the hint named)
import pytest                                                     # noqa: E402
import torch.nn.functional as F                                   # noqa: E402

from mutation import run                                          # noqa: E402
from gptlib.checks import CheckFailed                             # noqa: E402


def _hs(model, idx, *, pos=True, first=0, rotary=True, alibi=True, ln_f=True, drop=None, detach=False, dtype=None,
        alibi_len=None):
    t, T = model.transformer, idx.size(1)
    x = t.wte(idx)
    if detach:
        x = x.detach()
    if pos and "wpe" in t:
        x = x + t.wpe(torch.arange(first, T + first, device=idx.device).clamp(max=model.config.block_size - 1))
    x = drop(x) if drop else t.drop(x)
    bias = model.alibi(alibi_len or T) if (alibi and model.alibi is not None) else None
    for block in t.h:
        x = block(x, rotary=model.rotary if rotary else None, attn_bias=bias)
    x = t.ln_f(x) if ln_f else x
    return x.to(dtype) if dtype else x


HS_MUTANTS = [
    ("no final LayerNorm", lambda m, i: _hs(m, i, ln_f=False), "final LayerNorm is missing"),
    ("no position vectors", lambda m, i: _hs(m, i, pos=False), "position vectors are missing"),
    ("positions 1..T", lambda m, i: _hs(m, i, first=1), "positions start at 0"),
    ("rotary not passed", lambda m, i: _hs(m, i, rotary=False), "rotary=model.rotary"),
    ("ALiBi bias not passed", lambda m, i: _hs(m, i, alibi=False), "attn_bias=model.alibi"),
    ("ALiBi bias for block_size", lambda m, i: _hs(m, i, alibi_len=m.config.block_size), "alibi"),
    ("dropout on in eval()", lambda m, i: _hs(m, i, drop=lambda x: F.dropout(x, m.config.dropout)), "off in eval()"),
    ("calls the model", lambda m, i: m.hidden_states(i), "do not call model"),
    ("float64 output", lambda m, i: _hs(m, i, dtype=torch.float64), "torch.float32"),
    ("detached embeddings", lambda m, i: _hs(m, i, detach=True), "gradient"),
]


@pytest.mark.parametrize("what, impl, hint", HS_MUTANTS, ids=[m[0] for m in HS_MUTANTS])
def test_hidden_states_mutant_fails(what, impl, hint):
    with pytest.raises(CheckFailed) as e:
        run(ch4.check_hidden_states, impl)
    assert hint.lower() in str(e.value).lower(), f"hint should mention {hint!r}: {e.value}"
