"""The notebook rules of the course, in one place: reading cells, the export marker, the solution
markers, check cells, exercises and their nbgrader metadata. Used by tools/export.py,
tools/student.py, tools/grade.py, tools/nbbuild.py and the tests.

    # export: gptlib/<module>.py        first line of a code cell: exported into that module
    ### BEGIN SOLUTION / ### END SOLUTION   lines around an exercise's solution (the student edition
                                          replaces them by a stub)
    tags: ["check"]                       a code cell calling gptlib.checks.chN.check_* (the check)

Cells are numbered as in the notebook file, from 0 (`nb["cells"][K]`), in every message and
provenance comment.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Cell = dict[str, Any]

MARKER = re.compile(r"^# export: gptlib/(?P<module>[a-z_][a-z0-9_/]*\.py)\s*$")
SOLUTION_BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION\s*$")
SOLUTION_END = re.compile(r"^\s*### END SOLUTION\s*$")
SOLUTION_LINE = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")
CHECK_TAG = "check"
IGNORE_OUTPUT_TAG = "nbval-ignore-output"


def read(path: str | Path) -> dict[str, Any]:
    """The notebook as a plain dict (the JSON as stored)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def cells(nb: dict[str, Any] | str | Path) -> list[Cell]:
    """The cells of a notebook given as a dict or a path."""
    return (nb if isinstance(nb, dict) else read(nb))["cells"]


def source(cell: Cell) -> str:
    """A cell's source as one string (nbformat stores a string or a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def tags(cell: Cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_code(cell: Cell) -> bool:
    return cell.get("cell_type") == "code"


def is_check(cell: Cell) -> bool:
    """A check cell: a code cell tagged `check`."""
    return is_code(cell) and CHECK_TAG in tags(cell)


def code_cells(nb: dict[str, Any] | str | Path) -> Iterator[tuple[int, Cell]]:
    """(index in the notebook, cell) for every code cell."""
    for i, c in enumerate(cells(nb)):
        if is_code(c):
            yield i, c


def export_target(cell: Cell, where: str = "") -> str | None:
    """The module path below gptlib/ a code cell exports to (e.g. 'tokenizer.py'), or None.

    A marker anywhere but on the first line is an error, not silently ignored."""
    if not is_code(cell):
        return None
    lines = source(cell).split("\n")
    m = MARKER.match(lines[0])
    if m:
        return m.group("module")
    if any(MARKER.match(line) for line in lines[1:]):
        raise ValueError(f"{where}: the export marker must be the cell's first line")
    return None


def has_solution(src: str) -> bool:
    return any(SOLUTION_BEGIN.match(line) for line in src.split("\n"))


def solution_blocks(src: str, label: str = "cell") -> list[list[str]]:
    """The lines between each BEGIN/END SOLUTION pair (markers excluded); unbalanced markers are an
    error."""
    blocks: list[list[str]] = []
    inside = False
    for line in src.split("\n"):
        if SOLUTION_BEGIN.match(line):
            if inside:
                raise ValueError(f"{label}: nested ### BEGIN SOLUTION")
            inside = True
            blocks.append([])
        elif SOLUTION_END.match(line):
            if not inside:
                raise ValueError(f"{label}: ### END SOLUTION without BEGIN")
            inside = False
        elif inside:
            blocks[-1].append(line)
    if inside:
        raise ValueError(f"{label}: ### BEGIN SOLUTION without END")
    return blocks


def replace_solutions(src: str, stub: str, label: str = "cell") -> tuple[str, int]:
    """The source with each solution block, markers included, replaced by the `stub` line(s),
    indented like its BEGIN marker (as nbgrader's ClearSolutions does); returns (source, blocks)."""
    n = len(solution_blocks(src, label))  # validates the markers
    out: list[str] = []
    inside = False
    for line in src.split("\n"):
        if (m := SOLUTION_BEGIN.match(line)):
            inside = True
            out += [m["indent"] + s for s in stub.split("\n")]
        elif SOLUTION_END.match(line):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out), n


def without_solution_markers(src: str) -> str:
    """The source with the marker lines dropped (the solution itself kept): what gptlib receives."""
    return "\n".join(line for line in src.split("\n") if not SOLUTION_LINE.match(line))


