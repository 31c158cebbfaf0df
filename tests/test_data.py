"""gptlib.data: the corpus API, the split by play, passages, token shards, windows and batches."""
import numpy as np
import pytest
import torch

from gptlib.data import (VAL_PLAYS, Play, TokenWindows, encode_plays, get_batch, load_passages,
                         load_plays,
                         load_shard, make_dataloader, make_windows, passages, split_by_play,
                             write_shard)
from gptlib.tokenizer import course_tokenizer, gpt2_tokenizer


@pytest.fixture(scope="module")
def plays():
    return load_plays()


def test_load_plays(plays):
    assert len(plays) == 38 and all(isinstance(p, Play) for p in plays)
    assert {p.genre for p in plays} == {"comedies", "histories", "problems", "roman", "romances",
                                        "tragedies"}
    mac = next(p for p in plays if p.play == "macbeth")
    assert mac.title == "Macbeth" and mac.genre == "tragedies" and mac.text.startswith("ACT I\n")
    tragedies = load_plays(genres="tragedies")
    assert len(tragedies) == 6 and {p.genre for p in tragedies} == {"tragedies"}
    assert len(load_plays(genres=["roman", "romances"])) == 8
    with pytest.raises(ValueError, match="unknown genres"):
        load_plays(genres="sonnets")
    with pytest.raises(FileNotFoundError, match="GPTLIB_DATA"):
        load_plays(data_dir="/nonexistent")


def test_split_by_play_is_deterministic_and_leak_free(plays):
    train, val = split_by_play(plays)
    assert [p.play for p in val] == [p.play for p in plays if p.play in VAL_PLAYS]
    assert not {p.play for p in train} & {p.play for p in val}
    assert len(train) + len(val) == len(plays) == 38 and len(val) == 6
    assert {p.genre for p in val} == {p.genre for p in plays}
    assert split_by_play(plays) == (train, val)
    # no long line of a validation play appears in a training play
    val_lines = {line for p in val for line in p.text.split("\n") if len(line) > 40}
    assert not val_lines & {line for p in train for line in p.text.split("\n")}
    with pytest.raises(ValueError, match="not in the list"):
        split_by_play(plays, val_plays=("hamlet", "the-sonnets"))


def test_passages(plays):
    mac = passages(next(p for p in plays if p.play == "macbeth"))
    assert (mac[0].speaker, mac[0].act, mac[0].scene) == ("First Witch", 1, 1)
    assert mac[0].text == "When shall we three meet again\nIn thunder, lightning, or in rain?"
    assert all(x.play == "macbeth" and x.genre == "tragedies" for x in mac)
    assert {x.act for x in mac} == {1, 2, 3, 4, 5}
    assert ("LADY MACBETH", 5) in {(x.speaker, x.act) for x in mac}
    everything = load_passages(plays)
    assert len(everything) > 30_000
    assert all(x.speaker and x.text and 0 <= x.act <= 5 and ":" not in x.speaker for x in everything)
    assert all(x.text in p.text for p in plays[:3] for x in passages(p))
    # acts and scenes never go backwards within a play
    for p in plays:
        keys = [(x.act, x.scene) for x in passages(p)]
        assert all(a[0] <= b[0] for a, b in zip(keys, keys[1:])), p.play


def test_shards_round_trip(tmp_path):
    toks = np.array([0, 1, 50256, 65535, 7], dtype=np.int64)
    path = write_shard(toks, tmp_path / "a" / "x.bin")
    assert path.stat().st_size == 2 * len(toks)
    back = load_shard(path)
    assert isinstance(back,
                      np.memmap) and back.dtype == np.uint16 and back.tolist() == toks.tolist()
    assert load_shard(write_shard(np.zeros(0, dtype=np.int64), tmp_path / "empty.bin")).size == 0


