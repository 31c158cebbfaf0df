"""Checks for Chapter 2 (attention). Hand-written; the references are torch and gptlib.attention.

Each check runs the learner's code on fault-revealing inputs (distinct sizes B=2, nh=3, T=5, hs=4, T_q != T_k,
unit-scale random values, T=1, one head) and, when the result is wrong, compares it with the outputs of
common mistakes so the message can name the likely one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gptlib.attention import MultiHeadAttention as _RefMHA
from gptlib.attention import merge_heads as _ref_merge
from gptlib.attention import split_heads as _ref_split
from gptlib.checks import checker, close, unchanged

__all__ = ["check_causal_mask", "check_attention", "check_split_heads", "check_merge_heads",
           "check_multi_head_attention"]

NEG = float("-inf")


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _diagnose(got, candidates: dict[str, torch.Tensor], default: str) -> str:
    """The hint of the first known mistake whose output equals `got`, else `default`."""
    if isinstance(got, torch.Tensor):
        for hint, out in candidates.items():
            if out.shape == got.shape and torch.allclose(got.detach().double(), out.double(), atol=1e-5, rtol=1e-4,
                                                         equal_nan=True):
                return hint
    return default


# ----------------------------------------------------------------------------------------------------- causal_mask
def check_causal_mask(fn) -> None:
    """`causal_mask(T, device=None) -> (T, T) bool`, True on and below the diagonal."""
    with checker("causal_mask") as c:
        for T in (5, 1, 7):
            got = fn(T)
            want = torch.ones(T, T, dtype=torch.bool).tril()
            c.expect(isinstance(got, torch.Tensor), f"T={T}", f"return a torch.Tensor, got {type(got).__name__}")
            c.expect(tuple(got.shape) == (T, T), f"T={T}", f"shape {tuple(got.shape)}, expected ({T}, {T})")
            c.expect(got.dtype == torch.bool, f"T={T}",
                     f"dtype {got.dtype}: the mask must be bool (True = may attend), like torch's attn_mask")
            if T > 1:
                c.expect(not torch.equal(got, ~want), f"T={T}",
                         "True/False convention inverted: True must mean 'may attend' (torch's convention)")
                c.expect(not torch.equal(got, want.T), f"T={T}",
                         "the upper triangle is True: future positions are visible (use tril, not triu)")
                c.expect(not got.triu(1).any(), f"T={T}",
                         "the mask lets position t see later positions: only keys 0..t may be True (tril)")
            c.expect(bool(got.diagonal().all()), f"T={T}",
                     "the diagonal is False: off by one diagonal — a position must attend to itself (tril(0), "
                     "not tril(-1))")
            c.expect(torch.equal(got, want), f"T={T}", "expected torch.ones(T, T, dtype=torch.bool).tril()")
        got = fn(4, device="cpu")
        c.expect(isinstance(got, torch.Tensor) and got.device.type == "cpu", "device='cpu'",
                 "pass `device` on to the tensor constructor")


# ------------------------------------------------------------------------------------------------------- attention
def _mistakes(q, k, v, mask=None, is_causal=False) -> dict[str, torch.Tensor]:
    """Outputs of common mistakes on these inputs, keyed by the hint that names them."""
    d = q.size(-1)
    T_q, T_k = q.size(-2), k.size(-2)
    vis = torch.ones(T_q, T_k, dtype=torch.bool).tril() if is_causal else torch.ones(T_q, T_k, dtype=torch.bool)
    bool_mask = mask if mask is not None and mask.dtype == torch.bool else None
    add = mask if mask is not None and mask.dtype != torch.bool else 0.0
    if bool_mask is not None:
        vis = vis & bool_mask

    def attend(scores, visible=vis, dim=-1):
        return torch.softmax((scores + add).masked_fill(~visible, NEG), dim=dim) @ v

    qk = q @ k.transpose(-2, -1)
    out = {
        "scores not scaled by 1/sqrt(d_k)?": attend(qk),
        "scores scaled by 1/d_k instead of 1/sqrt(d_k)?": attend(qk / d),
        "scores multiplied by sqrt(d_k) instead of divided?": attend(qk * math.sqrt(d)),
        "softmax over the wrong axis? normalise over the keys (dim=-1), not the queries": attend(qk / math.sqrt(d),
                                                                                                  dim=-2),
        "mask applied after the softmax (zeroing weights)? blocked scores must be -inf BEFORE the softmax":
            (torch.softmax(qk / math.sqrt(d) + add, dim=-1) * vis) @ v,
    }
    if T_q == T_k:
        out["k used for the queries? scores are q @ k.transpose(-2, -1) (queries in rows)"] = attend(
            k @ q.transpose(-2, -1) / math.sqrt(d))
    if bool_mask is not None:
        inv = (torch.ones(T_q, T_k, dtype=torch.bool).tril() if is_causal else True) & ~bool_mask
        if inv.any(-1).all():
            out["True/False convention of the bool mask inverted? True = may attend (fill ~mask with -inf)"] = \
                attend(qk / math.sqrt(d), visible=inv)
    if is_causal and T_q > 1:
        out["causal mask off by one diagonal? query i sees keys 0..i (tril(0), itself included)"] = attend(
            qk / math.sqrt(d), visible=torch.ones(T_q, T_k, dtype=torch.bool).tril(-1))
        out["causal mask shifted the other way? query i sees keys 0..i, not 0..i+1"] = attend(
            qk / math.sqrt(d), visible=torch.ones(T_q, T_k, dtype=torch.bool).tril(1))
        out["causal mask transposed? query i sees keys 0..i: keep the lower triangle (tril)"] = attend(
            qk / math.sqrt(d), visible=torch.ones(T_q, T_k, dtype=torch.bool).triu())
    if mask is not None and mask.dtype != torch.bool:
        out["float mask ignored? a float mask is ADDED to the scores"] = torch.softmax(
            (qk / math.sqrt(d)).masked_fill(~vis, NEG), dim=-1) @ v
    return out


def check_attention(fn) -> None:
    """`fn(q, k, v, mask=None, is_causal=False, dropout_p=0.0)` equals torch's F.scaled_dot_product_attention."""
    generic = "compare with softmax(q @ kᵀ / sqrt(d_k) + mask) @ v step by step"
    with checker("scaled_dot_product_attention") as c:
        B, nh, T, hs, dv = 2, 3, 5, 4, 6
        q, k, v = _randn(B, nh, T, hs, seed=1), _randn(B, nh, T, hs, seed=2), _randn(B, nh, T, dv, seed=3)
        bool_mask = torch.rand(T, T, generator=torch.Generator().manual_seed(4)) > 0.4
        bool_mask[:, 0], bool_mask[:, 1] = True, False  # every query sees a key and misses one
        float_mask = _randn(B, 1, T, T, seed=5)
        cases = [
            ("B=2, nh=3, T=5, hs=4, d_v=6", (q, k, v), {}),
            ("T_q=4 != T_k=7", (q[..., :4, :], _randn(B, nh, 7, hs, seed=6), _randn(B, nh, 7, dv, seed=7)), {}),
            ("is_causal=True", (q, k, v), {"is_causal": True}),
            ("bool mask (True = may attend), shape (T, T)", (q, k, v), {"mask": bool_mask}),
            ("float mask added to the scores, shape (B, 1, T, T)", (q, k, v), {"mask": float_mask}),
            ("is_causal=True with T_q=4 != T_k=7 (top-left aligned like torch)",
             (q[..., :4, :], _randn(B, nh, 7, hs, seed=6), _randn(B, nh, 7, dv, seed=7)), {"is_causal": True}),
            ("T=1", (q[..., :1, :], k[..., :1, :], v[..., :1, :]), {"is_causal": True}),
            ("no batch/head dims: (T, d)", (q[0, 0], k[0, 0], v[0, 0]), {"is_causal": True}),
        ]
        for case, (qq, kk, vv), kw in cases:
            want = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=kw.get("mask"),
                                                  is_causal=kw.get("is_causal", False))
            got, same = unchanged(fn, qq, kk, vv, **kw)
            hint = _diagnose(got, _mistakes(qq, kk, vv, kw.get("mask"), kw.get("is_causal", False)), generic)
            c.close(got, want, case, hint)
            c.expect(same, case, "your function modified q, k, v or the mask in place: use out-of-place ops "
                                 "(masked_fill, not masked_fill_)")
        # dropout: with v = identity the output IS the (dropped) weight matrix
        eye = torch.eye(T).expand(B, nh, T, T)
        w = F.scaled_dot_product_attention(q, k, eye)
        with torch.random.fork_rng():  # leave the caller's random stream alone
            torch.manual_seed(0)
            got = fn(q, k, eye, dropout_p=0.5)
        c.expect(isinstance(got, torch.Tensor) and got.shape == w.shape, "dropout_p=0.5",
                 f"expected a tensor of shape {tuple(w.shape)}")
        kept = got != 0
        c.expect(0 < int(kept.sum()) < kept.numel(), "dropout_p=0.5",
                 "dropout_p > 0 must zero some attention weights (F.dropout(weights, p=dropout_p))")
        c.close(got[kept], w[kept] / 0.5, "dropout_p=0.5",
                "kept weights must be scaled by 1/(1 - p) (F.dropout does it), and dropout acts on the weights")
        c.close(fn(q, k, v, dropout_p=0.0), F.scaled_dot_product_attention(q, k, v), "dropout_p=0.0",
                "dropout_p=0 must leave the result deterministic and unchanged")


