"""Chapter 6's exercise checks: each passes on gptlib's reference, fails on a stub and on curated mutants.

Mutants do not call gptlib.finetune's solution (the check rejects that as a shortcut) except the one that is
that shortcut: they are written out here."""
import torch

from gptlib import finetune as FT
from gptlib.checks import ch6
from mutation import Mutant, check_tests, robustness_tests


# ------------------------------------------------------------------------------------------- the loss mask (sft)
def _valid(ids, n_prompt):
    if not 1 <= n_prompt <= ids.numel() - 1:
        raise ValueError(f"n_prompt={n_prompt} must be in 1..{ids.numel() - 1}")


def mask_answer_not_prompt(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[n_prompt - 1:] = ignore_index
    return ids[:-1].long(), y


def mask_first_answer_token(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[:n_prompt] = ignore_index
    return ids[:-1].long(), y


def mask_one_too_few(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[:max(n_prompt - 2, 0)] = ignore_index
    return ids[:-1].long(), y


def mask_no_shift(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[:-1].long().clone()
    y[:n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_end_token_too(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[:n_prompt - 1] = ignore_index
    y[-1] = ignore_index
    return ids[:-1].long(), y


def mask_with_zero(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[:n_prompt - 1] = 0
    return ids[:-1].long(), y


def mask_float_labels(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].float()
    y[:n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_keeps_input_dtype(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].clone()                  # int32 stays int32; uint8 cannot even hold -100
    y[:n_prompt - 1] = ignore_index
    return ids[:-1], y


def mask_in_place(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long()                   # a view when ids is int64: writing into y writes into ids
    y[:n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_built_on_cpu(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    pos = torch.arange(ids.numel() - 1)  # on the CPU whatever ids.device is
    return ids[:-1].long(), torch.where(pos < n_prompt - 1, torch.tensor(ignore_index), ids[1:].long())


def mask_no_validation(ids, n_prompt, ignore_index=-100):
    y = ids[1:].long().clone()           # n_prompt=0: y[:-1] masks all but the end token, silently
    y[:n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_vague_error(ids, n_prompt, ignore_index=-100):
    if not 1 <= n_prompt <= ids.numel() - 1:
        raise ValueError("bad arguments")
    y = ids[1:].long().clone()
    y[:n_prompt - 1] = ignore_index
    return ids[:-1].long(), y


def mask_hardcoded_ignore(ids, n_prompt, ignore_index=-100):
    _valid(ids, n_prompt)
    y = ids[1:].long().clone()
    y[:n_prompt - 1] = -100
    return ids[:-1].long(), y


def mask_calls_gptlib(ids, n_prompt, ignore_index=-100):
    return FT.mask_prompt(ids, n_prompt, ignore_index)


MASK = "check_mask_prompt"
REFERENCES_sft = {MASK: FT.mask_prompt}
MUTANTS_sft = [
    Mutant(MASK, "masks the answer instead of the prompt", mask_answer_not_prompt, "masked the answer"),
    Mutant(MASK, "ignores the first answer token (mask n_prompt)", mask_first_answer_token, "FIRST answer token"),
    Mutant(MASK, "counts the last prompt token (mask n_prompt - 2)", mask_one_too_few, "n_prompt - 2"),
    Mutant(MASK, "no shift: y from ids[:-1]", mask_no_shift, "no shift"),
    Mutant(MASK, "end token not counted", mask_end_token_too, "end token", kind="edge"),
    Mutant(MASK, "mask built as 0 instead of -100", mask_with_zero, "not 0", kind="message"),
    Mutant(MASK, "float labels", mask_float_labels, "int64", kind="dtype"),
    Mutant(MASK, "keeps the ids' dtype (int32/uint8 labels)", mask_keeps_input_dtype, "int64", kind="dtype"),
    Mutant(MASK, "modifies ids in place (y is a view)", mask_in_place, "modified", kind="edge"),
    Mutant(MASK, "positions built on the CPU", mask_built_on_cpu, "build it on ids.device", kind="device"),
    Mutant(MASK, "no check of n_prompt (n_prompt=0 masks all but the end)", mask_no_validation, "ValueError",
           kind="edge"),
    Mutant(MASK, "ValueError that names nothing", mask_vague_error, "should name", kind="message"),
    Mutant(MASK, "ignores the ignore_index argument", mask_hardcoded_ignore, "ignore_index=-1"),
    Mutant(MASK, "calls gptlib.finetune.mask_prompt", mask_calls_gptlib, "write it yourself", kind="shortcut"),
]


REFERENCES = REFERENCES_sft
MUTANTS = MUTANTS_sft
test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch6, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch6, REFERENCES)
