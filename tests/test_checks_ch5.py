"""Chapter 5's exercise checks: each passes on gptlib's reference, fails on a stub and on curated mutants."""
import math

import numpy as np
import torch

from gptlib import ngram as NG
from gptlib import train as TR
from gptlib.checks import ch5
from mutation import Mutant, check_tests, robustness_tests


# --------------------------------------------------------------------------------------------- trigram
def _parts(train, val, V, k):
    train, val = np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)
    n1 = np.bincount(train, minlength=V).astype(float)
    k2, n2 = NG._counts(train[:-1] * V + train[1:])
    ctx2 = np.bincount(train[:-1], minlength=V).astype(float)
    k3, n3 = NG._counts((train[:-2] * V + train[1:-1]) * V + train[2:])
    kab, cab = NG._counts(train[:-2] * V + train[1:-1])
    a, b, c = val[:-2], val[1:-1], val[2:]
    p1 = (n1[c] + k) / (len(train) + k * V)
    p2 = (NG._lookup(k2, n2, b * V + c) + k) / (ctx2[b] + k * V)
    p3 = (NG._lookup(k3, n3, (a * V + b) * V + c) + k) / (NG._lookup(kab, cab, a * V + b) + k * V)
    return p1, p2, p3


def tri_log_mix(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    p1, p2, p3 = _parts(train, val, vocab_size, k)
    l1, l2, l3 = lambdas
    return float(-(l1 * np.log(p1) + l2 * np.log(p2) + l3 * np.log(p3)).mean())


def tri_lambdas_reversed(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    p1, p2, p3 = _parts(train, val, vocab_size, k)
    l3, l2, l1 = lambdas
    return float(-np.log(l1 * p1 + l2 * p2 + l3 * p3).mean())


def tri_no_kv(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    train, val = np.asarray(train), np.asarray(val)
    V, (l1, l2, l3) = vocab_size, lambdas
    p1, p2, p3 = _parts(train, val, V, k)
    # undo the k*V in each denominator: p = (n + k) / (ctx + kV)  ->  (n + k) / ctx
    n1 = np.bincount(train, minlength=V).astype(float)
    ctx2 = np.bincount(train[:-1], minlength=V).astype(float)
    kab, cab = NG._counts(train[:-2] * V + train[1:-1])
    a, b, c = val[:-2], val[1:-1], val[2:]
    q1 = (n1[c] + k) / len(train)
    ctx3 = NG._lookup(kab, cab, a * V + b).astype(float)
    with np.errstate(
        divide="ignore", invalid="ignore"
    ):  # the mistake divides by zero counts: inf, no warning
        q2 = p2 * (ctx2[b] + k * V) / ctx2[b]
        q3 = p3 * (ctx3 + k * V) / ctx3
    return float(-np.log(l1 * q1 + l2 * q2 + l3 * q3).mean())


def tri_ctx_all_bigrams(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    train, val = np.asarray(train), np.asarray(val)
    V, (l1, l2, l3) = vocab_size, lambdas
    p1, p2, _ = _parts(train, val, V, k)
    k3, n3 = NG._counts((train[:-2] * V + train[1:-1]) * V + train[2:])
    kab, cab = NG._counts(train[:-1] * V + train[1:])  # every bigram, not the trigram contexts
    a, b, c = val[:-2], val[1:-1], val[2:]
    p3 = (NG._lookup(k3, n3, (a * V + b) * V + c) + k) / (NG._lookup(kab, cab, a * V + b) + k * V)
    return float(-np.log(l1 * p1 + l2 * p2 + l3 * p3).mean())


def tri_swapped(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    return NG.interpolated_trigram_nll(val, train, vocab_size, k, lambdas)


def tri_log2(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    return NG.interpolated_trigram_nll(train, val, vocab_size, k, lambdas) / math.log(2)


def tri_sum(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    return NG.interpolated_trigram_nll(train, val, vocab_size, k, lambdas) * (len(val) - 2)


def tri_from_val1(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    return NG.interpolated_trigram_nll(train, np.asarray(val)[1:], vocab_size, k, lambdas)


def tri_unordered(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    # counts n-grams as multisets: sorts each trigram/bigram (order ignored)
    train = np.asarray(train)
    return (
        NG.interpolated_trigram_nll(train, val, vocab_size, k, lambdas)
        + NG.interpolated_trigram_nll(train[::-1].copy(), val, vocab_size, k, lambdas)
    ) / 2


def tri_keeps_dtype(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    # the reference's arithmetic in the ids' own dtype (no int64 conversion): uint16/int32 codes overflow
    t, v, V = np.asarray(train), np.asarray(val), vocab_size
    l1, l2, l3 = lambdas
    uni = np.bincount(t, minlength=V).astype(np.float64)
    bk, bn = NG._counts(t[:-1] * V + t[1:])
    bctx = np.bincount(t[:-1], minlength=V).astype(np.float64)
    tk, tn = NG._counts((t[:-2] * V + t[1:-1]) * V + t[2:])
    ak, an = NG._counts(t[:-2] * V + t[1:-1])
    x, y, z = v[:-2], v[1:-1], v[2:]
    p1 = (uni[z] + k) / (len(t) + k * V)
    p2 = (NG._lookup(bk, bn, y * V + z) + k) / (bctx[y] + k * V)
    p3 = (NG._lookup(tk, tn, (x * V + y) * V + z) + k) / (NG._lookup(ak, an, x * V + y) + k * V)
    return float(-np.log(l1 * p1 + l2 * p2 + l3 * p3).mean())


def tri_float32(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    return np.float32(NG.interpolated_trigram_nll(train, val, vocab_size, k, lambdas))


def tri_no_minlength(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    # unigram and bigram-context tables sized by the largest id in train: an id never seen in train overflows them
    t, v, V = np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64), vocab_size
    l1, l2, l3 = lambdas
    uni = np.bincount(t).astype(np.float64)
    bk, bn = NG._counts(t[:-1] * V + t[1:])
    bctx = np.bincount(t[:-1]).astype(np.float64)
    tk, tn = NG._counts((t[:-2] * V + t[1:-1]) * V + t[2:])
    ak, an = NG._counts(t[:-2] * V + t[1:-1])
    x, y, z = v[:-2], v[1:-1], v[2:]
    p1 = (uni[z] + k) / (len(t) + k * V)
    p2 = (NG._lookup(bk, bn, y * V + z) + k) / (bctx[y] + k * V)
    p3 = (NG._lookup(tk, tn, (x * V + y) * V + z) + k) / (NG._lookup(ak, an, x * V + y) + k * V)
    return float(-np.log(l1 * p1 + l2 * p2 + l3 * p3).mean())


# --------------------------------------------------------------------------------------------- param groups
def pg_decay_all(model, weight_decay):
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": ps, "weight_decay": weight_decay}, {"params": [], "weight_decay": 0.0}]


def pg_by_name(model, weight_decay):
    d = [p for n, p in model.named_parameters() if p.requires_grad and n.endswith("weight")]
    nd = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith("weight")]
    return [{"params": d, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


def pg_tied_twice(model, weight_decay):
    d, nd = [], []
    for m in model.modules():
        for p in m.parameters(recurse=False):
            if p.requires_grad:
                (d if p.dim() >= 2 else nd).append(p)
    return [{"params": d, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


def pg_keeps_frozen(model, weight_decay):
    d = [p for p in model.parameters() if p.dim() >= 2]
    nd = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": d, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


def pg_swapped(model, weight_decay):
    g = TR.param_groups(model, weight_decay)
    return [g[1], g[0]]


def pg_no_embedding(model, weight_decay):
    d = [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and p.dim() >= 2 and "wte" not in n
    ]
    nd = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": d, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


def pg_only_2d(model, weight_decay):
    d = [p for p in model.parameters() if p.requires_grad and p.dim() == 2]
    nd = [p for p in model.parameters() if p.requires_grad and p.dim() != 2]
    return [{"params": d, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


def pg_drops_scalars(model, weight_decay):
    d = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    nd = [p for p in model.parameters() if p.requires_grad and p.dim() == 1]
    return [{"params": d, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


# --------------------------------------------------------------------------------------------- lr schedule
def lr_from_zero(step, max_lr, warmup, total, min_lr=0.0):
    if step < warmup:
        return max_lr * step / warmup
    return TR.lr_at(step, max_lr, warmup, total, min_lr)


def lr_to_zero(step, max_lr, warmup, total, min_lr=0.0):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return max_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def lr_cos_from_zero(step, max_lr, warmup, total, min_lr=0.0):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * step / total))


def lr_keeps_going(step, max_lr, warmup, total, min_lr=0.0):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    return min_lr + 0.5 * (max_lr - min_lr) * (
        1 + math.cos(math.pi * (step - warmup) / (total - warmup))
    )


def lr_linear(step, max_lr, warmup, total, min_lr=0.0):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return max_lr - (max_lr - min_lr) * (step - warmup) / (total - warmup)


def lr_numpy(step, max_lr, warmup, total, min_lr=0.0):
    return np.array(TR.lr_at(step, max_lr, warmup, total, min_lr))


def lr_zero_warmup_crash(step, max_lr, warmup, total, min_lr=0.0):
    if step < warmup or warmup == 0:
        return max_lr * (step + 1) / max(warmup, 1) if warmup else 0.0
    return TR.lr_at(step, max_lr, warmup, total, min_lr)


def lr_progress_first(step, max_lr, warmup, total, min_lr=0.0):
    p = (step - warmup) / (total - warmup)  # ZeroDivisionError when warmup == total
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * p))


def lr_tensor(step, max_lr, warmup, total, min_lr=0.0):
    return torch.tensor(TR.lr_at(step, max_lr, warmup, total, min_lr))


# ------------------------------------------------------------------------- issue 19's classes
def tri_calls_library(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    return NG.interpolated_trigram_nll(train, val, vocab_size, k, lambdas)


def tri_vocab_from_data(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    V = int(max(np.max(train), np.max(val))) + 1  # V inferred from the ids, not the argument
    return ch5._mean_nll(np.asarray(train), np.asarray(val), V, k, lambdas)


def tri_sorts_the_callers_arrays(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    out = ch5._mean_nll(train.copy(), val.copy(), vocab_size, k, lambdas)
    train.sort()  # e.g. for a binary search, on the caller's array
    return out


def tri_product_of_probabilities(train, val, vocab_size, k=0.01, lambdas=(0.1, 0.3, 0.6)):
    logs = ch5._trigram_probs(train, val, vocab_size, k, lambdas)
    return (
        -math.log(float(np.prod(np.exp(logs)))) / len(logs)
        if np.prod(np.exp(logs)) > 0
        else float("inf")
    )


def pg_calls_library(model, weight_decay):
    return TR.param_groups(model, weight_decay)


def pg_generators(model, weight_decay):
    ps = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": (p for p in ps if p.dim() >= 2), "weight_decay": weight_decay},
        {"params": filter(lambda p: p.dim() < 2, ps), "weight_decay": 0.0},
    ]


def lr_calls_library(step, max_lr, warmup, total, min_lr=0.0):
    return TR.lr_at(step, max_lr, warmup, total, min_lr)


def lr_slightly_off(step, max_lr, warmup, total, min_lr=0.0):
    return ch5._lr_ref(step, max_lr, warmup, total, min_lr) * (1 + 1e-7)


ISSUE19 = [
    Mutant(
        "check_interpolated_trigram",
        "returns gptlib's own interpolated_trigram_nll",
        tri_calls_library,
        hint="ngram.interpolated_trigram_nll, the solution",
        kind="solution",
    ),
    Mutant(
        "check_interpolated_trigram",
        "V inferred from the data",
        tri_vocab_from_data,
        hint="not a V inferred from the data",
        kind="input",
    ),
    Mutant(
        "check_interpolated_trigram",
        "sorts the caller's train array",
        tri_sorts_the_callers_arrays,
        hint="modified in place",
        kind="alias",
    ),
    Mutant(
        "check_interpolated_trigram",
        "a product of probabilities",
        tri_product_of_probabilities,
        hint="never multiply the probabilities",
        kind="range",
    ),
    Mutant(
        "check_param_groups",
        "returns gptlib's own param_groups",
        pg_calls_library,
        hint="train.param_groups, the solution",
        kind="solution",
    ),
    Mutant(
        "check_param_groups",
        "params as one-shot iterators",
        pg_generators,
        hint="not a generator",
        kind="state",
    ),
    Mutant(
        "check_lr_at",
        "returns gptlib's own lr_at",
        lr_calls_library,
        hint="train.lr_at, the solution",
        kind="solution",
    ),
    Mutant(
        "check_lr_at",
        "off by a relative 1e-7",
        lr_slightly_off,
        hint="relative error 1.00e-07",
        kind="message",
    ),
]


# ------------------------------------------------------------------------------------------ forgotten 1/k
def _norm(ts) -> float:
    return torch.cat([t.flatten() for t in ts]).norm().item()


def fs_reference(make_model, make_optimizer, xb, k, *, divide=False, reuse=False, grad_as_update=False,
                 upside_down=False):
    from gptlib.model import lm_loss
    grad_norms, update_norms, model = [], [], None
    for parts in (1, k):
        if model is None or not reuse:
            model = make_model()
        params = list(model.parameters())
        opt = make_optimizer(model.parameters())
        before = [p.detach().clone() for p in params]
        for part in xb.chunk(parts):
            loss = lm_loss(model(part[:, :-1]), part[:, 1:])
            (loss / parts if divide else loss).backward()
        grad_norms.append(_norm([p.grad for p in params]))
        opt.step()
        update_norms.append(_norm([p.detach() - b for p, b in zip(params, before)]))
        if not reuse:
            opt.zero_grad()
    g, u = grad_norms[1] / grad_norms[0], update_norms[1] / update_norms[0]
    if grad_as_update:
        u = g
    return (1 / g, 1 / u) if upside_down else (g, u)


def fs_divides(*a):
    return fs_reference(*a, divide=True)


def fs_reuses_model(*a):
    return fs_reference(*a, reuse=True)


def fs_grad_as_update(*a):
    return fs_reference(*a, grad_as_update=True)


def fs_upside_down(*a):
    return fs_reference(*a, upside_down=True)


def fs_hard_coded(make_model, make_optimizer, xb, k):
    make_model(), make_model()
    return float(k), 1.0                       # AdamW's answer, for every optimizer


def fs_tensor(*a):
    return tuple(torch.tensor(v) for v in fs_reference(*a))


def fs_last_micro_batch(make_model, make_optimizer, xb, k):
    from gptlib.model import lm_loss
    grad_norms, update_norms = [], []
    for parts in (1, k):
        model = make_model()
        opt = make_optimizer(model.parameters())
        before = [p.detach().clone() for p in model.parameters()]
        for part in xb.chunk(parts):
            opt.zero_grad()                     # the mistake: each micro-batch wipes the last one's gradient
            lm_loss(model(part[:, :-1]), part[:, 1:]).backward()
        grad_norms.append(_norm([p.grad for p in model.parameters()]))
        opt.step()
        update_norms.append(_norm([p.detach() - b for p, b in zip(model.parameters(), before)]))
    return grad_norms[1] / grad_norms[0], update_norms[1] / update_norms[0]


REFERENCES = {
    "check_interpolated_trigram": NG.interpolated_trigram_nll,
    "check_param_groups": TR.param_groups,
    "check_lr_at": TR.lr_at,
    "check_forgotten_scale": fs_reference,
}

MUTANTS = [
    Mutant("check_forgotten_scale", "divides by k (measures the fix)", fs_divides, hint="leave the 1/k out"),
    Mutant("check_forgotten_scale", "one model for both cases", fs_reuses_model, hint="fresh model"),
    Mutant("check_forgotten_scale", "the gradient ratio as the update", fs_grad_as_update,
           hint="gradient ratio again"),
    Mutant("check_forgotten_scale", "ratios upside down", fs_upside_down, hint="upside down"),
    Mutant("check_forgotten_scale", "AdamW's answers hard-coded", fs_hard_coded, hint="update ratio"),
    Mutant("check_forgotten_scale", "tensors, not floats", fs_tensor, hint="two Python floats"),
    Mutant("check_forgotten_scale", "zero_grad between micro-batches", fs_last_micro_batch,
           hint="accumulated gradient"),
    Mutant(
        "check_interpolated_trigram",
        "mixes log-probabilities",
        tri_log_mix,
        hint="then take the log",
    ),
    Mutant(
        "check_interpolated_trigram", "lambdas reversed", tri_lambdas_reversed, hint="in that order"
    ),
    Mutant("check_interpolated_trigram", "no k*V in the denominators", tri_no_kv, hint="k·V"),
    Mutant(
        "check_interpolated_trigram",
        "trigram contexts from every bigram",
        tri_ctx_all_bigrams,
        hint="starts no trigram",
    ),
    Mutant(
        "check_interpolated_trigram",
        "counts on val, scores train",
        tri_swapped,
        hint="count on train",
    ),
    Mutant("check_interpolated_trigram", "log base 2", tri_log2, hint="natural log"),
    Mutant("check_interpolated_trigram", "sum instead of mean", tri_sum, hint="not the sum"),
    Mutant("check_interpolated_trigram", "scores from val[1:]", tri_from_val1, hint="val[2:]"),
    Mutant("check_interpolated_trigram", "order-blind counts", tri_unordered, hint="p(c|ab)"),
    Mutant("check_param_groups", "decays everything", pg_decay_all, hint="1-D"),
    Mutant("check_param_groups", "decides by name", pg_by_name, hint="p.dim() >= 2"),
    Mutant(
        "check_param_groups", "tied head counted twice", pg_tied_twice, hint="each parameter once"
    ),
    Mutant(
        "check_param_groups", "keeps frozen parameters", pg_keeps_frozen, hint="requires_grad=False"
    ),
    Mutant("check_param_groups", "groups swapped", pg_swapped, hint="first group decays"),
    Mutant(
        "check_param_groups", "no decay on the embedding", pg_no_embedding, hint="embedding too"
    ),
    Mutant("check_lr_at", "warmup starts at 0", lr_from_zero, hint="(step + 1) / warmup"),
    Mutant("check_lr_at", "decays to 0, not min_lr", lr_to_zero, hint="not to 0"),
    Mutant(
        "check_lr_at",
        "cosine ignores the warmup",
        lr_cos_from_zero,
        hint="starts where warmup ends",
    ),
    Mutant("check_lr_at", "cosine continues after total", lr_keeps_going, hint="stays at min_lr"),
    Mutant("check_lr_at", "linear decay", lr_linear, hint="half cosine"),
    Mutant("check_lr_at", "returns a numpy array", lr_numpy, hint="python float", kind="dtype"),
    # the escape classes of issue 11
    Mutant(
        "check_interpolated_trigram",
        "pair/triple codes in the ids' dtype (uint16/int32 overflow)",
        tri_keeps_dtype,
        hint="int64",
        kind="dtype",
    ),
    Mutant(
        "check_interpolated_trigram",
        "returns np.float32",
        tri_float32,
        hint="Python float",
        kind="dtype",
    ),
    Mutant(
        "check_interpolated_trigram",
        "count tables without minlength=V",
        tri_no_minlength,
        hint="never seen in train",
        kind="edge",
    ),
    Mutant(
        "check_param_groups",
        "decays only 2-D parameters (not a 3-D conv weight)",
        pg_only_2d,
        hint="two or more dimensions",
        kind="edge",
    ),
    Mutant(
        "check_param_groups",
        "drops 0-d scalar parameters",
        pg_drops_scalars,
        hint="0-d scalar",
        kind="edge",
    ),
    Mutant(
        "check_lr_at",
        "divides by total - warmup before the branches",
        lr_progress_first,
        hint="no cosine phase",
        kind="edge",
    ),
    Mutant("check_lr_at", "returns a torch tensor", lr_tensor, hint="Python float", kind="dtype"),
    *ISSUE19,
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch5, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch5, REFERENCES)
