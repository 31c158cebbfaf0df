"""gptlib.generate against transformers 5.x: every logits transformation, greedy, beam search and sampling
token for token on a randomly initialised GPT-2, batched left padding, streaming, stop strings and bad input."""
import warnings

import pytest
import torch

from gptlib import generate as G
from gptlib import sampling as S
from gptlib import stream as ST
from gptlib.model import GPT, GPTConfig
from gptlib.tokenizer import course_tokenizer, gpt2_tokenizer

import transformers
from transformers import GPT2LMHeadModel
from transformers.generation import logits_process as LP

transformers.logging.set_verbosity_error()
V = 211


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one thread is faster (conftest.py)


def random_gpt(position="learned", vocab=V, block=64, seed=0, scale=8.0):
    """A small random GPT-2. Its weights are scaled up so the logits spread out: at GPT-2's init (std
    0.02) the best next-token logit leads the second by a few hundredths, and the two libraries' summation
    orders could flip an argmax somewhere in a long comparison."""
    torch.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=2, n_head=4, n_embd=32, position=position)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(scale)
    return m


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Our GPT and transformers' GPT2LMHeadModel with identical weights (through save_pretrained)."""
    m = random_gpt()
    d = tmp_path_factory.mktemp("gpt2")
    m.save_pretrained(d)
    return m, GPT2LMHeadModel.from_pretrained(d).eval()


def hf_generate(hf, idx, n, **kw):
    eos = kw.get("eos_token_id")
    pad = eos if isinstance(eos, int) else (eos[0] if eos else 0)
    kw.setdefault("attention_mask", torch.ones_like(idx))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hf.generate(idx, max_new_tokens=n, pad_token_id=pad, **kw)


def tied_logits(B=4, n=97, seed=0):
    """Random logits on a coarse grid: many exact ties, including at the top-k / top-p boundaries."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-6, 7, (B, n), generator=g).float() / 2


# ------------------------------------------------------------------------------- logits transformations
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 2, 5, 17, 97, 500])
def test_top_k_equals_transformers(seed, k):
    for scores in (tied_logits(seed=seed), torch.randn(4, 97, generator=torch.Generator().manual_seed(seed))):
        want = LP.TopKLogitsWarper(top_k=k)(None, scores.clone())
        assert torch.equal(S.top_k_filter(scores, k), want)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.95, 0.999, 1.0])
def test_top_p_equals_transformers(seed, p):
    for scores in (tied_logits(seed=seed), 3 * torch.randn(4, 97, generator=torch.Generator().manual_seed(seed))):
        for keep in (1, 3):
            want = LP.TopPLogitsWarper(top_p=p, min_tokens_to_keep=keep)(None, scores.clone())
            assert torch.equal(S.top_p_filter(scores, p, keep), want)


@pytest.mark.parametrize("t", [0.3, 0.7, 1.0, 1.7])
def test_temperature_equals_transformers(t):
    scores = torch.randn(3, 50)
    assert torch.equal(S.apply_temperature(scores, t), LP.TemperatureLogitsWarper(t)(None, scores.clone()))


@pytest.mark.parametrize("penalty", [0.5, 1.2, 2.0])
def test_repetition_penalty_equals_transformers(penalty):
    g = torch.Generator().manual_seed(1)
    scores = tied_logits(B=3, n=40)
    ids = torch.randint(0, 40, (3, 12), generator=g)
    ids[0, :4] = 7                                                  # a repeated token, counted once
    want = LP.RepetitionPenaltyLogitsProcessor(penalty)(ids, scores.clone())
    assert torch.equal(S.apply_repetition_penalty(scores, ids, penalty), want)
    pad = torch.tensor([0, 3, 11])                                  # left padding that must not count
    want = LP.RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=pad)(ids, scores.clone())
    assert torch.equal(S.apply_repetition_penalty(scores, ids, penalty, pad), want)


def test_processing_order_equals_transformers():
    """repetition penalty, then temperature, top-k, top-p: the composition equals transformers' list."""
    scores, ids = tied_logits(B=2, n=60, seed=5), torch.randint(0, 60, (2, 9))
    chain = [LP.RepetitionPenaltyLogitsProcessor(1.3), LP.TemperatureLogitsWarper(0.8), LP.TopKLogitsWarper(20),
             LP.TopPLogitsWarper(0.8)]
    want = scores.clone()
    for proc in chain:
        want = proc(ids, want)
    got = S.process_logits(scores, ids, do_sample=True, temperature=0.8, top_k=20, top_p=0.8, repetition_penalty=1.3)
    assert torch.equal(got, want)
    greedy = S.process_logits(scores, ids, do_sample=False, temperature=0.8, top_k=20, top_p=0.8)
    assert torch.equal(greedy, scores), "greedy ignores the sampling warpers, like transformers"


