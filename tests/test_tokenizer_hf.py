"""BPETokenizer.save_pretrained / from_pretrained: Hugging Face's GPT-2 tokenizer format, checked
offline
against transformers (AutoTokenizer and the text-generation pipeline) for the course tokenizer and
GPT-2's."""
import json
import random
import unicodedata

import pytest
import torch
import transformers
from transformers.utils import logging as hf_logging

from gptlib import util
from gptlib.data import corpus_text, load_plays
from gptlib.tokenizer import ENDOFTEXT, BPETokenizer, course_tokenizer, gpt2_tokenizer
from gptlib.tokenizer_hf import HF_TOKENIZER_FILES, bytes_to_unicode

hf_logging.set_verbosity_error()

ADVERSARIAL = [
    "", " ", "   leading", "trailing   ", "a\n\n\n   b", " \t\t \n\n  \r\n \u3000\u00a0 x",
        " " * 300 + "x",
    "x" + " " * 7 + "\n" * 3 + "\t \t", "\n" * 64, "\r\n\r\n", "word  \n  word", " \n", "\n ",
    "1234567890 3.14159 2026 ٣٤٥ ½ ⅷ 000000000000", "a1b22c333 4444d", "I'll don't we've they're "
                                                                       "she'd 'tis O'er 'LL 'S",
    "'s's'll 've're'd'm 't", "naïve café cafe\u0301 e\u0301\u0301\u0301 Å Å", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𝄞 🀄 "
                                                                              "\U0010FFFD",
    "👋🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️", "你好，世界。日本語のテキスト", "مرحبا بالعالم", "zero\u200bwidth\u200d\ufeff",
        "ＡＢＣ　ｆｕｌｌ",
    "\x00\x01\x7f\x1c\x1d\x1e\x1f\x85\v\f", "a\u2028b\u2029c\u180ed", "<|endoftext|>",
        "doc one<|endoftext|>doc two",
    "<|endoftext", "<|endoftext|><|endoftext|>", " <|endoftext|> ", "x<|endoftext|>\n",
        "Hello , world ! 's",
    "email@example.com http://x.y/z?q=1&r=2", "!!!???...,,,;;;", "''''\"\"\"",
]


def random_strings(n, seed=0):
    rng = random.Random(seed)
    pool = list(" \n\t  aeioustxyzAQ019'.,!-") + ["é", "e\u0301", "ß", "你", "👋", "🏽", "\u200d",
                                                  "𝔣", ENDOFTEXT,
                                                  "  ", "'s", "'ll", "\r\n", "\u00a0", "\u3000",
                                                      "½"]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def corpus():
    return corpus_text(load_plays())


@pytest.fixture(scope="module")
def ours():
    return {"course": course_tokenizer(), "gpt2": BPETokenizer.from_tiktoken(gpt2_tokenizer())}


