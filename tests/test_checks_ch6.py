"""Chapter 6's exercise checks: each passes on gptlib's reference, fails on a stub and on curated mutants."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from gptlib import classify, lora, sft
from gptlib.checks import ch6
from mutation import Mutant, check_tests, robustness_tests


# ------------------------------------------------------------------------------------------------- LoRA layer
class _LoRA(nn.Module):                                            # a copy of the reference
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.merged = False
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._make(base, r)

    def _make(self, base, r):
        w = base.weight
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=w.device, dtype=w.dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=w.device, dtype=w.dtype)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scaling * self.lora_B(self.lora_A(self.lora_dropout(x)))

    @torch.no_grad()
    def merge(self):
        if not self.merged:
            self.base.weight += (self.scaling * self.lora_B.weight.float() @ self.lora_A.weight.float()).to(
                self.base.weight.dtype)
            self.merged = True
        return self

    @torch.no_grad()
    def unmerge(self):
        if self.merged:
            self.base.weight -= (self.scaling * self.lora_B.weight.float() @ self.lora_A.weight.float()).to(
                self.base.weight.dtype)
            self.merged = False
        return self


class BNotZero(_LoRA):                                             # nn.Linear's default init kept for B too
    def _make(self, base, r):
        w = base.weight
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=w.device, dtype=w.dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=w.device, dtype=w.dtype)


class AZero(_LoRA):                                                # both zero: nothing would ever train
    def _make(self, base, r):
        super()._make(base, r)
        nn.init.zeros_(self.lora_A.weight)


class ANormal(_LoRA):                                              # A ~ N(0, 1): far outside kaiming's bound
    def _make(self, base, r):
        super()._make(base, r)
        nn.init.normal_(self.lora_A.weight)


class ScalingAlpha(_LoRA):
    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.alpha * self.lora_B(self.lora_A(self.lora_dropout(x)))


class NoScaling(_LoRA):
    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.lora_B(self.lora_A(self.lora_dropout(x)))


class DeltaTransposed(_LoRA):                                      # x @ (B A) instead of x @ (B A)^T
    def forward(self, x):
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scaling * (self.lora_dropout(x) @ (self.lora_B.weight @ self.lora_A.weight))


class OrderSwapped(_LoRA):                                         # B A read as "A after B"
    def forward(self, x):
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scaling * F.linear(F.linear(self.lora_dropout(x), self.lora_B.weight.t()),
                                           self.lora_A.weight.t())


class DropoutOnBaseToo(_LoRA):
    def forward(self, x):
        x = self.lora_dropout(x)
        y = self.base(x)
        return y if self.merged else y + self.scaling * self.lora_B(self.lora_A(x))


class DropoutInEval(_LoRA):
    def forward(self, x):
        y = self.base(x)
        p = getattr(self.lora_dropout, "p", 0.0)
        return y if self.merged else y + self.scaling * self.lora_B(self.lora_A(F.dropout(x, p, training=True)))


class DropoutOnOutput(_LoRA):
    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.lora_dropout(self.scaling * self.lora_B(self.lora_A(x)))


class NoDropout(_LoRA):
    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.scaling * self.lora_B(self.lora_A(x))


class MergedCountsTwice(_LoRA):
    def forward(self, x):
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(self.lora_dropout(x)))


class OnCpu(_LoRA):                                                # device= forgotten
    def _make(self, base, r):
        w = base.weight
        self.lora_A = nn.Linear(base.in_features, r, bias=False, dtype=w.dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, dtype=w.dtype)
        nn.init.zeros_(self.lora_B.weight)


class Float32Params(_LoRA):                                        # dtype= forgotten: float32 path, float32 output
    def _make(self, base, r):
        w = base.weight
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=w.device)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=w.device)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.scaling * self.lora_B(self.lora_A(self.lora_dropout(x).float()))


class Float32Output(_LoRA):                                        # "for precision", never converted back
    def forward(self, x):
        y = self.base(x).float()
        if self.merged:
            return y
        return y + self.scaling * F.linear(F.linear(self.lora_dropout(x).float(), self.lora_A.weight.float()),
                                           self.lora_B.weight.float())


class Detached(_LoRA):
    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.scaling * self.lora_B(self.lora_A(self.lora_dropout(x))).detach()


class BaseTrainable(_LoRA):
    def _make(self, base, r):
        super()._make(base, r)
        base.weight.requires_grad_(True)


class WithBias(_LoRA):
    def _make(self, base, r):
        w = base.weight
        self.lora_A = nn.Linear(base.in_features, r, device=w.device, dtype=w.dtype)
        self.lora_B = nn.Linear(r, base.out_features, device=w.device, dtype=w.dtype)
        nn.init.zeros_(self.lora_B.weight)
        nn.init.zeros_(self.lora_B.bias)


class BareParameters(_LoRA):                                       # nn.Parameter, not nn.Linear: other state-dict keys
    def _make(self, base, r):
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype))

    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.scaling * (self.lora_dropout(x) @ self.lora_A.t() @ self.lora_B.t())


class WrapsGptlib(nn.Module):                                      # delegates to the solution
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.inner = lora.LoRALinear(base, r, alpha, dropout)
        self.base, self.lora_A, self.lora_B = self.inner.base, self.inner.lora_A, self.inner.lora_B
        self.lora_dropout, self.scaling = self.inner.lora_dropout, self.inner.scaling

    @property
    def merged(self):
        return self.inner.merged

    def forward(self, x):
        return self.inner(x)

    def merge(self):
        return self.inner.merge()

    def unmerge(self):
        return self.inner.unmerge()


class SubclassesGptlib(lora.LoRALinear):
    pass


class BiasAlwaysThere(_LoRA):  # assumes the base layer has a bias
    def forward(self, x):
        y = x @ self.base.weight.t() + self.base.bias
        return (
            y if self.merged else y + self.scaling * self.lora_B(self.lora_A(self.lora_dropout(x)))
        )


REFERENCES_lora = {"check_lora_linear": lora.LoRALinear}
MUTANTS_lora = [
    Mutant(
        "check_lora_linear",
        "assumes the base has a bias",
        BiasAlwaysThere,
        hint="bias=False",
        kind="edge",
    ),
    Mutant(
        "check_lora_linear",
        "B initialised non-zero",
        BNotZero,
        hint="B must start at zeros",
        kind="edge",
    ),
    Mutant("check_lora_linear", "A initialised to zeros", AZero, hint="A must be random"),
    Mutant("check_lora_linear", "A ~ N(0, 1)", ANormal, hint="kaiming-uniform"),
    Mutant(
        "check_lora_linear",
        "scaling alpha instead of alpha / r",
        ScalingAlpha,
        hint="not by alpha",
        kind="message",
    ),
    Mutant("check_lora_linear", "no scaling", NoScaling, hint="not scaled", kind="message"),
    Mutant(
        "check_lora_linear",
        "ΔW transposed (x @ B A)",
        DeltaTransposed,
        hint="transposed",
        kind="message",
    ),
    Mutant("check_lora_linear", "B A order swapped", OrderSwapped, hint="shape"),
    Mutant(
        "check_lora_linear",
        "dropout on the base path too",
        DropoutOnBaseToo,
        hint="LoRA path only",
        kind="edge",
    ),
    Mutant(
        "check_lora_linear",
        "dropout active in eval()",
        DropoutInEval,
        hint="in eval()",
        kind="edge",
    ),
    Mutant(
        "check_lora_linear",
        "dropout on the LoRA path's output",
        DropoutOnOutput,
        hint="not to its output",
        kind="edge",
    ),
    Mutant(
        "check_lora_linear",
        "no dropout in train()",
        NoDropout,
        hint="dropout is missing",
        kind="edge",
    ),
    Mutant(
        "check_lora_linear",
        "merged forward adds the update again",
        MergedCountsTwice,
        hint="counted twice",
        kind="edge",
    ),
    Mutant(
        "check_lora_linear",
        "LoRA matrices created on the CPU",
        OnCpu,
        hint="base.weight's device",
        kind="device",
    ),
    Mutant(
        "check_lora_linear",
        "LoRA matrices in float32 for a bfloat16 base",
        Float32Params,
        hint="base.weight's dtype",
        kind="dtype",
    ),
    Mutant(
        "check_lora_linear",
        "float32 output for bfloat16 input",
        Float32Output,
        hint="keep the dtype",
        kind="dtype",
    ),
    Mutant(
        "check_lora_linear",
        "the LoRA path detached",
        Detached,
        hint="autograd graph",
        kind="gradient",
    ),
    Mutant("check_lora_linear", "base weight left trainable", BaseTrainable, hint="frozen"),
    Mutant("check_lora_linear", "lora_A / lora_B with a bias", WithBias, hint="bias=False"),
    Mutant(
        "check_lora_linear",
        "bare nn.Parameters (keys differ from peft's)",
        BareParameters,
        hint="must be an nn.Linear",
    ),
    Mutant(
        "check_lora_linear",
        "delegates to gptlib.lora.LoRALinear",
        WrapsGptlib,
        hint="gptlib.lora",
        kind="shortcut",
    ),
    Mutant(
        "check_lora_linear",
        "subclasses gptlib.lora.LoRALinear",
        SubclassesGptlib,
        hint="gptlib.lora",
        kind="shortcut",
    ),
]


# ------------------------------------------------------------------------------------ classify: last token
def _last(h, attention_mask):  # a copy of the reference
    lengths = attention_mask.long().sum(-1)
    return h[torch.arange(h.size(0), device=h.device), lengths - 1]


def last_always_minus_one(h, attention_mask):  # right without padding only
    return h[:, -1]


def last_first_token(h, attention_mask):
    return h[:, 0]


def last_off_by_one(h, attention_mask):  # `lengths` is the first pad; clamped to fit
    lengths = attention_mask.long().sum(-1)
    return h[torch.arange(h.size(0), device=h.device), lengths.clamp(max=h.size(1) - 1)]


def last_mean_all(h, attention_mask):
    return h.mean(dim=1)


def last_mean_real(h, attention_mask):
    m = attention_mask.to(h.dtype)[..., None]
    return (h * m).sum(1) / m.sum(1)


def last_one_hot_on_cpu(h, attention_mask):  # the selection mask built on the CPU
    lengths = attention_mask.long().sum(-1)
    sel = torch.arange(h.size(1))[None, :] == (lengths - 1)[:, None]
    return (h * sel[..., None].to(h.dtype)).sum(1)


def last_one_hot_float32(h, attention_mask):  # a float32 one-hot promotes bf16 to float32
    lengths = attention_mask.long().sum(-1)
    sel = F.one_hot(lengths - 1, h.size(1)).float()  # (B, T)
    return torch.einsum("bt,btc->bc", sel, h.float())


def last_detached(h, attention_mask):  # "no need for gradients to pick a row"
    return _last(h.detach(), attention_mask)


def last_in_place(h, attention_mask):  # zeroes the pads' states in h itself
    if not h.requires_grad:
        h.mul_(attention_mask[..., None].to(h.dtype))
    return _last(h, attention_mask)


def last_calls_reference(h, attention_mask):
    return classify.last_token_states(h, attention_mask)


def last_first_pad_gather(h, attention_mask):  # first pad - 1: -1 on a row without padding
    first_pad = (attention_mask == 0).int().argmax(-1)
    idx = (first_pad - 1)[:, None, None].expand(-1, 1, h.size(-1))
    return h.gather(1, idx).squeeze(1)


def last_squeezed(h, attention_mask):  # drops the batch dimension when B == 1
    return _last(h, attention_mask).squeeze()


def lts_float_mask_index(h, mask):  # mask.sum() of a float mask is a float
    return h[torch.arange(h.size(0), device=h.device), mask.sum(-1) - 1]


def lts_flat_view(h, mask):  # .view(B*T, C) fails on a transposed h
    B, T, C = h.shape
    idx = torch.arange(B, device=h.device) * T + mask.long().sum(-1) - 1
    return h.view(B * T, C)[idx]


def lts_lengths_via_python(h, mask):  # lengths rebuilt on the CPU from a Python list
    idx = torch.tensor([int(m.sum()) - 1 for m in mask.long()])
    return h.gather(1, idx[:, None, None].expand(-1, 1, h.size(-1))).squeeze(1)


LTS = "check_last_token_states"
REFERENCES_classify = {LTS: classify.last_token_states}
MUTANTS_classify = [
    Mutant(
        LTS,
        "indexes with the sum of a float mask",
        lts_float_mask_index,
        hint="float mask",
        kind="input",
    ),
    Mutant(LTS, "flattens h with .view", lts_flat_view, hint="not contiguous", kind="input"),
    Mutant(
        LTS,
        "lengths rebuilt on the CPU (data-dependent)",
        lts_lengths_via_python,
        hint="build it on h.device",
        kind="device",
    ),
    Mutant(
        LTS,
        "takes position -1 in every row",
        last_always_minus_one,
        hint="position -1",
        kind="edge",
    ),
    Mutant(LTS, "takes the first token", last_first_token, hint="first token", kind="edge"),
    Mutant(
        LTS,
        "off by one: the pad after the last token",
        last_off_by_one,
        hint="off by one",
        kind="edge",
    ),
    Mutant(
        LTS,
        "mean over all positions, pads included",
        last_mean_all,
        hint="pads included",
        kind="edge",
    ),
    Mutant(LTS, "mean over the real tokens", last_mean_real, hint="mean pooling", kind="shortcut"),
    Mutant(
        LTS,
        "one-hot selection built with torch.arange on the CPU",
        last_one_hot_on_cpu,
        hint="build it on h.device",
        kind="device",
    ),
    Mutant(
        LTS,
        "float32 one-hot product: returns float32 for bf16 states",
        last_one_hot_float32,
        hint="keep the dtype",
        kind="dtype",
    ),
    Mutant(
        LTS, "picks the states of h.detach()", last_detached, hint="no gradient", kind="gradient"
    ),
    Mutant(
        LTS, "zeroes the pads of h in place", last_in_place, hint="modified in place", kind="edge"
    ),
    Mutant(
        LTS,
        "calls gptlib.classify.last_token_states",
        last_calls_reference,
        hint="gptlib.classify.last_token_states",
        kind="shortcut",
    ),
    Mutant(
        LTS,
        "first pad - 1 with gather: fails on rows without padding",
        last_first_pad_gather,
        hint="no padding",
        kind="edge",
    ),
    Mutant(
        LTS, "squeezes the result: (C,) when B == 1", last_squeezed, hint="B = 1", kind="message"
    ),
]


# ------------------------------------------------------------------------------------------- the loss mask (sft)
def _valid(ids, n_prompt):
    if not 1 <= n_prompt <= ids.numel() - 1:
        raise ValueError(f"n_prompt={n_prompt} must be in 1..{ids.numel() - 1}")


def mask_answer_not_prompt(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[n_prompt - 1 :] = ignore_index
    return ids[:-1].long(), y


def mask_first_answer_token(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[:n_prompt] = ignore_index
    return ids[:-1].long(), y


def mask_one_too_few(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[: max(n_prompt - 2, 0)] = ignore_index
    return ids[:-1].long(), y


def mask_no_shift(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[:-1].long().clone()
    y[: n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_end_token_too(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[: n_prompt - 1] = ignore_index
    y[-1] = ignore_index
    return ids[:-1].long(), y


def mask_with_zero(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[: n_prompt - 1] = 0
    return ids[:-1].long(), y


def mask_float_labels(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].float()
    y[: n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_keeps_input_dtype(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].clone()  # int32 stays int32; uint8 cannot even hold -100
    y[: n_prompt - 1] = ignore_index
    return ids[:-1], y


def mask_in_place(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long()  # a view when ids is int64: writing into y writes into ids
    y[: n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_built_on_cpu(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    pos = torch.arange(ids.numel() - 1)  # on the CPU whatever ids.device is
    return ids[:-1].long(), torch.where(
        pos < n_prompt - 1, torch.tensor(ignore_index), ids[1:].long()
    )


def mask_no_validation(ids, n_prompt, ignore_index=-100):
    y = ids[1:].long().clone()  # n_prompt=0: y[:-1] masks all but the end token, silently
    y[: n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_vague_error(ids, n_prompt, ignore_index=-100):
    if not 1 <= n_prompt <= ids.numel() - 1:
        raise ValueError("bad arguments")
    y = ids[1:].long().clone()
    y[: n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_hardcoded_ignore(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[: n_prompt - 1] = -100
    return ids[:-1].long(), y


def mask_calls_gptlib(ids, n_prompt, ignore_index=-100):
    return sft.mask_prompt(ids, n_prompt, ignore_index)


def mask_by_value(ids, n_prompt, ignore_index=-100):  # masks every target that is a prompt token
    if not 1 <= n_prompt <= ids.numel() - 1:
        raise ValueError(f"n_prompt={n_prompt} must be in 1..{ids.numel() - 1}")
    y = ids[1:].long().clone()
    y[torch.isin(y, ids[:n_prompt].long())] = ignore_index
    return ids[:-1].long(), y


def mask_labels_via_python(
    ids, n_prompt, ignore_index=-100
):  # labels rebuilt on the CPU from a Python list
    if not 1 <= n_prompt <= ids.numel() - 1:
        raise ValueError(f"n_prompt={n_prompt} must be in 1..{ids.numel() - 1}")
    y = torch.tensor([ignore_index] * (n_prompt - 1) + ids[n_prompt:].tolist())
    return ids[:-1].long(), y


MASK = "check_mask_prompt"
REFERENCES_sft = {MASK: sft.mask_prompt}
MUTANTS_sft = [
    Mutant(MASK, "masks by token value", mask_by_value, hint="expected", kind="edge"),
    Mutant(
        MASK,
        "labels rebuilt on the CPU (data-dependent)",
        mask_labels_via_python,
        hint="create new tensors on the inputs' device",  # GPU or simulated
        kind="device",
    ),
    Mutant(
        MASK, "masks the answer instead of the prompt", mask_answer_not_prompt, "masked the answer"
    ),
    Mutant(
        MASK,
        "ignores the first answer token (mask n_prompt)",
        mask_first_answer_token,
        "FIRST answer token",
    ),
    Mutant(
        MASK, "counts the last prompt token (mask n_prompt - 2)", mask_one_too_few, "n_prompt - 2"
    ),
    Mutant(MASK, "no shift: y from ids[:-1]", mask_no_shift, "no shift"),
    Mutant(MASK, "end token not counted", mask_end_token_too, "end token", kind="edge"),
    Mutant(MASK, "mask built as 0 instead of -100", mask_with_zero, "not 0", kind="message"),
    Mutant(MASK, "float labels", mask_float_labels, "int64", kind="dtype"),
    Mutant(
        MASK,
        "keeps the ids' dtype (int32/uint8 labels)",
        mask_keeps_input_dtype,
        "int64",
        kind="dtype",
    ),
    Mutant(MASK, "modifies ids in place (y is a view)", mask_in_place, "modified", kind="edge"),
    Mutant(
        MASK,
        "positions built on the CPU",
        mask_built_on_cpu,
        "build it on ids.device",
        kind="device",
    ),
    Mutant(
        MASK,
        "no check of n_prompt (n_prompt=0 masks all but the end)",
        mask_no_validation,
        "ValueError",
        kind="edge",
    ),
    Mutant(MASK, "ValueError that names nothing", mask_vague_error, "should name", kind="message"),
    Mutant(MASK, "ignores the ignore_index argument", mask_hardcoded_ignore, "ignore_index=-1"),
    Mutant(
        MASK,
        "calls gptlib.sft.mask_prompt",
        mask_calls_gptlib,
        "write it yourself",
        kind="shortcut",
    ),
]


REFERENCES = {**REFERENCES_lora, **REFERENCES_classify, **REFERENCES_sft}
MUTANTS = [*MUTANTS_lora, *MUTANTS_classify, *MUTANTS_sft]
test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch6, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch6, REFERENCES)
