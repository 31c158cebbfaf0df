"""gptlib.model: configuration, shapes, counting, initialisation, position schemes and bad input."""
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from gptlib.layers import GELU, FusedLayerNorm, LayerNorm, gelu_exact, gelu_tanh
from gptlib.model import (GPT, Block, GPTConfig, count_params, flops_per_token, lm_loss,
                          training_memory)
from gptlib.position import POSITIONS

SMALL = dict(vocab_size=101, block_size=16, n_layer=2, n_head=4, n_embd=32)


def small(**kw):
    return GPTConfig(**{**SMALL, **kw})


# -------------------------------------------------------------------------------------------
# components
def test_layer_norm_equals_torch_with_affine_and_large_eps():
    g = torch.Generator().manual_seed(0)
    for cls in (LayerNorm, FusedLayerNorm):
        for bias in (True, False):
            ln = cls(12, eps=1.0, bias=bias)
            with torch.no_grad():
                ln.weight.copy_(torch.randn(12, generator=g))
                if bias:
                    ln.bias.copy_(torch.randn(12, generator=g))
            x = 3 + 2 * torch.randn(2, 5, 12, generator=g)
            ref = torch.nn.LayerNorm(12, eps=1.0, bias=bias)
            ref.load_state_dict(ln.state_dict())
            torch.testing.assert_close(ln(x), ref(x), atol=1e-6, rtol=1e-5)


def test_gelu_variants_equal_torch():
    x = torch.linspace(-8, 8, 401, dtype=torch.float64)
    torch.testing.assert_close(gelu_tanh(x), F.gelu(x, approximate="tanh"))
    torch.testing.assert_close(gelu_exact(x), F.gelu(x))
    assert (gelu_tanh(x) - gelu_exact(x)).abs().max() > 1e-4   # they are different functions
    for approx in ("tanh", "none"):
        torch.testing.assert_close(GELU(approx, fused=False)(x), GELU(approx, fused=True)(x))
    with pytest.raises(ValueError, match="approximate"):
        GELU("fast")


def test_from_scratch_model_equals_fused_model():
    for pos in POSITIONS:
        fast = GPT(small(position=pos)).eval()
        slow = GPT(small(position=pos, fused_attention=False, fused_kernels=False)).eval()
        slow.load_state_dict(fast.state_dict())
        idx = torch.randint(0, 101, (2, 16))
        torch.testing.assert_close(slow(idx), fast(idx), atol=1e-5, rtol=1e-4)


def test_block_is_pre_ln_residual():
    cfg = small()
    b = Block(cfg).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        h = x + b.attn(b.ln_1(x))
        want = h + b.mlp(b.ln_2(h))
        torch.testing.assert_close(b(x), want)


# ------------------------------------------------------------------------------------------- the
# model
def test_logits_shape_and_causality():
    m = GPT(small()).eval()
    idx = torch.randint(0, 101, (3, 16))
    out = m(idx)
    assert out.shape == (3, 16, 101)
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 101
    with torch.no_grad():
        # the future never leaks into the past
        torch.testing.assert_close(m(changed)[:, :10], out[:, :10])
        assert not torch.allclose(m(changed)[:, 10:], out[:, 10:])


def test_head_is_tied_unless_asked_otherwise():
    m = GPT(small())
    assert m.lm_head.weight is m.transformer.wte.weight
    assert m.num_params() == count_params(small())
    u = GPT(small(tie_weights=False))
    assert u.lm_head.weight is not u.transformer.wte.weight
    assert u.num_params() - m.num_params() == 101 * 32


def test_module_names_match_hf_gpt2_keys():
    from transformers import GPT2Config, GPT2LMHeadModel
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=101, n_positions=16, n_layer=2, n_head=4, n_embd=32))
    hf_keys = {k for k in hf.state_dict() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    assert set(GPT(small()).state_dict()) == hf_keys


def test_initialisation_scales():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=1000, block_size=64, n_layer=6, n_head=4, n_embd=256)
    m = GPT(cfg)
    sd = dict(m.named_parameters())
    assert abs(sd["transformer.wte.weight"].std().item() - 0.02) < 0.001
    assert abs(sd["transformer.wpe.weight"].std().item() - 0.02) < 0.002
    assert abs(sd["transformer.h.0.attn.c_attn.weight"].std().item() - 0.02) < 0.001
    assert abs(sd["transformer.h.0.mlp.c_fc.weight"].std().item() - 0.02) < 0.001
    want = 0.02 / math.sqrt(2 * cfg.n_layer)
    for name in ("transformer.h.0.attn.c_proj.weight", "transformer.h.5.mlp.c_proj.weight"):
        assert abs(sd[name].std().item() - want) < 0.05 * want, name     # scaled by 1/sqrt(2L)
    assert all(torch.all(p == 0) for n, p in sd.items() if n.endswith("bias") and "ln" not in n)
    assert torch.all(sd["transformer.h.0.ln_1.weight"] == 1) and torch.all(sd["transformer.ln_f.bias"] == 0)


