"""Grade a folder of submissions with nbgrader's autograder.

    python tools/grade.py SUBMISSIONS [--timeout 300] [--gradebook DIR]
    make grade SUBMISSIONS=DIR [GRADE_TIMEOUT=300] [GRADEBOOK=DIR]    # the same

SUBMISSIONS/<student>/<notebook>.ipynb are the learners' filled-in copies of the student edition
(for example `alice/02_attention.ipynb`). Each chapter is an nbgrader assignment of one notebook;
its source is the chapter itself with nbgrader metadata written from the tags (`tools/nb.py`),
released exactly as `make student` releases it (`tools/student.py`). For every submission nbgrader's
autograder runs the notebook top to bottom in a fresh kernel, offline (the course's network guard)
and with a per-cell timeout, after restoring every check cell from the source (an edited, weakened
or deleted check is put back); each check cell that runs without an error earns its points. Written:

    SUBMISSIONS/grades.csv                    student,notebook,exercise,score,max_score (a row per
                                              exercise of each graded notebook)
    SUBMISSIONS/feedback/<student>/<nb>.html  nbgrader's feedback for each graded notebook

and a summary per exercise is printed. The gradebook (nbgrader's course folder and database) is kept
in a git-ignored folder, `.grading/<name of SUBMISSIONS>-<hash of its path>/` unless --gradebook
says otherwise; re-running grades only the submissions that changed (or all of them when the course
or the timeout changed). A file that is not a notebook of the course is reported by name and
skipped. `grades.csv` and `feedback/` in SUBMISSIONS are the grader's own, so no student folder may
be called `feedback`.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nb as nbrules  # noqa: E402
import student  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEADER = ["student", "notebook", "exercise", "score", "max_score"]
RESERVED = {"grades.csv", "feedback"}
STATE = "gptlib-grading.json"
# the environment of `make test` / `make execute` (see the Makefile): the CPU profile, no progress
# bars and the network guard in every Python process, the notebook kernels included
OFFLINE_ENV = {"GPTLIB_PROFILE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1",
               "GPTLIB_OFFLINE": "1"}


@dataclass
class Submission:
    student: str
    notebook: str  # the chapter's file name, e.g. 02_attention.ipynb
    path: Path

    @property
    def stem(self) -> str:
        return self.notebook.removesuffix(".ipynb")


def robust_execute() -> type:
    """nbgrader's Execute preprocessor, except that a kernel that dies (os._exit, a segfault, out of
    memory) costs only what it breaks: the cell gets a DeadKernelError output, the kernel is
    restarted and the notebook goes on (cells that needed the lost state fail on their own); the
    checks before it keep their points. nbgrader's own would abandon the whole notebook. Should the
    restart fail, the remaining cells get an error saying they were not run."""
    from nbclient.exceptions import DeadKernelError
    from nbclient.util import ensure_async, run_sync
    from nbformat import NotebookNode
    from nbgrader.preprocessors import Execute

    def error(ename: str, evalue: str) -> NotebookNode:
        return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                            traceback=[f"{ename}: {evalue}"])

    class RobustExecute(Execute):
        dead = False

        def preprocess(self, nb, resources=None, km=None):  # type: ignore[no-untyped-def]
            self.dead = False
            return super().preprocess(nb, resources, km)

        def preprocess_cell(self, cell, resources, index):  # type: ignore[no-untyped-def]
            if self.dead:
                if cell.cell_type == "code":
                    cell.outputs = [error("KernelDied", "not run: the kernel died earlier")]
                return cell, self.resources
            try:
                return super().preprocess_cell(cell, resources, index)
            except DeadKernelError:
                cell.outputs.append(error("DeadKernelError", "the kernel died running this cell; "
                                          "restarted for the cells after it"))
                try:
                    self.restart()
                except Exception as e:  # noqa: BLE001  (whatever it is, the notebook ends here)
                    self.log.error(f"could not restart the kernel: {e!r}")
                    self.dead = True
                return cell, self.resources

        def restart(self) -> None:
            run_sync(self.async_restart)()

        async def async_restart(self) -> None:
            assert self.km is not None and self.kc is not None
            await ensure_async(self.kc.stop_channels())
            await ensure_async(self.km.restart_kernel(now=True))
            await self.async_start_new_kernel_client()

    return RobustExecute


def go_offline() -> None:
    """Put this process and every kernel it starts under the course's offline rules."""
    os.environ.update(OFFLINE_ENV)
    guard = str(ROOT / "tools" / "offline")
    path = os.environ.get("PYTHONPATH", "")
    if guard not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = guard + (os.pathsep + path if path else "")
    warn = "ignore:IProgress not found$"
    if warn not in os.environ.get("PYTHONWARNINGS", ""):
        old = os.environ.get("PYTHONWARNINGS")
        os.environ["PYTHONWARNINGS"] = warn + ("," + old if old else "")


