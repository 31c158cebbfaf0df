"""The committed data files (data/) are the ones data/README.md describes: hashes, index,
plain-text format. Policy tests: they check the data in the repository, so no change to gptlib can
make them fail."""
import hashlib
import json

import gptlib

DATA = gptlib.DATA_DIR


def test_gpt2_ranks_have_tiktokens_hash():
    h = hashlib.sha256((DATA / "gpt2.tiktoken").read_bytes()).hexdigest()
    assert h == "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


def test_every_play_matches_the_index():
    index = json.loads((DATA / "shakespeare" / "index.json").read_text())
    assert len(index) == 38 and len({p["genre"] for p in index}) == 6
    files = sorted(p.relative_to(DATA).as_posix() for p in (DATA / "shakespeare").rglob("*.txt"))
    assert files == sorted(p["path"] for p in index)
    for p in index:
        raw = (DATA / p["path"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == p["sha256"], p["path"]
        text = raw.decode("utf-8")
        assert len(text) == p["chars"] and "**" not in text and "\\" not in text


def test_plain_text_format():
    text = (DATA / "shakespeare" / "tragedies" / "macbeth.txt").read_text()
    assert text.startswith("ACT I\n\nSCENE I. A desert place.\n\n[Thunder and lightning. Enter "
                           "three Witches]\n\nFirst Witch:\nWhen shall we three meet again\n")
