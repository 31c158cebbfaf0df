"""Checks for Chapter 6's exercises (fine-tuning): the LoRA layer, the classifier's pooling, the loss mask.

LoRALinear: the learner's layer is compared with the formula y = base(x) + (alpha / r) · B A dropout(x) computed
here from its own matrices, on random sizes (square and not, r = 1 and r > in), after construction (B = 0, A
random within kaiming-uniform's bound, the right parameters frozen), with B made non-zero, in train() with
dropout (the same random mask) and in eval(), merged and unmerged, in bfloat16 and on another device (CUDA, else
"meta"), with gradients by value; it fails when the learner's class calls or subclasses gptlib's.

Each check compares the learner's code with gptlib's reference on inputs chosen so the usual mistakes
show; random cases use the run's seed (printed in a failure); every check also runs on another device (CUDA, else
"meta") and in a low-precision dtype, and fails when the learner's code calls gptlib's own solution.

check_mask_prompt runs the learner's `mask_prompt(ids, n_prompt, ignore_index=-100)` on a hand-written example
whose every usual mistake gives a different result (masking the answer, the shift off by one either way, no
shift, the end token left out, 0 instead of -100), on random lengths, on a one-token prompt and an empty answer
(only the end token counts), on int32 and uint8 ids (the result is int64), with another ignore_index, on another
device (CUDA, else "meta"), checks that `ids` is not modified, that n_prompt outside 1..L-1 is a ValueError naming
the numbers, and that gptlib's own solution is not called.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from gptlib.checks import CheckFailed, Checker, checker, no_solution
from gptlib.classify import last_token_states
from gptlib.sft import mask_prompt

__all__ = ['check_lora_linear', 'check_last_token_states', 'check_mask_prompt']


# ----------------------------------------------------------------------------------------------- LoRA layer
_SHAPES = re.compile(r"(shapes cannot be multiplied|size mismatch|must match the size|mat1 and mat2)", re.I)


@contextmanager
def _no_lora_reference(c: Checker, cls: Any) -> Iterator[None]:
    """Fail when the learner's class is, subclasses or runs gptlib.lora.LoRALinear (the solution); the
    reference itself may be checked (then nothing is watched)."""
    from gptlib.lora import LoRALinear as ref
    hint = ("your class uses gptlib.lora.LoRALinear, the solution of this exercise: write "
    "__init__ and forward "
            "yourself (with nn.Linear and torch operations)")
    if cls is not ref and isinstance(cls, type) and issubclass(cls, ref):
        raise CheckFailed(f"{c.name}: {hint} (it subclasses it)")
    with no_solution(c, cls, ref, hint):
        yield


def _lora_parts(c: Checker, layer: Any, case: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's A and B weights, after checking they are there as bias-free nn.Linear layers."""
    for name, shape in (("lora_A", "nn.Linear(base.in_features, r, bias=False)"),
                        ("lora_B", "nn.Linear(r, base.out_features, bias=False)")):
        sub = getattr(layer, name, None)
        c.expect(isinstance(sub, nn.Module) and isinstance(getattr(sub, "weight", None), torch.Tensor), case,
                 f"self.{name} must be an {shape} (its .weight is the matrix; the state-dict key "
                 f"{name}.weight is peft's name)")
        c.expect(getattr(sub, "bias", None) is None, case, f"self.{name} has a bias: LoRA's matrices have none "
                                                           "(bias=False)")
    return layer.lora_A.weight, layer.lora_B.weight


def _lora_formula(base: nn.Linear, A: torch.Tensor, B: torch.Tensor, scaling: float, x: torch.Tensor,
                  xd: torch.Tensor | None = None) -> torch.Tensor:
    """base(x) + scaling · (xd A^T) B^T (xd = the dropped-out x; x when None), computed in float64 then cast."""
    xd = x if xd is None else xd
    b = None if base.bias is None else base.bias.double()
    y = F.linear(x.double(), base.weight.double(), b) + scaling * (xd.double() @ A.double().t() @ B.double().t())
    return y.to(x.dtype)


