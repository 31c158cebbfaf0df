"""Checks for the exercises of Chapter 1 (tokenization and data). Hand-written, not exported.

Besides fixed cases that show the classic mistakes, every check runs random cases (a fresh seed per run, printed
in a failure) so that no table of expected answers can pass it: ids and new ids far above 255, merge tables where
the leftmost, the most frequent and the earliest-learned pair differ, window counts that do not divide evenly.
"""
from __future__ import annotations

import unicodedata

import torch

from gptlib.checks import checker
from gptlib.data import make_windows as _ref_windows
from gptlib.bpe import decode_ids as _ref_decode_ids
from gptlib.bpe import encode_chunk as _ref_encode_chunk
from gptlib.bpe import get_stats as _ref_stats
from gptlib.bpe import merge as _ref_merge
from gptlib.tokenizer import BPETokenizer

__all__ = ["check_get_stats", "check_merge", "check_encode_chunk", "check_make_windows", "check_decode_ids"]

_TEXT = ("Shall I compare thee to a summer's day? Thou art more lovely and more temperate: "
         "Rough winds do shake the darling buds of May, and summer's lease hath all too short a "
         "date. ") * 3


def _pairs(ids, step=1, reverse=False):
    out: dict = {}
    for i in range(0, len(ids) - 1, step):
        p = (ids[i + 1], ids[i]) if reverse else (ids[i], ids[i + 1])
        out[p] = out.get(p, 0) + 1
    return out


# ------------------------------------------------------------------------------------------------------- get_stats
def check_get_stats(get_stats) -> None:
    with checker("get_stats", get_stats, solution=_ref_stats) as c:
        c.call("get_stats([11, 12])", get_stats, [11, 12])
        fresh = c.call("get_stats([13, 14]) after get_stats([11, 12])", get_stats, [13, 14])
        c.expect(isinstance(fresh, dict) and (11, 12) not in fresh, "two calls without counts",
                 f"counts leaked between calls ({fresh}): a mutable default argument "
                 f"`counts={{}}`? "
                 "use `counts=None` and create a new dict inside")
        ids = [5, 3, 5, 3, 7, 5, 3, 9]
        case = "get_stats([5, 3, 5, 3, 7, 5, 3, 9])"
        got = c.call(case, get_stats, ids, inplace="modified `ids` in place: only read it")
        c.expect(isinstance(got, dict), "return type", f"return a dict, got {type(got).__name__}")
        c.expect(all(isinstance(k, tuple) and len(k) == 2 for k in got), "keys",
                 "keys must be tuples (a, b) of two ids (not lists, strings or single ids), got "
                 f"{list(got)[:3]}")
        mistakes = {
            "pairs reversed: the key is (ids[i], ids[i + 1]), the left id "
            "first": _pairs(ids, reverse=True),
            "the last pair is missing: iterate over all len(ids) - 1 pairs (range off by "
            "one?)": _pairs(ids[:-1]),
            "pairs overlap: step by 1, not 2": _pairs(ids, step=2),
        }
        c.equal(got, _ref_stats(ids), case, "count every adjacent pair (ids[i], ids[i + "
        "1])", mistakes)
        aaa = c.call("get_stats([97, 97, 97])", get_stats, [97, 97, 97])
        c.expect(aaa == {(97, 97): 2}, "get_stats([97, 97, 97]) ('aaa')",
                 f"pairs overlap: 'aaa' holds (97, 97) twice (positions 0-1 and 1-2), got {aaa}; "
                 "step by 1, not 2")
        c.expect(c.call("get_stats([])", get_stats, []) == {} and c.call("get_stats([4])", get_stats, [4]) == {},
                 "empty and one-element lists", "fewer than two ids have no pairs: return {}")
        counts = {(1, 2): 5}
        out = c.call("get_stats([1, 2, 9], {(1, 2): 5})", get_stats, [1, 2, 9], counts)
        c.expect(out is counts, "get_stats([1, 2, 9], counts)",
                 "the counts argument was ignored: add to the given dict and return that same dict")
        c.expect(counts == {(1, 2): 6, (2, 9): 1}, "get_stats([1, 2, 9], {(1, 2): 5})",
                 f"expected counts to become {{(1, 2): 6, (2, 9): 1}}, got {counts}")
        empty: dict = {}
        out = c.call("get_stats([4, 4, 4], {}) (an empty counts dict)", get_stats, [4, 4, 4], empty)
        c.expect(out is empty and empty == {(4, 4): 2}, "get_stats([4, 4, 4], {}) (an empty counts "
        "dict)",
                 "an empty dict passed as counts must be filled and returned too: test `counts is "
                 "None`, not "
                 "`not counts` or `counts or {}` (an empty dict is falsy)")
        for r in range(3):  # random ids far above 255 (GPT-2 ids go to 50,256), with repeats
            alphabet = c.rng.sample(range(50257), 4)
            ids = [c.rng.choice(alphabet) for _ in range(c.rng.randint(5, 30))]
            case = f"get_stats({ids}) (random, seed {c.seed})"
            c.equal(c.call(case, get_stats, ids), _ref_stats(ids), case, "count every adjacent "
            "pair", mistakes={
                "pairs reversed: the key is (ids[i], ids[i + 1])": _pairs(ids, reverse=True),
                "the last pair is missing (range off by one?)": _pairs(ids[:-1]),
                "pairs overlap: step by 1, not 2": _pairs(ids, step=2)})


