"""Checks for Chapter 7's exercises (generation): top-p filtering, the KV cache update, a beam search step.

Each check compares the learner's code with gptlib's references (gptlib.sampling, gptlib.kvcache,
gptlib.generate) on inputs chosen so the usual mistakes show: several rows with different distributions, a
token that crosses the top-p threshold, ties, top_p = 1.0, a min_tokens_to_keep larger than the nucleus,
scores large enough to overflow exp, caches fed 1 and several positions at a time, a cache that overflows,
beams whose running scores reorder the candidates, more candidates than beams, -inf log-probabilities and sums
too small for exp. Random cases use the run's seed (printed in a failure); every check also runs on another
device (CUDA, else "meta") and in a low-precision dtype, and fails when the learner's code calls gptlib's own
solution instead of computing it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from gptlib.checks import CheckFailed, Checker, checker, no_solution
from gptlib.generate import beam_candidates
from gptlib.kvcache import LayerKVCache
from gptlib.sampling import top_p_filter

__all__ = ["check_top_p_filter", "check_kv_cache_update", "check_beam_candidates"]

NEG = float("-inf")


def _no_reference(c: Checker, learner: Any, reference: Callable, what: str, also=()):
    """Fail when the learner's code calls `reference` (gptlib's solution) while it runs."""
    return no_solution(
        c,
        learner,
        reference,
        f"your code calls {what}, the solution of this exercise: write it "
        "yourself (with torch operations)",
        also=also,
    )


_TRANSFORMERS_TOP_P = (("transformers.generation.logits_process", "TopPLogitsWarper."),)


# ----------------------------------------------------------------------------------------------- top-p
def _top_p_mistakes(scores: torch.Tensor, p: float, keep: int) -> dict[str, Any]:
    def back(remove_sorted, order):
        return scores.masked_fill(remove_sorted.scatter(1, order, remove_sorted), NEG)

    def excl():  # drops the token that crosses p
        sp, order = scores.softmax(-1).sort(-1, descending=True)
        r = sp.cumsum(-1) > p
        r[..., :keep] = False
        return back(r, order)

    def no_min():
        return top_p_filter(scores, p, 1)

    def raw():
        ss, order = scores.sort(-1, descending=True)
        r = ss.cumsum(-1) - ss >= p
        r[..., :keep] = False
        return back(r, order)

    def descending():  # same rule, ties broken the other way
        sp, order = scores.softmax(-1).sort(-1, descending=True)
        r = sp.cumsum(-1) - sp >= p
        r[..., :keep] = False
        return back(r, order)

    def overflow():  # exp without subtracting the max: inf / inf
        e = scores.exp()
        sp, order = (e / e.sum(-1, keepdim=True)).sort(-1)
        r = sp.cumsum(-1) <= 1 - p
        r[..., -keep:] = False
        return back(r, order)

    return {  # the first matching mistake names the error: `descending` equals the reference except on ties
        "ties: sort each row in ascending order with torch.sort and remove the entries whose "
        "cumulative probability "
        "is <= 1 - top_p (sorting in descending order keeps other tokens among equal scores than "
        "transformers)": descending,
        "the token whose probability crosses top_p must be kept: keep tokens until the kept mass "
        "reaches top_p "
        "(remove a token only if the mass of the tokens before it already reaches top_p)": excl,
        "min_tokens_to_keep: the min_tokens_to_keep most likely tokens always stay": no_min,
        "accumulate probabilities (softmax of the scores), not the raw scores": raw,
        "filtered tokens must get -inf (not 0), so that softmax gives them probability 0": lambda: (
            torch.where(
                torch.isneginf(top_p_filter(scores, p, keep)), torch.zeros_like(scores), scores
            )
        ),
        "large scores: exp() overflows to inf (inf / inf = NaN); compute the probabilities with "
        "softmax, which "
        "subtracts the row's maximum first": overflow,
    }


def _low_precision(scores: torch.Tensor, p: float) -> torch.Tensor:
    """What top-p keeps when the probabilities are computed in float16."""
    ss, order = torch.sort(scores)
    r = ss.half().softmax(-1).cumsum(-1).float() <= 1 - p
    r[..., -1:] = False
    return scores.masked_fill(r.scatter(1, order, r), NEG)


def check_top_p_filter(top_p_filter_fn: Callable) -> None:
    """top_p_filter(scores (B, V), top_p, min_tokens_to_keep=1) -> (B, V) equals transformers' TopPLogitsWarper."""
    with (
        checker("top_p_filter", top_p_filter_fn, device_from="scores") as c,
        _no_reference(
            c,
            top_p_filter_fn,
            top_p_filter,
            "gptlib.sampling's top_p_filter or transformers' TopPLogitsWarper",
            also=_TRANSFORMERS_TOP_P,
        ),
    ):

        def run(case: str, scores: torch.Tensor, p: float, keep: int, hint: str,
                first: Any = None) -> None:
            got = c.call(
                case,
                top_p_filter_fn,
                scores,
                p,
                keep,
                inplace="scores were modified in place: return a new tensor (masked_fill, not "
                    "masked_fill_)",
            )
            c.expect(
                not (
                    isinstance(got, torch.Tensor)
                    and got.numel()
                    and got.untyped_storage().data_ptr() == scores.untyped_storage().data_ptr()
                ),
                case,
                "the result is the scores tensor itself (or a view of it): return a new "
                "tensor (masked_fill, torch.where), also when nothing is filtered, so that "
                "the caller's scores stay theirs",
            )
            c.close(
                got,
                top_p_filter(scores, p, keep),
                case,
                hint,
                atol=0,
                rtol=0,
                mistakes=lambda: {**(first or {}), **_top_p_mistakes(scores, p, keep)},
            )

        # one row by hand: probabilities 0.5, 0.3, 0.15, 0.05 (shuffled), top_p 0.75 keeps 0.5 and 0.3
        probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
        run(
            "probabilities [.15 .5 .05 .3], top_p=0.75",
            probs.log(),
            0.75,
            1,
            "keep 0.5 and 0.3 (their mass 0.8 reaches 0.75), set the others to -inf",
        )
        run(
            "probabilities [.15 .5 .05 .3] in bfloat16, top_p=0.75",
            probs.log().bfloat16(),
            0.75,
            1,
            "keep 0.5 and 0.3, in the scores' dtype",
        )
        run(
            "probabilities [.5 .3 .2] as scores log(p) + 1000 (large, yet a spread-out softmax), "
            "top_p=0.81",
            torch.tensor([[0.5, 0.3, 0.2]]).log() + 1000,
            0.81,
            1,
            "keep all three (0.5 + 0.3 = 0.8 < 0.81); compute the probabilities with softmax in "
            "the scores' dtype",
            first={"the probabilities were computed in float16 or bfloat16: scores near 1000 are "
                   "rounded there (to steps of 0.5 in float16) and the probabilities change; "
                   "compute softmax in the scores' own dtype (float32)": lambda: _low_precision(
                       torch.tensor([[0.5, 0.3, 0.2]]).log() + 1000, 0.81)},
        )
        run(
            "four equal scores (ties), top_p=0.5",
            torch.zeros(1, 4),
            0.5,
            1,
            "with ties, keep the tokens transformers keeps: sort ascending with torch.sort, remove "
            "cumulative probability <= 1 - top_p",
        )
        g = c.gen()
        cases = [
            (0.9, 1, 1.0, 0.0),
            (0.5, 1, 3.0, 0.0),
            (0.3, 4, 2.0, 0.0),
            (1.0, 1, 1.0, 0.0),
            (0.05, 2, 0.5, 0.0),
            (0.99, 1, 4.0, 0.0),
            (0.9, 1, 1000.0, 0.0),
            (0.8, 1, 1.0, 1000.0),
            (0.9, 50, 1.0, 0.0),
        ]
        for p, keep, spread, shift in cases:
            scores = (
                spread * torch.randn(5, 41, generator=g) + shift
            )  # 5 rows with different distributions
            what = (
                f" + {shift:g} (large scores, yet a spread-out softmax)"
                if shift
                else ", min_tokens_to_keep > vocabulary size: keep everything"
                if keep > 41
                else ""
            )
            run(
                f"random scores (5, 41) x {spread:g}{what}, top_p={p}, min_tokens_to_keep={keep} "
                f"(seed {c.seed})",
                scores,
                p,
                keep,
                "sort each row by probability, accumulate, and remove the tail whose mass is at "
                "most 1 - top_p; each row separately",
            )
        scores = torch.randn(3, 17, generator=g)
        scores[0, :8] = NEG  # already filtered (e.g. by top-k)
        run(
            f"scores with -inf entries (3, 17), top_p=0.8 (seed {c.seed})",
            scores,
            0.8,
            1,
            "entries already at -inf have probability 0 and stay -inf",
        )
        one = torch.randn(1, 6, generator=g)
        run(
            f"a tiny top_p=1e-6 (seed {c.seed})",
            one,
            1e-6,
            1,
            "at least the most likely token stays",
        )
        x = c.to_device(torch.randn(4, 23, generator=g))
        case = f"scores on {c.device}, top_p=0.7, min_tokens_to_keep=2"
        got = c.device_run(case, top_p_filter_fn, x, 0.7, 2)
        if got is not None:
            c.like(
                got, top_p_filter(x, 0.7, 2), case, "return the filtered scores on scores.device"
            )


