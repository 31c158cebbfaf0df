"""gptlib.position: learned and sinusoidal tables, RoPE and ALiBi, against independent
formulations."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from gptlib.attention import MultiHeadAttention
from gptlib.position import (POSITIONS, ALiBi, LearnedPositionalEmbedding, RotaryEmbedding,
                             SinusoidalPositionalEncoding, alibi_bias, alibi_slopes, rope_rotate,
                                 sinusoidal_table)


def test_positions_are_the_four_config_choices():
    assert POSITIONS == ("learned", "sinusoidal", "rope", "alibi")


# ------------------------------------------------------------------------------------------------
# learned table
def test_learned_is_an_embedding_with_the_gpt2_key():
    wpe = LearnedPositionalEmbedding(16, 12)
    assert isinstance(wpe, nn.Embedding) and list(wpe.state_dict()) == ["weight"]
    assert wpe.weight.shape == (16, 12)
    out = wpe(torch.arange(5))
    assert torch.equal(out, wpe.weight[:5])
    assert wpe(torch.arange(4).expand(2, 4)).shape == (2, 4, 12)


def test_learned_init_is_gpt2_scale():
    torch.manual_seed(0)
    std = LearnedPositionalEmbedding(1024, 64).weight.std().item()
    assert 0.015 < std < 0.025


@pytest.mark.parametrize("cls", [LearnedPositionalEmbedding, SinusoidalPositionalEncoding])
def test_tables_reject_positions_past_the_limit(cls):
    table = cls(8, 6)
    table(torch.arange(8))  # the last position is fine
    with pytest.raises(ValueError, match=r"position 9 is past the limit.*0\.\.7 "
                                         r"\(block_size=8\).*at most 8 tokens"):
        table(torch.arange(10))
    with pytest.raises(ValueError, match="must be >= 0"):
        table(torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integer tensor"):
        table(torch.arange(3.0))
    with pytest.raises(TypeError, match="integer tensor"):
        table([0, 1, 2])


@pytest.mark.parametrize("cls", [LearnedPositionalEmbedding, SinusoidalPositionalEncoding])
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_tables_reject_bad_sizes(cls, bad):
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        cls(bad, 8)
    with pytest.raises(ValueError, match="n_embd must be a positive int"):
        cls(8, bad)


# ----------------------------------------------------------------------------------------------------- sinusoidal
def numpy_table(T, d, base=10000.0):
    """Independent float64 NumPy version of Vaswani et al.'s formula, one element at a time."""
    pe = np.zeros((T, d))
    for p in range(T):
        for i in range(d // 2):
            pe[p, 2 * i] = math.sin(p / base ** (2 * i / d))
            pe[p, 2 * i + 1] = math.cos(p / base ** (2 * i / d))
    return torch.from_numpy(pe)


@pytest.mark.parametrize("T,d,base",
                         [(1, 2, 10000.0), (17, 10, 10000.0), (64, 32, 10000.0), (9, 6, 50.0)])
def test_sinusoidal_table_matches_the_formula(T, d, base):
    got = sinusoidal_table(T, d, base)
    assert got.dtype == torch.float32 and got.shape == (T, d)
    assert torch.allclose(got.double(), numpy_table(T, d, base), atol=1e-6)


def test_sinusoidal_table_rejects_odd_width():
    with pytest.raises(ValueError, match="d must be even"):
        sinusoidal_table(4, 7)


def test_sinusoidal_shift_is_a_fixed_rotation():
    T, d, k = 120, 16, 9
    pe = numpy_table(T, d)
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        a = k / 10000 ** (2 * i / d)
        M[2 * i:2 * i + 2,
          2 * i:2 * i + 2] = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    assert torch.allclose(pe[:-k] @ M.T, pe[k:], atol=1e-12)
    assert torch.allclose(torch.from_numpy(sinusoidal_table(T, d).double().numpy())[:-k] @ M.T,
                          pe[k:], atol=1e-6)


def test_sinusoidal_module_is_a_buffer_not_a_parameter():
    spe = SinusoidalPositionalEncoding(32, 8, base=100.0)
    assert list(spe.parameters()) == [] and list(spe.state_dict()) == []
    assert torch.equal(spe(torch.arange(32)), sinusoidal_table(32, 8, 100.0))
    assert spe(torch.arange(6).view(2, 3)).shape == (2, 3, 8)
    assert spe.to(torch.float64).pe.dtype == torch.float64  # follows .to like any buffer
    assert "block_size=32" in repr(spe)


# ----------------------------------------------------------------------------------------------------------- RoPE
def rope_complex(x, positions, base=10000.0):
    """Independent formulation: pair (x_2i, x_2i+1) as a complex number times e^{i·p·θ_i}
    (LLaMA-style)."""
    hs = x.shape[-1]
    theta = base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    angles = torch.outer(positions.double(), theta)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], hs // 2, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).reshape(x.shape)


@pytest.mark.parametrize("shape,base",
                         [((2, 3, 7, 8), 10000.0), ((5, 10), 10000.0), ((1, 2, 1, 6), 500.0)])
