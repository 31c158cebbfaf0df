"""The KV cache: logits with the cache equal logits without it at every step, for every position scheme,
batched and unbatched, with and without left padding; the context limit; memory against the formula; and the
hooks' defaults leave the plain forward pass unchanged bit for bit."""
import pytest
import torch
import torch.nn.functional as F

from gptlib.attention import MultiHeadAttention, causal_mask, merge_heads, split_heads
from gptlib.generate import generate
from gptlib.kvcache import KVCache, LayerKVCache, kv_cache_bytes
from gptlib.model import GPT, GPTConfig
from gptlib.position import POSITIONS

V = 97


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one thread is faster (conftest.py)


def model(position, block=40, seed=0, **kw):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=V, block_size=block, n_layer=2, n_head=4, n_embd=32, position=position,
                         **kw)).eval()


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("B", [1, 3])
@torch.no_grad()
def test_cached_logits_equal_full_logits_at_every_step(position, B):
    m = model(position)
    x = torch.randint(0, V, (B, 40), generator=torch.Generator().manual_seed(1))
    cache = KVCache.for_model(m, B, 40)
    prompt = 7
    steps = [m(x[:, :prompt], cache=cache)[:, -1]]
    for t in range(prompt, 39):
        steps.append(m(x[:, t:t + 1], cache=cache)[:, -1])              # one new token, its position = t
        assert cache.length == t + 1
    for t, got in zip(range(prompt - 1, 39), steps):
        want = m(x[:, :t + 1])[:, -1]                                    # no cache: the whole prefix again
        assert (got - want).abs().max() <= 1e-5, (position, t)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("fused", [True, False])
