"""Chapter 7's exercise checks: each passes on gptlib's reference, fails on a stub and on curated mutants.

Mutants do not call gptlib's solutions (the checks reject that as a shortcut): they use the local copies
below, so each one fails with the hint of its own mistake."""
import torch

from gptlib import generate as G
from gptlib.kvcache import LayerKVCache
from gptlib.sampling import top_p_filter
from gptlib.checks import ch7
from mutation import Mutant, check_tests, robustness_tests

NEG = float("-inf")


# --------------------------------------------------------------------------------------------- top-p
def _top_p(scores, top_p, min_tokens_to_keep=1):                   # a copy of the reference
    sorted_scores, order = torch.sort(scores, descending=False)
    remove = sorted_scores.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
    remove[..., -min_tokens_to_keep:] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_drops_the_crossing_token(scores, top_p, min_tokens_to_keep=1):
    sp, order = scores.softmax(-1).sort(-1, descending=True)
    remove = sp.cumsum(-1) > top_p
    remove[..., :min_tokens_to_keep] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_ignores_min_tokens(scores, top_p, min_tokens_to_keep=1):
    return _top_p(scores, top_p, 1)


def top_p_on_raw_scores(scores, top_p, min_tokens_to_keep=1):
    ss, order = scores.sort(-1, descending=True)
    remove = ss.cumsum(-1) - ss >= top_p
    remove[..., :min_tokens_to_keep] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_zero_not_inf(scores, top_p, min_tokens_to_keep=1):
    out = _top_p(scores, top_p, min_tokens_to_keep)
    return torch.where(torch.isneginf(out), torch.zeros_like(out), out)


def top_p_in_place(scores, top_p, min_tokens_to_keep=1):
    out = _top_p(scores, top_p, min_tokens_to_keep)
    return scores.copy_(out)


def top_p_whole_batch(scores, top_p, min_tokens_to_keep=1):
    return _top_p(scores.reshape(1, -1), top_p, min_tokens_to_keep).reshape(scores.shape)


def top_p_in_float32(scores, top_p, min_tokens_to_keep=1):        # "for precision", and never converted back
    return _top_p(scores.float(), top_p, min_tokens_to_keep)


def top_p_rank_arange_on_cpu(scores, top_p, min_tokens_to_keep=1):
    sorted_scores, order = torch.sort(scores)
    remove = sorted_scores.softmax(-1).cumsum(-1) <= 1 - top_p
    remove = remove & (torch.arange(scores.size(-1)) < scores.size(-1) - min_tokens_to_keep)   # on the CPU
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_full_on_cpu(scores, top_p, min_tokens_to_keep=1):
    sorted_scores, order = torch.sort(scores)
    remove = sorted_scores.softmax(-1).cumsum(-1) <= 1 - top_p
    remove[..., -min_tokens_to_keep:] = False
    return torch.where(remove.scatter(1, order, remove), torch.full(scores.shape, NEG, dtype=scores.dtype), scores)


def top_p_descending(scores, top_p, min_tokens_to_keep=1):       # right on distinct scores, not on ties
    sp, order = scores.softmax(-1).sort(-1, descending=True)
    remove = sp.cumsum(-1) - sp >= top_p
    remove[..., :min_tokens_to_keep] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_exp_overflows(scores, top_p, min_tokens_to_keep=1):     # a softmax by hand, without the max
    e = scores.exp()
    sp, order = (e / e.sum(-1, keepdim=True)).sort(-1)
    remove = sp.cumsum(-1) <= 1 - top_p
    remove[..., -min_tokens_to_keep:] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


def top_p_calls_gptlib(scores, top_p, min_tokens_to_keep=1):
    return top_p_filter(scores, top_p, min_tokens_to_keep)


# --------------------------------------------------------------------------------------------- KV cache
def _append(self, k, v):                                          # a copy of the reference's update
    start, end = self.length, self.length + k.size(2)
    if end > self.max_len:
        raise ValueError(f"{end} positions do not fit in max_len={self.max_len}")
    self.k[:, :, start:end], self.v[:, :, start:end] = k, v
    self.length = end
    return self.k[:, :, :end], self.v[:, :, :end]


class NoAdvance(LayerKVCache):
    def update(self, k, v):
        end = self.length + k.size(2)
        self.k[:, :, self.length:end], self.v[:, :, self.length:end] = k, v
        return self.k[:, :, :end], self.v[:, :, :end]


