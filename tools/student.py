"""Write the student edition of the chapter notebooks.

    python tools/student.py                 # into student/ (git ignores it)
    python tools/student.py --out ~/my-gpt  # anywhere else

In the student edition every solution (the lines between `### BEGIN SOLUTION` and `### END SOLUTION` in a
code cell) becomes `raise NotImplementedError(...)`, all outputs and execution counts are cleared, and the
check cells stay as they are. A notebook that already exists in the output folder is never overwritten:
a learner's work survives pulling course updates; the new version is written beside it as `NAME.new.ipynb`.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nb as nbrules  # noqa: E402  (tools/nb.py: the one place for the notebook rules)

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = nbrules.SOLUTION_BEGIN, nbrules.SOLUTION_END


def strip_solutions(source: str, label: str) -> tuple[str, int]:
    """Replace each solution block by a NotImplementedError; return (new source, number of blocks)."""
    out, inside, n = [], False, 0
    for line in source.split("\n"):
        if (m := BEGIN.match(line)):
            if inside:
                raise ValueError(f"{label}: nested ### BEGIN SOLUTION")
            inside, n = True, n + 1
            out.append(f'{m["indent"]}raise NotImplementedError("{label}: replace this line with your solution")')
        elif END.match(line):
            if not inside:
                raise ValueError(f"{label}: ### END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{label}: ### BEGIN SOLUTION without END")
    return "\n".join(out), n


def student_notebook(nb: dict, name: str) -> dict:
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb["cells"]):
        src = nbrules.source(cell)
        if nbrules.is_code(cell):
            src, n = strip_solutions(src, f"{name} cell {i}")
            cell["outputs"], cell["execution_count"] = [], None
            tags = cell.get("metadata", {}).get("tags", [])
            if n and "hide-input" in tags:  # the learner needs to see the cell they fill in
                tags.remove("hide-input")
        cell["source"] = src
    return nb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "student")
    ap.add_argument("--chapters", type=Path, default=ROOT / "chapters")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for nb_path in sorted(args.chapters.glob("*.ipynb")):
        nb = student_notebook(nbrules.read(nb_path), nb_path.stem)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        target = args.out / nb_path.name
        if target.exists() and target.read_text(encoding="utf-8") != text:
            target = target.with_suffix(".new.ipynb")
            print(f"kept your {nb_path.name}; the course's new version is {target.name}")
        target.write_text(text, encoding="utf-8")
    print(f"student edition written to {args.out}")


if __name__ == "__main__":
    main()
