"""Library mutation tests for Chapter 7's modules: sampling boundaries and cache positions.

Each plausible bug below, applied alone to gptlib, must make the named fast unit tests fail."""
from libmutation import LibMutant, library_mutant_tests

GEN = "tests/test_generate.py::"
KV = "tests/test_kvcache.py::"
SAME_TOKENS = KV + "test_generate_with_and_without_cache_gives_the_same_tokens"

MUTANTS = [
    # ------------------------------------------------------------------ sampling boundaries
    LibMutant(what="top-p drops the token whose mass reaches p", file="gptlib/sampling.py",
              old="remove = cum <= (1 - top_p)", new="remove = cum < (1 - top_p)",
              tests=[GEN + "test_top_p_keeps_the_token_whose_mass_reaches_p_and_no_more"]),
    LibMutant(what="top-p ignores min_tokens_to_keep", file="gptlib/sampling.py",
              old="remove[..., -min_tokens_to_keep:] = False", new="remove[..., -1:] = False",
              tests=[GEN + "test_top_p_keeps_the_token_whose_mass_reaches_p_and_no_more"]),
    LibMutant(what="top-k drops the k-th token", file="gptlib/sampling.py",
              old="scores.masked_fill(scores < kth,", new="scores.masked_fill(scores <= kth,",
              tests=[GEN + "test_top_k_keeps_exactly_k_distinct_scores_and_every_tie_of_the_kth"]),
    LibMutant(what="repetition penalty divides negative scores (CTRL without the sign rule)",
              file="gptlib/sampling.py", old="torch.where(s < 0, s * penalty, s / penalty)",
              new="s / penalty",
              tests=[GEN + "test_repetition_penalty_sign_rule_and_temperature_direction"]),
    LibMutant(what="temperature multiplies", file="gptlib/sampling.py",
              old="return scores / temperature", new="return scores * temperature",
              tests=[GEN + "test_repetition_penalty_sign_rule_and_temperature_direction"]),
    # --------------------------------------------------------------------- cache positions
    LibMutant(what="the cache does not advance", file="gptlib/kvcache.py",
              old="self.length = end", new="self.length = start",
              tests=[KV + "test_cached_logits_equal_full_logits_at_every_step"]),
    LibMutant(what="each step feeds the cached positions again", file="gptlib/generate.py",
              old="seq[:, max(fed, start):t]", new="seq[:, start:t]", tests=[SAME_TOKENS]),
    LibMutant(what="beams keep their own cache after re-ranking", file="gptlib/generate.py",
              old="cache.reorder(running_parents[..., cur - T].flatten().long())", new="pass",
              tests=[SAME_TOKENS]),
    LibMutant(what="the sliding window is one token short", file="gptlib/generate.py",
              old="start = max(t - block, 0) if sliding_window else 0",
              new="start = max(t - block + 1, 0) if sliding_window else 0",
              tests=[GEN + "test_sliding_window_predicts_each_token_from_the_last_block_size_"
                     "tokens"]),
]

test_library_mutant = library_mutant_tests(MUTANTS)
