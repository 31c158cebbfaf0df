"""tools/nbnormalize.py (run by `make execute`): one output block per printed stream (the book
showed a printed table as several boxes) and the installed kernelspec, which JupyterLab writes at
its first save (opening a chapter in Lab modified the tracked notebook).
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nbnormalize  # noqa: E402

v4 = nbformat.v4


def stream(text, name="stdout"):
    return v4.new_output("stream", name=name, text=text)


def notebook(outputs, display_name="Python 3"):
    nb = v4.new_notebook(cells=[v4.new_code_cell("print('x')", outputs=outputs, execution_count=1)])
    nb.metadata["kernelspec"] = {
        "display_name": display_name,
        "language": "python",
        "name": "python3",
    }
    return nb


def test_consecutive_streams_of_one_name_become_one_block():
    nb = nbnormalize.normalize(
        notebook([stream("T  time\n"), stream("8  0.1\n"), stream("16 0.2\n")])
    )
    assert [(o.output_type, o.text) for o in nb.cells[0].outputs] == [
        ("stream", "T  time\n8  0.1\n16 0.2\n")
    ]


def test_streams_apart_stay_apart():
    png = v4.new_output("display_data", data={"text/plain": "<Figure>"})
    outs = [
        stream("a\n"),
        stream("warn\n", "stderr"),
        stream("b\n"),
        png,
        stream("c\n"),
        stream("d\n"),
    ]
    nb = nbnormalize.normalize(notebook(outs))
    got = [(o.output_type, o.get("name"), o.get("text")) for o in nb.cells[0].outputs]
    assert got == [
        ("stream", "stdout", "a\n"),
        ("stream", "stderr", "warn\n"),
        ("stream", "stdout", "b\n"),
        ("display_data", None, None),
        ("stream", "stdout", "c\nd\n"),
    ]


def test_the_kernelspec_is_the_installed_one_as_lab_writes_it():
    spec = nbnormalize.lab_kernelspec("python3")
    assert spec is not None and spec["name"] == "python3" and spec["display_name"]
    nb = nbnormalize.normalize(notebook([]))
    assert dict(nb.metadata["kernelspec"]) == spec


def test_check_mode_names_the_notebook_and_changes_nothing(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook([stream("a\n"), stream("b\n")]), str(path))
    before = path.read_bytes()
    tool = [sys.executable, str(ROOT / "tools" / "nbnormalize.py")]
    r = subprocess.run([*tool, "--check", str(path)], capture_output=True, text=True)
    assert r.returncode == 1 and "nb.ipynb" in r.stderr and path.read_bytes() == before
    assert subprocess.run([*tool, str(path)]).returncode == 0
    assert subprocess.run([*tool, "--check", str(path)]).returncode == 0  # normalised once is final
    assert len(nbformat.read(str(path), as_version=4).cells[0].outputs) == 1


@pytest.mark.parametrize(
    "nb", sorted((ROOT / "chapters").glob("*.ipynb"))[:1], ids=lambda p: p.name
)
def test_a_normalised_chapter_keeps_every_cell_and_output_text(nb):
    before = nbformat.read(str(nb), as_version=4)
    after = nbnormalize.normalize(nbformat.read(str(nb), as_version=4))
    assert [c.source for c in before.cells] == [c.source for c in after.cells]

    def text(outs):
        return "".join(o.get("text", "") for o in outs if o.output_type == "stream")

    for a, b in zip(before.cells, after.cells):
        if a.cell_type == "code":
            assert text(a.outputs) == text(b.outputs)
