"""tools/nbbuild.py round-trips every chapter: notebook -> percent-format Python -> notebook, byte for byte."""
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nb as nbrules  # noqa: E402
import nbbuild  # noqa: E402

src = nbrules.source


@pytest.mark.parametrize("nb", sorted((ROOT / "chapters").glob("*.ipynb")), ids=lambda p: p.name)
def test_round_trip_keeps_sources_tags_and_outputs(nb, tmp_path):
    py = tmp_path / "nb.py"
    py.write_text(nbbuild.to_py(nb))
    out = tmp_path / nb.name
    shutil.copy(nb, out)                       # building over the old file keeps outputs of unchanged cells
    nbbuild.build(py, out)
    a, b = nbrules.cells(nb), nbrules.cells(out)
    assert [(c["cell_type"], src(c), nbrules.tags(c)) for c in a] == [(c["cell_type"], src(c), nbrules.tags(c)) for c in b]
    assert [c.get("outputs") for c in a] == [c.get("outputs") for c in b]
    assert out.read_bytes() == nb.read_bytes(), "a rebuild without edits must not change the file"


def test_an_edited_cell_loses_its_stale_outputs(tmp_path):
    nb = ROOT / "chapters" / "00_setup.ipynb"
    py = tmp_path / "nb.py"
    py.write_text(nbbuild.to_py(nb).replace("print(P)", "print(P.name)"))
    out = tmp_path / nb.name
    shutil.copy(nb, out)
    nbbuild.build(py, out)
    edited = [c for c in nbrules.cells(out) if "print(P.name)" in src(c)]
    assert edited and edited[0]["outputs"] == [] and edited[0]["execution_count"] is None


@pytest.mark.parametrize("argv", [[], ["--to-py"], ["one.py"], ["a", "b", "c"], ["--bogus", "x"]])
def test_wrong_arguments_print_usage_not_a_traceback(argv, tmp_path):
    import subprocess
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "nbbuild.py"), *argv],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "usage:" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_missing_input_file_is_named(tmp_path):
    import subprocess
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "nbbuild.py"), "nope.py", "x.ipynb"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "no source file at nope.py" in r.stderr, r.stderr
    assert not (tmp_path / "x.ipynb").exists()


def test_unchanged_cells_keep_their_ids_and_new_ones_get_unused_ids(tmp_path):
    nb = ROOT / "chapters" / "00_setup.ipynb"
    py = tmp_path / "nb.py"
    py.write_text(nbbuild.to_py(nb) + "\n# %%\nprint('a new cell')\n")
    out = tmp_path / nb.name
    shutil.copy(nb, out)
    nbbuild.build(py, out)
    before, after = nbrules.cells(nb), nbrules.cells(out)
    assert [c["id"] for c in after[:-1]] == [c["id"] for c in before]
    assert after[-1]["id"] not in {c["id"] for c in before}