# ----------------------------------------------------------------------------------------------- KV cache
def _kv_update(
    c: Checker, case: str, cache: Any, k: torch.Tensor, v: torch.Tensor, run=None
) -> Any:
    try:
        return (run or c.call)(case, cache.update, k, v)
    except (RuntimeError, NotImplementedError) as e:
        if "copy out of meta" in str(e):
            raise CheckFailed(
                f"{c.name}: {case} — your code writes k (on {k.device}) into a tensor on the CPU: "
                "keep "
                "the buffers self.k, self.v where __init__ put them (any new tensor goes on "
                "device=k.device)"
            ) from e
        raise


def check_kv_cache_update(cls: type) -> None:
    """cls(batch_size, n_head, head_dim, max_len, *, dtype, device) with .update(k, v) -> (all keys, all values)
    and .length."""
    ref_update = LayerKVCache.update
    with (
        checker("LayerKVCache.update", cls, device_from="k") as c,
        _no_reference(
            c, getattr(cls, "update", None), ref_update, "gptlib.kvcache's LayerKVCache.update"
        ),
    ):
        g = c.gen()
        B, nh, hs, L = 2, 3, 4, 9
        cache = c.call("LayerKVCache(2, 3, 4, 9)", cls, B, nh, hs, L)
        c.expect(
            getattr(cache, "length", None) == 0,
            "a new cache",
            "a new cache holds length = 0 positions",
        )
        ks, vs = [], []
        for T in (4, 1, 1, 3):  # a prompt, then tokens, then a chunk
            k, v = torch.randn(B, nh, T, hs, generator=g), torch.randn(B, nh, T, hs, generator=g)
            ks.append(k)
            vs.append(v)
            n = sum(t.size(2) for t in ks)
            case = f"after updates of {[t.size(2) for t in ks]} positions (seed {c.seed})"
            out = _kv_update(c, case, cache, k, v)
            c.expect(
                isinstance(out, tuple) and len(out) == 2,
                case,
                "update must return a pair (keys, values)",
            )
            k_all, v_all = out
            want_k, want_v = torch.cat(ks, dim=2), torch.cat(vs, dim=2)
            if isinstance(k_all, torch.Tensor) and k_all.shape != want_k.shape:
                hint = (
                    "return only the filled positions [:length], not the whole buffer"
                    if k_all.size(2) == L
                    else "return the past keys too: everything cached so far, then the new ones"
                    if k_all.size(2) == T
                    else "the positions are dim 2 of (B, n_head, T, head_dim)"
                )
                c.expect(
                    False,
                    case,
                    f"keys of shape {tuple(k_all.shape)}, expected {tuple(want_k.shape)}: {hint}",
                )
            c.close(
                k_all,
                want_k,
                case + ": keys",
                "keys come back in order: the past ones, then the new ones (did you overwrite the "
                "past, or "
                "forget to advance length?)",
                atol=0,
                rtol=0,
            )
            c.close(
                v_all,
                want_v,
                case + ": values",
                "the values must be the values you were given (v), stored like the keys",
                atol=0,
                rtol=0,
            )
            c.expect(
                cache.length == n,
                case,
                f"length must count the cached positions: {n}, got {cache.length}",
            )
            bk, bv = getattr(cache, "k", None), getattr(cache, "v", None)
            c.expect(
                isinstance(bk, torch.Tensor)
                and isinstance(bv, torch.Tensor)
                and tuple(bk.shape) == (B, nh, L, hs)
                and tuple(bv.shape) == (B, nh, L, hs),
                case + ": the buffers self.k, self.v",
                f"keep self.k and self.v as __init__ allocates them, "
                f"({B}, {nh}, max_len={L}, {hs}) each, and write into them (no torch.cat onto "
                f"a growing tensor: the model reads max_len from self.k.size(2))",
            )
        # the buffers the rest of the library reads (KVCache.max_len is self.k.size(2)):
        # allocated once, filled
        want_k = torch.cat(ks, dim=2)
        bk = getattr(cache, "k", None)
        c.close(
            bk[:, :, :L] if isinstance(bk, torch.Tensor) else bk,
            want_k,
            "the buffer self.k after the updates",
            "self.k[:, :, :length] must hold the "
            "cached keys in order (write each update at positions length .. length + T_new)",
            atol=0,
            rtol=0,
        )
        for start, extra in ((L, 2), (L - 2, 0)):
            if start == L - 2:  # a partly filled cache that overflows
                cache = c.call(f"LayerKVCache({B}, {nh}, {hs}, {L})", cls, B, nh, hs, L)
                _kv_update(
                    c,
                    f"{start} positions into a new cache of max_len={L}",
                    cache,
                    torch.randn(B, nh, start, hs, generator=g),
                    torch.randn(B, nh, start, hs, generator=g),
                )
                extra = 5
            case = f"{start} of max_len={L} positions cached, {extra} more (they do not fit)"
            before = (
                (cache.k.clone(), cache.v.clone())
                if isinstance(getattr(cache, "k", None), torch.Tensor)
                and isinstance(getattr(cache, "v", None), torch.Tensor)
                else None
            )
            c.case = case
            try:
                cache.update(torch.zeros(B, nh, extra, hs), torch.zeros(B, nh, extra, hs))
                ok, why = False, "no error"
            except ValueError:
                ok, why = True, ""
            except Exception as e:  # noqa: BLE001 - any other error: the learner did not check the size first
                ok, why = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            c.expect(
                ok,
                case,
                "raise a ValueError naming the limit when length + T_new > max_len, checked before "
                f"writing (also when the cache is only partly filled; got {why})",
            )
            c.expect(
                cache.length == start,
                case,
                "the failed update must change nothing: check before writing "
                f"(length should stay {start}, got {cache.length})",
            )
            c.expect(
                before is None
                or (torch.equal(before[0], cache.k) and torch.equal(before[1], cache.v)),
                case,
                "the failed update wrote into the buffers: check that the positions fit before "
                "writing",
            )
        # a float16 cache keeps float16; a cache on another device keeps its device
        for dtype, dev in ((torch.float16, "cpu"), (torch.float32, c.device)):
            case = (f"a {str(dtype).removeprefix('torch.')} cache on {dev}, updates of 3 then 2 "
                "positions")
            run = c.call if dev == "cpu" and dtype == torch.float16 else c.device_run
            cache = run(case, cls, 1, 2, 4, 6, dtype=dtype, device=dev)
            ref = LayerKVCache(1, 2, 4, 6, dtype=dtype, device=dev)
            for T in (3, 2):
                k = torch.randn(1, 2, T, 4, generator=g).to(dtype=dtype, device=dev)
                v = torch.randn(1, 2, T, 4, generator=g).to(dtype=dtype, device=dev)
                out = _kv_update(c, case, cache, k, v, run)
                c.expect(
                    isinstance(out, tuple) and len(out) == 2,
                    case,
                    "update must return a pair (keys, values)",
                )
                for got, want in zip(out, ref.update(k, v)):
                    c.close(
                        got,
                        want,
                        case,
                        "return the filled part of the buffers (same dtype and device as k)",
                        atol=0,
                        rtol=0,
                    )


