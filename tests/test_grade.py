"""Grading with nbgrader (`make grade SUBMISSIONS=DIR`, tools/grade.py): a synthetic class, made by
the test from the chapters themselves, is graded offline; the exact rows of grades.csv are
asserted."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import grade  # noqa: E402
import nb as nbrules  # noqa: E402
import student  # noqa: E402
from test_student import tiny_chapter  # noqa: E402

CH2, CH3 = "02_attention.ipynb", "03_position.ipynb"
# seconds per cell: the slowest cell of Chapters 2-3 took 9 s on a 2-core machine shared by several
# test runs (1 thread); dave's function hangs at its first call only (in its check cell), so his
# notebook costs one timeout, not one per cell that calls it (four)
TIMEOUT = 15
# dave's alibi_bias: the first call never returns; later calls return a wrong bias at once
HANG_ONCE = ['if not globals().get("_hung_once"):', '    globals()["_hung_once"] = True',
             "    while True:", "        pass", "return torch.zeros(len(slopes), T, T)"]


def solution_source(chapter: dict, label: str, block: list[str] | None = None) -> str:
    """The chapter's solution cell of exercise `label`, its solution block replaced by `block`."""
    ex = {e.label: e for e in nbrules.exercises(chapter)}[label]
    src = nbrules.source(chapter["cells"][ex.solutions[0]])
    return src if block is None else nbrules.replace_solutions(src, "\n".join(block))[0]


def submission(release: str, solved: dict[str, str], checks: dict[str, str | None] = {}) -> str:
    """The student edition with the solution cells in `solved` ({label: source}) filled in and the
    check cells in `checks` replaced ({label: source}) or deleted ({label: None}): what a learner
    hands in."""
    nb = json.loads(release)
    kept = []
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id", "")
        if meta.get("solution") and gid.removesuffix("-solution") in solved:
            cell["source"] = solved[gid.removesuffix("-solution")]
        if meta.get("grade") and gid in checks:
            if checks[gid] is None:
                continue
            cell["source"] = checks[gid]
        kept.append(cell)
    nb["cells"] = kept
    return json.dumps(nb, indent=1)


def make_class(folder: Path) -> dict[str, str]:
    """Five students hand in Chapter 3, one of them Chapter 2 too; one file is not JSON, one is not
    a notebook."""
    edition = student.release([ROOT / "chapters" / CH2, ROOT / "chapters" / CH3])
    ch2, ch3 = (nbrules.read(ROOT / "chapters" / n) for n in (CH2, CH3))
    all3 = {e.label: solution_source(ch3, e.label) for e in nbrules.exercises(ch3)}
    all2 = {e.label: solution_source(ch2, e.label) for e in nbrules.exercises(ch2)}

    def wrong(label: str, *block: str) -> dict[str, str]:
        return {**all3, label: solution_source(ch3, label, list(block))}

    unsolved = {k: v for k, v in all3.items() if k != "ex-ch3-rope-rotate"}
    work = {
        # all correct
        ("alice", CH3): submission(edition[CH3], all3),
        ("alice", CH2): submission(edition[CH2], all2),
        # one exercise unsolved (the stub); the check cell of a solved one deleted: it is put back
        ("bob", CH3): submission(edition[CH3], unsolved, {"ex-ch3-sinusoidal-table": None}),
        # one exercise wrong in a way its check rejects
        ("carol", CH3): submission(edition[CH3], wrong("ex-ch3-sinusoidal-table",
                                                       "return torch.zeros(T, d)")),
        # one exercise that never returns (the first time it is called)
        ("dave", CH3): submission(edition[CH3], wrong("ex-ch3-alibi-bias", *HANG_ONCE)),
        # a wrong solution whose check cell was replaced by `pass`
        ("erin", CH3): submission(edition[CH3], wrong("ex-ch3-alibi-slopes",
                                                      "return torch.ones(n_head)"),
                                  {"ex-ch3-alibi-slopes": "pass"}),
    }
    for (name, nb), text in work.items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / nb).write_text(text)
    (folder / "frank").mkdir()
    (folder / "frank" / CH3).write_text("{ this is not JSON")
    (folder / "alice" / "notes.txt").write_text("my notes")
    return edition