def test_loss_at_init_is_about_ln_vocab():
    torch.manual_seed(0)
    cfg = GPTConfig.preset("nano")
    m = GPT(cfg).eval()
    x, y = torch.randint(0, cfg.vocab_size, (2, 4, 64))
    with torch.no_grad():
        loss = m.loss(x, y).item()
    assert abs(loss - math.log(cfg.vocab_size)) < 0.05
    torch.testing.assert_close(m.loss(x, y), F.cross_entropy(m(x).flatten(0, 1), y.flatten()))


def test_loss_ignore_index_and_shape_check():
    m = GPT(small())
    x = torch.randint(0, 101, (2, 8))
    y = x.clone()
    y[:, :4] = -100
    logits = m(x)
    torch.testing.assert_close(m.loss(x, y),
                               F.cross_entropy(logits[:, 4:].flatten(0, 1), y[:, 4:].flatten()))
    with pytest.raises(ValueError, match="targets must have shape"):
        lm_loss(logits, y[:, :5])


def test_model_loss_is_the_cross_entropy_of_the_logits():
    """model.loss equals -mean log-softmax at the targets (written out by hand), gradients
    included."""
    torch.manual_seed(0)
    m = GPT(small())
    x, y = torch.randint(0, 101, (2, 2, 16))
    y[:, :3] = -100
    keep = y != -100
    grads = []
    for f in (lambda: m.loss(x, y),
              lambda: -(torch.log_softmax(m(x), -1).gather(-1, y.clamp(min=0)[..., None])[..., 0])[keep].mean()):
        m.zero_grad(set_to_none=True)
        loss = f()
        loss.backward()
        grads.append((loss.detach(), {k: p.grad.clone() for k, p in m.named_parameters()}))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for k in grads[0][1]:
        torch.testing.assert_close(grads[0][1][k], grads[1][1][k], msg=k)
    with pytest.raises(ValueError, match="targets must have the shape of idx"):
        m.loss(x, y[:, :5])


