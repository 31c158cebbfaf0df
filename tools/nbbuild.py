"""Author notebooks as plain Python (for diffs and review), then build the .ipynb from it.

    python tools/nbbuild.py SRC.py chapters/NN_name.ipynb      # percent-format Python -> notebook
    python tools/nbbuild.py --to-py chapters/NN_name.ipynb     # notebook -> percent Python, stdout

SRC.py is a sequence of cells separated by lines `# %% [markdown]` / `# %%` (optionally
`tags=[...]`), the "percent" format editors understand. Markdown cells are written as comment lines
(`# ` removed). Existing outputs of a cell with identical source are kept, so re-building after a
text edit does not force a re-run; `make execute NB=...` refreshes them.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nb as nbrules  # noqa: E402  (tools/nb.py: the one place for the notebook rules)

HEAD = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=\[(?P<tags>[^\]]*)\])?\s*$")


def parse(text: str) -> list[nbformat.NotebookNode]:
    cells, cur, kind, tags = [], [], None, []

    def flush():
        if kind is None:
            return
        src = "\n".join(cur).strip("\n")
        if kind == "markdown":
            src = "\n".join(ln[2:] if ln.startswith("# ") else ln[1:] if ln.startswith("#") else ln
                            for ln in src.split("\n"))
            cell = nbformat.v4.new_markdown_cell(src)
        else:
            cell = nbformat.v4.new_code_cell(src)
        if tags:
            cell.metadata["tags"] = tags
        cell.id = f"cell-{len(cells)}"
        cells.append(cell)

    for line in text.split("\n"):
        m = HEAD.match(line)
        if m:
            flush()
            kind = "markdown" if m["md"] else "code"
            tags = [t.strip().strip("'\"") for t in (m["tags"] or "").split(",") if t.strip()]
            cur = []
        else:
            cur.append(line)
    flush()
    return cells


def build(src: Path, dst: Path) -> None:
    cells = parse(src.read_text(encoding="utf-8"))
    # a new notebook gets the kernelspec JupyterLab writes (tools/nbnormalize.py)
    kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    old, metadata = {}, {"kernelspec": kernelspec, "language_info": {"name": "python"}}
    old_ids: dict[tuple[str, str], list[str]] = {}
    if dst.exists():
        previous = json.loads(dst.read_text(encoding="utf-8"))
        metadata = previous.get("metadata") or metadata      # keep what the last run recorded
        for _, c in nbrules.code_cells(previous):
            old[nbrules.source(c)] = (c.get("outputs", []), c.get("execution_count"))
        for c in previous.get("cells", []):                  # an unchanged cell keeps its id
            if c.get("id"):
                old_ids.setdefault((c["cell_type"], nbrules.source(c)), []).append(c["id"])
    taken = {i for ids in old_ids.values() for i in ids}     # a new cell's id must not clash
    for n, c in enumerate(cells):
        ids = old_ids.get((c.cell_type, c.source))
        if ids:
            c.id = ids.pop(0)
        elif c.id in taken:                                  # a new or edited cell: a fresh id
            free = (f"cell-{k}" for k in range(n, n + len(taken) + 1))
            c.id = next(i for i in free if i not in taken)
        taken.add(c.id)
        if c.cell_type == "code" and c.source in old:
            outputs, count = old[c.source]
            c.outputs, c.execution_count = [nbformat.from_dict(o) for o in outputs], count
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = nbformat.from_dict(metadata)
    nbformat.write(nb, str(dst))


def to_py(nb_path: Path) -> str:
    out = []
    for c in nbrules.cells(nb_path):
        src = nbrules.source(c)
        tags = nbrules.tags(c)
        head = "# %% [markdown]" if c["cell_type"] == "markdown" else "# %%"
        if tags:
            head += " tags=[" + ", ".join(f'"{t}"' for t in tags) + "]"
        if c["cell_type"] == "markdown":
            src = "\n".join(("# " + ln) if ln else "#" for ln in src.split("\n"))
        out.append(head + "\n" + src + "\n")
    return "\n".join(out)


USAGE = """usage: python tools/nbbuild.py SRC.py NOTEBOOK.ipynb   build NOTEBOOK from percent Python
       python tools/nbbuild.py --to-py NOTEBOOK.ipynb    print NOTEBOOK as percent Python"""


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(argv) == 2 and argv[0] == "--to-py":
        nb = Path(argv[1])
        if not nb.is_file():
            print(f"nbbuild: no notebook at {nb}\n{USAGE}", file=sys.stderr)
            return 2
        sys.stdout.write(to_py(nb))
        return 0
    if len(argv) == 2 and not argv[0].startswith("-"):
        src = Path(argv[0])
        if not src.is_file():
            print(f"nbbuild: no source file at {src}\n{USAGE}", file=sys.stderr)
            return 2
        build(src, Path(argv[1]))
        return 0
    print(f"nbbuild: expected two arguments, got {len(argv)}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
