"""The notebook rules of the course, in one place: reading cells, the export marker, the solution markers,
check cells. Used by tools/export.py, tools/student.py, tools/nbbuild.py and the tests.

    # export: gptlib/<module>.py        first line of a code cell: the cell is exported into that module
    ### BEGIN SOLUTION / ### END SOLUTION   lines around an exercise's solution (student edition removes them)
    tags: ["check"]                       a code cell calling gptlib.checks.chN.check_* (the exercise's check)

Cells are numbered as in the notebook file, from 0 (`nb["cells"][K]`), in every message and provenance comment.
"""
from __future__ import annotations

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
    """The lines between each BEGIN/END SOLUTION pair (markers excluded); unbalanced markers are an error."""
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


def without_solution_markers(src: str) -> str:
    """The source with the marker lines dropped (the solution itself kept): what gptlib receives."""
    return "\n".join(line for line in src.split("\n") if not SOLUTION_LINE.match(line))
