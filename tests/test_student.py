"""The student edition (nbgrader's release): solutions removed, nothing leaks, every check cell
fails on it, a learner's work is never overwritten, and the nbgrader metadata comes from the
tags."""
import json
import shutil
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
    return [line.strip() for c in nbrules.cells(nb)
            for block in nbrules.solution_blocks(nbrules.source(c)) for line in block
            if len(line.strip()) > 12 and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, str(ROOT / "tools" / "student.py"), "--out", str(out)],
                   check=True)
    return out


def test_strip_solutions_keeps_indentation_and_the_rest():
    s = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nprint(f)"
    out, n = student.strip_solutions(s, "Ex")
    assert n == 1 and "return x + 1" not in out and "print(f)" in out
    assert "    raise NotImplementedError" in out
    with pytest.raises(ValueError, match="without END"):
        student.strip_solutions("### BEGIN SOLUTION\nx = 1", "Ex")


def tiny_chapter(folder: Path, name: str = "01_tiny") -> Path:
    """A three-exercise chapter that runs in a second (for what real chapters would make slow)."""
    def cell(kind, src, tags=()):
        c = {"cell_type": kind, "id": f"c{len(cells)}", "metadata": {"tags": list(tags)},
             "source": src}
        return {**c, "outputs": [], "execution_count": None} if kind == "code" else c

    cells: list[dict] = []
    for fn, value in [("one", 1), ("two", 2), ("three", 3)]:
        cells.append(cell("markdown", f"```{{exercise}} {fn}\n:label: ex-{fn}\n```"))
        cells.append(cell("code", f"def {fn}():\n    ### BEGIN SOLUTION\n    return {value}\n"
                                  "    ### END SOLUTION", ["hide-input"]))
        cells.append(cell("code", f"assert {fn}() == {value}", ["check"]))
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3",
                                                      "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (folder / "chapters").mkdir(exist_ok=True)
    (folder / "chapters" / f"{name}.ipynb").write_text(json.dumps(nb))
    return folder / "chapters"


def run_student(out, chapters):
    """What `make student` does (tools/student.py's main), in-process: the said lines."""
    return "\n".join(student.deliver(out, student.release(sorted(chapters.glob("*.ipynb")))))


def test_existing_work_is_never_overwritten_and_new_versions_land_beside_it(tmp_path):
    course = tiny_chapter(tmp_path, "01_mine")  # two small chapters: quick
    tiny_chapter(tmp_path, "02_other")
    out = tmp_path / "student"
    run_student(out, course)
    mine, other = out / "01_mine.ipynb", out / "02_other.ipynb"
    mine.write_text(mine.read_text().replace("NotImplementedError", "NotImplementedError  # mine"))
    before, untouched = mine.read_text(), other.read_text()

    # the course did not change: nothing is written, nothing is said (issue 21, item 13)
    said = run_student(out, course)
    assert mine.read_text() == before and other.read_text() == untouched
    assert said == "" and sorted(p.name for p in out.glob("*.new.ipynb")) == []

    # the course changed: the learner's notebook is kept and the new version lands beside it; the
    # notebook the learner never touched is simply updated
    for nb in course.glob("*.ipynb"):
        text = json.loads(nb.read_text())
        text["cells"].append({"cell_type": "markdown", "id": "new-paragraph", "metadata": {},
                              "source": "A new paragraph."})
        nb.write_text(json.dumps(text))
    said = run_student(out, course)
    assert mine.read_text() == before and f"kept your {mine.name}" in said
    assert "A new paragraph." in mine.with_suffix(".new.ipynb").read_text()
    assert "A new paragraph." in other.read_text() and f"updated {other.name}" in said
    assert not other.with_suffix(".new.ipynb").exists()

    # and a re-run after that writes nothing more
    stamp = mine.with_suffix(".new.ipynb").stat().st_mtime_ns
    assert run_student(out, course) == ""
    assert mine.with_suffix(".new.ipynb").stat().st_mtime_ns == stamp and mine.read_text() == before


def test_student_py_writes_the_edition_and_an_nbgrader_course_folder(tmp_path):
    """The command line: `--out` writes the edition; `--nbgrader-course` (for nbgrader's exchange)
    releases the same notebook in nbgrader's course folder."""
    chapters = tiny_chapter(tmp_path)
    for args in (["--out", str(tmp_path / "student")],
                 ["--nbgrader-course", str(tmp_path / "course")]):
        subprocess.run([sys.executable, str(ROOT / "tools" / "student.py"), "--chapters",
                        str(chapters), *args], check=True, capture_output=True)
    assert (tmp_path / "course" / "source" / "01_tiny" / "01_tiny.ipynb").exists()
    assert (tmp_path / "course" / "release" / "01_tiny" / "01_tiny.ipynb").read_text() == \
        (tmp_path / "student" / "01_tiny.ipynb").read_text()
    assert "raise NotImplementedError" in (tmp_path / "student" / "01_tiny.ipynb").read_text()