class WholeBuffer(LayerKVCache):
    def update(self, k, v):
        _append(self, k, v)
        return self.k, self.v


class OnlyNew(LayerKVCache):
    def update(self, k, v):
        _append(self, k, v)
        return k, v


class KeysAsValues(LayerKVCache):
    def update(self, k, v):
        return _append(self, k, k)


class NoLimit(LayerKVCache):
    def update(self, k, v):
        start, end = self.length, self.length + k.size(2)
        self.k[:, :, start:end], self.v[:, :, start:end] = k[:, :, :self.max_len - start], v[:, :, :self.max_len - start]
        self.length = min(end, self.max_len)
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


class OverwritesFromZero(LayerKVCache):
    def update(self, k, v):
        T = k.size(2)
        self.k[:, :, :T], self.v[:, :, :T] = k, v
        self.length += T
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


class ReallocatesFloat32(LayerKVCache):
    def update(self, k, v):
        if self.length == 0:                                      # (re)allocates for the batch it sees
            self.k = torch.zeros(k.size(0), k.size(1), self.max_len, k.size(3), device=k.device)
            self.v = torch.zeros(k.size(0), k.size(1), self.max_len, k.size(3), device=k.device)
        return _append(self, k, v)


class ReallocatesOnCpu(LayerKVCache):
    def update(self, k, v):
        if self.length == 0:
            self.k = torch.zeros(k.size(0), k.size(1), self.max_len, k.size(3), dtype=k.dtype)
            self.v = torch.zeros(k.size(0), k.size(1), self.max_len, k.size(3), dtype=k.dtype)
        return _append(self, k, v)


class IndexCopyCpuIndex(LayerKVCache):
    def update(self, k, v):
        start, end = self.length, self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"{end} positions do not fit in max_len={self.max_len}")
        pos = torch.arange(start, end)                            # on the CPU
        self.k.index_copy_(2, pos, k)
        self.v.index_copy_(2, pos, v)
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class AdvancesBeforeChecking(LayerKVCache):
    def update(self, k, v):
        self.length += k.size(2)
        if self.length > self.max_len:
            raise ValueError(f"the cache holds only {self.max_len} positions")
        start = self.length - k.size(2)
        self.k[:, :, start:self.length], self.v[:, :, start:self.length] = k, v
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


class CallsGptlib(LayerKVCache):
    def update(self, k, v):
        return LayerKVCache.update(self, k, v)


# --------------------------------------------------------------------------------------------- beam step
def _beams(beam_scores, log_probs, k):                             # a copy of the reference
    B, nb, V = log_probs.shape
    s, flat = torch.topk((log_probs + beam_scores[:, :, None]).reshape(B, -1), k)
    return s, flat // V, flat % V


def beams_without_running_scores(beam_scores, log_probs, k):
    return _beams(torch.zeros_like(beam_scores), log_probs, k)


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


def beams_float_indices(beam_scores, log_probs, k):
    B, nb, V = log_probs.shape
    s, flat = torch.topk((log_probs + beam_scores[:, :, None]).reshape(B, -1), k)
    return s, (flat / V).floor(), flat - (flat / V).floor() * V


def beams_in_float32(beam_scores, log_probs, k):
    return _beams(beam_scores.float(), log_probs.float(), k)


def beams_lookup_table_on_cpu(beam_scores, log_probs, k):
    B, nb, V = log_probs.shape
    s, flat = torch.topk((log_probs + beam_scores[:, :, None]).reshape(B, -1), k)
    beam_of = torch.arange(nb).repeat_interleave(V)                      # on the CPU
    return s, beam_of[flat], flat % V


def beams_multiply_probabilities(beam_scores, log_probs, k):
    B, nb, V = log_probs.shape
    s, flat = torch.topk((log_probs.exp() * beam_scores.exp()[:, :, None]).log().reshape(B, -1), k)
    return s, flat // V, flat % V


def beams_sorted(beam_scores, log_probs, k):
    B, nb, V = log_probs.shape
    s, flat = (log_probs + beam_scores[:, :, None]).reshape(B, -1).sort(dim=-1, descending=True, stable=True)
    return s[:, :k], flat[:, :k] // V, flat[:, :k] % V


def beams_clamp_inf(beam_scores, log_probs, k):                   # "avoid -inf" by clamping
    return _beams(beam_scores.clamp(min=-1e4), log_probs.clamp(min=-1e4), k)


