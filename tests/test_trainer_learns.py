"""The trainer's behaviour, class by class (issue 18): it learns, its optimizer groups, its
schedule, its clipping and its resume state. Each test is fast (a 1-layer model, a few steps), so
the library mutation tests (tests/test_mutants_train.py) can run them on a mutated copy of
gptlib."""
import math
import shutil

import numpy as np
import pytest
import torch

from gptlib.checkpoint import list_checkpoints
from gptlib.model import GPT, GPTConfig
from gptlib.optim import lr_at, param_groups
from gptlib.pretrain import LMTask, WindowSampler
from gptlib.train import Trainer, TrainConfig

T, B = 16, 4
SMALL = {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": T, "dropout": 0.0}


def tokens(n: int, seed: int = 0) -> np.ndarray:
    """A learnable stream: a repeating pattern of 13 ids with a little noise."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.arange(13) * 3 % 64, n // 13 + 1)[:n]
    noise = rng.random(n) < 0.05
    return np.where(noise, rng.integers(64, size=n), base).astype(np.int64)


def config(**kw) -> TrainConfig:
    args = dict(model="nano", set=SMALL, max_steps=12, batch_size=B, lr=1e-2, min_lr=1e-3,
                warmup_steps=2,
                eval_every=0, eval_batches=2, device="cpu", progress=False, ckpt_every=0, seed=0)
    return TrainConfig(**{**args, **kw})


def trainer(cfg: TrainConfig | None = None, n_train: int = B * T + 1, **kw) -> Trainer:
    cfg = cfg or config()
    torch.manual_seed(0)
    model = GPT(cfg.model_config(64))                       # the config's dropout included
    assert model.config.dropout == cfg.set.get("dropout", 0.1)
    val = tokens(4 * T + 1, seed=1)
    return Trainer(cfg, model=model, train_tokens=tokens(n_train), val_tokens=val,
                   write=kw.pop("write", False), verbose=False, **kw)


def test_a_few_steps_on_a_fixed_batch_lower_the_loss():
    tr = trainer()                       # B * T + 1 tokens: every step reads the same B windows
    before = tr.evaluate()
    history = tr.fit()
    x, y = tr.task.batch("train", tr.sampler.starts(0, B))
    with torch.no_grad():
        after = float(tr.eval_model(x, y))
    assert history[-1]["loss"] < history[0]["loss"] - 1.0, [r["loss"] for r in history]
    assert after < before - 1.0 and tr.evaluate() < before


def test_the_weights_the_trainer_returns_are_the_ones_it_trained():
    tr = trainer()
    start = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    tr.fit()
    moved = [n for n, p in tr.model.named_parameters() if not torch.equal(p, start[n])]
    assert len(moved) == len(start)      # every trainable tensor changed


def test_the_optimizer_decays_two_dimensional_weights_only_and_skips_frozen_ones():
    tr = trainer()
    decay, no_decay = tr.optimizer.param_groups
    assert decay["weight_decay"] == tr.config.weight_decay > 0 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    names = {id(p): n for n, p in tr.model.named_parameters()}
    assert {names[id(p)] for g in (decay, no_decay) for p in g["params"]} == set(names.values())
    model = GPT(GPTConfig.preset("nano", vocab_size=64, **SMALL))
    model.transformer.wte.weight.requires_grad_(False)
    groups = param_groups(model, 0.1)
    assert all(p.requires_grad for g in groups for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_each_step_uses_the_scheduled_learning_rate_and_betas():
    tr = trainer(config(max_steps=8, warmup_steps=3))
    seen = []
    real_step = tr.optimizer.step

    def step(*a, **k):
        seen.append([g["lr"] for g in tr.optimizer.param_groups])
        return real_step(*a, **k)

    tr.optimizer.step = step
    tr.fit()
    want = [lr_at(s, 1e-2, 3, 8, 1e-3) for s in range(8)]
    assert [lrs[0] for lrs in seen] == pytest.approx(want)
    assert all(len(set(lrs)) == 1 for lrs in seen)           # every group gets it
    assert [r["lr"] for r in tr.history] == pytest.approx(want)
    assert tr.optimizer.param_groups[0]["betas"] == (0.9, 0.95)


@pytest.mark.parametrize("clip", [0.05, 0.0])
def test_the_optimizer_sees_gradients_clipped_to_grad_clip(clip):
    tr = trainer(config(max_steps=4, grad_clip=clip, lr=3e-2))
    norms = []
    real_step = tr.optimizer.step

    def step(*a, **k):
        grads = [p.grad for p in tr.model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return real_step(*a, **k)

    tr.optimizer.step = step
    tr.fit()
    logged = [r["grad_norm"] for r in tr.history]           # the norm before clipping
    if clip:
        assert all(n <= clip * (1 + 1e-4) for n in norms) and all(g > clip for g in logged)
    else:
        assert norms == pytest.approx(logged, rel=1e-4)      # 0: no clipping at all


def recorded_gradients(tr: Trainer) -> list[torch.Tensor]:
    """Run the trainer; return the flat gradient the optimizer saw at each step."""
    seen, real_step = [], tr.optimizer.step

    def step(*a, **k):
        seen.append(torch.cat([p.grad.flatten() for p in tr.model.parameters()]).clone())
        return real_step(*a, **k)

    tr.optimizer.step = step
    tr.fit()
    return seen


def test_accumulation_equals_one_big_batch():
    a = trainer(config(max_steps=3, grad_clip=0.0), n_train=40 * T)
    b = trainer(config(max_steps=3, grad_clip=0.0, grad_accum=2), n_train=40 * T)
    ga, gb = recorded_gradients(a), recorded_gradients(b)
    assert all(torch.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(ga, gb))
    assert np.allclose([r["loss"] for r in a.history], [r["loss"] for r in b.history], rtol=1e-5)


def test_resume_restores_weights_optimizer_data_position_and_rngs(tmp_path):
    kw = dict(max_steps=6, ckpt_every=3, set={**SMALL, "dropout": 0.1},
              out=str(tmp_path / "straight"))
    straight = trainer(config(**kw), n_train=40 * T, write=True)
    want = [r["loss"] for r in straight.fit()]
    cut = config(**{**kw, "out": str(tmp_path / "cut")})
    trainer(cut, n_train=40 * T, write=True).fit()
    [c3, c6] = list_checkpoints(tmp_path / "cut")
    shutil.rmtree(c6)                                        # as if stopped after step 3
    shutil.rmtree(tmp_path / "cut" / "final")
    resumed = trainer(cut, n_train=40 * T, write=True, resume=True)
    assert resumed.step == 3 and resumed.samples_seen == 3 * B
    got = [r["loss"] for r in resumed.fit()]
    assert got == want[3:]                   # bitwise: the same batches, dropout masks, updates
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_window_sampler_epochs_are_permutations_and_the_shift_moves():
    s = WindowSampler(10 * T + 5, T, seed=3)
    e0, e1 = s.starts(0, s.per_epoch), s.starts(s.per_epoch, s.per_epoch)
    assert len(set(e0)) == len(e0) == 10 and all(0 <= x <= 10 * T + 5 - T - 1 for x in e0 + e1)
    assert sorted(np.diff(sorted(e0))) == [T] * 9
    assert WindowSampler(10 * T + 5, T, seed=3).starts(7, 5) == s.starts(7, 5)


def test_lm_task_batches_are_shifted_windows_and_loss_is_the_mean_cross_entropy():
    ids = tokens(5 * T + 1)
    task = LMTask(ids, ids, T)
    x, y = task.batch("train", [0, T])
    assert torch.equal(x[0], torch.from_numpy(ids[:T]))
    assert torch.equal(y[0], torch.from_numpy(ids[1:T + 1]))
    model = GPT(GPTConfig.preset("nano", vocab_size=64, **SMALL))
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        assert torch.allclose(task.loss_module(model)(x, y), want, atol=1e-6)
    assert math.isclose(float(want), math.log(64), rel_tol=0.1)
