"""The exercise checks across chapters are proven against at least 25 curated mutants."""
import importlib
from pathlib import Path


def test_at_least_25_mutants_across_chapters():
    files = sorted(Path(__file__).parent.glob("test_checks_ch*.py"))
    per = {f.stem: len(importlib.import_module(f.stem).MUTANTS) for f in files}
    assert sum(per.values()) >= 25, per
    assert all(n >= 5 for n in per.values()), per
