"""The shared machinery of gptlib.checks: who is blamed for a crash, the one diagnostic helper, forbidden calls."""
import contextlib
import io

import pytest
import torch
from torch.nn.functional import gelu as gelu_alias

from gptlib.checks import CheckError, CheckFailed, checker, diagnose, forbid


def learner_ok(x):
    return x + 1


def learner_crashes(x):
    return [][x]                                      # IndexError inside the learner's own code


def quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        fn()
    return out.getvalue()


def test_crash_in_learner_code_is_theirs_and_names_the_case():
    def check():
        with checker("demo", learner_crashes) as c:
            c.call("demo(3)", learner_crashes, 3)
    with pytest.raises(CheckFailed, match=r"demo: your code raised IndexError while running demo\(3\)"):
        quiet(check)


def test_crash_in_a_learner_method_is_theirs():
    class Learner(torch.nn.Module):
        def forward(self, x):
            return x @ torch.ones(3, 3)              # shape error in their forward

    def check():
        with checker("demo", Learner) as c:
            c.call("Learner()(x (2, 2))", Learner(), torch.ones(2, 2))
    with pytest.raises(CheckFailed, match="your code raised RuntimeError while running"):
        quiet(check)


def test_crash_in_the_check_is_not_blamed_on_the_learner():
    def check():
        with checker("demo", learner_ok) as c:
            c.expect(c.call("demo(1)", learner_ok, 1) == 2, "demo(1)", "add one")
            None + 1                                    # a bug in the check itself
    with pytest.raises(CheckError, match="the check itself crashed .*not in your code"):
        quiet(check)


def test_crash_in_a_reference_called_by_the_check_is_not_blamed_on_the_learner():
    def reference(x):
        raise ValueError("reference bug")

    def check():
        with checker("demo", learner_ok) as c:
            c.expect(c.call("demo(1)", learner_ok, 1) == reference(1), "demo(1)", "add one")
    with pytest.raises(CheckError, match="reference bug"):
        quiet(check)


def test_without_learner_objects_the_innermost_frame_decides():
    def check_buggy():
        with checker("demo") as c:
            c.call("demo", learner_ok, 1)
            {}["missing"]                               # raised in gptlib.checks' caller, i.e. the check
    with pytest.raises(CheckFailed):                    # this test file is not gptlib/checks: counted as learner code
        quiet(check_buggy)


def test_success_line_counts_the_checks():
    def check():
        with checker("demo", learner_ok) as c:
            c.equal(c.call("demo(1)", learner_ok, 1), 2, "demo(1)", "add one")
            c.close(torch.ones(2), torch.ones(2), "ones", "equal")
    assert quiet(check) == "✔ demo: all 2 checks passed\n"


def test_diagnose_names_the_first_matching_mistake_lazily():
    calls = []

    def expensive():
        calls.append(1)
        return torch.zeros(3)

    got = torch.ones(3)
    assert diagnose(got, {"twice": torch.full((3,), 2.0), "ones": torch.ones(3), "later": expensive}, "?") == "ones"
    assert calls == []                                  # never computed: an earlier mistake matched
    assert diagnose(got, lambda: {"nothing": torch.zeros(3)}, "default") == "default"
    assert diagnose([1, 2], {"list": [1, 2]}, "?") == "list"
    assert diagnose(torch.ones(2, 2), {"wrong shape": torch.ones(4)}, "?") == "?"


def test_close_checks_dtype_device_and_finiteness_before_values():
    def run(got, want, **kw):
        with checker("demo") as c:
            c.close(got, want, "case", "hint", **kw)
    with pytest.raises(CheckFailed, match="dtype torch.float64, expected torch.float32"):
        quiet(lambda: run(torch.ones(2, dtype=torch.float64), torch.ones(2)))
    with pytest.raises(CheckFailed, match="on meta, expected cpu"):  # a result on another device
        quiet(lambda: run(torch.ones(2, device="meta"), torch.ones(2)))
    with pytest.raises(CheckFailed, match="NaN or inf"):
        quiet(lambda: run(torch.tensor([1.0, float("nan")]), torch.ones(2)))
    with pytest.raises(CheckFailed, match="almost"):
        quiet(lambda: run(torch.ones(2) + 1e-4, torch.ones(2), atol=1e-6, rtol=1e-6, near="almost"))


def test_forbid_catches_the_function_however_it_was_imported():
    x = torch.randn(4)
    for call in (lambda: torch.nn.functional.gelu(x), lambda: gelu_alias(x), lambda: torch.nn.GELU()(x)):
        with pytest.raises(CheckFailed, match="use tanh"), forbid(("gelu",), "use tanh"):
            call()
    with forbid(("gelu",), "use tanh") as called:
        torch.tanh(x)
    assert "tanh" in called