def _lora_mistakes(base: nn.Linear, A: torch.Tensor, B: torch.Tensor, r: int, alpha: float, x: torch.Tensor,
                   xd: torch.Tensor | None = None) -> dict[str, Any]:
    s = alpha / r
    xd = x if xd is None else xd
    out: dict[str, Any] = {
        f"scale the LoRA path by alpha / r = {alpha:g} / {r} (self.scaling), not by alpha":
            lambda: _lora_formula(base, A, B, alpha, x, xd),
        "the LoRA path is not scaled: multiply it by self.scaling = alpha / "
        "r": lambda: _lora_formula(base, A, B, 1.0, x, xd),
        "the LoRA path is missing (or B was never used): add scaling · lora_B(lora_A(x)) to "
        "base(x)":
            lambda: _lora_formula(base, A, B, 0.0, x, xd),
    }
    if A.size(1) == B.size(0):                                        # square: ΔW^T has the right shape too
        out["ΔW is transposed: nn.Linear computes x Wᵀ, so apply lora_A first (in → r), then "
        "lora_B (r → out)"] = \
            lambda: (F.linear(x.double(), base.weight.double(), None if base.bias is None else base.bias.double())
                     + s * (xd.double() @ B.double() @ A.double())).to(x.dtype)
    return out


def check_lora_linear(cls: type) -> None:
    """cls(base: nn.Linear, r, alpha, dropout=0.0) with lora_A / lora_B (bias-free nn.Linear), scaling = alpha / r,
    lora_dropout, merged, merge() / unmerge(), and forward(x) = base(x) + scaling · lora_B(lora_A(dropout(x)))."""
    cuda = list(range(torch.cuda.device_count()))
    with torch.random.fork_rng(devices=cuda), checker("LoRALinear", cls) as c, _no_lora_reference(c, cls):
        g = c.gen()
        torch.manual_seed(c.seed)         # nn.Linear's init uses the global RNG: seeded here, restored afterwards

        def build(case: str, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> Any:
            layer = c.call(case, cls, base, r, alpha, dropout)
            c.expect(isinstance(layer, nn.Module), case, "LoRALinear must be an nn.Module")
            c.expect(getattr(layer, "base", None) is base, case, "keep the wrapped layer as self.base (the same "
                                                                  "object, not a copy)")
            A, B = _lora_parts(c, layer, case)
            i, o = base.in_features, base.out_features
            c.equal(tuple(A.shape), (r, i), case, f"lora_A's weight A is (r, in) = ({r}, {i}): "
            "nn.Linear(in, r) "
                                                  "stores its weight as (out, in) of that layer")
            c.equal(tuple(B.shape), (o, r), case, f"lora_B's weight B is (out, r) = ({o}, {r})")
            c.expect(A.dtype == base.weight.dtype and B.dtype == base.weight.dtype, case,
                     f"lora_A / lora_B are {A.dtype} / {B.dtype}, the base weight "
                     f"{base.weight.dtype}: create them "
                     "in base.weight's dtype (nn.Linear(..., dtype=base.weight.dtype))")
            c.expect(A.device == base.weight.device and B.device == base.weight.device, case,
                     f"lora_A / lora_B are on {A.device} / {B.device}, the base weight on "
                     f"{base.weight.device}: "
                     "create them on base.weight's device (nn.Linear(..., "
                     "device=base.weight.device))")
            trainable = {id(p) for p in layer.parameters() if p.requires_grad}
            c.expect(not any(id(p) in trainable for p in base.parameters()), case,
                     "the base layer must stay frozen (requires_grad False on base.weight and "
                     "base.bias): only "
                     "LoRA's matrices train")
            c.expect(trainable == {id(A), id(B)}, case, "exactly lora_A.weight and lora_B.weight "
            "must be trainable "
                                                        "(requires_grad True)")
            return layer

        def forward(case: str, layer: Any, x: torch.Tensor) -> Any:
            try:
                return c.call(case, layer, x, inplace="x was modified in place")
            except RuntimeError as e:
                if _SHAPES.search(str(e)) and c._learners(e):
                    raise CheckFailed(f"{c.name}: {case} — the matrix shapes do not fit "
                    f"({str(e).splitlines()[0]}): "
                                      "A is (r, in) and B is (out, r); nn.Linear computes x Wᵀ, so "
                                      "apply lora_A first "
                                      "(in → r), then lora_B (r → out) — B·A in the other order, "
                                      "or transposed, "
                                      "does not fit") from e
                raise

        # ---- construction: B = 0, A random (kaiming-uniform), output = base's
        sizes = [(24, 40, 4), (32, 32, 1), (c.rng.randint(5, 70), c.rng.randint(5, 70), c.rng.randint(2, 9)),
                 (6, 10, 8)]                                           # r > in is allowed (and useless)
        for i, (n_in, n_out, r) in enumerate(sizes):
            alpha = float(c.rng.choice([0.5, 2 * r, 16, 3.5]))            # never 1: "not scaled" = "scaled by alpha"
            bias = i in (1, 2)  # bias-free and biased bases, every seed
            case = (
                f"LoRALinear(nn.Linear({n_in}, {n_out}{'' if bias else ', bias=False'}), r={r}, "
                f"alpha={alpha:g}) (seed {c.seed})"
            )
            base = nn.Linear(n_in, n_out, bias=bias)
            W0 = base.weight.detach().clone()
            layer = build(case, base, r, alpha)
            A, B = layer.lora_A.weight, layer.lora_B.weight
            c.expect(
                not B.detach().any(),
                case,
                "B must start at zeros (nn.init.zeros_): then ΔW = (alpha/r)·B·A = 0 "
                "and the wrapped model computes exactly what the pretrained one does",
            )
            bound = 1 / math.sqrt(n_in)  # kaiming_uniform_(a=√5) on (r, in): U(±1/√in)
            c.expect(
                bool(A.detach().any())
                and float(A.detach().abs().max()) <= bound * (1 + 1e-6)
                and (A.numel() < 32 or float(A.detach().std()) > 0.3 * bound),
                case,
                "A must be random, kaiming-uniform as nn.Linear initialises it (|A| <= "
                "1/sqrt(in)): with B = 0 and A = 0 no gradient would ever move either; keep "
                "lora_A's default initialisation",
            )
            c.expect(
                torch.equal(base.weight.detach(), W0),
                case,
                "the base weight must not change when the layer is built",
            )
            x = torch.randn(3, 5, n_in, generator=g)
            c.close(
                forward(case + ", forward at init", layer, x),
                base(x).detach(),
                case + ", forward at init",
                "with B = 0 the output must equal base(x) exactly",
                atol=1e-6,
                rtol=1e-5,
            )

            # ---- B non-zero: the formula, and its gradients
            with torch.no_grad():
                B.copy_(torch.randn(B.shape, generator=g) / math.sqrt(r))
            case2 = f"{case}, B random, x (3, 5, {n_in})"
            got = forward(case2, layer, x)
            c.close(
                got,
                _lora_formula(base, A, B, alpha / r, x),
                case2,
                "y = base(x) + (alpha / r) · lora_B(lora_A(x))",
                mistakes=lambda: _lora_mistakes(base, A, B, r, alpha, x),
            )
            xg = x.clone().requires_grad_(True)
            Ag, Bg = (
                A.detach().clone().requires_grad_(True),
                B.detach().clone().requires_grad_(True),
            )
            got = forward(case2 + ", gradients", layer, xg)
            xr = x.clone().requires_grad_(True)
            want = base(xr) + (alpha / r) * F.linear(F.linear(xr, Ag), Bg)
            c.grads(
                case2 + ", gradients",
                got,
                want,
                {"x": xg, "lora_A.weight": A, "lora_B.weight": B},
                {"x": xr, "lora_A.weight": Ag, "lora_B.weight": Bg},
                "the LoRA path must stay in the autograd graph (no .detach(), no torch.no_grad())",
            )

        # ---- edge shapes: a single vector, many leading dimensions, r = 1
        base = nn.Linear(12, 7)
        layer = build("LoRALinear(nn.Linear(12, 7), r=1, alpha=2)", base, 1, 2.0)
        with torch.no_grad():
            layer.lora_B.weight.copy_(torch.randn(7, 1, generator=g))
        A, B = layer.lora_A.weight, layer.lora_B.weight
        for shape in ((12,), (2, 3, 4, 12), (0, 12)):
            x = torch.randn(*shape, generator=g)
            case = f"r=1, x of shape {shape}"
            c.close(
                forward(case, layer, x),
                _lora_formula(base, A, B, 2.0, x),
                case,
                "any leading dimensions (or none) must work, like nn.Linear",
                mistakes=lambda: _lora_mistakes(base, A, B, 1, 2.0, x),
            )

        # ---- dropout: on the LoRA path's input only, one mask, only in train()
        n_in, n_out, r, alpha, p = 20, 30, 4, 8.0, 0.5
        base = nn.Linear(n_in, n_out)
        layer = build(
            f"LoRALinear(nn.Linear({n_in}, {n_out}), r={r}, alpha={alpha:g}, dropout={p})",
            base,
            r,
            alpha,
            p,
        )
        with torch.no_grad():
            layer.lora_B.weight.copy_(torch.randn(n_out, r, generator=g))
        A, B = layer.lora_A.weight, layer.lora_B.weight
        x = torch.randn(4, 6, n_in, generator=g)
        c.expect(
            isinstance(getattr(layer, "lora_dropout", None), nn.Module),
            "dropout=0.5",
            "keep self.lora_dropout (an nn.Dropout) as __init__ builds it",
        )
        layer.train()
        case = f"dropout={p} in train() (seed {c.seed})"
        seed = c.seed + 11
        torch.manual_seed(seed)
        got = forward(case, layer, x)
        torch.manual_seed(seed)
        xd = layer.lora_dropout(x)  # the mask the layer drew (same RNG state)
        no_drop = _lora_formula(base, A, B, alpha / r, x)

        def _drop_after(seed: int) -> torch.Tensor:  # dropout on the LoRA path's output instead
            torch.manual_seed(seed)
            return (
                base(x) + layer.lora_dropout((alpha / r) * F.linear(F.linear(x, A), B))
            ).detach()

        c.close(
            got,
            _lora_formula(base, A, B, alpha / r, x, xd),
            case,
            "apply self.lora_dropout once, to x, at the start of the LoRA path: base(x) + scaling "
            "· "
            "lora_B(lora_A(lora_dropout(x)))",
            mistakes=lambda: {
                "dropout belongs to the LoRA path only: the base layer gets x itself, not the "
                "dropped-out x": _lora_formula(
                    base, A, B, alpha / r, xd, xd
                ),
                "dropout is missing in train(): apply self.lora_dropout to the LoRA path's "
                "input": no_drop,
                "apply dropout to x, the input of the LoRA path (not to its output)": lambda: (
                    _drop_after(seed)
                ),
                **_lora_mistakes(base, A, B, r, alpha, x, xd),
            },
        )
        layer.eval()
        case = f"dropout={p} in eval()"
        c.close(
            forward(case, layer, x),
            no_drop,
            case,
            "in eval() dropout must do nothing: use self.lora_dropout (an nn.Dropout follows "
            ".train() / .eval()), "
            "not F.dropout(..., training=True)",
        )

        # ---- merged: base.weight holds the update; forward must not add it again
        c.expect(
            callable(getattr(layer, "merge", None)) and callable(getattr(layer, "unmerge", None)),
            "merge",
            "keep merge() and unmerge() as given",
        )
        W0 = base.weight.detach().clone()
        c.call("layer.merge()", layer.merge)
        c.expect(
            bool(getattr(layer, "merged", False)),
            "layer.merge()",
            "merge() must set self.merged = True",
        )
        case = "merged, eval(), x (4, 6, 20)"
        got = forward(case, layer, x)
        c.close(
            got,
            no_drop,
            case,
            "when self.merged is True the update is already in base.weight: return base(x) alone",
            mistakes=lambda: {
                "merged: the update was counted twice — when self.merged is True, forward must "
                "return base(x) "
                "alone": lambda: _lora_formula(base, A, B, alpha / r, x)
            },
        )  # base is merged: the update twice
        c.call("layer.unmerge()", layer.unmerge)
        c.close(
            base.weight.detach(),
            W0,
            "after merge() then unmerge()",
            "unmerge() must restore base.weight",
        )
        case = "unmerged again, eval()"
        c.close(
            forward(case, layer, x),
            no_drop,
            case,
            "after unmerge() forward adds the LoRA path again",
        )

        # ---- bfloat16: parameters and output keep the dtype
        base = nn.Linear(16, 24).to(torch.bfloat16)
        case = "LoRALinear(nn.Linear(16, 24) in bfloat16, r=4, alpha=8)"
        layer = build(case, base, 4, 8.0)
        with torch.no_grad():
            layer.lora_B.weight.copy_(torch.randn(24, 4, generator=g))
        x = torch.randn(3, 16, generator=g).bfloat16()
        case += ", x bfloat16"
        c.close(
            forward(case, layer, x),
            _lora_formula(base, layer.lora_A.weight, layer.lora_B.weight, 2.0, x),
            case,
            "in bfloat16 the result is bfloat16, base(x) + scaling · lora_B(lora_A(x))",
            atol=0.1,
            rtol=0.05,
        )

        # ---- another device (CUDA when there is one, else "meta"): everything stays on the base's device
        dev_base = nn.Linear(18, 26, device=c.device)
        case = f"LoRALinear(nn.Linear(18, 26) on {c.device}, r=3, alpha=6)"
        layer = c.device_run(case, cls, dev_base, 3, 6.0)
        if layer is not None:
            A, B = _lora_parts(c, layer, case)
            c.expect(
                not (c.stray(A) or c.stray(B)),
                case,
                "lora_A / lora_B were made on the default device (the "
                "CPU): create them on base.weight's device (nn.Linear(..., "
                "device=base.weight.device))",
            )
            c.expect(
                A.device.type == dev_base.weight.device.type
                and B.device.type == dev_base.weight.device.type,
                case,
                f"lora_A / lora_B are on {A.device} / {B.device}, the base layer on {c.device}: "
                "create "
                "them on base.weight's device (nn.Linear(..., device=base.weight.device))",
            )
            x = c.to_device(torch.randn(2, 18, generator=g))
            case += ", forward"
            got = c.device_run(case, layer, x)
            if got is not None:
                c.like(got, dev_base(x), case, "the output stays on x's device")


# ------------------------------------------------------------------------------------ classify: last token
def _no_finetune_reference(
    c: Checker, learner: Any, reference: Callable, what: str, how: str = "with torch operations"
):
    """Fail when the learner's code calls `reference` (gptlib's solution) while it runs."""
    return no_solution(
        c,
        learner,
        reference,
        f"your code calls {reference.__module__}.{what}, the solution of this "
        f"exercise: write it yourself ({how})",
    )


def _last_token_mistakes(h: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
    m = mask.long()
    lengths = m.sum(-1)
    rows = torch.arange(h.size(0), device=h.device)
    T = h.size(1)
    return {
        "you took position -1 in every row: with right padding that is a pad's state; take each "
        "row's last REAL "
        "token, at position length - 1 (length = the number of 1s in its mask row)": lambda: h[
            :, -1
        ],
        "you took the first token (position 0): with causal attention it has seen only itself; "
        "take the last "
        "real token, at position length - 1": lambda: h[:, 0],
        "off by one: position `length` is the first pad after the passage; the last real token is "
        "at "
        "length - 1": lambda: h[rows, lengths.clamp(max=T - 1)],
        "you averaged over all positions, pads included: take one state, the last real "
        "token's": lambda: (
            h.mean(1)
        ),
        "you averaged over the real tokens: that is mean pooling, another head; take the last real "
        "token's state "
        "(the only one that has seen the whole passage)": lambda: (
            (h * m[..., None].to(h.dtype)).sum(1) / lengths[:, None].to(h.dtype)
        ),
    }


def check_last_token_states(fn: Callable) -> None:
    """last_token_states(h (B, T, C), attention_mask (B, T), right padding) -> (B, C)."""
    ref = last_token_states
    with (
        checker("last_token_states", fn, device_from="h") as c,
        _no_finetune_reference(c, fn, ref, "last_token_states"),
    ):

        def run(case: str, h: torch.Tensor, mask: torch.Tensor, hint: str) -> None:
            got = c.call(
                case,
                fn,
                h,
                mask,
                inplace="the inputs were modified in place: read h and attention_mask, do not "
                    "write them",
            )
            c.close(
                got,
                ref(h, mask),
                case,
                hint,
                atol=0,
                rtol=0,
                mistakes=lambda: _last_token_mistakes(h, mask),
            )

        g = c.gen()
        h = torch.randn(3, 5, 4, generator=g)
        mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
        run(
            "h (3, 5, 4), lengths 3, 5 (no padding), 1",
            h,
            mask,
            "row b's answer is h[b, length_b - 1]: h[0, 2], h[1, 4], h[2, 0]",
        )
        run(
            "the same batch with a boolean mask",
            h,
            mask.bool(),
            "a True/False mask counts like 1/0",
        )
        run(
            "the same batch with a float mask (1.0 / 0.0)",
            h,
            mask.float(),
            "a float mask of 1.0 / 0.0 counts like 1/0: its sum is a float, convert it (.long()) "
            "before indexing",
        )
        ht = torch.randn(3, 4, 5, generator=g).transpose(1, 2)  # (3, 5, 4), not contiguous
        run(
            "h (3, 5, 4) not contiguous (a transposed tensor)",
            ht,
            mask,
            "h may be any strided tensor (e.g. a transpose): index it, or use .reshape, not .view",
        )
        run(
            "a batch whose rows have no padding",
            h,
            torch.ones(3, 5, dtype=torch.long),
            "without padding every row's last real token is at position T - 1",
        )
        run(
            "one passage of one token, h (1, 1, 4)",
            h[:1, :1],
            torch.ones(1, 1, dtype=torch.long),
            "B = 1 and T = 1 must still give a (1, C) result",
        )
        for k in range(4):
            B, T, C = c.rng.randint(2, 9), c.rng.randint(2, 40), c.rng.choice([8, 16, 33])
            lengths = torch.randint(1, T + 1, (B,), generator=g)
            lengths[0] = T  # one row without padding
            m = (torch.arange(T)[None] < lengths[:, None]).long()
            run(
                f"random h ({B}, {T}, {C}), lengths {lengths.tolist()} (seed {c.seed})",
                torch.randn(B, T, C, generator=g),
                m,
                "pick h[b, length_b - 1] in each row b",
            )
        hb = torch.randn(4, 6, 8, generator=g).bfloat16()
        mb = (torch.arange(6)[None] < torch.tensor([6, 2, 4, 1])[:, None]).long()
        run("h in bfloat16 (4, 6, 8)", hb, mb, "return h's own values, in h's dtype")
        hg = torch.randn(4, 6, 8, generator=g, requires_grad=True)
        rg = ref(hg, mb)
        got = c.call("gradient of h (4, 6, 8)", fn, hg, mb)
        c.grads(
            "gradient of h (4, 6, 8)",
            got,
            rg,
            {"h": hg},
            {"h": hg},
            "only the chosen states get gradient (indexing, not a copy made under no_grad or "
            ".detach())",
        )
        hd, md = (
            c.to_device(torch.randn(3, 7, 8, generator=g)),
            c.to_device(mb[:3, :6].new_ones(3, 7)),
        )
        md[1, 3:] = 0
        case = f"h and attention_mask on {c.device}"
        got = c.device_run(case, fn, hd, md)
        if got is not None:
            c.like(got, ref(hd, md), case, "return the states on h.device")


# ------------------------------------------------------------------------------------------ the loss mask
def _mask_reference(
    ids: torch.Tensor, n_prompt: int, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """An independent reference: position t counts iff its target ids[t + 1] is not a prompt token."""
    x = ids[:-1].long()
    t = torch.arange(1, ids.numel(), device=ids.device)
    y = torch.where(t >= n_prompt, ids[1:].long(), torch.full_like(x, ignore_index))
    return x, y


def _mask_mistakes(ids: torch.Tensor, n: int, ig: int) -> dict[str, Any]:
    y = ids[1:].long()

    def fill(t: torch.Tensor, sl: slice) -> torch.Tensor:
        t = t.clone()
        t[sl] = ig
        return t

    return {
        "you masked the answer and kept the prompt: the labels of the prompt's targets are "
        "ignore_index, the "
        "answer's and the end token's count": lambda: fill(y, slice(n - 1, None)),
        "off by one: position n_prompt - 1 (the last prompt token) predicts the FIRST answer "
        "token, so it counts; "
        "only the first n_prompt - 1 targets are prompt tokens": lambda: fill(y, slice(0, n)),
        "off by one: the target at position n_prompt - 2 is the last prompt token and must be "
        "ignored "
        "(mask n_prompt - 1 targets)": lambda: fill(y, slice(0, max(n - 2, 0))),
        "no shift: y is ids[1:] (the NEXT tokens), not ids[:-1]": lambda: fill(
            ids[:-1].long(), slice(0, n - 1)
        ),
        "the end token's label must count (the model must learn to stop): do not mask the last "
        "target": lambda: (
            fill(fill(y, slice(0, n - 1)), slice(-1, None))
        ),
        "ignored labels must be ignore_index (-100), not 0: cross_entropy would train the model to "
        "predict token 0": lambda: (
            torch.cat([torch.zeros(n - 1, dtype=torch.int64, device=ids.device), y[n - 1 :]])
        ),
    }


def check_mask_prompt(fn: Callable) -> None:
    """fn(ids (L,), n_prompt, ignore_index=-100) -> (x, y): x = ids[:-1], y = ids[1:] with the prompt's targets
    ignored; int64, on ids.device, ids unchanged; n_prompt outside 1..L-1 is a ValueError."""
    with (
        checker("mask_prompt", fn, device_from="ids") as c,
        _no_finetune_reference(c, fn, mask_prompt, "mask_prompt", "slicing and one assignment"),
    ):
        inplace = (
            "ids was modified: slices of ids are views, so make y a new tensor (.clone()) before "
            "writing "
            "ignore_index into it"
        )

        def run(case: str, ids: torch.Tensor, n: int, ig: int | None = None) -> None:
            args = (ids, n) if ig is None else (ids, n, ig)
            got = c.call(case, fn, *args, inplace=inplace)
            c.expect(isinstance(got, tuple) and len(got) == 2, case, "return a tuple (x, y)")
            want_x, want_y = _mask_reference(ids, n, -100 if ig is None else ig)
            c.close(
                got[0],
                want_x,
                f"{case}: x",
                "x is ids[:-1] (the model's input), as int64 (.to(torch.int64))",
                atol=0,
                rtol=0,
            )
            c.close(
                got[1],
                want_y,
                f"{case}: y",
                "y is ids[1:] with ignore_index on the first n_prompt - 1 targets, as int64",
                atol=0,
                rtol=0,
                mistakes=lambda: _mask_mistakes(ids, n, -100 if ig is None else ig),
            )

        # by hand: prompt p0 p1 p2, answer a0 a1, end E -> y = [-100, -100, a0, a1, E]
        ids = torch.tensor([11, 12, 13, 21, 22, 99])
        run("ids [p0 p1 p2 a0 a1 END], n_prompt=3", ids, 3)
        L = c.rng.randrange(8, 40)
        n = c.rng.randrange(2, L - 2)
        run(f"random ids, L={L}, n_prompt={n}", torch.randint(0, 1026, (L,), generator=c.gen()), n)
        run(
            "a one-token prompt (n_prompt=1): every target counts",
            torch.tensor([1024, 5, 6, 1023]),
            1,
        )
        run(
            "an empty answer: only the end token counts (n_prompt = L - 1)",
            torch.tensor([1024, 5, 6, 1025, 1023]),
            4,
        )
        run(
            "an answer that repeats prompt tokens: ids [5 6 7 5 6 END], n_prompt=3",
            torch.tensor([5, 6, 7, 5, 6, 99]),
            3,
        )
        run(
            "int32 ids (the labels must be int64 for cross_entropy)",
            torch.tensor([7, 8, 9, 10, 11], dtype=torch.int32),
            2,
        )
        run(
            "uint8 ids (the labels must be int64; -100 does not fit in uint8)",
            torch.tensor([7, 8, 9, 10, 11], dtype=torch.uint8),
            3,
        )
        run("ignore_index=-1", torch.tensor([3, 4, 5, 6, 7, 8]), 4, -1)

        # another device (CUDA, else meta): the result stays on ids.device
        dev = c.to_device(torch.tensor([11, 12, 13, 21, 22, 99]))
        got = c.device_run(f"ids on {c.device}, n_prompt=3", fn, dev, 3)
        if got is not None:
            want = _mask_reference(dev, 3)
            c.expect(
                isinstance(got, tuple) and len(got) == 2,
                f"ids on {c.device}",
                "return a tuple (x, y)",
            )
            c.like(got[0], want[0], f"ids on {c.device}: x", "x on ids.device, int64")
            c.like(got[1], want[1], f"ids on {c.device}: y", "y on ids.device, int64")

        # bad n_prompt: a ValueError that names the numbers
        for bad, why in ((0, "no prompt token"), (6, "no end token")):
            case = f"n_prompt={bad} for 6 ids ({why})"
            c.case = case
            try:
                fn(torch.tensor([11, 12, 13, 21, 22, 99]), bad)
            except ValueError as e:
                c.expect(
                    str(bad) in str(e),
                    case,
                    f"the ValueError should name n_prompt={bad} and the valid range "
                    f"1..5 (got {str(e)!r})",
                )
            else:
                c.expect(
                    False,
                    case,
                    "n_prompt must be in 1..L-1: raise ValueError (a silent result trains on the "
                    "wrong tokens — with n_prompt=0, y[:-1] would mask all but the last target)",
                )
