"""`mypy gptlib` is clean (configuration: [tool.mypy] in pyproject.toml), so the package's py.typed
is honest."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_errors_in_gptlib(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mypy", "gptlib", "--cache-dir",
                        str(tmp_path / "mypy-cache")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "Success" in r.stdout, \
        "mypy reports type errors in gptlib (fix them in the notebooks, then `make export`):\n" + r.stdout[-6000:] + r.stderr[-2000:]


# all of gptlib/ and tools/ is held to pyproject.toml's [tool.ruff] (gptlib/checks: its own ruff.toml)
RUFF_EXCLUDED: list[str] = []


def test_ruff_finds_nothing_in_gptlib_and_tools():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "gptlib", "tools",
                        *(a for p in RUFF_EXCLUDED for a in ("--extend-exclude", p))],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, \
        "ruff reports problems (exported code: fix them in the notebooks, then `make export`):\n" + r.stdout[-6000:]
