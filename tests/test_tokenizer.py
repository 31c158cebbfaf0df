"""gptlib.tokenizer: byte-level BPE from scratch, proven equal to tiktoken's GPT-2 encoding."""
import random
from collections import Counter

import pytest
import regex
import tiktoken
from tiktoken_ext.openai_public import r50k_pat_str

import gptlib
from gptlib.data import corpus_text, load_plays
from gptlib.bpe import decode_ids, encode_chunk, get_stats, merge, train_merges
from gptlib.tokenizer import (ENDOFTEXT, GPT2_SPLIT_PATTERN, BPETokenizer, course_tokenizer,
                              gpt2_tokenizer)

ADVERSARIAL = [
    "", " ", "   leading", "trailing   ", "a\n\n\n   b", " \t\t \n\n  \r\n \u3000\u00a0 x",
        " " * 300 + "x",
    "\n" * 64, "1234567890 3.14159 2026 ٣٤٥ ½ 000000000000", "I'll don't we've they're she'd 'tis "
                                                             "O'er 'LL 'S",
    "naïve café cafe\u0301 e\u0301\u0301\u0301 Å Å", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𝄞 🀄 \U0010FFFD", "👋🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 "
                                                                                 "❤️",
    "你好，世界。日本語のテキスト", "مرحبا بالعالم", "zero\u200bwidth\u200d\ufeff", "ＡＢＣ　ｆｕｌｌ",
    "<|endoftext|>", "doc one<|endoftext|>doc two", "<|endoftext", "<|endoftext|><|endoftext|>",
        "\x00\x01\x7f",
]


@pytest.fixture(scope="module")
def enc():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def gpt2(enc):
    return BPETokenizer.from_tiktoken(enc)


@pytest.fixture(scope="module")
def corpus():
    return corpus_text(load_plays())


def random_strings(n, seed=0):
    rng = random.Random(seed)
    pool = list(" \n\t  aeioustxyzAQ019'.,!-") + ["é", "e\u0301", "ß", "你", "👋", "🏽", "\u200d",
                                                  "𝔣", ENDOFTEXT,
                                                  "  ", "'s", "'ll", "\r\n"]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(n)]


# ---- GPT-2's tokenizer, offline ----

def test_gpt2_tokenizer_is_tiktokens_gpt2(enc):
    assert isinstance(enc, tiktoken.Encoding) and enc.name == "gpt2"
    assert enc.n_vocab == 50257 and enc.eot_token == 50256 and enc._special_tokens == {ENDOFTEXT: 50256}
    assert enc._pat_str == r50k_pat_str == GPT2_SPLIT_PATTERN
    assert enc.encode("hello world") == [31373, 995]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert len(enc._mergeable_ranks) == 50256 and sorted(enc._mergeable_ranks.values()) == list(range(50256))


