"""The exercise checks are proven against curated mutants, including the escape classes of issue 11."""
import importlib
from collections import Counter
from pathlib import Path

KINDS = ("device", "dtype", "gradient", "edge", "shortcut", "message")
# issue 19's classes: solution (gptlib's or transformers' own solution called), boundary (sizes
# at the limits), range (numerical range), alias (in-place writes to inputs, the input returned),
# input (coverage: strides, float masks, unused vocabulary), state (what the rest of the library
# reads), semantics (Chapters 1-4's representation mistakes); device, edge and message as in
# issue 11
KINDS_19 = ("solution", "boundary", "range", "alias", "input", "state", "semantics")

# check -> the classes of issue 19 that apply to it, each proven closed by at least one mutant of
# that kind
ISSUE19 = {
    ("test_checks_ch1", "check_merge"): {"semantics", "solution"},
    ("test_checks_ch1", "check_decode_ids"): {"semantics"},
    ("test_checks_ch2", "check_attention"): {"semantics", "message", "device"},
    ("test_checks_ch2", "check_split_heads"): {"input", "solution"},
    ("test_checks_ch3", "check_rope_rotate"): {"solution", "device"},
    ("test_checks_ch4", "check_gelu_tanh"): {"solution"},
    ("test_checks_ch4", "check_layer_norm"): {"solution", "device"},
    ("test_checks_ch5", "check_interpolated_trigram"): {"solution", "input", "alias", "range"},
    ("test_checks_ch5", "check_param_groups"): {"solution", "state"},
    ("test_checks_ch5", "check_lr_at"): {"solution", "message"},
    ("test_checks_ch6", "check_lora_linear"): {"shortcut", "device", "edge"},
    ("test_checks_ch6", "check_last_token_states"): {"shortcut", "device", "input"},
    ("test_checks_ch6", "check_mask_prompt"): {"shortcut", "device", "edge"},
    ("test_checks_ch7", "check_top_p_filter"): {"solution", "boundary", "alias", "range"},
    ("test_checks_ch7", "check_kv_cache_update"): {"shortcut", "boundary", "state", "device"},
    ("test_checks_ch7", "check_beam_candidates"): {"shortcut", "device", "range"},
}


def _mutants():
    files = sorted(Path(__file__).parent.glob("test_checks_ch*.py"))
    return {f.stem: importlib.import_module(f.stem).MUTANTS for f in files}


def test_at_least_25_mutants_across_chapters():
    per = {name: len(ms) for name, ms in _mutants().items()}
    assert sum(per.values()) >= 25, per
    assert all(n >= 5 for n in per.values()), per


def test_every_escape_class_has_its_own_mutants():
    """Each class of mistakes that used to escape the checks (issue 11) is proven closed by several mutants."""
    kinds = Counter(m.kind for ms in _mutants().values() for m in ms if m.kind is not None)
    assert set(kinds) <= set(KINDS + KINDS_19), kinds
    assert all(kinds[k] >= 5 for k in KINDS), kinds


def test_every_chapter_proves_crash_messages_and_stable_success_lines():
    """A crash in the learner's code names the running case; the success line does not depend on the seed."""
    for name in _mutants():
        mod = importlib.import_module(name)
        missing = [
            t for t in ("test_crash_names_case", "test_success_line_stable") if not hasattr(mod, t)
        ]
        assert not missing, (
            f"tests/{name}.py lacks {missing}: add `test_crash_names_case, "
            f"test_success_line_stable = robustness_tests(chN, REFERENCES)` (from mutation)"
        )


def test_every_class_of_issue_19_has_a_mutant_in_every_check_it_applies_to():
    """The table ISSUE19 (check -> classes) is covered: each listed class has a mutant of that kind
    for that check."""
    have: dict[tuple[str, str], set] = {}
    for name, ms in _mutants().items():
        for m in ms:
            have.setdefault((name, m.check), set()).add(m.kind)
    missing = {
        key: sorted(want - have.get(key, set()))
        for key, want in ISSUE19.items()
        if want - have.get(key, set())
    }
    assert not missing, f"classes without a mutant: {missing}"
    assert {k for want in ISSUE19.values() for k in want} >= set(KINDS_19), (
        "a class of issue 19 is in no check"
    )
