"""Checks for the exercises of Chapter 1 (tokenization and data). Hand-written, not exported."""
from __future__ import annotations

import torch

from gptlib.checks import checker, unchanged
from gptlib.data import make_windows as _ref_windows
from gptlib.tokenizer import BPETokenizer, encode_chunk as _ref_encode_chunk, get_stats as _ref_stats, \
    merge as _ref_merge

_TEXT = ("Shall I compare thee to a summer's day? Thou art more lovely and more temperate: "
         "Rough winds do shake the darling buds of May, and summer's lease hath all too short a date. ") * 3


def check_get_stats(get_stats) -> None:
    with checker("get_stats") as c:
        get_stats([11, 12])
        fresh = get_stats([13, 14])
        c.expect((11, 12) not in fresh, "two calls without counts",
                 f"counts leaked between calls ({fresh}): a mutable default argument `counts={{}}`? "
                 "use `counts=None` and create a new dict inside")
        ids = [5, 3, 5, 3, 7, 5, 3, 9]
        got, same = unchanged(get_stats, ids)
        c.expect(same, "get_stats([5, 3, 5, 3, 7, 5, 3, 9])", "modified `ids` in place: only read it")
        c.expect(isinstance(got, dict), "return type", f"return a dict, got {type(got).__name__}")
        c.expect(all(isinstance(k, tuple) and len(k) == 2 for k in got), "keys",
                 f"keys must be tuples (a, b) of two ids (not lists, strings or single ids), got {list(got)[:3]}")
        c.expect((3, 9) in got, "the last pair (3, 9) of [5, 3, 5, 3, 7, 5, 3, 9]",
                 "the last pair is missing: iterate over all len(ids) - 1 pairs (range off by one?)")
        aaa = get_stats([97, 97, 97])
        c.expect(aaa == {(97, 97): 2}, "get_stats([97, 97, 97]) ('aaa')",
                 f"pairs overlap: 'aaa' holds (97, 97) twice (positions 0-1 and 1-2), got {aaa}; step by 1, not 2")
        want = _ref_stats(ids)
        c.expect(got == want, "get_stats([5, 3, 5, 3, 7, 5, 3, 9])", f"expected {want}, got {got}")
        c.expect(get_stats([]) == {} and get_stats([4]) == {}, "empty and one-element lists",
                 "fewer than two ids have no pairs: return {}")
        counts = {(1, 2): 5}
        out = get_stats([1, 2, 9], counts)
        c.expect(out is counts, "get_stats([1, 2, 9], counts)",
                 "the counts argument was ignored: add to the given dict and return that same dict")
        c.expect(counts == {(1, 2): 6, (2, 9): 1}, "get_stats([1, 2, 9], {(1, 2): 5})",
                 f"expected counts to become {{(1, 2): 6, (2, 9): 1}}, got {counts}")


def check_merge(merge) -> None:
    with checker("merge") as c:
        ids = [1, 2, 3, 1, 2, 2, 1, 2]
        got, same = unchanged(merge, ids, (1, 2), 99)
        c.expect(same, "merge([1, 2, 3, 1, 2, 2, 1, 2], (1, 2), 99)",
                 "modified the input list in place: build and return a new list")
        c.expect(isinstance(got, list), "return type", f"return a list, got {type(got).__name__}")
        g2 = merge([2, 1, 1, 2], (1, 2), 99)
        c.expect(g2 == [2, 1, 99], "merge([2, 1, 1, 2], (1, 2), 99)",
                 f"the pair is ordered: (2, 1) is not (1, 2); got {g2}")
        want = _ref_merge(ids, (1, 2), 99)
        c.expect(got.count(99) == 3, "merge([1, 2, 3, 1, 2, 2, 1, 2], (1, 2), 99)",
                 f"every occurrence must be merged, not only the first: expected {want}, got {got}")
        c.expect(got == want, "merge([1, 2, 3, 1, 2, 2, 1, 2], (1, 2), 99)", f"expected {want}, got {got}")
        for ids, want in [([3, 1, 2, 4], [3, 99, 4]), ([5, 1], [5, 1]), ([1, 2, 5], [99, 5]), ([7], [7]),
                          ([], [])]:
            got = merge(ids, (1, 2), 99)
            c.expect(got == want, f"merge({ids}, (1, 2), 99)",
                     f"expected {want}, got {got}: the last element was dropped or duplicated? "
                     "an element that does not start a pair is copied, including the last one")
        for ids, want in [([97, 97, 97], [99, 97]), ([97, 97, 97, 97], [99, 99]),
                          ([97, 97, 97, 97, 97], [99, 99, 97])]:
            got = merge(ids, (97, 97), 99)
            c.expect(got == want, f"merge({ids}, (97, 97), 99) (overlapping 'aaa')",
                     f"expected {want}, got {got}: overlapping occurrences — after a match skip BOTH "
                     "elements (i += 2), scanning left to right")


