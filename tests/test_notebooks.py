"""House rules every chapter notebook follows (nbval re-executes them; these check how they are stored)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
EXERCISE_CHAPTERS = [nb for nb in NOTEBOOKS if not nb.name.startswith("00_")]


def cells(nb):
    return json.loads(nb.read_text(encoding="utf-8"))["cells"]


def src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in NOTEBOOKS:
        assert f"chapters/{nb.stem}" in toc, f"{nb.name} is missing from _toc.yml"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_come_from_one_clean_run(nb):
    code = [c for c in cells(nb) if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), \
        f"{nb.name}: execution counts {counts} are not 1..{len(code)}: run `make execute NB=chapters/{nb.name}`"
    for c in code:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", f"{nb.name}: a stored output is an error:\n{src(c)[:200]}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_skips_are_rare_and_still_assert(nb):
    for c in cells(nb):
        tags = c.get("metadata", {}).get("tags", [])
        if "nbval-ignore-output" in tags:
            assert "assert" in src(c) or "check_" in src(c), \
                f"{nb.name}: an output-ignored cell must still assert what matters:\n{src(c)[:300]}"
        assert "nbval-skip" not in tags, f"{nb.name}: cells are never skipped, only their output ignored"


@pytest.mark.parametrize("nb", EXERCISE_CHAPTERS, ids=lambda p: p.name)
def test_exercises_are_posed_solved_and_checked(nb):
    cs = cells(nb)
    sol = [i for i, c in enumerate(cs) if c["cell_type"] == "code" and "### BEGIN SOLUTION" in src(c)]
    assert len(sol) >= 3, f"{nb.name}: at least three exercises, found {len(sol)}"
    for i in sol:
        s = src(cs[i])
        assert s.count("### BEGIN SOLUTION") == s.count("### END SOLUTION"), f"{nb.name} cell {i}: unbalanced markers"
        prose = "".join(src(c) for c in cs[max(0, i - 3):i] if c["cell_type"] == "markdown")
        assert re.search(r"```{exercise}", prose), f"{nb.name} cell {i}: the exercise directive must come before"
        for field in ("Difficulty", "Time", "gptlib"):
            assert field in prose, f"{nb.name} cell {i}: exercise text lacks '{field}'"
        assert ":class: dropdown" in prose or "{dropdown}" in prose, f"{nb.name} cell {i}: hints must be collapsed"
        nxt = next(c for c in cs[i + 1:] if c["cell_type"] == "code")
        assert "check_" in src(nxt) and "check" in nxt.get("metadata", {}).get("tags", []), \
            f"{nb.name} cell {i}: a solution is followed by a check cell tagged 'check'"
