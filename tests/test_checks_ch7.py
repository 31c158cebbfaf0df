"""Chapter 7's exercise checks: each passes on gptlib's reference, fails on a stub and on curated mutants."""
import torch

from gptlib import generate as G
from gptlib.checks import ch7
from mutation import Mutant, check_tests

NEG = float("-inf")


# --------------------------------------------------------------------------------------------- top-p
def top_p_drops_the_crossing_token(scores, top_p, min_tokens_to_keep=1):
    sp, order = scores.softmax(-1).sort(-1, descending=True)
    remove = sp.cumsum(-1) > top_p
    remove[..., :min_tokens_to_keep] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_ignores_min_tokens(scores, top_p, min_tokens_to_keep=1):
    return G.top_p_filter(scores, top_p, 1)


def top_p_on_raw_scores(scores, top_p, min_tokens_to_keep=1):
    ss, order = scores.sort(-1, descending=True)
    remove = ss.cumsum(-1) - ss >= top_p
    remove[..., :min_tokens_to_keep] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_zero_not_inf(scores, top_p, min_tokens_to_keep=1):
    out = G.top_p_filter(scores, top_p, min_tokens_to_keep)
    return torch.where(torch.isneginf(out), torch.zeros_like(out), out)


def top_p_in_place(scores, top_p, min_tokens_to_keep=1):
    out = G.top_p_filter(scores, top_p, min_tokens_to_keep)
    return scores.copy_(out)


def top_p_whole_batch(scores, top_p, min_tokens_to_keep=1):
    return G.top_p_filter(scores.reshape(1, -1), top_p, min_tokens_to_keep).reshape(scores.shape)


# --------------------------------------------------------------------------------------------- KV cache
class NoAdvance(G.LayerKVCache):
    def update(self, k, v):
        end = self.length + k.size(2)
        self.k[:, :, self.length:end], self.v[:, :, self.length:end] = k, v
        return self.k[:, :, :end], self.v[:, :, :end]


class WholeBuffer(G.LayerKVCache):
    def update(self, k, v):
        G.LayerKVCache.update(self, k, v)
        return self.k, self.v


class OnlyNew(G.LayerKVCache):
    def update(self, k, v):
        G.LayerKVCache.update(self, k, v)
        return k, v


class KeysAsValues(G.LayerKVCache):
    def update(self, k, v):
        return G.LayerKVCache.update(self, k, k)


class NoLimit(G.LayerKVCache):
    def update(self, k, v):
        start, end = self.length, self.length + k.size(2)
        self.k[:, :, start:end], self.v[:, :, start:end] = k[:, :, :self.max_len - start], v[:, :, :self.max_len - start]
        self.length = min(end, self.max_len)
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


class OverwritesFromZero(G.LayerKVCache):
    def update(self, k, v):
        T = k.size(2)
        self.k[:, :, :T], self.v[:, :, :T] = k, v
        self.length += T
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


# --------------------------------------------------------------------------------------------- beam step
def beams_without_running_scores(beam_scores, log_probs, k):
    return G.beam_candidates(torch.zeros_like(beam_scores), log_probs, k)


def beams_top_k_per_beam(beam_scores, log_probs, k):
    B, nb, V = log_probs.shape
    total = log_probs + beam_scores[:, :, None]
    s, tok = torch.topk(total, max(1, k // nb), dim=-1)                  # (B, nb, k/nb)
    beam = torch.arange(nb)[None, :, None].expand_as(tok)
    s, beam, tok = s.reshape(B, -1), beam.reshape(B, -1), tok.reshape(B, -1)
    order = s.argsort(-1, descending=True)[:, :k]
    return s.gather(1, order), beam.gather(1, order), tok.gather(1, order)


def beams_swapped_div_mod(beam_scores, log_probs, k):
    B, nb, V = log_probs.shape
    s, flat = torch.topk((log_probs + beam_scores[:, :, None]).reshape(B, -1), k)
    return s, flat % nb, flat // nb


def beams_worst_first(beam_scores, log_probs, k):
    B, nb, V = log_probs.shape
    s, flat = torch.topk((log_probs + beam_scores[:, :, None]).reshape(B, -1), k, largest=False)
    return s, flat // V, flat % V


REFERENCES = {"check_top_p_filter": G.top_p_filter, "check_kv_cache_update": G.LayerKVCache,
              "check_beam_candidates": G.beam_candidates}
MUTANTS = [
    Mutant("check_top_p_filter", "drops the token that crosses top_p", top_p_drops_the_crossing_token, "crosses"),
    Mutant("check_top_p_filter", "ignores min_tokens_to_keep", top_p_ignores_min_tokens, "min_tokens_to_keep"),
    Mutant("check_top_p_filter", "accumulates raw scores", top_p_on_raw_scores, "softmax"),
    Mutant("check_top_p_filter", "0 instead of -inf", top_p_zero_not_inf, "-inf"),
    Mutant("check_top_p_filter", "modifies the scores in place", top_p_in_place, "in place"),
    Mutant("check_top_p_filter", "one nucleus for the whole batch", top_p_whole_batch),
    Mutant("check_kv_cache_update", "never advances length", NoAdvance, "length"),
    Mutant("check_kv_cache_update", "returns the whole buffer", WholeBuffer, "filled positions"),
    Mutant("check_kv_cache_update", "returns only the new keys", OnlyNew, "past keys"),
    Mutant("check_kv_cache_update", "stores keys as values", KeysAsValues, "values"),
    Mutant("check_kv_cache_update", "silently truncates past max_len", NoLimit, "ValueError"),
    Mutant("check_kv_cache_update", "writes every update at position 0", OverwritesFromZero, "overwrite"),
    Mutant("check_beam_candidates", "forgets the running scores", beams_without_running_scores, "running score"),
    Mutant("check_beam_candidates", "top-k per beam", beams_top_k_per_beam, "ALL"),
    Mutant("check_beam_candidates", "beam and token swapped", beams_swapped_div_mod, "i // V"),
    Mutant("check_beam_candidates", "worst first", beams_worst_first, "best first"),
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch7, REFERENCES, MUTANTS)
