"""Write the student edition of the chapter notebooks (nbgrader's release version of each chapter).

    python tools/student.py                 # into student/ (git ignores it)
    python tools/student.py --out ~/my-gpt  # anywhere else

The student edition *is* nbgrader's: each chapter gets its nbgrader metadata from its tags
(`tools/nb.py`: solution cells and locked, autograded check cells), nbgrader's `generate_assignment`
turns it into the release version (every solution between `### BEGIN SOLUTION` and `### END
SOLUTION` becomes `raise NotImplementedError(...)`, outputs and execution counts cleared, check
cells kept and locked), and that file is what the learner gets. `tools/grade.py` grades against the
very same release.

A notebook that already exists in the output folder is never overwritten: a learner's work survives
pulling course updates. When the course's version of a notebook changed since it was last written
there, the new version lands beside it as `NAME.new.ipynb` (or replaces it, if the learner never
changed it); when the course did not change, nothing is written. The folder's
`.course-edition.json` remembers which version each notebook was written from.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nb as nbrules  # noqa: E402  (tools/nb.py: the one place for the notebook rules)

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ".course-edition.json"
STUB = 'raise NotImplementedError("replace this line with your solution")'


def strip_solutions(source: str, label: str) -> tuple[str, int]:
    """Replace each solution block by the NotImplementedError stub; return (source, blocks): the
    replacement nbgrader's ClearSolutions makes with the stub configured in `nbgrader_config` (the
    edition itself is written by nbgrader; tests/test_student.py checks the two agree)."""
    return nbrules.replace_solutions(source, STUB, label)


def source_notebook(nb: dict[str, Any], name: str) -> dict[str, Any]:
    """The chapter as nbgrader's assignment source: nbgrader metadata written from the tags, and
    the solution cells shown (no `hide-input`: the learner needs to see the cell they fill in)."""
    nb = nbrules.with_nbgrader_metadata(nb, name)
    for i, cell in enumerate(nb["cells"]):
        cell.setdefault("id", f"cell-{i}")  # not nbformat's random ids: the edition stays the same
        meta = cell.get("metadata", {})
        if meta.get("nbgrader", {}).get("solution") and "hide-input" in meta.get("tags", []):
            meta["tags"].remove("hide-input")
            if not meta["tags"]:
                del meta["tags"]
    return nb


def nbgrader_config(course: Path, timeout: int = 300, execute: type | None = None) -> Any:
    """The nbgrader configuration of the course (no config file is read: this is all of it);
    `execute` replaces nbgrader's Execute preprocessor in autograding (tools/grade.py's)."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(course)
    c.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    c.ClearSolutions.code_stub = {"python": STUB}
    c.ClearSolutions.enforce_metadata = True
    c.Execute.timeout = timeout            # seconds per cell; a longer cell is interrupted
    c.Execute.interrupt_on_timeout = True  # ... and the notebook goes on with the next cell
    c.Execute.allow_errors = True
    c.OverwriteCells.add_missing_cells = True  # a deleted check cell is put back
    if execute is not None:
        default = Autograde.class_traits()["autograde_preprocessors"].default()
        c.Autograde.autograde_preprocessors = [execute if p is Execute else p for p in default]
    return c


def nbgrader_api(course: Path, timeout: int = 300, execute: type | None = None) -> Any:
    import logging

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    # nbgrader runs `alembic` (a console script) by name: the venv's bin/ must be on PATH
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    config = nbgrader_config(course, timeout, execute)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    api.log.setLevel(logging.WARNING)
    return api


def write_source(course: Path, nb_path: Path) -> Path:
    """Write a chapter into nbgrader's source folder (course/source/STEM/STEM.ipynb)."""
    src = source_notebook(nbrules.read(nb_path), nb_path.stem)
    target = course / "source" / nb_path.stem / nb_path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, json.dumps(src, indent=1, ensure_ascii=False) + "\n")
    return target


def generate(api: Any, stem: str) -> None:
    """nbgrader generate_assignment for one chapter (an error names it, with nbgrader's log)."""
    result = api.generate_assignment(stem, force=True, create=True)
    if not result["success"]:
        raise RuntimeError(f"nbgrader generate_assignment failed for {stem}:\n"
                           f"{result.get('log')}\n{result.get('error')}")


def release(chapters: list[Path]) -> dict[str, str]:
    """The student edition as {file name: notebook text}, made by nbgrader in a temporary folder."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="gptlib-release-") as tmp:
        course = Path(tmp)
        api = nbgrader_api(course)
        for nb_path in chapters:
            write_source(course, nb_path)
            generate(api, nb_path.stem)
            released = course / "release" / nb_path.stem / nb_path.name
            out[nb_path.name] = released.read_text("utf-8")
    return out


def write_text(path: Path, text: str) -> None:
    """Write a file atomically: a half-written notebook never replaces a learner's file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # not mkstemp's 0600: the learner's other tools read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def deliver(out: Path, edition: dict[str, str]) -> list[str]:
    """Write the edition into `out`, never overwriting a learner's work; return what was said."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path.exists() else {}
    except json.JSONDecodeError:
        manifest = {}  # a damaged manifest only means a .new copy may be written once more
    said = []
    for name, text in sorted(edition.items()):
        target, h = out / name, sha(text)
        if not target.exists():
            write_text(target, text)
        elif manifest.get(name) not in (None, h) and \
                sha(target.read_text("utf-8")) == manifest[name]:
            write_text(target, text)  # the learner never changed it: nothing of theirs to keep
            said.append(f"updated {name} to the course's new version (you had not changed it)")
        elif target.read_text("utf-8") != text and manifest.get(name) != h:
            new = target.with_suffix(".new.ipynb")  # the course changed since this copy was written
            if not (new.exists() and new.read_text("utf-8") == text):
                write_text(new, text)
                said.append(f"kept your {name}; the course's new version is {new.name}")
        manifest[name] = h
    write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return said


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "student")
    ap.add_argument("--chapters", type=Path, default=ROOT / "chapters")
    ap.add_argument("--nbgrader-course", type=Path, default=None, metavar="COURSE",
                    help="instead: write the chapters into nbgrader's course folder COURSE "
                         "(COURSE/source/<chapter>/) and generate COURSE/release/ there")
    args = ap.parse_args()
    chapters = sorted(args.chapters.glob("*.ipynb"))
    if not chapters:
        sys.exit(f"no notebooks in {args.chapters}: pass --chapters with the course's chapters/")
    if args.nbgrader_course:
        course = args.nbgrader_course.resolve()
        api = nbgrader_api(course)
        for nb_path in chapters:
            write_source(course, nb_path)
            generate(api, nb_path.stem)
        print(f"nbgrader course folder: {course}/source, release/ and gradebook.db")
        return
    for line in deliver(args.out, release(chapters)):
        print(line)
    print(f"student edition written to {args.out}")


if __name__ == "__main__":
    main()
