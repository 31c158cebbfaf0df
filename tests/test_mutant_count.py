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
