"""Checks for Chapter 4's exercises (the GPT model): LayerNorm, gelu_tanh, Block.forward, count_params.

Each check compares the learner's code with PyTorch (F.layer_norm, F.gelu) or with gptlib.model, on inputs chosen
so that the common mistakes show: distinct sizes, non-zero means, non-trivial LayerNorm weights, a large eps,
isolation cases (T=1, bias=False), and in-place modification of the input.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from gptlib.checks import checker, close, unchanged

__all__ = ["check_layer_norm", "check_gelu_tanh", "check_block", "check_count_params", "check_hidden_states"]


def _which(got: torch.Tensor, candidates: dict[str, torch.Tensor], default: str, atol: float = 1e-5) -> str:
    """The hint of the first known mistake whose output equals `got`, else `default`."""
    if isinstance(got, torch.Tensor):
        for hint, t in candidates.items():
            if close(got.detach(), t.detach(), atol=atol):
                return hint
    return default


# ----------------------------------------------------------------------------------------------- LayerNorm
def _ln_candidates(x, w, b, eps):
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
    if x.dim() >= 2:
        for dim in range(x.dim() - 1):
            m0 = x.mean(dim, keepdim=True)
            v0 = (x - m0).pow(2).mean(dim, keepdim=True)
            c[f"normalise over the last dimension (the C channels of each vector), not dim {dim}"] = \
                (x - m0) / torch.sqrt(v0 + eps) * w + bb
    return c


def check_layer_norm(LayerNorm: type) -> None:
    """LayerNorm(ndim, eps=..., bias=...) equals F.layer_norm, with non-trivial weight/bias and a large eps."""
    with checker("LayerNorm") as c:
        g = torch.Generator().manual_seed(4)
        cases = [((2, 5, 12), 1e-5, True), ((3, 7), 1.0, True), ((4, 1, 6), 1.0, False), ((1, 1, 10), 0.5, True),
                 ((2, 3, 4, 8), 1e-5, True)]
        for shape, eps, bias in cases:
            C = shape[-1]
            ln = LayerNorm(C, eps=eps, bias=bias)
            c.expect(tuple(ln.weight.shape) == (C,), f"LayerNorm({C}).weight",
                     f"weight must have shape ({C},), got {tuple(ln.weight.shape)}")
            c.expect((ln.bias is None) == (not bias), f"LayerNorm({C}, bias={bias}).bias",
                     "self.bias must be a (C,) Parameter when bias=True and None when bias=False")
            with torch.no_grad():
                ln.weight.copy_(1.0 + 0.5 * torch.randn(C, generator=g))
                if ln.bias is not None:
                    ln.bias.copy_(0.7 * torch.randn(C, generator=g))
            x = 3.0 + 2.0 * torch.randn(*shape, generator=g)          # non-zero mean, non-unit variance
            case = f"x {tuple(shape)}, eps={eps}, bias={bias}"
            got, same = unchanged(ln, x)
            c.expect(same, case, "x was modified in place: compute new tensors instead of x.sub_/x -= ...")
            want = F.layer_norm(x, (C,), ln.weight, ln.bias, eps)
            hint = _which(got, _ln_candidates(x, ln.weight, ln.bias, eps),
                          "compare with (x - mean) / sqrt(var + eps) * weight + bias over the last dimension")
            c.close(got, want, case, hint, atol=1e-5)
        # gradients must reach the parameters (no .detach(), no torch.no_grad inside forward)
        ln = LayerNorm(6, eps=1e-5, bias=True)
        x = torch.randn(2, 3, 6, generator=g, requires_grad=True)
        (ln(x) * torch.randn(2, 3, 6, generator=g)).sum().backward()
        c.expect(ln.weight.grad is not None and ln.bias.grad is not None and x.grad is not None, "backward",
                 "no gradient reached weight/bias/x: do not detach or use torch.no_grad in forward")


# ----------------------------------------------------------------------------------------------- GELU
def check_gelu_tanh(gelu_tanh: Callable) -> None:
    """gelu_tanh(x) equals F.gelu(x, approximate="tanh") (and is not the exact erf GELU)."""
    with checker("gelu_tanh") as c:
        g = torch.Generator().manual_seed(5)
        for x in (torch.linspace(-6, 6, 241, dtype=torch.float64),
                  torch.randn(2, 3, 5, generator=g, dtype=torch.float64) * 2,
                  torch.tensor([0.0, 1.0, -1.0, 2.5], dtype=torch.float64)):
            case = f"x of shape {tuple(x.shape)}"
            got, same = unchanged(gelu_tanh, x)
            c.expect(same, case, "x was modified in place")
            k = (2.0 / torch.pi) ** 0.5
            candidates = {
                "that is the exact GELU (erf); GPT-2 uses the tanh approximation": F.gelu(x),
                "the 0.044715 * x**3 term is missing inside the tanh": 0.5 * x * (1 + torch.tanh(k * x)),
                "the constant is sqrt(2/pi) ≈ 0.7979": 0.5 * x * (1 + torch.tanh((2 / torch.pi) * (x + 0.044715 * x**3))),
                "the constant is sqrt(2/pi) ≈ 0.7979, not sqrt(2)/pi":
                    0.5 * x * (1 + torch.tanh((2 ** 0.5 / torch.pi) * (x + 0.044715 * x**3))),
                "the leading factor is 0.5 * x": x * (1 + torch.tanh(k * (x + 0.044715 * x**3))),
            }
            hint = _which(got, candidates, "use 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))", atol=1e-7)
            c.close(got, F.gelu(x, approximate="tanh"), case, hint, atol=1e-7, rtol=1e-6)


# ----------------------------------------------------------------------------------------------- Block
def _randomise(module: torch.nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.dim() == 1:               # LayerNorm gains around 1
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def _block_candidates(b, x, rotary, attn_bias):
    a = lambda h: b.attn(h, rotary=rotary, attn_bias=attn_bias)
    out = {}
    y = a(b.ln_1(x)); out["the attention branch must be added to x (x = x + attn(ln_1(x))): residual missing"] = \
        y + b.mlp(b.ln_2(y))
    y = x + a(b.ln_1(x)); out["the MLP branch must be added to x (x = x + mlp(ln_2(x))): residual missing"] = \
        b.mlp(b.ln_2(y))
    y = b.ln_1(x + a(x)); out["that is post-LN (LayerNorm after the sum); GPT-2 is pre-LN: x + attn(ln_1(x))"] = \
        b.ln_2(y + b.mlp(y))
    y = x + a(b.ln_1(x)); out["the MLP reads ln_2(x), not ln_1(x)"] = y + b.mlp(b.ln_1(y))
    y = x + b.mlp(b.ln_2(x)); out["attention comes first, then the MLP"] = y + a(b.ln_1(y))
    if rotary is not None or attn_bias is not None:
        y = x + b.attn(b.ln_1(x)); out["pass rotary=rotary and attn_bias=attn_bias on to self.attn"] = \
            y + b.mlp(b.ln_2(y))
    return out


def check_block(Block: type) -> None:
    """Block(config).forward(x, rotary=, attn_bias=) equals gptlib.model.Block with the same weights."""
    from gptlib.model import Block as RefBlock, GPTConfig
    from gptlib.position import ALiBi, RotaryEmbedding

    with checker("Block") as c:
        g = torch.Generator().manual_seed(6)
        cfg = GPTConfig(vocab_size=50, block_size=16, n_layer=3, n_head=3, n_embd=12)
        ref = RefBlock(cfg).eval()
        _randomise(ref, g)
        blk = Block(cfg).eval()
        blk.load_state_dict(ref.state_dict())
        rope, alibi = RotaryEmbedding(cfg.head_dim), ALiBi(cfg.n_head)
        for T, hooks, label in ((5, {}, "no position hooks"), (5, {"rotary": rope}, "rotary=RoPE"),
                                (5, {"attn_bias": alibi(5)}, "attn_bias=ALiBi"), (1, {}, "T=1")):
            x = 0.5 + 1.5 * torch.randn(2, T, cfg.n_embd, generator=g)
            case = f"x {tuple(x.shape)}, {label}"
            with torch.no_grad():
                got, same = unchanged(lambda t: blk(t, **hooks), x)
                want = ref(x, **hooks)
                cands = _block_candidates(ref, x, hooks.get("rotary"), hooks.get("attn_bias"))
            c.expect(same, case, "x was modified in place (x += ...): write x = x + ... instead")
            hint = _which(got, cands, "x = x + attn(ln_1(x), rotary=..., attn_bias=...); then x = x + mlp(ln_2(x))")
            c.close(got, want, case, hint, atol=1e-5)
        x = torch.randn(2, 4, cfg.n_embd, generator=g, requires_grad=True)
        blk(x).sum().backward()
        c.expect(x.grad is not None and blk.ln_1.weight.grad is not None and blk.mlp.c_fc.weight.grad is not None,
                 "backward", "gradients do not reach x or the sublayers: no detach / no_grad in forward")


# ----------------------------------------------------------------------------------------------- counting
def check_count_params(count_params: Callable) -> None:
    """count_params(config) equals the parameter count of GPT(config) built on the meta device."""
    from gptlib.model import GPT, GPTConfig

    with checker("count_params") as c:
        small = dict(vocab_size=101, block_size=32, n_layer=3, n_head=3, n_embd=48)
        configs = [GPTConfig.preset("gpt2"), GPTConfig(**small), GPTConfig(**small, tie_weights=False),
                   GPTConfig(**small, bias=False), GPTConfig(**small, position="sinusoidal"),
                   GPTConfig(**small, position="rope"), GPTConfig(**small, position="alibi", bias=False,
                                                                tie_weights=False),
                   GPTConfig.preset("gpt2-xl")]
        for cfg in configs:
            case = (f"n_layer={cfg.n_layer} n_embd={cfg.n_embd} vocab={cfg.vocab_size} position={cfg.position} "
                    f"bias={cfg.bias} tie_weights={cfg.tie_weights}")
            with torch.device("meta"):
                want = GPT(cfg).num_params()
            got = count_params(cfg)
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
    from gptlib.checks import CheckFailed
    from gptlib.model import GPT, GPTConfig
    from gptlib.position import POSITIONS

    with checker("hidden_states") as c:
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
                        got, same = unchanged(lambda i: hidden_states(model, i), idx)
                except NotImplementedError:
                    raise
                except Exception as e:                                  # say which case was running
                    raise CheckFailed(f"hidden_states: {case} — your function raised {type(e).__name__}: {e}"
                                      + ("; build the ALiBi bias for this length, model.alibi(idx.size(1))"
                                         if position == "alibi" else "")) from e
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
        out = hidden_states(model, idx)
        c.expect(isinstance(out, torch.Tensor) and out.requires_grad, "backward",
                 "the output carries no gradient: do not detach or use torch.no_grad inside")
        got_g = torch.autograd.grad((out * w).sum(), params, allow_unused=True)
        for (name, _), a, b in zip(model.named_parameters(), got_g, want_g):
            c.expect(a is not None and torch.allclose(a, b, atol=1e-5, rtol=1e-4), f"gradient of {name}",
                     "the gradient differs from GPT.hidden_states': is some piece detached or skipped?")