def beams_call_gptlib(beam_scores, log_probs, k):
    return G.beam_candidates(beam_scores, log_probs, k)


# ------------------------------------------------------------------------ issue 19's classes
def top_p_transformers(scores, top_p, min_tokens_to_keep=1):  # the library the exercise text names
    from transformers.generation.logits_process import TopPLogitsWarper

    return TopPLogitsWarper(top_p, min_tokens_to_keep=min_tokens_to_keep)(None, scores)


def top_p_topk_for_min(
    scores, top_p, min_tokens_to_keep=1
):  # topk fails when min_tokens_to_keep > V
    out = _top_p(scores, top_p, 1)
    keep = scores.topk(min_tokens_to_keep, dim=-1).indices
    return out.scatter(1, keep, scores.gather(1, keep))


def top_p_returns_input(scores, top_p, min_tokens_to_keep=1):  # nothing to filter: the input itself
    return scores if top_p >= 1.0 else _top_p(scores, top_p, min_tokens_to_keep)


def top_p_half(scores, top_p, min_tokens_to_keep=1):  # probabilities in float16
    sorted_scores, order = torch.sort(scores, descending=False)
    cum = sorted_scores.half().softmax(dim=-1).cumsum(dim=-1).float()
    remove = cum <= (1 - top_p)
    remove[..., -min_tokens_to_keep:] = False
    return scores.masked_fill(remove.scatter(1, order, remove), NEG)


class OverflowOnlyWhenFull(LayerKVCache):  # checks only a full cache, not length + T_new
    def update(self, k, v):
        if self.length >= self.max_len:
            raise ValueError(f"the cache is full (max_len={self.max_len})")
        start, end = self.length, self.length + k.size(2)
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class GrowsByCat(LayerKVCache):  # replaces the buffers by ever longer tensors
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = self.k.size(2)

    @property
    def max_len(self):
        return self.limit

    def update(self, k, v):
        if self.length + k.size(2) > self.max_len:
            raise ValueError(
                f"{self.length + k.size(2)} positions do not fit in max_len={self.max_len}"
            )
        self.k = torch.cat([self.k[:, :, : self.length], k], dim=2)
        self.v = torch.cat([self.v[:, :, : self.length], v], dim=2)
        self.length += k.size(2)
        return self.k, self.v


def beam_indices_via_python(
    beam_scores, log_probs, k
):  # indices rebuilt on the CPU from a Python list
    B, nb, V = log_probs.shape
    scores, flat = (log_probs + beam_scores[:, :, None]).reshape(B, -1).topk(k, dim=-1)
    flat = torch.tensor(flat.tolist())
    return scores, flat // V, flat % V


ISSUE19 = [
    Mutant(
        "check_top_p_filter",
        "calls transformers' TopPLogitsWarper",
        top_p_transformers,
        hint="TopPLogitsWarper",
        kind="solution",
    ),
    Mutant(
        "check_top_p_filter",
        "topk(min_tokens_to_keep)",
        top_p_topk_for_min,
        hint="min_tokens_to_keep > vocabulary size",
        kind="boundary",
    ),
    Mutant(
        "check_top_p_filter",
        "returns the input itself at top_p=1",
        top_p_returns_input,
        hint="the scores tensor itself",
        kind="alias",
    ),
    Mutant("check_top_p_filter", "probabilities in float16", top_p_half, hint="in float16",
           kind="range"),
    Mutant(
        "check_kv_cache_update",
        "overflow checked only when full",
        OverflowOnlyWhenFull,
        hint="only partly filled",
        kind="boundary",
    ),
    Mutant(
        "check_kv_cache_update",
        "buffers replaced by torch.cat",
        GrowsByCat,
        hint="no torch.cat",
        kind="state",
    ),
    Mutant(
        "check_beam_candidates",
        "indices rebuilt on the CPU (data-dependent)",
        beam_indices_via_python,
        hint="create new tensors on the inputs' device",  # GPU or simulated
        kind="device",
    ),
]

