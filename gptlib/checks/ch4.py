"""Checks for Chapter 4's exercises (the GPT model): LayerNorm, gelu_tanh, Block.forward, count_params.

Each check compares the learner's code with PyTorch (F.layer_norm, F.gelu) or with gptlib.model, on inputs chosen
so that the common mistakes show: distinct sizes, non-zero means, a large mean (|mean| ≫ std), non-trivial
LayerNorm weights, a large eps, large |x| for the GELU, isolation cases (T=1, bias=False), in-place modification
of the input, float64 inputs, gradients by value, and another device (meta, or CUDA when present). The functions
the exercise forbids (F.layer_norm, F.gelu, building the model to count it) raise during the check.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from gptlib import layers as _layers
from gptlib import model as _model
from gptlib.checks import checker, forbid, unchanged

__all__ = ["check_layer_norm", "check_gelu_tanh", "check_block", "check_count_params", "check_hidden_states"]

_LN = ("layer_norm", "native_layer_norm", "group_norm", "rms_norm")
_LN_HINT = "write LayerNorm from scratch: do not call F.layer_norm or nn.LayerNorm (the check compares with them)"


# ----------------------------------------------------------------------------------------------- LayerNorm
def _ln_mistakes(x, w, b, eps):
    def build():
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        bb = b if b is not None else 0.0
        c = {
            "eps must go inside the square root: (x - mean) / sqrt(var + eps), not sqrt(var) + eps":
                (x - mean) / (var.sqrt() + eps) * w + bb,
            "use the biased variance (divide by C, unbiased=False), not torch.var's default C - 1":
                (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + bb,
            "the learned scale and shift are missing: multiply by self.weight and add self.bias after normalising":
                (x - mean) / torch.sqrt(var + eps),
            "the shift is missing: add self.bias after scaling by self.weight":
                (x - mean) / torch.sqrt(var + eps) * w,
        }
        naive = (x * x).mean(-1, keepdim=True) - mean * mean  # E[x²] − E[x]² in x's dtype
        if not torch.allclose(naive.double(), var.double(), rtol=1e-3):
            c["the variance as mean(x²) − mean(x)² loses all precision when |mean| ≫ std (catastrophic cancellation "
              "in float32): compute ((x - mean) ** 2).mean(-1)"] = \
                (x - mean) / torch.sqrt(naive.clamp(min=0) + eps) * w + bb
        if x.dim() >= 2:
            for dim in range(x.dim() - 1):
                m0 = x.mean(dim, keepdim=True)
                v0 = (x - m0).pow(2).mean(dim, keepdim=True)
                c[f"normalise over the last dimension (the C channels of each vector), not dim {dim}"] = \
                    (x - m0) / torch.sqrt(v0 + eps) * w + bb
        return c
    return build


def check_layer_norm(LayerNorm: type) -> None:
    """LayerNorm(ndim, eps=..., bias=...) equals F.layer_norm (values, dtype, gradients), with non-trivial weight/bias
    and a large eps, computed from scratch."""
    with checker("LayerNorm", LayerNorm, solution=_layers.LayerNorm) as c:
        g = torch.Generator().manual_seed(4)

        def build(C, eps, bias):
            with forbid(_LN, _LN_HINT):
                ln = c.call(f"LayerNorm({C}, eps={eps}, bias={bias})", LayerNorm, C, eps=eps, bias=bias)
            w = getattr(ln, "weight", None)
            c.expect(isinstance(w, torch.nn.Parameter) and tuple(w.shape) == (C,), f"LayerNorm({C}).weight",
                     f"self.weight must be a ({C},) Parameter, got {w if w is None else tuple(w.shape)}")
            c.expect(hasattr(ln, "bias") and (ln.bias is None) == (not bias), f"LayerNorm({C}, bias={bias}).bias",
                     "self.bias must be a (C,) Parameter when bias=True and None when bias=False")
            with torch.no_grad():
                ln.weight.copy_(1.0 + 0.5 * torch.randn(C, generator=g))
                if ln.bias is not None:
                    ln.bias.copy_(0.7 * torch.randn(C, generator=g))
            return ln

        cases = [((2, 5, 12), 1e-5, True, 3.0), ((3, 7), 1.0, True, 3.0), ((4, 1, 6), 1.0, False, 3.0),
                 ((1, 1, 10), 0.5, True, 3.0), ((2, 3, 4, 8), 1e-5, True, 3.0),
                 ((2, 4, 16), 1e-5, True, 1000.0)]                          # |mean| ≫ std: cancellation shows
        for shape, eps, bias, mean in cases:
            C = shape[-1]
            ln = build(C, eps, bias)
            x = mean + 2.0 * torch.randn(*shape, generator=g)          # non-zero mean, non-unit variance
            case = f"x {tuple(shape)} (mean ≈ {mean:g}), eps={eps}, bias={bias}"
            with forbid(_LN, _LN_HINT):
                got = c.call(case, ln, x, inplace="x was modified in place: compute new tensors instead of "
                                                  "x.sub_/x -= ...")
            want = F.layer_norm(x, (C,), ln.weight, ln.bias, eps)
            c.close(got, want, case,
                    "compare with (x - mean) / sqrt(var + eps) * weight + bias over the last dimension",
                    atol=1e-5 if mean < 100 else 1e-3, mistakes=_ln_mistakes(x, ln.weight, ln.bias, eps))
        # float64 module and input: a float64 result
        ln = build(6, 1e-5, True).double()
        x = torch.randn(3, 6, generator=g, dtype=torch.float64) + 1
        with forbid(_LN, _LN_HINT):
            got = c.call("float64 LayerNorm and x (3, 6)", ln, x)
        c.close(got, F.layer_norm(x, (6,), ln.weight, ln.bias, 1e-5), "float64 LayerNorm and x (3, 6)",
                "compute in the input's dtype")
        # gradients by value, against F.layer_norm's (w.r.t. x, weight and bias)
        ln = build(6, 1e-5, True)
        x0 = torch.randn(2, 3, 6, generator=g) * 2 + 1
        xg, xr = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        wr, br = ln.weight.detach().clone().requires_grad_(), ln.bias.detach().clone().requires_grad_()
        with forbid(_LN, _LN_HINT):
            got = c.call("backward", ln, xg)
        c.grads("x (2, 3, 6), backward", got, F.layer_norm(xr, (6,), wr, br, 1e-5),
                {"x": xg, "weight": ln.weight, "bias": ln.bias}, {"x": xr, "weight": wr, "bias": br},
                "the mean and the variance must be part of the autograd graph: no torch.no_grad(), .detach() or "
                ".item() around them")
        # another device: nothing may be built on the CPU
        for bias in (True, False):
            ln = build(6, 1e-5, bias).to(c.device)
            xm = torch.randn(2, 3, 6, device=c.device)
            case = f"LayerNorm(6, bias={bias}) and x on device {c.device!r}"
            with forbid(_LN, _LN_HINT):
                got = c.device_run(case, ln, xm)
            if got is not None:
                c.like(got, F.layer_norm(xm, (6,), ln.weight, ln.bias, 1e-5), case, "wrong result")


# ----------------------------------------------------------------------------------------------- GELU
def check_gelu_tanh(gelu_tanh: Callable) -> None:
    """gelu_tanh(x) equals F.gelu(x, approximate="tanh") (and is not the exact erf GELU), with torch.tanh, not F.gelu,
    in the input's dtype, for large |x| too."""
    shortcut = "write the formula with torch.tanh: do not call F.gelu / nn.GELU (the check compares with them)"
    with checker("gelu_tanh", gelu_tanh, solution=_layers.gelu_tanh) as c:
        g = torch.Generator().manual_seed(5)
        cases = [(torch.linspace(-6, 6, 241, dtype=torch.float64), 1e-7, 1e-6),
                 (torch.randn(2, 3, 5, generator=g, dtype=torch.float64) * 2, 1e-7, 1e-6),
                 (torch.tensor([0.0, 1.0, -1.0, 2.5], dtype=torch.float64), 1e-7, 1e-6),
                 (torch.linspace(-30, 30, 121), 1e-5, 1e-5),                       # float32, |x| up to 30
                 (torch.tensor([-50.0, -20.0, -11.0, 11.0, 20.0, 50.0], dtype=torch.float64), 1e-7, 1e-6)]
        for x, atol, rtol in cases:
            case = f"{x.dtype} x of shape {tuple(x.shape)}, |x| ≤ {x.abs().max().item():g}"
            with forbid(("gelu",), shortcut):
                got = c.call(case, gelu_tanh, x, inplace="x was modified in place")
            k = (2.0 / torch.pi) ** 0.5
            t = 2 * k * (x + 0.044715 * x**3)
            mistakes = {
                "that is the exact GELU (erf); GPT-2 uses the tanh approximation": lambda: F.gelu(x),
                "the 0.044715 * x**3 term is missing inside the tanh": lambda: 0.5 * x * (1 + torch.tanh(k * x)),
                "the constant is sqrt(2/pi) ≈ 0.7979, not 2/pi":
                    lambda: 0.5 * x * (1 + torch.tanh((2 / torch.pi) * (x + 0.044715 * x**3))),
                "the constant is sqrt(2/pi) ≈ 0.7979, not sqrt(2)/pi":
                    lambda: 0.5 * x * (1 + torch.tanh((2 ** 0.5 / torch.pi) * (x + 0.044715 * x**3))),
                "the leading factor is 0.5 * x": lambda: x * (1 + torch.tanh(k * (x + 0.044715 * x**3))),
                "NaN/inf for large |x|: tanh written with exp overflows (exp(2z) = inf, inf/inf = NaN); use torch.tanh":
                    lambda: 0.5 * x * (1 + (torch.exp(t) - 1) / (torch.exp(t) + 1)),
                "NaN/inf for large |x|: tanh written with exp overflows (exp(-2z) = inf for large negative z); use "
                "torch.tanh": lambda: 0.5 * x * (1 + (1 - torch.exp(-t)) / (1 + torch.exp(-t))),
            }
            c.close(got, F.gelu(x, approximate="tanh"), case, "use 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * "
                    "x**3)))", atol=atol, rtol=rtol, mistakes=mistakes,
                    near="almost: a rounded constant? write math.sqrt(2 / math.pi) (0.7979 is only 4 digits; the "
                         "check compares to ~1e-7) and 0.044715 exactly")
        x0 = torch.linspace(-4, 4, 33, dtype=torch.float64)
        xg, xr = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        with forbid(("gelu",), shortcut):
            got = c.call("backward", gelu_tanh, xg)
        c.grads("x in [-4, 4], backward", got, F.gelu(xr, approximate="tanh"), {"x": xg}, {"x": xr},
                "differentiate through torch ops only (no .item(), no .detach(), no torch.no_grad())", atol=1e-7)
        xm = torch.randn(2, 5, device=c.device)
        case = f"x (2, 5) on device {c.device!r}"
        with forbid(("gelu",), shortcut):
            got = c.device_run(case, gelu_tanh, xm)
        if got is not None:
            c.like(got, F.gelu(xm, approximate="tanh"), case, "wrong result")


