"""Chapter 6's statistics (gptlib.stats): the Wilson interval, the paired bootstrap, McNemar's "
"exact test."""

import math

import pytest
import torch

from gptlib import stats


def test_wilson_interval_against_hand_computed_values():
    # 8 of 10 at 95%: centre (0.8 + z²/20) / (1 + z²/10),
    # half-width z·sqrt(0.016 + z²/400) / (1 + z²/10)
    lo, hi = stats.wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    # 0 of 10: lower bound 0, upper z² / (n + z²) = 3.8415 / 13.8415
    lo, hi = stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.959963984540054**2 / (10 + 1.959963984540054**2))
    lo, hi = stats.wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(10 / (10 + 1.959963984540054**2))
    lo, hi = stats.wilson_interval(50, 100)  # symmetric about 1/2
    assert lo + hi == pytest.approx(1.0) and (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    rep = stats.accuracy_report(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    assert rep["acc"] == 0.75 and rep["n"] == 4
    assert (rep["lo"], rep["hi"]) == stats.wilson_interval(3, 4)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        stats.wilson_interval(11, 10)


def test_paired_bootstrap_interval_of_an_accuracy_difference():
    a = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 30).bool()
    b = torch.tensor([0, 0, 1, 0, 0, 1, 0, 1, 0, 1] * 30).bool()
    # the same predictions: no difference at all
    assert stats.paired_bootstrap_interval(a, a) == (0.0, 0.0)
    ones, zeros = torch.ones(50).bool(), torch.zeros(50).bool()
    assert stats.paired_bootstrap_interval(ones, zeros) == (1.0, 1.0)
    lo, hi = stats.paired_bootstrap_interval(a, b, n_boot=4000)
    d = a.double() - b.double()  # normal approximation of the paired difference
    se = float(d.std() / math.sqrt(len(d)))
    assert lo < float(d.mean()) < hi
    assert lo == pytest.approx(float(d.mean()) - 1.96 * se, abs=0.02)
    assert hi == pytest.approx(float(d.mean()) + 1.96 * se, abs=0.02)
    # the width of a 95% interval, not of a 90% one (1.645 se): within 5% of the normal one
    assert (hi - lo) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.05)
    lo80, hi80 = stats.paired_bootstrap_interval(a, b, n_boot=4000, level=0.8)
    assert (hi80 - lo80) / (2 * 1.2816 * se) == pytest.approx(1.0, abs=0.06)
    # seeded: reproducible
    assert stats.paired_bootstrap_interval(a, b) == stats.paired_bootstrap_interval(a, b)
    with pytest.raises(ValueError, match="same N > 0 examples"):
        stats.paired_bootstrap_interval(a, b[:10])


def test_mcnemar_exact_p_values_by_hand():
    a = torch.tensor([1] * 10 + [0] * 2 + [1] * 5 + [0] * 3).bool()  # 10 only a, 2 only b, 8 ties
    b = torch.tensor([0] * 10 + [1] * 2 + [1] * 5 + [0] * 3).bool()
    nb, nc, p = stats.mcnemar_test(a, b)
    assert (nb, nc) == (10, 2)
    # two-sided: 2 P(X <= 2), X ~ Bin(12, 1/2)
    assert p == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    assert stats.mcnemar_test(b, a) == (2, 10, p)  # symmetric in a and b
    assert stats.mcnemar_test(a, a) == (0, 0, 1.0)  # no discordant pair: no evidence
    nb, nc, p = stats.mcnemar_test(torch.tensor([1, 0]).bool(), torch.tensor([0, 1]).bool())
    assert p == 1.0  # 1 vs 1: as even as it gets
    p_all = stats.mcnemar_test(torch.ones(20).bool(), torch.zeros(20).bool())[2]
    assert p_all == pytest.approx(2 / 2**20)
    with pytest.raises(ValueError, match="same N > 0 examples"):
        stats.mcnemar_test(a, b[:3])


def test_wilson_interval_refuses_non_integer_counts():
    with pytest.raises(ValueError, match="integers"):
        stats.wilson_interval(0.5, 10)
    with pytest.raises(ValueError, match="integers"):
        stats.wilson_interval(True, 10)
