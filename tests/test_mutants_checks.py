"""Library mutation tests for the checks' machinery (gptlib/checks/__init__.py, issue 18): each bug
in the shared code that issue 19 and issue 21 (item 6) rely on makes a unit test fail. Four mutants,
one per class (the simulated device, the short Jupyter failure, library solutions, the NaN-gradient
hint): each costs a pytest start-up."""
from libmutation import LibMutant, library_mutant_tests

INIT = "gptlib/checks/__init__.py"
API = "tests/test_checks_api.py"

MUTANTS = [
    LibMutant(what="the simulated device does not track tensors made without device=",
              file=INIT,
              old="factory = name in _FACTORIES and getattr(torch, name, None) is func",
              new="factory = False",
              tests=[f"{API}::test_without_a_gpu_a_tensor_made_without_device_is_caught_decisively"],
              ),
    LibMutant(what="CheckFailed without the short Jupyter rendering", file=INIT,
              old="def _render_traceback_(self) -> list[str]:",
              new="def _render_traceback_off(self) -> list[str]:",
              tests=[f"{API}::test_check_failed_shows_the_message_and_the_learners_line_in_jupyter"],
              ),
    LibMutant(what="no_solution ignores the named library solutions", file=INIT,
              old="return any(mod == m and qual.startswith(q) for m, q in also)",
              new="return False",
              tests=[f"{API}::test_a_library_solution_imported_later_is_caught"]),
    LibMutant(what="a NaN gradient gets no hint of its cause", file=INIT,
              old="                not nan,", new="                True,",
              tests=["tests/test_checks_ch2.py"], k="test_mutant_fails and zeroed"),
]

test_library_mutant = library_mutant_tests(MUTANTS)