# ----------------------------------------------------------------------------------------------- beam step
def _beam_mistakes(beam_scores: torch.Tensor, lp: torch.Tensor, k: int) -> dict[str, Any]:
    B, nb, V = lp.shape
    total = (lp + beam_scores[:, :, None]).reshape(B, -1)
    return {
        "add each beam's running score to its log-probabilities before choosing": lambda: (
            torch.topk(lp.reshape(B, -1), k)[0]
        ),
        "return the candidates best first (the largest sums: torch.topk's default)": lambda: (
            torch.topk(total, k, largest=False)[0]
        ),
        "sums of log-probabilities that small underflow as probabilities (exp(-150) is 0 in "
        "float32): add the "
        "log-probabilities, never multiply probabilities": lambda: torch.topk(
            (lp.exp() * beam_scores.exp()[:, :, None]).log().reshape(B, -1), k
        )[0],
    }


def check_beam_candidates(fn: Callable) -> None:
    """beam_candidates(beam_scores (B, nb), log_probs (B, nb, V), k) -> (scores, beams, tokens), each (B, k)."""
    with (
        checker("beam_candidates", fn, device_from="log_probs") as c,
        _no_reference(c, fn, beam_candidates, "gptlib.generate's beam_candidates"),
    ):

        def run(case: str, beam_scores: torch.Tensor, lp: torch.Tensor, k: int, hint: str) -> None:
            got = c.call(case, fn, beam_scores, lp, k, inplace="the inputs were modified in place")
            c.expect(
                isinstance(got, tuple) and len(got) == 3,
                case,
                "return a tuple (scores, beams, tokens)",
            )
            ws, wb, wt = beam_candidates(beam_scores, lp, k)
            c.close(
                got[0],
                ws,
                case + ": scores",
                hint,
                mistakes=lambda: _beam_mistakes(beam_scores, lp, k),
            )
            idx = (
                "the flat index i of a (beam, token) pair in (nb * V) gives beam = i // V and "
                "token = i % V "
                "(int64 indices, as torch.topk returns them)"
            )
            B, nb, V = lp.shape
            tie = (
                "ties (equal sums, -inf included): use torch.topk on the flattened (B, nb * V) "
                "sums; its order "
                "on ties is the one transformers uses (a sort orders them differently)"
            )

            def by_sort():
                flat = (
                    (lp + beam_scores[:, :, None])
                    .reshape(B, -1)
                    .sort(dim=-1, descending=True, stable=True)[1][:, :k]
                )
                return flat // V, flat % V

            c.close(
                got[1],
                wb,
                case + ": beams",
                idx,
                atol=0,
                rtol=0,
                mistakes=lambda: {tie: by_sort()[0]},
            )
            c.close(
                got[2],
                wt,
                case + ": tokens",
                idx,
                atol=0,
                rtol=0,
                mistakes=lambda: {tie: by_sort()[1]},
            )

        # by hand: beam 1 is behind (-2.0) but its best token (-0.1) still beats beam 0's second best
        lp = torch.log_softmax(
            torch.tensor([[[3.0, 1.0, 0.0, -1.0], [0.0, 5.0, 0.0, 0.0]]]), dim=-1
        )
        run(
            "2 beams, V=4, k=3",
            torch.tensor([[-0.5, -2.0]]),
            lp,
            3,
            "take the top k over ALL (beam, token) pairs of a row together, not per beam",
        )
        g = c.gen()
        for B, nb, V, k in ((3, 4, 11, 8), (2, 2, 7, 4), (1, 3, 5, 3)):
            beam_scores = -3 * torch.rand(B, nb, generator=g)
            lp = torch.log_softmax(2 * torch.randn(B, nb, V, generator=g), dim=-1)
            run(
                f"B={B}, {nb} beams, V={V}, k={k} (seed {c.seed})",
                beam_scores,
                lp,
                k,
                "the k best sums beam_score + log_prob of each row, best first",
            )
        lp = torch.log_softmax(torch.randn(2, 3, 6, generator=g), dim=-1)
        lp[:, :, :2] = NEG  # tokens banned (e.g. filtered) in every beam
        beam_scores = torch.tensor(
            [[-1.0, NEG, NEG], [-0.5, -0.7, NEG]]
        )  # beams not started yet (-inf)
        run(
            f"-inf log-probs and -inf beam scores, 3 beams, V=6, k=6 (seed {c.seed})",
            beam_scores,
            lp,
            6,
            "-inf log-probabilities and beam scores are valid inputs: the sums are -inf and rank "
            "last",
        )
        run(
            f"long sequences: beam scores near -150, 2 beams, V=5, k=4 (seed {c.seed})",
            -150 - torch.rand(1, 2, generator=g),
            torch.log_softmax(9 * torch.randn(1, 2, 5, generator=g), -1),
            4,
            "add the log-probabilities to the running scores",
        )
        run(
            "ties: every log-prob equal, 2 beams, V=6, k=5",
            torch.zeros(1, 2),
            torch.full((1, 2, 6), -6.0).log_softmax(-1),
            5,
            "with ties, torch.topk's order is the one transformers uses",
        )
        bs, lp = (
            torch.rand(2, 3, generator=g).neg().bfloat16(),
            torch.randn(2, 3, 7, generator=g).log_softmax(-1).bfloat16(),
        )
        run("bfloat16 inputs, 3 beams, V=7, k=4", bs, lp, 4, "the scores keep the inputs' dtype")
        bs, lp = (
            c.to_device(-torch.rand(2, 3, generator=g)),
            c.to_device(torch.randn(2, 3, 7, generator=g).log_softmax(-1)),
        )
        case = f"inputs on {c.device}, 3 beams, V=7, k=5"
        got = c.device_run(case, fn, bs, lp, 5)
        if got is not None:
            c.expect(
                isinstance(got, tuple) and len(got) == 3,
                case,
                "return a tuple (scores, beams, tokens)",
            )
            for gt, want, what in zip(
                got, beam_candidates(bs, lp, 5), ("scores", "beams", "tokens")
            ):
                c.like(gt, want, f"{case}: {what}", "keep the inputs' device")
