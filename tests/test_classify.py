"""Chapter 6's genre classifier: the split by play, the labels, the head, padding, bad input, the "
"Wilson interval; the model to fine-tune (the shipped one, or GPT-2: on a GPT-2-shaped model)."""

import math

import pytest
import torch

import gptlib
from gptlib import classify
from gptlib.data import VAL_PLAYS, load_plays
from gptlib.model import GPT, GPTConfig
from gptlib.tokenizer import course_tokenizer
from gptlib.train import Trainer, TrainConfig


@pytest.fixture(scope="module")
def split():
    return classify.genre_split()


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()


def test_split_is_by_play_with_test_plays_unseen_in_pretraining(split):
    names = {s: {p.play for p in plays} for s, plays in split.items()}
    assert (
        not names["train"] & names["val"]
        and not names["train"] & names["test"]
        and not names["val"] & names["test"]
    )
    assert names["test"] == set(VAL_PLAYS)  # held out of Chapter 5's pretraining
    assert len(names["train"]) + len(names["val"]) + len(names["test"]) == len(load_plays())
    for s in split:  # every class in every split
        assert {classify.genre_label(p) for p in split[s]} == {0, 1, 2}


def test_labels_of_hand_checked_plays():
    by_name = {p.play: p for p in load_plays()}
    want = {
        "twelfth-night": "comedy",
        "the-tempest": "comedy",
        "measure-for-measure": "comedy",
        "henry-v": "history",
        "richard-iii": "history",
        "macbeth": "tragedy",
        "julius-caesar": "tragedy",
        "hamlet": "tragedy",
        "coriolanus": "tragedy",
        "a-winter-s-tale": "comedy",
    }
    assert {n: classify.GENRE_CLASSES[classify.genre_label(by_name[n])] for n in want} == want


