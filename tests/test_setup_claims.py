"""What README and pyproject.toml promise about the set-up is true of requirements.lock and the
Makefile."""

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if m:
            pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


def claimed_minimum() -> Version:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(\d+\.\d+(?:\.\d+)?)", spec.strip())
    assert m, f"requires-python should be a plain lower bound, got {spec!r}"
    return Version(m[1])


def test_the_python_claim_is_the_locked_packages_minimum():
    """Every pinned package installed here accepts the claimed minimum Python, and some package
    refuses the version below it: the claim is neither too low (install fails) nor too high."""
    floor = claimed_minimum()
    below = (
        Version(f"{floor.major}.{floor.minor}.{floor.micro - 1}")
        if floor.micro
        else Version(f"{floor.major}.{floor.minor - 1}.99")
    )
    refuses_below, checked = [], 0
    for name, version in lock_pins().items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a platform-specific pin (e.g. a CUDA wheel) not installed here
        if dist.version != version:
            continue
        checked += 1
        req = dist.metadata.get("Requires-Python")
        if not req:
            continue
        spec = SpecifierSet(req)
        assert spec.contains(floor), (
            f"{name}=={version} needs Python {req}, README claims >= {floor}"
        )
        if not spec.contains(below):
            refuses_below.append(f"{name}=={version} ({req})")
    assert checked > 50, f"only {checked} pinned packages found installed"
    assert refuses_below, f"no pinned package needs Python >= {floor}: the claim could be lower"


def test_readme_and_makefile_say_the_same_minimum():
    floor = claimed_minimum()
    assert f"Python ≥ {floor}" in (ROOT / "README.md").read_text()
    assert f"sys.version_info < {floor.release}" in (ROOT / "Makefile").read_text()


def test_make_env_refuses_an_older_python_with_the_fix(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\n[ "$1" = "--version" ] && echo "Python 3.10.12"\nexit 1\n')
    fake.chmod(0o755)
    r = subprocess.run(
        ["make", "-W", "requirements.lock", f"PYTHON={fake}", f"VENV={tmp_path / 'venv'}", "env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert (
        f"needs Python >= {claimed_minimum()}" in r.stdout
        and "Python 3.10.12" in r.stdout
        and "PYTHON=" in r.stdout
    )
    assert not (tmp_path / "venv").exists()


def test_the_licence_is_an_spdx_string_and_setuptools_can_read_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # PEP 639: no deprecation box at install
    need = re.search(r"setuptools>=(\d+)", str(project["build-system"]["requires"]))
    assert need and int(need[1]) >= 77, "SPDX licence strings need setuptools >= 77"
    assert Version(lock_pins()["setuptools"]) >= Version("77")
