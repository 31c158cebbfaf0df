"""House rules every chapter notebook follows (nbval re-executes them; these check how they are
stored). Policy tests of the notebooks: no change to gptlib can fail them; the rules' detectors
(asserts_what_matters) are themselves tested on examples that must count and must not."""
import ast
import re
import sys
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nb as nbrules  # noqa: E402

NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
EXERCISE_CHAPTERS = [nb for nb in NOTEBOOKS if not nb.name.startswith("00_")]
cells, src = nbrules.cells, nbrules.source


def parse_cell(source: str) -> ast.Module:
    """The cell as Python, IPython syntax (%magics, !shell) translated the way the kernel does."""
    return ast.parse(TransformerManager().transform_cell(source))


TIMING = re.compile(r"(^|_)(time|times|timing|wall|secs?|seconds|elapsed|duration)(_|$)|^t_|^dt$|_s$",
                    re.IGNORECASE)
_FUNCS = {"sum", "min", "max", "abs", "float", "int", "round", "len", "mean", "median"}


def _identifiers(e: ast.expr) -> list[str]:
    """The names an expression reads (variables, attributes, string keys), without called
    functions."""
    called = {id(n.func) for n in ast.walk(e) if isinstance(n, ast.Call)}
    out = []
    for n in ast.walk(e):
        if isinstance(n, ast.Name) and id(n) not in called and n.id not in _FUNCS:
            out.append(n.id)
        elif isinstance(n, ast.Attribute) and id(n) not in called:
            out.append(n.attr)
        elif isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) \
                and isinstance(n.slice.value, str):
            out.append(n.slice.value)
    return out


def _is_timing(e: ast.expr) -> bool:
    """An operand that is a measured time: it reads a timing-named value (t_x, x_time, wall, secs,
    ...)."""
    return any(TIMING.search(name) for name in _identifiers(e))


def _trivial(test: ast.expr) -> bool:
    """An assert test that cannot fail on a sane run, or that asserts a timing: a constant; only
    `x > 0` / `0 < x` / `x >= 0` / `x is not None`; or an order comparison of a measured time (a
    part's
    time <= the wall time around it is a tautology, and any other is a timed assert, which the house
    rules forbid: a speed claim is a printed benchmark ratio)."""
    if not any(isinstance(n,
                          (ast.Name, ast.Attribute, ast.Call,
                           ast.Subscript)) for n in ast.walk(test)):
        return True
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return all(_trivial(v) for v in test.values)
    if isinstance(test, ast.Call) and isinstance(test.func,
                                                 ast.Name) and test.func.id == "all" and test.args \
            and isinstance(test.args[0], ast.GeneratorExp):
        return _trivial(test.args[0].elt)
    if isinstance(test, ast.Compare):
        operands = [test.left, *test.comparators]
        if all(isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in test.ops) \
                and any(_is_timing(o) for o in operands):
            # a time compared: tautology or timed assert
            return True
        if len(test.ops) == 1:
            op, left, right = test.ops[0], test.left, test.comparators[0]

            def zero(e: ast.expr) -> bool:
                return isinstance(e, ast.Constant) and e.value == 0 and not isinstance(e.value, bool)
            if isinstance(op, (ast.Gt, ast.GtE)) and zero(right):
                return True
            if isinstance(op, (ast.Lt, ast.LtE)) and zero(left):
                return True
            if isinstance(op, ast.IsNot) and isinstance(right,
                                                        ast.Constant) and right.value is None:
                return True
        elif len(test.ops) == 2 and isinstance(test.left, ast.Constant) and test.left.value == 0 \
                and isinstance(test.ops[0], (ast.Lt, ast.LtE)) \
                and not isinstance(test.comparators[1], ast.Constant):
            return False                                  # 0 < x < bound: a real range check
    return False


def asserts_what_matters(source: str) -> bool:
    """A real `assert` statement that can fail, or a call of an exercise check (check_*), in the
    cell."""
    tree = parse_cell(source)
    real = [n for n in ast.walk(tree) if isinstance(n, ast.Assert) and not _trivial(n.test)]
    checks = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
              and (getattr(n.func, "id", "") or getattr(n.func, "attr", "")).startswith("check_")]
    return bool(real or checks)


def test_assert_detection_is_not_fooled_by_words():
    assert not asserts_what_matters('print("assert nothing")  # assert')
    assert not asserts_what_matters("assert True\nassert t > 0 and n >= 0\nassert all(r > 0 for r "
                                    "in rates)")
    assert not asserts_what_matters("%timeit f()\ncheck = 1")
    assert asserts_what_matters("%timeit f()\nassert got == want")
    assert asserts_what_matters("def f():\n    assert abs(a - b) < 1e-4\nf()")
    assert asserts_what_matters("from gptlib.checks import ch2\nch2.check_causal_mask(causal_mask)")


@pytest.mark.parametrize("tautology", [
    "assert part_time <= wall_time",
    "assert fit_wall <= section_wall                 # training is part of the section",
    'assert wall >= sum(r["time"] for r in results.values())',
    'assert results["probe"]["time"] < full_time     # a timed assert, not a tautology, but timed',
    "assert t_fast < t_slow",
    "assert 0 < elapsed <= total_secs",
    'assert all(r["tok_per_s"] > 0 and 0 < r["mfu"] for r in curve)',
    "assert 0 < n",
    "assert t_step < 0.5",
])
def test_relational_tautologies_and_timed_asserts_do_not_count(tautology):
    assert not asserts_what_matters(tautology)
    assert asserts_what_matters(tautology + "\nassert len(log) == steps")


