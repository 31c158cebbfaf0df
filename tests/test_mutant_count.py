"""The exercise checks are proven against curated mutants, including the escape classes of issue 11."""
import importlib
from collections import Counter
from pathlib import Path

KINDS = ("device", "dtype", "gradient", "edge", "shortcut", "message")


def _mutants():
    files = sorted(Path(__file__).parent.glob("test_checks_ch*.py"))
    return {f.stem: importlib.import_module(f.stem).MUTANTS for f in files}


def test_at_least_25_mutants_across_chapters():
    per = {name: len(ms) for name, ms in _mutants().items()}
    assert sum(per.values()) >= 25, per
    assert all(n >= 5 for n in per.values()), per


def test_every_escape_class_has_its_own_mutants():
    """Each class of mistakes that used to escape the checks (issue 11) is proven closed by several mutants."""
    kinds = Counter(m.kind for ms in _mutants().values() for m in ms if m.kind is not None)
    assert set(kinds) <= set(KINDS), kinds
    assert all(kinds[k] >= 5 for k in KINDS), kinds


def test_every_chapter_proves_crash_messages_and_stable_success_lines():
    """A crash in the learner's code names the running case; the success line does not depend on the seed."""
    for name in _mutants():
        mod = importlib.import_module(name)
        missing = [t for t in ("test_crash_names_case", "test_success_line_stable") if not hasattr(mod, t)]
        assert not missing, (f"tests/{name}.py lacks {missing}: add `test_crash_names_case, "
                             f"test_success_line_stable = robustness_tests(chN, REFERENCES)` (from mutation)")