# --- exercises and nbgrader ----------------------------------------------------------------------
# An exercise is a markdown cell with a `{exercise}` directive and its `:label:`, then (before the
# next exercise) its solution cell(s) (`### BEGIN SOLUTION` ... `### END SOLUTION`, tag
# `hide-input`) and exactly one check cell (tag `check`). Exercises without a solution cell
# ("Predict, then measure") are not graded. nbgrader's metadata is written from these tags by
# `with_nbgrader_metadata`, never by hand: a solution cell becomes an nbgrader solution cell (id
# LABEL-solution, LABEL-solution-2, ...), the check cell an autograded, locked test cell (id LABEL)
# worth 1 point, or N points with a tag `points-N` on the check cell.

EXERCISE_LABEL = re.compile(r"^```\{exercise\}.*\n:label:\s*(?P<label>\S+)\s*$", re.MULTILINE)
POINTS_TAG = re.compile(r"^points-(?P<n>[1-9][0-9]*)$")
NBGRADER_SCHEMA = 3


class Exercise:
    """A graded exercise: its label, solution cell indices, check cell index and points."""

    def __init__(self, label: str, solutions: list[int], check: int, points: int) -> None:
        self.label, self.solutions, self.check, self.points = label, solutions, check, points

    def __repr__(self) -> str:
        return (f"Exercise({self.label!r}, solutions={self.solutions}, check={self.check}, "
                f"points={self.points})")


def check_points(cell: Cell, where: str = "") -> int:
    """The points a check cell is worth: 1, or N with a tag `points-N`."""
    found = [int(m["n"]) for t in tags(cell) if (m := POINTS_TAG.match(t))]
    if len(found) > 1:
        raise ValueError(f"{where}: more than one points-N tag on a check cell; keep one")
    return found[0] if found else 1


def exercises(nb: dict[str, Any] | str | Path, name: str = "notebook") -> list[Exercise]:
    """The graded exercises of a notebook, in order (rules above); a broken layout is an error."""
    found: list[Exercise] = []
    label: str | None = None
    sols: list[int] = []
    checks: list[int] = []

    def close() -> None:
        if label is None:
            if sols or checks:
                raise ValueError(f"{name} cell {(sols + checks)[0]}: a solution or check cell "
                                 "before any {exercise} directive; put the exercise's markdown "
                                 "cell above it")
            return
        if not sols and not checks:
            return  # an ungraded exercise (predict, then measure)
        if len(checks) != 1 or not sols or min(sols) > checks[0]:
            raise ValueError(f"{name}: exercise {label} needs its solution cell(s) followed by "
                             f"exactly one check cell (tag `check`); found solutions in cells "
                             f"{sols}, checks in {checks}")
        found.append(Exercise(label, list(sols), checks[0],
                              check_points(cells(nb)[checks[0]], f"{name} cell {checks[0]}")))

    for i, cell in enumerate(cells(nb)):
        if cell.get("cell_type") == "markdown" and (m := EXERCISE_LABEL.search(source(cell))):
            close()
            label, sols, checks = m["label"], [], []
        elif is_check(cell):
            checks.append(i)
        elif is_code(cell) and has_solution(source(cell)):
            sols.append(i)
    close()
    labels = [e.label for e in found]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name}: exercise labels must be unique, got {labels}")
    return found


def with_nbgrader_metadata(nb: dict[str, Any], name: str = "notebook") -> dict[str, Any]:
    """A copy of the notebook whose exercise cells carry nbgrader's metadata (from the tags).

    Any nbgrader metadata already in the notebook is dropped first: the tags are the only source."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("nbgrader", None)
    for ex in exercises(nb, name):
        for k, i in enumerate(ex.solutions):
            suffix = "" if k == 0 else f"-{k + 1}"
            nb["cells"][i].setdefault("metadata", {})["nbgrader"] = {
                "grade": False, "grade_id": f"{ex.label}-solution{suffix}", "locked": False,
                "schema_version": NBGRADER_SCHEMA, "solution": True, "task": False}
        nb["cells"][ex.check].setdefault("metadata", {})["nbgrader"] = {
            "grade": True, "grade_id": ex.label, "locked": True, "points": ex.points,
            "schema_version": NBGRADER_SCHEMA, "solution": False, "task": False}
    return nb
