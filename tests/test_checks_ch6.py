"""Chapter 6's exercise checks: each passes on gptlib's reference, fails on a stub and on curated mutants.

Mutants do not call gptlib.finetune's solutions (the checks reject that as a shortcut, proved by one mutant): they
use local copies, so each one fails with the hint of its own mistake."""
import torch
import torch.nn.functional as F

from gptlib import finetune
from gptlib.checks import ch6
from mutation import Mutant, check_tests, robustness_tests


# ------------------------------------------------------------------------------------ classify: last token
def _last(h, attention_mask):                                       # a copy of the reference
    lengths = attention_mask.long().sum(-1)
    return h[torch.arange(h.size(0), device=h.device), lengths - 1]


def last_always_minus_one(h, attention_mask):                       # right without padding only
    return h[:, -1]


def last_first_token(h, attention_mask):
    return h[:, 0]


def last_off_by_one(h, attention_mask):                              # `lengths` is the first pad; clamped to fit
    lengths = attention_mask.long().sum(-1)
    return h[torch.arange(h.size(0), device=h.device), lengths.clamp(max=h.size(1) - 1)]


def last_mean_all(h, attention_mask):
    return h.mean(dim=1)


def last_mean_real(h, attention_mask):
    m = attention_mask.to(h.dtype)[..., None]
    return (h * m).sum(1) / m.sum(1)


def last_one_hot_on_cpu(h, attention_mask):                         # the selection mask built on the CPU
    lengths = attention_mask.long().sum(-1)
    sel = torch.arange(h.size(1))[None, :] == (lengths - 1)[:, None]
    return (h * sel[..., None].to(h.dtype)).sum(1)


def last_one_hot_float32(h, attention_mask):                        # a float32 one-hot promotes bf16 to float32
    lengths = attention_mask.long().sum(-1)
    sel = F.one_hot(lengths - 1, h.size(1)).float()                  # (B, T)
    return torch.einsum("bt,btc->bc", sel, h.float())


def last_detached(h, attention_mask):                               # "no need for gradients to pick a row"
    return _last(h.detach(), attention_mask)


def last_in_place(h, attention_mask):                               # zeroes the pads' states in h itself
    if not h.requires_grad:
        h.mul_(attention_mask[..., None].to(h.dtype))
    return _last(h, attention_mask)


def last_calls_reference(h, attention_mask):
    return finetune.last_token_states(h, attention_mask)


def last_first_pad_gather(h, attention_mask):                       # first pad - 1: -1 on a row without padding
    first_pad = (attention_mask == 0).int().argmax(-1)
    idx = (first_pad - 1)[:, None, None].expand(-1, 1, h.size(-1))
    return h.gather(1, idx).squeeze(1)


def last_squeezed(h, attention_mask):                               # drops the batch dimension when B == 1
    return _last(h, attention_mask).squeeze()


REFERENCES_classify = {"check_last_token_states": finetune.last_token_states}
MUTANTS_classify = [
    Mutant("check_last_token_states", "takes position -1 in every row", last_always_minus_one,
           hint="position -1", kind="edge"),
    Mutant("check_last_token_states", "takes the first token", last_first_token, hint="first token", kind="edge"),
    Mutant("check_last_token_states", "off by one: the pad after the last token", last_off_by_one,
           hint="off by one", kind="edge"),
    Mutant("check_last_token_states", "mean over all positions, pads included", last_mean_all,
           hint="pads included", kind="edge"),
    Mutant("check_last_token_states", "mean over the real tokens", last_mean_real, hint="mean pooling",
           kind="shortcut"),
    Mutant("check_last_token_states", "one-hot selection built with torch.arange on the CPU", last_one_hot_on_cpu,
           hint="build it on h.device", kind="device"),
    Mutant("check_last_token_states", "float32 one-hot product: returns float32 for bf16 states",
           last_one_hot_float32, hint="keep the dtype", kind="dtype"),
    Mutant("check_last_token_states", "picks the states of h.detach()", last_detached, hint="no gradient",
           kind="gradient"),
    Mutant("check_last_token_states", "zeroes the pads of h in place", last_in_place, hint="modified in place",
           kind="edge"),
    Mutant("check_last_token_states", "calls gptlib.finetune.last_token_states", last_calls_reference,
           hint="gptlib.finetune's last_token_states", kind="shortcut"),
    Mutant("check_last_token_states", "first pad - 1 with gather: fails on rows without padding",
           last_first_pad_gather, hint="no padding", kind="edge"),
    Mutant("check_last_token_states", "squeezes the result: (C,) when B == 1", last_squeezed, hint="B = 1",
           kind="message"),
]

REFERENCES = REFERENCES_classify
MUTANTS = MUTANTS_classify
test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch6, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch6, REFERENCES)
