"""The Chapter 1 exercise checks pass on the reference, fail on a stub, and fail on realistic mistakes."""
import codecs
import math

import torch
from mutation import Mutant, check_tests, robustness_tests

from gptlib import data, tokenizer
from gptlib.checks import ch1

REFERENCES = {
    "check_get_stats": tokenizer.get_stats,
    "check_merge": tokenizer.merge,
    "check_encode_chunk": tokenizer.encode_chunk,
    "check_make_windows": data.make_windows,
    "check_decode_ids": tokenizer.decode_ids,
}


# ---- get_stats mutants ----
def stats_non_overlapping(ids, counts=None):          # steps by 2: 'aaa' counted once
    counts = {} if counts is None else counts
    for i in range(0, len(ids) - 1, 2):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def stats_misses_last_pair(ids, counts=None):          # range(len(ids) - 2)
    counts = {} if counts is None else counts
    for i in range(len(ids) - 2):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def stats_ignores_counts(ids, counts=None):            # always a fresh dict
    return tokenizer.get_stats(ids)


def stats_mutable_default(ids, counts={}):             # noqa: B006 — the classic Python trap
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def stats_list_keys(ids, counts=None):                 # keys as strings "a,b"
    counts = {} if counts is None else counts
    for a, b in zip(ids, ids[1:]):
        counts[f"{a},{b}"] = counts.get(f"{a},{b}", 0) + 1
    return counts


def stats_pops_input(ids, counts=None):                # consumes the list it was given
    counts = {} if counts is None else counts
    prev = ids.pop(0) if ids else None
    while ids:
        cur = ids.pop(0)
        counts[(prev, cur)] = counts.get((prev, cur), 0) + 1
        prev = cur
    return counts


# ---- merge mutants ----
def merge_overlapping(ids, pair, new_id):              # steps by 1 after a match: 'aaa' -> [X, X]
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], ids[i]) == tuple(pair)):
            out.append(ids[i])
    return out


def merge_drops_last(ids, pair, new_id):               # loop stops at len - 1 and forgets the tail
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_first_only(ids, pair, new_id):               # str.replace(..., 1)-style: only the first occurrence
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == tuple(pair):
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


def merge_in_place(ids, pair, new_id):                 # edits the caller's list
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def merge_unordered(ids, pair, new_id):                # treats (a, b) and (b, a) alike
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ---- encode_chunk mutants ----
def encode_in_dict_order(ids, merges):                 # applies merges in the dict's order, not by rank
    for pair, new_id in merges.items():
        ids = tokenizer.merge(ids, pair, new_id)
    return list(ids)


def encode_leftmost_first(ids, merges):                # merges the leftmost mergeable pair each time
    ids = list(ids)
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
        if pair is None:
            return ids
        ids = tokenizer.merge(ids, pair, merges[pair])


def encode_most_frequent(ids, merges):                 # picks the most frequent pair, like training
    ids = list(ids)
    while True:
        stats = {p: c for p, c in tokenizer.get_stats(ids).items() if p in merges}
        if not stats:
            return ids
        pair = max(stats, key=stats.get)
        ids = tokenizer.merge(ids, pair, merges[pair])


def encode_highest_rank(ids, merges):                  # max instead of min
    ids = list(ids)
    while len(ids) >= 2:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            break
        pair = max(cands, key=merges.get)
        ids = tokenizer.merge(ids, pair, merges[pair])
    return ids


def encode_one_pass(ids, merges):                      # a single merge, no loop
    ids = list(ids)
    if len(ids) < 2:
        return ids
    pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
    return tokenizer.merge(ids, pair, merges[pair]) if pair in merges else ids


def encode_in_place(ids, merges):                      # returns the right ids but rewrites the caller's list
    out = tokenizer.encode_chunk(ids, merges)
    ids[:] = out
    return ids


# ---- make_windows mutants ----
def windows_no_shift(tokens, block_size, stride):       # target = input: off by one
    x, _ = data.make_windows(tokens, block_size, stride)
    return x, x.clone()


def windows_shift_two(tokens, block_size, stride):      # target shifted by 2
    tokens = torch.as_tensor(tokens)
    starts = range(0, len(tokens) - block_size - 1, stride)
    x = torch.stack([tokens[s:s + block_size] for s in starts]).long()
    y = torch.stack([tokens[s + 2:s + block_size + 2] for s in starts]).long()
    return x, y


def windows_missing_last(tokens, block_size, stride):   # range(0, N - T - 1, stride)
    tokens = torch.as_tensor(tokens)
    starts = range(0, len(tokens) - block_size - 1, stride)
    return (torch.stack([tokens[s:s + block_size] for s in starts]).long(),
            torch.stack([tokens[s + 1:s + block_size + 1] for s in starts]).long())


def windows_ignore_stride(tokens, block_size, stride):  # always stride 1
    return data.make_windows(tokens, block_size, 1)


def windows_stride_as_block(tokens, block_size, stride):  # non-overlapping windows whatever the stride
    return data.make_windows(tokens, block_size, block_size)


