"""The Chapter 2 checks pass on the references, fail on a stub, and fail on realistic learner mistakes."""
import math

import torch
import torch.nn.functional as F
from mutation import Mutant, check_tests

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
         float_ignored=False, dropout="ok", inplace=False):
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
        T_q, T_k = scores.shape[-2:]
        visible = torch.ones(T_q, T_k, dtype=torch.bool).tril(causal_diag) if is_causal else \
            torch.ones(T_q, T_k, dtype=torch.bool)
        if mask is not None and mask.dtype == torch.bool:
            visible = visible & (mask if not invert else ~mask)
        elif mask is not None and not float_ignored:
            scores = scores + mask
        if mask_after:
            w = torch.softmax(scores, dim=softmax_dim) * visible
        else:
            w = torch.softmax(scores.masked_fill(~visible, NEG), dim=softmax_dim)
        if dropout_p > 0:
            if dropout == "ok":
                w = F.dropout(w, dropout_p)
            else:  # forgets the 1/(1-p) rescaling
                w = w * (torch.rand_like(w) >= dropout_p)
        return w @ v
    return fn


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
def mha(order=(0, 1, 2), causal=True, proj=True, scale_by="hs", merge=attention.merge_heads, use_bias=True,
        use_rotary=True):
    class Mutated(attention.MultiHeadAttention):
        def forward(self, x, *, rotary=None, attn_bias=None):
            B, T, C = x.shape
            parts = x @ self.c_attn.weight.T + self.c_attn.bias
            qkv = parts.split(C, dim=2)
            q, k, v = (attention.split_heads(qkv[i], self.n_head) for i in order)
            if rotary is not None and use_rotary:
                q, k = rotary(q, k)
            hs = C // self.n_head
            scores = q @ k.transpose(-2, -1) / math.sqrt(hs if scale_by == "hs" else C)
            if attn_bias is not None and use_bias:
                scores = scores + attn_bias
            if causal:
                scores = scores.masked_fill(~attention.causal_mask(T), NEG)
            y = merge(torch.softmax(scores, dim=-1) @ v)
            return self.c_proj(y) if proj else y
    return Mutated


MUTANTS = [
    Mutant("check_attention", "no 1/sqrt(d) scaling", sdpa(scale="none"), hint="not scaled by 1/sqrt(d_k)"),
    Mutant("check_attention", "scaled by 1/d", sdpa(scale="d"), hint="1/d_k instead of 1/sqrt(d_k)"),
    Mutant("check_attention", "softmax over the queries", sdpa(softmax_dim=-2), hint="wrong axis"),
    Mutant("check_attention", "mask applied after softmax (zeroing)", sdpa(mask_after=True),
           hint="after the softmax"),
    Mutant("check_attention", "k used for the queries", sdpa(k_as_q=True), hint="k used for the queries"),
    Mutant("check_attention", "bool mask convention inverted", sdpa(invert=True), hint="convention"),
    Mutant("check_attention", "causal mask off by one diagonal", sdpa(causal_diag=-1), hint="off by one"),
    Mutant("check_attention", "float mask ignored", sdpa(float_ignored=True), hint="float mask ignored"),
    Mutant("check_attention", "dropout without 1/(1-p) rescaling", sdpa(dropout="unscaled"), hint="1/(1 - p)"),
    Mutant("check_attention", "scales q in place", sdpa(inplace=True), hint="in place"),
    Mutant("check_causal_mask", "upper triangle (triu)", causal_triu, hint="future positions are visible"),
    Mutant("check_causal_mask", "diagonal excluded (tril(-1))", causal_no_diag, hint="off by one diagonal"),
    Mutant("check_causal_mask", "float mask", causal_float, hint="must be bool"),
    Mutant("check_split_heads", "view to (B, nh, T, hs) without transpose", split_no_transpose,
           hint="without a transpose"),
    Mutant("check_merge_heads", "heads merged without transpose", merge_no_transpose, hint="wrong order"),
    Mutant("check_multi_head_attention", "q and k swapped", mha(order=(1, 0, 2)), hint="q and k swapped"),
    Mutant("check_multi_head_attention", "no causal mask", mha(causal=False), hint="future tokens leak"),
    Mutant("check_multi_head_attention", "no output projection", mha(proj=False), hint="c_proj missing"),
    Mutant("check_multi_head_attention", "scaled by 1/sqrt(n_embd)", mha(scale_by="C"), hint="1/sqrt(n_embd)"),
    Mutant("check_multi_head_attention", "heads merged without transpose", mha(merge=merge_no_transpose),
           hint="split_heads/merge_heads"),
    Mutant("check_multi_head_attention", "attn_bias ignored", mha(use_bias=False), hint="attn_bias"),
    Mutant("check_multi_head_attention", "rotary hook ignored", mha(use_rotary=False), hint="rotary"),
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch2, REFERENCES, MUTANTS)
