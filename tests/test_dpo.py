"""Chapter 6's preference tuning: the DPO loss, sequence log-probabilities (against transformers), "
"the pairs."""

import copy
import math

import pytest
import torch

import gptlib
from gptlib.data import load_plays
from gptlib.dpo import DPOTask, dpo_loss, preference_pairs, response_logprobs
from gptlib.model import GPT, GPTConfig
from gptlib.tokenizer import course_tokenizer

SHIPPED = gptlib.DATA_DIR / "models" / "shakespeare-4x256"


@pytest.fixture(scope="module")
def tok():
    return course_tokenizer()


@pytest.fixture(scope="module")
def plays():
    keep = ("the-tempest", "macbeth", "as-you-like-it")
    return [p for p in load_plays() if p.play in keep]


def test_dpo_loss_is_log2_at_the_reference_and_has_the_analytic_gradient():
    g = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (torch.randn(7, generator=g, dtype=torch.float64) * 5 for _ in range(4))
    loss, _, _ = dpo_loss(rc, rr, rc, rr, beta=0.3)
    assert float(loss) == pytest.approx(math.log(2), abs=1e-12)
    pc.requires_grad_(True), pr.requires_grad_(True)
    beta = 0.25
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta)
    z = beta * ((pc - rc) - (pr - rr))
    # -log sigmoid(z), written another way
    assert torch.allclose(loss, torch.log1p(torch.exp(-z)).mean())
    gc, gr = torch.autograd.grad(loss, (pc, pr))
    want = -beta * torch.sigmoid(-z.detach()) / len(z)  # d/d log pi(chosen)
    assert torch.allclose(gc, want) and torch.allclose(gr, -want)
    assert torch.allclose(chosen, beta * (pc - rc).detach()) and torch.allclose(
        rejected, beta * (pr - rr).detach()
    )


def test_dpo_loss_by_hand_away_from_the_reference():
    # the policy raised the chosen answer by 1 nat and lowered the rejected one by 1 nat:
    # margin beta * 2
    loss, chosen, rejected = dpo_loss(
        torch.tensor([-1.0]),
        torch.tensor([-3.0]),
        torch.tensor([-2.0]),
        torch.tensor([-2.0]),
        beta=0.5,
    )
    # -log sigmoid(1); swapped: 1.313
    assert float(loss) == pytest.approx(math.log1p(math.exp(-1.0)))
    assert (float(chosen), float(rejected)) == (0.5, -0.5)


def test_a_few_dpo_steps_raise_the_chosen_minus_rejected_margin(tok, plays):
    """Away from policy = reference: a DPO step must move log pi(chosen) - log pi(rejected) up (a
    task that swapped chosen and rejected moves it down, and is still log 2 at the start)."""
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32, dropout=0.0
    )
    model = GPT(cfg)
    pairs = preference_pairs(plays, tok, n=8, seed=0, context_lines=2, max_tokens=64)
    task = DPOTask(pairs[:6], pairs[6:], tok, reference=copy.deepcopy(model), beta=0.5)
    x, y, ref = task.batch("train", list(range(6)))
    loss_fn = task.loss_module(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        loss_fn(x, y, ref).backward()
        opt.step()
    with torch.no_grad():
        lp = response_logprobs(model, x, y)
        loss = float(loss_fn(x, y, ref))
    margin = (lp[:6] - lp[6:]) - (ref[:, 0] - ref[:, 1])  # chosen rows come first in a batch
    assert float(margin.mean()) > 0.5 and int((margin > 0).sum()) >= 5
    assert loss < math.log(2) - 0.1


def test_dpo_loss_rejects_a_non_positive_beta():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="beta=0"):
        dpo_loss(x, x, x, x, beta=0)


def test_response_logprobs_match_transformers_token_by_token(tok):
    from transformers import GPT2LMHeadModel

    ours = GPT.from_pretrained(SHIPPED).eval()
    hf = GPT2LMHeadModel.from_pretrained(SHIPPED).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, tok.vocab_size, (3, 40), generator=g)
    y = torch.randint(0, tok.vocab_size, (3, 40), generator=g)
    y[0, :25], y[1, :3], y[2, 10:20] = -100, -100, -100  # prompts and a hole
    with torch.no_grad():
        got = response_logprobs(ours, x, y)
        logp = hf(x).logits.log_softmax(-1)
    want = torch.stack(
        [sum(logp[b, t, y[b, t]] for t in range(40) if y[b, t] != -100) for b in range(3)]
    )
    assert got.dtype == torch.float32 and got.shape == (3,)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-5)


def test_preference_pairs_are_real_next_lines_against_same_length_lines_of_other_plays(tok, plays):
    from gptlib.data import passages

    pairs = preference_pairs(plays, tok, n=60, seed=3, context_lines=2)
    assert len(pairs) == 60 and pairs == preference_pairs(plays, tok, n=60, seed=3, context_lines=2)
    speeches = {
        p.play: ["\n".join(ln for ln in s.text.split("\n") if ln.strip()) + "\n"
                 for s in passages(p)]
        for p in plays
    }
    for prompt, chosen, rejected in pairs:
        assert prompt.count("\n") == 2 and chosen.endswith("\n") and rejected.endswith("\n")
        home = {
            name for name, texts in speeches.items() if any(prompt + chosen in t for t in texts)
        }
        assert home, "the chosen line must really follow the prompt in a speech"
        away = {name for name, texts in speeches.items() if any(rejected in t for t in texts)}
        assert away - home, "the rejected line must come from another play"
        assert len(tok.encode_ordinary(chosen[:-1])) == len(tok.encode_ordinary(rejected[:-1]))
        assert len(tok.encode_ordinary(prompt + chosen)) <= 129


def test_preference_pairs_need_two_plays(tok, plays):
    with pytest.raises(ValueError, match="at least two plays"):
        preference_pairs(plays[:1], tok, n=5)


def test_the_dpo_task_starts_at_log2_masks_prompts_and_refuses_long_examples(tok, plays):
    model = GPT(
        GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32)
    ).eval()
    pairs = preference_pairs(plays, tok, n=6, seed=0, context_lines=2, max_tokens=64)
    task = DPOTask(pairs[:4], pairs[4:], tok, reference=model, beta=0.1)
    x, y, ref = task.batch("train", [0, 1])
    assert (
        x.shape[0] == 4 and ref.shape == (2, 2) and x.dtype == torch.long and y.dtype == torch.long
    )
    for k, (prompt, answer) in enumerate(
        [
            (pairs[0][0], pairs[0][1]),
            (pairs[1][0], pairs[1][1]),
            (pairs[0][0], pairs[0][2]),
            (pairs[1][0], pairs[1][2]),
        ]
    ):
        scored = [int(t) for t in y[k] if t != -100]
        assert scored == tok.encode_ordinary(answer)  # the answer's tokens, only them
    with torch.no_grad():
        assert float(task.loss_module(model)(x, y, ref)) == pytest.approx(math.log(2), abs=1e-6)
    with pytest.raises(ValueError, match="more than the model's context of 8"):
        DPOTask(
            pairs[:1],
            pairs[1:2],
            tok,
            reference=GPT(
                GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=32)
            ),
        )
    with pytest.raises(ValueError, match="beta=-1"):
        DPOTask(pairs[:1], pairs[1:2], tok, reference=model, beta=-1)


def test_preference_pairs_say_when_the_plays_cannot_give_that_many(tok, plays):
    with pytest.raises(ValueError, match="found only"):
        preference_pairs(plays, tok, n=20, max_tokens=8)  # no prompt + answer fits in 9 tokens