def test_logits_transformations_do_not_modify_their_input():
    scores, ids = tied_logits(), torch.randint(0, 97, (4, 5))
    before = scores.clone()
    S.top_p_filter(scores, 0.5), S.top_k_filter(scores, 3), S.apply_repetition_penalty(scores, ids, 1.5)
    assert torch.equal(scores, before)


# ------------------------------------------------------------------------------- decoding = transformers
def eos_hit(m, idx, n=12):
    """A token greedy decoding really produces mid-way, to be used as eos so that rows stop early."""
    return int(G.generate(m, idx, n)[0, idx.size(1) + 4])


@pytest.mark.parametrize("kw", [{}, {"repetition_penalty": 1.4}, {"use_cache": False}, {"eos": True},
                                {"eos": True, "repetition_penalty": 0.7}])
def test_greedy_equals_transformers(pair, kw):
    m, hf = pair
    kw = dict(kw)
    idx = torch.randint(0, V, (3, 7), generator=torch.Generator().manual_seed(2))
    if kw.pop("eos", False):
        kw["eos_token_id"] = eos_hit(m, idx)
    ours = G.generate(m, idx, 20, **kw)
    assert torch.equal(ours, hf_generate(hf, idx, 20, do_sample=False, **kw))


@pytest.mark.parametrize("kw", [dict(num_beams=2), dict(num_beams=3, length_penalty=0.0),
                                dict(num_beams=4, length_penalty=2.0, eos=True),
                                dict(num_beams=3, length_penalty=-1.0, eos=True),
                                dict(num_beams=3, eos="two"), dict(num_beams=3, repetition_penalty=1.5),
                                dict(num_beams=3, use_cache=False, eos=True)])
def test_beam_search_equals_transformers(pair, kw):
    m, hf = pair
    kw = dict(kw)
    idx = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(3))
    eos = kw.pop("eos", False)
    if eos:
        e = eos_hit(m, idx)
        kw["eos_token_id"] = e if eos is True else [e, (e + 1) % V]
    ours = G.generate(m, idx, 16, **kw)
    theirs = hf_generate(hf, idx, 16, do_sample=False, **kw)
    assert torch.equal(ours, theirs)


def test_beam_search_stops_early_on_eos(pair):
    """With an eos that greedy hits, the best beam can be shorter than max_new_tokens: shapes must agree too."""
    m, hf = pair
    for seed in range(3):
        idx = torch.randint(0, V, (1, 4), generator=torch.Generator().manual_seed(seed))
        e = int(G.generate(m, idx, 3)[0, -1])
        ours = G.generate(m, idx, 15, num_beams=3, eos_token_id=e)
        assert torch.equal(ours, hf_generate(hf, idx, 15, num_beams=3, do_sample=False, eos_token_id=e))


@pytest.mark.parametrize("kw", [dict(), dict(temperature=0.6), dict(top_k=5), dict(top_p=0.7),
                                dict(temperature=1.4, top_k=30, top_p=0.9, repetition_penalty=1.3),
                                dict(top_p=0.5, eos=True)])
