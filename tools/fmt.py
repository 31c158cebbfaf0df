"""Format every code cell of the given notebooks with `ruff format` (100 columns), keeping outputs.

    python tools/fmt.py chapters/*.ipynb          # rewrite the code cells in place
    python tools/fmt.py --check chapters/*.ipynb  # exit 1 and list the cells that would change

The book's code column fits 100 columns (_static/gptlib.css), so code cells are formatted to that
width (pyproject.toml's ruff settings). Outputs, execution counts, ids, tags and metadata stay as
they are: a formatted cell holds the same program (its syntax tree is compared), so its stored
outputs stay valid (nbval re-runs prove it).
Not touched: markdown cells, cells with IPython syntax (`%magic`, `!shell`, `?`), which ruff cannot
parse, and cells ruff cannot format (named, with the reason, on stderr). The `# export:` first line
and the solution markers are comments, which ruff keeps in place.
"""
from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
IPYTHON = re.compile(r"^\s*(%|!|\?)|^\s*\w[\w.]*\?\??\s*$", re.M)


def ruff() -> list[str]:
    exe = Path(sys.executable).parent / "ruff"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ruff"]


def format_source(src: str, line_length: int = 100) -> str:
    """`src` formatted by ruff; raises ValueError with ruff's message when it cannot parse it."""
    r = subprocess.run([*ruff(), "format", "--line-length", str(line_length), "--stdin-filename",
                        "cell.py", "-"], input=src, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise ValueError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "ruff failed")
    out = r.stdout
    return out[:-1] if out.endswith("\n") and not src.endswith("\n") else out


def format_notebook(path: Path, check: bool = False, line_length: int = 100) -> list[str]:
    """Format `path`'s code cells in place (unless check); return 'file cell N' for each change."""
    nb = nbformat.read(str(path), as_version=4)
    changed = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip() or IPYTHON.search(cell.source):
            continue
        try:
            new = format_source(cell.source, line_length)
        except ValueError as e:
            print(f"fmt: {path} cell {i}: not formatted ({e})", file=sys.stderr)
            continue
        same = ast.dump(ast.parse(new)) == ast.dump(ast.parse(cell.source))
        if new != cell.source and not same:
            print(f"fmt: {path} cell {i}: not formatted (the program would change)",
                  file=sys.stderr)
            continue
        if new != cell.source:
            changed.append(f"{path} cell {i}")
            cell.source = new
    if changed and not check:
        before = path.read_text(encoding="utf-8")
        after = nbformat.writes(nb) + ("\n" if before.endswith("\n") else "")
        path.write_text(after, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if a cell would change")
    ap.add_argument("--line-length", type=int, default=100)
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"fmt: no notebook at {', '.join(missing)}", file=sys.stderr)
        return 2
    changed = [c for p in args.notebooks for c in format_notebook(p, args.check, args.line_length)]
    verb = "would reformat" if args.check else "reformatted"
    print(f"{verb} {len(changed)} code cell(s) in {len(args.notebooks)} notebook(s)")
    long = [(p, i) for p in args.notebooks for i, c in enumerate(nbformat.read(str(p), 4).cells)
            if c.cell_type == "code"
            for line in c.source.split("\n") if len(line) > args.line_length]
    if long:
        print(f"{len(long)} line(s) still longer than {args.line_length} columns (comments and "
              f"strings, which ruff does not wrap), in {len(set(long))} cell(s)")
    if args.check and changed:
        print("\n".join(changed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