# ----------------------------------------------------------------------------------------------------------- merge
def _merge_mistakes(ids, pair, new_id) -> dict:
    unordered, i = [], 0
    while i < len(ids):  # (a, b) and (b, a) both merged, left to right
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair) and (ids[i], ids[i + 1]) in (pair, pair[::-1]):
            unordered.append(new_id)
            i += 2
        else:
            unordered.append(ids[i])
            i += 1
    return {
        "nothing was merged: is your comparison ever true? (ids[i:i + 2] is a list and pair a "
        "tuple, and "
        "[1, 2] != (1, 2); compare ids[i] == pair[0] and ids[i + 1] == pair[1])": list(ids),
        "the pair is ordered: (2, 1) is not (1, 2)": unordered,
        "the last element was dropped? an element that does not start a pair is copied, including "
        "the last one":
            _ref_merge(ids, pair, new_id)[:-1],
    }


def check_merge(merge) -> None:
    with checker("merge", merge, solution=_ref_merge) as c:
        ids = [1, 2, 3, 1, 2, 2, 1, 2]
        case = "merge([1, 2, 3, 1, 2, 2, 1, 2], (1, 2), 99)"
        got = c.call(case, merge, ids, (1, 2), 99, inplace="modified the input list in place: "
            "build and return "
                                                            "a new list")
        c.expect(isinstance(got, list), "return type", f"return a list, got {type(got).__name__}")
        want = _ref_merge(ids, (1, 2), 99)
        c.expect(got.count(99) != 1, case, "every occurrence must be merged, not only the first: "
        f"expected {want}, "
                                           f"got {got}")
        c.equal(got, want, case, "replace every (1, 2) by 99, left to "
        "right", _merge_mistakes(ids, (1, 2), 99))
        g2 = c.call("merge([2, 1, 1, 2], (1, 2), 99)", merge, [2, 1, 1, 2], (1, 2), 99)
        c.equal(g2, [2, 1, 99], "merge([2, 1, 1, 2], (1, 2), "
        "99)", "replace (1, 2), only in this order",
                _merge_mistakes([2, 1, 1, 2], (1, 2), 99))
        for ids, want in [([3, 1, 2, 4], [3, 99, 4]), ([5, 1], [5, 1]), ([1, 2, 5], [99, 5]), ([7], [7]),
                          ([], [])]:
            case = f"merge({ids}, (1, 2), 99)"
            c.equal(c.call(case, merge, ids, (1, 2), 99), want, case,
                    "the last element was dropped or duplicated? an element that does not start a "
                    "pair is copied, "
                    "including the last one", _merge_mistakes(ids, (1, 2), 99))
        for ids, want in [([11, 2, 1, 21, 1, 2, 12], [11, 2, 1, 21, 99, 12]),
                          ([31, 12, 1, 2], [31, 12, 99])]:
            case = f"merge({ids}, (1, 2), 99) (multi-digit ids that contain the digits 1 and 2)"
            c.equal(c.call(case, merge, ids, (1, 2), 99), want, case,
                    "compare ids as integers, pair by pair (ids[i], ids[i + 1]) == pair: a text "
                    "rendering of the ids ('11 2 …'.replace('1 2', …)) also matches digits inside "
                    "multi-digit ids",
                    _merge_mistakes(ids, (1, 2), 99))
        for ids, want in [([97, 97, 97], [99, 97]), ([97, 97, 97, 97], [99, 99]),
                          ([97, 97, 97, 97, 97], [99, 99, 97])]:
            case = f"merge({ids}, (97, 97), 99) (overlapping 'aaa')"
            c.equal(c.call(case, merge, ids, (97, 97), 99), want, case,
                    "overlapping occurrences — after a match skip BOTH elements (i += 2), scanning "
                    "left to right")
        for r in range(4):  # ids and new ids far above 255, pair occurrences next to each other and at the ends
            a, b = c.rng.sample(range(256, 50257), 2) if r else (c.rng.randrange(256), c.rng.randrange(256, 50257))
            other = c.rng.sample(range(60000), 3)
            ids = [c.rng.choice([a, b, a, b] + other) for _ in range(c.rng.randint(6, 20))]
            new_id = c.rng.randrange(50257, 100000)
            case = f"merge({ids}, ({a}, {b}), {new_id}) (ids ≥ 256, random, seed {c.seed})"
            c.equal(c.call(case, merge, ids, (a, b), new_id), _ref_merge(ids, (a, b), new_id), case,
                    "replace every occurrence, left to right, whatever the ids (they go far beyond "
                    "255)",
                    _merge_mistakes(ids, (a, b), new_id))