@pytest.mark.parametrize("real", [
    "assert len(curve) == 150 and curve[-1]['loss'] < curve[0]['loss']",
    "assert abs(loss_a - loss_b) < 1e-4",
    "assert 0 < ratio < 2",
    "assert worst < 1e-3",
    "assert t_ours > 0 and got == want",
])
def test_real_asserts_still_count(real):
    assert asserts_what_matters(real)


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in NOTEBOOKS:
        assert f"chapters/{nb.stem}" in toc, f"{nb.name} is missing from _toc.yml"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_come_from_one_clean_run(nb):
    code = [c for _, c in nbrules.code_cells(nb)]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), \
        f"{nb.name}: execution counts {counts} are not 1..{len(code)}: run `make execute NB=chapters/{nb.name}`"
    for c in code:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", f"{nb.name}: a stored output is an error:\n{src(c)[:200]}"


LOCAL_PATH = re.compile(r"(/home/|/Users/|/root/|/work/|site-packages|\.venv/|[A-Z]:\\Users)")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_hold_no_stderr_and_no_local_paths(nb):
    """nbval would accept a warning that every run repeats; the stored outputs themselves must be
    clean."""
    for i, c in nbrules.code_cells(nb):
        for o in c.get("outputs", []):
            assert o.get("name") != "stderr", \
                f"{nb.name} cell {i}: stderr in a stored output (warning or progress bar): silence it at the " \
                f"source, then `make execute NB=chapters/{nb.name}`:\n{src({'source': o.get('text', '')})[:300]}"
            text = src({"source": o.get("text", "")}) + "".join(
                src({"source": v}) for k, v in o.get("data", {}).items() if k.startswith("text/"))
            m = LOCAL_PATH.search(text)
            assert not m, f"{nb.name} cell {i}: a local path in a stored output: ...{text[max(0, m.start() - 80):m.end() + 80]}..."


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_skips_are_rare_and_still_assert(nb):
    for c in cells(nb):
        tags = nbrules.tags(c)
        if nbrules.IGNORE_OUTPUT_TAG in tags:
            assert asserts_what_matters(src(c)), \
                f"{nb.name}: an output-ignored cell must still assert what matters (an `assert` that can " \
                f"fail, not only `x > 0`):\n{src(c)[:300]}"
        assert "nbval-skip" not in tags, f"{nb.name}: cells are never skipped, only their output ignored"


@pytest.mark.parametrize("nb", EXERCISE_CHAPTERS, ids=lambda p: p.name)
def test_exercises_are_posed_solved_and_checked(nb):
    cs = cells(nb)
    sol = [i for i, c in enumerate(cs) if nbrules.is_code(c) and nbrules.has_solution(src(c))]
    assert len(sol) >= 3, f"{nb.name}: at least three exercises, found {len(sol)}"
    for i in sol:
        s = src(cs[i])
        # raises on unbalanced or nested markers
        nbrules.solution_blocks(s, f"{nb.name} cell {i}")
        prose = "".join(src(c) for c in cs[max(0, i - 3):i] if c["cell_type"] == "markdown")
        assert re.search(r"```{exercise}",
                         prose), f"{nb.name} cell {i}: the exercise directive must come before"
        for field in ("Difficulty", "Time", "gptlib"):
            assert field in prose, f"{nb.name} cell {i}: exercise text lacks '{field}'"
        assert ":class: dropdown" in prose or "{dropdown}" in prose, f"{nb.name} cell {i}: hints must be collapsed"
        nxt = next(c for c in cs[i + 1:] if nbrules.is_code(c))
        assert nbrules.is_check(nxt) and asserts_what_matters(src(nxt)), \
            f"{nb.name} cell {i}: a solution is followed by a check cell tagged 'check'"


def test_setup_warns_but_never_fails_on_other_versions(capsys):
    """00_setup names the versions of the stored outputs; another torch gets a note on stderr, not
    an error,
    and the cell's compared output (stdout) stays what is stored."""
    import types

    import torch
    cs = cells(ROOT / "chapters" / "00_setup.ipynb")
    cell = next(c for c in cs if nbrules.is_code(c) and "STORED_WITH" in src(c))
    assert not any(isinstance(n,
                              ast.Assert) for n in ast.walk(parse_cell(src(cell)))), "warn, never assert"
    stored = "".join(src({"source": o["text"]}) for o in cell["outputs"] if o.get("name") == "stdout")
    assert stored.startswith("tensor(")
    fake = types.SimpleNamespace(__version__="2.11.0+cu128", randn=torch.randn,
                                 Generator=torch.Generator)
    exec(src(cell), {"torch": fake})
    out, err = capsys.readouterr()
    assert out == stored
    assert "the stored outputs come from torch 2.13.0; you have 2.11.0" in err
    exec(src(cell), {"torch": torch})
    out, err = capsys.readouterr()
    assert out == stored and err == "", "with the pinned versions the cell writes nothing to stderr"
