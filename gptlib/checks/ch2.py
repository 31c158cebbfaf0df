"""Checks for Chapter 2 (attention). Hand-written; the references are torch and gptlib.attention.

Each check runs the learner's code on fault-revealing inputs (distinct sizes B=2, nh=3, T=5, hs=4, T_q != T_k,
unit-scale random values, T=1, one head), on random sizes (fresh each run, beyond any cached mask), on large
scores, on a query whose keys are all masked, in float64, with gradients, and on another device (meta, or CUDA
when present). When a result is wrong, it is compared with the outputs of common mistakes so the message can
name the likely one.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from gptlib.attention import MultiHeadAttention as _RefMHA
from gptlib.attention import causal_mask as _ref_causal
from gptlib.attention import merge_heads as _ref_merge
from gptlib.attention import scaled_dot_product_attention as _ref_sdpa
from gptlib.attention import split_heads as _ref_split
from gptlib.checks import checker, forbid

__all__ = ["check_causal_mask", "check_attention", "check_split_heads", "check_merge_heads",
           "check_multi_head_attention"]

NEG = float("-inf")
_SDPA = ("scaled_dot_product_attention", "multi_head_attention_forward")


def _randn(*shape: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------------------- causal_mask
def check_causal_mask(fn) -> None:
    """`causal_mask(T, device=None) -> (T, T) bool`, True on and below the diagonal."""
    with checker("causal_mask", fn, device_from="device", solution=_ref_causal) as c:
        sizes = (5, 1, 7, c.rng.randint(2, 64), c.rng.randint(1025, 1500))   # random sizes, beyond cached masks
        for T in sizes:
            case = f"T={T}" + (f" (random, seed {c.seed})" if T not in (5, 1, 7) else "")
            got = c.call(case, fn, T)
            want = torch.ones(T, T, dtype=torch.bool).tril()
            c.expect(isinstance(got, torch.Tensor), case, "return a torch.Tensor, got "
            f"{type(got).__name__}")
            c.expect(tuple(got.shape) == (T, T), case, f"shape {tuple(got.shape)}, expected ({T}, "
            f"{T}): a mask "
                                                       "cached at a fixed size? build it for this "
                                                       "T")
            c.expect(got.dtype == torch.bool, case,
                     f"dtype {got.dtype}: the mask must be bool (True = may attend), like torch's "
                     "attn_mask")
            if T > 1:
                c.expect(not torch.equal(got, ~want), case,
                         "True/False convention inverted: True must mean 'may attend' (torch's "
                         "convention)")
                c.expect(not torch.equal(got, want.T), case,
                         "the upper triangle is True: future positions are visible (use tril, not "
                         "triu)")
                c.expect(not got.triu(1).any(), case,
                         "the mask lets position t see later positions: only keys 0..t may be True "
                         "(tril)")
            c.expect(bool(got.diagonal().all()), case,
                     "the diagonal is False: off by one diagonal — a position must attend to "
                     "itself (tril(0), "
                     "not tril(-1))")
            c.expect(torch.equal(got, want), case, "expected torch.ones(T, T, "
            "dtype=torch.bool).tril()")
        got = c.call("device='cpu'", fn, 4, device="cpu")
        c.expect(isinstance(got, torch.Tensor) and got.device.type == "cpu", "device='cpu'",
                 "pass `device` on to the tensor constructor")
        case = f"causal_mask(6, device={c.device!r})"
        got = c.device_run(case, fn, 6, device=c.device)
        if got is not None:
            c.expect(isinstance(got, torch.Tensor) and got.device.type == c.device, case,
                     f"the mask is on {getattr(got, 'device', '?')}: pass `device` on to the "
                     "tensor constructor "
                     "(torch.ones(T, T, dtype=torch.bool, device=device))")
            c.close(got, torch.ones(6, 6, dtype=torch.bool, device=c.device).tril(), case, "expected a tril mask")


# ------------------------------------------------------------------------------------------------------- attention
def _mistakes(q, k, v, mask=None, is_causal=False, got=None):
    """Outputs of common mistakes on these inputs, keyed by the hint that names them (computed on failure only).
    A query that sees no key gets zeros (torch's convention), or NaN when `got` has NaN (the learner did not zero)."""
    def build():
        nan = isinstance(got, torch.Tensor) and got.device.type != "meta" and bool(torch.isnan(got).any())
        d = q.size(-1)
        T_q, T_k = q.size(-2), k.size(-2)
        tri = torch.ones(T_q, T_k, dtype=torch.bool).tril()
        vis = tri if is_causal else torch.ones(T_q, T_k, dtype=torch.bool)
        bool_mask = mask if mask is not None and mask.dtype == torch.bool else None
        add = mask if mask is not None and mask.dtype != torch.bool else 0.0
        if bool_mask is not None:
            vis = vis & bool_mask

        def attend(scores, visible=vis, dim=-1):
            s = (scores + add).masked_fill(~visible, NEG)
            w = torch.softmax(s, dim=dim)
            return (w if nan else w.masked_fill(torch.isneginf(s).all(dim, keepdim=True), 0.0)) @ v

        qk = q @ k.transpose(-2, -1)
        s = qk / math.sqrt(d)
        out = {}
        if mask is not None and nan:
            ws = torch.softmax((s + add).masked_fill(~vis, NEG), dim=-1)
            out["a query whose keys are all masked: torch returns zeros for that row, not NaN — "
            "after the softmax, "
                "zero the rows where every score is -inf "
                "(weights.masked_fill(torch.isneginf(scores).all(-1, "
                "keepdim=True), 0))"] = ws @ v
        e = torch.exp((s + add).masked_fill(~vis, NEG))
        out["NaN/inf with large scores: a softmax without subtracting the row maximum overflows "
        "(exp(100) = inf in "
            "float32); use torch.softmax, or subtract scores.amax(-1, keepdim=True) first"] = \
            (e / e.sum(-1, keepdim=True)) @ v
        out.update({
            "scores not scaled by 1/sqrt(d_k)?": attend(qk),
            "scores scaled by 1/d_k instead of 1/sqrt(d_k)?": attend(qk / d),
            "scores multiplied by sqrt(d_k) instead of divided?": attend(qk * math.sqrt(d)),
            "softmax over the wrong axis? normalise over the keys (dim=-1), not the "
            "queries": attend(s, dim=-2),
            "mask applied after the softmax (zeroing weights)? blocked scores must be -inf BEFORE "
            "the softmax":
                (torch.softmax(s + add, dim=-1) * vis) @ v,
        })
        if T_q == T_k:
            out["k used for the queries? scores are q @ k.transpose(-2, -1) (queries in "
            "rows)"] = attend(
                k @ q.transpose(-2, -1) / math.sqrt(d))
        if bool_mask is not None:
            inv = (tri if is_causal else True) & ~bool_mask
            if inv.any(-1).all():
                out["True/False convention of the bool mask inverted? True = may attend (fill "
                "~mask with -inf)"] = \
                    attend(s, visible=inv)
        if is_causal and T_q > 1:
            ones = torch.ones(T_q, T_k, dtype=torch.bool)
            out["causal mask off by one diagonal? query i sees keys 0..i (tril(0), itself "
            "included)"] = attend(
                s, visible=ones.tril(-1))
            out["causal mask shifted the other way? query i sees keys 0..i, not 0..i+1"] = attend(
                s, visible=ones.tril(1))
            out["causal mask transposed? query i sees keys 0..i: keep the lower triangle "
            "(tril)"] = attend(
                s, visible=ones.triu())
            if T_q != T_k:
                out["causal mask aligned bottom-right? like torch, query i sees keys 0..i "
                "(top-left aligned)"] = \
                    attend(s, visible=ones.tril(T_k - T_q))
        if mask is not None and mask.dtype != torch.bool:
            out["float mask ignored? a float mask is ADDED to the scores"] = torch.softmax(
                s.masked_fill(~vis, NEG), dim=-1) @ v
        return out
    return build


def check_attention(fn) -> None:
    """`fn(q, k, v, mask=None, is_causal=False, dropout_p=0.0)` equals torch's F.scaled_dot_product_attention."""
    generic = "compare with softmax(q @ kᵀ / sqrt(d_k) + mask) @ v step by step"
    shortcut = ("write attention from scratch: the check compares with torch's "
        "F.scaled_dot_product_attention")
    with checker("scaled_dot_product_attention", fn, device_from="q",
                 solution=_ref_sdpa) as c:
        B, nh, T, hs, dv = 2, 3, 5, 4, 6
        q, k, v = _randn(B, nh, T, hs, seed=1), _randn(B, nh, T, hs, seed=2), _randn(B, nh, T, dv, seed=3)
        bool_mask = torch.rand(T, T, generator=torch.Generator().manual_seed(4)) > 0.4
        bool_mask[:, 0], bool_mask[:, 1] = True, False  # every query sees a key and misses one
        float_mask = _randn(B, 1, T, T, seed=5)
        empty_bool = bool_mask.clone()
        empty_bool[2] = False                           # query 2 may see no key at all
        empty_float = _randn(T, T, seed=8).masked_fill(~empty_bool, NEG)
        k7, v7 = _randn(B, nh, 7, hs, seed=6), _randn(B, nh, 7, dv, seed=7)
        g = c.gen()
        rB, rh, rTq, rTk, rd, rdv = (c.rng.randint(1, 3), c.rng.randint(1, 4), c.rng.randint(2, 40),
                                     c.rng.randint(2, 40), c.rng.randint(2, 16), c.rng.randint(1, 9))
        rq, rk, rv = (torch.randn(rB, rh, t, d, generator=g) for t, d in ((rTq, rd), (rTk, rd), (rTk, rdv)))
        cases: list[tuple[str, tuple[torch.Tensor, ...], dict[str, Any]]] = [
            ("B=2, nh=3, T=5, hs=4, d_v=6", (q, k, v), {}),
            ("T_q=4 != T_k=7", (q[..., :4, :], k7, v7), {}),
            ("is_causal=True", (q, k, v), {"is_causal": True}),
            ("bool mask (True = may attend), shape (T, T)", (q, k, v), {"mask": bool_mask}),
            ("float mask added to the scores, shape (B, 1, T, T)", (q, k, v), {"mask": float_mask}),
            ("is_causal=True with T_q=4 != T_k=7 (top-left aligned like "
            "torch)", (q[..., :4, :], k7, v7),
             {"is_causal": True}),
            ("T=1", (q[..., :1, :], k[..., :1, :], v[..., :1, :]), {"is_causal": True}),
            ("no batch/head dims: (T, d)", (q[0, 0], k[0, 0], v[0, 0]), {"is_causal": True}),
            ("bool mask whose row 2 is all False (a query that may see no "
            "key)", (q, k, v), {"mask": empty_bool}),
            ("float mask whose row 2 is all -inf (a query that may see no "
            "key)", (q, k, v), {"mask": empty_float}),
            ("large scores (|q·k|/√d up to ~1000), "
            "is_causal=True", (30 * q, 30 * k, v), {"is_causal": True}),
            ("float64 q, k, v, "
            "is_causal=True", (q.double(), k.double(), v.double()), {"is_causal": True}),
            (f"random sizes B={rB}, nh={rh}, T_q={rTq}, T_k={rTk}, d={rd}, d_v={rdv}, "
            "is_causal=True "
             f"(seed {c.seed})", (rq, rk, rv), {"is_causal": True}),
        ]
        for case, (qq, kk, vv), kw in cases:
            want = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=kw.get("mask"),
                                                  is_causal=kw.get("is_causal", False))
            with forbid(_SDPA, shortcut):
                got = c.call(case, fn, qq, kk, vv, **kw, inplace="your function modified q, k, v "
                    "or the mask in "
                             "place: use out-of-place ops (masked_fill, not masked_fill_)")
            c.close(got, want, case, generic, atol=1e-4 if "large" in case else 1e-5,
                    mistakes=_mistakes(qq, kk, vv, kw.get("mask"), kw.get("is_causal", False), got))
        # gradients by value (w.r.t. q, k, v), against torch's
        for case, mask, causal in (("is_causal=True", None, True), ("float mask (B, 1, T, T)", float_mask, False),
                                   ("bool mask whose row 2 is all False", empty_bool, False),
                                   ("float mask whose row 2 is all -inf", empty_float, False)):
            qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
            qr, kr, vr = (t.clone().requires_grad_() for t in (q, k, v))
            with forbid(_SDPA, shortcut):
                got = c.call(case + ", backward", fn, qg, kg, vg, mask=mask, is_causal=causal)
            want = F.scaled_dot_product_attention(qr, kr, vr, attn_mask=mask, is_causal=causal)
            c.grads(case + ", backward", got, want, {"q": qg, "k": kg, "v": vg}, {"q": qr, "k": kr, "v": vr},
                    "the gradients must flow through the scores, the softmax and v like torch's "
                    "(no .detach(), "
                    "no torch.no_grad(), no .data)")
        # another device: anything built on the CPU (a mask, an arange) fails there, as on a GPU
        mq, mk, mv = (c.to_device(t) for t in (q, k, v))
        for case, args, kw in (("is_causal=True", (mq, mk, mv), {"is_causal": True}),
                               ("is_causal=True, T_q=4 != "
                               "T_k=7", (mq[..., :4, :], c.to_device(k7), c.to_device(v7)),
                                {"is_causal": True}),
                               ("bool mask", (mq, mk, mv), {"mask": c.to_device(empty_bool)}),
                               ("float mask", (mq, mk, mv), {"mask": c.to_device(empty_float)})):
            case = f"{case}, inputs on device {c.device!r}"
            with forbid(_SDPA, shortcut):
                got = c.device_run(case, fn, *args, **kw)
            if got is not None:
                c.like(got, _ref_sdpa(*args, **kw), case, generic)
        # dropout: with v = [identity | ones] the output IS [the (dropped) weights | their row
        # sums]: dropout on the
        # weights keeps "last column = sum of the others"; dropout on v or on the output breaks it
        eye = torch.cat([torch.eye(T), torch.ones(T, 1)], dim=1).expand(B, nh, T, T + 1)
        w = F.scaled_dot_product_attention(q, k, eye)[..., :T]
        with torch.random.fork_rng():  # leave the caller's random stream alone
            torch.manual_seed(0)
            with forbid(_SDPA, shortcut):
                got = c.call("dropout_p=0.5", fn, q, k, eye, dropout_p=0.5)
        c.expect(
            isinstance(got, torch.Tensor) and tuple(got.shape) == (B, nh, T, T + 1),
            "dropout_p=0.5",
            f"expected a tensor of shape {(B, nh, T, T + 1)}",
        )
        gw = got[..., :T]
        kept = gw != 0
        c.expect(
            0 < int(kept.sum()) < kept.numel(),
            "dropout_p=0.5",
            "dropout_p > 0 must zero some attention weights (F.dropout(weights, p=dropout_p))",
        )
        where = (
            "dropout acts on the attention weights (after the softmax, before @ v): not on v, not "
            "on the output (with v = [I | 1] the last output column must be the sum of the "
            "dropped-out weights)"
        )
        c.close(got[..., T], gw.sum(-1), "dropout_p=0.5, v = [identity | ones]", where, near=where)
        c.close(
            gw[kept],
            w[kept] / 0.5,
            "dropout_p=0.5",
            "kept weights must be scaled by 1/(1 - p) (F.dropout does it), and dropout acts on the "
            "weights",
        )
        with forbid(_SDPA, shortcut):
            got = c.call("dropout_p=0.0", fn, q, k, v, dropout_p=0.0)
        c.close(
            got,
            F.scaled_dot_product_attention(q, k, v),
            "dropout_p=0.0",
            "dropout_p=0 must leave the result deterministic and unchanged",
        )