# ---------------------------------------------------------------------------------------------------- encode_chunk
def _leftmost(ids, merges):
    ids = list(ids)
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
        if pair is None:
            return ids
        ids = _ref_merge(ids, pair, merges[pair])


def _highest(ids, merges):
    ids = list(ids)
    while True:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            return ids
        pair = max(cands, key=merges.get)
        ids = _ref_merge(ids, pair, merges[pair])


def _dict_order(ids, merges):
    ids = list(ids)
    for pair, new_id in merges.items():
        ids = _ref_merge(ids, pair, new_id)
    return ids


def _random_merges(rng) -> tuple[list[int], dict]:
    """Random ids and merges (learned in a random order, listed in a shuffled order) on which the lowest-rank-first
    result differs from leftmost-first, highest-rank-first and dict-order results."""
    for _ in range(2000):
        alphabet = rng.sample(range(256), 3)
        corpus = [rng.choice(alphabet) for _ in range(rng.randint(8, 14))]
        seq, new_id = list(corpus), rng.randrange(256, 40000)
        learned: list[tuple[tuple[int, int], int]] = []
        for _ in range(rng.randint(3, 6)):
            if len(seq) < 2:
                break
            i = rng.randrange(len(seq) - 1)
            pair = (seq[i], seq[i + 1])
            if pair in dict(learned):
                continue
            learned.append((pair, new_id))
            seq = _ref_merge(seq, pair, new_id)
            new_id += rng.randint(1, 50)
        rng.shuffle(learned)
        merges = dict(learned)
        ids = [rng.choice(alphabet) for _ in range(rng.randint(6, 12))]
        want = _ref_encode_chunk(ids, merges)
        if all(want != f(ids, merges) for f in (_leftmost, _highest, _dict_order)):
            return ids, merges
    raise AssertionError("no discriminating merge table found")


_ORDER_HINT = ("merges applied in the wrong order? always merge the pair with the LOWEST new id "
"(learned "
               "earliest) — not the leftmost pair, not the dict's order, not the highest id — and "
               "repeat until no "
               "pair is a merge")


def _encode_mistakes(ids, merges) -> dict:
    return {"merges applied in the wrong order: the leftmost mergeable pair is not the "
    "earliest-learned merge; use "
            "the lowest new id": lambda: _leftmost(ids, merges),
            "merges applied in the wrong order: the LOWEST new id (learned earliest) goes first, "
            "not the highest":
                lambda: _highest(ids, merges),
            "merges applied in the wrong order: the dict's order is not the rank order; use the "
            "lowest new id":
                lambda: _dict_order(ids, merges)}