def check_encode_chunk(encode_chunk) -> None:
    with checker("encode_chunk") as c:
        # insertion order is NOT rank order, and the leftmost / most frequent pair is not the earliest merge
        got = encode_chunk([1, 2, 3, 4, 9], {(2, 3): 10, (10, 4): 12, (1, 12): 14})
        c.expect(got == [14, 9], "encode_chunk([1, 2, 3, 4, 9], three chained merges)",
                 f"expected [14, 9], got {got}: stopped too early? repeat until no adjacent pair is in merges")
        got = encode_chunk([5, 6, 5, 6, 7], {(6, 7): 20, (5, 6): 21})
        c.expect(got == [21, 5, 20], "encode_chunk([5, 6, 5, 6, 7], {(6, 7): 20, (5, 6): 21})",
                 f"expected [21, 5, 20], got {got}: merges applied in the wrong order? the most frequent pair in "
                 "the chunk is not the earliest-learned merge; use the lowest new id")
        merges = {(1, 2): 11, (11, 3): 13, (2, 3): 10, (10, 4): 12}
        ids = [1, 2, 3, 4]
        got, same = unchanged(encode_chunk, ids, merges)
        c.expect(same, "encode_chunk([1, 2, 3, 4], merges)", "modified `ids` or `merges` in place: copy first")
        c.expect(isinstance(got, list), "return type", f"return a list of ids, got {type(got).__name__}")
        c.expect(got == [1, 12], "encode_chunk([1, 2, 3, 4], {(1, 2): 11, (11, 3): 13, (2, 3): 10, (10, 4): 12})",
                 f"expected [1, 12], got {got}: merges applied in the wrong order? always merge the pair with the "
                 "LOWEST new id (learned earliest) — not the leftmost pair, not the dict's order, not the "
                 "highest id — and repeat until no pair is a merge")
        c.expect(encode_chunk([], merges) == [] and encode_chunk([7], merges) == [7],
                 "empty and one-id chunks", "fewer than two ids: return them unchanged (as a list)")
        c.expect(encode_chunk([4, 3, 2, 1], merges) == [4, 3, 2, 1], "encode_chunk([4, 3, 2, 1]) (no merge applies)",
                 "no adjacent pair is a merge: return the ids unchanged")
        tok = BPETokenizer().train(_TEXT, 300)
        for chunk in tok._split.findall(_TEXT[:120]):
            ids = list(chunk.encode("utf-8"))
            want = _ref_encode_chunk(ids, tok.merges)
            got = encode_chunk(ids, tok.merges)
            c.expect(got == want, f"a BPE trained on a sonnet, chunk {chunk!r}", f"expected {want}, got {got}")


