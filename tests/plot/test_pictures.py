import re

import matplotlib
import numpy as np
import pytest
from matplotlib import colors
from matplotlib.figure import Figure

import topo_landscape as tl


def bowl(n, size=9, seed=0):
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, size)] * n
    mesh = np.meshgrid(*axes, indexing="ij")
    values = sum(m**2 for m in mesh) + 0.3 * np.sin(6 * mesh[0]) + 0.02 * rng.random(mesh[0].shape)
    return tl.Landscape(axes=axes, values=values + 0.5)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_every_picture_is_a_figure_for_1d_to_4d(n):
    land = bowl(n, size=9 if n < 4 else 5)
    tree = tl.merge_tree(land)
    assert isinstance(tl.plot.surface(land), Figure)
    assert isinstance(tl.plot.surface(land, kind="heatmap", log=True), Figure)
    assert isinstance(tl.plot.profile(tree, log=True), Figure)
    assert isinstance(tl.plot.diagram(tree), Figure)
    assert isinstance(tl.plot.diagram(tree, kind="barcode"), Figure)
    assert isinstance(tl.plot.merge_tree(tree), Figure)
    assert isinstance(tl.plot.compare([tree, tree], ["a", "b"]), Figure)
    assert isinstance(tl.plot.compare([land, land]), Figure)
    if n >= 2:
        assert isinstance(tl.plot.surface(land, kind="surface3d"), Figure)
    if n >= 3:  # one panel per pair of axes, plus the colour bar
        assert len(tl.plot.surface(land).axes) == n * (n - 1) // 2 + 1


def wells(x, depths, centres):
    return 2.0 - sum(d * np.exp(-((x - c) ** 2) / (2 * 0.1**2)) for d, c in zip(depths, centres))


def test_profile_geometry():
    x = np.linspace(0, 6, 601)
    depths = [1.0, 0.5, 0.3, 0.1, 0.05]
    tree = tl.merge_tree(tl.Landscape(axes=[x], values=wells(x, depths, [1, 2, 3, 4, 5])))
    basins = tl.plot.profile_layout(tree)
    b = tree.branches
    assert sorted(basin.branch for basin in basins) == list(range(len(b)))
    top = tl.plot.main_basin_top(tree)
    assert top == pytest.approx(np.quantile(tree.values, 0.95))  # above every saddle here
    for basin in basins:
        assert basin.floor == b.birth[basin.branch]
        if b.parent[basin.branch] >= 0:
            assert basin.width == pytest.approx(b.size[basin.branch])  # samples in sub-tree
            assert basin.depth == pytest.approx(b.persistence[basin.branch])  # depth = persistence
            parent = next(p for p in basins if p.branch == b.parent[basin.branch])
            assert parent.left <= basin.left and basin.right <= parent.right  # nested
        else:  # the main basin: cut at the 95th percentile, not at the box's corners
            assert basin.rim == pytest.approx(top)
            assert basin.width == np.count_nonzero(tree.values <= top)
        assert basin.outline[:, 1].min() == pytest.approx(basin.floor)
        assert basin.outline[:, 1].max() == pytest.approx(basin.rim)
        assert basin.outline[0, 0] == basin.left and basin.outline[-1, 0] == basin.right
    fig = tl.plot.profile(tree)
    patches = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("basin-")]
    assert len(patches) == len(b)
    minima = [c for c in fig.axes[0].collections if c.get_gid() == "minima"][0]
    assert len(minima.get_offsets()) == len(b)
    saddles = [c for c in fig.axes[0].collections if c.get_gid() == "saddles"][0]
    assert len(saddles.get_offsets()) == len(b) - 1
    # fewer basins on request: the most persistent ones
    fig = tl.plot.profile(tree, max_basins=3)
    assert sum((p.get_gid() or "").startswith("basin-") for p in fig.axes[0].patches) == 3
    assert len(tl.plot.profile_layout(tree, threshold=0.2)) == 3
    # the layout is deterministic
    again = tl.plot.profile_layout(tree)
    assert all(np.array_equal(a.outline, c.outline) for a, c in zip(basins, again))


def test_profile_width_at_each_height_counts_the_samples_below_it():
    values = np.array([3.0, 1.0, 0.0, 2.0, 4.0])  # one basin: width at y = #samples <= y
    tree = tl.merge_tree(values)
    (basin,) = tl.plot.profile_layout(tree, top=4.0)
    outline = basin.outline
    for y in [0.0, 1.0, 2.0, 3.0, 4.0]:
        xs = outline[np.isclose(outline[:, 1], y), 0]
        assert xs.max() - xs.min() == pytest.approx(np.sum(values <= y))


