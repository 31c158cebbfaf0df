"""The records files the experiment scripts share: one JSON line per run, appended; a run whose
key is already in the file is skipped; each record names the commit it ran at ("+dirty" when the
code it ran, `paths`, had uncommitted changes)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent


def commit(*paths: str) -> str:
    """The short commit of HEAD, "+dirty" when any of `paths` (repository-relative) differs."""
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                       text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "unknown") + ("+dirty" if dirty else "")


def done(path: Path, key: Callable[[dict], object]) -> set:
    """The keys of the runs already recorded in `path` (empty when it does not exist)."""
    if not path.exists():
        return set()
    return {key(json.loads(line)) for line in path.read_text().splitlines()}


def append(path: Path, record: dict) -> None:
    """Append one record as a JSON line, creating the folder when needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
