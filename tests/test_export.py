"""gptlib/ must be exactly what the notebooks export (notebooks are the source)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import export  # noqa: E402


def test_gptlib_is_byte_identical_to_a_fresh_export(tmp_path):
    modules = export.exported_modules(ROOT / "chapters")
    assert modules, "no notebook exports anything"
    export.write(tmp_path, modules)
    for name in modules:
        assert (tmp_path / name).read_bytes() == (ROOT / "gptlib" / name).read_bytes(), \
            f"gptlib/{name} differs from what the notebooks export: edit the notebook, then `make export`"
    assert export.generated_files(ROOT / "gptlib") == set(modules), "stale exported module in gptlib/"


def test_check_mode_passes_on_the_committed_tree():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "export.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_hand_edit_of_an_exported_file_is_caught(tmp_path):
    pkg = tmp_path / "gptlib"
    shutil.copytree(ROOT / "gptlib", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    modules = export.exported_modules(ROOT / "chapters")
    victim = pkg / sorted(modules)[0]
    victim.write_text(victim.read_text() + "\nx = 1  # a quick fix made in the wrong place\n")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "export.py"), "--check", "--out", str(pkg)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "out of sync" in r.stdout and "a quick fix" in r.stdout


def test_a_stale_exported_module_is_caught(tmp_path):
    pkg = tmp_path / "gptlib"
    shutil.copytree(ROOT / "gptlib", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "orphan.py").write_text(export.HEADER.format(nb="chapters/99_gone.ipynb") + "\nx = 1\n")
    problems = export.diff(pkg, export.exported_modules(ROOT / "chapters"))
    assert any("orphan.py" in p for p in problems)


def test_marker_and_solution_lines_do_not_reach_gptlib():
    for name, text in export.exported_modules(ROOT / "chapters").items():
        assert "# export: gptlib/" not in text and "### BEGIN SOLUTION" not in text, name


def test_two_notebooks_may_not_write_one_module(tmp_path):
    import json
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": "# export: gptlib/dup.py\nx = 1"}
    for n in ("a", "b"):
        (tmp_path / f"{n}.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                                         "nbformat_minor": 5}))
    with pytest.raises(SystemExit, match="one module comes from one notebook"):
        export.exported_modules(tmp_path)
