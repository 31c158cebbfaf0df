"""gptlib.attention: equal to torch's fused attention and nn.MultiheadAttention; hooks; clear
errors."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gptlib.attention import (MultiHeadAttention, causal_mask, merge_heads,
                              scaled_dot_product_attention,
                              split_heads)

NEG = float("-inf")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------
# causal_mask
@pytest.mark.parametrize("T", [1, 2, 5, 17])
def test_causal_mask_is_lower_triangular_bool(T):
    m = causal_mask(T)
    assert m.dtype == torch.bool and m.shape == (T, T)
    for i in range(T):
        for j in range(T):
            assert bool(m[i, j]) == (j <= i)


@pytest.mark.parametrize("T, err",
                         [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError),
                                    ("4", TypeError)])
def test_causal_mask_rejects_bad_lengths(T, err):
    with pytest.raises(err, match="T must be"):
        causal_mask(T)


# -------------------------------------------------------------------------------------
# scaled_dot_product_attention
def qkv(B=2, nh=3, T_q=5, T_k=5, d=4, d_v=6, seed=0):
    return rand(B, nh, T_q, d, seed=seed), rand(B, nh, T_k, d, seed=seed + 1), rand(B, nh, T_k, d_v, seed=seed + 2)


def bool_mask(T_q, T_k, seed=3):
    m = torch.rand(T_q, T_k, generator=torch.Generator().manual_seed(seed)) > 0.5
    m[:, 0] = True
    return m


CASES = {
    "plain": (dict(), {}),
    "causal": (dict(), {"is_causal": True}),
    "T_q != T_k": (dict(T_q=3, T_k=7), {}),
    "causal T_q < T_k (top-left aligned)": (dict(T_q=3, T_k=7), {"is_causal": True}),
    "causal T_q > T_k": (dict(T_q=7, T_k=4), {"is_causal": True}),
    "T=1": (dict(T_q=1, T_k=1), {"is_causal": True}),
    "single head": (dict(nh=1), {"is_causal": True}),
    "bool mask": (dict(), {"mask": bool_mask(5, 5)}),
    "bool mask broadcast (B, 1, T, T)": (dict(),
                                         {"mask": torch.stack([bool_mask(5, 5, 1),
                                                               bool_mask(5, 5, 2)])
                                                  .unsqueeze(1)}),
    "float mask": (dict(), {"mask": rand(3, 5, 5, seed=9)}),
    "float mask with -inf (causal + bias)": (dict(),
                                             {"mask": rand(5, 5,
                                                           seed=9).masked_fill(~causal_mask(5), NEG)}),
    "bool mask & causal_mask": (dict(), {"mask": bool_mask(5, 5) & causal_mask(5)}),
    "large d": (dict(d=64, d_v=64), {"is_causal": True}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_sdpa_equals_torch(name):
    shape, kw = CASES[name]
    q, k, v = qkv(**shape)
    ours = scaled_dot_product_attention(q, k, v, **kw)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=kw.get("mask"),
                                         is_causal=kw.get("is_causal", False))
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


def test_sdpa_unbatched_and_explicit_causal_mask_equal_is_causal():
    q, k, v = rand(6, 8, seed=1), rand(6, 8, seed=2), rand(6, 3, seed=3)
    a = scaled_dot_product_attention(q, k, v, mask=causal_mask(6))
    b = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-6, rtol=1e-5)


def test_sdpa_fully_masked_row_gives_zeros_like_torch():
    q, k, v = qkv()
    m = torch.ones(5, 5, dtype=torch.bool)
    m[2] = False
    ours = scaled_dot_product_attention(q, k, v, mask=m)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                               atol=1e-6, rtol=1e-5)
    assert not ours.isnan().any() and torch.equal(ours[..., 2, :],
                                                  torch.zeros_like(ours[..., 2, :]))


def test_sdpa_is_scaled_by_sqrt_d():
    # one query, two keys: the weight on the first key is sigmoid((s1 - s2) / sqrt(d))
    d = 16
    q = torch.ones(1, d)
    k = torch.stack([torch.ones(d), torch.zeros(d)])
    v = torch.tensor([[1.0], [0.0]])
    w = scaled_dot_product_attention(q, k, v)
    assert math.isclose(w.item(), 1 / (1 + math.exp(-d / math.sqrt(d))), rel_tol=1e-6)


def test_sdpa_gradients_equal_torch():
    q, k, v = (t.requires_grad_() for t in qkv())
    scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    g = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum().backward()
    for a, t in zip(g, (q, k, v)):
        torch.testing.assert_close(a, t.grad, atol=1e-5, rtol=1e-4)


def test_sdpa_dropout_drops_and_rescales_weights():
    q, k, _ = qkv()
    eye = torch.eye(5).expand(2, 3, 5, 5)  # output == the weight matrix
    w = scaled_dot_product_attention(q, k, eye, is_causal=True)
    torch.manual_seed(0)
    wd = scaled_dot_product_attention(q, k, eye, is_causal=True, dropout_p=0.3)
    kept = wd != 0
    assert 0 < kept.sum() < (w != 0).sum()
    torch.testing.assert_close(wd[kept], w[kept] / 0.7)
    assert not wd.triu(1).any()  # dropout never un-masks the future
    torch.testing.assert_close(scaled_dot_product_attention(q, k, eye, dropout_p=0.0),
                               scaled_dot_product_attention(q, k, eye))


def test_sdpa_does_not_modify_inputs():
    q, k, v = qkv()
    m = bool_mask(5, 5)
    before = [t.clone() for t in (q, k, v, m)]
    scaled_dot_product_attention(q, k, v, mask=m)
    assert all(torch.equal(a, b) for a, b in zip(before, (q, k, v, m)))


@pytest.mark.parametrize("args, kw, err, match", [
    (qkv(d=4)[:1] + (rand(2, 3, 5, 5), rand(2, 3, 5, 6)), {}, ValueError, "same feature size d"),
    (qkv()[:2] + (rand(2, 3, 4, 6),), {}, ValueError, "same number of positions T_k"),
    ((rand(2, 3, 5, 4), rand(3, 3, 5, 4), rand(3, 3, 5, 6)), {}, ValueError, "leading"),
    ((rand(4), rand(5, 4), rand(5, 4)), {}, ValueError, r"\(\.\.\., T, d\)"),
    (([[1.0]], rand(5, 4), rand(5, 4)), {}, TypeError, "must be a torch.Tensor"),
    (qkv(), {"mask": torch.ones(5, 6, dtype=torch.bool)}, ValueError, "does not broadcast"),
    (qkv(), {"mask": torch.ones(4, 5, 5, dtype=torch.bool)}, ValueError, "does not broadcast"),
    (qkv(), {"mask": torch.ones(5, 5, dtype=torch.long)}, TypeError, "bool mask"),
    (qkv(), {"mask": [[True]]}, TypeError, "must be a torch.Tensor"),
    (qkv(), {"mask": causal_mask(5), "is_causal": True}, ValueError, "not both"),
    (qkv(), {"dropout_p": 1.0}, ValueError, "dropout_p"),
    (qkv(), {"dropout_p": -0.1}, ValueError, "dropout_p"),
])
def test_sdpa_bad_input_is_a_clear_error(args, kw, err, match):
    with pytest.raises(err, match=match):
        scaled_dot_product_attention(*args, **kw)


# ----------------------------------------------------------------------------------------------
# split / merge
@pytest.mark.parametrize("B, T, C, nh", [(2, 5, 12, 3), (1, 1, 8, 1), (3, 4, 8, 8)])
def test_split_merge_roundtrip_and_layout(B, T, C, nh):
    x = rand(B, T, C)
    y = split_heads(x, nh)
    hs = C // nh
    assert y.shape == (B, nh, T, hs)
    for h in range(nh):  # head h owns channels h*hs .. (h+1)*hs - 1
        assert torch.equal(y[:, h], x[..., h * hs:(h + 1) * hs])
    assert torch.equal(merge_heads(y), x)


def test_split_merge_errors():
    with pytest.raises(ValueError, match="not divisible by n_head"):
        split_heads(rand(2, 5, 12), 5)
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        split_heads(rand(5, 12), 3)
    with pytest.raises(ValueError, match=r"\(B, n_head, T, hs\)"):
        merge_heads(rand(2, 5, 12))


# -------------------------------------------------------------------------------------------
# MultiHeadAttention
def pair(n_embd=48, n_head=4, **kw):
    torch.manual_seed(0)
    naive = MultiHeadAttention(n_embd, n_head, fused=False, **kw).eval()
    fused = MultiHeadAttention(n_embd, n_head, fused=True, **kw).eval()
    fused.load_state_dict(naive.state_dict())
    return naive, fused


def test_gpt2_parameter_names_and_shapes():
    m = MultiHeadAttention(48, 4)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {
        "c_attn.weight": (144, 48), "c_attn.bias": (144,), "c_proj.weight": (48, 48),
            "c_proj.bias": (48,)}
    assert isinstance(m.attn_dropout, nn.Dropout) and isinstance(m.resid_dropout, nn.Dropout)
    assert set(MultiHeadAttention(48, 4, bias=False).state_dict()) == {"c_attn.weight",
                                                                       "c_proj.weight"}
    assert MultiHeadAttention(48, 4, dropout=0.2).attn_dropout.p == 0.2


@pytest.mark.parametrize("n_embd, n_head, T", [(48, 4, 9), (12, 3, 5), (12, 1, 5), (12, 3, 1)])
def test_fused_equals_naive(n_embd, n_head, T):
    naive, fused = pair(n_embd, n_head)
    x = rand(2, T, n_embd)
    with torch.no_grad():
        torch.testing.assert_close(naive(x), fused(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_equals_torch_multihead_attention_with_copied_weights(bias):
    naive, fused = pair(bias=bias)
    ref = nn.MultiheadAttention(48, 4, bias=bias, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(naive.c_attn.weight)
        ref.out_proj.weight.copy_(naive.c_proj.weight)
        if bias:
            ref.in_proj_bias.copy_(naive.c_attn.bias)
            ref.out_proj.bias.copy_(naive.c_proj.bias)
        x = rand(2, 9, 48)
        # nn.MHA: True = blocked
        want, _ = ref(x, x, x, attn_mask=~causal_mask(9), need_weights=False)
        for m in (naive, fused):
            torch.testing.assert_close(m(x), want, atol=1e-6, rtol=1e-5)


def test_queries_are_x_times_w_q():
    """Q = X · W_Q with W_Q = c_attn.weight[:C].T (nn.Linear stores the transpose)."""
    m = MultiHeadAttention(12, 3).eval()
    x = rand(2, 5, 12)
    seen = {}

    def spy(q, k):
        seen["q"], seen["k"] = q, k
        return q, k

    with torch.no_grad():
        m(x, rotary=spy)
        W = m.c_attn.weight
        torch.testing.assert_close(seen["q"], split_heads(x @ W[:12].T + m.c_attn.bias[:12], 3))
        torch.testing.assert_close(seen["k"], split_heads(x @ W[12:24].T + m.c_attn.bias[12:24], 3))
    assert seen["q"].shape == (2, 3, 5, 4)


def test_is_causal():
    for m in pair():
        x = rand(2, 9, 48)
        x2 = x.clone()
        x2[:, 6:] = rand(2, 3, 48, seed=5)
        with torch.no_grad():
            a, b = m(x), m(x2)
        torch.testing.assert_close(a[:, :6], b[:, :6])
        assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_gradients_equal_fused_and_naive():
    naive, fused = pair()
    x = rand(2, 9, 48)
    grads = []
    for m in (naive, fused):
        m.zero_grad()
        m(x).square().sum().backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------------------ hooks
def test_identity_rotary_and_zero_bias_change_nothing():
    for m in pair():
        x = rand(2, 9, 48)
        with torch.no_grad():
            y = m(x)
            torch.testing.assert_close(m(x, rotary=lambda q, k: (q, k)), y)
            torch.testing.assert_close(m(x, attn_bias=torch.zeros(4, 9, 9)), y)
            torch.testing.assert_close(m(x, attn_bias=torch.zeros(1, 1, 9, 9)), y)


def test_rotary_is_applied_to_q_and_k_before_the_scores():
    naive, fused = pair()
    x = rand(2, 9, 48)

    def swap_halves(q, k):  # a non-trivial, norm-preserving change of q and k
        return q.roll(1, dims=-1), k.roll(1, dims=-1)

    def scale_q(q, k):  # scaling q only changes the softmax temperature
        return 3 * q, k

    with torch.no_grad():
        # rolling q and k by the same amount leaves all dot products, hence the output, unchanged
        torch.testing.assert_close(fused(x, rotary=swap_halves), fused(x), atol=1e-6, rtol=1e-5)
        a, b = naive(x, rotary=scale_q), fused(x, rotary=scale_q)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(a, fused(x), atol=1e-3)


def test_minus_inf_bias_column_blocks_that_key():
    x = rand(2, 9, 48)
    x2 = x.clone()
    j = 3
    x2[:, j] = rand(2, 48, seed=7)
    block = torch.zeros(9, 9)
    block[:, j] = NEG
    others = [t for t in range(9) if t != j]
    for m in pair():
        with torch.no_grad():
            torch.testing.assert_close(m(x, attn_bias=block)[:, others],
                                       m(x2, attn_bias=block)[:, others])
            assert not torch.allclose(m(x)[:, j + 1:], m(x2)[:, j + 1:], atol=1e-3)


def test_fully_blocked_first_query_fused_equals_naive():
    naive, fused = pair()
    block = torch.zeros(9, 9)
    block[:, 0] = NEG  # query 0 sees nothing at all
    x = rand(2, 9, 48)
    with torch.no_grad():
        a, b = naive(x, attn_bias=block), fused(x, attn_bias=block)
    assert not a.isnan().any()
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shape", [(9, 9), (4, 9, 9), (1, 4, 9, 9), (2, 4, 9, 9), (4, 1, 9)])
def test_fused_equals_naive_with_a_bias(shape):
    naive, fused = pair()
    bias = rand(*shape, seed=11)
    x = rand(2, 9, 48)
    with torch.no_grad():
        a, b = naive(x, attn_bias=bias), fused(x, attn_bias=bias)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(a, naive(x), atol=1e-3)


def test_bias_is_added_on_top_of_the_causal_mask():
    x = rand(2, 9, 48)
    bias = torch.triu(torch.full((9, 9), 100.0), 1)  # a big bonus on the FUTURE keys must not leak
    with torch.no_grad():
        for m in pair():
            torch.testing.assert_close(m(x, attn_bias=bias), m(x), atol=1e-6, rtol=1e-5)


def test_training_dropout():
    m = MultiHeadAttention(48, 4, dropout=0.5)
    x = rand(2, 9, 48)
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    b = m(x)
    assert not torch.allclose(a, b)
    m.eval()
    torch.testing.assert_close(m(x), m(x))


# ------------------------------------------------------------------------------------------------------ errors
def test_n_embd_not_divisible_by_n_head():
    with pytest.raises(ValueError, match="divisible by n_head"):
        MultiHeadAttention(48, 5)
    with pytest.raises(ValueError, match="divisible by n_head"):
        MultiHeadAttention(48, 0)


@pytest.mark.parametrize("x", [rand(2, 9, 32), rand(9, 48), rand(1, 2, 9, 48)])
def test_wrong_input_shape(x):
    with pytest.raises(ValueError, match=r"\(B, T, n_embd=48\)"):
        MultiHeadAttention(48, 4)(x)


def test_bad_attn_bias():
    m = MultiHeadAttention(48, 4)
    x = rand(2, 9, 48)
    with pytest.raises(ValueError, match="attn_bias of shape .* does not broadcast"):
        m(x, attn_bias=torch.zeros(4, 9, 10))
    with pytest.raises(ValueError, match="does not broadcast"):
        m(x, attn_bias=torch.zeros(3, 9, 9))
    with pytest.raises(TypeError, match="float tensor"):
        m(x, attn_bias=torch.ones(9, 9, dtype=torch.bool))
    with pytest.raises(TypeError, match="attn_bias"):
        m(x, attn_bias=torch.zeros(9, 9, dtype=torch.long))