def windows_float(tokens, block_size, stride):           # float tensors: an embedding cannot index with them
    x, y = data.make_windows(tokens, block_size, stride)
    return x.float(), y.float()


# ---- decode_ids mutants ----
def decode_strict(ids, vocab):                           # errors='strict' (the default)
    return b"".join(vocab[i] for i in ids).decode("utf-8")


def decode_per_token(ids, vocab):                        # decodes each token on its own
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


def decode_per_token_strict(ids, vocab):
    return "".join(vocab[i].decode("utf-8") for i in ids)


def decode_ignore(ids, vocab):                           # errors='ignore': silently drops bytes
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore")


def decode_latin1(ids, vocab):                           # one character per byte
    return "".join(chr(b) for i in ids for b in vocab[i])


# ---- new mutants (issue 11): edge cases, dtypes, messages, crashes that name their case ----
def stats_reversed(ids, counts=None):                  # keys (ids[i+1], ids[i])
    counts = {} if counts is None else counts
    for a, b in zip(ids, ids[1:]):
        counts[(b, a)] = counts.get((b, a), 0) + 1
    return counts


def stats_falsy_counts(ids, counts=None):              # `counts or {}`: an empty dict passed in is replaced
    counts = counts or {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_list_vs_tuple(ids, pair, new_id):            # ids[i:i+2] == pair compares a list with a tuple: never true
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_via_bytes(ids, pair, new_id):                # bytes.replace: only works for ids < 256
    return list(bytes(ids).replace(bytes(pair), bytes([new_id])))


def encode_lookup_table(ids, merges):                  # copies the answers printed by the old check, else leftmost
    table = {(1, 2, 3, 4, 9): [14, 9], (5, 6, 5, 6, 7): [21, 5, 20], (1, 2, 3, 4): [1, 12]}
    if tuple(ids) in table and len(merges) <= 4:
        return list(table[tuple(ids)])
    return encode_leftmost_first(ids, merges)


def windows_swapped(tokens, block_size, stride):       # returns (y, x)
    x, y = data.make_windows(tokens, block_size, stride)
    return y, x


def windows_keep_dtype(tokens, block_size, stride):    # no .long(): int32/uint16 token files stay int32/uint16
    tokens = torch.as_tensor(tokens)
    starts = range(0, len(tokens) - block_size, stride)
    return (torch.stack([tokens[s:s + block_size] for s in starts]),
            torch.stack([tokens[s + 1:s + block_size + 1] for s in starts]))


def windows_ceil(tokens, block_size, stride):          # ceil instead of floor: one window too many when uneven
    tokens = torch.as_tensor(tokens)
    n = math.ceil((len(tokens) - block_size - 1) / stride) + 1
    return (torch.stack([tokens[i * stride:i * stride + block_size] for i in range(n)]).long(),
            torch.stack([tokens[i * stride + 1:i * stride + block_size + 1] for i in range(n)]).long())


def decode_ascii(ids, vocab):                          # ASCII instead of UTF-8
    return b"".join(vocab[i] for i in ids).decode("ascii", errors="replace")


def decode_skip_leading_continuation(ids, vocab):     # drops continuation bytes at the start ("belong to before")
    raw = b"".join(vocab[i] for i in ids)
    while raw and 0x80 <= raw[0] < 0xC0:
        raw = raw[1:]
    return raw.decode("utf-8", errors="replace")


def decode_stream_no_final(ids, vocab):               # an incremental decoder never flushed (final=True missing)
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return "".join(dec.decode(vocab[i]) for i in ids)


# ------------------------------------------------------------------------ issue 19's classes
def merge_on_text(ids, pair, new_id):  # replaces in a text rendering of the ids
    text = " " + " ".join(map(str, ids)) + " "
    text = text.replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in text.split()]


def decode_nfc(ids, vocab):  # "cleans up" the text: Unicode normalisation
    import unicodedata

    return unicodedata.normalize(
        "NFC", b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
    )


def merge_library(ids, pair, new_id):                   # returns gptlib's own solution
    return tokenizer.merge(ids, pair, new_id)


ISSUE19 = [
    Mutant("check_merge", "calls gptlib's tokenizer.merge", merge_library,
           hint="gptlib.bpe.merge, the solution", kind="solution"),
    Mutant(
        "check_merge",
        "merge done on a text rendering of the ids",
        merge_on_text,
        hint="compare ids as integers",
        kind="semantics",
    ),
    Mutant(
        "check_decode_ids",
        "decode that Unicode-normalises (NFC)",
        decode_nfc,
        hint="do not Unicode-normalise",
        kind="semantics",
    ),
]