def test_dataset_windows_are_balanced_and_disjoint(split):
    tok = course_tokenizer()
    sets = {
        s: classify.genre_dataset(split[s], tok, 32, per_class)
        for s, per_class in (("train", 40), ("test", 12))
    }
    for s, d in sets.items():
        assert d["ids"].shape[1] == 32 and len(d["ids"]) == len(d["labels"]) == len(d["plays"])
        assert d["labels"].bincount().tolist() == [len(d["ids"]) // 3] * 3
        rows = [tuple(r) for r in d["ids"].tolist()]
        assert len(set(rows)) == len(rows)  # no window twice
    train_rows = {tuple(r) for r in sets["train"]["ids"].tolist()}
    # no passage in train and test
    assert not train_rows & {tuple(r) for r in sets["test"]["ids"].tolist()}
    assert not set(sets["train"]["plays"]) & set(sets["test"]["plays"])
    macbeth = next(p for p in split["test"] if p.play == "macbeth")
    w = classify._play_windows(macbeth, tok, 32, 3)
    text = tok.decode(w[0].tolist())
    assert "MACBETH:" not in text  # speeches only, no speaker lines
    with pytest.raises(ValueError, match="fewer than the 100000 asked for"):
        classify._play_windows(macbeth, tok, 32, 100000)


def test_logits_equal_the_head_on_the_last_real_state(small_model):
    torch.manual_seed(1)
    clf = classify.GPTClassifier(small_model, 4).eval()
    idx = torch.randint(0, 64, (3, 10))
    mask = torch.tensor([[1] * 10, [1] * 4 + [0] * 6, [1] + [0] * 9])
    with torch.no_grad():
        got = clf(idx, mask)
        h = small_model.hidden_states(idx)  # (B, T, C), final LayerNorm applied
        manual = torch.stack([h[0, 9], h[1, 3], h[2, 0]]) @ clf.head.weight.T + clf.head.bias
    torch.testing.assert_close(got, manual)
    assert clf.config is small_model.config


def test_padding_does_not_change_a_passage_s_logits(small_model):
    clf = classify.GPTClassifier(small_model, 3).eval()
    g = torch.Generator().manual_seed(2)
    passage = torch.randint(0, 64, (1, 7), generator=g)
    with torch.no_grad():
        alone = clf(passage)
        for pad_id in (0, 63):
            padded = torch.cat([passage, torch.full((1, 9), pad_id)], 1)
            mask = torch.tensor([[1] * 7 + [0] * 9])
            torch.testing.assert_close(clf(padded, mask), alone, rtol=1e-5, atol=1e-6)
        other = torch.randint(0, 64, (1, 16), generator=g)  # in a batch with a longer passage
        batch = torch.cat([torch.cat([passage, torch.zeros(1, 9, dtype=torch.long)], 1), other])
        out = clf(batch, torch.tensor([[1] * 7 + [0] * 9, [1] * 16]))
        torch.testing.assert_close(out[:1], alone, rtol=1e-5, atol=1e-6)


def test_bad_input_gets_clear_errors(small_model):
    clf = classify.GPTClassifier(small_model, 3)
    with pytest.raises(
        ValueError,
        match=r"17 tokens is longer than the model's context "
        r"\(block_size=16\)",
    ):
        clf(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="left padding"):
        clf(torch.zeros(1, 4, dtype=torch.long), torch.tensor([[0, 1, 1, 1]]))
    with pytest.raises(ValueError, match="no real token"):
        clf(torch.zeros(2, 4, dtype=torch.long), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="one mask entry per token"):
        clf(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        classify.GPTClassifier(small_model, 1)
    x = torch.zeros(4, 2)
    with pytest.raises(
        ValueError,
        match=r"label 3 \(example 2\) is outside the classes: labels "
        r"must be in 0\.\.2",
    ):
        classify.ClassificationTask(
            (x, torch.tensor([0, 1, 3, 2])), (x, torch.tensor([0, 1, 2, 2])), 3
        )
    with pytest.raises(ValueError, match=r"label -1 \(example 0\).*0\.\.2"):
        classify.ClassificationTask(
            (x, torch.tensor([0, 1, 2, 2])), (x, torch.tensor([-1, 1, 2, 2])), 3
        )
    with pytest.raises(ValueError, match="integer class indices"):
        classify.ClassificationTask(
            (x, torch.tensor([0.0, 1, 2, 2])), (x, torch.tensor([0, 1, 2, 2])), 3
        )
    with pytest.raises(ValueError, match="different numbers of examples"):
        classify.ClassificationTask(
            (x[:3], torch.tensor([0, 1, 2, 2])), (x, torch.tensor([0, 1, 2, 2])), 3
        )
    with pytest.raises(ValueError, match="in both test_plays and val_plays"):
        classify.genre_split(test_plays=("macbeth",), val_plays=("macbeth",))
    with pytest.raises(ValueError, match="not in the corpus"):
        classify.genre_split(test_plays=("no-such-play",))


def test_the_trainer_trains_the_classifier_through_the_task(small_model):
    torch.manual_seed(0)
    body = GPT(small_model.config)
    clf = classify.GPTClassifier(body, 2)
    for name, p in clf.named_parameters():
        p.requires_grad = name.startswith("head.")  # a frozen body: only the head changes
    frozen = {n: p.detach().clone() for n, p in clf.named_parameters() if not p.requires_grad}
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (24, 8), generator=g)
    labels = (ids[:, -1] % 2).long()  # learnable from the last token
    task = classify.ClassificationTask(
        (ids[:16], torch.ones(16, 8, dtype=torch.long), labels[:16]),
        (ids[16:], torch.ones(8, 8, dtype=torch.long), labels[16:]),
        2,
    )
    cfg = TrainConfig(
        max_steps=5, batch_size=8, lr=1e-2, warmup_steps=1, eval_every=0, device="cpu", compile="no"
    )
    log = Trainer(cfg, model=clf, task=task, write=False, verbose=False).fit()
    assert len(log) == 5 and all(math.isfinite(r["loss"]) for r in log)
    assert all(torch.equal(p, frozen[n]) for n, p in clf.named_parameters() if n in frozen)
    clf.eval()
    with torch.no_grad():
        want = float(torch.nn.functional.cross_entropy(clf(ids[16:]), labels[16:]))
    assert log[-1]["val_loss"] == pytest.approx(want, rel=1e-5)
    assert task.n_tokens(task.batch("train", [0, 1])) == 16


def test_training_through_the_task_fits_a_fixed_batch(small_model):
    """It learns: a few full fine-tuning steps on 12 passages must bring their loss far below log 3
    (an optimizer that never steps, a loss that never reaches the body or the head, stays there)."""
    torch.manual_seed(0)
    clf = classify.GPTClassifier(GPT(small_model.config), 3)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 64, (12, 8), generator=g)
    mask, labels = torch.ones_like(ids), torch.arange(12) % 3
    task = classify.ClassificationTask((ids, mask, labels), (ids, mask, labels), 3)

    def loss_now() -> float:
        clf.eval()
        with torch.no_grad():
            return float(task.loss_module(clf)(ids, mask, labels))

    before = loss_now()
    cfg = TrainConfig(
        max_steps=30,
        batch_size=12,
        lr=1e-2,
        min_lr=1e-2,
        warmup_steps=1,
        weight_decay=0.0,
        eval_every=0,
        device="cpu",
        compile="no",
        progress=False,
    )
    Trainer(cfg, model=clf, task=task, write=False, verbose=False).fit()
    after = loss_now()
    assert before == pytest.approx(math.log(3), abs=0.1) and after < 0.3 * before


