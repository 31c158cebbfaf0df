"""gptlib.util: the integer guards and the atomic write every chapter uses."""

from __future__ import annotations

import pytest
import torch

from gptlib.util import INDEX_DTYPES, atomic_path, check_index_tensor, is_int, is_real
from libmutation import LibMutant, library_mutant_tests


@pytest.mark.parametrize(
    "x, want",
    [
        (3, True),
        (0, True),
        (-2, True),
        (True, False),
        (False, False),
        (3.0, False),
        ("3", False),
        (None, False),
    ],
)
def test_is_int(x, want):
    assert is_int(x) is want


@pytest.mark.parametrize(
    "x, want",
    [(3, True), (2.5, True), (float("nan"), True), (True, False), ("1", False), (None, False)],
)
def test_is_real(x, want):
    assert is_real(x) is want


@pytest.mark.parametrize("dtype", INDEX_DTYPES)
def test_index_tensor_accepts_integer_dtypes(dtype):
    check_index_tensor(torch.zeros(2, 3, dtype=dtype), "idx")


@pytest.mark.parametrize(
    "x", [torch.zeros(2, dtype=torch.float32), torch.zeros(2, dtype=torch.bool), [1, 2, 3], None]
)
def test_index_tensor_rejects_the_rest_naming_the_argument_and_the_fix(x):
    with pytest.raises(TypeError, match=r"idx must be a tensor of token ids.*torch\.as_tensor"):
        check_index_tensor(x, "idx")


def test_atomic_file_appears_whole(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()  # nothing visible before the block succeeds
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_error_keeps_the_old_file_and_leaves_no_debris(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_folder_replaces_an_empty_folder_only(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.bin").write_bytes(b"1")
    assert (target / "a.bin").read_bytes() == b"1"
    with pytest.raises(OSError):  # a folder with files is never silently replaced
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "b.bin").write_bytes(b"2")
    assert sorted(p.name for p in target.iterdir()) == ["a.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


test_library_mutant = library_mutant_tests(
    [
        LibMutant(
            what="is_int accepts bools",
            file="gptlib/util.py",
            old="return isinstance(x, int) and not isinstance(x, bool)",
            new="return isinstance(x, int)",
            tests=["tests/test_util.py::test_is_int"],
        ),
        LibMutant(
            what="atomic write leaves its temporary file on error",
            file="gptlib/util.py",
            old="            tmp.unlink()",
            new="            pass",
            tests=["tests/test_util.py::test_atomic_error_keeps_the_old_file_and_leaves_no_debris"],
        ),
    ]
)


def test_the_harness_fails_on_a_mutant_no_test_notices(tmp_path_factory):
    """A mutation harness must itself be able to fail: a harmless change (a comment) is 'not caught'."""
    harmless = LibMutant(
        what="a comment changed",
        file="gptlib/util.py",
        old="# os.replace cannot replace a folder",
        new="# (changed comment)",
        tests=["tests/test_util.py::test_is_int"],
    )
    with pytest.raises(AssertionError, match="was not caught"):
        test_library_mutant(harmless, tmp_path_factory)