def rows(student_name: str, nb: str, scores: str) -> list[list[str]]:
    labels = {CH2: ["ex-ch2-causal-mask", "ex-ch2-attention", "ex-ch2-heads", "ex-ch2-mha"],
              CH3: ["ex-ch3-sinusoidal-table", "ex-ch3-rope-rotate", "ex-ch3-alibi-slopes",
                    "ex-ch3-alibi-bias"]}[nb]
    return [[student_name, nb, label, s, "1"] for label, s in zip(labels, scores, strict=True)]


EXPECTED = (rows("alice", CH2, "1111") + rows("alice", CH3, "1111") + rows("bob", CH3, "1011")
            + rows("carol", CH3, "0111") + rows("dave", CH3, "1110") + rows("erin", CH3, "1101"))


def run_grade(folder: Path, gradebook: Path) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), str(folder),
                        "--gradebook", str(gradebook), "--timeout", str(TIMEOUT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder, gradebook = tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("gradebook")
    edition = make_class(folder)
    t = time.perf_counter()
    out = run_grade(folder, gradebook)
    ch3 = sum(int(line.split()[-2]) for line in out.splitlines()
              if line.startswith("graded ") and line.split()[1].endswith(CH3))
    print(f"\ngraded the synthetic class (6 notebooks: 5 students x Chapter 3, 1 x Chapter 2) in "
          f"{time.perf_counter() - t:.0f} s; Chapter 3 for five students: {ch3} s (one of them "
          f"hangs in one cell, {TIMEOUT} s)\n{out}")
    return folder, gradebook, out, edition


def read_csv(folder: Path) -> list[list[str]]:
    return [line.split(",") for line in (folder / "grades.csv").read_text().splitlines()]


def test_grades_csv_has_exactly_the_expected_rows(graded):
    folder, _, _, _ = graded
    assert read_csv(folder) == [grade.HEADER] + EXPECTED


def test_feedback_summary_and_skipped_files_are_reported(graded):
    folder, _, out, _ = graded
    assert "skipped frank/03_position.ipynb: not a notebook (not JSON" in out
    assert "skipped alice/notes.txt: not a notebook of the course" in out
    assert "2 file(s) skipped" in out
    # per exercise: mean score, max, how many students got it
    assert " ".join("03_position.ipynb ex-ch3-rope-rotate 0.80 1 4/5".split()) in \
        [" ".join(line.split()) for line in out.splitlines()]
    for name, nb, total in [("alice", CH2, "4.0 / 4.0"), ("alice", CH3, "4.0 / 4.0"),
                            ("bob", CH3, "3.0 / 4.0"), ("dave", CH3, "3.0 / 4.0")]:
        html = (folder / "feedback" / name / nb.replace(".ipynb", ".html")).read_text()
        assert f"Score: {total}" in html, f"{name}/{nb}: the feedback lacks the score {total}"
    assert sorted(p.name for p in (folder / "feedback").iterdir()) == \
        ["alice", "bob", "carol", "dave", "erin"]


def test_restored_checks_and_timeouts_show_in_the_graded_notebooks(graded):
    """What the grades rest on: bob's deleted check ran again, erin's `pass` was replaced by the
    check, dave's endless cell was interrupted and the notebook went on."""
    _, gradebook, _, _ = graded

    def errors(name):
        nb = json.loads((gradebook / "autograded" / name / "03_position" / CH3).read_text())
        graded = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
        return {c["metadata"]["nbgrader"]["grade_id"]:
                [o["ename"] for o in c.get("outputs", []) if o["output_type"] == "error"]
                for c in graded}

    assert errors("bob")["ex-ch3-sinusoidal-table"] == []          # put back, and passes
    assert errors("erin")["ex-ch3-alibi-slopes"] == ["CheckFailed"]
    assert "CellTimeoutError" in errors("dave")["ex-ch3-alibi-bias"]
    assert errors("dave")["ex-ch3-rope-rotate"] == []


def test_student_edition_is_nbgraders_release(graded):
    """make student writes the very notebooks nbgrader's generate_assignment released to grade."""
    _, gradebook, _, edition = graded  # the edition make_class built with tools/student.py
    for nb in (CH2, CH3):
        assert (gradebook / "release" / nb.removesuffix(".ipynb") / nb).read_text() == edition[nb]


def test_regrading_grades_only_what_changed(graded, tmp_path):
    folder, gradebook, _, _ = graded
    folder2, gradebook2 = tmp_path / "class", tmp_path / "gradebook"
    shutil.copytree(folder, folder2)
    shutil.copytree(gradebook, gradebook2)
    ch3 = nbrules.read(ROOT / "chapters" / CH3)
    bob = folder2 / "bob" / CH3   # a late fix: bob solves rope_rotate
    bob.write_text(submission(bob.read_text(), {"ex-ch3-rope-rotate":
                                                solution_source(ch3, "ex-ch3-rope-rotate")}))
    out = run_grade(folder2, gradebook2)
    assert "graded bob/03_position.ipynb" in out
    assert "graded 1 notebook(s)" in out and "5 unchanged since the last run" in out
    assert read_csv(folder2) == [grade.HEADER] + [
        r if r[:3] != ["bob", CH3, "ex-ch3-rope-rotate"] else r[:3] + ["1", "1"] for r in EXPECTED]


def test_bad_submissions_folder_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"),
                        str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert r.returncode != 0 and "no such folder" in r.stderr and "SUBMISSIONS=DIR" in r.stderr


def test_make_grade_needs_submissions_and_runs_offline():
    stamp = ["-o", ".venv/.installed"]  # the Makefile's set-up stamp: never re-install from a test
    # under `make test` this make is a sub-make: without --no-print-directory it adds "Entering/Leaving
    # directory" lines (the last line would then not be the command)
    stamp += ["--no-print-directory"]
    r = subprocess.run(["make", "-s", "grade", *stamp], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "SUBMISSIONS=DIR" in r.stdout + r.stderr
    r = subprocess.run(["make", "-n", "grade", "SUBMISSIONS=subs", "GRADE_TIMEOUT=7", *stamp],
                       cwd=ROOT, capture_output=True, text=True)
    cmd = r.stdout.strip().splitlines()[-1]
    assert "GPTLIB_OFFLINE=1" in cmd and "tools/grade.py" in cmd and '"subs" --timeout 7' in cmd


def test_a_kernel_that_dies_costs_only_what_it_breaks_and_grading_is_offline(tmp_path):
    """os._exit in a solution kills the kernel: that exercise scores 0, the kernel is restarted, and
    the exercises before and after it keep their points (nbgrader alone would fail the notebook).
    A solution that reaches for the network meets the course's offline guard in the kernel."""
    chapters = tiny_chapter(tmp_path)
    release = student.release([chapters / "01_tiny.ipynb"])["01_tiny.ipynb"]
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    (subs / "ann" / "01_tiny.ipynb").write_text(submission(release, {
        "ex-one": "def one():\n    return 1",
        "ex-two": "def two():\n    import os\n    os._exit(1)",
        "ex-three": "def three():\n    return 3"}))
    (subs / "bea").mkdir(parents=True)
    (subs / "bea" / "01_tiny.ipynb").write_text(submission(release, {
        "ex-one": "def one():\n    import urllib.request\n"
                  "    urllib.request.urlopen('http://example.com', timeout=5)\n    return 1",
        "ex-two": "def two():\n    return 2", "ex-three": "def three():\n    return 3"}))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), str(subs), "--chapters",
                        str(chapters), "--gradebook", str(tmp_path / "gradebook")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_csv(subs) == [grade.HEADER, ["ann", "01_tiny.ipynb", "ex-one", "1", "1"],
                              ["ann", "01_tiny.ipynb", "ex-two", "0", "1"],
                              ["ann", "01_tiny.ipynb", "ex-three", "1", "1"],
                              ["bea", "01_tiny.ipynb", "ex-one", "0", "1"],
                              ["bea", "01_tiny.ipynb", "ex-two", "1", "1"],
                              ["bea", "01_tiny.ipynb", "ex-three", "1", "1"]]
    graded = json.loads((tmp_path / "gradebook" / "autograded" / "bea" / "01_tiny" /
                         "01_tiny.ipynb").read_text())
    check_one = [c for c in graded["cells"] if nbrules.is_check(c)][0]
    assert [o["ename"] for o in check_one["outputs"]] == ["NetworkBlocked"]
