import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository

# device parameters: CUDA runs where present (on a GPU machine), and is skipped elsewhere
CUDA = pytest.param(
    "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
)
DEVICES = ["cpu", CUDA]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def no_tf32(monkeypatch):
    """TF32 off: a speed setting of the user's that rounds float32 products at 1e-3."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    yield
    torch.set_float32_matmul_precision(previous)


def snapshot(model):
    """Exact copies of every parameter and buffer, to compare bit for bit afterwards."""
    return {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}


def assert_unchanged(model, saved):
    now = model.state_dict(keep_vars=True)
    assert list(now) == list(saved)
    for k, v in saved.items():
        assert torch.equal(now[k].detach(), v), f"{k} changed"