def width_at(outline, y):
    """The total length of the horizontal line at height y inside a closed outline (even-odd
    rule over the edges' crossings)."""
    a, b = outline, np.roll(outline, -1, axis=0)
    crossing = (a[:, 1] <= y) != (b[:, 1] <= y)
    t = (y - a[crossing, 1]) / (b[crossing, 1] - a[crossing, 1])
    xs = np.sort(a[crossing, 0] + t * (b[crossing, 0] - a[crossing, 0]))
    return float((xs[1::2] - xs[0::2]).sum())


def test_profile_widths_are_exact_sample_counts_at_any_height():
    """Three wells: at 20 heights each, every basin is as wide as the samples of its sub-tree
    (its own and its sub-basins') at or below that height."""
    x = np.linspace(0, 4, 401)
    values = wells(x, [1.0, 0.6, 0.35], [1, 2, 3])
    tree = tl.merge_tree(tl.Landscape(axes=[x], values=values))
    basins = tl.plot.profile_layout(tree, top=values.max())
    assert len(basins) == 3
    rng = np.random.default_rng(0)
    for basin in basins:
        subtree = {basin.branch}
        for other in basins:  # parents come first in the layout
            if other.parent in subtree:
                subtree.add(other.branch)
        mine = np.isin(tree.labels, list(subtree))
        for y in rng.uniform(basin.floor, basin.rim, 20):
            expected = np.count_nonzero(mine & (values <= y))
            assert width_at(basin.outline, y) == pytest.approx(expected), (basin.branch, y)
    # thinned to a few heights per wall: never wider than the samples below; and for one well,
    # exact at those heights
    (main, *_) = tl.plot.profile_layout(tree, top=values.max(), heights=10)
    for y in rng.uniform(main.floor, main.rim, 20):
        assert width_at(main.outline, y) <= np.sum(values <= y)
    one = wells(x, [1.0], [2])
    (bowl_,) = tl.plot.profile_layout(tl.merge_tree(one), top=one.max(), heights=10)
    for y in np.linspace(bowl_.floor, bowl_.rim, 10)[1:-1] + 1e-12:
        assert width_at(bowl_.outline, y) == pytest.approx(np.sum(one <= y))


def test_basins_are_coloured_by_their_mean_loss_by_default():
    """Geniesse et al. colour a basin by its mean loss: here the right well's own samples, those
    below the saddle on its side of it, averaged by hand."""
    x = np.linspace(-2, 2, 201)
    v = (x**2 - 1) ** 2 + 0.2 * x + 1  # two wells, the right one higher
    tree = tl.merge_tree(tl.Landscape(axes=[x], values=v))
    saddle = int(np.argmax(np.where(np.abs(x) < 0.5, v, -np.inf)))
    right = (np.arange(len(v)) > saddle) & (v < v[saddle])
    norm = colors.Normalize(0.0, 3.0)
    cmap = matplotlib.colormaps["viridis"]
    fig = tl.plot.profile(tree, norm=norm)
    (sub,) = [b for b in range(len(tree.branches.birth)) if tree.branches.parent[b] >= 0]
    (patch,) = [p for p in fig.axes[0].patches if p.get_gid() == f"basin-{sub}"]
    np.testing.assert_allclose(patch.get_facecolor(), cmap(norm(v[right].mean())))
    assert v[right].mean() > tree.branches.birth[sub] + 0.3  # (not the minimum's colour)
    assert fig.axes[1].get_ylabel() == "mean loss of the basin"
    with pytest.raises(ValueError, match="color_by: expected 'mean' or 'minimum'"):
        tl.plot.profile(tree, color_by="max")