def test_sampling_with_the_same_seed_equals_transformers(pair, kw):
    m, hf = pair
    kw = dict(kw)
    idx = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(4))
    if kw.pop("eos", False):
        kw["eos_token_id"] = eos_hit(m, idx)
    for seed in (0, 1):
        torch.manual_seed(seed)
        ours = G.generate(m, idx, 20, do_sample=True, **kw)
        torch.manual_seed(seed)
        theirs = hf_generate(hf, idx, 20, do_sample=True, top_k=kw.pop("top_k", 0), **kw)  # HF's default top_k is 50
        assert torch.equal(ours, theirs), seed


def test_sampling_with_a_generator_repeats_and_leaves_the_global_rng_alone(pair):
    m, _ = pair
    idx = torch.randint(0, V, (2, 4))
    state = torch.get_rng_state()
    a = G.generate(m, idx, 15, do_sample=True, generator=torch.Generator().manual_seed(7))
    b = G.generate(m, idx, 15, do_sample=True, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)


def left_pad(prompts, pad=0):
    T = max(len(p) for p in prompts)
    idx = torch.stack([torch.cat([torch.full((T - len(p),), pad), p]) for p in prompts])
    mask = torch.stack([torch.cat([torch.zeros(T - len(p)), torch.ones(len(p))]) for p in prompts]).long()
    return idx, mask


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope", "alibi"])
@pytest.mark.parametrize("kw", [{}, {"num_beams": 3}, {"repetition_penalty": 1.5}, {"use_cache": False}])
def test_batched_left_padding_equals_each_prompt_alone(position, kw):
    m = random_gpt(position)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(1, V, (n,), generator=g) for n in (3, 9, 1, 6)]
    idx, mask = left_pad(prompts, pad=0)
    out = G.generate(m, idx, 12, attention_mask=mask, **kw)
    for i, p in enumerate(prompts):
        alone = G.generate(m, p[None], 12, **kw)[0]
        assert torch.equal(out[i, idx.size(1) - len(p):], alone), (position, i)


def test_batched_left_padding_equals_transformers(pair):
    m, hf = pair
    g = torch.Generator().manual_seed(6)
    idx, mask = left_pad([torch.randint(1, V, (n,), generator=g) for n in (2, 8, 5)])
    for kw in ({}, {"num_beams": 3}):
        assert torch.equal(G.generate(m, idx, 10, attention_mask=mask, **kw),
                           hf_generate(hf, idx, 10, attention_mask=mask, do_sample=False, **kw))


def test_eos_stops_a_row_and_pads_it_with_eos(pair):
    m, _ = pair
    idx = torch.randint(0, V, (3, 5), generator=torch.Generator().manual_seed(8))
    free = G.generate(m, idx, 12)
    e = int(free[0, 5 + 3])
    out = G.generate(m, idx, 12, eos_token_id=e)
    for row_free, row in zip(free, out):
        new = row_free[5:].tolist()
        if e in new:
            k = new.index(e)
            assert row[5:5 + k + 1].tolist() == new[:k + 1] and (row[5 + k + 1:] == e).all()
        else:
            assert row[5:].tolist() == new[:len(row) - 5]
    assert G.generate(m, idx[:1], 12, eos_token_id=e).size(1) == 5 + 4, "a lone row stops right after its eos"