def test_shard_errors(tmp_path):
    with pytest.raises(ValueError, match="0..65535"):
        write_shard(np.array([65536]), tmp_path / "x.bin")
    with pytest.raises(ValueError, match="0..65535"):
        write_shard(np.array([-1, 3]), tmp_path / "x.bin")
    with pytest.raises(TypeError, match="1-d array of integer"):
        write_shard(np.zeros((2, 2), dtype=np.int64), tmp_path / "x.bin")
    with pytest.raises(TypeError, match="1-d array of integer"):
        write_shard(np.array([0.5]), tmp_path / "x.bin")
    with pytest.raises(FileNotFoundError, match="write_shard"):
        load_shard(tmp_path / "missing.bin")
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="odd number of bytes"):
        load_shard(tmp_path / "odd.bin")


@pytest.mark.parametrize("which", ["gpt2", "course"])
def test_encode_plays_puts_eot_between_plays(plays, which):
    tok = gpt2_tokenizer() if which == "gpt2" else course_tokenizer()
    few = plays[:3]
    ids = encode_plays(few, tok)
    assert ids.dtype == np.int64 and ids[-1] == tok.eot_token and (ids == tok.eot_token).sum() == 3
    parts = np.split(ids, np.flatnonzero(ids == tok.eot_token) + 1)[:3]
    assert [tok.decode(p[:-1].tolist()) for p in parts] == [p.text for p in few]


def test_make_windows():
    x, y = make_windows(torch.arange(10, 27), 4, 3)
    assert x.shape == y.shape == (5, 4) and x.dtype == torch.int64
    assert x[1].tolist() == [13, 14, 15, 16] and y[1].tolist() == [14, 15, 16, 17] and y[-1, -1] == 26
    with pytest.raises(ValueError, match="block_size \\+ 1"):
        make_windows(torch.arange(4), 4, 1)


def test_token_windows_dataset_and_loader():
    toks = np.arange(1000, 1103, dtype=np.uint16)                       # N = 103
    ds = TokenWindows(toks, block_size=8, stride=5)
    xw, yw = make_windows(torch.from_numpy(toks.astype(np.int64)), 8, 5)
    assert len(ds) == len(xw) == (103 - 9) // 5 + 1
    assert torch.equal(torch.stack([ds[i][0] for i in range(len(ds))]), xw)
    assert torch.equal(torch.stack([ds[i][1] for i in range(len(ds))]), yw)
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ValueError, match="block_size \\+ 1"):
        TokenWindows(toks[:8], 8)
    with pytest.raises(ValueError, match="positive int"):
        TokenWindows(toks, 0)
    a = [x.tolist() for x, _ in make_dataloader(toks, 8, 4, seed=3)]
    b = [x.tolist() for x, _ in make_dataloader(toks, 8, 4, seed=3)]
    c = [x.tolist() for x, _ in make_dataloader(toks, 8, 4, seed=4)]
    assert a == b and a != c and len(a) == len(TokenWindows(toks, 8)) // 4
    x, y = next(iter(make_dataloader(toks, 8, 4, shuffle=False)))
    assert x.shape == (4, 8) and x[0, 0] == 1000 and x[1, 0] == 1008 and torch.equal(x[:, 1:], y[:, :-1])


