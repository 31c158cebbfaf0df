"""The validation machinery itself fails when it should: nbval on a changed output, the network guard."""
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "sanitize.cfg"),
         "-q", "-p", "no:cacheprovider"]


def run_nbval(nb: Path) -> subprocess.CompletedProcess:
    # run from the repo root so conftest.py (stderr excluded from comparison) applies as in `make test`
    return subprocess.run([sys.executable, "-m", "pytest", str(nb), *NBVAL], cwd=ROOT, capture_output=True,
                          text=True, env={"GPTLIB_PROFILE": "cpu", "PATH": "/usr/bin:/bin", "HOME": str(nb.parent)})


@pytest.fixture
def setup_copy(tmp_path):
    folder = ROOT / "chapters" / f"_tmp_{tmp_path.name}"       # inside the repo, so the rootdir conftest applies
    folder.mkdir()
    nb = folder / "00_setup.ipynb"
    shutil.copy(ROOT / "chapters" / "00_setup.ipynb", nb)
    yield nb
    shutil.rmtree(folder)


def test_nbval_passes_on_the_stored_notebook(setup_copy):
    r = run_nbval(setup_copy)
    assert r.returncode == 0, r.stdout[-2000:]


def test_nbval_fails_when_a_stored_output_is_wrong(setup_copy):
    nb = json.loads(setup_copy.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and c["outputs"]
                and "this run would train" in "".join(c["outputs"][0].get("text", "")))
    text = "".join(cell["outputs"][0]["text"])
    cell["outputs"][0]["text"] = text.replace("2-layer", "3-layer")
    setup_copy.write_text(json.dumps(nb))
    r = run_nbval(setup_copy)
    assert r.returncode == 1 and "3-layer" in r.stdout


def test_the_network_guard_blocks_outside_connections():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(RuntimeError, match="tests must run offline"):
            s.connect(("192.0.2.1", 443))                        # TEST-NET-1: never routed anyway
    finally:
        s.close()