def test_zero_new_tokens_returns_the_prompt_and_the_model_mode_is_restored(pair):
    m, _ = pair
    idx = torch.randint(0, V, (2, 3))
    assert torch.equal(G.generate(m, idx, 0), idx)
    m.train()
    try:
        G.generate(m, idx, 2)
        assert m.training
    finally:
        m.eval()


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw, match", [
    (dict(do_sample=True, temperature=0.0), "temperature"),
    (dict(do_sample=True, temperature=-1.0), "temperature"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-0.1), "top_p"),
    (dict(top_k=0), "top_k"), (dict(top_k=2.5), "top_k"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(num_beams=2, do_sample=True), "beam"), (dict(num_beams=0), "num_beams"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(eos_token_id=V), "eos_token_id"),
    (dict(max_new_tokens=100), "block_size"),
])
def test_bad_arguments_get_clear_errors(pair, kw, match):
    m, _ = pair
    kw = dict(kw)
    n = kw.pop("max_new_tokens", 5)
    with pytest.raises((ValueError, TypeError), match=match):
        G.generate(m, torch.randint(0, V, (1, 4)), n, **kw)


def test_bad_prompts_get_clear_errors(pair):
    m, _ = pair
    with pytest.raises(ValueError, match="empty"):
        G.generate(m, torch.zeros(1, 0, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="vocabulary"):
        G.generate(m, torch.tensor([[1, V]]), 5)
    with pytest.raises(ValueError, match="vocabulary"):
        G.generate(m, torch.tensor([[-1, 2]]), 5)
    with pytest.raises(TypeError, match="token ids"):
        G.generate(m, torch.rand(1, 3), 5)
    with pytest.raises(ValueError, match=r"idx\[None\]"):
        G.generate(m, torch.tensor([1, 2]), 5)
    with pytest.raises(ValueError, match="LEFT padding"):
        G.generate(m, torch.tensor([[1, 2, 3]]), 5, attention_mask=torch.tensor([[1, 1, 0]]))
    with pytest.raises(ValueError, match="shape"):
        G.generate(m, torch.tensor([[1, 2, 3]]), 5, attention_mask=torch.tensor([[1, 1]]))


def test_greedy_ignores_sampling_knobs_like_transformers(pair):
    m, _ = pair
    idx = torch.randint(0, V, (1, 4))
    assert torch.equal(G.generate(m, idx, 8), G.generate(m, idx, 8, temperature=0.0, top_k=3, top_p=0.2))


# ------------------------------------------------------------------------------- streaming and text
class Scripted(torch.nn.Module):
    """A stand-in model that 'generates' a fixed token sequence (to test streaming on chosen bytes)."""

    def __init__(self, script, vocab, prompt_len):
        super().__init__()
        self.config = GPTConfig(vocab_size=vocab, block_size=256, n_layer=1, n_head=1, n_embd=2)
        self.lm_head = torch.nn.Linear(2, vocab, bias=False)
        self.script, self.prompt_len = script, prompt_len

    def forward(self, idx, **kw):
        step = idx.size(1) - self.prompt_len
        logits = torch.zeros(idx.size(0), idx.size(1), self.config.vocab_size)
        logits[:, -1, self.script[min(step, len(self.script) - 1)]] = 10.0
        return logits


@pytest.mark.parametrize("text", ["naïve café 🙂 — 東京", "plain ascii", "🙂🙃 ünïcödé", "日本語のテキスト"])
def test_detokenize_never_splits_a_character_and_joins_to_the_decode(text):
    for tok in (gpt2_tokenizer(), course_tokenizer()):
        ids = tok.encode(text)
        pieces = list(ST.detokenize(tok, ids))
        assert "".join(pieces) == tok.decode_bytes(ids).decode("utf-8", errors="replace") == text
        assert all("\ufffd" not in p for p in pieces)
        for p in pieces:
            p.encode("utf-8")                                       # whole characters only


def test_byte_level_bpe_does_split_characters():
    """The case the streaming decoder exists for: a token that ends inside a character."""
    tok = gpt2_tokenizer()
    ids = tok.encode(" 東京")
    per_token = [tok.decode_bytes([i]) for i in ids]
    assert any(b.decode("utf-8", errors="replace") != b.decode("utf-8", errors="ignore") for b in per_token)
    assert list(ST.detokenize(tok, ids)) == [" ", "東", "京"]


def test_stream_with_a_stop_string_and_eos():
    tok = gpt2_tokenizer()
    prompt = tok.encode("Q:")
    script = tok.encode(" one 東京, two\n\nthree") + [50256] + tok.encode(" never")
    m = Scripted(script, 50257, len(prompt))
    full = "".join(ST.stream(m, tok, prompt, 30, use_cache=False, eos_token_id=50256))
    assert full == " one 東京, two\n\nthree"
    pieces = list(ST.stream(m, tok, prompt, 30, use_cache=False, stop="\n\n"))
    assert "".join(pieces) == " one 東京, two" and all("\n" not in p for p in pieces)
    assert ST.text(m, tok, prompt, 30, use_cache=False, stop=[",", "two"]) == " one 東京"
    assert ST.text(m, tok, prompt, 30, use_cache=False) == full, "text() stops at the tokenizer's eot by default"


def test_text_works_with_both_tokenizers():
    for tok in (course_tokenizer(), gpt2_tokenizer()):
        m = random_gpt(vocab=tok.n_vocab if hasattr(tok, "n_vocab") else tok.vocab_size, block=48)
        s = ST.text(m, tok, "ROMEO:", 12, eos_token_id=None)
        ids = G.generate(m, torch.tensor([tok.encode("ROMEO:")]), 12)[0].tolist()
        assert s == tok.decode_bytes(ids[len(tok.encode("ROMEO:")):]).decode("utf-8", errors="replace")
        beams = ST.text(m, tok, "ROMEO:", 12, num_beams=2, eos_token_id=None)
        ids = G.generate(m, torch.tensor([tok.encode("ROMEO:")]), 12, num_beams=2)[0].tolist()
        assert beams == tok.decode_bytes(ids[len(tok.encode("ROMEO:")):]).decode("utf-8", errors="replace")


def test_stream_rejects_what_it_cannot_do(pair):
    m, _ = pair
    tok = course_tokenizer()
    with pytest.raises(ValueError, match="generate"):
        next(ST.stream(m, tok, [1, 2], 5, num_beams=2))
    with pytest.raises(ValueError, match="stop"):
        next(ST.stream(m, tok, [1, 2], 5, stop=""))
    with pytest.raises(ValueError, match="temperature"):
        next(ST.stream(m, tok, [1, 2], 5, do_sample=True, temperature=0))
    assert torch.is_grad_enabled()


# ------------------------------------------------------------------------------- the shipped model (Chapter 5)
SHIPPED = [d for d in sorted((__import__("gptlib").DATA_DIR / "models").glob("shakespeare-*"))
           if not d.name.endswith("-chat")]                  # base models, not the chat model


@pytest.mark.skipif(not SHIPPED, reason="Chapter 5's model (data/models/shakespeare-*) is not in this checkout")
def test_shipped_model_greedy_and_beams_equal_transformers(tmp_path):
    """The shipped model, exported with save_pretrained and loaded by transformers: the same tokens."""
    m = GPT.from_pretrained(SHIPPED[-1]).eval()
    m.save_pretrained(tmp_path / "shipped")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "shipped").eval()
    tok = gpt2_tokenizer() if m.config.vocab_size >= 50257 else course_tokenizer()
    idx = torch.tensor([tok.encode("ROMEO:\nBut soft, what light")])
    for kw in ({}, {"num_beams": 3}, {"num_beams": 3, "length_penalty": 2.0, "eos_token_id": tok.eot_token}):
        assert torch.equal(G.generate(m, idx, 24, **kw), hf_generate(hf, idx, 24, do_sample=False, **kw))
    torch.manual_seed(0)
    ours = G.generate(m, idx, 24, do_sample=True, temperature=0.8, top_p=0.9)
    torch.manual_seed(0)
    assert torch.equal(ours, hf_generate(hf, idx, 24, do_sample=True, temperature=0.8, top_p=0.9, top_k=0))


