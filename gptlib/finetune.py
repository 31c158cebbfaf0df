"""Deprecated alias, hand-written (not exported): Chapter 6 now exports one module per concept.

    gptlib.lora, gptlib.lora_io, gptlib.classify, gptlib.stats, gptlib.sft, gptlib.dpo

Only the three names the exercise checks import are kept here, until gptlib/checks/ch6.py and
tests/test_checks_ch6.py import them from their modules; then delete this file.
"""
from gptlib.classify import last_token_states
from gptlib.lora import LoRALinear
from gptlib.sft import mask_prompt

__all__ = ["LoRALinear", "last_token_states", "mask_prompt"]
