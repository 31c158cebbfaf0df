"""Start-up hook: with GPTLIB_OFFLINE=1 and this folder on PYTHONPATH, every Python process (pytest,
notebook kernels, subprocesses) installs the offline guard of gptlib_offline.py before any user code
runs.

A sitecustomize found later on sys.path (one the interpreter or virtualenv ships) still runs: this
file would otherwise hide it."""
import importlib.util
import os
import sys

if os.environ.get("GPTLIB_OFFLINE") == "1":
    import gptlib_offline

    gptlib_offline.install()


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for p in sys.path:
        folder = os.path.abspath(p or os.getcwd())
        candidate = os.path.join(folder, "sitecustomize.py")
        if folder != here and os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_next_sitecustomize", candidate)
            if spec and spec.loader:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_chain()
