"""gptlib.lora and gptlib.lora_io: peft interop both ways on random configs, merge/unmerge, init,
save/load, bad input.

The configs, ranks, scales, dropouts and target sets are drawn from a seeded RNG (not chosen by
hand); the target pool includes "c_proj", which names a layer in both the attention and the MLP of
every block."""

import copy
import json
import random
import warnings

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from gptlib.lora import (
    LoRALinear,
    add_lora,
    lora_layers,
    merge_lora,
    remove_lora,
    trainable_parameters,
    unmerge_lora,
)
from gptlib.lora_io import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_lora, save_lora
from gptlib.model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")
hf_logging.set_verbosity_error()

TARGET_POOL = [
    ["c_proj"],
    ["c_attn"],
    ["c_attn", "c_proj", "c_fc"],
    ["attn.c_proj", "c_fc"],
    ["mlp.c_proj"],
    ["c_fc", "attn.c_attn"],
]


def _draw(seed, targets):
    rng = random.Random(seed)
    n_head = rng.choice([1, 2, 4])
    cfg = GPTConfig(
        vocab_size=rng.randint(40, 120),
        block_size=32,
        n_layer=rng.randint(1, 3),
        n_head=n_head,
        n_embd=n_head * rng.choice([4, 8, 12]),
    )
    r = rng.randint(1, 8)
    return cfg, r, rng.choice([1, 2 * r, 5, 16]), targets, rng.choice([0.0, 0.1, 0.3])


# every target set
CASES = [_draw(seed, targets) for seed, targets in zip((11, 22, 33, 44, 55, 66), TARGET_POOL)]
IDS = [f"L{c.n_layer}-C{c.n_embd}-r{r}-a{a}-{'+'.join(t)}-p{p}" for c, r, a, t, p in CASES]


def _base(cfg, seed=0):
    torch.manual_seed(seed)
    return GPT(cfg).eval()


def _hf(model, tmp_path):
    d = tmp_path / "base"
    model.save_pretrained(d)
    return d


