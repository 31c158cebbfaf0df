"""The validation machinery itself fails when it should: nbval on a changed output or a new stderr line, the
network guard in this process, in subprocesses and in notebook kernels."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import nb as nbrules  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "sanitize.cfg"),
         "-q", "-p", "no:cacheprovider"]


def run_nbval(nb: Path) -> subprocess.CompletedProcess:
    # run from the repo root so conftest.py (offline guard, TQDM_DISABLE) applies as in `make test`
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
    nb = nbrules.read(setup_copy)
    cell = next(c for _, c in nbrules.code_cells(nb) if c["outputs"]
                and "this run would train" in "".join(c["outputs"][0].get("text", "")))
    text = "".join(cell["outputs"][0]["text"])
    cell["outputs"][0]["text"] = text.replace("2-layer", "3-layer")
    setup_copy.write_text(json.dumps(nb))
    r = run_nbval(setup_copy)
    assert r.returncode == 1 and "3-layer" in r.stdout


def test_nbval_fails_when_a_cell_writes_to_stderr(setup_copy):
    """stderr is compared like any output: a new warning in a notebook fails the test."""
    nb = nbrules.read(setup_copy)
    cell = next(c for _, c in nbrules.code_cells(nb) if "this run would train" in nbrules.source(c))
    cell["source"] = nbrules.source(cell) + "\nimport warnings\nwarnings.warn('a new warning nobody stored')"
    setup_copy.write_text(json.dumps(nb))
    r = run_nbval(setup_copy)
    assert r.returncode == 1 and "a new warning nobody stored" in r.stdout, r.stdout[-2000:]


GUARD = "offline guard (GPTLIB_OFFLINE=1) blocked"
REACH_OUT = ("import socket\n"
             "socket.create_connection(('192.0.2.1', 443), timeout=0.5)   # TEST-NET-1: never routed anyway\n")


def test_the_network_guard_blocks_outside_connections():
    with pytest.raises(RuntimeError, match="blocked a name lookup of '192.0.2.1'"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.5)
    with pytest.raises(RuntimeError, match="blocked a name lookup of 'example.com'"):
        socket.getaddrinfo("example.com", 443)
    for family, host in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            with pytest.raises(RuntimeError, match="blocked a connection to"):
                s.connect((host, 443))
            with pytest.raises(RuntimeError, match="blocked a connection to"):
                s.connect_ex((host, 443))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:                  # UDP, e.g. a DNS query
        with pytest.raises(RuntimeError, match="blocked a datagram to"):
            u.sendto(b"x", ("192.0.2.53", 53))
        with pytest.raises(RuntimeError, match="blocked a message to"):
            u.sendmsg([b"x"], [], 0, ("192.0.2.53", 53))


def test_the_network_guard_lets_loopback_through():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            conn, _ = server.accept()
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"
            conn.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        u.sendto(b"pong", u.getsockname())
        assert u.recv(4) == b"pong"
    assert socket.getaddrinfo("localhost", 80)


def test_the_network_guard_reaches_subprocesses():
    r = subprocess.run([sys.executable, "-c", REACH_OUT], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "NetworkBlocked" in r.stderr and GUARD in r.stderr, r.stderr[-1500:]
    # the control: without GPTLIB_OFFLINE the same child is not guarded (so the test above can fail)
    env = {k: v for k, v in os.environ.items() if k != "GPTLIB_OFFLINE"}
    r = subprocess.run([sys.executable, "-c", REACH_OUT], capture_output=True, text=True, env=env, timeout=60)
    assert GUARD not in r.stderr


def test_the_network_guard_reaches_notebook_kernels_and_their_subprocesses():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(REACH_OUT),
        nbformat.v4.new_code_cell("import subprocess, sys\n"
                                  f"r = subprocess.run([sys.executable, '-c', {REACH_OUT!r}], capture_output=True, text=True)\n"
                                  "print(r.returncode, r.stderr.strip().splitlines()[-1])"),
        nbformat.v4.new_code_cell("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)"),
    ])
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3").execute()
    first, second, third = (c.outputs for c in nb.cells)
    assert first[-1].output_type == "error" and first[-1].ename == "NetworkBlocked" and GUARD in first[-1].evalue
    text = "".join(o.get("text", "") for o in second)
    assert text.startswith("1 ") and "NetworkBlocked" in text and GUARD in text, text
    assert third[-1].output_type == "error" and GUARD in third[-1].evalue, third


def test_kernels_show_no_progress_bars_and_no_tqdm_warning():
    """The test environment silences tqdm at the source (TQDM_DISABLE=1, its ipywidgets warning filtered by
    message), so stored outputs stay free of bars; a real warning still reaches stderr."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='steps'):\n    pass\nprint('ok')"),
        nbformat.v4.new_code_cell("import warnings\nwarnings.warn('still seen')"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert [(o.output_type, o.get("name"), o.get("text")) for o in nb.cells[0].outputs] == [("stream", "stdout", "ok\n")]
    assert any(o.get("name") == "stderr" and "still seen" in o.text for o in nb.cells[1].outputs)
