"""The Chapter 2 checks pass on the references, fail on a stub, and fail on realistic learner mistakes."""
import math

import torch
import torch.nn.functional as F
from mutation import Mutant, check_tests, robustness_tests

from gptlib import attention
from gptlib.checks import ch2

NEG = float("-inf")

REFERENCES = {
    "check_causal_mask": attention.causal_mask,
    "check_attention": attention.scaled_dot_product_attention,
    "check_split_heads": attention.split_heads,
    "check_merge_heads": attention.merge_heads,
    "check_multi_head_attention": attention.MultiHeadAttention,
}


# --------------------------------------------------------------------------------------- attention mutants
def sdpa(scale="sqrt", softmax_dim=-1, mask_after=False, k_as_q=False, invert=False, causal_diag=0,
         float_ignored=False, dropout="ok", inplace=False, cpu_mask=False, naive_softmax=False, nan_rows=False,
         fused=False, to_float=False, no_grad_weights=False, square_mask=False, nan_grad=False):
    """A from-scratch attention with one mistake switched on."""
    def fn(q, k, v, mask=None, is_causal=False, dropout_p=0.0):
        d = q.size(-1)
        if inplace:
            q = q.div_(math.sqrt(d))
            scores = q @ k.transpose(-2, -1)
        else:
            a, b = (k, q) if k_as_q else (q, k)
            scores = a @ b.transpose(-2, -1)
            scores = {"sqrt": scores / math.sqrt(d), "none": scores, "d": scores / d}[scale]
        if fused:                                       # the shortcut: torch's attention
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p)
        T_q, T_k = scores.shape[-2:]
        if square_mask:
            T_k = T_q
        dev = None if cpu_mask else q.device
        visible = torch.ones(T_q, T_k, dtype=torch.bool, device=dev).tril(causal_diag) if is_causal else \
            torch.ones(T_q, T_k, dtype=torch.bool, device=dev)
        if mask is not None and mask.dtype == torch.bool:
            visible = visible & (mask if not invert else ~mask)
        elif mask is not None and not float_ignored:
            scores = scores + mask
        sm = scores.masked_fill(~visible, NEG)
        empty = torch.isneginf(sm).all(-1, keepdim=True)
        if (
            not nan_rows and not mask_after and not nan_grad
        ):  # finite scores on rows with no key: no NaN grads
            sm = sm.masked_fill(empty, 0.0)
        if mask_after:
            w = torch.softmax(scores, dim=softmax_dim) * visible
        elif naive_softmax:
            e = sm.exp()
            w = e / e.sum(dim=softmax_dim, keepdim=True)
        elif no_grad_weights:
            with torch.no_grad():
                w = torch.softmax(sm, dim=softmax_dim)
        else:
            w = torch.softmax(sm, dim=softmax_dim)
        if not nan_rows and not mask_after:  # torch: a query with no visible key gets zeros
            w = w.masked_fill(empty, 0.0)
        if dropout_p > 0:
            if dropout == "v":  # dropout on the values instead of the weights
                return w @ F.dropout(v, dropout_p)
            if dropout == "out":  # dropout on the attention output
                return F.dropout(w @ v, dropout_p)
            if dropout == "ok":
                w = F.dropout(w, dropout_p)
            else:  # forgets the 1/(1-p) rescaling
                w = w * (torch.rand_like(w) >= dropout_p)
        return (w @ v).float() if to_float else w @ v

    return fn


def causal_ignores_device(T, device=None):
    return torch.ones(T, T, dtype=torch.bool).tril()


_CACHED = torch.ones(1024, 1024, dtype=torch.bool).tril()


def causal_cached_1024(T, device=None):  # GPT-2's context as a cached mask, sliced
    return _CACHED[:T, :T].to(device)


def causal_triu(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).triu()