def test_a_device_mismatch_in_learner_code_gets_the_device_hint():
    def learner(x):
        return x + torch.arange(x.size(-1))            # built on the CPU

    def check():
        with checker("demo", learner) as c:
            c.device_run("demo", learner, torch.ones(3, device="meta"))
    with pytest.raises(CheckFailed, match=r"build it on x\.device"):
        quiet(check)


def test_seed_is_fixed_by_the_environment(monkeypatch):
    monkeypatch.setenv("GPTLIB_CHECK_SEED", "123")
    with checker("demo") as c:
        a = c.rng.random()
    with checker("demo") as c:
        assert c.seed == 123 and c.rng.random() == a


# ------------------------------------------------------------------- issue 19 and issue 21 (item 6)
def _device_check(learner, *inputs):
    def check():
        with checker("demo", learner) as c:
            got = c.device_run("demo", learner, *(c.to_device(t) for t in inputs))
            c.like(got, inputs[0] * 1.0, "demo", "hint")
    return quiet(check)


def test_without_a_gpu_a_tensor_made_without_device_is_caught_decisively(monkeypatch):
    monkeypatch.setenv("GPTLIB_CHECK_SIMULATED_DEVICE", "1")     # as without a GPU, on any machine
    x = torch.ones(2, 3)
    for wrong in (
        lambda x: x + torch.arange(3),  # mixed with an input
        lambda x: torch.zeros(2, 3) + x.sum().item(),  # data-dependent (.item()), result on the CPU
        lambda x: torch.tensor(x.tolist()),  # rebuilt from Python values
        lambda x: x.cpu() * 1.0,  # copied to the CPU
        lambda x: torch.from_numpy(x.numpy()),
    ):  # through numpy
        with pytest.raises(CheckFailed, match="device"):
            _device_check(wrong, x)
    for right in (
        lambda x: x + torch.arange(3, device=x.device),
        lambda x: x + torch.arange(3).to(x.device),  # built on the CPU, then moved
        lambda x: x + torch.ones(2, 3).tril().to(x),
        lambda x: x * torch.tensor(2.0),  # a 0-d CPU tensor may mix, as with CUDA
        lambda x: x[torch.arange(2)],  # CPU indices may index a GPU tensor
        lambda x: torch.zeros_like(x) + x.new_ones(3),
    ):
        assert "✔" in _device_check(right, x)


def test_check_failed_shows_the_message_and_the_learners_line_in_jupyter():
    def learner(x):
        return [][x]  # the learner's bug, deep in a chained traceback

    def check():
        with checker("demo", learner) as c:
            c.call("demo(3)", learner, 3)

    with pytest.raises(CheckFailed) as e:
        quiet(check)
    lines = e.value._render_traceback_()
    assert len(lines) <= 4, lines
    assert lines[0].startswith(
        "CheckFailed: demo: your code raised IndexError while running demo(3)"
    )
    assert "test_checks_api.py" in lines[1] and "return [][x]" in lines[1], lines


def test_ipython_shows_a_short_check_failure_not_the_chained_traceback():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False                       # no history file in the home folder
    shell = InteractiveShell.instance(config=config)
    try:
        with capture_output() as cap:
            shell.run_cell("from gptlib.checks import ch5\nch5.check_lr_at(lambda *a: 0.5)")
    finally:
        InteractiveShell.clear_instance()
    text = cap.stdout + cap.stderr
    assert "CheckFailed: lr_at:" in text and "relative error" in text, text
    assert (
        "Traceback" not in text and "gptlib/checks" not in text and len(text.splitlines()) <= 5
    ), text


def test_a_library_solution_imported_later_is_caught():
    from gptlib.checks import no_solution

    def reference(x):
        return x

    def learner(x):
        import json  # any module: matched by module and qualified name

        return json.dumps(x)

    with pytest.raises(CheckFailed, match="write it yourself .*your code called dumps"):
        with (
            checker("demo", learner) as c,
            no_solution(c, learner, reference, "write it yourself", also=(("json", "dumps"),)),
        ):
            c.call("demo", learner, 1)


def test_rel_error_prints_enough_digits_to_differ():
    from gptlib.checks import rel_error

    msg = rel_error(0.000599168 * (1 + 1e-7), 0.000599168)
    got, want = msg.split("got ")[1].split(", expected ")
    assert got != want.split(" ")[0] and "relative error 1.00e-07" in msg, msg