def test_gpt2_tokenizer_checks_the_hash(tmp_path, monkeypatch):
    good = (gptlib.DATA_DIR / "gpt2.tiktoken").read_bytes()
    (tmp_path / "gpt2.tiktoken").write_bytes(good.replace(b" 0\n", b" 1\n", 1))
    monkeypatch.setattr(gptlib, "DATA_DIR", tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        gpt2_tokenizer()
    (tmp_path / "gpt2.tiktoken").unlink()
    with pytest.raises(FileNotFoundError, match="GPTLIB_DATA"):
        gpt2_tokenizer()


# ---- from_tiktoken: identical ids ----

def test_from_tiktoken_structure(gpt2):
    assert gpt2.vocab_size == 50257 and len(gpt2.merges) == 50000 and gpt2.eot_token == 50256
    assert gpt2.byte_ids[ord("!")] == 0 and sorted(gpt2.byte_ids) == list(range(256))
    assert list(gpt2.merges.values()) == list(range(256, 50256))   # merges in rank order


def test_whole_corpus_equals_tiktoken(enc, gpt2, corpus):
    want = enc.encode_ordinary(corpus)
    got = gpt2.encode_ordinary(corpus)
    assert got == want
    assert gpt2.decode(got) == corpus


@pytest.mark.parametrize("text", ADVERSARIAL + random_strings(400))
def test_adversarial_text_equals_tiktoken(enc, gpt2, text):
    want = enc.encode(text, allowed_special="all")
    assert gpt2.encode(text, allowed_special="all") == want
    assert gpt2.decode(want) == text
    # special-token text treated as ordinary text, both ways
    assert gpt2.encode(text, allowed_special="none") == enc.encode(text, disallowed_special=())


def test_special_token_modes_match_tiktoken(enc, gpt2):
    text = "a<|endoftext|>b"
    assert gpt2.encode(text, allowed_special={ENDOFTEXT}) == enc.encode(text,
                                                                        allowed_special={ENDOFTEXT})
    assert gpt2.encode(text, allowed_special="all") == [64, 50256, 65]
    assert gpt2.encode(text, allowed_special="none") == enc.encode_ordinary(text)


def test_decode_partial_utf8_replaces_like_tiktoken(enc, gpt2):
    ids = enc.encode("👋 hi")
    for i in ids:
        assert gpt2.decode([i]) == enc.decode([i])
    assert "\ufffd" in gpt2.decode(ids[:1]) and gpt2.decode_bytes(ids) == "👋 hi".encode()


def test_decode_accepts_tensors_and_arrays(gpt2):
    import numpy as np
    import torch
    ids = [31373, 995]
    assert gpt2.decode(torch.tensor(ids)) == gpt2.decode(np.array(ids)) == "hello world"


# ---- bad input ----

def test_special_token_text_needs_permission(gpt2):
    with pytest.raises(ValueError, match="allowed_special"):
        gpt2.encode("the end<|endoftext|>")
    with pytest.raises(ValueError, match="unknown special tokens"):
        gpt2.encode("x", allowed_special={"<|im_start|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        gpt2.encode("x", allowed_special="some")


def test_bad_ids_are_clear_errors(gpt2):
    with pytest.raises(ValueError, match="out of range.*0..50256"):
        gpt2.decode([50257])
    with pytest.raises(ValueError, match="out of range"):
        gpt2.decode([-1])
    with pytest.raises(TypeError, match="must be ints"):
        gpt2.decode([1.5])
    with pytest.raises(TypeError, match="sequence of token ids"):
        gpt2.decode("hello")
    with pytest.raises(TypeError, match="sequence of token ids"):
        gpt2.decode(7)


def test_non_string_input_is_a_type_error(gpt2):
    for bad in (b"bytes", None, 5, ["a"]):
        with pytest.raises(TypeError, match="needs a str"):
            gpt2.encode(bad)
        with pytest.raises(TypeError, match="needs a str"):
            gpt2.encode_ordinary(bad)
    with pytest.raises(TypeError, match="needs a str"):
        BPETokenizer().train(b"bytes", 300)


def test_vocab_size_below_256_is_refused():
    for v in (0, 100, 255, 256):       # 256 leaves no room for <|endoftext|>
        with pytest.raises(ValueError, match="at least 256"):
            BPETokenizer().train("some text", v)
    with pytest.raises(ValueError, match="no pair left"):
        BPETokenizer().train("ab ab", 300)


def test_load_rejects_other_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"merges": []}')
    with pytest.raises(ValueError, match="not a gptlib.BPETokenizer file"):
        BPETokenizer.load(p)


# ---- the building blocks and the trainer ----

def test_building_blocks():
    assert get_stats([97, 97, 97]) == {(97, 97): 2}
    assert merge([97, 97, 97], (97, 97), 256) == [256, 97]
    assert encode_chunk([1, 2, 3, 4], {(1, 2): 11, (11, 3): 13, (2, 3): 10, (10, 4): 12}) == [1, 12]
    assert decode_ids([0, 1, 2], {0: b"\xf0\x9f", 1: b"\x91\x8b", 2: b"\xc3"}) == "\U0001f44b\ufffd"


def naive_merges(text, num_merges):
    chunks = [list(c.encode()) for c in regex.findall(GPT2_SPLIT_PATTERN, text)]
    merges = {}
    for new_id in range(256, 256 + num_merges):
        stats = {}
        for ids in chunks:
            get_stats(ids, stats)
        pair = min(stats, key=lambda p: (-stats[p], p))
        chunks = [merge(ids, pair, new_id) for ids in chunks]
        merges[pair] = new_id
    return merges


def test_incremental_trainer_equals_naive_trainer():
    text = load_plays(genres="roman")[0].text[:30_000] + " aaaa aaa aaaaaa 2026 𝄞𝄞 👋👋"
    counts = Counter(c.encode() for c in regex.findall(GPT2_SPLIT_PATTERN, text))
    assert list(train_merges(counts, 120).items()) == list(naive_merges(text, 120).items())


def test_train_encode_decode_save_load(tmp_path):
    text = load_plays(genres="romances")[0].text
    tok = BPETokenizer().train(text, 400)
    assert tok.vocab_size == 400 and tok.eot_token == 399 and len(tok.merges) == 143
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) < len(text.encode()) / 1.5            # it compresses
    # no <unk>: bytes cover everything
    unseen = "Πάντα ῥεῖ 👋 <|endoftext|>"
    assert tok.decode(tok.encode(unseen, allowed_special="none")) == unseen
    assert tok.encode("x<|endoftext|>", allowed_special="all")[-1] == 399
    path = tok.save(tmp_path / "t.json")
    again = BPETokenizer.load(path)
    assert again.merges == tok.merges and again.special_tokens == tok.special_tokens
    assert again.encode(text) == tok.encode(text)
    assert BPETokenizer().train(text,
                                400).save(tmp_path / "u.json").read_bytes() == path.read_bytes()


def test_gpt2_save_load_round_trip(gpt2, enc, tmp_path):
    again = BPETokenizer.load(gpt2.save(tmp_path / "gpt2.json"))
    text = "Hello 👋, wherefore art thou? <|endoftext|>"
    assert again.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")


# ---- the course tokenizer shipped in data/ ----

def test_course_tokenizer_loads_and_round_trips(corpus):
    tok = course_tokenizer()
    assert tok.vocab_size == 1024 and tok.eot_token == 1023 and len(tok.merges) == 767
    sample = corpus[:200_000]
    ids = tok.encode(sample)
    assert max(ids) < 1023 and tok.decode(ids) == sample
    assert len(ids) < len(sample.encode()) / 2


def test_retraining_reproduces_the_course_tokenizer(tmp_path):
    from gptlib.data import build_course_tokenizer
    path = build_course_tokenizer(1024, tmp_path / "shakespeare-1024.json")
    assert path.read_bytes() == (gptlib.DATA_DIR / "tokenizers" / "shakespeare-1024.json").read_bytes()


def test_course_tokenizer_missing_size_is_clear():
    with pytest.raises(FileNotFoundError, match="build_course_tokenizer"):
        course_tokenizer(777)


def test_course_tokenizer_hash_is_the_one_in_data_readme():
    """Policy test: the shipped file and data/README.md agree (no change to gptlib can fail it)."""
    import hashlib
    import re
    readme = (gptlib.DATA_DIR / "README.md").read_text()
    row = next(line for line in readme.splitlines()
               if line.startswith("| `tokenizers/shakespeare-1024.json`"))
    recorded = re.search(r"sha256 `([0-9a-f]{64})`", row).group(1)
    raw = (gptlib.DATA_DIR / "tokenizers" / "shakespeare-1024.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == recorded


def test_an_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    from gptlib import util                      # the one atomic write: gptlib.util.atomic_path
    path = tmp_path / "tok.json"
    small = BPETokenizer().train("aaab aaab abab " * 20, 260)
    small.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(util.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        BPETokenizer().train("zzzy zzzy " * 30, 259).save(path)
    assert path.read_bytes() == before and BPETokenizer.load(path).merges == small.merges
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]                 # no temporary left


def test_one_loader_and_one_protocol_for_both_kinds_of_tokenizer(tmp_path):
    from gptlib.tokenizer import Tokenizer, course_tokenizer_path, load_tokenizer
    course, gpt2 = load_tokenizer("course"), load_tokenizer("gpt2")
    assert isinstance(course,
                      BPETokenizer) and course.merges == BPETokenizer.load(course_tokenizer_path()).merges
    assert course.n_vocab == course.vocab_size == 1024 and gpt2.n_vocab == 50257
    for t in (course, gpt2):
        assert isinstance(t,
                          Tokenizer) and t.decode(t.encode_ordinary("To be, or not")) == "To be, or not"
    assert not isinstance("a string", Tokenizer)
    course.save(tmp_path / "t.json")
    assert load_tokenizer(tmp_path / "t.json").merges == course.merges
    course.save_pretrained(tmp_path / "hf")
    assert load_tokenizer(str(tmp_path / "hf")).encode("Thou art") == course.encode("Thou art")
    with pytest.raises(FileNotFoundError, match="'course', 'gpt2', a .json file"):
        load_tokenizer("shakespeare-4096")
