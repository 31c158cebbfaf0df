import pytest
import torch

from gptlib.profile import PROFILE_ENV, get_profile, seed_everything


def test_env_forces_cpu(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "cpu")
    p = get_profile()
    assert (p.name, p.device, p.dtype, p.compile) == ("cpu", "cpu", torch.float32, False)
    assert p.pick(cpu=2, gpu=12) == 2


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="use 'cpu', 'gpu' or 'auto'"):
        get_profile("tpu")


def test_gpu_profile_without_a_gpu_says_what_to_do(monkeypatch):
    """Runs everywhere: the machine is made to look GPU-less, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA or MPS device"):
        get_profile("gpu")


def test_gpu_profile_picks_cuda_bf16_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    p = get_profile("auto")
    assert (p.name, p.device, p.dtype, p.compile) == ("gpu", "cuda", torch.bfloat16, True)
    assert p.pick(cpu=2, gpu=12) == 12


def test_seed_everything_repeats():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))