def test_rope_equals_the_complex_form_and_keeps_norms(shape, base):
    torch.manual_seed(1)
    x = torch.randn(*shape)
    pos = torch.randint(0, 300, (shape[-2],))
    before = x.clone()
    out = rope_rotate(x, pos, base)
    assert torch.equal(x, before), "x modified in place"
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.allclose(out.double(), rope_complex(x, pos, base), atol=1e-4)
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-4)


def test_rope_at_position_zero_is_the_identity():
    x = torch.randn(2, 1, 3, 8)
    assert torch.allclose(rope_rotate(x, torch.zeros(3, dtype=torch.long)), x)


def test_rope_rotates_interleaved_pairs_counter_clockwise():
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]])                # pair 0 = e1, pair 1 = e2
    out = rope_rotate(x, torch.tensor([1]), base=1.0)        # base 1: every pair turns by 1 radian
    c, s = math.cos(1.0), math.sin(1.0)
    assert torch.allclose(out, torch.tensor([[c, s, -s, c]]), atol=1e-6)


def test_rope_score_depends_only_on_the_offset():
    torch.manual_seed(2)
    q, k = torch.randn(16), torch.randn(16)
    for m, n in [(0, 5), (11, 16), (200, 205), (3, 0), (103, 100)]:
        s = rope_rotate(q[None], torch.tensor([m])) @ rope_rotate(k[None], torch.tensor([n])).T
        ref = q @ rope_complex(k[None], torch.tensor([n - m])).float()[0]   # q · R_{n-m} k
        assert torch.allclose(s[0, 0], ref, atol=1e-4), (m, n)


def test_rope_keeps_low_precision_dtypes():
    x = torch.randn(1, 2, 4, 8, dtype=torch.bfloat16)
    out = rope_rotate(x, torch.arange(4))
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), rope_complex(x.float(), torch.arange(4)).float(), atol=2e-2)


def test_rope_argument_errors():
    with pytest.raises(ValueError, match="head size must be even"):
        rope_rotate(torch.randn(3, 5), torch.arange(3))
    with pytest.raises(ValueError, match=r"positions must have shape \(3,\)"):
        rope_rotate(torch.randn(3, 4), torch.arange(4))


def test_rotary_module_offset_and_limits():
    torch.manual_seed(3)
    rope = RotaryEmbedding(8)
    q, k = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    q2, k2 = rope(q, k, offset=4)
    assert torch.allclose(q2, rope_rotate(q, torch.arange(4, 9))) and torch.allclose(k2, rope_rotate(k, torch.arange(4, 9)))
    assert list(rope.state_dict()) == [] and list(rope.parameters()) == []
    rope(torch.randn(1, 1, 5000, 8), torch.randn(1, 1, 5000, 8))  # no table: any length
    limited = RotaryEmbedding(8, block_size=6)
    limited(q, k, offset=1)
    with pytest.raises(ValueError, match=r"position 6 is past the limit.*block_size=6"):
        limited(q, k, offset=2)
    with pytest.raises(ValueError, match="head_dim must be even"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match="RotaryEmbedding\\(head_dim=8\\) got q"):
        rope(torch.randn(1, 1, 5, 6), torch.randn(1, 1, 5, 6))
    with pytest.raises(ValueError, match="same positions"):
        rope(torch.randn(1, 1, 5, 8), torch.randn(1, 1, 4, 8))


# ---------------------------------------------------------------------------------------------------------- ALiBi
def paper_slopes(n):
    """The reference code of Press et al. (ofirpress/attention_with_linear_biases), transcribed."""
    def get_slopes_power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        ratio = start
        return [start * ratio ** i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (get_slopes_power_of_2(closest_power_of_2)
            + paper_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2])


def test_alibi_slopes_for_8_heads_are_halvings():
    assert alibi_slopes(8).tolist() == [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128,
                                        1 / 256]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 8, 12, 16, 20, 24, 32, 40])
def test_alibi_slopes_match_the_paper_code(n):
    got = alibi_slopes(n)
    assert got.dtype == torch.float32 and got.shape == (n,)
    assert torch.allclose(got, torch.tensor(paper_slopes(n), dtype=torch.float32), rtol=1e-6,
                          atol=0)


def test_alibi_slopes_12_heads():
    want = [2.0 ** -e for e in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    assert torch.allclose(alibi_slopes(12), torch.tensor(want))


def test_alibi_bias_values():
    slopes = torch.tensor([0.5, 0.25, 0.75])
    b = alibi_bias(slopes, 4)
    assert b.shape == (3, 4, 4)
    for h in range(3):
        for i in range(4):
            for j in range(4):
                want = -slopes[h].item() * (i - j) if j <= i else 0.0
                assert b[h, i, j].item() == pytest.approx(want)
    assert alibi_bias(slopes, 1).shape == (3, 1, 1) and not alibi_bias(slopes, 1).any()


def test_alibi_module():
    alibi = ALiBi(12)
    assert list(alibi.state_dict()) == [] and list(alibi.parameters()) == []
    assert torch.equal(alibi.slopes, alibi_slopes(12))
    assert torch.equal(alibi(5), alibi_bias(alibi_slopes(12), 5))
    assert alibi(1100).shape == (12, 1100, 1100)  # no table: any length
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="T must be a positive int"):
            alibi(bad)
    with pytest.raises(ValueError, match="n_head must be a positive int"):
        ALiBi(0)