# ----------------------------------------------------------------------------------------------- Block
def _randomise(module: torch.nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.dim() == 1:               # LayerNorm gains around 1
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def _block_mistakes(b, x, rotary, attn_bias):
    def build():
        a = lambda h: b.attn(h, rotary=rotary, attn_bias=attn_bias)  # noqa: E731
        out = {}
        with torch.no_grad():
            y = a(b.ln_1(x))
            out["the attention branch must be added to x (x = x + attn(ln_1(x))): residual missing"] = \
                y + b.mlp(b.ln_2(y))
            y = x + a(b.ln_1(x))
            out["the MLP branch must be added to x (x = x + mlp(ln_2(x))): residual missing"] = b.mlp(b.ln_2(y))
            y = b.ln_1(x + a(x))
            out["that is post-LN (LayerNorm after the sum); GPT-2 is pre-LN: x + attn(ln_1(x))"] = b.ln_2(y + b.mlp(y))
            y = x + a(b.ln_1(x))
            out["the MLP reads ln_2(x), not ln_1(x)"] = y + b.mlp(b.ln_1(y))
            y = x + b.mlp(b.ln_2(x))
            out["attention comes first, then the MLP"] = y + a(b.ln_1(y))
            if rotary is not None or attn_bias is not None:
                y = x + b.attn(b.ln_1(x))
                out["pass rotary=rotary and attn_bias=attn_bias on to self.attn"] = y + b.mlp(b.ln_2(y))
        return out
    return build


def check_block(Block: type) -> None:
    """Block(config).forward(x, rotary=, attn_bias=) equals gptlib.model.Block with the same weights: values,
    gradients, eval() with dropout, another device."""
    from gptlib.model import Block as RefBlock, GPTConfig
    from gptlib.position import ALiBi, RotaryEmbedding

    with checker("Block", Block, solution=_model.Block) as c:
        g = torch.Generator().manual_seed(6)

        def build(cfg):
            ref = RefBlock(cfg).eval()
            _randomise(ref, g)
            blk = c.call(f"Block({cfg})", Block, cfg).eval()
            names = {k: tuple(p.shape) for k, p in blk.state_dict().items()}
            want = {k: tuple(p.shape) for k, p in ref.state_dict().items()}
            c.expect(names == want, "Block(config) parameters", f"parameters {sorted(names)} should be {sorted(want)} "
                     "(ln_1, attn, ln_2, mlp are given: keep them)")
            blk.load_state_dict(ref.state_dict())
            return blk, ref

        cfg = GPTConfig(vocab_size=50, block_size=16, n_layer=3, n_head=3, n_embd=12)
        blk, ref = build(cfg)
        rope, alibi = RotaryEmbedding(cfg.head_dim), ALiBi(cfg.n_head)
        rT = c.rng.randint(17, 80)
        for T, hooks, label in ((5, {}, "no position hooks"), (5, {"rotary": rope}, "rotary=RoPE"),
                                (5, {"attn_bias": alibi(5)}, "attn_bias=ALiBi"), (1, {}, "T=1"),
                                (rT, {"rotary": rope}, f"rotary=RoPE, random T (seed {c.seed})")):
            x = 0.5 + 1.5 * torch.randn(2, T, cfg.n_embd, generator=g)
            case = f"x {tuple(x.shape)}, {label}"
            with torch.no_grad():
                got = c.call(case, lambda t: blk(t, **hooks), x,
                             inplace="x was modified in place (x += ...): write x = x + ... instead")
                want = ref(x, **hooks)
            c.close(got, want, case, "x = x + attn(ln_1(x), rotary=..., attn_bias=...); then x = x + mlp(ln_2(x))",
                    mistakes=_block_mistakes(ref, x, hooks.get("rotary"), hooks.get("attn_bias")))
        # gradients by value: w.r.t. x and every parameter
        x0 = torch.randn(2, 4, cfg.n_embd, generator=g)
        xg, xr = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        got = c.call("backward", lambda t: blk(t, attn_bias=alibi(4)), xg)
        c.grads("x (2, 4, 12), attn_bias=ALiBi, backward", got, ref(xr, attn_bias=alibi(4)),
                {"x": xg, **dict(blk.named_parameters())}, {"x": xr, **dict(ref.named_parameters())},
                "both residual paths must carry gradients (x = x + f(x), no .detach(), no torch.no_grad())")
        # dropout > 0: off in eval()
        cfg_d = GPTConfig(vocab_size=50, block_size=16, n_layer=3, n_head=3, n_embd=12, dropout=0.3)
        blk_d, ref_d = build(cfg_d)
        x = torch.randn(2, 5, 12, generator=g)
        with torch.no_grad():
            c.close(c.call("dropout=0.3, eval()", blk_d, x), ref_d(x), "dropout=0.3, eval()",
                    "in eval() mode nothing is dropped: call the submodules, which know whether they are training")
        # another device
        blk_m, ref_m = blk.to(c.device), ref.to(c.device)
        xm = torch.randn(2, 5, 12, device=c.device)
        for hooks, label in (({"rotary": rope}, "rotary=RoPE"), ({"attn_bias": alibi.to(c.device)(5)}, "ALiBi")):
            case = f"x (2, 5, 12) on device {c.device!r}, {label}"
            with torch.no_grad():
                got = c.device_run(case, lambda t: blk_m(t, **hooks), xm)
                if got is not None:
                    c.like(got, ref_m(xm, **hooks), case, "wrong result")


# ----------------------------------------------------------------------------------------------- counting
def check_count_params(count_params: Callable) -> None:
    """count_params(config) equals the parameter count of GPT(config) (built here on the meta device), computed
    from the config alone: building the model or any tensor inside count_params fails."""
    from gptlib.model import GPT, GPTConfig

    with checker("count_params", count_params) as c:
        small: dict[str, Any] = dict(vocab_size=101, block_size=32, n_layer=3, n_head=3, n_embd=48)
        configs = [GPTConfig.preset("gpt2"), GPTConfig(**small), GPTConfig(**small, tie_weights=False),
                   GPTConfig(**small, bias=False), GPTConfig(**small, position="sinusoidal"),
                   GPTConfig(**small, position="rope"), GPTConfig(**small, position="alibi", bias=False,
                                                                tie_weights=False),
                   GPTConfig.preset("gpt2-xl")]
        for r in range(3):  # random configs (fresh each run)
            nh = c.rng.randint(1, 6)
            configs.append(GPTConfig(vocab_size=c.rng.randint(2, 60000), block_size=c.rng.randint(1, 4096),
                                     n_layer=c.rng.randint(1, 30), n_head=nh, n_embd=2 * nh * c.rng.randint(1, 40),
                                     position=c.rng.choice(["learned", "sinusoidal", "rope", "alibi"]),
                                     bias=c.rng.random() < 0.5, tie_weights=c.rng.random() < 0.5))
        for i, cfg in enumerate(configs):
            case = (f"n_layer={cfg.n_layer} n_embd={cfg.n_embd} vocab={cfg.vocab_size} block_size={cfg.block_size} "
                    f"position={cfg.position} bias={cfg.bias} tie_weights={cfg.tie_weights}"
                    + (f" (random, seed {c.seed})" if i >= 8 else ""))
            with torch.device("meta"):
                want = GPT(cfg).num_params()
            with forbid(("*",), "count from the config alone: count_params must not build the model (GPT(config)) "
                                "or any layer or tensor"):
                got = c.call(case, count_params, cfg)
            c.expect(isinstance(got, int) and not isinstance(got, bool), case,
                     f"return a Python int, got {type(got).__name__}")
            d, C, L = got - want, cfg.n_embd, cfg.n_layer
            hints = {
                -cfg.block_size * C: "the learned position table wpe (block_size × n_embd) is missing",
                cfg.block_size * C: "only position='learned' has a parameter table; sinusoidal is a fixed buffer, "
                                    "RoPE and ALiBi have no parameters",
                cfg.vocab_size * C: "a tied head shares wte's weight: count it once",
                -cfg.vocab_size * C: "an untied head (tie_weights=False) adds vocab_size × n_embd",
                -(2 if cfg.bias else 1) * C: "the final LayerNorm ln_f is missing",
                (2 * L + 1) * C: "with bias=False the LayerNorms have no bias either",
            }
            hint = hints.get(d)
            if hint is None:
                hint = ("biases missing? with bias=True every Linear except the head has one" if d < 0 and cfg.bias
                        else "with bias=False no Linear has a bias" if d > 0 and not cfg.bias
                        else "per block: 2 LayerNorms + c_attn (C→3C) + attn.c_proj (C→C) + c_fc (C→4C) + "
                             "mlp.c_proj (4C→C)")
            c.expect(d == 0, case, f"got {got:,}, expected {want:,} (off by {d:+,}): {hint}")


# ----------------------------------------------------------------------------------------------- capstone
def _hs_variant(model, idx, *, positions: bool = True, offset: int = 0, rotary: bool = True, alibi: bool = True,
                ln_f: bool = True) -> torch.Tensor:
    """GPT.hidden_states with one piece left out or changed: the known mistakes, for the hint."""
    t, T = model.transformer, idx.size(1)
    x = t.wte(idx)
    if positions and "wpe" in t:
        x = x + t.wpe(torch.arange(offset, T + offset, device=idx.device).clamp(max=model.config.block_size - 1))
    x = t.drop(x)
    bias = model.alibi(T) if (alibi and model.alibi is not None) else None
    for block in t.h:
        x = block(x, rotary=model.rotary if rotary else None, attn_bias=bias)
    return t.ln_f(x) if ln_f else x


def check_hidden_states(hidden_states: Callable) -> None:
    """hidden_states(model, idx) equals model.hidden_states(idx) for every position scheme, lengths 1..block_size,
    dropout in eval() mode, and sends the same gradients to the weights; it must not call the model itself."""
    from gptlib.model import GPT, GPTConfig
    from gptlib.position import POSITIONS

    with checker("hidden_states", hidden_states) as c:
        g = torch.Generator().manual_seed(8)
        for position in POSITIONS:
            for T, dropout in ((11, 0.0), (1, 0.0), (16, 0.3)):
                cfg = GPTConfig(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=24, position=position,
                                dropout=dropout)
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
                model = GPT(cfg).eval()
                with torch.no_grad():
                    for p in model.parameters():
                        p.add_(0.3 * torch.randn(p.shape, generator=g))
                idx = torch.randint(0, cfg.vocab_size, (2, T), generator=g)
                case = f"position={position!r}, idx {tuple(idx.shape)}" + (", dropout=0.3 in eval()" if dropout else "")
                calls: list[int] = []
                reference = model.hidden_states

                def spy(*args, **kwargs):
                    calls.append(1)
                    return reference(*args, **kwargs)

                setattr(model, "hidden_states", spy)                    # calling the model itself is noticed
                hook = model.register_forward_pre_hook(lambda *a: calls.append(1))
                try:
                    with torch.no_grad():
                        got, same = c.call(case, lambda i: unchanged(lambda j: hidden_states(model, j), i), idx)
                finally:
                    hook.remove()
                    del model.hidden_states
                c.expect(not calls, case, "do not call model(...) or model.hidden_states: build the pass from the "
                                          "pieces (wte, wpe, drop, the blocks, ln_f)")
                c.expect(same, case, "idx was modified in place")
                with torch.no_grad():
                    want = model.hidden_states(idx)
                    cands = {
                        "the final LayerNorm is missing: return model.transformer.ln_f(x)":
                            _hs_variant(model, idx, ln_f=False),
                        "the position vectors are missing: add model.transformer.wpe(positions) when the model has "
                        "a table ('wpe' in model.transformer)": _hs_variant(model, idx, positions=False),
                        "positions start at 0: torch.arange(T), not arange(1, T + 1)":
                            _hs_variant(model, idx, offset=1),
                        "pass rotary=model.rotary to every block (RoPE acts inside attention)":
                            _hs_variant(model, idx, rotary=False),
                        "pass attn_bias=model.alibi(T) to every block (ALiBi acts inside attention)":
                            _hs_variant(model, idx, alibi=False),
                    }
                hint = next((h for h, v in cands.items() if isinstance(got, torch.Tensor) and got.shape == v.shape
                             and not torch.allclose(v, want, atol=1e-5)
                             and torch.allclose(got.double(), v.double(), atol=1e-5)),
                            "x = wte(idx) (+ wpe(arange(T)) if the model has a table), drop, each block with "
                            "rotary=model.rotary and attn_bias=model.alibi(T) (or None), then ln_f"
                            + ("; use model.transformer.drop, which is off in eval()" if dropout else ""))
                c.close(got, want, case, hint, atol=1e-5)
                c.expect(got.dtype == want.dtype, case, f"the output should be {want.dtype}, got {got.dtype}")
        # gradients by value: the same gradient for every weight as the reference
        cfg = GPTConfig(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=24, position="learned")
        torch.manual_seed(0)
        model = GPT(cfg).train()
        idx = torch.randint(0, cfg.vocab_size, (2, 9), generator=g)
        w = torch.randn(2, 9, cfg.n_embd, generator=g)
        params = [p for p in model.parameters()]
        want_g = torch.autograd.grad((model.hidden_states(idx) * w).sum(), params)
        out = c.call("backward", hidden_states, model, idx)
        c.expect(isinstance(out, torch.Tensor) and out.requires_grad, "backward",
                 "the output carries no gradient: do not detach or use torch.no_grad inside")
        got_g = torch.autograd.grad((out * w).sum(), params, allow_unused=True)
        for (name, _), a, b in zip(model.named_parameters(), got_g, want_g):
            c.expect(a is not None and torch.allclose(a, b, atol=1e-5, rtol=1e-4), f"gradient of {name}",
                     "the gradient differs from GPT.hidden_states': is some piece detached or skipped?")
