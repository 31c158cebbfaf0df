"""gptlib.train: the chunked loss, the schedule, the trainer, its command line, DDP, exact resume, checkpoints,
bad input and the shipped model."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gptlib
from gptlib import checkpoint as C
from gptlib import loss as L
from gptlib import optim as O
from gptlib import pretrain as PT
from gptlib import train as T
from gptlib import trainconfig as TC
from gptlib.data import write_shard
from gptlib.model import GPT, GPTConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--model", "nano", "--set", "n_layer=1", "--set", "n_embd=32", "--set", "block_size=16",
        "--batch-size", "8", "--lr", "3e-3", "--warmup-steps", "2", "--eval-every", "2", "--eval-batches", "1",
        "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Real course-tokenizer ids of a little Shakespeare, as train.bin / val.bin shards."""
    from gptlib.data import encode_plays, load_plays
    from gptlib.tokenizer import course_tokenizer
    plays = {p.play: p for p in load_plays()}
    tok = course_tokenizer()
    folder = tmp_path_factory.mktemp("shards")
    write_shard(encode_plays([plays["the-comedy-of-errors"]], tok), folder / "train.bin")
    write_shard(encode_plays([plays["macbeth"]], tok)[:4000], folder / "val.bin")
    return folder


def cli(*args, env_extra=None, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    r = subprocess.run([sys.executable, "-m", "gptlib.train", *args], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------ the chunked loss
@pytest.mark.parametrize("chunk", [7, 128, 10_000])
def test_linear_cross_entropy_equals_the_plain_route_with_gradients(chunk):
    torch.manual_seed(0)
    h = torch.randn(3, 37, 24, requires_grad=True)
    w = torch.randn(101, 24, requires_grad=True)
    y = torch.randint(101, (3, 37))
    y[0, :5] = -100                                                   # ignored positions
    want = F.cross_entropy((h @ w.t()).flatten(0, 1), y.flatten(), ignore_index=-100)
    gw = torch.autograd.grad(want, (h, w))
    got = L.linear_cross_entropy(h, w, y, chunk_size=chunk)
    gg = torch.autograd.grad(got, (h, w))
    assert torch.allclose(got, want, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(gg, gw))
    assert torch.allclose(L.plain_cross_entropy(h, w, y), want, atol=1e-5)


def test_linear_cross_entropy_does_no_gradient_work_under_no_grad():
    from torch.utils.flop_counter import FlopCounterMode
    h = torch.randn(256, 32, requires_grad=True)
    w = torch.randn(500, 32, requires_grad=True)
    y = torch.randint(500, (256,))

    def flops():
        with FlopCounterMode(display=False) as c:
            L.linear_cross_entropy(h, w, y)
        return c.get_total_flops()

    with_grad = flops()
    with torch.no_grad():
        no_grad = flops()
        value = L.linear_cross_entropy(h, w, y)
    assert with_grad == 3 * 2 * 256 * 500 * 32 and no_grad == 2 * 256 * 500 * 32
    assert not value.requires_grad and torch.allclose(value, F.cross_entropy(h @ w.t(), y))


def test_linear_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="linear_cross_entropy needs"):
        L.linear_cross_entropy(torch.randn(4, 8), torch.randn(10, 9), torch.zeros(4, dtype=torch.long))


def test_default_routes_per_device():
    assert L.default_loss_route("cpu") == "plain"
    assert L.default_loss_route("cuda") == "plain" and L.default_loss_route("cuda:1") == "plain"


def test_the_trainer_loss_matches_gpt_logits_whatever_gpt_loss_does():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=2, n_embd=16))
    x = torch.randint(64, (2, 8))
    want = F.cross_entropy(m(x).flatten(0, 1), x.flatten())
    for route in ("plain", "chunked"):
        assert torch.allclose(PT._LossModel(m, route)(x, x), want, atol=1e-6)


