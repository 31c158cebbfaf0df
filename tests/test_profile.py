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


@pytest.mark.parametrize("name,peak", [
    ("NVIDIA L40S", 362e12), ("NVIDIA L4", 121e12), ("NVIDIA L40", 181e12),
    ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A10G", 70e12), ("NVIDIA A10", 125e12),
    ("NVIDIA GH200 480GB", 989e12),
])
def test_peak_flops_matches_the_most_specific_device_name(name, peak):
    from gptlib.profile import peak_flops
    assert peak_flops(name, torch.bfloat16) == peak


def test_no_peak_where_mfu_would_be_a_guess():
    from gptlib.profile import peak_flops
    assert peak_flops("NVIDIA H100 80GB "
                      "HBM3", torch.float32) is None      # float32: no TF32 in gptlib
    assert peak_flops("Intel(R) Xeon(R) CPU", torch.bfloat16) is None


def test_run_profile_applies_a_runs_overrides(monkeypatch):
    from gptlib.profile import run_profile
    monkeypatch.setenv(PROFILE_ENV, "cpu")
    p = run_profile()
    assert (p.device, p.dtype, p.compile) == ("cpu", torch.float32, False)
    p = run_profile("cpu", "bfloat16", "yes")
    assert (p.device, p.dtype, p.compile) == ("cpu", torch.bfloat16, True)
    with p.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        run_profile("cpu", "float16")
    with pytest.raises(ValueError, match="device must be"):
        run_profile("tpu")


def test_run_profile_on_cuda_uses_the_local_rank_and_bf16(monkeypatch):
    from gptlib.profile import run_profile
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    p = run_profile("cuda")
    assert (p.name, p.device, p.dtype, p.compile) == ("gpu", "cuda:1", torch.bfloat16, True)