def test_bag_of_tokens_counts_real_tokens_only():
    cfg = GPTConfig(vocab_size=8, block_size=6, n_layer=1, n_head=1, n_embd=8)
    bow = classify.BagOfTokensClassifier(cfg, 2)
    with torch.no_grad():
        bow.linear.weight.copy_(torch.stack([torch.arange(8.0), torch.zeros(8)]))
        out = bow(torch.tensor([[3, 3, 5, 0, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0, 0]]))
    # 3 twice, 5 once, pads ignored
    assert out[0, 0].item() == pytest.approx(3 * math.log(3) + 5 * math.log(2))


# The optional GPT-2 path (Chapter 6's note "the same chapter on GPT-2"), tested on a randomly
# initialised GPT-2-shaped checkpoint written by transformers: GPT-2's vocabulary (50,257) and
# context (1,024), two narrow blocks, so it runs in seconds and needs no download.
@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("gpt2-shaped")
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2)).save_pretrained(d)
    return d


def _fit(model, task, batch, steps, lr):
    """The mean loss on `batch` before and after `steps` Trainer steps (no dropout, no decay)."""
    loss = task.loss_module(model)

    def now() -> float:
        model.eval()
        with torch.no_grad():
            return float(loss(*batch))

    before = now()
    cfg = TrainConfig(max_steps=steps, batch_size=len(batch[0]), lr=lr, min_lr=lr, warmup_steps=1,
                      weight_decay=0.0, eval_every=0, device="cpu", compile="no", progress=False)
    log = Trainer(cfg, model=model, task=task, write=False, verbose=False).fit()
    assert len(log) == steps and all(math.isfinite(r["loss"]) for r in log)
    return before, now()


def test_the_shipped_model_unless_the_gpu_profile_names_gpt2(gpt2_dir, monkeypatch):
    from gptlib.profile import Profile, get_profile

    shipped = gptlib.DATA_DIR / "models" / "shakespeare-4x256"
    gpu = Profile("gpu", "cuda", torch.bfloat16, compile=True)    # the profile alone: no GPU needed
    monkeypatch.delenv(classify.GPT2_DIR_ENV, raising=False)
    assert classify.finetuning_checkpoint(gpu) == shipped
    monkeypatch.setenv(classify.GPT2_DIR_ENV, str(gpt2_dir))
    assert classify.finetuning_checkpoint(gpu) == gpt2_dir
    assert classify.finetuning_checkpoint(get_profile("cpu")) == shipped  # stored: not GPT-2
    model, tok = classify.load_finetuning_base(classify.finetuning_checkpoint(get_profile("cpu")))
    assert model.config.vocab_size == tok.vocab_size == 1024 and model.config.block_size == 128


