"""Checks for Chapter 5's exercises (pretraining): the interpolated add-k trigram, AdamW's parameter groups and
the warmup + cosine learning-rate schedule, and the measurement of a forgotten 1/k in gradient
accumulation (predict, then measure).

Each check runs the learner's function through `c.call` (a crash names the case) and compares it with an
independent reference on inputs that make the usual mistakes show: a small vocabulary with non-trivial
smoothing (k = 0.5) and unequal lambdas, a validation token never seen in training, a training text whose last
bigram also occurs as a validation context, token ids as uint16/int32 with GPT-2's vocabulary (pair and triple
codes overflow unless computed in int64); a model with a tied head, a frozen parameter, LayerNorm weights, a 3-D
convolution weight and a 0-d scalar; schedules sampled at the first, last and boundary steps with a non-zero
floor, no warmup, no cosine phase, and one random setting. The random parts (training text, sizes, one schedule)
are drawn from the checker's seed; the number of checks per run does not depend on it.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from gptlib.checks import Checker, checker, no_solution, rel_error
from gptlib.ngram import interpolated_trigram_nll
from gptlib.train import lr_at, param_groups


def _no_reference(c: Checker, learner: Callable, reference: Callable, what: str):
    """Fail when the learner's code calls gptlib's own solution of the exercise while it runs."""
    return no_solution(
        c,
        learner,
        reference,
        f"your code calls gptlib's {what}, the solution of this exercise: write it yourself",
    )


__all__ = ["check_interpolated_trigram", "check_param_groups", "check_lr_at", "check_forgotten_scale"]


# ------------------------------------------------------------------------------------------ n-gram trigram
def _trigram_probs(train, val, V, k, lambdas, *, log_mix=False, no_kv=False, ctx_all_bigrams=False):
    """Per-target log-probabilities of val[2:] (log of the mixture, or the mixture of logs), plain Python counting."""
    train, val = [int(t) for t in train], [int(t) for t in val]
    l1, l2, l3 = lambdas
    n1 = Counter(train)
    n2 = Counter(zip(train, train[1:]))
    n3 = Counter(zip(train, train[1:], train[2:]))
    ctx2 = Counter(train[:-1])
    ctx3 = (
        Counter(zip(train, train[1:])) if ctx_all_bigrams else Counter(zip(train[:-2], train[1:-1]))
    )
    kv = 0.0 if no_kv else k * V
    out = []
    for a, b, c in zip(val, val[1:], val[2:]):
        p1 = (n1[c] + k) / (len(train) + kv)
        p2 = (n2[(b, c)] + k) / (ctx2[b] + kv)
        p3 = (n3[(a, b, c)] + k) / (ctx3[(a, b)] + kv)
        out.append(
            l1 * math.log(p1) + l2 * math.log(p2) + l3 * math.log(p3)
            if log_mix
            else math.log(l1 * p1 + l2 * p2 + l3 * p3)
        )
    return out


def _mean_nll(*args, **kw) -> float:
    """The mean NLL; NaN where a wrong formula breaks down (a zero denominator, log of 0)."""
    try:
        return -float(np.mean(_trigram_probs(*args, **kw)))
    except (ValueError, ZeroDivisionError):
        return float("nan")


_FORMULA = "p(c|ab) = l1 (n(c)+k)/(N+kV) + l2 (n(bc)+k)/(n(b·)+kV) + l3 (n(abc)+k)/(n(ab·)+kV)"
_WIDE = (
    "token ids come as uint16 (Chapter 1's shards) or int32: convert them to int64 "
    "(np.asarray(ids, dtype=np.int64)) before encoding pairs and triples as b·V + c and (a·V + "
    "b)·V + c, which overflow 16 and 32 bits for GPT-2's V = 50257"
)


def check_interpolated_trigram(fn: Callable) -> None:
    """fn(train, val, vocab_size, k, lambdas) is the mean NLL (nats) of val[2:] under the interpolated add-k
    trigram counted on train."""
    V = 7
    with (
        checker("interpolated_trigram_nll", fn) as c,
        _no_reference(c, fn, interpolated_trigram_nll, "ngram.interpolated_trigram_nll"),
    ):
        rng = np.random.default_rng(c.rng.randrange(2**32))
        # a skewed training text without token 6 (unseen: its counts are 0); its last bigram (3, 5) also opens
        # trigrams of the validation text
        train = np.concatenate(
            [rng.choice(V - 1, 60, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1]), [1, 3, 5]]
        ).astype(np.int64)
        val = np.array([3, 5, 6, 3, 5, 1, 0, 3, 5, 2, 2, 4, 6, 6, 0], dtype=np.int64)
        n = len(val) - 2
        # GPT-2-sized ids chosen so that codes computed without int64 collide: in uint16, the pair (1, 15281) wraps
        # to the code of (0, 2) (50257 + 15281 = 2 + 65536); in int32, the triple (20840, 42874, 0) wraps to the
        # code of (0, 0, 2) ((20840·50257 + 42874)·50257 = 2 mod 2^32)
        a16 = np.array([0, 1, 2, 15281, 777, 50256], dtype=np.int64)
        tr16 = np.concatenate([rng.choice(a16, 60), [1, 15281, 1, 15281, 1, 15281]])
        va16 = np.array([777, 0, 2, 0, 2, 50256, 1, 15281, 0, 2, 777], dtype=np.int64)
        a32 = np.array([0, 2, 20840, 42874, 50256], dtype=np.int64)
        tr32 = np.concatenate(
            [rng.choice(a32, 60), [20840, 42874, 0, 20840, 42874, 0, 20840, 42874, 0]]
        )
        va32 = np.array([0, 0, 2, 50256, 0, 0, 2, 20840, 42874, 0, 2], dtype=np.int64)
        cases = [
            (
                train,
                val,
                V,
                0.5,
                (0.2, 0.3, 0.5),
                np.int64,
                "k=0.5, lambdas=(0.2, 0.3, 0.5); val holds token 6, never seen in train",
            ),
            (train, val, V, 0.01, (0.1, 0.3, 0.6), np.int64, "k=0.01, lambdas=(0.1, 0.3, 0.6)"),
            (
                train,
                val,
                V,
                0.5,
                (1.0, 0.0, 0.0),
                np.int64,
                "lambdas=(1, 0, 0): the add-k unigram alone",
            ),
            (train[::-1], val, V, 0.5, (0.2, 0.3, 0.5), np.int64, "the training text reversed"),
            (
                train,
                val,
                V + 5,
                0.5,
                (0.2, 0.3, 0.5),
                np.int64,
                f"vocab_size={V + 5}, larger than any id in the data (ids 0..{V - 1})",
            ),
            (
                train,
                np.tile(val, 30),
                V,
                0.5,
                (0.2, 0.3, 0.5),
                np.int64,
                f"a long validation text ({len(val) * 30} tokens): a product of that many "
                f"probabilities underflows to 0",
            ),
            (
                tr16,
                va16,
                50257,
                0.5,
                (0.2, 0.3, 0.5),
                np.uint16,
                "token ids as uint16, vocab_size=50257",
            ),
            (
                tr32,
                va32,
                50257,
                0.01,
                (0.1, 0.3, 0.6),
                np.int32,
                "token ids as int32, vocab_size=50257",
            ),
        ]
        for tr, va, vocab, k, lam, dt, case in cases:
            tr, va = np.ascontiguousarray(tr, dtype=dt), np.ascontiguousarray(va, dtype=dt)
            want = _mean_nll(tr, va, vocab, k, lam)
            got = c.call(
                case,
                fn,
                tr,
                va,
                vocab,
                k=k,
                lambdas=lam,
                inplace="train or val was modified in place (e.g. sorted): the caller's token "
                    "arrays "
                "must stay as they were; work on a copy",
            )
            c.expect(
                isinstance(got, float) and np.ndim(got) == 0,
                case,
                f"return one Python float (the mean; float(...)), got {type(got).__name__}",
            )
            c.expect(
                math.isfinite(got),
                case,
                f"got {got}: "
                + (
                    "a product of hundreds of probabilities underflows to 0.0 (log(0) = -inf): add "
                    "the logs of the mixed probabilities (mean of log p), never multiply the "
                    "probabilities"
                    if "long" in case
                    else "a context never seen in train has count 0; add k·V to every denominator "
                    "so each probability stays finite and positive"
                ),
            )
            if abs(got - want) < 1e-6 * max(1.0, abs(want)):
                c.expect(True, case, "")
                continue
            if dt != np.int64:
                c.expect(False, case, f"{rel_error(got, want)}: {_WIDE}")
            wrong = {
                "mix the probabilities, then take the log (log of the weighted sum), not a "
                "weighted sum of logs": lambda: (
                    _mean_nll(tr, va, vocab, k, lam, log_mix=True)
                ),
                "add k·V to every denominator (k for each of the V possible next tokens)": lambda: (
                    _mean_nll(tr, va, vocab, k, lam, no_kv=True)
                ),
                "n(ab·) counts the contexts of trigrams, the pairs (train[:-2], train[1:-1]); the "
                "text's last bigram "
                "starts no trigram": lambda: _mean_nll(tr, va, vocab, k, lam, ctx_all_bigrams=True),
                "lambdas = (l1, l2, l3) weight the unigram, bigram and trigram in that "
                "order": lambda: (
                    _mean_nll(tr, va, vocab, k, lam[::-1])
                ),
                "count on train and score val, not the other way round": lambda: _mean_nll(
                    va, tr, vocab, k, lam
                ),
                "natural log (nats), not log2": lambda: want / math.log(2),
                "use the vocab_size argument for V in k·V, not a V inferred from the data (the "
                "number of distinct ids; a "
                "vocabulary has tokens the text never uses)": lambda: _mean_nll(
                    tr, va, len(set(tr.tolist()) | set(va.tolist())), k, lam
                ),
                "use the vocab_size argument for V in k·V, not a V inferred from the data (the "
                "largest id + 1; a vocabulary has "
                "tokens the text never uses)": lambda: _mean_nll(
                    tr, va, int(max(tr.max(), va.max())) + 1, k, lam
                ),
                "return the mean over the targets, not the sum": lambda: want * n,
                f"score the targets val[2:] ({n} of them), each with the two tokens before "
                "it": lambda: (
                    _mean_nll(tr, va[1:], vocab, k, lam)
                ),
            }
            n = len(va) - 2
            hint = next(
                (h for h, w in wrong.items() if abs(got - w()) < 1e-6 * max(1.0, abs(w()))),
                _FORMULA
                + (
                    "; count ordered n-grams: (a, b, c) is not (c, b, a)"
                    if case == "the training text reversed"
                    else ""
                ),
            )
            c.expect(False, case, f"{rel_error(got, want)}: {hint}")


# ------------------------------------------------------------------------------------------ parameter groups
class _Net(nn.Module):
    """Embedding tied to the head, a Linear with bias, a LayerNorm, a frozen Linear, a Conv1d (3-D weight) and a
    0-d learnable scale."""

    def __init__(self, vocab: int, d: int, h: int):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.fc = nn.Linear(d, h)
        self.ln = nn.LayerNorm(h)
        self.conv = nn.Conv1d(h, h, 3)
        self.frozen = nn.Linear(h, d)
        self.frozen.weight.requires_grad_(False)
        self.scale = nn.Parameter(torch.ones(()))
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight


def check_param_groups(fn: Callable) -> None:
    """fn(model, weight_decay) -> [{"params": 2-D+, "weight_decay": wd}, {"params": 0/1-D, "weight_decay": 0.0}]."""
    want_decay = {"wte.weight", "fc.weight", "conv.weight"}
    want_plain = {"fc.bias", "ln.weight", "ln.bias", "conv.bias", "frozen.bias", "scale"}
    with checker("param_groups", fn) as c, _no_reference(c, fn, param_groups, "train.param_groups"):
        net = _Net(c.rng.randint(9, 40), c.rng.randint(4, 12), c.rng.randint(3, 10))
        names = {id(p): n for n, p in net.named_parameters()}
        dims = {n: p.dim() for n, p in net.named_parameters()}
        wd = round(c.rng.uniform(0.01, 0.2), 3)
        case = f"param_groups(model, weight_decay={wd})"
        groups = c.call(case, fn, net, wd)
        c.expect(
            isinstance(groups, (list, tuple))
            and len(groups) == 2
            and all(isinstance(g, dict) for g in groups),
            case,
            "return a list of two dicts: the decayed group, then the one without decay",
        )
        c.expect(
            all("params" in g and "weight_decay" in g for g in groups),
            case,
            'each group is {"params": [...], "weight_decay": value}',
        )
        c.expect(
            groups[0]["weight_decay"] == wd and groups[1]["weight_decay"] == 0.0,
            case,
            f"the first group decays with the weight_decay argument ({wd}), the second with "
            f"0.0; got {groups[0]['weight_decay']} and {groups[1]['weight_decay']}",
        )
        c.expect(
            all(isinstance(g["params"], (list, tuple)) for g in groups),
            case,
            f"each group's params must be a list (e.g. [p for n, p in ... if p.dim() >= 2]), "
            f"not a generator or filter/map object: those can be read once, and the "
            f"optimizer, the parameter count and the next cell each read them (got "
            f"{', '.join(type(g['params']).__name__ for g in groups)})",
        )
        params = [list(g["params"]) for g in groups]
        ids = [[id(p) for p in ps] for ps in params]
        c.expect(
            all(isinstance(p, nn.Parameter) and id(p) in names for ps in params for p in ps),
            case,
            "the groups must hold the model's Parameters themselves (from named_parameters)",
        )
        got = [[names[i] for i in g] for g in ids]
        c.expect(
            "frozen.weight" not in got[0] + got[1],
            case + ": the frozen frozen.weight",
            "leave out parameters with requires_grad=False (frozen)",
        )
        c.expect(
            len(got[0]) == len(set(got[0]))
            and len(got[1]) == len(set(got[1]))
            and not set(got[0]) & set(got[1]),
            case + ": the tied head",
            "each parameter once: head.weight is wte.weight (named_parameters yields it once)",
        )
        misplaced = sorted(set(got[0]) & want_plain)
        c.expect(
            not misplaced,
            case + ": 0-D and 1-D parameters",
            f"{misplaced} are 0-D or 1-D (biases, LayerNorm gains, scalars): no weight decay; "
            "decide by p.dim() >= 2, not by the name",
        )
        missing = sorted(want_decay - set(got[0]))
        c.expect(
            not missing,
            case + ": parameters with 2+ dimensions",
            f"{missing} ({', '.join(f'{dims[m]}-D' for m in missing)}) have two or more dimensions "
            "and get weight "
            "decay"
            + (" (the embedding too: it is the tied LM head)" if "wte.weight" in missing else ""),
        )
        lost = sorted(want_plain - set(got[1]))
        c.expect(
            not lost,
            case + ": the no-decay group",
            f"{lost} missing: every trainable parameter with fewer than two dimensions (a 0-d "
            "scalar too) "
            f"goes into the second group; got {sorted(got[1])}",
        )
        try:
            torch.optim.AdamW(groups, lr=1e-3)
            ok, why = True, ""
        except (ValueError, TypeError) as e:
            ok, why = False, str(e)
        c.expect(ok, case + ": torch.optim.AdamW(groups)", f"AdamW rejects the groups: {why}")


# ------------------------------------------------------------------------------------------ lr schedule
def _lr_ref(step, max_lr, warmup, total, min_lr):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return min_lr + 0.5 * (max_lr - min_lr) * (
        1 + math.cos(math.pi * (step - warmup) / (total - warmup))
    )


def check_lr_at(fn: Callable) -> None:
    """fn(step, max_lr, warmup, total, min_lr) follows linear warmup then cosine decay to min_lr."""
    with checker("lr_at", fn) as c, _no_reference(c, fn, lr_at, "train.lr_at"):
        warmup = c.rng.randint(2, 40)
        total = warmup + c.rng.randint(10, 300)
        rand = (round(c.rng.uniform(1e-4, 3e-3), 6), warmup, total, c.rng.choice([0.1, 0.01, 0.0]))
        settings = [
            (6e-4, 10, 50, 6e-5),
            (1e-3, 4, 20, 0.0),
            (2e-3, 0, 12, 2e-4),
            (3e-4, 5, 5, 3e-5),
            (rand[0], rand[1], rand[2], rand[0] * rand[3]),
        ]
        for max_lr, warmup, total, min_lr in settings:
            steps = [
                0,
                1,
                warmup // 2,
                max(warmup - 1, 0),
                warmup,
                warmup + 1,
                (warmup + total) // 2,
                max(total - 1, 0),
                total,
                total + 7,
            ]
            for step in steps:
                case = (f"step={step} (max_lr={max_lr:.6g}, warmup={warmup}, total={total}, "
                    f"min_lr={min_lr:.6g})")
                if warmup == total:
                    case += "; warmup == total: no cosine phase"
                got = c.call(case, fn, step, max_lr, warmup, total, min_lr)
                want = _lr_ref(step, max_lr, warmup, total, min_lr)
                c.expect(
                    isinstance(got, (float, int)) and not isinstance(got, bool),
                    case,
                    f"return a Python float, got {type(got).__name__}",
                )
                if abs(got - want) <= 1e-12 + 1e-9 * max_lr:
                    c.expect(True, case, "")
                    continue
                if step < warmup:
                    hint = (
                        "warmup is linear from max_lr/warmup at step 0 to max_lr at step warmup-1: "
                        "max_lr * (step + 1) / warmup"
                    )
                elif step >= total:
                    hint = "from step total on the learning rate stays at min_lr"
                elif (
                    abs(
                        got
                        - (
                            max_lr
                            * 0.5
                            * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
                        )
                    )
                    < 1e-12
                ):
                    hint = "the cosine decays to min_lr, not to 0: min_lr + (max_lr - min_lr) * ..."
                elif (
                    abs(
                        got
                        - (
                            min_lr
                            + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * step / total))
                        )
                    )
                    < 1e-12
                ):
                    hint = ("the cosine starts where warmup ends: p = (step - warmup) / (total - "
                        "warmup)")
                else:
                    hint = (
                        "after warmup: min_lr + (max_lr - min_lr) * (1 + cos(pi * p)) / 2 with p = "
                        "(step - warmup) / (total - warmup), a half cosine from max_lr to min_lr"
                    )
                c.expect(False, case, f"{rel_error(got, want)}: {hint}")


# ------------------------------------------------------------------------------------------ predict, then measure
def _tiny_factory(seed: int):
    """A factory of identical tiny GPTs (fresh weights on every call) and a count of its calls."""
    from gptlib.model import GPT, GPTConfig
    calls = [0]

    def make_model():
        calls[0] += 1
        torch.manual_seed(seed)
        return GPT(GPTConfig(vocab_size=48, block_size=16, n_layer=1, n_head=2, n_embd=16,
                             dropout=0.0))
    return make_model, calls


def check_forgotten_scale(fn: Callable) -> None:
    """fn(make_model, make_optimizer, xb, k) -> (gradient-norm ratio, update-norm ratio) of k
    micro-batches whose losses are summed without 1/k, against one batch of the same windows."""
    optimizers = {
        "AdamW(lr=1e-3)": (lambda ps: torch.optim.AdamW(ps, lr=1e-3), lambda k: 1.0, 1e-2),
        "SGD(lr=0.1)": (lambda ps: torch.optim.SGD(ps, lr=0.1), lambda k: float(k), 1e-4),
    }
    with checker("forgotten_scale", fn) as c:
        for name, (make_opt, update_ratio, tol) in optimizers.items():
            for k in (2, 4):
                make_model, calls = _tiny_factory(c.rng.randint(0, 10_000))
                xb = torch.randint(0, 48, (8, 17), generator=c.gen())
                case = f"{name}, a batch of 8 windows as k={k} micro-batches"
                out = c.call(case, fn, make_model, make_opt, xb, k)
                ok = (isinstance(out, tuple) and len(out) == 2
                      and all(isinstance(v, float) for v in out))
                c.expect(ok, case, "return a tuple of two Python floats: (gradient ratio, "
                                   f"update ratio), got {type(out).__name__}")
                if not ok:
                    continue
                g, u = out
                c.expect(calls[0] >= 2, case, "build a fresh model with make_model() for each of "
                                               "the two cases, so both start from the same weights")
                if abs(g - k) > 1e-4 * k:
                    if abs(g - 1) < 1e-3:
                        hint = ("the gradients agree: you divided each micro-batch's loss by k; this "
                                "exercise measures the bug, so leave the 1/k out")
                    elif abs(g - 1 / k) < 1e-3:
                        hint = "upside down: the ratio is (k micro-batches) / (one batch)"
                    elif abs(g - (k + 1)) < 1e-3:
                        hint = ("the first case's gradient is still in .grad: each case needs a fresh "
                                "model (or zero_grad) before its backward passes")
                    else:
                        hint = ("the gradient ratio is the global norm (all parameters together) of "
                                "the accumulated gradient over that of one batch")
                    c.expect(False, case, f"gradient ratio {rel_error(g, float(k))}: {hint}")
                want = update_ratio(k)
                if abs(u - want) > tol * max(1.0, want):
                    if abs(u - k) < 1e-3 and want != k:
                        hint = ("that is the gradient ratio again: the update is the change of the "
                                "weights made by one optimizer step (after minus a copy taken before)")
                    elif abs(u - 1 / k) < 1e-3 or abs(u - 1 / want) < 1e-3:
                        hint = "upside down: the ratio is (k micro-batches) / (one batch)"
                    else:
                        hint = ("the update is the change of all the weights made by one "
                                "make_optimizer(...).step(): the global norm of (after - before)")
                    c.expect(False, case, f"update ratio {rel_error(u, want)}: {hint}")
                else:
                    c.expect(True, case, "")
