"""tools/fmt.py: code cells formatted to 100 columns by ruff; outputs, ids and the rest kept."""
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import fmt  # noqa: E402

v4 = nbformat.v4
LONG = ("# export: gptlib/x.py\n"
        "def f(alpha, beta, gamma, delta, epsilon, zeta, eta, theta, iota, kappa, mu, nu, "
        "xi, omicron, pi, rho):\n"
        "    return {'a': alpha, 'b': beta}\n")


def make(tmp_path):
    out = v4.new_output("stream", name="stdout", text="42\n")
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Title with a very long line " + "x" * 120),
        v4.new_code_cell(LONG, outputs=[out], execution_count=3),
        v4.new_code_cell("%timeit   f( 1 )", execution_count=4),
        v4.new_code_cell("x = (1,\n2)  # fine", execution_count=5),
    ])
    nb.cells[1].metadata["tags"] = ["hide-input"]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_code_cells_fit_100_columns_and_everything_else_stays(tmp_path):
    path = make(tmp_path)
    before = nbformat.read(str(path), 4)
    assert fmt.main([str(path)]) == 0
    after = nbformat.read(str(path), 4)
    code = after.cells[1].source
    assert max(len(line) for line in before.cells[1].source.split("\n")) > 100
    assert max(len(line) for line in code.split("\n")) <= 100
    assert code.startswith("# export: gptlib/x.py\ndef f(") and "'a'" not in code   # ruff's quotes
    assert after.cells[1].outputs == before.cells[1].outputs
    assert after.cells[1].execution_count == 3 and after.cells[1].metadata["tags"] == ["hide-input"]
    assert [c.id for c in after.cells] == [c.id for c in before.cells]
    assert after.cells[0].source == before.cells[0].source          # markdown untouched
    assert after.cells[2].source == "%timeit   f( 1 )"               # IPython syntax untouched
    assert after.cells[3].source == "x = (1, 2)  # fine"


def test_check_mode_changes_nothing_and_fails_until_formatted(tmp_path):
    path = make(tmp_path)
    before = path.read_bytes()
    tool = [sys.executable, str(ROOT / "tools" / "fmt.py")]
    r = subprocess.run([*tool, "--check", str(path)], capture_output=True, text=True)
    assert r.returncode == 1 and "nb.ipynb cell 1" in r.stdout and path.read_bytes() == before
    assert subprocess.run([*tool, str(path)], capture_output=True).returncode == 0
    assert subprocess.run([*tool, "--check", str(path)], capture_output=True).returncode == 0


def test_a_cell_ruff_cannot_parse_is_named_and_left_alone(tmp_path, capsys):
    nb = v4.new_notebook(cells=[v4.new_code_cell("def broken(:\n    pass")])
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, str(path))
    assert fmt.main([str(path)]) == 0
    assert "bad.ipynb cell 0: not formatted" in capsys.readouterr().err
    assert nbformat.read(str(path), 4).cells[0].source == "def broken(:\n    pass"
