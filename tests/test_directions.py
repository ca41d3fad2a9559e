import numpy as np
import pytest
import torch
from torch import nn

import topo_landscape as tl


def conv_model():
    return nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5)
    )


@pytest.mark.parametrize("n", [1, 2, 3])
def test_filter_norms_match_weights(n):
    model = conv_model()
    dirs = tl.random_directions(model, n=n, normalization="filter", seed=1)
    params = dict(model.named_parameters())
    assert sorted(dirs.parameter_names) == ["0.weight", "4.weight"]  # 1-D ones are left out
    for d in dirs:
        for name, t in d.items():
            w = params[name].detach()
            want = w.reshape(w.shape[0], -1).norm(dim=1)
            got = t.reshape(t.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=0)


def test_directions_are_orthogonal_and_report_cosines():
    model = conv_model()
    dirs = tl.random_directions(model, n=3, seed=2)
    flat = np.stack(
        [np.concatenate([t.double().ravel().numpy() for t in d.values()]) for d in dirs]
    )
    gram = flat @ flat.T
    np.testing.assert_allclose(dirs.norms, np.sqrt(np.diag(gram)), rtol=1e-12)
    np.testing.assert_allclose(dirs.cosines, gram / np.outer(dirs.norms, dirs.norms), atol=1e-12)
    off = dirs.cosines[~np.eye(3, dtype=bool)]
    assert np.abs(off).max() < 1e-6  # exact up to the cast to float32


@pytest.mark.parametrize("normalization", ["layer", "global"])
def test_layer_and_global_norms(normalization):
    model = conv_model()
    dirs = tl.random_directions(model, n=2, normalization=normalization, seed=3)
    params = dict(model.named_parameters())
    for d in dirs:
        if normalization == "layer":
            for name, t in d.items():
                assert float(t.norm()) == pytest.approx(
                    float(params[name].detach().norm()), rel=1e-5
                )
        else:
            total = np.sqrt(sum(float(params[n].detach().norm()) ** 2 for n in d))
            assert np.sqrt(sum(float(t.norm()) ** 2 for t in d.values())) == pytest.approx(
                total, rel=1e-5
            )
    assert abs(dirs.cosines[0, 1]) < 1e-6


def test_no_normalization_keeps_the_first_draw():
    model = nn.Linear(50, 40)
    dirs = tl.random_directions(model, n=2, normalization=None, seed=4)
    g = torch.Generator().manual_seed(4)
    first = torch.randn((2, 40, 50), generator=g, dtype=torch.float64)[0]
    torch.testing.assert_close(dirs[0]["weight"], first.float())
    assert abs(dirs.cosines[0, 1]) < 1e-6


def test_include_1d_and_parameter_patterns():
    model = conv_model()
    dirs = tl.random_directions(model, n=2, include_1d=True, seed=0)
    assert set(dirs.parameter_names) == {n for n, _ in model.named_parameters()}
    bn = dict(model.named_parameters())["1.weight"].detach()
    assert float(dirs[0]["1.weight"].norm()) == pytest.approx(float(bn.norm()), rel=1e-5)
    only = tl.random_directions(model, n=1, parameters=["4.*"], seed=0)
    assert only.parameter_names == ("4.weight",)


def test_same_seed_same_directions():
    model = conv_model()
    a = tl.random_directions(model, n=2, seed=7)
    b = tl.random_directions(model, n=2, seed=7)
    c = tl.random_directions(model, n=2, seed=8)
    assert a.sha256 == b.sha256 != c.sha256
    for da, db in zip(a, b):
        for name in da:
            assert torch.equal(da[name], db[name])
    fresh = tl.random_directions(model, n=1)
    assert isinstance(fresh.seed, int)  # drawn and recorded
    assert tl.random_directions(model, n=1, seed=fresh.seed).sha256 == fresh.sha256


def test_weights_are_not_touched():
    model = conv_model()
    before = [p.detach().clone() for p in model.parameters()]
    tl.random_directions(model, n=3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_save_load_and_apply_to_another_instance(tmp_path):
    model = conv_model()
    dirs = tl.random_directions(model, n=2, seed=5)
    dirs.save(tmp_path / "dirs.pt")
    back = tl.Directions.load(tmp_path / "dirs.pt")
    assert back.sha256 == dirs.sha256
    assert back.normalization == "filter" and back.seed == 5 and back.kind == "random"
    np.testing.assert_allclose(back.cosines, dirs.cosines)
    back.check(conv_model())  # same architecture, other weights: fine
    with pytest.raises(ValueError, match="directions: .*'0.weight'.*shape"):
        back.check(
            nn.Sequential(
                nn.Conv2d(3, 7, 3),
                nn.BatchNorm2d(7),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(7 * 4 * 4, 5),
            )
        )
    with pytest.raises(ValueError, match="directions: .*no parameter"):
        back.check(nn.Linear(3, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=0), "n: expected a positive integer"),
        (dict(n=1.5), "n: expected a positive integer"),
        (dict(normalization="filterwise"), "normalization: expected one of"),
        (dict(seed="x"), "seed: expected an integer"),
        (dict(parameters=["nothing.*"]), "parameters: no parameter name matches"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tl.random_directions(conv_model(), **kwargs)


def test_take_selects_directions_and_their_eigenvalues():
    model = conv_model()
    dirs = tl.random_directions(model, n=3, seed=0)
    two = dirs.take([2, 0])
    assert len(two) == 2 and two[0] is dirs[2] and two[1] is dirs[0]
    fake = tl.Directions(
        vectors=dirs.vectors,
        signature=dirs.signature,
        kind="hessian",
        eigenvalues=np.array([3.0, 2.0, 1.0]),
        residuals=np.zeros(3),
    )
    np.testing.assert_array_equal(fake.take([0, 1]).eigenvalues, [3.0, 2.0])
    with pytest.raises(ValueError, match="indices: expected positions among the 3"):
        dirs.take([3])