# -------------------------------------------------------------------------------------------- split / merge heads
def check_split_heads(fn) -> None:
    """`split_heads(x, n_head)`: (B, T, C) -> (B, n_head, T, C // n_head)."""
    with checker("split_heads") as c:
        for B, T, C, nh in ((2, 5, 12, 3), (2, 5, 12, 1), (3, 1, 8, 2)):
            x = _randn(B, T, C, seed=10 + nh)
            got, same = unchanged(fn, x, nh)
            want = _ref_split(x, nh)
            hint = _diagnose(got, {
                "reshaped straight to (B, nh, T, hs) without a transpose? view as (B, T, nh, hs), then "
                "transpose(1, 2)": x.reshape(B, nh, T, C // nh),
                "heads take interleaved channels? head h owns channels h*hs..(h+1)*hs-1: view(B, T, nh, hs)":
                    x.view(B, T, C // nh, nh).permute(0, 3, 1, 2),
            }, "expected x.view(B, T, n_head, C // n_head).transpose(1, 2)")
            c.close(got, want, f"B={B}, T={T}, C={C}, n_head={nh}", hint)
            c.expect(same, f"n_head={nh}", "split_heads must not modify x in place")


def check_merge_heads(fn) -> None:
    """`merge_heads(y)`: (B, n_head, T, hs) -> (B, T, n_head * hs), the inverse of split_heads."""
    with checker("merge_heads") as c:
        for B, nh, T, hs in ((2, 3, 5, 4), (2, 1, 5, 4), (3, 2, 1, 4)):
            y = _randn(B, nh, T, hs, seed=20 + nh)
            got, same = unchanged(fn, y)
            want = _ref_merge(y)
            hint = _diagnose(got, {
                "heads merged in the wrong order (a view/reshape without transpose)? transpose(1, 2) back to "
                "(B, T, nh, hs) first, then .contiguous().view(B, T, C)": y.reshape(B, T, nh * hs),
                "channels interleaved across heads? head h must land in channels h*hs..(h+1)*hs-1":
                    y.permute(0, 2, 3, 1).reshape(B, T, nh * hs),
            }, "expected y.transpose(1, 2).contiguous().view(B, T, n_head * hs)")
            c.close(got, want, f"B={B}, n_head={nh}, T={T}, hs={hs}", hint)
            c.expect(same, f"n_head={nh}", "merge_heads must not modify y in place")
        x = _randn(2, 5, 12, seed=30)
        c.close(fn(_ref_split(x, 3)), x, "merge_heads(split_heads(x, 3)) == x",
                "merge_heads must undo split_heads exactly")


# ------------------------------------------------------------------------------------------- MultiHeadAttention
def _reference(n_embd: int, n_head: int, seed: int) -> _RefMHA:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ref = _RefMHA(n_embd, n_head, fused=True)
        with torch.no_grad():  # non-trivial biases (PyTorch's init already gives non-trivial weights)
            ref.c_attn.bias.normal_(0, 0.5)
            ref.c_proj.bias.normal_(0, 0.5)
    return ref.eval()


def _variant(ref: _RefMHA, edit) -> _RefMHA:
    """A copy of the reference whose weights are edited to reproduce a mistake."""
    m = _RefMHA(ref.n_embd, ref.n_head).eval()
    m.load_state_dict(ref.state_dict())
    with torch.no_grad():
        edit(m)
    return m


def _mha_mistakes(ref: _RefMHA, x: torch.Tensor) -> dict[str, torch.Tensor]:
    C, nh = ref.n_embd, ref.n_head

    def permute_qkv(order):
        def edit(m):
            w, b = m.c_attn.weight.view(3, C, C).clone(), m.c_attn.bias.view(3, C).clone()
            m.c_attn.weight.copy_(w[list(order)].reshape(3 * C, C))
            m.c_attn.bias.copy_(b[list(order)].reshape(3 * C))
        return edit

    def scale_q(f):
        def edit(m):
            m.c_attn.weight[:C] *= f
            m.c_attn.bias[:C] *= f
        return edit

    def no_proj(m):
        m.c_proj.weight.copy_(torch.eye(C))
        m.c_proj.bias.zero_()

    with torch.no_grad():
        out = {
            "q and k swapped? c_attn's output splits into q, k, v in that order": _variant(ref, permute_qkv((1, 0, 2)))(x),
            "q and v swapped? c_attn's output splits into q, k, v in that order": _variant(ref, permute_qkv((2, 1, 0)))(x),
            "k and v swapped? c_attn's output splits into q, k, v in that order": _variant(ref, permute_qkv((0, 2, 1)))(x),
            "scores scaled by 1/sqrt(n_embd)? scale by 1/sqrt(head size hs = n_embd // n_head)":
                _variant(ref, scale_q(1 / math.sqrt(nh)))(x),
            "scores not scaled by 1/sqrt(hs)?": _variant(ref, scale_q(math.sqrt(C // nh)))(x),
            "output projection c_proj missing?": _variant(ref, no_proj)(x),
        }
    return out


def check_multi_head_attention(cls) -> None:
    """`cls(n_embd, n_head, *, dropout=0.0, bias=True, fused=...)`: GPT-2 causal self-attention, equal to the
    reference (same weights), causal, with the rotary and attn_bias hooks."""
    generic = ("compare step by step: c_attn -> split q, k, v -> split_heads -> attention (causal) -> "
               "merge_heads -> c_proj")
    with checker("MultiHeadAttention") as c:
        for n_embd, nh, T in ((12, 1, 5), (12, 3, 5), (12, 3, 1)):
            ref = _reference(n_embd, nh, seed=nh)
            m = cls(n_embd, nh)
            names = {k: tuple(p.shape) for k, p in m.state_dict().items()}
            want_names = {k: tuple(p.shape) for k, p in ref.state_dict().items()}
            c.expect(names == want_names, f"n_embd={n_embd}, n_head={nh}",
                     f"parameters {names} should be {want_names}: GPT-2 names, c_attn = Linear(C, 3C) "
                     "(fused q, k, v) and c_proj = Linear(C, C)")
            m.load_state_dict(ref.state_dict())
            m.eval()
            x = _randn(2, T, n_embd, seed=40 + nh)
            with torch.no_grad():
                want = ref(x)
                got, same = unchanged(m, x)
            case = f"B=2, T={T}, n_embd={n_embd}, n_head={nh}"
            c.expect(same, case, "forward must not modify x in place")
            if T > 1:  # causality: changing the last token must not change any earlier output
                x2 = x.clone()
                x2[:, -1] = _randn(2, n_embd, seed=99)
                with torch.no_grad():
                    got2 = m(x2)
                c.expect(isinstance(got2, torch.Tensor) and isinstance(got, torch.Tensor)
                         and got.shape == got2.shape and torch.allclose(got[:, :-1], got2[:, :-1], atol=1e-6),
                         case + ", changing the last token",
                         "future tokens leak into earlier positions: the causal mask is missing or wrong "
                         "(is_causal=True, or -inf above the diagonal before the softmax)"
                         + ("; or, since one head passed, split_heads/merge_heads mix positions "
                            "(transpose(1, 2) back to (B, T, nh, hs) before the view)" if nh > 1 else ""))
            hint = _diagnose(got, _mha_mistakes(ref, x), generic)
            if nh > 1 and T > 1 and hint == generic:
                hint = ("right with one head but wrong with several? check split_heads/merge_heads: "
                        "view (B, T, nh, hs) + transpose(1, 2), and transpose back before merging")
            c.close(got, want, case, hint)
        # the hooks (Chapter 3 plugs RoPE and ALiBi in here)
        ref = _reference(12, 3, seed=3)
        m = cls(12, 3)
        m.load_state_dict(ref.state_dict())
        m.eval()
        x = _randn(2, 5, 12, seed=50)
        angle = _randn(5, 2, seed=51)

        def rotary(q, k):  # a fixed rotation of channel pairs, depending on the position
            def rot(t):
                t1, t2 = t[..., 0::2], t[..., 1::2]
                cos, sin = angle.cos()[:, :1], angle.sin()[:, :1]
                return torch.stack((t1 * cos - t2 * sin, t1 * sin + t2 * cos), dim=-1).flatten(-2)
            return rot(q), rot(k)

        bias = _randn(3, 5, 5, seed=52)
        with torch.no_grad():
            c.close(m(x, rotary=rotary), ref(x, rotary=rotary), "rotary hook",
                    "rotary(q, k) must be applied to q and k of shape (B, nh, T, hs) before the scores")
            c.close(m(x, attn_bias=bias), ref(x, attn_bias=bias), "attn_bias hook, shape (nh, T, T)",
                    "attn_bias must be ADDED to the scores, on top of the causal mask")
        for fused in (False, True):
            try:
                mf = cls(12, 3, fused=fused)
            except TypeError:
                c.expect(False, f"fused={fused}", "the constructor must accept the keyword fused=True/False")
            mf.load_state_dict(ref.state_dict())
            mf.eval()
            with torch.no_grad():
                c.close(mf(x), ref(x), f"fused={fused}", "the fused and from-scratch paths must agree")