# ------------------------------------------------------------------------------------------ optimizer, schedule
def test_param_groups_and_fused_choice():
    m = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=2, n_head=2, n_embd=16))
    decay, plain = O.param_groups(m, 0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert len(decay["params"]) + len(plain["params"]) == len(list(m.parameters()))
    opt = O.configure_optimizer(m, 1e-3, device="cpu")
    assert not opt.defaults["fused"]


def test_lr_schedule_shape():
    lrs = [O.lr_at(s, 1.0, 10, 100, 0.1) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[100] == lrs[119] == 0.1


def test_bits_per_char():
    assert L.bits_per_char(math.log(2), 10, 10) == pytest.approx(1.0)
    assert L.bits_per_char(math.log(2), 10, 20) == pytest.approx(0.5)


def test_window_sampler_covers_each_window_once_per_epoch_and_is_a_function_of_the_index():
    s = PT.WindowSampler(1000, 16, seed=3)
    first = s.starts(0, s.per_epoch)
    offsets = {x % 16 for x in first}
    assert len(offsets) == 1 and len(set(first)) == s.per_epoch
    assert max(first) + 17 <= 1000
    assert PT.WindowSampler(1000, 16, seed=3).starts(70, 5) == s.starts(70, 5)
    assert PT.WindowSampler(1000, 16, seed=4).starts(0, 10) != first[:10]


# ------------------------------------------------------------------------------------------ config validation
@pytest.mark.parametrize("field,value,message", [
    ("lr", 0.0, "lr must be > 0"), ("lr", -1e-3, "lr must be > 0"), ("max_steps", 0, "max_steps must be a positive"),
    ("batch_size", 0, "batch_size must be a positive"), ("batch_size", -4, "batch_size must be a positive"),
    ("grad_accum", 0, "grad_accum must be a positive"), ("lr", float("nan"), "lr must be a finite"),
    ("set", {"n_layers": 2}, "unknown model setting"), ("set", {"vocab_size": 10}, "vocab_size comes from"),
    ("model", "gpt5", "unknown model preset"), ("tokenizer", "bert", "tokenizer must be one of"),
    ("loss", "fast", "loss must be one of"), ("min_lr", 1.0, "min_lr must be in"),
])
def test_train_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        T.TrainConfig(**{field: value})


def test_train_config_json_round_trip():
    c = T.TrainConfig(model="micro", set={"dropout": 0.1}, lr=2e-3)
    assert T.TrainConfig.from_json(c.to_json()) == c
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        T.TrainConfig.from_json('{"learning_rate": 1}')


# ------------------------------------------------------------------------------------------ CLI: bad input
def run_main(capsys, *argv):
    code = T.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_cli_help_documents_every_flag():
    r = subprocess.run([sys.executable, "-m", "gptlib.train", "--help"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    for flag in ("--out", "--model", "--set", "--tokenizer", "--max-steps", "--batch-size", "--grad-accum", "--lr",
                 "--eval-every", "--ckpt-every", "--seed", "--resume", "--device", "--overwrite", "--config"):
        assert flag in r.stdout, flag


@pytest.mark.parametrize("argv,message", [
    (["--lr", "0"], "lr must be > 0"), (["--lr", "-0.1"], "lr must be > 0"),
    (["--max-steps", "0"], "max_steps must be a positive"), (["--max-steps", "-3"], "max_steps must be a positive"),
    (["--batch-size", "0"], "batch_size must be a positive"),
    (["--set", "n_layers=2"], "unknown model setting"), (["--set", "dropout"], "--set takes KEY=VALUE"),
    (["--batch-size", "12", "--grad-accum", "5"], "must split evenly"),
    (["--batch-size", "4096"], "more than the"),
    (["--tokenizer", "nowhere/tok.json"], "no tokenizer"),
])
def test_cli_rejects_bad_input(tmp_path, capsys, shards, argv, message):
    code, err = run_main(capsys, *TINY, "--data", shards, "--max-steps", "2", "--out", tmp_path / "r", *argv)
    assert code == 2 and message in err, err


def test_cli_missing_data_and_config(tmp_path, capsys):
    code, err = run_main(capsys, *TINY, "--data", tmp_path / "none", "--out", tmp_path / "r")
    assert code == 2 and "lacks ['train.bin', 'val.bin']" in err
    code, err = run_main(capsys, "--config", tmp_path / "missing.json", "--out", tmp_path / "r")
    assert code == 2 and "does not exist" in err


def test_cli_refuses_existing_out_resume_without_run_and_different_config(tmp_path, capsys, shards):
    out = tmp_path / "run"
    base = [*TINY, "--data", shards, "--max-steps", "4", "--out", out]
    code, err = run_main(capsys, *base, "--resume")
    assert code == 2 and "holds no run" in err
    assert run_main(capsys, *base, "--ckpt-every", "0")[0] == 0
    before = (out / "final" / "model.safetensors").read_bytes()
    code, err = run_main(capsys, *base)
    assert code == 2 and "already holds a run" in err and "--overwrite" in err
    assert (out / "final" / "model.safetensors").read_bytes() == before          # nothing lost
    code, err = run_main(capsys, *base, "--lr", "1e-3", "--resume")
    assert code == 2 and "differs from the run's" in err and "lr" in err
    code, err = run_main(capsys, *base, "--resume")
    assert code == 2 and "already finished" in err
    assert run_main(capsys, *base, "--overwrite", "--seed", "5")[0] == 0


def test_resume_with_no_checkpoint(tmp_path, capsys, shards):
    out = tmp_path / "run"
    (out).mkdir()
    (out / "train_config.json").write_text(T.TrainConfig(out=str(out)).to_json())
    code, err = run_main(capsys, "--out", out, "--resume")
    assert code == 2 and "no checkpoint to resume from" in err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, shards, monkeypatch):
    calls = {"n": 0}
    real = L.LOSS_ROUTES["plain"]

    def poisoned(h, w, y, *a, **k):
        calls["n"] += 1
        loss = real(h, w, y, *a, **k)
        return loss * float("nan") if calls["n"] > 5 else loss

    monkeypatch.setitem(L.LOSS_ROUTES, "plain", poisoned)
    out = tmp_path / "run"
    code, err = run_main(capsys, *TINY, "--data", shards, "--max-steps", "8", "--ckpt-every", "2",
                         "--eval-every", "0", "--out", out)
    assert code == 2 and "the loss became nan at step" in err and "step-000004" in err and "is kept" in err
    assert [p.name for p in C.list_checkpoints(out)] == ["step-000002", "step-000004"]
    C.verify_checkpoint(out / "checkpoints" / "step-000004")
    assert not (out / "final").exists()


# ------------------------------------------------------------------------------------------ checkpoints
def test_corrupted_or_truncated_checkpoint_is_refused_with_the_fallback(tmp_path, capsys, shards):
    out = tmp_path / "run"
    base = [*TINY, "--data", shards, "--max-steps", "6", "--ckpt-every", "2", "--keep-last", "2", "--out", out]
    assert run_main(capsys, *base)[0] == 0
    assert [p.name for p in C.list_checkpoints(out)] == ["step-000004", "step-000006"]   # keep the last K
    state = torch.load(out / "checkpoints" / "step-000006" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 6 and state["samples_seen"] == 48 and set(state["rng"][0]) == {"python", "numpy",
                                                                                             "torch", "cuda"}
    import shutil
    shutil.rmtree(out / "final")                                      # as if killed just before the end
    w = out / "checkpoints" / "step-000006" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF                                      # one flipped byte
    w.write_bytes(bytes(data))
    code, err = run_main(capsys, *base, "--resume")
    assert code == 2 and "corrupted" in err and "step-000004" in err and "Refusing" in err
    w.write_bytes(bytes(data[:100]))                                  # truncated
    code, err = run_main(capsys, *base, "--resume")
    assert code == 2 and "truncated" in err and "step-000004" in err
    (out / "checkpoints" / "step-000006" / "manifest.json").unlink()
    with pytest.raises(C.CheckpointError, match="no manifest"):
        C.verify_checkpoint(out / "checkpoints" / "step-000006")


def test_checkpoint_loading_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    m = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=2, n_embd=16))
    opt = O.configure_optimizer(m, 1e-3)
    folder = C.save_checkpoint(tmp_path / "checkpoints" / "step-000001", m, opt, {"step": 1, "evil": Evil()})
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|not an allowed"):
        C.load_checkpoint(folder, m, opt)


# ------------------------------------------------------------------------------------------ DDP and exact resume
def test_torchrun_two_processes_log_the_same_losses_as_one(tmp_path, shards):
    args = [*TINY, "--data", str(shards), "--max-steps", "5", "--grad-accum", "2", "--set", "dropout=0.0"]
    cli(*args, "--out", str(tmp_path / "one"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # --standalone: torchrun picks a free port itself (no window between choosing a port and binding it)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "gptlib.train", *args, "--out", str(tmp_path / "two")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cpu x2" in r.stdout
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 5
    assert np.allclose(one, two, rtol=1e-5, atol=0), (one, two)
    assert one[-1] < one[0]
    vals = [[json.loads(l).get("val_loss") for l in (tmp_path / d / "log.jsonl").read_text().splitlines()]
            for d in ("one", "two")]
    assert all((a is None) == (b is None) and (a is None or abs(a - b) < 1e-5 * a) for a, b in zip(*vals))


def test_sigkill_then_resume_is_bitwise_identical(tmp_path, shards):
    args = [*TINY, "--data", str(shards), "--max-steps", "40", "--ckpt-every", "4", "--set", "dropout=0.1"]
    cli(*args, "--out", str(tmp_path / "straight"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-m", "gptlib.train", *args, "--out", str(out)], env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300                     # any checkpoint will do: keep_last deletes old ones
    while not C.list_checkpoints(out) and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "final").exists(), "the run finished before it could be killed"
    assert C.list_checkpoints(out), "killed before its first checkpoint"
    r = cli(*args, "--out", str(out), "--resume")
    assert "steps " in r.stdout and "->40" in r.stdout and "steps 0->" not in r.stdout
    a = (tmp_path / "straight" / "final" / "model.safetensors").read_bytes()
    b = (out / "final" / "model.safetensors").read_bytes()
    assert a == b                                                     # bitwise-identical weights
    assert losses(tmp_path / "straight") == losses(out)               # identical per-step losses, each step once
    steps = [json.loads(l)["step"] for l in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


def test_final_is_a_transformers_checkpoint(tmp_path, capsys, shards):
    import transformers
    out = tmp_path / "run"
    assert run_main(capsys, *TINY, "--data", shards, "--max-steps", "2", "--out", out)[0] == 0
    hf = transformers.GPT2LMHeadModel.from_pretrained(out / "final")
    ours = GPT.from_pretrained(out / "final")
    x = torch.randint(1024, (2, 16))
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, ours(x), atol=1e-4)
    assert (out / "final" / "shakespeare-1024.json").exists()


# ------------------------------------------------------------------------------------------ the shipped model
SHIPPED = gptlib.DATA_DIR / "models" / "shakespeare-4x256"


def test_shipped_model_reproduces_its_card():
    card = (SHIPPED / "README.md").read_text()
    want = float(card.split("validation loss on the first 64 windows of the validation plays: ")[1].split()[0])
    from gptlib.data import VAL_PLAYS, encode_plays, load_plays, split_by_play
    from gptlib.tokenizer import BPETokenizer
    tok = BPETokenizer.load(SHIPPED / "shakespeare-1024.json")
    _, val = split_by_play(load_plays(), VAL_PLAYS)
    model = GPT.from_pretrained(SHIPPED)
    got = L.eval_loss(model, encode_plays(val, tok), max_windows=64)
    assert abs(got - want) < 1e-3, (got, want)
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) < 25e6
    cfg = json.loads((SHIPPED / "train_config.json").read_text())
    assert T.TrainConfig(**cfg).tokenizer == "course"


def test_shipped_model_loads_in_transformers_with_its_tokenizer():
    """Plain transformers, offline: the folder's tokenizer gives our ids, the model our logits, and the pipeline runs."""
    import transformers
    from gptlib.data import VAL_PLAYS, load_plays, split_by_play
    from gptlib.tokenizer import BPETokenizer
    ours = BPETokenizer.load(SHIPPED / "shakespeare-1024.json")
    hf_tok = transformers.AutoTokenizer.from_pretrained(SHIPPED)
    _, val = split_by_play(load_plays(), VAL_PLAYS)
    text = val[0].text[:20000]
    ids = ours.encode(text)
    assert hf_tok(text)["input_ids"] == ids
    hf = transformers.GPT2LMHeadModel.from_pretrained(SHIPPED).eval()
    model = GPT.from_pretrained(SHIPPED).eval()
    x = torch.tensor([ids[:100]])
    with torch.no_grad():
        assert (hf(x).logits - model(x)).abs().max().item() < 1e-4
    gen = transformers.pipeline("text-generation", model=str(SHIPPED), tokenizer=str(SHIPPED))
    out = gen("ROMEO:", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert out.startswith("ROMEO:") and len(out) > len("ROMEO:")


class _Windows(T.Task):
    """A Task made of fixed next-token windows: the Trainer's task path on data whose loss we can compute."""

    def __init__(self, tokens, T_, n_train, n_val):
        w = torch.as_tensor(tokens[: (n_train + n_val) * T_ + 1], dtype=torch.long)
        x = torch.stack([w[i * T_:(i + 1) * T_] for i in range(n_train + n_val)])
        y = torch.stack([w[i * T_ + 1:(i + 1) * T_ + 1] for i in range(n_train + n_val)])
        self.x, self.y, self.n_train, self.n_val = x, y, n_train, n_val

    def batch(self, split, indices):
        off = 0 if split == "train" else self.n_train
        idx = torch.tensor(indices) + off
        return self.x[idx], self.y[idx]

    def loss_module(self, model):
        class L(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, x, y):
                return self.model.loss(x, y)
        return L()


def test_a_task_trains_only_what_requires_grad_and_evaluates_every_val_example():
    torch.manual_seed(0)
    tokens = np.random.default_rng(0).integers(0, 64, 4000)
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32))
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("transformer.h.1.")             # train one block only
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    task = _Windows(tokens, 16, n_train=40, n_val=5)
    cfg = T.TrainConfig(max_steps=6, batch_size=8, lr=1e-2, warmup_steps=1, eval_every=0, eval_batches=4,
                        device="cpu", compile="no")
    tr = T.Trainer(cfg, model=model, task=task, write=False, verbose=False)
    assert tr.eval_starts == [0, 1, 2, 3, 4]                                # every validation example
    log = tr.fit()
    assert len(log) == 6 and all(r["tok_per_s"] > 0 for r in log)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert not torch.equal(model.transformer.h[1].mlp.c_fc.weight, GPT(model.config).transformer.h[1].mlp.c_fc.weight)
    model.eval()
    with torch.no_grad():
        want = float(model.loss(task.x[40:], task.y[40:]))
    assert log[-1]["val_loss"] == pytest.approx(want, rel=1e-5)


def test_a_task_needs_a_model_and_enough_examples():
    task = _Windows(np.arange(400) % 64, 16, n_train=4, n_val=1)
    cfg = T.TrainConfig(max_steps=1, batch_size=8, device="cpu", compile="no")
    with pytest.raises(ValueError, match="model you pass"):
        T.Trainer(cfg, task=task, write=False, verbose=False)
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32))
    with pytest.raises(ValueError, match="at least 8 training examples"):
        T.Trainer(cfg, model=model, task=task, write=False, verbose=False)


def test_ctrl_c_writes_a_checkpoint_says_how_to_continue_and_resume_finishes_the_same_run(tmp_path, shards):
    args = [*TINY, "--data", str(shards), "--max-steps", "400", "--ckpt-every", "0", "--eval-every", "0",
            "--set", "dropout=0.0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "gptlib.train", *args, "--out", str(out)], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    log = out / "log.jsonl"
    while (not log.exists() or len(log.read_text().splitlines()) < 3) and time.time() < deadline \
            and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by SIGINT at step" in stderr and "--resume" in stderr
    [ckpt] = C.list_checkpoints(out)
    step = int(ckpt.name.split("-")[1])
    assert 3 <= step < 400 and f"checkpoint written to {ckpt}" in stderr
    command = stderr.split("Continue with: ")[1].split()
    assert command[:3] == ["python", "-m", "gptlib.train"]
    r = cli(*command[3:], "--max-steps", "400")
    assert f"steps {step}->400" in r.stdout and f"wrote {out}" in r.stdout
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, 401))