REFERENCES = {
    "check_top_p_filter": top_p_filter,
    "check_kv_cache_update": LayerKVCache,
    "check_beam_candidates": G.beam_candidates,
}
TP, KV, BEAM = "check_top_p_filter", "check_kv_cache_update", "check_beam_candidates"
MUTANTS = [
    *ISSUE19,
    Mutant(
        TP,
        "drops the token that crosses top_p",
        top_p_drops_the_crossing_token,
        "crosses",
        kind="message",
    ),
    Mutant(
        TP,
        "ignores min_tokens_to_keep",
        top_p_ignores_min_tokens,
        "min_tokens_to_keep",
        kind="edge",
    ),
    Mutant(TP, "accumulates raw scores", top_p_on_raw_scores, "softmax", kind="message"),
    Mutant(TP, "0 instead of -inf", top_p_zero_not_inf, "-inf", kind="message"),
    Mutant(TP, "modifies the scores in place", top_p_in_place, "in place"),
    Mutant(TP, "one nucleus for the whole batch", top_p_whole_batch, "each row separately"),
    Mutant(
        TP, "returns float32 for bfloat16 scores", top_p_in_float32, "keep the dtype", kind="dtype"
    ),
    Mutant(
        TP,
        "min_tokens_to_keep mask from a CPU arange",
        top_p_rank_arange_on_cpu,
        "build it on scores.device",
        kind="device",
    ),
    Mutant(
        TP,
        "-inf filler built on the CPU",
        top_p_full_on_cpu,
        "build it on scores.device",
        kind="device",
    ),
    Mutant(
        TP,
        "sorts descending (other tokens kept on ties)",
        top_p_descending,
        "ascending order",
        kind="edge",
    ),
    Mutant(
        TP,
        "softmax by hand overflows on large scores",
        top_p_exp_overflows,
        "overflows",
        kind="edge",
    ),
    Mutant(
        TP,
        "calls gptlib.sampling.top_p_filter",
        top_p_calls_gptlib,
        "write it yourself",
        kind="shortcut",
    ),
    Mutant(KV, "never advances length", NoAdvance, "length"),
    Mutant(KV, "returns the whole buffer", WholeBuffer, "filled positions", kind="message"),
    Mutant(KV, "returns only the new keys", OnlyNew, "past keys", kind="message"),
    Mutant(KV, "stores keys as values", KeysAsValues, "values"),
    Mutant(KV, "silently truncates past max_len", NoLimit, "ValueError", kind="edge"),
    Mutant(KV, "writes every update at position 0", OverwritesFromZero, "overwrite"),
    Mutant(
        KV, "reallocates the buffers in float32", ReallocatesFloat32, "keep the dtype", kind="dtype"
    ),
    Mutant(
        KV, "reallocates the buffers on the CPU", ReallocatesOnCpu, "device=k.device", kind="device"
    ),
    Mutant(
        KV, "index_copy_ with a CPU index", IndexCopyCpuIndex, "build it on k.device", kind="device"
    ),
    Mutant(
        KV,
        "advances length before checking max_len",
        AdvancesBeforeChecking,
        "change nothing",
        kind="edge",
    ),
    Mutant(
        KV,
        "calls gptlib.kvcache.LayerKVCache.update",
        CallsGptlib,
        "write it yourself",
        kind="shortcut",
    ),
    Mutant(
        BEAM,
        "forgets the running scores",
        beams_without_running_scores,
        "running score",
        kind="message",
    ),
    Mutant(BEAM, "top-k per beam", beams_top_k_per_beam, "ALL"),
    Mutant(BEAM, "beam and token swapped", beams_swapped_div_mod, "i // V", kind="message"),
    Mutant(BEAM, "worst first", beams_worst_first, "best first"),
    Mutant(BEAM, "float beam and token indices", beams_float_indices, "int64", kind="dtype"),
    Mutant(
        BEAM,
        "returns float32 scores for bfloat16 inputs",
        beams_in_float32,
        "keep the dtype",
        kind="dtype",
    ),
    Mutant(
        BEAM,
        "beam lookup table on the CPU",
        beams_lookup_table_on_cpu,
        "device=log_probs.device",
        kind="device",
    ),
    Mutant(
        BEAM,
        "multiplies probabilities (underflow)",
        beams_multiply_probabilities,
        "underflow",
        kind="range",
    ),
    Mutant(BEAM, "sort instead of topk (tie order)", beams_sorted, "ties", kind="edge"),
    Mutant(BEAM, "clamps -inf", beams_clamp_inf, "-inf", kind="edge"),
    Mutant(
        BEAM,
        "calls gptlib.generate.beam_candidates",
        beams_call_gptlib,
        "write it yourself",
        kind="shortcut",
    ),
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch7, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch7, REFERENCES)