MUTANTS = [
    *ISSUE19,
    Mutant(
        "check_get_stats",
        "non-overlapping pair count ('aaa')",
        stats_non_overlapping,
        hint="overlap",
    ),
    Mutant("check_get_stats", "last pair missed", stats_misses_last_pair, hint="last pair"),
    Mutant(
        "check_get_stats", "counts argument ignored", stats_ignores_counts, hint="counts argument"
    ),
    Mutant(
        "check_get_stats", "mutable default argument", stats_mutable_default, hint="mutable default"
    ),
    Mutant("check_get_stats", "keys are strings, not tuples", stats_list_keys, hint="tuples"),
    Mutant("check_get_stats", "consumes the input list", stats_pops_input, hint="in place"),
    Mutant(
        "check_merge",
        "overlapping occurrences merged wrongly ('aaa')",
        merge_overlapping,
        hint="overlapping",
    ),
    Mutant("check_merge", "last element dropped", merge_drops_last, hint="last element"),
    Mutant(
        "check_merge",
        "only the first occurrence merged",
        merge_first_only,
        hint="not only the first",
    ),
    Mutant("check_merge", "modifies the input list in place", merge_in_place, hint="in place"),
    Mutant("check_merge", "pair order ignored", merge_unordered, hint="ordered"),
    Mutant(
        "check_encode_chunk",
        "merges applied in dict order",
        encode_in_dict_order,
        hint="wrong order",
    ),
    Mutant(
        "check_encode_chunk",
        "leftmost mergeable pair first",
        encode_leftmost_first,
        hint="wrong order",
    ),
    Mutant(
        "check_encode_chunk", "most frequent pair first", encode_most_frequent, hint="most frequent"
    ),
    Mutant("check_encode_chunk", "latest merge first", encode_highest_rank, hint="LOWEST"),
    Mutant("check_encode_chunk", "a single merge, no loop", encode_one_pass, hint="repeat"),
    Mutant(
        "check_encode_chunk", "modifies the input list in place", encode_in_place, hint="in place"
    ),
    Mutant(
        "check_make_windows",
        "target not shifted (off by one)",
        windows_no_shift,
        hint="shifted by one",
    ),
    Mutant("check_make_windows", "target shifted by two", windows_shift_two, hint="off by one"),
    Mutant("check_make_windows", "last window missing", windows_missing_last, hint="last window"),
    Mutant("check_make_windows", "stride ignored", windows_ignore_stride, hint="stride"),
    Mutant(
        "check_make_windows",
        "stride replaced by block_size",
        windows_stride_as_block,
        hint="stride",
    ),
    Mutant("check_make_windows", "float windows", windows_float, hint="int64"),
    Mutant(
        "check_decode_ids",
        "errors='strict' on partial UTF-8",
        decode_strict,
        hint="errors='replace'",
    ),
    Mutant(
        "check_decode_ids", "each token decoded separately", decode_per_token, hint="separately"
    ),
    Mutant(
        "check_decode_ids",
        "each token decoded separately, strictly",
        decode_per_token_strict,
        hint="UnicodeDecodeError",
    ),
    Mutant("check_decode_ids", "errors='ignore' drops bytes", decode_ignore, hint="not vanish"),
    Mutant("check_decode_ids", "bytes as latin-1 characters", decode_latin1, hint="latin-1"),
    # new (issue 11) — messages
    Mutant("check_get_stats", "pairs reversed", stats_reversed, hint="reversed", kind="message"),
    Mutant(
        "check_merge",
        "no merge at all (list == tuple never true)",
        merge_list_vs_tuple,
        hint="nothing was merged",
        kind="message",
    ),
    Mutant(
        "check_make_windows", "x and y swapped", windows_swapped, hint="swapped", kind="message"
    ),
    Mutant("check_decode_ids", "decoded as ASCII", decode_ascii, hint="ASCII", kind="message"),
    # new — edge cases the spec implies
    Mutant(
        "check_get_stats",
        "an empty counts dict replaced (counts or {})",
        stats_falsy_counts,
        hint="empty dict",
        kind="edge",
    ),
    Mutant(
        "check_merge",
        "bytes.replace: fails for ids >= 256 (the crash names the case)",
        merge_via_bytes,
        hint="ids ≥ 256",
        kind="edge",
    ),
    Mutant(
        "check_encode_chunk",
        "lookup table of the printed cases, else leftmost-first",
        encode_lookup_table,
        hint="wrong order",
        kind="edge",
    ),
    Mutant(
        "check_make_windows",
        "ceil instead of floor for the window count",
        windows_ceil,
        hint="not a multiple of the stride",
        kind="edge",
    ),
    Mutant(
        "check_decode_ids",
        "drops continuation bytes at the start",
        decode_skip_leading_continuation,
        hint="not vanish",
        kind="edge",
    ),
    Mutant(
        "check_decode_ids",
        "incremental decoder never flushed",
        decode_stream_no_final,
        hint="not vanish",
        kind="edge",
    ),
    # new — dtypes
    Mutant(
        "check_make_windows",
        "keeps the tokens' dtype (int32/uint16)",
        windows_keep_dtype,
        hint="int64",
        kind="dtype",
    ),
]

test_reference_passes, test_stub_fails, test_mutant_fails = check_tests(ch1, REFERENCES, MUTANTS)
test_crash_names_case, test_success_line_stable = robustness_tests(ch1, REFERENCES)