def test_get_batch():
    toks = np.arange(500, 600, dtype=np.uint16)
    x, y = get_batch(toks, 3, 7, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (3, 7) and x.dtype == torch.int64
    # consecutive tokens: y is x shifted
    assert torch.equal(y, x + 1)
    assert torch.equal(get_batch(toks, 3, 7, torch.Generator().manual_seed(0))[0], x)
    assert int(x.min()) >= 500 and int(y.max()) <= 599
    # only one window fits
    x, y = get_batch(torch.arange(9), 5, 8, torch.Generator().manual_seed(1))
    assert (x == torch.arange(8)).all() and (y == torch.arange(1, 9)).all()
    with pytest.raises(ValueError, match="block_size \\+ 1"):
        get_batch(toks[:7], 1, 7)


def test_an_interrupted_shard_write_keeps_the_old_shard(tmp_path, monkeypatch):
    import numpy as np
    from gptlib import data, util
    path = data.write_shard(np.arange(10), tmp_path / "train.bin")
    monkeypatch.setattr(util.os, "replace",
                        lambda *a: (_ for _ in ()).throw(KeyboardInterrupt("interrupted")))
    # the run dies after writing, before the rename
    with pytest.raises(KeyboardInterrupt):
        data.write_shard(np.arange(5000), path)
    assert data.load_shard(path).tolist() == list(range(10))
    assert [p.name for p in tmp_path.iterdir()] == ["train.bin"]            # no temporary left


# ------------------------------------------------------------------ one window cutter:
# gptlib.data.windows
def test_windows_cut_x_and_y_one_token_apart_from_any_container(tmp_path):
    import numpy as np
    from gptlib.data import load_shard, windows, write_shard
    ids = np.arange(100, 140)
    shard = load_shard(write_shard(ids, tmp_path / "w.bin"))
    for tokens in (ids, shard, torch.from_numpy(ids), ids.tolist()):
        x, y = windows(tokens, [0, 3, 39 - 8], 8)
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (3, 8)
        assert x[1].tolist() == list(range(103, 111)) and y[1].tolist() == list(range(104, 112))
        # the last window ends on the last token
        assert y[2, -1].item() == 139


def test_windows_agree_with_the_exercise_the_dataset_and_get_batch():
    import numpy as np
    from gptlib.data import windows
    toks = torch.arange(50, 90)
    x, y = windows(toks, range(0, 40 - 6, 3), 5)
    mx, my = make_windows(toks, 5, 3)
    assert torch.equal(x, mx) and torch.equal(y, my)
    ds = TokenWindows(toks.numpy(), 5, 3)
    assert len(ds) == len(mx) and all(torch.equal(ds[i][0], mx[i]) for i in range(len(ds)))
    gx, gy = get_batch(np.asarray(toks), 16, 5, torch.Generator().manual_seed(0))
    assert torch.equal(gx[:, 1:], gy[:, :-1]) and torch.equal(gy - gx, torch.ones_like(gx))


@pytest.mark.parametrize("starts, match", [([-1], "start -1 is out of range 0..31"),
                                           ([32], "start 32 is out of range 0..31")])
def test_windows_past_either_end_are_a_clear_error(starts, match):
    from gptlib.data import windows
    with pytest.raises(ValueError, match=match):
        windows(list(range(40)), starts, 8)


@pytest.mark.parametrize("kw", [dict(block_size=0), dict(block_size=True), dict(block_size=2.0),
                                dict(stride=0), dict(stride=-2)])
def test_sizes_must_be_positive_ints(kw):
    with pytest.raises(ValueError, match="must be a positive int"):
        TokenWindows(list(range(40)), **{"block_size": 4, **kw})


# Hand-checked against the files in data/shakespeare/ (read with a text viewer, not with gptlib):
# the play,
# act and scene (from the ACT/SCENE headings above the speech), the speaker heading, the speech's
# first line,
# a line further on in the same speech, and the speaker of the speech that follows (None: the
# play's last).
# Act 0 is the text before ACT I (an induction); a prologue inside ACT I before SCENE I is scene 0.
REFERENCE_PASSAGES = [
    # play                      act sc  speaker          first line
    #          later line in the speech                               next speaker
    ("macbeth",                  5, 5, "MACBETH",       "She should have died hereafter;",
     "Signifying nothing.",                                 "Messenger"),
    ("hamlet",                   3, 1, "HAMLET",
     "To be, or not to be: that is the question:",       "Be all my sins remember'd.",
         "OPHELIA"),
    ("romeo-and-juliet",         1, 0, "Prologue",      "Two households, both alike in dignity,",
     "In fair Verona, where we lay our scene,",             None),
    ("romeo-and-juliet",         2, 2, "JULIET",
     "O Romeo, Romeo! wherefore art thou Romeo?",        "And I'll no longer be a Capulet.",
         "ROMEO"),
    ("henry-v",                  1, 0, "Chorus",        "O for a Muse of fire, that would ascend",
     "Within this wooden O the very casques",               None),
    ("henry-v",                  3, 1, "KING HENRY V",  "Once more unto the breach, dear friends, "
                                                        "once more;", "Cry 'God for Harry, "
                                                                      "England, and Saint George!'", "BARDOLPH"),
    ("richard-iii",              1, 1, "GLOUCESTER",    "Now is the winter of our discontent",
     "Brother, good day; what means this armed guard",     "CLARENCE"),
    ("twelfth-night",            1, 1, "DUKE ORSINO",   "If music be the food of love, play on;",
     "That it alone is high fantastical.",                  "CURIO"),
    ("as-you-like-it",           2, 7, "JAQUES",        "All the world's a stage,",
     "Sans teeth, sans eyes, sans taste, sans everything.", "DUKE SENIOR"),
    ("a-midsummer-night-s-dream", 5, 1, "PUCK",         "If we shadows have offended,",
     "And Robin shall restore amends.",                     None),
    ("the-tempest",              4, 1, "PROSPERO",      "You do look, my son, in a moved sort,",
     "Our revels now are ended. These our actors,",         "FERDINAND & MIRANDA"),
    ("julius-caesar",            3, 2, "ANTONY",        "Friends, Romans, countrymen, lend me your "
                                                        "ears;",  "And I must pause till it come "
                                                                  "back to me.",
                                                                      "First Citizen"),
    ("the-merchant-of-venice",   4, 1, "PORTIA",        "The quality of mercy is not strain'd,",
     "Must needs give sentence 'gainst the merchant there.", "SHYLOCK"),
    ("the-taming-of-the-shrew",  0, 1, "SLY",           "I'll pheeze you, in faith.",
     "I'll pheeze you, in faith.",                          "Hostess"),
]
GENRES = {"macbeth": "tragedies", "hamlet": "tragedies", "romeo-and-juliet": "tragedies",
          "henry-v": "histories",
          "richard-iii": "histories", "twelfth-night": "comedies", "as-you-like-it": "comedies",
          "a-midsummer-night-s-dream": "comedies", "the-tempest": "romances",
              "julius-caesar": "roman",
          "the-merchant-of-venice": "problems", "the-taming-of-the-shrew": "problems"}


@pytest.mark.parametrize("play, act, scene, speaker, first, later, nxt", REFERENCE_PASSAGES,
                         ids=[f"{r[0]}-{r[1]}.{r[2]}-{r[3]}" for r in REFERENCE_PASSAGES])
def test_passages_match_hand_checked_reference(plays, play, act, scene, speaker, first, later, nxt):
    ps = passages(next(p for p in plays if p.play == play))
    hits = [k for k, x in enumerate(ps) if x.text.split("\n")[0] == first]
    assert len(hits) == 1, f"{play}: the speech starting {first!r} should be one passage, found {len(hits)}"
    k = hits[0]
    x = ps[k]
    assert (x.play, x.genre, x.act, x.scene, x.speaker) == (play, GENRES[play], act, scene, speaker)
    assert later in x.text.split("\n"), f"{play}: {later!r} belongs to {speaker}'s speech"
    if nxt is None:
        # the last passage of the play, or the next one starts a new scene
        assert k == len(ps) - 1 or (ps[k + 1].act, ps[k + 1].scene) != (act, scene)
    else:
        assert ps[k + 1].speaker == nxt and nxt + ":" not in x.text.split("\n")


def test_reference_passages_cover_the_genres():
    """Policy test of this file's own reference table (no change to gptlib can fail it)."""
    genres = {GENRES[r[0]] for r in REFERENCE_PASSAGES}
    assert len({r[0] for r in REFERENCE_PASSAGES}) >= 4 and {"histories", "comedies"} <= genres
    assert len(REFERENCE_PASSAGES) >= 8