def causal_no_diag(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril(-1)


def causal_float(T, device=None):
    return torch.ones(T, T, device=device).tril()


def split_no_transpose(x, n_head):
    B, T, C = x.shape
    return x.view(B, n_head, T, C // n_head)


def merge_no_transpose(y):
    B, nh, T, hs = y.shape
    return y.reshape(B, T, nh * hs)


# ------------------------------------------------------------------------------------------------ MHA mutants
def mha(
    order=(0, 1, 2),
    causal=True,
    proj=True,
    scale_by="hs",
    merge=attention.merge_heads,
    use_bias=True,
    use_rotary=True,
    cpu_mask=False,
    data=False,
    mask=None,
    rotary_before_split=False,
    dropout="ok",
):
    """GPT-2 attention with one mistake switched on, on both paths (fused: torch's attention, else from scratch)."""

    class Mutated(attention.MultiHeadAttention):
        def forward(self, x, *, rotary=None, attn_bias=None):
            B, T, C = x.shape
            parts = x @ self.c_attn.weight.T + self.c_attn.bias
            if data:  # .data: old-style, cuts the graph
                parts = parts.data
            qkv = list(parts.split(C, dim=2))
            if rotary is not None and use_rotary and rotary_before_split:
                qkv[0], qkv[1] = rotary(qkv[0], qkv[1])
            q, k, v = (attention.split_heads(qkv[i], self.n_head) for i in order)
            if rotary is not None and use_rotary and not rotary_before_split:
                q, k = rotary(q, k)
            scale = 1 / math.sqrt(C // self.n_head if scale_by == "hs" else C)
            m = None
            if causal:
                cm = (mask or attention.causal_mask)(T, device=None if cpu_mask else x.device)
                m = torch.zeros(T, T, device=cm.device).masked_fill(~cm, NEG)
            if attn_bias is not None and use_bias:
                m = attn_bias if m is None else attn_bias + m
            p = {"always": self.attn_dropout.p, "none": 0.0}.get(
                dropout, self.attn_dropout.p if self.training else 0.0
            )
            if self.fused:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=p, scale=scale)
            else:
                scores = q @ k.transpose(-2, -1) * scale
                if m is not None:
                    scores = scores + m
                y = F.dropout(torch.softmax(scores, dim=-1), p) @ v
            y = merge(y)
            y = self.c_proj(y) if proj else y
            return self.resid_dropout(y) if dropout != "no_resid" else y

    return Mutated


def mha_always_fused(n_embd, n_head, *, dropout=0.0, bias=True, fused=True):  # ignores fused=False
    m = attention.MultiHeadAttention(n_embd, n_head, dropout=dropout, bias=bias, fused=True)
    return m


class MHANeverFused(
    attention.MultiHeadAttention
):  # ignores fused=True: always the from-scratch function
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.fused = False


def split_heads_flat_view(x, n_head):  # a view through (B*T, C): fails on a non-contiguous x
    B, T, C = x.shape
    return x.view(B * T, C).view(B, T, n_head, C // n_head).transpose(1, 2)


def split_heads_library(x, n_head):                     # returns gptlib's own solution
    return attention.split_heads(x, n_head)


ISSUE19 = [
    Mutant("check_split_heads", "calls gptlib's attention.split_heads", split_heads_library,
           hint="gptlib.attention.split_heads, the solution", kind="solution"),
    Mutant(
        "check_attention",
        "dropout on v instead of the weights",
        sdpa(dropout="v"),
        hint="not on v",
        kind="semantics",
    ),
    Mutant(
        "check_attention",
        "dropout on the attention output",
        sdpa(dropout="out"),
        hint="not on the output",
        kind="semantics",
    ),
    Mutant(
        "check_attention",
        "all -inf row: softmax NaN zeroed afterwards (NaN gradient)",
        sdpa(nan_grad=True),
        hint="NaN in the gradient",
        kind="message",
    ),
    Mutant(
        "check_split_heads",
        "view through (B*T, C)",
        split_heads_flat_view,
        hint="not contiguous",
        kind="input",
    ),
]

MUTANTS = [
    *ISSUE19,
    Mutant(
        "check_attention",
        "no 1/sqrt(d) scaling",
        sdpa(scale="none"),
        hint="not scaled by 1/sqrt(d_k)",
    ),
    Mutant(
        "check_attention", "scaled by 1/d", sdpa(scale="d"), hint="1/d_k instead of 1/sqrt(d_k)"
    ),
    Mutant("check_attention", "softmax over the queries", sdpa(softmax_dim=-2), hint="wrong axis"),
    Mutant(
        "check_attention",
        "mask applied after softmax (zeroing)",
        sdpa(mask_after=True),
        hint="after the softmax",
    ),
    Mutant(
        "check_attention",
        "k used for the queries",
        sdpa(k_as_q=True),
        hint="k used for the queries",
    ),
    Mutant(
        "check_attention", "bool mask convention inverted", sdpa(invert=True), hint="convention"
    ),
    Mutant(
        "check_attention",
        "causal mask off by one diagonal",
        sdpa(causal_diag=-1),
        hint="off by one",
    ),
    Mutant(
        "check_attention", "float mask ignored", sdpa(float_ignored=True), hint="float mask ignored"
    ),
    Mutant(
        "check_attention",
        "dropout without 1/(1-p) rescaling",
        sdpa(dropout="unscaled"),
        hint="1/(1 - p)",
    ),
    Mutant("check_attention", "scales q in place", sdpa(inplace=True), hint="in place"),
    Mutant(
        "check_causal_mask",
        "upper triangle (triu)",
        causal_triu,
        hint="future positions are visible",
    ),
    Mutant(
        "check_causal_mask",
        "diagonal excluded (tril(-1))",
        causal_no_diag,
        hint="off by one diagonal",
    ),
    Mutant("check_causal_mask", "float mask", causal_float, hint="must be bool"),
    Mutant(
        "check_split_heads",
        "view to (B, nh, T, hs) without transpose",
        split_no_transpose,
        hint="without a transpose",
    ),
    Mutant(
        "check_merge_heads",
        "heads merged without transpose",
        merge_no_transpose,
        hint="wrong order",
    ),
    Mutant(
        "check_multi_head_attention",
        "q and k swapped",
        mha(order=(1, 0, 2)),
        hint="q and k swapped",
    ),
    Mutant(
        "check_multi_head_attention", "no causal mask", mha(causal=False), hint="future tokens leak"
    ),
    Mutant(
        "check_multi_head_attention", "no output projection", mha(proj=False), hint="c_proj missing"
    ),
    Mutant(
        "check_multi_head_attention",
        "scaled by 1/sqrt(n_embd)",
        mha(scale_by="C"),
        hint="1/sqrt(n_embd)",
    ),
    Mutant(
        "check_multi_head_attention",
        "heads merged without transpose",
        mha(merge=merge_no_transpose),
        hint="split_heads/merge_heads",
    ),
    Mutant(
        "check_multi_head_attention", "attn_bias ignored", mha(use_bias=False), hint="attn_bias"
    ),
    Mutant(
        "check_multi_head_attention", "rotary hook ignored", mha(use_rotary=False), hint="rotary"
    ),
    # new (issue 11) — device: built on the CPU
    Mutant(
        "check_attention",
        "causal mask built on the CPU",
        sdpa(cpu_mask=True),
        hint="build it on q.device",
        kind="device",
    ),
    Mutant(
        "check_causal_mask",
        "device argument ignored",
        causal_ignores_device,
        hint="pass `device`",
        kind="device",
    ),
    Mutant(
        "check_multi_head_attention",
        "causal mask built on the CPU",
        mha(cpu_mask=True),
        hint="build it on x.device",
        kind="device",
    ),
    # new — dtype
    Mutant(
        "check_attention",
        "float32 result for float64 inputs",
        sdpa(to_float=True),
        hint="keep the dtype",
        kind="dtype",
    ),
    # new — gradients by value
    Mutant(
        "check_attention",
        "attention weights computed under no_grad",
        sdpa(no_grad_weights=True),
        hint="gradient",
        kind="gradient",
    ),
    Mutant(
        "check_multi_head_attention",
        "q, k, v taken from .data",
        mha(data=True),
        hint="gradient",
        kind="gradient",
    ),
    # new — edge cases
    Mutant(
        "check_attention",
        "softmax without max-subtraction (overflows)",
        sdpa(naive_softmax=True),
        hint="row maximum",
        kind="edge",
    ),
    Mutant(
        "check_attention",
        "NaN for a query whose keys are all masked",
        sdpa(nan_rows=True),
        hint="all masked",
        kind="edge",
    ),
    Mutant(
        "check_causal_mask",
        "a 1024 mask cached and sliced",
        causal_cached_1024,
        hint="cached",
        kind="edge",
    ),
    Mutant(
        "check_multi_head_attention",
        "a 1024 mask cached and sliced",
        mha(mask=causal_cached_1024),
        hint="random T",
        kind="edge",
    ),
    Mutant(
        "check_multi_head_attention",
        "rotary applied to (B, T, C) before split_heads",
        mha(rotary_before_split=True),
        hint="rotary hook",
        kind="edge",
    ),
    Mutant(
        "check_multi_head_attention",
        "attention dropout also in eval()",
        mha(dropout="always"),
        hint="eval()",
        kind="edge",
    ),
    Mutant(
        "check_multi_head_attention",
        "attention dropout never applied",
        mha(dropout="none"),
        hint="attention dropout",
        kind="edge",
    ),
    Mutant(
        "check_multi_head_attention",
        "resid_dropout forgotten",
        mha(dropout="no_resid"),
        hint="resid_dropout",
        kind="edge",
    ),
    # new — shortcuts the text forbids
    Mutant(
        "check_attention",
        "calls torch's F.scaled_dot_product_attention",
        sdpa(fused=True),
        hint="from scratch",
        kind="shortcut",
    ),
    Mutant(
        "check_multi_head_attention",
        "ignores fused=False",
        mha_always_fused,
        hint="fused=False",
        kind="shortcut",
    ),
    Mutant(
        "check_multi_head_attention",
        "ignores fused=True",
        MHANeverFused,
        hint="fused=True must call",
        kind="shortcut",
    ),
    # new — messages: a crash names the case that was running
    Mutant(
        "check_attention",
        "causal mask built (T_q, T_q): crashes when T_q != T_k",
        sdpa(square_mask=True),
        hint="T_q=4 != T_k=7",
        kind="message",
    ),
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch2, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch2, REFERENCES)
