"""The student edition: solutions removed, nothing leaks, and every check cell fails on it."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nb as nbrules  # noqa: E402
import student  # noqa: E402

NOTEBOOKS = sorted(p for p in (ROOT / "chapters").glob("*.ipynb") if not p.name.startswith("00_"))


def solution_lines(nb):
    """Every substantive line written between the solution markers."""
    return [line.strip() for c in nbrules.cells(nb) for block in nbrules.solution_blocks(nbrules.source(c))
            for line in block if len(line.strip()) > 12 and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, str(ROOT / "tools" / "student.py"), "--out", str(out)], check=True)
    return out


def test_strip_solutions_keeps_indentation_and_the_rest():
    s = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nprint(f)"
    out, n = student.strip_solutions(s, "Ex")
    assert n == 1 and "return x + 1" not in out and "    raise NotImplementedError" in out and "print(f)" in out
    with pytest.raises(ValueError, match="without END"):
        student.strip_solutions("### BEGIN SOLUTION\nx = 1", "Ex")


def test_existing_work_is_never_overwritten(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "student.py"), "--out", str(tmp_path)], check=True)
    mine = tmp_path / NOTEBOOKS[0].name
    mine.write_text(mine.read_text().replace("NotImplementedError", "NotImplementedError  # my work"))
    before = mine.read_text()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "student.py"), "--out", str(tmp_path)],
                       check=True, capture_output=True, text=True)
    assert mine.read_text() == before and "kept your" in r.stdout
    assert mine.with_suffix(".new.ipynb").exists()


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_leaks_and_outputs_are_cleared(edition, nb_path):
    text = (edition / nb_path.name).read_text()
    nb = json.loads(text)
    leaked = [line for line in solution_lines(nb_path) if line in text]
    assert solution_lines(nb_path), f"{nb_path.name}: no solution found (the test would prove nothing)"
    assert not leaked, f"solution lines leak into the student edition: {leaked[:3]}"
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for _, c in nbrules.code_cells(nb))


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_check_fails_on_the_student_edition(edition, nb_path):
    """The inverse validation: run the student notebook (errors allowed); each check cell must fail."""
    nb = nbformat.read(str(edition / nb_path.name), as_version=4)
    NotebookClient(nb, timeout=1200, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    checks = [c for c in nb.cells if nbrules.is_check(c)]
    assert len(checks) >= 3
    for c in checks:
        errors = [o for o in c.outputs if o.output_type == "error"]
        assert errors, f"{nb_path.name}: this check passed on the student edition:\n{c.source}"
        # the check's own failure, caused by the learner's stub (chained), not a crash of the notebook
        assert errors[0].ename == "CheckFailed", \
            f"{nb_path.name}: check failed with {errors[0].ename}: {errors[0].evalue} (expected CheckFailed)\n{c.source}"
        trace = "\n".join(errors[0].traceback)
        assert "NotImplementedError" in trace or "not implemented" in errors[0].evalue, \
            f"{nb_path.name}: the check failed without reaching the stub: {errors[0].evalue}\n{c.source}"