@torch.no_grad()
def test_cache_fed_several_tokens_at_a_time(position, fused):
    m = model(position, fused_attention=fused)
    x = torch.randint(0, V, (2, 33))
    cache = KVCache.for_model(m, 2, 40)
    chunks = [m(x[:, a:b], cache=cache) for a, b in ((0, 5), (5, 6), (6, 17), (17, 33))]
    assert (torch.cat(chunks, dim=1) - m(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("position", POSITIONS)
@torch.no_grad()
def test_cache_with_left_padding_equals_each_row_alone(position):
    m = model(position)
    g = torch.Generator().manual_seed(2)
    lens, T = (4, 10, 1), 10
    rows = [torch.randint(0, V, (n + 8,), generator=g) for n in lens]            # prompt + 8 continuation tokens
    idx = torch.stack([torch.cat([torch.zeros(T - n, dtype=torch.long), r]) for n, r in zip(lens, rows)])
    mask = torch.stack([torch.cat([torch.zeros(T - n), torch.ones(n + 8)]) for n in lens]).long()
    cache = KVCache.for_model(m, 3, T + 8)
    got = [m(idx[:, :T], cache=cache, attention_mask=mask[:, :T])[:, -1]]
    for t in range(T, T + 8):
        got.append(m(idx[:, t:t + 1], cache=cache, attention_mask=mask[:, :t + 1])[:, -1])
    for i, (n, r) in enumerate(zip(lens, rows)):
        for step, logits in enumerate(got[:-1]):
            want = m(r[None, :n + step])[0, -1]
            assert (logits[i] - want).abs().max() <= 1e-5, (position, i, step)


@pytest.mark.parametrize("position", POSITIONS)
def test_generate_with_and_without_cache_gives_the_same_tokens(position):
    m = model(position)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(8)                                                   # spread the logits: no near-ties
    idx = torch.randint(0, V, (2, 5))
    for kw in ({}, {"num_beams": 3}, {"repetition_penalty": 1.3}):
        assert torch.equal(generate(m, idx, 30, **kw), generate(m, idx, 30, use_cache=False, **kw))


# ------------------------------------------------------------------------------- the context limit
def test_context_limit_is_a_clear_error():
    m = model("learned", block=16)
    with pytest.raises(ValueError, match="block_size=16"):
        generate(m, torch.randint(0, V, (1, 10)), 7)
    assert generate(m, torch.randint(0, V, (1, 10)), 6).shape == (1, 16)       # exactly the context: fine
    with pytest.raises(ValueError, match="max_len"):
        KVCache.for_model(m, 1, 17)
    for position in POSITIONS:                                          # the model refuses past the context
        m = model(position, block=16)
        cache = KVCache.for_model(m, 1, 16)
        m(torch.randint(0, V, (1, 12)), cache=cache)
        with pytest.raises(ValueError, match="block_size=16"):
            m(torch.randint(0, V, (1, 5)), cache=cache)
    layer = LayerKVCache(1, 2, 4, max_len=3)
    layer.update(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
    with pytest.raises(ValueError, match="do not fit"):
        layer.update(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))


def test_bad_attention_mask_shape_is_a_clear_error():
    m = model("learned")
    cache = KVCache.for_model(m, 2, 20)
    m(torch.randint(0, V, (2, 4)), cache=cache)
    with pytest.raises(ValueError, match=r"cached \+ new"):
        m(torch.randint(0, V, (2, 1)), cache=cache, attention_mask=torch.ones(2, 1))


# ------------------------------------------------------------------------------- memory, reordering
@pytest.mark.parametrize("B, L", [(1, 40), (3, 17)])
def test_cache_memory_equals_the_formula(B, L):
    m = model("learned")
    cache = KVCache.for_model(m, B, L)
    assert cache.nbytes() == kv_cache_bytes(m.config, B, L) == 2 * 2 * B * L * 32 * 4
    half = KVCache(m.config, B, L, dtype=torch.bfloat16)
    assert half.nbytes() == kv_cache_bytes(m.config, B, L, bytes_per_value=2)


def test_reorder_moves_whole_rows():
    m = model("rope")
    cache = KVCache.for_model(m, 3, 10)
    x = torch.randint(0, V, (3, 6))
    m(x, cache=cache)
    before = [(layer.k.clone(), layer.v.clone()) for layer in cache.layers]
    cache.reorder(torch.tensor([2, 2, 0]))
    for (k, v), layer in zip(before, cache.layers):
        assert torch.equal(layer.k, k[[2, 2, 0]]) and torch.equal(layer.v, v[[2, 2, 0]])
    assert cache.length == 6


# ------------------------------------------------------------------------------- defaults unchanged
def old_attention_forward(self, x, rotary=None, attn_bias=None, cache=None):
    """MultiHeadAttention.forward as it was before the cache hook (verbatim logic)."""
    assert cache is None
    B, T, C = x.shape
    q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
    q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))
    if rotary is not None:
        q, k = rotary(q, k)
    mask = None
    if attn_bias is not None:
        mask = attn_bias.to(q.dtype).masked_fill(~causal_mask(T, device=x.device), float("-inf"))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
    return self.c_proj(merge_heads(y))


@pytest.mark.parametrize("position", POSITIONS)
@torch.no_grad()
def test_defaults_keep_the_plain_forward_bit_for_bit(position, monkeypatch):
    m = model(position)
    x = torch.randint(0, V, (2, 23))
    new = m(x)
    assert torch.equal(new, m(x, cache=None, attention_mask=None, position_ids=None))
    monkeypatch.setattr(MultiHeadAttention, "forward", old_attention_forward)
    assert torch.equal(new, m.lm_head(old_hidden_states(m, x)))


def old_hidden_states(m, idx):
    """GPT.hidden_states as it was before the generation hooks."""
    T = idx.size(1)
    x = m.transformer.wte(idx)
    if "wpe" in m.transformer:
        x = x + m.transformer.wpe(torch.arange(T, device=idx.device))
    attn_bias = m.alibi(T) if m.alibi is not None else None
    for block in m.transformer.h:
        x = x + block.attn(block.ln_1(x), rotary=m.rotary, attn_bias=attn_bias)
        x = x + block.mlp(block.ln_2(x))
    return m.transformer.ln_f(x)
