"""GPT.from_pretrained / save_pretrained against Hugging Face transformers' GPT-2, both directions,
offline."""
import json
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, GPT2Model
from transformers.utils import logging as hf_logging

import gptlib.hf as ghf
from gptlib.model import GPT, GPTConfig

hf_logging.set_verbosity_error()
TOL = 1e-4


def perturb(model, seed=0):
    """Non-trivial values everywhere (biases and LayerNorms included), so a missed copy or
    transpose shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def hf_model(n_head, n_embd, impl="eager", **kw):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=101, n_positions=32, n_layer=2, n_head=n_head, n_embd=n_embd, **kw)
    return perturb(AutoModelForCausalLM.from_config(cfg, attn_implementation=impl).eval())


def tokens(T=32, B=3, seed=1):
    return torch.randint(0, 101, (B, T), generator=torch.Generator().manual_seed(seed))


def max_err(a, b):
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------------------- HF ->
# gptlib
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("n_head, n_embd", [(3, 48), (4, 64)])
def test_transformers_checkpoint_loads_with_equal_logits(tmp_path, n_head, n_embd, impl):
    hf = hf_model(n_head, n_embd, impl)
    assert hf.config._attn_implementation == impl
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path).eval()
    assert ours.config.n_head == n_head and ours.config.n_embd == n_embd and ours.config.block_size == 32
    x = tokens()
    with torch.no_grad():
        assert max_err(ours(x), hf(x).logits) < TOL
        assert max_err(ours(x[:, :7]), hf(x[:, :7]).logits) < TOL


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_eval_mode_with_dropout_equals_transformers_in_eval_mode(tmp_path, impl):
    """A checkpoint trained with dropout (0.2 on embeddings, attention weights and residuals): in
    eval mode
    ours and transformers' give the same logits, so dropout (or a rescale for it) never acts at
    eval."""
    hf = hf_model(4, 64, impl, resid_pdrop=0.2, embd_pdrop=0.2, attn_pdrop=0.2)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path).eval()
    assert ours.config.dropout == 0.2
    x = tokens()
    with torch.no_grad():
        assert max_err(ours(x), hf(x).logits) < TOL


def test_pytorch_model_bin_loads(tmp_path):
    hf = hf_model(4, 64)
    hf.config.to_json_file(tmp_path / "config.json")
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    ours = GPT.from_pretrained(tmp_path).eval()
    x = tokens()
    with torch.no_grad():
        assert max_err(ours(x), hf(x).logits) < TOL


def test_bare_gpt2model_keys_load(tmp_path):
    """The hub's original 'gpt2' checkpoint stores GPT2Model keys without the 'transformer.'
    prefix."""
    hf = hf_model(4, 64)
    base = GPT2Model(hf.config)
    base.load_state_dict(hf.transformer.state_dict())
    sd = {k: v.contiguous() for k, v in base.state_dict().items()}
    assert not any(k.startswith("transformer.") for k in sd)
    for i in range(2):   # old checkpoints also store the causal-mask buffers; they are not weights
        sd[f"h.{i}.attn.bias"] = torch.ones(1, 1, 32, 32).tril()
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf.config.to_json_file(tmp_path / "config.json")
    ours = GPT.from_pretrained(tmp_path).eval()
    x = tokens()
    with torch.no_grad():
        assert max_err(ours(x), hf(x).logits) < TOL


def test_exact_gelu_and_untied_checkpoints_load(tmp_path):
    hf = hf_model(4, 64, activation_function="gelu", tie_word_embeddings=False)
    assert hf.lm_head.weight is not hf.transformer.wte.weight
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path).eval()
    assert ours.config.activation == "gelu" and not ours.config.tie_weights
    x = tokens()
    with torch.no_grad():
        assert max_err(ours(x), hf(x).logits) < TOL


def test_overrides_apply(tmp_path):
    hf_model(4, 64).save_pretrained(tmp_path)
    m = GPT.from_pretrained(tmp_path, dropout=0.0, fused_attention=False)
    assert m.config.dropout == 0.0 and m.config.fused_attention is False


# -------------------------------------------------------------------------------------------
# gptlib -> HF
@pytest.mark.parametrize("kw", [{}, {"n_head": 3, "n_embd": 48}, {"tie_weights": False},
                                {"activation": "gelu", "layer_norm_eps": 1e-3}])
def test_saved_model_loads_in_transformers_with_equal_logits(tmp_path, kw):
    torch.manual_seed(0)
    cfg = GPTConfig(**{**dict(vocab_size=101, block_size=32, n_layer=2, n_head=4, n_embd=64), **kw})
    ours = perturb(GPT(cfg)).eval()
    ours.save_pretrained(tmp_path / "ckpt")
    x = tokens()
    for impl in ("eager", "sdpa"):
        hf = GPT2LMHeadModel.from_pretrained(tmp_path / "ckpt", attn_implementation=impl).eval()
        with torch.no_grad():
            assert max_err(hf(x).logits, ours(x)) < TOL, impl
    back = GPT.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        assert torch.equal(back(x), ours(x))


def test_saved_files_are_in_hf_format(tmp_path):
    ours = GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=2, n_head=4, n_embd=64))
    ours.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["architectures"] == ["GPT2LMHeadModel"]
    assert (cfg["n_positions"], cfg["n_embd"], cfg["n_layer"], cfg["n_head"],
            cfg["vocab_size"]) == (32, 64, 2, 4, 101)
    assert cfg["activation_function"] == "gelu_new" and cfg["tie_word_embeddings"] is True
    sd = load_file(str(tmp_path / "model.safetensors"))
    assert "lm_head.weight" not in sd                                     # tied: HF re-ties it
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (64, 192)    # Conv1D layout (in, out)
    assert sd["transformer.h.1.mlp.c_proj.weight"].shape == (256, 64)
    torch.testing.assert_close(sd["transformer.h.0.mlp.c_fc.weight"],
                               ours.transformer.h[0].mlp.c_fc.weight.t())


def test_greedy_generation_matches_transformers(tmp_path):
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=2, n_head=4, n_embd=64)).eval()
    ours.save_pretrained(tmp_path)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = tokens(T=5, B=1)
    with torch.no_grad():
        for _ in range(10):
            idx = torch.cat([idx, ours(idx)[:, -1].argmax(-1, keepdim=True)], 1)
    want = hf.generate(idx[:, :5], attention_mask=torch.ones(1, 5, dtype=torch.long),
                       max_new_tokens=10,
                       do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(idx, want)


# -------------------------------------------------------------------------------------------
# refusals
@pytest.mark.parametrize("kw, match", [({"position": "rope"}, "position='rope'"),
                                       ({"position": "alibi"}, "position='alibi'"),
                                       ({"position": "sinusoidal"}, "position='sinusoidal'"),
                                       ({"bias": False}, "bias=False")])
def test_non_gpt2_configs_cannot_be_saved_in_hf_format(tmp_path, kw, match):
    m = GPT(GPTConfig(**{**dict(vocab_size=101, block_size=32, n_layer=1, n_head=4, n_embd=64),
                         **kw}))
    with pytest.raises(ValueError, match=match):
        m.save_pretrained(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_refuses_to_overwrite_unless_asked(tmp_path):
    a = GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=1, n_head=4, n_embd=64))
    b = perturb(GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=1, n_head=4, n_embd=64)))
    a.save_pretrained(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        b.save_pretrained(tmp_path)
    x = tokens()
    with torch.no_grad():
        assert torch.equal(GPT.from_pretrained(tmp_path).eval()(x), a.eval()(x))
        b.save_pretrained(tmp_path, overwrite=True)
        assert torch.equal(GPT.from_pretrained(tmp_path).eval()(x), b.eval()(x))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError):
        a.save_pretrained(tmp_path / "afile")
    a.save_pretrained(tmp_path / "new" / "nested")        # creates missing folders
    assert (tmp_path / "new" / "nested" / "config.json").exists()


def test_a_failed_save_leaves_no_half_written_checkpoint(tmp_path, monkeypatch):
    import safetensors.torch as st
    m = GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=1, n_head=4, n_embd=64))

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(st, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        m.save_pretrained(tmp_path / "fresh")
    # no folder, nothing half-written, no temp files
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    m.save_pretrained(tmp_path / "old")
    before = (tmp_path / "old" / "model.safetensors").read_bytes()
    monkeypatch.setattr(st, "save_file", broken)
    with pytest.raises(OSError):
        perturb(m).save_pretrained(tmp_path / "old", overwrite=True)
    # the old checkpoint survives
    assert (tmp_path / "old" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["config.json",
                                                                    "model.safetensors"]


def test_shape_mismatch_is_a_clear_error(tmp_path):
    hf_model(4, 64).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["n_embd"], cfg["n_head"] = 32, 4
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"transformer\.wte\.weight has shape \(101, 64\).*needs "
                                         r"\(101, 32\)"):
        GPT.from_pretrained(tmp_path)


def test_transposed_shape_mismatch_names_the_conv1d_layout(tmp_path):
    hf = hf_model(4, 64)
    sd = {k: v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    # nn.Linear layout
    sd["transformer.h.0.mlp.c_fc.weight"] = sd["transformer.h.0.mlp.c_fc.weight"].t().contiguous()
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf.config.to_json_file(tmp_path / "config.json")
    with pytest.raises(ValueError, match=r"h\.0\.mlp\.c_fc\.weight has shape \(256, 64\) \(Conv1D "
                                         r"layout"):
        GPT.from_pretrained(tmp_path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    hf = hf_model(4, 64)
    sd = {k: v.contiguous() for k, v in hf.state_dict().items() if k not in ("lm_head.weight",)}
    del sd["transformer.h.1.ln_2.bias"]
    sd["transformer.h.1.extra.weight"] = torch.zeros(3)
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf.config.to_json_file(tmp_path / "config.json")
    with pytest.raises(ValueError,
                       match=r"missing \['transformer\.h\.1\.ln_2\.bias'\].*extra\.weight"):
        GPT.from_pretrained(tmp_path)


@pytest.mark.parametrize("edit, match", [({"model_type": "llama"}, "only GPT-2"),
                                         ({"n_inner": 100}, "n_inner"),
                                         ({"activation_function": "relu"}, "activation_function"),
                                         ({"scale_attn_by_inverse_layer_idx": True},
                                          "scale_attn_by_inverse")])
def test_unsupported_configs_are_rejected(tmp_path, edit, match):
    hf_model(4, 64).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(edit)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=match):
        GPT.from_pretrained(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        GPT.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        GPT.from_pretrained(tmp_path)
    hf_model(4, 64).config.to_json_file(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="no model.safetensors or pytorch_model.bin"):
        GPT.from_pretrained(tmp_path)
    with pytest.raises(NotADirectoryError):
        GPT.from_pretrained(tmp_path / "config.json")


# ------------------------------------------------------------------------------------------- the
# hub, offline
def test_hub_name_offline_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # an empty cache: nothing to find locally
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    # so "gpt2" is not a local folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match=r"(?s)could not load 'gpt2'.*offline mode.*local checkpoint "
                                      r"directory"):
        GPT.from_pretrained("gpt2")


def test_hub_name_without_huggingface_hub_fails_with_a_clear_message(tmp_path, monkeypatch):
    # import fails as if not installed
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImportError, match="pip install huggingface_hub"):
        GPT.from_pretrained("openai-community/gpt2")


def test_offline_detection_reads_the_environment(monkeypatch):
    for v in ghf._OFFLINE_VARS:
        monkeypatch.delenv(v, raising=False)
    assert not ghf._is_offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert ghf._is_offline()


def test_module_level_functions_equal_the_methods(tmp_path):
    """gptlib.hf.save_pretrained / from_pretrained are the functions behind the methods, usable on
    their own."""
    torch.manual_seed(0)
    ours = perturb(GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=2, n_head=4,
                                 n_embd=64))).eval()
    ghf.save_pretrained(ours, tmp_path / "a")
    ours.save_pretrained(tmp_path / "b")
    assert (tmp_path / "a" / "config.json").read_text() == (tmp_path / "b" / "config.json").read_text()
    x = tokens()
    with torch.no_grad():
        assert torch.equal(ghf.from_pretrained(tmp_path / "a").eval()(x), ours(x))
    assert ghf.config_from_hf(json.loads((tmp_path / "a" / "config.json").read_text())) == ours.config
    sd = ghf.read_state_dict(tmp_path / "a")
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (64, 192)     # Conv1D layout on disk
    fresh = GPT(ours.config).eval()
    ghf.load_hf_state_dict(fresh, sd)
    with torch.no_grad():
        assert torch.equal(fresh(x), ours(x))