@pytest.fixture(scope="module")
def saved(ours, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {name: t.save_pretrained(root / name) for name, t in ours.items()}


@pytest.fixture(scope="module")
def hf(saved):
    return {name: transformers.AutoTokenizer.from_pretrained(d) for name, d in saved.items()}


# ---- the format ----

def test_bytes_to_unicode_is_gpt2s_map():
    b2u = bytes_to_unicode()
    assert sorted(b2u) == list(range(256)) and len(set(b2u.values())) == 256
    assert b2u[ord(" ")] == "Ġ" and b2u[ord("\n")] == "Ċ" and b2u[ord("A")] == "A" and b2u[0] == "\u0100"
    assert all(c.isprintable() and not c.isspace() for c in b2u.values())
    # GPT-2's vocab.json, as shipped with transformers' tests: the byte tokens are exactly these
    # characters
    enc = gpt2_tokenizer()
    names = {"".join(b2u[b] for b in token): rank for token, rank in enc._mergeable_ranks.items()}
    assert names["Ġthe"] == 262 and names["!"] == 0 and names["hello"] == 31373


def test_files_written(saved, ours):
    d = saved["gpt2"]
    assert sorted(p.name for p in d.iterdir()) == sorted(HF_TOKENIZER_FILES)
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 50257 and vocab[ENDOFTEXT] == 50256 and vocab["Ġthe"] == 262
    merges = (d / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert merges[0] == "#version: 0.2" and merges[1:3] == ["Ġ t",
                                                            "Ġ a"] and len([m for m in merges if m]) == 50001
    config = json.loads((d / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "GPT2Tokenizer" and config["eos_token"] == ENDOFTEXT
    assert config["added_tokens_decoder"] == {"50256": {"content": ENDOFTEXT, "lstrip": False,
                                                        "normalized": False,
                                                        "rstrip": False, "single_word": False,
                                                            "special": True}}
    course = json.loads((saved["course"] / "vocab.json").read_text(encoding="utf-8"))
    assert len(course) == 1024 and course[ENDOFTEXT] == 1023 and sorted(course.values()) == list(range(1024))


@pytest.mark.parametrize("name", ["course", "gpt2"])
def test_our_from_pretrained_reads_the_files_back(saved, ours, name):
    again = BPETokenizer.from_pretrained(saved[name])
    t = ours[name]
    assert (again.merges, again.byte_ids, again.special_tokens) == (t.merges, t.byte_ids,
                                                                    t.special_tokens)
    assert list(again.merges.items()) == list(t.merges.items())          # the rank order too


# ---- transformers gives our ids ----

@pytest.mark.parametrize("name", ["course", "gpt2"])
def test_autotokenizer_encodes_the_whole_corpus_to_our_ids(hf, ours, corpus, name):
    assert type(hf[name]).__name__ == "GPT2Tokenizer" and len(hf[name]) == ours[name].vocab_size
    want = ours[name].encode_ordinary(corpus)
    got = hf[name](corpus)["input_ids"]
    assert got == want
    assert hf[name].decode(got) == corpus
    if name == "gpt2":
        assert got == gpt2_tokenizer().encode_ordinary(corpus)           # and tiktoken's


@pytest.mark.parametrize("name", ["course", "gpt2"])
def test_autotokenizer_equals_ours_on_adversarial_text(hf, ours, name):
    texts = ADVERSARIAL + random_strings(500)
    got = hf[name](texts)["input_ids"]
    for text, ids in zip(texts, got):
        # transformers always treats the text "<|endoftext|>" as the special token: our
        # allowed_special="all"
        assert ids == ours[name].encode(text, allowed_special="all"), text
        assert hf[name].decode(ids) == text, text
    split = hf[name](texts, split_special_tokens=True)["input_ids"]
    # ... or "none" when asked
    assert split == [ours[name].encode(t, allowed_special="none") for t in texts]


def test_pretokenizer_equals_ours_on_every_assigned_character(hf, ours):
    """The one place HF could differ: its pre-tokenizer (GPT-2's original pattern, run by
    Oniguruma) against
    ours (tiktoken's pattern, run by `regex`). Every assigned, non-private code point, in several
    contexts."""
    cps = [c for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Co", "Cs")]
    texts = ["".join(f"a{chr(c)}b {chr(c)}{chr(c)}1 x{chr(c)}  {chr(c)}\n" for c in cps[i:i + 64])
             for i in range(0, len(cps), 64)]
    got = hf["course"](texts)["input_ids"]
    bad = [t for t, ids in zip(texts, got) if ids != ours["course"].encode_ordinary(t)]
    assert len(cps) > 140_000 and not bad, f"{len(bad)} blocks differ, e.g. {bad[:1]!r}"


def test_text_generation_pipeline_runs_with_a_saved_gpt(tmp_path):
    from gptlib.model import GPT, GPTConfig
    tok = course_tokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2,
                          n_embd=32)).eval()
    # the model first: it wants an empty directory
    model.save_pretrained(tmp_path / "run")
    tok.save_pretrained(tmp_path / "run", model_max_length=64)  # then the tokenizer beside it
    pipe = transformers.pipeline("text-generation", model=str(tmp_path / "run"))
    prompt = "ROMEO:\nBut, soft! what light"
    out = pipe(prompt, max_new_tokens=12, do_sample=False,
               return_tensors=True)[0]["generated_token_ids"]
    x = torch.tensor([tok.encode(prompt)])
    # the same greedy continuation, by hand
    with torch.no_grad():
        for _ in range(12):
            x = torch.cat([x, model(x)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out == x[0].tolist()
    text = pipe(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert text == tok.decode(x[0].tolist())


# ---- writing safely, and bad input ----

def test_refuses_to_overwrite_unless_asked(tmp_path, ours):
    small = BPETokenizer().train("aaab aaab abab " * 20, 260)
    d = small.save_pretrained(tmp_path / "t")
    before = {f: (d / f).read_bytes() for f in HF_TOKENIZER_FILES}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ours["course"].save_pretrained(d)
    assert {f: (d / f).read_bytes() for f in HF_TOKENIZER_FILES} == before
    # e.g. left by transformers' own save_pretrained
    (d / "tokenizer.json").write_text("{}")
    ours["course"].save_pretrained(d, overwrite=True)
    # stale: transformers would have preferred it
    assert not (d / "tokenizer.json").exists()
    assert BPETokenizer.from_pretrained(d).merges == ours["course"].merges
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]   # no temporary folder left behind


def test_a_model_directory_is_fine(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    small = BPETokenizer().train("aaab aaab abab " * 20, 260)
    small.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").read_text() == "{}" and (tmp_path / "vocab.json").exists()


def test_an_interrupted_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    small = BPETokenizer().train("aaab aaab abab " * 20, 260)
    other = BPETokenizer().train("zzzy zzzy " * 30, 259)
    boom = lambda *a: (_ for _ in ()).throw(KeyboardInterrupt("interrupted"))  # noqa: E731
    # the one atomic write: gptlib.util.atomic_path
    monkeypatch.setattr(util.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):                       # a new directory: all or nothing
        small.save_pretrained(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    d = small.save_pretrained(tmp_path / "old")
    before = {f: (d / f).read_bytes() for f in HF_TOKENIZER_FILES}
    monkeypatch.setattr(util.os, "replace", boom)
    # an existing one: old files stay whole
    with pytest.raises(KeyboardInterrupt):
        other.save_pretrained(d, overwrite=True)
    assert {f: (d / f).read_bytes() for f in HF_TOKENIZER_FILES} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_bad_input_is_a_clear_error(tmp_path):
    text = "aaab aaab abab " * 20
    with pytest.raises(ValueError, match="pattern"):
        BPETokenizer(pattern=r"\S+|\s+").train(text, 260).save_pretrained(tmp_path / "a")
    with pytest.raises(ValueError, match="special_tokens="):
        BPETokenizer().train(text, 259, special_tokens=()).save_pretrained(tmp_path / "b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        BPETokenizer().train(text, 260).save_pretrained(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="vocab.json or merges.txt"):
        BPETokenizer.from_pretrained(tmp_path / "missing")
    d = BPETokenizer().train(text, 260).save_pretrained(tmp_path / "c")
    (d / "merges.txt").write_text("#version: 0.2\nq z\n")
    with pytest.raises(ValueError, match="line 2"):
        BPETokenizer.from_pretrained(d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "file"]


def test_more_special_tokens_round_trip(tmp_path):
    tok = BPETokenizer().train("aaab aaab abab " * 20, 262, special_tokens=(ENDOFTEXT, "<|pad|>"))
    d = tok.save_pretrained(tmp_path / "t")
    hf = transformers.AutoTokenizer.from_pretrained(d)
    text = "ab<|pad|>aaab<|endoftext|> abab"
    assert hf(text)["input_ids"] == tok.encode(text, allowed_special="all")
    assert BPETokenizer.from_pretrained(d).special_tokens == tok.special_tokens == {ENDOFTEXT: 260, "<|pad|>": 261}


def test_from_pretrained_refuses_files_it_cannot_represent(tmp_path):
    tok = BPETokenizer().train("aaab aaab abab " * 20, 262)
    d = tok.save_pretrained(tmp_path / "t")
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    lines = (d / "merges.txt").read_text(encoding="utf-8").split("\n")
    (d / "merges.txt").write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]),
                                  encoding="utf-8")
    # ranks by line, ids by merge: they disagree
    with pytest.raises(ValueError, match="merge order"):
        BPETokenizer.from_pretrained(d)
    del vocab[bytes_to_unicode()[0]]
    (d / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(ValueError, match="lacks byte tokens"):
        BPETokenizer.from_pretrained(d)