def test_a_runs_final_folder_works_in_a_plain_transformers_pipeline(tmp_path, capsys, shards):
    import transformers
    out = tmp_path / "run"
    assert run_main(capsys, *TINY, "--data", shards, "--max-steps", "2", "--out", out)[0] == 0
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                 "generation_config.json"):
        assert (out / "final" / name).exists(), name
    transformers.logging.set_verbosity_error()
    generate = transformers.pipeline("text-generation", model=str(out / "final"), device="cpu")
    text = generate("ROMEO:\n", do_sample=False)[0]["generated_text"]    # no max_new_tokens: the defaults
    assert text.startswith("ROMEO:\n") and len(text) > len("ROMEO:\n")
    tok = transformers.AutoTokenizer.from_pretrained(out / "final")
    from gptlib.tokenizer import course_tokenizer
    assert tok("To be, or not")["input_ids"] == course_tokenizer().encode_ordinary("To be, or not")


def test_help_says_what_the_presets_are_and_every_field_has_a_flag():
    from dataclasses import fields
    text = TC.build_parser().format_help()
    for name in ("nano", "micro", "mini"):
        assert f"{name}: " in " ".join(text.split()), name
    for f in fields(T.TrainConfig):
        assert f.metadata.get("flag", "--" + f.name.replace("_", "-")) in text, f.name


def test_the_shipped_config_names_no_machine_path_and_its_card_no_issue():
    cfg = json.loads((SHIPPED / "train_config.json").read_text())
    assert not Path(cfg["out"]).is_absolute() and not any(
        isinstance(v, str) and v.startswith("/") for v in cfg.values())
    card = (SHIPPED / "README.md").read_text()
    assert "issue" not in card.lower()
    T.TrainConfig.from_json((SHIPPED / "train_config.json").read_text())    # still a valid config