def test_a_fixed_colour_scale_is_honoured():
    x = np.linspace(0, 6, 301)
    tree = tl.merge_tree(tl.Landscape(axes=[x], values=wells(x, [1.0, 0.5], [2, 4])))
    norm = colors.Normalize(0.0, 10.0)
    fig = tl.plot.profile(tree, norm=norm, color_by="minimum")
    cmap = matplotlib.colormaps["viridis"]
    for patch in fig.axes[0].patches:
        branch = int(patch.get_gid().split("-")[1])
        expected = cmap(norm(tree.branches.birth[branch]))  # the loss at its minimum
        np.testing.assert_allclose(patch.get_facecolor(), expected)
    fig = tl.plot.profile(tree, vmin=1.0, vmax=3.0)
    bar = fig.axes[1]
    assert bar.get_ylim() == pytest.approx((1.0, 3.0))
    land = bowl(2)
    fig = tl.plot.surface(land, vmin=0.0, vmax=5.0)
    assert fig.axes[1].get_ylim() == pytest.approx((0.0, 5.0))
    # compare: one scale over all panels
    a, b = tl.merge_tree(bowl(2)), tl.merge_tree(bowl(2, seed=1))
    fig = tl.plot.compare([a, b])
    drawings = [tl.plot.profile_drawing(t) for t in (a, b)]
    lows = [basin.floor for d in drawings for basin in d.basins]
    highs = [basin.rim for d in drawings for basin in d.basins]
    assert fig.axes[-1].get_ylim() == pytest.approx((min(lows), max(highs)))
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()


def test_html_surface_is_self_contained(tmp_path):
    pytest.importorskip("plotly")
    path = tl.plot.surface_html(bowl(2), tmp_path / "s.html")
    html = open(path, encoding="utf-8").read()
    assert "Plotly.newPlot" in html or "plotly" in html.lower()
    assert not re.search(r"<script[^>]*\bsrc=", html)  # plotly.js is inline
    assert not re.search(r"<link[^>]*\bhref=", html)
    assert len(html) > 1_000_000  # the library itself is embedded


def test_vector_output_and_paper_style(tmp_path):
    before = dict(matplotlib.rcParams)
    with tl.plot.paper_style():
        fig = tl.plot.profile(tl.merge_tree(bowl(2)))
        assert matplotlib.rcParams["font.size"] == 8.0
        fig.savefig(tmp_path / "p.pdf")
        fig.savefig(tmp_path / "p.svg")
    assert dict(matplotlib.rcParams) == before  # no global state left behind
    assert (tmp_path / "p.pdf").read_bytes()[:4] == b"%PDF"
    assert "<svg" in (tmp_path / "p.svg").read_text()


def test_bad_input():
    land = bowl(2)
    with pytest.raises(ValueError, match="kind: expected"):
        tl.plot.surface(land, kind="pie")
    with pytest.raises(TypeError, match="tree: expected a MergeTree"):
        tl.plot.profile(land)
    with pytest.raises(ValueError, match="log: a log axis needs positive losses"):
        tl.plot.profile(tl.merge_tree(land.values - 10), log=True)
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        tl.plot.profile(tl.merge_tree(land), max_basins=0)
    with pytest.raises(ValueError, match="labels: expected 2 labels"):
        tl.plot.compare([land, land], ["one"])


def test_profile_of_a_simplified_tree_with_two_components():
    # two unconnected chains of wells; the left one's shallow well (floor 1.5) lies below the
    # right one's main minimum (2.1), so simplifying renumbers the right main basin from 2 to 1
    import scipy.sparse as sp

    x = np.linspace(0, 6, 301)
    values = np.concatenate([wells(x, [1.0, 0.5], [1, 4]), wells(x, [0.8, 0.3], [1, 4]) + 0.9])
    n = len(x)
    chain = [(i, i + 1) for i in range(n - 1)]
    edges = np.array(chain + [(i + n, j + n) for i, j in chain])
    graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(2 * n, 2 * n))
    points = np.concatenate([x, x + 100])[:, None]
    tree = tl.merge_tree_from_points(points, values, graph=graph.tocsr())
    assert tree.branches.parent.tolist() == [-1, 0, -1, 2]
    shown = tree.simplify(0.6)  # drops both shallow wells: two main basins, no saddle
    assert shown.branches.parent.tolist() == [-1, -1]
    basins = tl.plot.profile_layout(tree, threshold=0.6)
    assert sorted((b.branch, b.parent) for b in basins) == [(0, -1), (1, -1)]
    fig = tl.plot.profile(tree, threshold=0.6)
    saddles = [c for c in fig.axes[0].collections if c.get_gid() == "saddles"]
    assert sum(len(c.get_offsets()) for c in saddles) == 0
    fig = tl.plot.merge_tree(tree, threshold=0.6)
    drawn = {c.get_gid(): len(c.get_offsets()) for c in fig.axes[0].collections}
    assert drawn.get("minima") == 2 and "saddle" not in drawn  # a red dot per minimum


