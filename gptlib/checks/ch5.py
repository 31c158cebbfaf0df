"""Checks for Chapter 5's exercises (pretraining): the interpolated add-k trigram, AdamW's parameter groups and
the warmup + cosine learning-rate schedule.

Each check compares the learner's function with an independent reference on inputs that make the usual mistakes
show: a small vocabulary with non-trivial smoothing (k = 0.5) and unequal lambdas; a training text whose last
bigram also occurs as a validation context; a model with a tied head, a frozen parameter and LayerNorm weights;
schedules sampled at the first, last and boundary steps with a non-zero floor.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from gptlib.checks import checker

__all__ = ["check_interpolated_trigram", "check_param_groups", "check_lr_at"]


# ------------------------------------------------------------------------------------------ n-gram trigram
def _trigram_probs(train, val, V, k, lambdas, *, log_mix=False, no_kv=False, ctx_all_bigrams=False):
    """Per-target probabilities of val[2:] (or mean log-probs when log_mix), plain Python counting."""
    train, val = [int(t) for t in train], [int(t) for t in val]
    l1, l2, l3 = lambdas
    n1 = Counter(train)
    n2 = Counter(zip(train, train[1:]))
    n3 = Counter(zip(train, train[1:], train[2:]))
    ctx2 = Counter(train[:-1])
    ctx3 = Counter(zip(train, train[1:])) if ctx_all_bigrams else Counter(zip(train[:-2], train[1:-1]))
    kv = 0.0 if no_kv else k * V
    out = []
    for a, b, c in zip(val, val[1:], val[2:]):
        p1 = (n1[c] + k) / (len(train) + kv)
        p2 = (n2[(b, c)] + k) / (ctx2[b] + kv)
        p3 = (n3[(a, b, c)] + k) / (ctx3[(a, b)] + kv)
        out.append(l1 * math.log(p1) + l2 * math.log(p2) + l3 * math.log(p3) if log_mix
                   else math.log(l1 * p1 + l2 * p2 + l3 * p3))
    return out


def check_interpolated_trigram(fn: Callable) -> None:
    """fn(train, val, vocab_size, k, lambdas) is the mean NLL (nats) of val[2:] under the interpolated add-k
    trigram counted on train."""
    rng = np.random.default_rng(5)
    V = 7
    # a skewed training text; its last bigram (3, 5) also opens trigrams of the validation text
    train = np.concatenate([rng.choice(V, 60, p=[.3, .2, .15, .15, .1, .05, .05]), [1, 3, 5]]).astype(np.int64)
    val = np.array([3, 5, 6, 3, 5, 1, 0, 3, 5, 2, 2, 4, 6, 6, 0], dtype=np.int64)
    cases = [((0.5, (0.2, 0.3, 0.5)), "k=0.5, lambdas=(0.2, 0.3, 0.5)"),
             ((0.01, (0.1, 0.3, 0.6)), "k=0.01, lambdas=(0.1, 0.3, 0.6)"),
             ((0.5, (1.0, 0.0, 0.0)), "lambdas=(1, 0, 0): the add-k unigram alone")]
    with checker("interpolated_trigram_nll") as c:
        for (k, lam), case in cases:
            want = -float(np.mean(_trigram_probs(train, val, V, k, lam)))
            got = fn(train.copy(), val.copy(), V, k=k, lambdas=lam)
            c.expect(isinstance(got, (float, np.floating)) and not isinstance(got, bool) and np.ndim(got) == 0,
                     case, f"return one float (the mean), got {type(got).__name__}")
            got = float(got)
            c.expect(math.isfinite(got), case, f"got {got}: a context never seen in train has count 0; add k·V to "
                     "every denominator so each probability stays finite and positive")
            if abs(got - want) < 1e-6 * max(1.0, abs(want)):
                c.expect(True, case, "")
                continue
            n = len(val) - 2

            def mean_nll(*args, **kw):                                 # NaN where a wrong formula breaks down
                try:
                    return -float(np.mean(_trigram_probs(*args, **kw)))
                except (ValueError, ZeroDivisionError):
                    return float("nan")

            wrong = {
                "mix the probabilities, then take the log (log of the weighted sum), not a weighted sum of logs":
                    mean_nll(train, val, V, k, lam, log_mix=True),
                "add k·V to every denominator (k for each of the V possible next tokens)":
                    mean_nll(train, val, V, k, lam, no_kv=True),
                "n(ab·) counts the contexts of trigrams, the pairs (train[:-2], train[1:-1]); the text's last bigram "
                "starts no trigram": mean_nll(train, val, V, k, lam, ctx_all_bigrams=True),
                "lambdas = (l1, l2, l3) weight the unigram, bigram and trigram in that order":
                    mean_nll(train, val, V, k, lam[::-1]),
                "count on train and score val, not the other way round":
                    mean_nll(val, train, V, k, lam),
                "natural log (nats), not log2": mean_nll(train, val, V, k, lam) / math.log(2),
                "return the mean over the targets, not the sum": mean_nll(train, val, V, k, lam) * n,
                f"score the targets val[2:] ({n} of them), each with the two tokens before it":
                    mean_nll(train, val[1:], V, k, lam),
            }
            hint = next((h for h, w in wrong.items() if abs(got - w) < 1e-6 * max(1.0, abs(w))),
                        "p(c|ab) = l1 (n(c)+k)/(N+kV) + l2 (n(bc)+k)/(n(b·)+kV) + l3 (n(abc)+k)/(n(ab·)+kV)")
            c.expect(False, case, f"got {got:.6f}, expected {want:.6f}: {hint}")
        flipped = fn(train[::-1].copy(), val.copy(), V, k=0.5, lambdas=(0.2, 0.3, 0.5))
        c.expect(abs(float(flipped) + float(np.mean(_trigram_probs(train[::-1], val, V, 0.5, (0.2, 0.3, 0.5)))))
                 < 1e-6, "the training text reversed", "count ordered n-grams: (a, b, c) is not (c, b, a)")


# ------------------------------------------------------------------------------------------ parameter groups
class _Net(nn.Module):
    """Embedding tied to the head, a Linear with bias, a LayerNorm, a frozen Linear."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(11, 6)
        self.fc = nn.Linear(6, 5)
        self.ln = nn.LayerNorm(5)
        self.frozen = nn.Linear(5, 6)
        self.frozen.weight.requires_grad_(False)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.wte.weight