def test_make_clean_never_removes_a_learners_work(tmp_path):
    """`make clean` removes build outputs only: student/ (learners work there), gradebooks stay."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    kept = ["student/02_attention.ipynb", "my-gpt/02_attention.ipynb", ".grading/x/gradebook.db"]
    for keep in kept:
        (tmp_path / keep).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / keep).write_text("my work")
    (tmp_path / "_build" / "html").mkdir(parents=True)
    subprocess.run(["make", "-s", "clean", "STUDENT=my-gpt"], cwd=tmp_path, check=True,
                   capture_output=True)
    assert not (tmp_path / "_build").exists()
    for keep in kept:
        assert (tmp_path / keep).read_text() == "my work", f"make clean removed {keep}"


def test_nbgrader_metadata_comes_from_the_tags():
    """Every exercise's solution cell becomes an nbgrader solution cell and its check cell a locked,
    autograded test cell worth one point; nothing else gets nbgrader metadata."""
    n_exercises = 0
    for nb_path in NOTEBOOKS:
        nb = nbrules.with_nbgrader_metadata(nbrules.read(nb_path), nb_path.stem)
        graded = {i: c["metadata"]["nbgrader"] for i, c in enumerate(nb["cells"])
                  if "nbgrader" in c.get("metadata", {})}
        checks = [i for i, c in enumerate(nb["cells"]) if nbrules.is_check(c)]
        solutions = [i for i, c in nbrules.code_cells(nb)
                     if nbrules.has_solution(nbrules.source(c))]
        assert checks and sorted(graded) == sorted(checks + solutions), nb_path.name
        for i in checks:
            assert graded[i]["grade"] and graded[i]["locked"] and graded[i]["points"] == 1
            assert not graded[i]["solution"]
        for i in solutions:
            assert graded[i]["solution"] and not graded[i]["grade"] and not graded[i]["locked"]
        ids = [m["grade_id"] for m in graded.values()]
        assert len(set(ids)) == len(ids)
        n_exercises += len(checks)
    assert n_exercises >= 20


def exercise_nb(*cells):
    return {"cells": [{"cell_type": t, "metadata": {"tags": tags}, "source": src}
                      for t, tags, src in cells],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


EX = ("markdown", [], "```{exercise} Title\n:label: ex-a\n\nText.\n```")
SOL = ("code", ["hide-input"],
       "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
CHECK = ("code", ["check"], "check_f(f)")


def test_exercise_layout_rules():
    (ex,) = nbrules.exercises(exercise_nb(EX, SOL, ("markdown", [], "Between."), CHECK))
    assert (ex.label, ex.solutions, ex.check, ex.points) == ("ex-a", [1], 3, 1)
    (ex,) = nbrules.exercises(exercise_nb(EX, SOL, ("code", ["check", "points-3"], "check_f(f)")))
    assert ex.points == 3
    # a "predict, then measure" exercise has no solution cell and is not graded
    assert nbrules.exercises(exercise_nb(EX, ("code", [], "print(1)"))) == []
    with pytest.raises(ValueError, match="exactly one check cell"):
        nbrules.exercises(exercise_nb(EX, SOL))
    with pytest.raises(ValueError, match="exactly one check cell"):
        nbrules.exercises(exercise_nb(EX, SOL, CHECK, CHECK))
    with pytest.raises(ValueError, match="before any .exercise. directive"):
        nbrules.exercises(exercise_nb(SOL, CHECK))
    with pytest.raises(ValueError, match="unique"):
        nbrules.exercises(exercise_nb(EX, SOL, CHECK, EX, SOL, CHECK))
    # metadata written by hand is dropped: the tags are the only source
    nb = exercise_nb(EX, ("code", [], "x = 1"), SOL, CHECK)
    nb["cells"][1]["metadata"]["nbgrader"] = {"grade": True, "grade_id": "by-hand", "points": 9}
    out = nbrules.with_nbgrader_metadata(nb)
    assert "nbgrader" not in out["cells"][1]["metadata"]
    assert out["cells"][3]["metadata"]["nbgrader"]["grade_id"] == "ex-a"
    assert "nbgrader" in nb["cells"][1]["metadata"]  # the input is not modified


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbgrader_clears_solutions_as_the_notebook_rules_say(edition, nb_path):
    """nbgrader's release replaces each solution exactly as tools/nb.py's replace_solutions does."""
    chapter, released = nbrules.read(nb_path), nbrules.read(edition / nb_path.name)
    assert len(chapter["cells"]) == len(released["cells"])
    n = 0
    for i, cell in nbrules.code_cells(chapter):
        src = nbrules.source(cell)
        if nbrules.has_solution(src):
            assert nbrules.source(released["cells"][i]) == student.strip_solutions(src, "x")[0]
            n += 1
    assert n >= 3


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_leaks_and_outputs_are_cleared(edition, nb_path):
    text = (edition / nb_path.name).read_text()
    nb = json.loads(text)
    leaked = [line for line in solution_lines(nb_path) if line in text]
    assert solution_lines(nb_path), f"{nb_path.name}: no solution (the test would prove nothing)"
    assert not leaked, f"solution lines leak into the student edition: {leaked[:3]}"
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for _, c in nbrules.code_cells(nb))


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_check_fails_on_the_student_edition(edition, nb_path):
    """The inverse validation: run the student notebook (errors allowed); every check must fail. The
    cells after the last check cannot change a check's result, so the run stops there."""
    nb = nbformat.read(str(edition / nb_path.name), as_version=4)
    last = max(i for i, c in enumerate(nb.cells) if nbrules.is_check(c))
    nb.cells = nb.cells[:last + 1]
    NotebookClient(nb, timeout=1200, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    checks = [c for c in nb.cells if nbrules.is_check(c)]
    assert len(checks) >= 3
    for c in checks:
        errors = [o for o in c.outputs if o.output_type == "error"]
        assert errors, f"{nb_path.name}: this check passed on the student edition:\n{c.source}"
        # the check's own failure, caused by the learner's stub (chained), not a crash
        assert errors[0].ename == "CheckFailed", \
            f"{nb_path.name}: check failed with {errors[0].ename}: {errors[0].evalue} " \
            f"(expected CheckFailed)\n{c.source}"
        trace = "\n".join(errors[0].traceback)
        assert "NotImplementedError" in trace or "not implemented" in errors[0].evalue, \
            f"{nb_path.name}: the check failed without reaching the stub: " \
            f"{errors[0].evalue}\n{c.source}"