# ------------------------------------------------------------------------------------------
# plugged into attention
def reference_attention(mha, x, rotate=None, bias=None):
    """Causal attention written out with the layer's weights (independent of its forward)."""
    B, T, C = x.shape
    nh, hs = mha.n_head, C // mha.n_head
    q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in mha.c_attn(x).split(C, dim=2))
    if rotate is not None:
        q, k = rotate(q), rotate(k)
    att = q @ k.transpose(-2, -1) / math.sqrt(hs)
    if bias is not None:
        att = att + bias
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    return mha.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


@pytest.mark.parametrize("fused", [True, False])
def test_rope_and_alibi_plug_into_multi_head_attention(fused):
    torch.manual_seed(4)
    mha = MultiHeadAttention(24, 3, fused=fused).eval()
    x = torch.randn(2, 7, 24)
    rope, alibi = RotaryEmbedding(8), ALiBi(3)
    with torch.no_grad():
        got = mha(x, rotary=rope)
        want = reference_attention(mha, x,
                                   rotate=lambda t: rope_complex(t, torch.arange(7)).float())
        assert torch.allclose(got, want, atol=1e-5)
        got = mha(x, attn_bias=alibi(7))
        bias = torch.tensor(paper_slopes(3))[:, None,
                                             None] * (torch.arange(7)[None, :] - torch.arange(7)[:, None])
        assert torch.allclose(got, reference_attention(mha, x, bias=bias.float()), atol=1e-5)


def test_every_method_breaks_the_prefix_symmetry_and_rope_alibi_are_shift_invariant():
    torch.manual_seed(5)
    C, nh, T = 24, 3, 6
    mha = MultiHeadAttention(C, nh).eval()
    x = torch.randn(1, T, C)
    # the prefix shuffled, the last token kept
    x_perm = x[:, [2, 0, 4, 1, 3, 5]]
    wpe, spe = LearnedPositionalEmbedding(64, C), SinusoidalPositionalEncoding(64, C)
    rope, alibi = RotaryEmbedding(C // nh), ALiBi(nh)
    runs = {"none": lambda x, s=0: mha(x),
            "learned": lambda x, s=0: mha(x + wpe(torch.arange(s, s + T))),
            "sinusoidal": lambda x, s=0: mha(x + spe(torch.arange(s, s + T))),
            "rope": lambda x, s=0: mha(x, rotary=lambda q, k: rope(q, k, offset=s)),
            "alibi": lambda x, s=0: mha(x, attn_bias=alibi(T))}
    with torch.no_grad():
        gaps = {n: (f(x)[0, -1] - f(x_perm)[0, -1]).abs().max().item() for n, f in runs.items()}
        shifts = {n: (f(x) - f(x, 30)).abs().max().item() for n, f in runs.items()}
    assert gaps["none"] < 1e-5, "without positions the last token cannot see the order of its prefix"
    assert all(gaps[n] > 1e-4 for n in POSITIONS), gaps
    assert shifts["rope"] < 1e-5 and shifts["alibi"] < 1e-5, shifts
    assert shifts["learned"] > 1e-4 and shifts["sinusoidal"] > 1e-4, shifts


def test_positions_compile_without_graph_breaks():
    """The range checks read tensor values, which torch.compile cannot: they step aside while
    compiling."""
    C, nh, T = 16, 2, 5
    mha = MultiHeadAttention(C, nh).eval()
    wpe, rope, alibi = SinusoidalPositionalEncoding(8, C), RotaryEmbedding(C // nh, block_size=8), ALiBi(nh)

    def forward(x):
        x = x + wpe(torch.arange(x.size(1)))
        return mha(x, rotary=rope, attn_bias=alibi(x.size(1)))

    x = torch.randn(2, T, C)
    # fullgraph: a graph break is an error
    compiled = torch.compile(forward, backend="eager", fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), forward(x), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_modules_follow_the_device():
    dev = "cuda"
    spe, wpe, alibi = SinusoidalPositionalEncoding(16, 8).to(dev), LearnedPositionalEmbedding(16, 8).to(dev), ALiBi(3).to(dev)
    pos = torch.arange(10, device=dev)
    assert spe(pos).device.type == dev and wpe(pos).device.type == dev and alibi(6).device.type == dev
    assert torch.allclose(spe(pos).cpu(), sinusoidal_table(16, 8)[:10])
    assert torch.allclose(alibi(6).cpu(), alibi_bias(alibi_slopes(3), 6))
    q = torch.randn(2, 3, 10, 8)
    q_dev, _ = RotaryEmbedding(8)(q.to(dev), q.to(dev))
    assert torch.allclose(q_dev.cpu(), rope_rotate(q, torch.arange(10)), atol=1e-5)
    with pytest.raises(ValueError, match="past the limit"):
        spe(torch.arange(17, device=dev))