# ---------------------------------------------------------------- sampling boundaries, exactly
# Uniform scores give probabilities that floats represent exactly (1/4, 1/8), so each boundary below
# is decided by the rule, not by rounding (at a general exact tie rounding decides, in transformers
# too; see Chapter 7).
def test_top_p_keeps_the_token_whose_mass_reaches_p_and_no_more():
    uniform = torch.zeros(1, 4)                      # each token 1/4: cumulative 1/4, 1/2, 3/4, 1
    for p, kept in ((0.25, 1), (0.5, 2), (0.5000001, 3), (0.75, 3), (1.0, 4)):
        out = S.top_p_filter(uniform, p)
        assert int(torch.isfinite(out).sum()) == kept, (p, out)
        want = transformers.TopPLogitsWarper(top_p=p)(None, uniform.clone())
        assert torch.equal(out, want)
    eight = torch.zeros(2, 8)
    kept = torch.isfinite(S.top_p_filter(eight, 0.125, min_tokens_to_keep=3)).sum(-1)
    assert kept.tolist() == [3, 3]


def test_top_k_keeps_exactly_k_distinct_scores_and_every_tie_of_the_kth():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    for k in (1, 2, 4, 5, 9):
        kept = torch.isfinite(S.top_k_filter(scores, k))[0].tolist()
        assert kept == [i < k for i in range(5)], k
    ties = torch.tensor([[3.0, 1.0, 3.0, 3.0, 0.0]])
    assert torch.isfinite(S.top_k_filter(ties, 2)).sum() == 3   # every tie of the 2nd best stays