def test_a_gpt2_checkpoint_loads_with_gpt2_s_tokenizer(gpt2_dir):
    from transformers import GPT2LMHeadModel

    from gptlib.tokenizer import gpt2_tokenizer

    model, tok = classify.load_finetuning_base(gpt2_dir, dropout=0.0)
    c = model.config
    assert (c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd) == (50257, 1024, 2, 2, 64)
    assert tok.vocab_size == 50257 and tok.eot_token == 50256
    text = "Friends, Romans, countrymen, lend me your ears;\nI come to bury Caesar"
    ids = tok.encode_ordinary(text)
    assert ids == gpt2_tokenizer().encode_ordinary(text) and tok.decode(ids) == text
    x = torch.tensor([ids])
    with torch.no_grad():
        ours, theirs = model.eval()(x), GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()(x).logits
    assert ours.shape == (1, len(ids), 50257) and torch.allclose(ours, theirs, atol=1e-4)


def test_classification_trains_on_the_gpt2_path(gpt2_dir):
    model, tok = classify.load_finetuning_base(gpt2_dir, dropout=0.0)
    train = classify.genre_split()["train"]
    one_per_class = [next(p for p in train if classify.genre_label(p) == k) for k in range(3)]
    data = classify.genre_dataset(one_per_class, tok, 32, per_class=6)
    ids, labels = data["ids"], data["labels"]
    assert ids.shape == (18, 32) and int(ids.max()) < 50257
    assert labels.bincount().tolist() == [6, 6, 6]
    torch.manual_seed(0)
    clf = classify.GPTClassifier(model, 3)
    assert clf(ids[:2]).shape == (2, 3)
    batch = (ids, torch.ones_like(ids), labels)
    task = classify.ClassificationTask(batch, batch, 3)
    before, after = _fit(clf, task, batch, steps=12, lr=3e-3)
    assert before == pytest.approx(math.log(3), abs=0.15) and after < 0.5 * before


def test_instruction_tuning_trains_on_the_gpt2_path(gpt2_dir):
    """The template's two special tokens get GPT-2's next free ids; the tied embedding grows by two
    rows (the old logits unchanged); SFT steps through the Trainer lower the answer loss."""
    from gptlib import sft

    model, tok = classify.load_finetuning_base(gpt2_dir, dropout=0.0)
    stok = sft.sft_tokenizer(tok)
    assert stok.special_tokens == {"<|endoftext|>": 50256, sft.SFT_USER: 50257,
                                   sft.SFT_ASSISTANT: 50258}
    grown = sft.sft_extend_vocab(model, stok.vocab_size, dropout=0.0).eval()
    assert tuple(grown.transformer.wte.weight.shape) == (50259, 64)
    assert grown.lm_head.weight is grown.transformer.wte.weight
    x = torch.tensor([tok.encode_ordinary("Good morrow, my lord.")])
    with torch.no_grad():
        assert torch.equal(grown(x)[..., :50257], model.eval()(x))
    examples = sft.instruction_examples(load_plays()[:1], per_play=2)
    assert {ex.task for ex in examples} == set(sft.SFT_TASKS)
    data = sorted((sft.encode_instruction(stok, ex, grown.config.block_size) for ex in examples),
                  key=lambda d: len(d[0]))[:6]                      # the shortest: a fast test
    ids, n_prompt = data[0]
    assert ids[0] == 50257 and ids[n_prompt - 1] == 50258 and ids[-1] == 50256
    task = sft.SFTTask(data, data, stok.eot_token)
    batch = task.batch("train", list(range(len(data))))
    before, after = _fit(grown, task, batch, steps=8, lr=3e-3)
    assert after < 0.8 * before          # about 10.8 -> 7.8 nats: the answers are being learned


def test_a_folder_that_is_not_gpt2_gets_a_clear_error(gpt2_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder: set GPTLIB_GPT2_DIR"):
        classify.load_finetuning_base(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        classify.load_finetuning_base(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "vocab_size": 32000}')
    with pytest.raises(ValueError, match="only GPT-2"):
        classify.load_finetuning_base(tmp_path)
    chat = gptlib.DATA_DIR / "models" / "shakespeare-4x256-chat"        # a GPT-2 of 1,026 tokens
    with pytest.raises(ValueError, match="1026-token vocabulary, not GPT-2's own 50257.*GPTLIB_GPT2_DIR"):
        classify.load_finetuning_base(chat)
