"""Test-session set-up shared by tests/ and the nbval notebook runs.

Offline, always: the guard of tools/offline/ is installed in this process, and GPTLIB_OFFLINE=1 plus
tools/offline on PYTHONPATH are put into the environment, so every notebook kernel and subprocess started
from the tests installs it at start-up too (tools/offline/gptlib_offline.py says exactly what it blocks).
nbval compares every output stream, stderr included; progress bars are silenced at the source as the
Makefile does (TQDM_DISABLE=1; tqdm's "IProgress not found" warning filtered by its message).
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools" / "offline"))
import gptlib_offline  # noqa: E402

gptlib_offline.activate_for_children()
gptlib_offline.install()
os.environ.setdefault("TQDM_DISABLE", "1")
QUIET_TQDM = "ignore:IProgress not found"          # tqdm.auto in a kernel without ipywidgets, at import
if QUIET_TQDM not in os.environ.get("PYTHONWARNINGS", ""):
    os.environ["PYTHONWARNINGS"] = ",".join(w for w in (QUIET_TQDM, os.environ.get("PYTHONWARNINGS")) if w)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread (no hand-offs between threads); results are the same.
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