def check_make_windows(make_windows) -> None:
    with checker("make_windows") as c:
        tokens = torch.arange(100, 117)                       # N = 17, distinct values
        (x, y), same = unchanged(make_windows, tokens, 4, 3)
        c.expect(same, "make_windows(arange(100, 117), 4, 3)", "modified `tokens` in place")
        xw, yw = _ref_windows(tokens, 4, 3)
        c.expect(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), "return types",
                 "return two torch tensors (x, y)")
        c.expect(x.dtype == torch.int64 and y.dtype == torch.int64, "dtypes",
                 f"x and y must be int64 (torch.long), got {x.dtype}, {y.dtype}")
        c.expect(x.shape[1:] == (4,) and y.shape[1:] == (4,), "window length",
                 f"each window has block_size = 4 tokens, got x {tuple(x.shape)}, y {tuple(y.shape)}")
        c.expect(not torch.equal(x, y), "targets", "y equals x: the target must be the input shifted by one token")
        c.expect(len(x) >= 2 and int(x[1, 0]) == 103, "second window",
                 f"window 1 must start at 1 * stride = 3 (token 103), got {x[1].tolist() if len(x) > 1 else x}: "
                 "stride ignored?")
        c.expect(torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1), "shift",
                 "off by one: y[i, t] must be tokens[start + t + 1] (the input shifted by exactly one)")
        c.expect(x.shape[0] == xw.shape[0], "number of windows",
                 f"(17 - 4 - 1) // 3 + 1 = {xw.shape[0]} windows, got {x.shape[0]}: the last window missing "
                 "(or one too many)? a window needs block_size + 1 tokens")
        c.close(x, xw, "x", "wrong input windows")
        c.close(y, yw, "y", "wrong target windows")
        x, y = make_windows(torch.arange(200, 213), 4, 4)    # N = 13: the last window ends exactly at the end
        c.expect(x.shape == (3, 4) and int(y[-1, -1]) == 212, "make_windows(arange(200, 213), 4, 4)",
                 f"3 windows, the last target being the last token 212; got {tuple(x.shape)}: last window missing?")
        x, y = make_windows(torch.tensor([7, 3, 5]), 2, 1)    # the edge: N = T + 1 gives exactly one window
        c.expect(x.tolist() == [[7, 3]] and y.tolist() == [[3, 5]], "make_windows([7, 3, 5], 2, 1)",
                 f"expected x [[7, 3]], y [[3, 5]], got {x.tolist()}, {y.tolist()}")


def check_decode_ids(decode_ids) -> None:
    with checker("decode_ids") as c:
        vocab = {i: bytes([i]) for i in range(256)}
        vocab.update({256: b"\xf0\x9f", 257: b"\x91\x8b", 258: b" hi", 259: b"\xc3", 260: b"\xa9t\xc3\xa9"})

        def call(ids, case):
            try:
                return decode_ids(ids, vocab)
            except UnicodeDecodeError:
                c.expect(False, case, "UnicodeDecodeError: strict decoding crashes when bytes do not form a whole "
                                      "character (a token cut, or tokens decoded one at a time); join all the "
                                      "bytes, then decode once with errors='replace'")

        c.expect(call([104, 105], "[104, 105]") == "hi" and call([], "[]") == "", "ASCII ids and []",
                 "join the bytes of vocab[i] for every id, in order, and decode them as UTF-8")
        case = "[256, 257, 258] (👋 = F0 9F 91 8B over two tokens)"
        got = call([256, 257, 258], case)
        c.expect(isinstance(got, str), "return type", f"return a str, got {type(got).__name__}")
        c.expect(not any(0x80 <= ord(ch) <= 0xFF for ch in got), case,
                 f"got {got!r}: bytes turned into characters one by one (chr / latin-1)? decode the joined "
                 "bytes as UTF-8")
        c.expect(got == "\U0001f44b hi", case,
                 f"expected '👋 hi', got {got!r}: each token decoded separately? a character can span tokens: "
                 "join ALL the bytes first, then decode once")
        got = call([259, 260], "[259, 260]")
        c.expect(got == "été", "[259, 260] ('été' as C3 | A9 74 C3 A9)", f"expected 'été', got {got!r}")
        got = call([104, 256], "[104, 256] (ends inside 👋)")
        c.expect(got == "h\ufffd", "[104, 256] (ends inside 👋)",
                 f"expected 'h\\ufffd', got {got!r}: incomplete bytes must become U+FFFD, not vanish "
                 "(errors='ignore' hides them); use errors='replace'")
