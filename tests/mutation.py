"""Harness for proving exercise checks: each passes on the reference, fails on a stub, fails on mutants.

In tests/test_checks_chN.py:

    from mutation import Mutant, check_tests
    REFERENCES = {"check_merge": tokenizer.merge, ...}       # check name -> reference implementation
    MUTANTS = [Mutant("check_merge", "merges the pair twice", bad_merge, hint="overlapping"), ...]
    test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch1, REFERENCES, MUTANTS)
    test_crash_names_case, test_success_line_stable = robustness_tests(ch1, REFERENCES)

`hint` is a substring the failure message must contain: the check must name the likely mistake.
`robustness_tests` proves that every check names the running case when the learner's code crashes (run the
learner's code through `c.call(case, fn, ...)`), and prints the same success line whatever the random seed
(the notebooks' stored outputs must not change from run to run). tests/test_mutant_count.py requires both in
every tests/test_checks_chN.py.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import pytest

from gptlib.checks import CheckFailed


@dataclass
class Mutant:
    check: str               # name of the check function in gptlib.checks.chN
    what: str                # the mistake this mutant makes
    impl: Any                # the mutated implementation (function or class)
    hint: str | None = None  # substring (case-insensitive) the failure message must contain
    kind: str | None = None  # the escape class of issue 11 it proves closed: device, dtype, gradient, edge,
    #                          shortcut, message (None: the original curated mutants)


def stub(*args, **kwargs):
    raise NotImplementedError("student stub")


def crasher(*args, **kwargs):
    raise RuntimeError("boom inside the learner's code")


def run(check: Callable, impl: Any) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check(impl)
    return out.getvalue()


def check_tests(module: ModuleType, references: dict[str, Any], mutants: list[Mutant]):
    checks = sorted(n for n in dir(module) if n.startswith("check_"))
    missing = set(checks) - set(references)
    assert not missing, f"no reference registered for {missing}"

    @pytest.mark.parametrize("name", checks)
    def test_reference_passes(name):
        assert "✔" in run(getattr(module, name), references[name])

    @pytest.mark.parametrize("name", checks)
    def test_stub_fails(name):
        with pytest.raises(CheckFailed, match="not implemented"):
            run(getattr(module, name), stub)

    @pytest.mark.parametrize("m", mutants, ids=[f"{m.check}:{m.what}" for m in mutants])
    def test_mutant_fails(m):
        with pytest.raises(CheckFailed) as e:
            run(getattr(module, m.check), m.impl)
        if m.hint:
            assert m.hint.lower() in str(e.value).lower(), f"hint should mention {m.hint!r}: {e.value}"

    return test_reference_passes, test_stub_fails, test_mutant_fails


def robustness_tests(module: ModuleType, references: dict[str, Any]):
    checks = sorted(n for n in dir(module) if n.startswith("check_"))

    @pytest.mark.parametrize("name", checks)
    def test_crash_names_case(name):
        with pytest.raises(CheckFailed, match="your code raised RuntimeError while running .*boom"):
            run(getattr(module, name), crasher)

    @pytest.mark.parametrize("name", checks)
    def test_success_line_stable(name, monkeypatch):
        lines = set()
        for seed in ("1", "2"):
            monkeypatch.setenv("GPTLIB_CHECK_SEED", seed)
            lines.add(run(getattr(module, name), references[name]))
        assert len(lines) == 1 and "✔" in lines.pop()

    return test_crash_names_case, test_success_line_stable
