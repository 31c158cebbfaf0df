"""Library mutation tests: a plausible bug applied to gptlib must make some unit test fail.

Each `LibMutant` names one bug of a class the suite promises to catch (the optimizer never steps, chosen and
rejected swapped, dropout active at eval, ...): one exact text replacement in one gptlib file, and the fast
tests that must notice it. `library_mutant_tests(MUTANTS)` returns a parametrized test that, per mutant,
copies the repository (without .venv, .git or build outputs) to a temporary folder, applies the replacement
there and runs the named tests in a subprocess; the test passes only when they fail.

    from libmutation import LibMutant, library_mutant_tests
    MUTANTS = [LibMutant(what="optimizer never steps", file="gptlib/optim.py", old="opt.step()", new="pass",
                         tests=["tests/test_train.py::test_a_few_steps_lower_the_loss"])]
    test_library_mutant = library_mutant_tests(MUTANTS)

Each mutant gets a fresh copy (gptlib, tests and tools; data/ is linked, not copied) and its selected tests.
The tests run in a child forked from one server process that imported torch, numpy and pytest once for the
whole session (not gptlib, nor any test module: those the child imports from the mutated copy), which saves
the few seconds of a fresh interpreter's torch import per mutant; where os.fork is missing, each mutant gets
its own `python -m pytest`. The same tests pass unmutated in the suite's own run; here they must fail.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SKIP = {
    ".venv",
    ".git",
    "_build",
    "student",
    "runs",
    "out",
    "__pycache__",
    ".pytest_cache",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".ruff_cache",
    "data",  # linked: read-only for the tests, and 20 MB of the 25
}


@dataclass(frozen=True)
class LibMutant:
    what: str  # the bug, in words (the test id)
    file: str  # path of the gptlib file to mutate, relative to the repository root
    old: str  # exact text that must occur exactly once in that file
    new: str  # its replacement
    tests: list[str] = field(default_factory=list)  # pytest node ids (or files) that must fail
    k: str | None = None  # optional pytest -k expression


def _copy_repo(dest: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _SKIP or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    (dest / "data").symlink_to(ROOT / "data", target_is_directory=True)
    return dest


def apply(mutant: LibMutant, root: Path) -> None:
    """Apply `mutant` to the copy at `root`; raise if its text does not occur exactly once."""
    path = root / mutant.file
    text = path.read_text(encoding="utf-8")
    n = text.count(mutant.old)
    if n != 1:
        raise AssertionError(
            f"mutant {mutant.what!r}: {mutant.old!r} occurs {n} times in {mutant.file} "
            f"(must be exactly once: make `old` longer)"
        )
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def _pytest_args(mutant: LibMutant) -> list[str]:
    args = ["-x", "-q", "-rf", "-p", "no:cacheprovider", "-o", "addopts=", *mutant.tests]
    return args + (["-k", mutant.k] if mutant.k else [])


def _env(root: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        GPTLIB_DATA=str(root / "data"),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )


# The fork server: reads one JSON request a line ({root, args, env, log, timeout}), forks, and the child
# runs pytest.main(args) in `root` with stdout and stderr in `log`, killed by SIGALRM after `timeout` s;
# the server answers the child's exit code (negative: killed by that signal). Nothing of gptlib is
# imported before the fork.
_SERVER = """
import json, os, signal, sys
import numpy, pytest, torch
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)   # never the server's request pipe
            fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(req["root"])
            os.environ.clear()
            os.environ.update(req["env"])
            sys.path.insert(0, req["root"])
            signal.alarm(int(req["timeout"]))
            code = int(pytest.main(req["args"]))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""
_server: subprocess.Popen | None = None


def _fork_server() -> subprocess.Popen | None:
    global _server
    if not hasattr(os, "fork"):
        return None
    if _server is None or _server.poll() is not None:
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        _server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        atexit.register(_server.stdin.close)  # type: ignore[union-attr]
    return _server


def run_tests(mutant: LibMutant, root: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the mutant's tests in the copy at `root` (its gptlib, its data) and return the result
    (returncode and stdout; stderr is empty when the fork server ran them: both go to stdout)."""
    args = _pytest_args(mutant)
    server = _fork_server()
    if server is None:
        cmd = [sys.executable, "-m", "pytest", *args]
        return subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True,
                              timeout=timeout)
    log = root.parent / "pytest.log"
    req = dict(root=str(root), args=args, env=_env(root), log=str(log), timeout=timeout)
    server.stdin.write(json.dumps(req) + "\n")  # type: ignore[union-attr]
    server.stdin.flush()  # type: ignore[union-attr]
    answer = server.stdout.readline()  # type: ignore[union-attr]
    if not answer:
        raise RuntimeError(f"the mutation fork server died (exit {server.wait()})")
    return subprocess.CompletedProcess(args, int(answer), log.read_text(errors="replace"), "")


def library_mutant_tests(mutants: list[LibMutant]):
    """A parametrized pytest test: each mutant, applied to a copy of the repository, makes its tests fail."""
    assert mutants, "no mutants given"
    ids = [m.what for m in mutants]
    assert len(set(ids)) == len(ids), "two mutants share a description"

    @pytest.mark.parametrize("mutant", mutants, ids=ids)
    def test_library_mutant(mutant: LibMutant, tmp_path_factory) -> None:
        root = _copy_repo(tmp_path_factory.mktemp("libmutation") / "repo")
        for t in mutant.tests:  # a typo in a node id would "fail" for the wrong reason
            assert (root / t.split("::")[0]).exists(), f"{mutant.what}: no test file {t}"
        apply(mutant, root)
        result = run_tests(mutant, root)
        # exit 1 with a FAILED line: a test ran and failed (a collection or import error is exit 2 and
        # proves nothing; that the same tests pass unmutated is proven by the suite's own run of them)
        summary = (result.stdout.strip().splitlines() or [""])[-1]
        caught = result.returncode == 1 and " failed" in summary and " error" not in summary
        assert caught, (
            f"{mutant.what}: the mutation of {mutant.file} was not caught "
            f"(pytest exit {result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-1000:]}"
        )

    return test_library_mutant