def not_a_notebook(path: Path) -> str | None:
    """Why a .ipynb file cannot be graded, or None when it is a readable notebook."""
    try:
        nb = json.loads(path.read_text("utf-8"))
    except UnicodeDecodeError:
        return "not a notebook (not UTF-8 text)"
    except json.JSONDecodeError as e:
        return f"not a notebook (not JSON: {e.msg} at line {e.lineno})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        return "not a notebook (JSON without nbformat 4 cells)"
    return None


def collect(folder: Path, chapters: dict[str, Path]
            ) -> tuple[list[Submission], list[tuple[Path, str]]]:
    """The gradable submissions in folder/<student>/, and (path, reason) for every file skipped."""
    subs: list[Submission] = []
    skipped: list[tuple[Path, str]] = []
    for entry in sorted(folder.iterdir()):
        if entry.name in RESERVED or entry.name.startswith("."):
            continue
        if not entry.is_dir():
            skipped.append((entry, "not in a student's folder "
                                   "(expected SUBMISSIONS/<student>/<notebook>)"))
            continue
        for f in sorted(entry.rglob("*")):
            rel = f.relative_to(entry)
            if any(part.startswith(".") for part in rel.parts) or f.is_dir():
                continue  # .ipynb_checkpoints and other hidden files
            if f.parent != entry:
                skipped.append((f, "in a sub-folder (expected SUBMISSIONS/<student>/<notebook>)"))
            elif f.name not in chapters:
                skipped.append((f, "not a notebook of the course (expected one of: "
                                   + ", ".join(sorted(chapters)) + ")"))
            elif (why := not_a_notebook(f)):
                skipped.append((f, why))
            else:
                subs.append(Submission(entry.name, f.name, f))
    return subs, skipped


def file_hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def load_state(course: Path) -> dict[str, Any]:
    try:
        return json.loads((course / STATE).read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_state(course: Path, state: dict[str, Any]) -> None:
    student.write_text(course / STATE, json.dumps(state, indent=1, sort_keys=True) + "\n")


def prepare_sources(api: Any, course: Path, stems: set[str], chapters: dict[str, Path],
                    state: dict[str, Any]) -> dict[str, str]:
    """Generate each needed chapter's assignment when new or changed; return {stem: source hash}."""
    hashes = {}
    for stem in sorted(stems):
        nb_path = chapters[stem + ".ipynb"]
        src = student.source_notebook(nbrules.read(nb_path), stem)
        h = file_hash(json.dumps(src, sort_keys=True).encode())
        release = course / "release" / stem / nb_path.name
        if state.get("sources", {}).get(stem) != h or not release.exists():
            student.write_source(course, nb_path)
            student.generate(api, stem)
            state.setdefault("sources", {})[stem] = h
            save_state(course, state)
        hashes[stem] = h
    return hashes


def grade_one(api: Any, course: Path, sub: Submission) -> str | None:
    """Autograde one submission and write its feedback; return an error message or None."""
    dest = course / "submitted" / sub.student / sub.stem
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copyfile(sub.path, dest / sub.notebook)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S.000000 UTC", time.gmtime())
    (dest / "timestamp.txt").write_text(stamp)
    result = api.autograde(sub.stem, sub.student, force=True, create=True)
    if not result["success"]:
        return last_error(result)
    result = api.generate_feedback(sub.stem, sub.student, force=True)
    if not result["success"]:
        return "feedback: " + last_error(result)
    return None


def last_error(result: dict[str, Any]) -> str:
    lines = [line for line in (result.get("log") or result.get("error") or "").splitlines()
             if line.strip() and "Please see the" not in line]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["unknown error"])[-1].strip()


