import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def snapshot(model):
    """Exact copies of every parameter and buffer, to compare bit for bit afterwards."""
    return {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}


def assert_unchanged(model, saved):
    now = model.state_dict(keep_vars=True)
    assert list(now) == list(saved)
    for k, v in saved.items():
        assert torch.equal(now[k].detach(), v), f"{k} changed"