def test_loss_is_float32_under_bfloat16_autocast():
    m = GPT(small())
    x, y = torch.randint(0, 101, (2, 2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = m.loss(x, y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_hf_io_lives_in_gptlib_hf_and_the_methods_delegate(tmp_path, monkeypatch):
    """GPT.from_pretrained / save_pretrained are real methods of the class (not attached later)
    calling gptlib.hf."""
    import gptlib.hf as hf
    assert "from_pretrained" in GPT.__dict__ and "save_pretrained" in GPT.__dict__
    seen = []
    monkeypatch.setattr(hf, "save_pretrained", lambda model, d,
                        overwrite=False: seen.append((model, d, overwrite)))
    m = GPT(small())
    m.save_pretrained(tmp_path, overwrite=True)
    assert seen == [(m, tmp_path, True)]
    monkeypatch.setattr(hf, "from_pretrained", lambda p, model_cls, **kw: (p, model_cls, kw))

    class Sub(GPT):
        pass
    assert Sub.from_pretrained("dir", dropout=0.1) == ("dir", Sub, {"dropout": 0.1})


@pytest.mark.parametrize("position", POSITIONS)
def test_every_position_scheme_runs_forward_backward(position):
    torch.manual_seed(0)
    cfg = small(position=position)
    m = GPT(cfg)
    x, y = torch.randint(0, 101, (2, 2, 16))
    loss = m.loss(x, y)
    loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - math.log(101)) < 0.2
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert m(x[:, :3]).shape == (2, 3, 101)                      # shorter sequences work
    assert m.num_params() == count_params(cfg)
    assert ("wpe" in m.transformer) == (position in ("learned", "sinusoidal"))


def dropout_free_twin(m: GPT) -> GPT:
    """The same weights in a model built without dropout: the reference an eval-mode model must
    equal."""
    twin = GPT(replace(m.config, dropout=0.0))
    twin.load_state_dict(m.state_dict())
    return twin.eval()


def test_dropout_is_active_in_train_mode_only():
    m = GPT(small(dropout=0.5))
    x = torch.randint(0, 101, (2, 16))
    torch.manual_seed(0)
    a = m.train()(x)
    b = m(x)
    assert not torch.allclose(a, b)
    ref = dropout_free_twin(m)(x)
    assert not torch.allclose(a, ref) and not torch.allclose(b, ref)
    m.eval()
    assert torch.equal(m(x), ref)          # not m(x) == m(x): a rescale at eval would pass that


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "from-scratch"])
@pytest.mark.parametrize("position", POSITIONS)
def test_eval_mode_equals_the_dropout_free_model(position, fused):
    """Dropout is the identity at evaluation: a model built with dropout=0.3 in eval mode gives
    exactly the
    logits of its own weights in a dropout-free model, on every path (attention weights, residual
    branches, embeddings) and every position scheme."""
    torch.manual_seed(0)
    m = GPT(small(dropout=0.3, position=position, fused_attention=fused,
                  fused_kernels=fused)).eval()
    x = torch.randint(0, 101, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(m(x), dropout_free_twin(m)(x), rtol=0, atol=0)


def test_train_mode_dropout_keeps_the_expected_activation():
    """Inverted dropout: in train mode the mean over many masks is the eval-mode output (scaled by
    1/(1-p) during training, never at evaluation)."""
    torch.manual_seed(0)
    m = GPT(small(dropout=0.3, n_layer=1))
    x = torch.randint(0, 101, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = dropout_free_twin(m).transformer.wte(x)
        m.train()
        drops = torch.stack([m.transformer.drop(m.transformer.wte(x)) for _ in range(4000)])
    assert ((drops == 0).float().mean() - 0.3).abs() < 0.01
    torch.testing.assert_close(drops.mean(0), ref, atol=0.05 * ref.abs().max().item(), rtol=0)


def test_ids_are_range_checked_on_cpu_and_off_cpu_only_when_asked(monkeypatch):
    """On CPU tensors the ids are range-checked on every forward (free). Off CPU reading them would
    be a
    host-device sync per forward: the meta device stands in for a GPU here (any read of a value
    fails
    there), so a forward on it proves that nothing reads the ids unless check_ids is set."""
    reads = []
    real = torch.aminmax
    monkeypatch.setattr(torch, "aminmax", lambda *a,
                        **k: reads.append(a[0].device.type) or real(*a, **k))
    for position in POSITIONS:
        m = GPT(small(position=position))
        with pytest.raises(ValueError, match="token id 101 is out of range"):
            m(torch.tensor([[1, 101]]))
        meta = m.to("meta")
        assert meta(torch.zeros(2, 5, dtype=torch.long, device="meta")).shape == (2, 5, 101)
    assert reads and set(reads) == {"cpu"}
    meta.check_ids = True
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        # the value check now reads them
        meta(torch.zeros(2, 5, dtype=torch.long, device="meta"))
    assert reads[-1] == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_forward_never_synchronises():
    m = GPT(small()).cuda().eval()
    x = torch.randint(0, 101, (2, 16), device="cuda")
    # warm-up (lazy initialisation)
    m(x)
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            m(x)
            m.loss(x, x)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_greedy_tokens_equal_an_independent_loop_past_the_context():
    """The notebook's greedy step (crop to block_size, argmax of the last position) against a loop
    written
    independently: one sequence at a time, explicit softmax probabilities over an explicitly
    cropped window."""
    torch.manual_seed(0)
    m = GPT(small()).eval()
    prompt = torch.randint(0, 101, (2, 4))
    idx = prompt
    with torch.no_grad():
        for _ in range(20):   # runs past block_size = 16 by cropping
            idx = torch.cat([idx, m(idx[:, -16:])[:, -1].argmax(-1, keepdim=True)], 1)
    assert idx.shape == (2, 24)
    with torch.no_grad():
        for b in range(2):
            seq = prompt[b].tolist()
            for _ in range(20):
                window = torch.tensor([seq[max(0, len(seq) - 16):]])
                probs = torch.softmax(m(window)[0, window.size(1) - 1], dim=-1)
                seq.append(max(range(101), key=lambda i: probs[i].item()))
            assert idx[b].tolist() == seq
    with pytest.raises(ValueError, match="exceeds the context"):   # so the loops really had to crop
        m(idx)


# -------------------------------------------------------------------------------------------
# counting
GPT2_FAMILY = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080,
               "gpt2-xl": 1_557_611_200}


@pytest.mark.parametrize("name", list(GPTConfig.PRESETS))
def test_presets_count_on_the_meta_device(name):
    cfg = GPTConfig.preset(name)
    with torch.device("meta"):
        m = GPT(cfg)
    assert m.lm_head.weight.device.type == "meta"
    assert m.num_params() == count_params(cfg)
    if name in GPT2_FAMILY:
        assert m.num_params() == GPT2_FAMILY[name]


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"tie_weights": False}, {"position": "rope"},
                                {"position": "sinusoidal", "bias": False, "tie_weights": False}])