def check_encode_chunk(encode_chunk) -> None:
    with checker("encode_chunk", encode_chunk, solution=_ref_encode_chunk) as c:
        # insertion order is NOT rank order, and the leftmost / most frequent pair is not the earliest merge
        case = "encode_chunk([1, 2, 3, 4, 9], three chained merges)"
        got = c.call(case, encode_chunk, [1, 2, 3, 4, 9], {(2, 3): 10, (10, 4): 12, (1, 12): 14})
        c.expect(got == [14, 9], case,
                 f"expected [14, 9], got {got}: stopped too early? repeat until no adjacent pair "
                 "is in merges")
        case = "encode_chunk([5, 6, 5, 6, 7], {(6, 7): 20, (5, 6): 21})"
        got = c.call(case, encode_chunk, [5, 6, 5, 6, 7], {(6, 7): 20, (5, 6): 21})
        c.expect(got == [21, 5, 20], case,
                 f"expected [21, 5, 20], got {got}: merges applied in the wrong order? the most "
                 "frequent pair in "
                 "the chunk is not the earliest-learned merge; use the lowest new id")
        merges = {(1, 2): 11, (11, 3): 13, (2, 3): 10, (10, 4): 12}
        ids = [1, 2, 3, 4]
        case = "encode_chunk([1, 2, 3, 4], {(1, 2): 11, (11, 3): 13, (2, 3): 10, (10, 4): 12})"
        got = c.call(case, encode_chunk, ids, merges, inplace="modified `ids` or `merges` in "
            "place: copy first")
        c.expect(isinstance(got, list), "return "
        "type", f"return a list of ids, got {type(got).__name__}")
        c.equal(got, [1, 12], case, _ORDER_HINT)
        c.expect(c.call("encode_chunk([], merges)", encode_chunk, [], merges) == []
                 and c.call("encode_chunk([7], merges)", encode_chunk, [7], merges) == [7],
                 "empty and one-id chunks", "fewer than two ids: return them unchanged (as a list)")
        case = "encode_chunk([4, 3, 2, 1]) (no merge applies)"
        c.equal(c.call(case, encode_chunk, [4, 3, 2, 1], merges), [4, 3, 2, 1], case,
                "no adjacent pair is a merge: return the ids unchanged")
        for r in range(6):  # random tables where leftmost-first, highest-first and dict order all differ
            ids, merges = _random_merges(c.rng)
            case = f"encode_chunk({ids}, {merges}) (random, seed {c.seed})"
            got = c.call(case, encode_chunk, ids, merges)
            c.equal(got, _ref_encode_chunk(ids, merges), case, _ORDER_HINT, _encode_mistakes(ids, merges))
        tok = BPETokenizer().train(_TEXT, 300)
        for chunk in tok._split.findall(_TEXT[:120]):
            ids = list(chunk.encode("utf-8"))
            case = f"a BPE trained on a sonnet, chunk {chunk!r}"
            c.equal(c.call(case, encode_chunk, ids, tok.merges), _ref_encode_chunk(ids, tok.merges), case,
                    _ORDER_HINT, _encode_mistakes(ids, tok.merges))