def test_repetition_penalty_sign_rule_and_temperature_direction():
    scores = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    out = S.apply_repetition_penalty(scores, torch.tensor([[0, 1, 1]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5]]   # positive / 2, negative * 2, unseen kept
    pad = S.apply_repetition_penalty(scores, torch.tensor([[2, 0]]), 2.0,
                                     ignore_prefix=torch.tensor([1]))
    assert pad.tolist() == [[1.0, -2.0, 1.0, 0.5]]   # the left-padding position does not count
    assert S.apply_temperature(scores, 0.5).tolist() == [[4.0, -4.0, 2.0, 1.0]]
    out = S.process_logits(scores, torch.tensor([[3]]), temperature=0.5, top_k=1)
    assert torch.equal(out, scores)                  # greedy: temperature and top-k ignored


# ----------------------------------------------------------------------------- past the context
def test_sliding_window_predicts_each_token_from_the_last_block_size_tokens():
    m = random_gpt(block=12)
    idx = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(3))
    got = G.generate(m, idx, 20, sliding_window=True)
    seq = idx
    with torch.no_grad():
        for _ in range(20):                          # nanoGPT's loop: crop to the context
            nxt = m(seq[:, -12:])[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(got, seq)
    assert torch.equal(got, G.generate(m, idx, 20, sliding_window=True, use_cache=False))
    assert torch.equal(got[:, :12], G.generate(m, idx, 7))   # within the context: plain generate


def test_too_long_generation_messages_fit_the_case():
    m = random_gpt(block=16)
    with pytest.raises(ValueError) as e:
        G.generate(m, torch.zeros(1, 10, dtype=torch.long), 7)
    msg = str(e.value)
    assert "lower max_new_tokens to 6" in msg and "last 9 tokens" in msg
    assert "sliding_window=True" in msg
    with pytest.raises(ValueError) as e:
        G.generate(m, torch.zeros(1, 10, dtype=torch.long), 20)
    msg = str(e.value)
    assert "alone fills" in msg and "prompt's last" not in msg      # no cut of the prompt can help
    assert "at most 6" in msg and "sliding_window=True" in msg
    with pytest.raises(ValueError, match="beam search"):
        G.generate(m, torch.zeros(1, 3, dtype=torch.long), 4, num_beams=2, sliding_window=True)