def test_count_params_matches_a_built_model(kw):
    cfg = small(**kw)
    assert count_params(cfg) == sum(p.numel() for p in GPT(cfg).parameters())
    non_emb = GPT(cfg).num_params(non_embedding=True)
    assert non_emb == count_params(cfg) - 101 * 32 - (16 * 32 if cfg.position == "learned" else 0)


@pytest.mark.parametrize("kw", [{}, {"tie_weights": False}, {"position": "rope"}])
def test_flops_per_token_matches_the_flop_counter(kw):
    cfg = small(fused_attention=False, **kw)
    m = GPT(cfg)
    x = torch.randint(0, 101, (2, 16))
    with FlopCounterMode(display=False) as counter:
        m.loss(x, x).backward()
    measured = counter.get_total_flops() / x.numel()
    assert abs(measured / flops_per_token(cfg, 16) - 1) < 0.03
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        m(x)
    assert abs(counter.get_total_flops() / x.numel() / flops_per_token(cfg, 16,
                                                                       training=False) - 1) < 0.03


def test_training_memory_is_16_bytes_per_parameter_in_fp32():
    mem = training_memory(GPTConfig.preset("gpt2"))
    assert mem["total"] == 16 * 124_439_808 == mem["weights"] + mem["gradients"] + mem["adam"]


# ------------------------------------------------------------------------------------------- bad
# input
def test_sequence_longer_than_context_is_a_clear_error():
    m = GPT(small())
    with pytest.raises(ValueError, match=r"T=17 exceeds the context block_size=16.*crop"):
        m(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("bad", [101, 5000, -1])
def test_token_ids_out_of_range_are_a_clear_error(bad):
    m = GPT(small())
    with pytest.raises(ValueError, match=rf"token id {bad} is out of range for vocab_size=101"):
        m(torch.tensor([[1, 2, bad]]))


def test_wrong_idx_types_and_shapes():
    m = GPT(small())
    with pytest.raises(TypeError, match="tensor of token ids"):
        m(torch.rand(1, 4))
    with pytest.raises(ValueError, match=r"\(B, T\).*idx\[None\]"):
        m(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="no tokens"):
        m(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(TypeError, match="tensor of token ids"):
        m([[1, 2, 3]])
    with pytest.raises(TypeError, match="needs a GPTConfig"):
        GPT(dict(SMALL))


@pytest.mark.parametrize("kw, match", [
    (dict(n_embd=30, n_head=4), "divisible by n_head"),
    (dict(position="absolute"), "not one of"),
    (dict(n_embd=36, n_head=4, position="rope"), "must be even"),
    (dict(n_embd=33, n_head=3, position="sinusoidal"), "must be even"),
    (dict(dropout=1.0), "dropout"),
    (dict(activation="relu"), "activation"),
    (dict(n_layer=0), "n_layer must be a positive int"),
    (dict(vocab_size=True), "vocab_size must be a positive int"),
    (dict(block_size=16.0), "block_size must be a positive int"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps"),
])
def test_invalid_configs_are_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)


def test_invalid_config_edited_after_construction_is_caught_by_gpt():
    cfg = small()
    cfg.n_head = 5
    with pytest.raises(ValueError, match="divisible"):
        GPT(cfg)
    with pytest.raises(TypeError, match="True or False"):
        small(bias="yes")
    with pytest.raises(ValueError, match="unknown preset"):
        GPTConfig.preset("gpt3")
    assert replace(GPTConfig.preset("micro"), position="alibi").n_layer == 4