def _randomize_B(named_params, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in named_params:
            if "lora_B" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def _diff(ours, theirs, x, dtype):
    ours, theirs = copy.deepcopy(ours).to(dtype).eval(), copy.deepcopy(theirs).to(dtype).eval()
    with torch.no_grad():
        return (ours(x) - theirs(input_ids=x).logits).abs().max().item()


def _x(cfg, seed=1):
    return torch.randint(0, cfg.vocab_size, (2, 17), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cfg,r,alpha,targets,dropout", CASES, ids=IDS)
def test_gptlib_adapter_loads_in_peft_with_the_same_logits(
    cfg, r, alpha, targets, dropout, tmp_path
):
    base = _base(cfg)
    model = add_lora(copy.deepcopy(base), r, alpha, targets, dropout).eval()
    _randomize_B(model.named_parameters(), 5)
    save_lora(model, tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert saved["peft_type"] == "LORA" and saved["r"] == r and saved["lora_alpha"] == alpha
    peft_model = PeftModel.from_pretrained(
        GPT2LMHeadModel.from_pretrained(_hf(base, tmp_path)), tmp_path / "adapter"
    )
    peft_lora = {
        n.removeprefix("base_model.model.")
        for n, m in peft_model.named_modules()
        if hasattr(m, "lora_A") and n.endswith(("c_attn", "c_proj", "c_fc"))
    }
    assert peft_lora == set(lora_layers(model))  # the same layers, no more, no fewer
    x = _x(cfg)
    assert _diff(model, peft_model, x, torch.float64) <= 1e-10
    assert _diff(model, peft_model, x, torch.float32) <= 1e-5
    # peft's merge (Conv1D: it transposes B A) agrees with ours
    merged_hf = peft_model.merge_and_unload()
    assert _diff(merge_lora(model), merged_hf, x, torch.float64) <= 1e-10


@pytest.mark.parametrize("cfg,r,alpha,targets,dropout", CASES, ids=IDS)
def test_peft_adapter_loads_in_gptlib_with_the_same_logits(
    cfg, r, alpha, targets, dropout, tmp_path
):
    base = _base(cfg, seed=3)
    hf = GPT2LMHeadModel.from_pretrained(_hf(base, tmp_path))
    torch.manual_seed(4)
    theirs = get_peft_model(
        hf,
        LoraConfig(
            r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=dropout, fan_in_fan_out=True
        ),
    ).eval()
    _randomize_B(theirs.named_parameters(), 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        theirs.save_pretrained(tmp_path / "peft")
    ours = load_lora(copy.deepcopy(base), tmp_path / "peft").eval()
    x = _x(cfg, 2)
    assert _diff(ours, theirs, x, torch.float64) <= 1e-10
    assert _diff(ours, theirs, x, torch.float32) <= 1e-5
    layer = next(iter(lora_layers(ours).values()))
    assert (
        layer.r == r
        and layer.scaling == alpha / r
        and getattr(layer.lora_dropout, "p", 0.0) == dropout
    )


@pytest.mark.parametrize("cfg,r,alpha,targets,dropout", CASES[:2], ids=IDS[:2])
def test_init_merge_unmerge_and_counts(cfg, r, alpha, targets, dropout):
    base = _base(cfg)
    x = _x(cfg)
    model = add_lora(copy.deepcopy(base), r, alpha, targets, dropout).eval()
    with torch.no_grad():
        assert torch.equal(model(x), base(x))  # B = 0: exactly the base model
    layers = lora_layers(model)
    want = sum(m.r * (m.in_features + m.out_features) for m in layers.values())
    assert trainable_parameters(model) == (want, base.num_params() + want)
    assert all(p.requires_grad == (".lora_" in n) for n, p in model.named_parameters())
    _randomize_B(model.named_parameters(), 7)
    weights = {n: m.base.weight.detach().clone() for n, m in layers.items()}
    m64 = copy.deepcopy(model).double()
    with torch.no_grad():
        y = m64(x)
        assert (merge_lora(m64)(x) - y).abs().max() <= 1e-10
        merge_lora(m64)  # a second merge is a no-op
        assert (m64(x) - y).abs().max() <= 1e-10
        assert (unmerge_lora(m64)(x) - y).abs().max() <= 1e-10
        y32 = model(x)
        assert (merge_lora(model)(x) - y32).abs().max() <= 1e-5
        unmerge_lora(model)
    assert all(torch.allclose(m.base.weight, weights[n], atol=1e-6) for n, m in layers.items())


def test_dropout_only_in_train_and_only_on_the_lora_path():
    cfg = CASES[0][0]
    model = add_lora(_base(cfg), 4, 8, ["c_attn"], dropout=0.5)
    x = _x(cfg)
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert torch.equal(a, model(x))  # B = 0: dropout on the LoRA path changes nothing
    _randomize_B(model.named_parameters(), 8)
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model(x))
    model.eval()
    with torch.no_grad():
        ref = copy.deepcopy(model)
        for layer in lora_layers(ref).values():
            layer.lora_dropout = torch.nn.Identity()  # the reference has no dropout at all
        assert torch.equal(model(x), ref(x))  # eval: no mask and no rescale


def _by_formula(layer, x, mask=None):
    """base(x) + (alpha / r) · B A (mask · x), written from the definition, not with the layer's "
    "forward."""
    xa = x if mask is None else x * mask
    A, B = layer.lora_A.weight, layer.lora_B.weight
    return torch.nn.functional.linear(x, layer.base.weight, layer.base.bias) + (
        layer.alpha / layer.r
    ) * (xa @ A.T @ B.T)


def test_a_lora_layer_is_base_plus_alpha_over_r_times_BA_in_eval_train_and_merged():
    torch.manual_seed(0)
    # alpha / r = 1.5, not 2 / 3
    layer = LoRALinear(torch.nn.Linear(6, 5), r=2, alpha=3.0, dropout=0.5)
    torch.nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(4, 6)
    with torch.no_grad():
        layer.eval()
        # eval: no dropout, no rescale
        assert torch.allclose(layer(x), _by_formula(layer, x), atol=1e-6)
        layer.train()
        torch.manual_seed(3)
        y = layer(x)
        torch.manual_seed(3)  # the same draw: dropout's mask of 0s and 1 / (1 - p)
        mask = torch.nn.functional.dropout(torch.ones_like(x), 0.5, training=True)
        assert torch.allclose(y, _by_formula(layer, x, mask), atol=1e-6)
        layer.eval()
        want = _by_formula(layer, x)
        w0 = layer.base.weight.clone()
        layer.merge()
        assert torch.allclose(
            layer.base.weight, w0 + 1.5 * layer.lora_B.weight @ layer.lora_A.weight, atol=1e-6
        )
        assert torch.allclose(layer(x), want, atol=1e-5)  # merged: the update counted once
        layer.unmerge()
        assert torch.allclose(layer.base.weight, w0, atol=1e-6) and torch.allclose(
            layer(x), want, atol=1e-5
        )


def test_save_load_round_trip_and_remove_lora(tmp_path):
    cfg, r, alpha, targets, dropout = CASES[1]
    base = _base(cfg)
    model = add_lora(copy.deepcopy(base), r, alpha, targets, dropout).eval()
    _randomize_B(model.named_parameters(), 9)
    save_lora(model, tmp_path / "a")
    again = load_lora(copy.deepcopy(base), tmp_path / "a").eval()
    x = _x(cfg)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert trainable_parameters(again) == trainable_parameters(model)
    assert set(lora_layers(again)) == set(lora_layers(model))
    save_lora(model, tmp_path / "a", overwrite=True)  # replacing is allowed when asked for
    with torch.no_grad():
        y = model(x)
        plain = remove_lora(model)
        assert not lora_layers(plain) and all(p.requires_grad for p in plain.parameters())
        assert (plain(x) - y).abs().max() <= 1e-5
    hf = GPT2LMHeadModel.from_pretrained(plain.save_pretrained(tmp_path / "merged"))
    assert _diff(plain, hf, x, torch.float32) <= 1e-5


def test_bfloat16_model_gets_bfloat16_adapters():
    model = add_lora(_base(CASES[0][0]).to(torch.bfloat16), 2, 4, ["c_fc"])
    assert all(
        m.lora_A.weight.dtype == torch.bfloat16 == m.lora_B.weight.dtype
        for m in lora_layers(model).values()
    )
    assert model(_x(CASES[0][0])).dtype == torch.bfloat16


# --------------------------------------------------------------------------------------- bad input
def _state(model):
    return (
        [type(m).__name__ for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
    )


@pytest.mark.parametrize(
    "args,err,match",
    [
        ((4, 8, ["attn"]), TypeError, "wraps nn.Linear.*MultiHeadAttention.*c_attn"),
        ((4, 8, ["ln_1"]), TypeError, "wraps nn.Linear"),
        ((4, 8, ["q_proj"]), ValueError, "matches no module.*c_attn"),
        # the valid one is not applied either
        ((4, 8, ["c_attn", "q_proj"]), ValueError, "matches no module"),
        ((0, 8, ["c_attn"]), ValueError, "r must be a positive int"),
        ((-2, 8, ["c_attn"]), ValueError, "r must be a positive int"),
        ((2.5, 8, ["c_attn"]), ValueError, "r must be a positive int"),
        ((4, 0, ["c_attn"]), ValueError, "alpha must be a number > 0"),
        ((4, -1.0, ["c_attn"]), ValueError, "alpha must be a number > 0"),
        ((4, float("nan"), ["c_attn"]), ValueError, "alpha must be a number > 0"),
        ((4, 8, "c_attn"), TypeError, "list of module names"),
        ((4, 8, []), TypeError, "list of module names"),
        ((4, 8, ["lm_head"]), ValueError, "tied weights"),
    ],
)
def test_add_lora_bad_input_changes_nothing(args, err, match):
    model = _base(CASES[0][0])
    before = _state(model)
    with pytest.raises(err, match=match):
        add_lora(model, *args)
    assert _state(model) == before


def test_add_lora_twice_and_bad_dropout():
    model = add_lora(_base(CASES[0][0]), 2, 4, ["c_attn"])
    before = _state(model)
    with pytest.raises(ValueError, match="already has LoRA.*remove_lora"):
        add_lora(model, 2, 4, ["c_fc", "c_attn"])
    assert _state(model) == before
    with pytest.raises(ValueError, match="dropout must be in"):
        add_lora(model, 2, 4, ["c_fc"], dropout=1.0)
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(torch.nn.Embedding(3, 4), 2, 4)
    for f in (merge_lora, unmerge_lora, remove_lora):
        with pytest.raises(ValueError, match="no LoRA layers"):
            f(_base(CASES[0][0]))


def test_save_lora_refuses_to_overwrite_and_mixed_settings(tmp_path):
    model = add_lora(_base(CASES[0][0]), 2, 4, ["c_attn"])
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty.*overwrite=True"):
        save_lora(model, tmp_path / "keep")
    assert [p.name for p in (tmp_path / "keep").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        save_lora(model, tmp_path / "file")
    with pytest.raises(ValueError, match="no LoRA layers"):
        save_lora(_base(CASES[0][0]), tmp_path / "none")
    add_lora(model, 3, 4, ["c_fc"])
    with pytest.raises(ValueError, match="same settings"):
        save_lora(model, tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()


@pytest.fixture
def adapter(tmp_path):
    cfg = CASES[0][0]
    model = add_lora(_base(cfg), 2, 4, ["c_attn", "c_proj"])
    return save_lora(model, tmp_path / "adapter"), cfg


def _edit_config(directory, **changes):
    cfg = json.loads((directory / ADAPTER_CONFIG).read_text())
    cfg.update(changes)
    (directory / ADAPTER_CONFIG).write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(use_dora=True), "use_dora=True"),
        (dict(bias="all"), "bias='all'"),
        (dict(bias="lora_only"), "bias='lora_only'"),
        (dict(modules_to_save=["lm_head"]), "modules_to_save"),
        (dict(use_rslora=True), "use_rslora"),
        (dict(rank_pattern={"c_attn": 8}), "rank_pattern"),
        (dict(alpha_pattern={"c_attn": 8}), "alpha_pattern"),
        (dict(layers_to_transform=[0]), "layers_to_transform"),
        (dict(init_lora_weights="pissa"), "init_lora_weights='pissa'"),
        (dict(trainable_token_indices=[1, 2]), "trainable_token_indices"),
        (dict(peft_type="IA3"), "LoRA adapters only"),
        (dict(r=0), "r must be a positive int"),
        (dict(target_modules=["c_attn"]), "select .* layers of this model, but the weights cover"),
    ],
)
def test_load_lora_refuses_unsupported_configs(adapter, changes, match):
    directory, cfg = adapter
    _edit_config(directory, **changes)
    model = _base(cfg)
    before = _state(model)
    with pytest.raises(ValueError, match=match):
        load_lora(model, directory)
    assert _state(model) == before


def test_load_lora_refuses_another_model_shape(adapter):
    directory, cfg = adapter
    wider = GPTConfig(**{**cfg.__dict__, "n_embd": cfg.n_embd * 2})
    deeper = GPTConfig(**{**cfg.__dict__, "n_layer": cfg.n_layer + 1})
    shallower = (
        GPTConfig(**{**cfg.__dict__, "n_layer": cfg.n_layer - 1}) if cfg.n_layer > 1 else None
    )
    cases = [(wider, "needs .*another model shape"), (deeper, "select .* layers.*no weights for")]
    if shallower is not None:
        cases.append((shallower, "lacks: it was made for another model"))
    for other, match in cases:
        model = _base(other)
        before = _state(model)
        with pytest.raises(ValueError, match=match):
            load_lora(model, directory)
        assert _state(model) == before


def test_load_lora_bad_folders_and_files(adapter, tmp_path):
    directory, cfg = adapter
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_lora(_base(cfg), tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        load_lora(_base(cfg), tmp_path / "empty")
    with pytest.raises(ValueError, match="already has LoRA layers"):
        load_lora(add_lora(_base(cfg), 2, 4, ["c_fc"]), directory)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(directory / ADAPTER_WEIGHTS))
    key = next(k for k in tensors if k.endswith("lora_B.weight"))
    save_file(
        {**tensors, key.replace("lora_B", "lora_magnitude_vector"): tensors[key][:, 0].clone()},
        str(directory / ADAPTER_WEIGHTS),
    )
    with pytest.raises(ValueError, match="not a plain LoRA weight"):
        load_lora(_base(cfg), directory)
    save_file({k: v for k, v in tensors.items() if k != key}, str(directory / ADAPTER_WEIGHTS))
    with pytest.raises(ValueError, match="not both lora_A and lora_B"):
        load_lora(_base(cfg), directory)
    (directory / ADAPTER_WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match="no adapter_model.safetensors"):
        load_lora(_base(cfg), directory)
