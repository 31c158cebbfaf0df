"""gptlib.ngram: the count-based baselines are proper distributions and equal slow, obvious references."""
import math
from collections import Counter

import numpy as np
import pytest

from gptlib import ngram as NG

V = 6
rng = np.random.default_rng(0)
TRAIN = rng.choice(V - 1, 200, p=[0.4, 0.25, 0.15, 0.1, 0.1])       # token V-1 never occurs in training
CONTEXTS = [(0, 1), (1, 1), (4, 0), (5, 2), (0, 5), (5, 5)]           # seen, rare and unseen contexts


def prob(fn, a, b, c, **kw):
    return math.exp(-fn(TRAIN, np.array([a, b, c]), V, **kw))


@pytest.mark.parametrize("fn,kw", [(NG.unigram_nll, {"k": 1.0}), (NG.bigram_nll, {"k": 0.1}),
                                   (NG.interpolated_trigram_nll, {"k": 0.1}),
                                   (NG.kneser_ney_trigram_nll, {"discount": 0.75}),
                                   (NG.kneser_ney_trigram_nll, {"discount": 0.3})])
@pytest.mark.parametrize("ctx", CONTEXTS)
def test_each_model_is_a_distribution_over_the_next_token(fn, kw, ctx):
    ps = [prob(fn, *ctx, c, **kw) for c in range(V)]
    assert all(p > 0 for p in ps)                                    # smoothing: nothing has probability 0
    assert sum(ps) == pytest.approx(1.0, abs=1e-9)


def test_kneser_ney_equals_a_direct_implementation():
    t = [int(x) for x in TRAIN]
    D = 0.75
    n3 = Counter(zip(t, t[1:], t[2:]))
    n_ab = Counter()
    for (a, b, _), n in n3.items():
        n_ab[(a, b)] += n
    N_bc = Counter((b, c) for (a, b, c) in n3)                      # distinct left contexts of (b, c)
    N_b = Counter()
    for (b, _), n in N_bc.items():
        N_b[b] += n
    N_c = Counter(c for (b, c) in set(zip(t, t[1:])))
    N_all = sum(N_c.values())

    def p1(c):
        return max(N_c[c] - D, 0) / N_all + D * len(N_c) / N_all / V

    def p2(b, c):
        if N_b[b] == 0:
            return p1(c)
        T_b = sum(1 for (bb, _) in N_bc if bb == b)
        return max(N_bc[(b, c)] - D, 0) / N_b[b] + D * T_b / N_b[b] * p1(c)

    def p3(a, b, c):
        if n_ab[(a, b)] == 0:
            return p2(b, c)
        T_ab = sum(1 for (x, y, _) in n3 if (x, y) == (a, b))
        return max(n3[(a, b, c)] - D, 0) / n_ab[(a, b)] + D * T_ab / n_ab[(a, b)] * p2(b, c)

    val = rng.choice(V, 50)
    want = -np.mean([math.log(p3(a, b, c)) for a, b, c in zip(val, val[1:], val[2:])])
    assert NG.kneser_ney_trigram_nll(TRAIN, val, V, D) == pytest.approx(want, rel=1e-12)


def test_bigram_equals_counting_by_hand():
    t = [int(x) for x in TRAIN]
    pairs, firsts = Counter(zip(t, t[1:])), Counter(t[:-1])
    val = [0, 1, 2, 0, 5, 1]
    want = -np.mean([math.log((pairs[(b, c)] + 0.5) / (firsts[b] + 0.5 * V)) for b, c in zip(val[1:-1], val[2:])])
    assert NG.bigram_nll(TRAIN, np.array(val), V, k=0.5) == pytest.approx(want, rel=1e-12)


def test_more_context_helps_on_structured_text():
    text = np.tile(np.array([0, 1, 2, 3, 1, 4, 2, 0]), 40)
    scores = [NG.unigram_nll(text, text, 5), NG.bigram_nll(text, text, 5), NG.kneser_ney_trigram_nll(text, text, 5)]
    assert scores[0] > scores[1] > scores[2]


def test_bad_input():
    with pytest.raises(ValueError, match="at least 3 token ids"):
        NG.bigram_nll(np.array([1, 2]), np.array([1, 2, 3]), 5)


# ------------------------------------------------------------------ Kneser–Ney of any order
def _kn_direct(train, val, V, order, D):
    """Interpolated Kneser–Ney written from its definition with Counters (slow, obvious)."""
    t = [int(x) for x in train]
    grams = {k: Counter(zip(*(t[i:] for i in range(k)))) for k in range(1, order + 1)}

    def cont(g):                       # N(· g): distinct tokens seen before the k-gram g
        return sum(1 for h in grams[len(g) + 1] if h[1:] == g)

    def p(ctx, w):
        k = len(ctx) + 1
        if k == 1:
            N = {c: cont((c,)) for c in range(V)}
            tot = sum(N.values())
            return max(N[w] - D, 0) / tot + D * sum(n > 0 for n in N.values()) / tot / V
        if k == order:
            counts = {g[-1]: n for g, n in grams[k].items() if g[:-1] == ctx}
        else:
            counts = {g[-1]: cont(g) for g in grams[k] if g[:-1] == ctx}
            counts = {c: n for c, n in counts.items() if n > 0}
        tot = sum(counts.values())
        if tot == 0:
            return p(ctx[1:], w)
        return max(counts.get(w, 0) - D, 0) / tot + D * len(counts) / tot * p(ctx[1:], w)

    v = [int(x) for x in val]
    return -np.mean([math.log(p(tuple(v[i - order + 1:i]), v[i])) for i in range(order - 1, len(v))])


@pytest.mark.parametrize("order,D", [(2, 0.75), (4, 0.75), (4, 0.3), (5, 0.9)])
def test_kneser_ney_of_any_order_equals_a_direct_implementation(order, D):
    val = rng.choice(V, 40)
    assert NG.kneser_ney_nll(TRAIN, val, V, order, D) == pytest.approx(_kn_direct(TRAIN, val, V, order, D),
                                                                      rel=1e-12)


def test_kneser_ney_of_order_3_is_the_trigram():
    val = rng.choice(V, 60)
    assert NG.kneser_ney_nll(TRAIN, val, V, 3, 0.8) == pytest.approx(NG.kneser_ney_trigram_nll(TRAIN, val, V, 0.8),
                                                                    rel=1e-12)


@pytest.mark.parametrize("ctx", [(0, 1, 2), (1, 1, 1), (4, 0, 5), (5, 5, 5)])
def test_kneser_ney_4gram_is_a_distribution(ctx):
    ps = [math.exp(-NG.kneser_ney_nll(TRAIN, np.array([*ctx, c]), V, 4, 0.75)) for c in range(V)]
    assert all(p > 0 for p in ps) and sum(ps) == pytest.approx(1.0, abs=1e-9)