def scores(course: Path, sub: Submission,
           exercises: list[nbrules.Exercise]) -> list[tuple[str, float]]:
    """(exercise label, score) from the gradebook, in the notebook's order."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(sub.stem, sub.stem, sub.student)
        got = {g.name: float(g.score or 0.0) for g in nb.grades}
    return [(ex.label, got.get(ex.label, 0.0)) for ex in exercises]


def number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def summary(rows: list[list[str]]) -> str:
    """Per exercise: mean score / max and how many students got it (full points)."""
    per: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _, notebook, exercise, score, max_score in rows:
        per.setdefault((notebook, exercise), []).append((float(score), float(max_score)))
    lines = [f"{'notebook':<24} {'exercise':<28} {'mean':>6} {'max':>4}  solved by"]
    for (notebook, exercise), got in per.items():
        mean = sum(s for s, _ in got) / len(got)
        solved = sum(s >= m for s, m in got)
        lines.append(f"{notebook:<24} {exercise:<28} {mean:>6.2f} {number(got[0][1]):>4}  "
                     f"{solved}/{len(got)}")
    return "\n".join(lines)


def default_gradebook(folder: Path) -> Path:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    return ROOT / ".grading" / f"{folder.resolve().name}-{key}"


def grade(folder: Path, gradebook: Path | None = None, timeout: int = 300,
          chapters_dir: Path = ROOT / "chapters") -> list[list[str]]:
    """Grade every submission in `folder` (see the module's docstring); return grades.csv's rows."""
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such folder; pass SUBMISSIONS=DIR with "
                         "DIR/<student>/<notebook>.ipynb")
    if timeout < 1:
        raise SystemExit(f"--timeout must be at least 1 second per cell, got {timeout}")
    go_offline()
    # nbgrader's gradebook code trips SQLAlchemy's autoflush warnings: nothing about the grades
    warnings.filterwarnings("ignore", message="Object of type <Submitted")
    chapters = {p.name: p for p in sorted(chapters_dir.glob("*.ipynb"))}
    course = (gradebook or default_gradebook(folder)).resolve()
    course.mkdir(parents=True, exist_ok=True)
    subs, skipped = collect(folder, chapters)
    for path, why in skipped:
        print(f"skipped {path.relative_to(folder)}: {why}")
    state = load_state(course)
    api = student.nbgrader_api(course, timeout, robust_execute())
    sources = prepare_sources(api, course, {s.stem for s in subs}, chapters, state)
    exercises = {stem: nbrules.exercises(nbrules.read(chapters[stem + ".ipynb"]), stem)
                 for stem in sources}
    graded = state.setdefault("graded", {})
    rows: list[list[str]] = []
    n_new = n_same = 0
    t0 = time.perf_counter()
    for sub in subs:
        key = f"{sub.student}/{sub.notebook}"
        h = file_hash(sub.path.read_bytes(), sources[sub.stem].encode(), str(timeout).encode())
        feedback = folder / "feedback" / sub.student / (sub.stem + ".html")
        error = None
        if graded.get(key) == h and feedback.exists():
            n_same += 1
        else:
            t = time.perf_counter()
            error = grade_one(api, course, sub)
            n_new += 1
            if error is None:
                src = course / "feedback" / sub.student / sub.stem / (sub.stem + ".html")
                feedback.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, feedback)
                graded[key] = h
                print(f"graded {key} in {time.perf_counter() - t:.0f} s")
            else:
                graded.pop(key, None)
                print(f"FAILED to grade {key} (every exercise scores 0; fix and re-run): {error}")
            save_state(course, state)
        got = ([(ex.label, 0.0) for ex in exercises[sub.stem]] if error
               else scores(course, sub, exercises[sub.stem]))
        points = {ex.label: ex.points for ex in exercises[sub.stem]}
        rows += [[sub.student, sub.notebook, label, number(s), number(points[label])]
                 for label, s in got]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    student.write_text(folder / "grades.csv", out.getvalue())
    print(f"graded {n_new} notebook(s) in {time.perf_counter() - t0:.0f} s, {n_same} unchanged "
          f"since the last run, {len(skipped)} file(s) skipped")
    if rows:
        print(summary(rows))
    print(f"wrote {folder / 'grades.csv'} and feedback in {folder / 'feedback'}; "
          f"gradebook {course}")
    return rows


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  (show progress)
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("submissions", type=Path, help="folder with <student>/<notebook>.ipynb")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    ap.add_argument("--gradebook", type=Path, default=None,
                    help="nbgrader's course folder (default: .grading/<name>-<hash>/ here)")
    ap.add_argument("--chapters", type=Path, default=ROOT / "chapters")
    args = ap.parse_args()
    grade(args.submissions, args.gradebook, args.timeout, args.chapters)


if __name__ == "__main__":
    main()