def check_param_groups(fn: Callable) -> None:
    """fn(model, weight_decay) -> [{"params": 2-D+, "weight_decay": wd}, {"params": 1-D, "weight_decay": 0.0}]."""
    net = _Net()
    names = {id(p): n for n, p in net.named_parameters()}
    want_decay = {"wte.weight", "fc.weight"}
    want_plain = {"fc.bias", "ln.weight", "ln.bias", "frozen.bias"}
    with checker("param_groups") as c:
        groups = fn(net, 0.05)
        c.expect(isinstance(groups, (list, tuple)) and len(groups) == 2 and all(isinstance(g, dict) for g in groups),
                 "the return value", "return a list of two dicts: the decayed group, then the one without decay")
        c.expect(all("params" in g and "weight_decay" in g for g in groups), "the groups' keys",
                 'each group is {"params": [...], "weight_decay": value}')
        c.expect(groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0, "weight_decay values",
                 f"the first group decays with the weight_decay argument (0.05), the second with 0.0; got "
                 f"{groups[0]['weight_decay']} and {groups[1]['weight_decay']}")
        params = [list(g["params"]) for g in groups]
        ids = [[id(p) for p in ps] for ps in params]
        c.expect(all(i in names for i in ids[0] + ids[1]), "every entry",
                 "the groups must hold the model's Parameters themselves (from named_parameters)")
        got = [[names[i] for i in g] for g in ids]
        c.expect("frozen.weight" not in names and all(p.requires_grad for ps in params for p in ps),
                 "the frozen frozen.weight", "leave out parameters with requires_grad=False (frozen)")
        c.expect(len(got[0]) == len(set(got[0])) and len(got[1]) == len(set(got[1])) and
                 len(ids[0]) + len(ids[1]) == len(set(ids[0]) | set(ids[1])), "the tied head",
                 "each parameter once: head.weight is wte.weight (named_parameters yields it once)")
        misplaced = sorted(set(got[0]) & want_plain)
        c.expect(not misplaced, "1-D parameters", f"{misplaced} are 1-D (biases, LayerNorm gains): no weight decay; "
                 "decide by p.dim() >= 2, not by the name")
        missing = sorted(want_decay - set(got[0]))
        c.expect(not missing, "2-D parameters", f"{missing} have two dimensions and get weight decay (the "
                 "embedding too: it is the tied LM head)")
        c.expect(set(got[1]) == want_plain, "the no-decay group",
                 f"expected {sorted(want_plain)}, got {sorted(got[1])}")


# ------------------------------------------------------------------------------------------ lr schedule
def _lr_ref(step, max_lr, warmup, total, min_lr):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def check_lr_at(fn: Callable) -> None:
    """fn(step, max_lr, warmup, total, min_lr) follows linear warmup then cosine decay to min_lr."""
    settings = [(6e-4, 10, 50, 6e-5), (1e-3, 4, 20, 0.0), (2e-3, 0, 12, 2e-4)]
    with checker("lr_at") as c:
        for max_lr, warmup, total, min_lr in settings:
            for step in sorted({0, 1, warmup // 2, max(warmup - 1, 0), warmup, warmup + 1,
                                (warmup + total) // 2, total - 1, total, total + 7}):
                case = f"step={step} (max_lr={max_lr}, warmup={warmup}, total={total}, min_lr={min_lr})"
                got, want = fn(step, max_lr, warmup, total, min_lr), _lr_ref(step, max_lr, warmup, total, min_lr)
                c.expect(isinstance(got, (float, int)) and not isinstance(got, bool), case,
                         f"return a Python float, got {type(got).__name__}")
                if abs(got - want) <= 1e-12 + 1e-9 * max_lr:
                    c.expect(True, case, "")
                    continue
                if step < warmup:
                    hint = ("warmup is linear from max_lr/warmup at step 0 to max_lr at step warmup-1: "
                            "max_lr * (step + 1) / warmup")
                elif step >= total:
                    hint = "from step total on the learning rate stays at min_lr"
                elif abs(got - (max_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))))) < 1e-12:
                    hint = "the cosine decays to min_lr, not to 0: min_lr + (max_lr - min_lr) * ..."
                elif abs(got - (min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * step / total)))) < 1e-12:
                    hint = "the cosine starts where warmup ends: p = (step - warmup) / (total - warmup)"
                else:
                    hint = ("after warmup: min_lr + (max_lr - min_lr) * (1 + cos(pi * p)) / 2 with "
                            "p = (step - warmup) / (total - warmup), a half cosine from max_lr to min_lr")
                c.expect(False, case, f"got {got:.6g}, expected {want:.6g}: {hint}")