# ---------------------------------------------------------------------------------------------------- make_windows
def check_make_windows(make_windows) -> None:
    with checker("make_windows", make_windows, device_from="tokens",
                 solution=_ref_windows) as c:
        tokens = torch.arange(100, 117)                       # N = 17, distinct values
        case = "make_windows(arange(100, 117), 4, 3)"
        out = c.call(case, make_windows, tokens, 4, 3, inplace="modified `tokens` in place")
        c.expect(isinstance(out, tuple) and len(out) == 2, "return "
        "type", "return a tuple (x, y) of two tensors")
        x, y = out
        xw, yw = _ref_windows(tokens, 4, 3)
        c.expect(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), "return types",
                 "return two torch tensors (x, y)")
        c.expect(x.dtype == torch.int64 and y.dtype == torch.int64, "dtypes",
                 f"x and y must be int64 (torch.long), got {x.dtype}, {y.dtype}")
        c.expect(x.shape[1:] == (4,) and y.shape[1:] == (4,), "window length",
                 f"each window has block_size = 4 tokens, got x {tuple(x.shape)}, y "
                 f"{tuple(y.shape)}")
        c.expect(not torch.equal(x, y), "targets", "y equals x: the target must be the input shifted by one token")
        c.expect(not (x.shape == y.shape and torch.equal(y[:, 1:], x[:, :-1])), case,
                 "x and y swapped: return (x, y), the inputs first, then the targets shifted by "
                 "one")
        c.expect(len(x) >= 2 and int(x[1, 0]) == 103, "second window",
                 "window 1 must start at 1 * stride = 3 (token 103), got "
                 f"{x[1].tolist() if len(x) > 1 else x}: "
                 "stride ignored?")
        c.expect(x.shape == y.shape and torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1),
                 "shift", "off by one: y[i, t] must be tokens[start + t + 1] (the input shifted by exactly one)")
        c.expect(x.shape[0] == xw.shape[0], "number of windows",
                 f"(17 - 4 - 1) // 3 + 1 = {xw.shape[0]} windows, got {x.shape[0]}: the last "
                 "window missing "
                 "(or one too many)? a window needs block_size + 1 tokens")
        c.close(x, xw, "x", "wrong input windows")
        c.close(y, yw, "y", "wrong target windows")
        case = "make_windows(arange(200, 213), 4, 4)"
        x, y = c.call(case, make_windows, torch.arange(200, 213), 4, 4)  # N = 13: the last window ends at the end
        c.expect(x.shape == (3, 4) and int(y[-1, -1]) == 212, case,
                 f"3 windows, the last target being the last token 212; got {tuple(x.shape)}: last "
                 "window missing?")
        case = "make_windows([7, 3, 5], 2, 1)"
        x, y = c.call(case, make_windows, torch.tensor([7, 3, 5]), 2, 1)  # the edge: N = T + 1, exactly one window
        c.expect(x.tolist() == [[7, 3]] and y.tolist() == [[3, 5]], case,
                 f"expected x [[7, 3]], y [[3, 5]], got {x.tolist()}, {y.tolist()}")
        for r, dtype in enumerate((torch.int64, torch.int32, torch.uint16, torch.int64)):
            # random sizes where (N - T - 1) is NOT a multiple of the stride, ids as int32/uint16 (token files)
            T, stride = c.rng.randint(2, 9), c.rng.randint(2, 7)
            N = T + 1 + stride * c.rng.randint(1, 6) + c.rng.randint(1, stride - 1)
            toks = torch.tensor(c.rng.sample(range(50257), N), dtype=dtype)
            case = (f"make_windows({dtype} tokens of length N={N}, {T}, {stride}) ((N - T - 1) = "
            f"{N - T - 1} is not "
                    f"a multiple of the stride; random, seed {c.seed})")
            got = c.call(case, make_windows, toks, T, stride)
            c.expect(isinstance(got, tuple) and len(got) == 2, case, "return a tuple (x, y)")
            xw, yw = _ref_windows(toks, T, stride)
            c.close(got[0], xw, case + ", x", f"{xw.shape[0]} windows = (N - T - 1) // stride + 1 (rounded down), "
                    "as int64 whatever the tokens' dtype (.long())")
            c.close(got[1], yw, case + ", y", "y[i, t] = tokens[i * stride + t + 1], as int64")
        toks = c.to_device(torch.arange(20))
        case = f"make_windows(20 tokens, 5, 2) on device {c.device!r}"
        out = c.device_run(case, make_windows, toks, 5, 2)
        if out is not None:
            c.expect(isinstance(out, tuple) and len(out) == 2, case, "return a tuple (x, y)")
            for t, w, label in zip(out, _ref_windows(toks, 5, 2), "xy"):
                c.like(t, w, f"{case}, {label}", "wrong windows")
        raised = None
        try:
            c.call("make_windows(arange(4), 4, 1) (N < T + 1)", make_windows, torch.arange(4), 4, 1)
        except ValueError as e:
            raised = e
        c.expect(raised is not None, "make_windows(arange(4), 4, 1) (N < T + 1)",
                 "4 tokens cannot fill one window of 4 inputs + 1 target: raise a ValueError "
                 "saying so")


