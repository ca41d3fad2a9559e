"""Every picture type as drawn by default: readable (no text outside the canvas or over another
label), and showing what it claims to (issue 19)."""

import numpy as np
import pytest
from figure_checks import assert_readable, drawn_width_px, problems
from matplotlib import colors

import topo_landscape as tl


def egg_crate(n=3, size=17):
    axes = [np.linspace(-2, 2, size)] * n
    mesh = np.meshgrid(*axes, indexing="ij")
    values = sum((m**2 - 1) ** 2 + 0.05 * (k + 1) * m for k, m in enumerate(mesh))
    return tl.Landscape(axes=axes, values=values)


def positive(n=2, size=41):
    axes = [np.linspace(-1, 1, size)] * n
    mesh = np.meshgrid(*axes, indexing="ij")
    r2 = sum(m**2 for m in mesh)
    values = 0.003 + 4 * r2 + 0.3 * np.cos(8 * mesh[0]) ** 2 * r2
    return tl.Landscape(axes=axes, values=values)


def hessian_like():
    land = positive(3, 11)
    meta = {
        "directions": {
            "kind": "hessian",
            "normalization": "none",
            "eigenvalues": [812.3, 495.7, 296.0],
        }
    }
    return tl.Landscape(axes=land.axes, values=land.values, metadata=meta)


@pytest.mark.parametrize("make", [egg_crate, positive, hessian_like])
def test_surfaces_are_readable_with_round_ticks_and_honest_arrows(make):
    land = make()
    for kind in ("contour", "heatmap", "surface3d"):
        fig = tl.plot.surface(land, kind=kind)
        assert_readable(fig)
        bar = fig.axes[-1]
        ticks = [t for t in bar.get_yticks() if bar.get_ylim()[0] <= t <= bar.get_ylim()[1]]
        assert 3 <= len(ticks) <= 8
        for t in ticks:  # round: one or two significant digits
            mantissa = abs(t) / 10 ** np.floor(np.log10(abs(t))) if t else 0.0
            assert np.isclose(mantissa * 10, round(mantissa * 10)) or np.isclose(
                mantissa * 4, round(mantissa * 4)
            ), t
    contours = tl.plot.surface(land).axes[0].collections[0]
    assert contours.extend == "neither"  # the scale covers the data: no arrows (also below 0)
    fixed = tl.plot.surface(land, vmax=float(np.median(land.values)))
    assert fixed.axes[0].collections[0].extend == "max"  # data above the scale: an arrow up


def test_one_scale_rule_and_labels_with_units():
    land = positive()
    norm_of = lambda fig: fig.axes[0].collections[0].norm  # noqa: E731
    assert isinstance(norm_of(tl.plot.surface(land)), colors.LogNorm)  # spans decades
    assert not isinstance(norm_of(tl.plot.surface(egg_crate(2))), colors.LogNorm)
    ax = tl.plot.surface(hessian_like()).axes[0]
    assert "λ₁ = 812" in ax.get_xlabel() and "eigenvector" in ax.get_xlabel()
    dirs_meta = {"directions": {"kind": "random", "normalization": "filter"}}
    a = np.linspace(-1, 1, 9)
    rnd = tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2) + 1, metadata=dirs_meta)
    assert "weights' norm per filter" in tl.plot.surface(rnd).axes[0].get_xlabel()


@pytest.mark.parametrize("make", [egg_crate, positive])
def test_profiles_show_every_minimum_and_say_what_they_changed(make):
    tree = tl.merge_tree(make())
    fig = tl.plot.profile(tree, threshold=0.0)
    assert_readable(fig)
    ax = fig.axes[0]
    basins = [p for p in ax.patches if (p.get_gid() or "").startswith("basin-")]
    assert len(basins) == len(tree.branches)
    for patch in basins:  # every basin is a few pixels wide at least
        xy = patch.get_xy()
        assert drawn_width_px(ax, xy[:, 0].min(), xy[:, 0].max()) >= 3.0
    notes = " ".join(t.get_text() for t in ax.texts if t.get_gid() == "profile-notes")
    assert "main basin cut at" in notes
    # colour: the loss at each basin's minimum, on a norm shared when asked
    norm = colors.Normalize(-5, 50)
    fig = tl.plot.profile(tree, norm=norm)
    assert fig.axes[-1].get_ylim() == pytest.approx((-5, 50))


def test_a_default_simplification_keeps_clusters_readable_and_is_stated():
    rng = np.random.default_rng(0)
    a = np.linspace(-1, 1, 41)
    X, Y = np.meshgrid(a, a, indexing="ij")
    wells = np.minimum(1 + 0.05 * (X**2 + Y**2) - 0.05 * np.cos(9 * X) * np.cos(9 * Y), 1.02)
    noise = 2e-5 * rng.random(X.shape)  # bumps on the plateau: many minima, all shallow
    tree = tl.merge_tree(tl.Landscape(axes=[a, a], values=wells + noise))
    assert len(tree.branches) > 20
    fig = tl.plot.profile(tree)
    drawn = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("basin-")]
    assert len(drawn) < len(tree.branches)
    notes = " ".join(t.get_text() for t in fig.axes[0].texts if t.get_gid() == "profile-notes")
    assert "merged" in notes and "shallower than" in notes


