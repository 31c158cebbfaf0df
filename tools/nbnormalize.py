"""Store executed notebooks with one output block per printed stream and the kernelspec JupyterLab
writes, so the book shows a printed table in one box and opening a chapter in Lab changes nothing.

    python tools/nbnormalize.py chapters/02_attention.ipynb ...  # in place (`make execute` runs it)
    python tools/nbnormalize.py --check chapters/*.ipynb         # exit 1 naming each that differs

* **Streams.** A cell that prints several times gets one stream output per flush from the kernel;
  nbconvert stores each, and the book showed one printed table as several boxes. Consecutive stream
  outputs of the same name (stdout, stderr) are merged into one; a stream after an image or a value
  stays apart.
* **Kernelspec.** nbconvert keeps the kernelspec the notebook had; Lab, at its first save after
  opening a notebook, writes the running kernel's (`display_name` "Python 3 (ipykernel)"), which
  modified every tracked chapter. The installed kernelspec of the notebook's kernel is written.
  (Tried with JupyterLab 4.6: a chapter normalised so, opened and saved in Lab, is byte-identical.)

`language_info` needs nothing: nbconvert and Lab both copy it from the kernel's own description.
Outputs' text is not otherwise changed, so nbval's comparison (which merges streams itself) is
unaffected.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


def merge_streams(outputs: list) -> list:
    """Consecutive stream outputs with the same name become one (text concatenated, order kept)."""
    merged: list = []
    for out in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and out.get("output_type") == "stream"
            and last.get("output_type") == "stream"
            and out.get("name") == last.get("name")
        ):
            last["text"] = _text(last) + _text(out)
        else:
            merged.append(out)
    return merged


def _text(out) -> str:
    t = out.get("text", "")
    return "".join(t) if isinstance(t, list) else t


def lab_kernelspec(name: str) -> dict | None:
    """The kernelspec Lab writes for kernel `name`: the installed spec (None if not installed)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("outputs"):
            cell.outputs = merge_streams(cell.outputs)
    name = (nb.metadata.get("kernelspec") or {}).get("name", "python3")
    spec = lab_kernelspec(name)
    if spec is not None:
        nb.metadata["kernelspec"] = nbformat.from_dict(spec)
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a notebook would change"
    )
    args = ap.parse_args(argv)
    differ = []
    for path in args.notebooks:
        if not path.is_file():
            print(f"nbnormalize: no notebook at {path}", file=sys.stderr)
            return 2
        before = path.read_text(encoding="utf-8")
        after = nbformat.writes(normalize(nbformat.reads(before, as_version=4))) + "\n"
        if after != before:
            differ.append(path)
            if not args.check:
                path.write_text(after, encoding="utf-8")
    if args.check and differ:
        print(
            "not stored as `make execute` leaves them (split streams or kernelspec); run "
            "`python tools/nbnormalize.py` on: " + " ".join(map(str, differ)),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