# ------------------------------------------------------------------------------------------------------ decode_ids
def check_decode_ids(decode_ids) -> None:
    with checker("decode_ids", decode_ids, solution=_ref_decode_ids) as c:
        vocab = {i: bytes([i]) for i in range(256)}
        vocab.update({256: b"\xf0\x9f", 257: b"\x91\x8b", 258: b" hi", 259: b"\xc3", 260: b"\xa9t\xc3\xa9"})

        def call(ids, case, voc=vocab):
            try:
                return c.call(case, decode_ids, ids, voc)
            except UnicodeDecodeError:
                c.expect(False, case, "UnicodeDecodeError: strict decoding crashes when bytes do "
                "not form a whole "
                                      "character (a token cut, or tokens decoded one at a time); "
                                      "join all the "
                                      "bytes, then decode once with errors='replace'")

        def mistakes(ids):
            raw = [vocab[i] for i in ids]
            return {
                "decoded as ASCII? the bytes are UTF-8: .decode('utf-8', errors='replace')":
                    b"".join(raw).decode("ascii", errors="replace"),
                "bytes turned into characters one by one (chr / latin-1)? decode the joined bytes "
                "as UTF-8":
                    b"".join(raw).decode("latin-1"),
                "each token decoded separately? a character can span tokens: join ALL the bytes "
                "first, then decode "
                "once": "".join(r.decode("utf-8", errors="replace") for r in raw),
                "incomplete bytes must become U+FFFD, not vanish (errors='ignore' hides them); use "
                "errors='replace'":
                    b"".join(raw).decode("utf-8", errors="ignore"),
            }

        c.expect(call([104, 105], "[104, "
        "105]") == "hi" and call([], "[]") == "", "ASCII ids and []",
                 "join the bytes of vocab[i] for every id, in order, and decode them as UTF-8")
        for ids, label in (([256, 257, 258], "👋 = F0 9F 91 8B over two tokens"),
                           ([259, 260], "'été' as C3 | A9 74 C3 A9"),
                           ([104, 256], "ends inside 👋"),
                           ([257, 104, 105], "starts inside 👋: 91 8B are continuation bytes"),
                           ([260, 258, 259], "starts and ends inside a character")):
            case = f"{ids} ({label})"
            got = call(ids, case)
            c.expect(isinstance(got, str), "return type", f"return a str, got {type(got).__name__}")
            want = b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
            c.equal(got, want, case, "join the bytes of all tokens, then decode once as UTF-8 with "
                                     "errors='replace' (a character cut at either end becomes "
                                     "U+FFFD)", mistakes(ids))
        nfd = dict(vocab)
        nfd.update({261: "e\u0301".encode(), 262: "ﬁ".encode(), 263: "\u212b".encode()})
        case = ("[261, 262, 263]: 'e' + U+0301 (two code points), the ligature 'ﬁ', U+212B "
        "ANGSTROM "
            "SIGN")
        got = call([261, 262, 263], case, nfd)
        raw = b"".join(nfd[i] for i in (261, 262, 263)).decode("utf-8")
        c.equal(
            got,
            raw,
            case,
            "return exactly the characters the bytes encode",
            {
                f"do not Unicode-normalise the text ({form}): decoding must give back exactly the "
                f"code points that "
                "were encoded (e + U+0301 stays two code points), or encode(decode(ids)) changes "
                "the ids": unicodedata.normalize(
                    form, raw
                )
                for form in ("NFC", "NFKC", "NFD", "NFKD")
            },
        )
        for r in range(3):  # random token boundaries through multi-byte text
            data = "naïve café — Ωμέγα €5 👋 ".encode()
            lo, hi = c.rng.randrange(0, 4), c.rng.randrange(len(data) - 4, len(data) + 1)
            cuts = sorted(c.rng.sample(range(lo + 1, hi), 8))
            pieces = [p for p in (data[a:b] for a, b in zip([lo] + cuts, cuts + [hi])) if p]
            voc = dict(vocab)
            ids = []
            for p in pieces:
                voc[300 + len(ids)] = p
                ids.append(300 + len(ids))
            case = f"random cuts of {data[lo:hi]!r} into tokens {pieces} (seed {c.seed})"
            got = call(ids, case, voc)
            c.equal(
                got,
                data[lo:hi].decode("utf-8", errors="replace"),
                case,
                "join all the bytes, then decode once with errors='replace'",
            )