# -------------------------------------------------------------------------------------------- split / merge heads
def check_split_heads(fn) -> None:
    """`split_heads(x, n_head)`: (B, T, C) -> (B, n_head, T, C // n_head)."""
    with checker("split_heads", fn, solution=_ref_split) as c:
        rnh = c.rng.randint(2, 5)
        shapes = (
            (2, 5, 12, 3),
            (2, 5, 12, 1),
            (3, 1, 8, 2),
            (c.rng.randint(1, 3), c.rng.randint(2, 30), rnh * c.rng.randint(1, 6), rnh),
        )
        for i, (B, T, C, nh) in enumerate(shapes):
            x = _randn(B, T, C, seed=10 + nh, dtype=torch.float64 if i == 3 else torch.float32)
            case = f"B={B}, T={T}, C={C}, n_head={nh}" + (
                f", float64 (random, seed {c.seed})" if i == 3 else ""
            )
            got = c.call(case, fn, x, nh, inplace="split_heads must not modify x in place")
            c.close(
                got,
                _ref_split(x, nh),
                case,
                "expected x.view(B, T, n_head, C // n_head).transpose(1, 2)",
                mistakes={
                    "reshaped straight to (B, nh, T, hs) without a transpose? view as (B, T, nh, "
                    "hs), then "
                    "transpose(1, 2)": lambda: x.reshape(B, nh, T, C // nh),
                    "heads take interleaved channels? head h owns channels h*hs..(h+1)*hs-1: "
                    "view(B, T, nh, hs)": lambda: x.view(B, T, C // nh, nh).permute(0, 3, 1, 2),
                },
            )
        x = _randn(2, 12, 5, seed=12).transpose(1, 2)  # (2, 5, 12), not contiguous
        case = "x (2, 5, 12) not contiguous (a transposed tensor), n_head=3"
        c.close(
            c.call(case, fn, x, 3),
            _ref_split(x, 3),
            case,
            "x may be any strided tensor (e.g. a transpose): split the last dimension with "
            ".view(B, T, n_head, hs) or .reshape, never flatten (B*T, C) with .view",
        )
        x = c.to_device(_randn(2, 5, 12, seed=9))
        case = f"x (2, 5, 12) on device {c.device!r}, n_head=3"
        got = c.device_run(case, fn, x, 3)
        if got is not None:
            c.like(got, _ref_split(x, 3), case, "keep the input's device")


def check_merge_heads(fn) -> None:
    """`merge_heads(y)`: (B, n_head, T, hs) -> (B, T, n_head * hs), the inverse of split_heads."""
    with checker("merge_heads", fn, device_from="y", solution=_ref_merge) as c:
        shapes = (
            (2, 3, 5, 4),
            (2, 1, 5, 4),
            (3, 2, 1, 4),
            (c.rng.randint(1, 3), c.rng.randint(2, 5), c.rng.randint(2, 30), c.rng.randint(1, 6)),
        )
        for i, (B, nh, T, hs) in enumerate(shapes):
            y = _randn(B, nh, T, hs, seed=20 + nh, dtype=torch.float64 if i == 3 else torch.float32)
            case = f"B={B}, n_head={nh}, T={T}, hs={hs}" + (
                f", float64 (random, seed {c.seed})" if i == 3 else ""
            )
            got = c.call(case, fn, y, inplace="merge_heads must not modify y in place")
            c.close(
                got,
                _ref_merge(y),
                case,
                "expected y.transpose(1, 2).contiguous().view(B, T, n_head * hs)",
                mistakes={
                    "heads merged in the wrong order (a view/reshape without transpose)? "
                    "transpose(1, 2) back "
                    "to (B, T, nh, hs) first, then .contiguous().view(B, T, C)": lambda: y.reshape(
                        B, T, nh * hs
                    ),
                    "channels interleaved across heads? head h must land in channels "
                    "h*hs..(h+1)*hs-1": lambda: (
                        y.permute(0, 2, 3, 1).reshape(B, T, nh * hs)
                    ),
                },
            )
        x = _randn(2, 5, 12, seed=30)
        case = "merge_heads(split_heads(x, 3)) == x"
        c.close(
            c.call(case, fn, _ref_split(x, 3)), x, case, "merge_heads must undo split_heads exactly"
        )
        y = c.to_device(_randn(2, 3, 5, 4, seed=31))
        case = f"y (2, 3, 5, 4) on device {c.device!r}"
        got = c.device_run(case, fn, y)
        if got is not None:
            c.like(got, _ref_merge(y), case, "keep the input's device")


# ------------------------------------------------------------------------------------------- MultiHeadAttention
def _reference(n_embd: int, n_head: int, seed: int, dropout: float = 0.0) -> _RefMHA:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ref = _RefMHA(n_embd, n_head, fused=True, dropout=dropout)
        with (
            torch.no_grad()
        ):  # non-trivial biases (PyTorch's init already gives non-trivial weights)
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


def _mha_mistakes(ref: _RefMHA, x: torch.Tensor, **hooks):
    def build():
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
                "q and k swapped? c_attn's output splits into q, k, v in that order": _variant(
                    ref, permute_qkv((1, 0, 2))
                )(x, **hooks),
                "q and v swapped? c_attn's output splits into q, k, v in that order": _variant(
                    ref, permute_qkv((2, 1, 0))
                )(x, **hooks),
                "k and v swapped? c_attn's output splits into q, k, v in that order": _variant(
                    ref, permute_qkv((0, 2, 1))
                )(x, **hooks),
                "scores scaled by 1/sqrt(n_embd)? scale by 1/sqrt(head size hs = n_embd // "
                "n_head)": _variant(
                    ref, scale_q(1 / math.sqrt(nh))
                )(x, **hooks),
                "scores not scaled by 1/sqrt(hs)?": _variant(ref, scale_q(math.sqrt(C // nh)))(
                    x, **hooks
                ),
                "output projection c_proj missing?": _variant(ref, no_proj)(x, **hooks),
            }
            if hooks.get("rotary") is not None:
                out[
                    "rotary(q, k) must be applied to q and k of shape (B, nh, T, hs) before the "
                    "scores"
                ] = ref(x)
            if hooks.get("attn_bias") is not None:
                out["attn_bias must be ADDED to the scores, on top of the causal mask"] = ref(x)
        return out

    return build


def _rotary(T: int, hs: int, seed: int):
    """A rotary hook whose angle differs per position AND per channel pair (like RoPE's)."""
    angle = _randn(T, hs // 2, seed=seed) * 3

    def rotary(q, k):
        def rot(t):
            t1, t2 = t[..., 0::2], t[..., 1::2]
            cos, sin = angle.cos().to(t.device), angle.sin().to(t.device)
            return torch.stack((t1 * cos - t2 * sin, t1 * sin + t2 * cos), dim=-1).flatten(-2)

        return rot(q), rot(k)

    return rotary


def check_multi_head_attention(cls) -> None:
    """`cls(n_embd, n_head, *, dropout=0.0, bias=True, fused=...)`: GPT-2 causal self-attention, equal to the
    reference (same weights), causal, with the rotary and attn_bias hooks, dropout only in training, and with
    fused=False using the from-scratch attention."""
    generic = (
        "compare step by step: c_attn -> split q, k, v -> split_heads -> attention (causal) -> "
        "merge_heads -> c_proj"
    )
    with checker("MultiHeadAttention", cls, solution=_RefMHA) as c:

        def build(n_embd, nh, case, **kw):
            m = c.call(f"{case}: MultiHeadAttention({n_embd}, {nh}, {kw})", cls, n_embd, nh, **kw)
            ref = _reference(n_embd, nh, seed=nh)
            names = {k: tuple(p.shape) for k, p in m.state_dict().items()}
            want_names = {k: tuple(p.shape) for k, p in ref.state_dict().items()}
            c.expect(
                names == want_names,
                case,
                f"parameters {names} should be {want_names}: GPT-2 names, c_attn = Linear(C, 3C) "
                "(fused q, k, v) and c_proj = Linear(C, C)",
            )
            m.load_state_dict(ref.state_dict())
            return m.eval(), ref

        rT = c.rng.randint(33, 200)
        for n_embd, nh, T in ((12, 1, 5), (12, 3, 5), (12, 3, 1), (12, 3, rT)):
            case = f"B=2, T={T}, n_embd={n_embd}, n_head={nh}" + (
                f" (random T, seed {c.seed})" if T == rT else ""
            )
            m, ref = build(n_embd, nh, case)
            x = _randn(2, T, n_embd, seed=40 + nh)
            with torch.no_grad():
                want = ref(x)
                got = c.call(case, m, x, inplace="forward must not modify x in place")
            if T > 1:  # causality: changing the last token must not change any earlier output
                x2 = x.clone()
                x2[:, -1] = _randn(2, n_embd, seed=99)
                with torch.no_grad():
                    got2 = c.call(case + ", changing the last token", m, x2)
                c.expect(
                    isinstance(got2, torch.Tensor)
                    and isinstance(got, torch.Tensor)
                    and got.shape == got2.shape
                    and torch.allclose(got[:, :-1], got2[:, :-1], atol=1e-6),
                    case + ", changing the last token",
                    "future tokens leak into earlier positions: the causal mask is missing or "
                    "wrong "
                    "(is_causal=True, or -inf above the diagonal before the softmax)"
                    + (
                        "; or, since one head passed, split_heads/merge_heads mix positions "
                        "(transpose(1, 2) back to (B, T, nh, hs) before the view)"
                        if nh > 1
                        else ""
                    ),
                )
            default = generic
            if nh > 1 and T > 1:
                default = (
                    "right with one head but wrong with several? check split_heads/merge_heads: "
                    "view (B, T, nh, hs) + transpose(1, 2), and transpose back before merging"
                )
            c.close(got, want, case, default, mistakes=_mha_mistakes(ref, x))
        # the hooks (Chapter 3 plugs RoPE and ALiBi in here)
        m, ref = build(12, 3, "hooks")
        x = _randn(2, 5, 12, seed=50)
        rotary = _rotary(5, 4, seed=51)
        bias = _randn(3, 5, 5, seed=52)
        with torch.no_grad():
            c.close(
                c.call("rotary hook", m, x, rotary=rotary),
                ref(x, rotary=rotary),
                "rotary hook (angles differ per position and per channel pair)",
                "rotary(q, k) must be applied to q and k of shape (B, nh, T, hs) before the scores",
                mistakes=_mha_mistakes(ref, x, rotary=rotary),
            )
            c.close(
                c.call("attn_bias hook", m, x, attn_bias=bias),
                ref(x, attn_bias=bias),
                "attn_bias hook, shape (nh, T, T)",
                "attn_bias must be ADDED to the scores, on top of the causal mask",
                mistakes=_mha_mistakes(ref, x, attn_bias=bias),
            )
        # gradients by value: w.r.t. x and every parameter
        xg, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        got = c.call("backward", m, xg, attn_bias=bias)
        c.grads(
            "backward (attn_bias hook)",
            got,
            ref(xr, attn_bias=bias),
            {"x": xg, **dict(m.named_parameters())},
            {"x": xr, **dict(ref.named_parameters())},
            "no .detach()/.data/torch.no_grad() in forward",
        )
        # fused=False must use the from-scratch attention, fused=True torch's
        for fused in (False, True):
            case = f"fused={fused}"
            mf, _ = build(12, 3, case, fused=fused)
            hook_sets: tuple[dict[str, Any], ...] = ({}, {"attn_bias": bias})
            for hooks in hook_sets:
                label = f"{case}{', attn_bias' if hooks else ''}"
                with (
                    torch.no_grad(),
                    forbid(
                        _SDPA if not fused else (),
                        "fused=False must use your from-scratch attention, not torch's "
                        "F.scaled_dot_product_attention (self.fused ignored?)",
                    ) as called,
                ):
                    got = c.call(label, mf, x, **hooks)
                c.close(got, ref(x, **hooks), label, "the fused and from-scratch paths must agree")
                if fused:
                    c.expect(
                        "scaled_dot_product_attention" in called,
                        label,
                        "fused=True must call torch's F.scaled_dot_product_attention (self.fused "
                        "ignored?)",
                    )
        # dropout: only in training mode, on the attention weights AND on the output (resid_dropout)
        md, _ = build(12, 3, "dropout=0.5", dropout=0.5)
        c.expect(
            all(
                isinstance(getattr(md, n, None), torch.nn.Dropout)
                for n in ("attn_dropout", "resid_dropout")
            ),
            "MultiHeadAttention(12, 3, dropout=0.5)",
            "keep the given submodules attn_dropout and resid_dropout",
        )
        with torch.no_grad():
            c.close(
                c.call("dropout=0.5 in eval()", md, x),
                ref(x),
                "dropout=0.5 in eval()",
                "in eval() mode there is no dropout: pass dropout_p=self.attn_dropout.p only if "
                "self.training",
            )
            md.train()
            for attn_p, resid_p, what in (
                (
                    0.5,
                    0.0,
                    "attention dropout (self.attn_dropout.p) is not applied in "
                    "train() mode: pass dropout_p=self.attn_dropout.p if "
                    "self.training else 0.0",
                ),
                (0.0, 0.5, "resid_dropout is not applied to the output in train() mode"),
            ):
                md.attn_dropout.p, md.resid_dropout.p = attn_p, resid_p
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    got = c.call(
                        f"train(), attn_dropout.p={attn_p}, resid_dropout.p={resid_p}", md, x
                    )
                c.expect(
                    isinstance(got, torch.Tensor)
                    and got.shape == x.shape
                    and not torch.allclose(got, ref(x), atol=1e-4),
                    f"train(), attn_dropout.p={attn_p}, resid_dropout.p={resid_p}",
                    what,
                )
        # another device, and a sequence longer than any cached mask (GPT-2's 1024 included)
        for fused in (True, False):
            mm, rm = build(12, 3, "device", fused=fused)
            mm, rm = mm.to(c.device), rm.to(c.device)
            T = c.rng.randint(1025, 2100)
            xm = torch.randn(1, T, 12, device=c.device)
            device_hooks: tuple[dict[str, Any], ...] = (
                {},
                {"attn_bias": torch.randn(3, T, T, device=c.device)},
            )
            for hooks in device_hooks:
                case = (
                    f"x (1, {T}, 12) on device {c.device!r}, "
                    f"fused={fused}{', attn_bias' if hooks else ''} "
                    f"(random T, seed {c.seed})"
                )
                with torch.no_grad():
                    got = c.device_run(case, mm, xm, **hooks)
                    if got is not None:
                        c.like(got, rm(xm, **hooks), case, generic)