def test_merge_tree_branches_do_not_cross_and_axes_are_labelled():
    tree = tl.merge_tree(egg_crate(3, 15))
    fig = tl.plot.merge_tree(tree, threshold=0.0)
    assert_readable(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "loss" and "branches" in ax.get_xlabel()
    vertical, horizontal = [], []
    for line in ax.lines:
        (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
        (vertical if x0 == x1 else horizontal).append((x0, x1, y0, y1))
    assert len(vertical) == len(tree.branches)
    for hx0, hx1, hy, _ in horizontal:  # no horizontal line passes through a vertical one
        lo, hi = sorted((hx0, hx1))
        for vx, _, vy0, vy1 in vertical:
            if lo < vx < hi:
                assert not (min(vy0, vy1) < hy < max(vy0, vy1)), (hy, vx)


def test_diagram_and_barcode_put_the_essential_class_at_infinity():
    tree = tl.merge_tree(egg_crate(2, 41))
    fig = tl.plot.diagram(tree)
    assert_readable(fig)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "∞"
    essential = [c for c in ax.collections if c.get_gid() == "essential"][0]
    assert essential.get_offsets()[0][1] == pytest.approx(ax.get_yticks()[-1])
    bars = tl.plot.diagram(tree, kind="barcode")
    assert_readable(bars)
    ax = bars.axes[0]
    (top,) = [line for line in ax.lines if line.get_gid() == "essential-bar"]
    assert max(top.get_xdata()) == pytest.approx(ax.get_xlim()[1])  # runs to the edge: ∞
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "∞"
    # one bar alone: sensible ticks, and no legend entry for what is not there
    one = tl.merge_tree(np.array([3.0, 1.0, 2.0]))
    ax = tl.plot.diagram(one).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["never merges (death ∞)"]
    assert_readable(tl.plot.diagram(one, kind="barcode"))


def test_figure_checks_catch_what_they_claim_to():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "one", transform=ax.transAxes)
    ax.text(0.5, 0.5, "two", transform=ax.transAxes)
    ax.text(1.5, 0.5, "outside", transform=ax.transAxes)
    found = problems(fig)
    assert any("overlap" in f for f in found) and any("outside" in f for f in found)


def test_compared_profiles_share_one_scale_and_state_their_rules():
    trees = [tl.merge_tree(egg_crate(2, 41)), tl.merge_tree(positive())]
    for ncols in (1, 2):
        fig = tl.plot.compare(trees, ["double wells", "bowl"], ncols=ncols)
        assert_readable(fig)
        assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
        assert "main basin is cut" in fig.get_supxlabel().replace("\n", " ")


def test_shallow_profiles_far_apart_are_flagged_and_can_have_their_own_axes():
    a = np.linspace(-1, 1, 21)
    bowl = np.add.outer(a**2, a**2)
    # three checkpoints of a training run: the loss falls by far more than any basin's depth
    trees = [
        tl.merge_tree(tl.Landscape(axes=[a, a], values=1.0 + k + 0.01 * bowl)) for k in range(3)
    ]
    fig = tl.plot.compare(trees, ["1", "2", "3"], log=False)
    note = fig.get_supxlabel().replace("\n", " ")
    assert "3 of 3 panels span less than 5% of the shared loss axis" in note
    own = tl.plot.compare(trees, ["1", "2", "3"], log=False, loss_axis="own")
    assert_readable(own)
    for ax, k in zip(own.axes, range(3)):
        lo, hi = ax.get_ylim()
        assert lo > 1.0 + k - 0.01 and hi < 1.0 + k + 0.03  # each panel around its own basin
    assert "its own loss axis" in own.get_supxlabel().replace("\n", " ")
    deep = [tl.merge_tree(tl.Landscape(axes=[a, a], values=bowl + k)) for k in range(2)]
    assert "span less than" not in tl.plot.compare(deep, log=False).get_supxlabel()
    with pytest.raises(ValueError, match="loss_axis: expected 'shared', 'own' or 'depth'"):
        tl.plot.compare(trees, loss_axis="mine")


def test_colour_bar_ticks_stay_inside_a_scale_of_many_decades():
    from topo_landscape.plot._common import round_ticks

    ticks = round_ticks(colors.LogNorm(1.47e-4, 2.9e6))
    assert ticks.min() >= 1.47e-4 and ticks.max() <= 2.9e6 and len(ticks) >= 3


def test_trend_plots_read_plainly():
    rows = [
        {
            "checkpoint": f"epoch{i}",
            "index": i,
            "n_minima": 1,
            "total_persistence": 0.0,
            "global_min": 0.7 - 0.2 * i,
        }
        for i in range(3)
    ]
    from topo_landscape.checkpoints import trends

    fig = trends(rows, ["n_minima", "total_persistence", "global_min"])
    assert_readable(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["number of minima", "total persistence", "lowest loss"]
    counts = fig.axes[0]
    assert all(float(t).is_integer() for t in counts.get_yticks())
    assert counts.get_ylim()[0] >= 0 and fig.axes[1].get_ylim()[0] == 0.0
