"""Checks for Chapter 7's exercises (generation): top-p filtering, the KV cache update, a beam search step.

Each check compares the learner's code with gptlib.generate's reference on inputs chosen so the usual
mistakes show: several rows with different distributions, a token that crosses the top-p threshold, a
min_tokens_to_keep larger than the nucleus, caches fed 1 and several positions at a time, a cache that
overflows, beams whose running scores reorder the candidates.
"""
from __future__ import annotations

from typing import Callable

import torch

from gptlib.checks import checker, close, unchanged
from gptlib.generate import LayerKVCache, beam_candidates, top_p_filter

__all__ = ["check_top_p_filter", "check_kv_cache_update", "check_beam_candidates"]

NEG = float("-inf")


def _same_filter(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Same kept set with the same values, -inf elsewhere."""
    return (isinstance(got, torch.Tensor) and got.shape == want.shape
            and torch.equal(torch.isneginf(got), torch.isneginf(want))
            and torch.equal(got[~torch.isneginf(want)], want[~torch.isneginf(want)]))


# ----------------------------------------------------------------------------------------------- top-p
def _top_p_mistakes(scores: torch.Tensor, p: float, keep: int) -> dict[str, torch.Tensor]:
    probs = scores.softmax(-1)
    sp, order = probs.sort(-1, descending=True)
    cum = sp.cumsum(-1)

    def back(remove_sorted):
        return scores.masked_fill(remove_sorted.scatter(1, order, remove_sorted), NEG)

    excl = cum > p                                                    # drops the token that crosses p
    excl[..., :keep] = False
    no_min = cum - sp >= p
    no_min[..., :1] = False
    raw = scores.sort(-1, descending=True)[0].cumsum(-1)
    raw_remove = raw - scores.sort(-1, descending=True)[0] >= p
    raw_remove[..., :keep] = False
    return {
        "the token whose probability crosses top_p must be kept: keep tokens until the kept mass reaches top_p "
        "(remove a token only if the mass of the tokens before it already reaches top_p)": back(excl),
        "min_tokens_to_keep: the min_tokens_to_keep most likely tokens always stay": back(no_min),
        "accumulate probabilities (softmax of the scores), not the raw scores": back(raw_remove),
        "filtered tokens must get -inf (not 0), so that softmax gives them probability 0":
            torch.where(torch.isneginf(top_p_filter(scores, p, keep)), torch.zeros_like(scores), scores),
    }


def check_top_p_filter(top_p_filter_fn: Callable) -> None:
    """top_p_filter(scores (B, V), top_p, min_tokens_to_keep=1) -> (B, V) equals transformers' TopPLogitsWarper."""
    with checker("top_p_filter") as c:
        # one row by hand: probabilities 0.5, 0.3, 0.15, 0.05 (shuffled), top_p 0.75 keeps 0.5 and 0.3
        probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
        got = top_p_filter_fn(probs.log(), 0.75)
        want = probs.log().masked_fill(torch.tensor([[True, False, True, False]]), NEG)
        c.expect(isinstance(got, torch.Tensor) and got.shape == want.shape, "probabilities [.15 .5 .05 .3], top_p=0.75",
                 f"return the filtered scores with the input's shape {tuple(want.shape)}")
        hint = next((h for h, t in _top_p_mistakes(probs.log(), 0.75, 1).items() if _same_filter(got, t)),
                    "keep 0.5 and 0.3 (their mass 0.8 reaches 0.75), set the others to -inf")
        c.expect(_same_filter(got, want), "probabilities [.15 .5 .05 .3], top_p=0.75", hint)
        g = torch.Generator().manual_seed(7)
        cases = [(0.9, 1, 1.0), (0.5, 1, 3.0), (0.3, 4, 2.0), (1.0, 1, 1.0), (0.05, 2, 0.5), (0.99, 1, 4.0)]
        for p, keep, spread in cases:
            scores = spread * torch.randn(5, 41, generator=g)          # 5 rows with different distributions
            case = f"random scores (5, 41), top_p={p}, min_tokens_to_keep={keep}"
            got, same = unchanged(top_p_filter_fn, scores, p, keep)
            c.expect(same, case, "scores were modified in place: return a new tensor (masked_fill, not masked_fill_)")
            want = top_p_filter(scores, p, keep)
            hint = next((h for h, t in _top_p_mistakes(scores, p, keep).items() if _same_filter(got, t)),
                        "sort each row by probability, accumulate, and remove the tail whose mass is at most 1 - top_p")
            c.expect(_same_filter(got, want), case, hint)
        one = torch.randn(1, 6, generator=g)
        c.expect(_same_filter(top_p_filter_fn(one, 1e-6, 1), top_p_filter(one, 1e-6, 1)),
                 "a tiny top_p", "at least the most likely token stays")


# ----------------------------------------------------------------------------------------------- KV cache
def check_kv_cache_update(cls: type) -> None:
    """cls(batch_size, n_head, head_dim, max_len) with .update(k, v) -> (all keys, all values) and .length."""
    with checker("LayerKVCache.update") as c:
        g = torch.Generator().manual_seed(3)
        B, nh, hs, L = 2, 3, 4, 9
        cache = cls(B, nh, hs, L)
        c.expect(getattr(cache, "length", None) == 0, "a new cache", "a new cache holds length = 0 positions")
        ks, vs = [], []
        for T in (4, 1, 1, 3):                                        # a prompt, then tokens, then a chunk
            k, v = torch.randn(B, nh, T, hs, generator=g), torch.randn(B, nh, T, hs, generator=g)
            ks.append(k)
            vs.append(v)
            n = sum(t.size(2) for t in ks)
            case = f"after updates of {[t.size(2) for t in ks]} positions"
            out = cache.update(k, v)
            c.expect(isinstance(out, tuple) and len(out) == 2, case, "update must return a pair (keys, values)")
            k_all, v_all = out
            want_k, want_v = torch.cat(ks, dim=2), torch.cat(vs, dim=2)
            if isinstance(k_all, torch.Tensor) and k_all.shape != want_k.shape:
                hint = ("return only the filled positions [:length], not the whole buffer" if k_all.size(2) == L else
                        "return the past keys too: everything cached so far, then the new ones"
                        if k_all.size(2) == T else "the positions are dim 2 of (B, n_head, T, head_dim)")
                c.expect(False, case, f"keys of shape {tuple(k_all.shape)}, expected {tuple(want_k.shape)}: {hint}")
            c.close(k_all, want_k, case + ": keys",
                    "keys come back in order: the past ones, then the new ones (did you overwrite the past, or "
                    "forget to advance length?)", atol=0)
            c.close(v_all, want_v, case + ": values",
                    "the values must be the values you were given (v), stored like the keys", atol=0)
            c.expect(cache.length == n, case, f"length must count the cached positions: {n}, got {cache.length}")
        try:
            cache.update(torch.zeros(B, nh, 2, hs), torch.zeros(B, nh, 2, hs))
            ok, why = False, "no error"
        except ValueError:
            ok, why = True, ""
        except Exception as e:  # noqa: BLE001 - any other error is the wrong one
            ok, why = False, f"{type(e).__name__}"
        c.expect(ok, f"{L - 1} positions cached, 2 more into max_len={L}",
                 f"raise a ValueError naming the limit when the positions do not fit (got {why})")


# ----------------------------------------------------------------------------------------------- beam step
def check_beam_candidates(fn: Callable) -> None:
    """beam_candidates(beam_scores (B, nb), log_probs (B, nb, V), k) -> (scores, beams, tokens), each (B, k)."""
    with checker("beam_candidates") as c:
        # by hand: beam 1 is behind (-2.0) but its best token (-0.1) still beats beam 0's second best
        beam_scores = torch.tensor([[-0.5, -2.0]])
        lp = torch.log_softmax(torch.tensor([[[3.0, 1.0, 0.0, -1.0], [0.0, 5.0, 0.0, 0.0]]]), dim=-1)
        got = fn(beam_scores, lp, 3)
        c.expect(isinstance(got, tuple) and len(got) == 3, "2 beams, V=4, k=3",
                 "return a tuple (scores, beams, tokens)")
        want = beam_candidates(beam_scores, lp, 3)
        total = (lp + beam_scores[:, :, None]).reshape(1, -1)
        mistakes = {"add each beam's running score to its log-probabilities before choosing":
                        torch.topk(lp.reshape(1, -1), 3)[0],
                    "return the candidates best first (the largest sums: torch.topk's default)":
                        torch.topk(total, 3, largest=False)[0]}
        hint = next((h for h, t in mistakes.items() if isinstance(got[0], torch.Tensor) and close(got[0], t)),
                    "take the top k over ALL (beam, token) pairs of a row together, not per beam")
        c.close(got[0], want[0], "2 beams, V=4, k=3: scores", hint)
        g = torch.Generator().manual_seed(5)
        for B, nb, V, k in ((3, 4, 11, 8), (2, 2, 7, 4), (1, 3, 5, 3)):
            beam_scores = -3 * torch.rand(B, nb, generator=g)
            lp = torch.log_softmax(2 * torch.randn(B, nb, V, generator=g), dim=-1)
            case = f"B={B}, {nb} beams, V={V}, k={k}"
            (s, b, t), same = unchanged(fn, beam_scores, lp, k)
            c.expect(same, case, "the inputs were modified in place")
            ws, wb, wt = beam_candidates(beam_scores, lp, k)
            c.close(s, ws, case + ": scores", "the k best sums beam_score + log_prob of each row, best first")
            c.expect(torch.equal(b.long(), wb) and torch.equal(t.long(), wt), case + ": beams and tokens",
                     "the flat index i of a (beam, token) pair in (nb * V) gives beam = i // V and token = i % V")