def test_boundary_minima_are_marked_or_left_out_in_pictures():
    a = np.linspace(-1, 1, 31)
    X, Y = np.meshgrid(a, a, indexing="ij")
    # a well inside at (0.2, 0.2), the loss falling to the face x = 1 (a boundary minimum,
    # the global one) and a dip at the face y = -1
    values = (
        1.5
        - 0.8 * np.exp(-((X - 0.2) ** 2 + (Y - 0.2) ** 2) / 0.02)
        - 1.3 * X
        - 0.3 * np.exp(-((X + 0.5) ** 2 + (Y + 1) ** 2) / 0.02)
    )
    tree = tl.merge_tree(tl.Landscape(axes=[a, a], values=values))
    edge = tree.on_boundary
    assert edge[0] and edge.sum() >= 2 and (~edge).sum() >= 1
    fig = tl.plot.profile(tree)
    ax = fig.axes[0]
    hollow = [c for c in ax.collections if c.get_gid() == "boundary-minima"][0]
    solid = [c for c in ax.collections if c.get_gid() == "minima"][0]
    assert len(hollow.get_offsets()) == edge.sum() and len(solid.get_offsets()) == (~edge).sum()
    hidden = tl.plot.profile(tree, boundary="hide").axes[0]
    kept = tree.interior()
    assert len(kept.branches) == (~edge).sum() + 1  # the global minimum's branch stays
    assert sum((p.get_gid() or "").startswith("basin-") for p in hidden.patches) == len(
        kept.branches
    )
    fig = tl.plot.diagram(tree)
    pairs = [c for c in fig.axes[0].collections if c.get_gid() == "boundary-pairs"][0]
    assert len(pairs.get_offsets()) == edge[np.isfinite(tree.pairs[:, 1])].sum()
    bars = tl.plot.diagram(tree, kind="barcode").axes[0].lines
    assert sum(line.get_gid() == "boundary-bar" for line in bars) == edge.sum()
    # the main basin's cut is stated in the figure
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "profile-notes"]
    assert notes and "main basin cut at" in notes[0]


def test_surface_draws_a_named_field():
    a = np.linspace(-1, 1, 9)
    loss = np.add.outer(a**2, a**2)
    land = tl.Landscape(axes=[a, a], values=loss, fields={"loss": loss, "accuracy": 1 - loss / 2})
    fig = tl.plot.surface(land, field="accuracy")
    colour_bar = fig.axes[-1]
    assert colour_bar.get_ylabel() == "accuracy"
    (mappable,) = [
        c for c in fig.axes[0].collections if hasattr(c, "get_array") and c.get_array() is not None
    ][:1]
    assert mappable.norm.vmax == pytest.approx(1.0)  # the field's values, not the loss's
    line = tl.Landscape(axes=[a], values=a**2, fields={"loss": a**2, "iou": 1 - a**2})
    assert tl.plot.surface(line, field="iou").axes[0].get_ylabel() == "iou"
    with pytest.raises(ValueError, match=r"field: expected one of \['accuracy', 'loss'\]"):
        tl.plot.surface(land, field="acc")


def test_compare_on_a_depth_axis_puts_every_floor_at_zero():
    """loss_axis='depth': landscapes at different losses drawn from their own lowest loss on one
    axis; the basins keep their depths (persistence) and the shapes are the same."""
    x = np.linspace(-2, 2, 201)
    v = (x**2 - 1) ** 2 + 0.2 * x
    trees = [tl.merge_tree(tl.Landscape(axes=[x], values=v * s + c)) for s, c in [(1, 0), (2, 100)]]
    fig = tl.plot.compare(trees, loss_axis="depth")
    for ax, tree, scale in zip(fig.axes[:2], trees, [1, 2]):
        floors = [min(p.get_xy()[:, 1]) for p in ax.patches if p.get_gid().startswith("basin")]
        assert min(floors) == pytest.approx(0.0, abs=1e-9)
        second = sorted(floors)[1]  # the other well's floor: its height above the lowest
        assert second == pytest.approx(sorted(tree.branches.birth)[1] - tree.values.min())
        assert second == pytest.approx(scale * (sorted(trees[0].branches.birth)[1] - v.min()))
        assert ax.get_ylabel() == "loss − lowest loss"
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()  # one axis
    with pytest.raises(ValueError, match="log: a depth axis"):
        tl.plot.compare(trees, loss_axis="depth", log=True)
    with pytest.raises(ValueError, match="loss_axis: expected 'shared', 'own' or 'depth'"):
        tl.plot.compare(trees, loss_axis="deep")
