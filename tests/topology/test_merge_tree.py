import itertools

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import topo_landscape as tl
from topo_landscape.topology import gudhi_pairs

# --- independent references --------------------------------------------------------------------


def brute_force_pairs(values, edges):
    """Elder-rule H0 pairs by a plain union-find over edges sorted by their higher endpoint.

    Written separately from the library: dict-based sets, edges processed one by one; returns
    the sorted nonzero-persistence pairs, non-finite values as +inf.
    """
    f = np.where(np.isfinite(values), values, np.inf)
    key = lambda i: (f[i], i)  # noqa: E731
    parent = {}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    birth = {}
    adjacency = {i: [] for i in range(len(f))}
    for a, b in edges:
        adjacency[a].append(b)
        adjacency[b].append(a)
    pairs = []
    for v in sorted(range(len(f)), key=key):
        parent[v] = v
        birth[v] = v
        for u in adjacency[v]:
            if u not in parent:
                continue
            ru, rv = find(u), find(v)
            if ru == rv:
                continue
            old, young = (ru, rv) if key(birth[ru]) < key(birth[rv]) else (rv, ru)
            if young != find(v) or birth[young] != v:  # v itself joining is not a death
                pairs.append((f[birth[young]], f[v]))
            parent[young] = old
    roots = {find(i) for i in range(len(f))}
    pairs += [(f[birth[r]], np.inf) for r in roots]
    out = np.array([p for p in pairs if p[0] != p[1]], dtype=float).reshape(-1, 2)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def full_stencil_edges(shape):
    """Every pair of grid points at Chebyshev distance 1, by enumeration."""
    coords = list(itertools.product(*[range(s) for s in shape]))
    index = {c: i for i, c in enumerate(coords)}
    edges = []
    for c in coords:
        for d in itertools.product((-1, 0, 1), repeat=len(shape)):
            nb = tuple(a + b for a, b in zip(c, d))
            if any(d) and nb in index and index[c] < index[nb]:
                edges.append((index[c], index[nb]))
    return edges


def mutual_knn_edges(points, k):
    """Mutual k-NN by a dense distance matrix, axes scaled to unit span first."""
    span = points.max(0) - points.min(0)
    x = (points - points.min(0)) / np.where(span > 0, span, 1)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    sets = [set(row) for row in nearest]
    return [(i, j) for i in range(len(x)) for j in sets[i] if i < j and i in sets[j]]


def sorted_pairs(tree):
    p = tree.pairs
    return p[np.lexsort((p[:, 1], p[:, 0]))]


def strict_local_minima(values, edges):
    low = np.ones(len(values), bool)
    for a, b in edges:
        if values[a] >= values[b]:
            low[a] = False
        if values[b] >= values[a]:
            low[b] = False
    return int(low.sum())


# --- gudhi and brute force ---------------------------------------------------------------------

grids = st.integers(2, 4).flatmap(
    lambda n: st.lists(st.integers(2, 5), min_size=n, max_size=n).flatmap(
        lambda shape: st.one_of(
            arrays(float, tuple(shape), elements=st.integers(0, 3).map(float)),  # many ties
            arrays(float, tuple(shape), elements=st.floats(-10, 10, allow_nan=False)),
        )
    )
)


@settings(max_examples=150, deadline=None)
@given(grids)
def test_axis_connectivity_equals_gudhi_cubical(values):
    tree = tl.merge_tree(values, connectivity="axis")
    np.testing.assert_array_equal(sorted_pairs(tree), gudhi_pairs(values))


@settings(max_examples=60, deadline=None)
@given(grids)
def test_full_connectivity_equals_brute_force(values):
    tree = tl.merge_tree(values, connectivity="full")
    expected = brute_force_pairs(values.ravel(), full_stencil_edges(values.shape))
    np.testing.assert_array_equal(sorted_pairs(tree), expected)


def test_grid_edges_match_enumeration():
    for shape in [(3, 4), (2, 3, 2), (2, 2, 2, 3)]:
        ours = {tuple(e) for e in tl.topology.grid_edges(shape, "full").tolist()}
        assert ours == set(full_stencil_edges(shape))
        assert len(tl.topology.grid_edges(shape, "axis")) == sum(
            (s - 1) * np.prod(shape) // s for s in shape
        )


@pytest.mark.parametrize("n, k", [(2, 8), (3, 12)])
def test_knn_equals_brute_force(n, k):
    rng = np.random.default_rng(n)
    points = rng.uniform(-1, 1, size=(300, n)) * np.arange(1, n + 1)  # unequal spans
    values = np.sin(3 * points).sum(1) + 0.1 * rng.standard_normal(300)
    tree = tl.merge_tree_from_points(points, values, k=k)
    edges = mutual_knn_edges(points, k)
    np.testing.assert_array_equal(sorted_pairs(tree), brute_force_pairs(values, edges))
    assert tree.features()["n_minima"] == strict_local_minima(values, edges)
    assert tree.info == {"graph": "knn", "k": k, "mutual": True}


@pytest.mark.slow
def test_knn_with_pynndescent_matches_exact_on_a_smooth_function():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, size=(6000, 5))
    values = ((points**2 - 0.25) ** 2).sum(1)  # 2^5 = 32 minima
    approx = tl.merge_tree_from_points(points, values, k=20)  # > 5,000 points in 5D: nndescent
    exact_graph = tl.topology.knn_graph(points, 20, method="exact")
    exact = tl.merge_tree_from_points(points, values, graph=exact_graph)
    assert abs(len(approx.branches) - len(exact.branches)) <= 0.05 * len(exact.branches)


@pytest.mark.parametrize("connectivity", ["axis", "full"])
def test_minima_count_equals_strict_local_minima(connectivity):
    rng = np.random.default_rng(1)
    values = rng.standard_normal((9, 8, 7))
    tree = tl.merge_tree(values, connectivity=connectivity)
    edges = tl.topology.grid_edges(values.shape, connectivity)
    assert len(tree.branches) == strict_local_minima(values.ravel(), edges)


# --- analytic cases ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_product_of_double_wells_has_2_to_the_n_minima(n):
    axis = np.linspace(-1.6, 1.6, 17 if n < 4 else 11)
    mesh = np.meshgrid(*[axis] * n, indexing="ij")
    tilt = np.linspace(0.01, 0.04, n)
    values = sum((m**2 - 1) ** 2 + t * m for m, t in zip(mesh, tilt))
    land = tl.Landscape(axes=[axis] * n, values=values)
    for connectivity in ["axis", "full"]:
        tree = tl.merge_tree(land, connectivity=connectivity)
        assert len(tree.branches) == 2**n
        assert tree.features()["n_minima"] == 2**n
        minima = tree.points[tree.branches.minimum]
        assert np.all(np.abs(np.abs(minima) - 1) < 0.2)  # at the wells (+-1, ..., +-1)
    assert tl.merge_tree(land, graph="knn").features()["n_minima"] == 2**n


def wells(depths, centres, x):
    return -sum(d * np.exp(-((x - c) ** 2) / (2 * 0.1**2)) for d, c in zip(depths, centres))


def test_simplification_keeps_exactly_the_deeper_wells():
    x = np.linspace(0, 6, 601)
    depths = [1.0, 0.5, 0.3, 0.1, 0.05]
    centres = [1, 2, 3, 4, 5]
    tree = tl.merge_tree(tl.Landscape(axes=[x], values=wells(depths, centres, x)))
    assert len(tree.branches) == 5
    np.testing.assert_allclose(np.sort(tree.persistence[1:])[::-1], depths[1:], rtol=1e-4)
    for threshold, kept in [(0.2, 3), (0.07, 4), (0.6, 1), (0.0, 5)]:
        simple = tree.simplify(threshold)
        assert len(simple.branches) == kept
        np.testing.assert_allclose(np.sort(x[simple.branches.minimum]), centres[:kept], atol=0.02)
        assert len(simple.branches) <= len(tree.branches)
        # every sample of a removed basin now belongs to a kept one
        assert simple.labels.max() == kept - 1
        assert simple.branches.size[0] == x.size
    with pytest.raises(ValueError, match="threshold"):
        tree.simplify(-1)


@settings(max_examples=40, deadline=None)
@given(grids, st.floats(0, 5))
def test_simplification_invariants(values, threshold):
    tree = tl.merge_tree(values)
    simple = tree.simplify(threshold)
    assert len(simple.branches) <= len(tree.branches)
    assert np.all(simple.pairs[:, 0] <= simple.pairs[:, 1])
    finite = np.isfinite(simple.persistence)
    assert np.all(simple.persistence[finite] >= threshold)
    kept = {tuple(p) for p in simple.pairs.tolist()}
    assert kept <= {tuple(p) for p in tree.pairs.tolist()}
    assert np.bincount(simple.labels).sum() == values.size


# --- the tree as a graph -----------------------------------------------------------------------


def test_a_saddle_joining_four_basins_is_one_node_with_four_children():
    values = np.array([[9, 1, 9], [2, 5, 3], [9, 4, 9]], dtype=float)
    tree = tl.merge_tree(values, connectivity="axis")
    g = tree.graph
    assert len(tree.branches) == 4
    saddle = 4  # the centre sample
    assert g.nodes[saddle]["kind"] == "saddle"
    assert sorted(g.nodes[c]["value"] for c in g.successors(saddle)) == [1, 2, 3, 4]
    assert g.nodes[saddle]["size"] == 5
    (root,) = g.graph["roots"]
    assert g.nodes[root]["kind"] == "root" and g.nodes[root]["size"] == 9
    assert np.unique(tree.branches.saddle[1:]).tolist() == [saddle]


def test_graph_sizes_and_structure():
    rng = np.random.default_rng(2)
    land = tl.Landscape(axes=[np.arange(12.0), np.arange(10.0)], values=rng.random((12, 10)))
    tree = tl.merge_tree(land)
    g = tree.graph
    assert nx.is_tree(g.to_undirected()) and nx.is_directed_acyclic_graph(g)
    kinds = nx.get_node_attributes(g, "kind")
    assert sum(k == "minimum" for k in kinds.values()) == len(tree.branches)
    for node, data in g.nodes(data=True):
        assert data["coordinates"] == tuple(land.points()[node])
        below = [data["value"] >= g.nodes[c]["value"] for c in g.successors(node)]
        assert all(below)
        if data["kind"] == "minimum":
            assert data["size"] == 1 and g.out_degree(node) == 0
        if data["kind"] == "saddle":
            assert g.out_degree(node) >= 2
            # the sub-tree of a saddle: the connected sub-level set through it (brute force)
            level = tree.values <= data["value"]
            assert data["size"] == _component_size(
                level.reshape(12, 10), np.unravel_index(node, (12, 10))
            )
    # a branch's size is the samples of its own basin and of the basins nested in it
    own = np.bincount(tree.labels, minlength=len(tree.branches))
    nested = own.copy()
    for i in np.argsort(tree.branches.death):
        if tree.branches.parent[i] >= 0:
            nested[tree.branches.parent[i]] += nested[i]
    np.testing.assert_array_equal(tree.branches.size, nested)


def _component_size(mask, start):
    """Samples of the 8-connected component of mask through start (flood fill)."""
    seen, todo = {start}, [start]
    while todo:
        i, j = todo.pop()
        for di, dj in itertools.product((-1, 0, 1), repeat=2):
            nb = (i + di, j + dj)
            if (
                nb not in seen
                and 0 <= nb[0] < mask.shape[0]
                and 0 <= nb[1] < mask.shape[1]
                and mask[nb]
            ):
                seen.add(nb)
                todo.append(nb)
    return len(seen)


def test_labels_are_the_basins_of_attraction_of_separated_wells():
    x = np.linspace(0, 4, 401)
    tree = tl.merge_tree(tl.Landscape(axes=[x], values=wells([1.0, 0.6, 0.4], [1, 2, 3], x)))
    at = lambda c: tree.labels[np.argmin(np.abs(x - c))]  # noqa: E731
    assert len({at(1), at(2), at(3)}) == 3
    assert tree.branches.mean_loss[0] == pytest.approx(np.mean(tree.values))


# --- non-finite values, split trees, bad input -------------------------------------------------


def test_non_finite_values_join_last():
    values = np.array([0.0, 1.0, np.nan, 0.5, 2.0, np.inf, 3.0])
    tree = tl.merge_tree(values, connectivity="axis")
    np.testing.assert_array_equal(sorted_pairs(tree), gudhi_pairs(values))
    assert sorted_pairs(tree).tolist() == [[0.0, np.inf], [0.5, np.inf], [3.0, np.inf]]
    assert tree.features()["n_nonfinite"] == 2
    assert tree.rank[2] > tree.rank[np.isfinite(values)].max()


def test_split_tree_is_the_join_tree_of_the_negated_values():
    rng = np.random.default_rng(3)
    values = rng.standard_normal((8, 9))
    split = tl.split_tree(values)
    join = tl.merge_tree(-values)
    negated = -split.pairs
    negated = negated[np.lexsort((negated[:, 1], negated[:, 0]))]
    np.testing.assert_array_equal(sorted_pairs(join), negated)
    np.testing.assert_array_equal(tl.topology.diagram(split), -split.pairs)
    assert "n_maxima" in split.features()
    assert split.graph.nodes[int(split.branches.minimum[0])]["kind"] == "maximum"
    assert split.branches.minimum[0] == np.argmax(values)


def test_diagram_distances():
    rng = np.random.default_rng(4)
    values = rng.standard_normal((10, 10))
    a = tl.merge_tree(values)
    assert tl.topology.diagram_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    shifted = tl.merge_tree(values + 0.25)
    assert tl.topology.diagram_distance(a, shifted) == pytest.approx(0.25)
    other = tl.merge_tree(rng.standard_normal((10, 10)))
    for b in (shifted, other):
        got = tl.topology.diagram_distance(a, b, "wasserstein")
        assert got == pytest.approx(wasserstein_by_assignment(a.pairs, b.pairs), rel=1e-6)


def wasserstein_by_assignment(da, db):
    """1-Wasserstein (L-inf ground metric) by an optimal assignment with diagonal copies."""
    from scipy.optimize import linear_sum_assignment

    fa, fb = da[np.isfinite(da[:, 1])], db[np.isfinite(db[:, 1])]
    ea, eb = np.sort(da[~np.isfinite(da[:, 1]), 0]), np.sort(db[~np.isfinite(db[:, 1]), 0])
    m, k = len(fa), len(fb)
    cost = np.zeros((m + k, m + k))
    cost[:m, :k] = np.abs(fa[:, None, :] - fb[None, :, :]).max(axis=2)
    cost[:m, k:] = ((fa[:, 1] - fa[:, 0]) / 2)[:, None]
    cost[m:, :k] = ((fb[:, 1] - fb[:, 0]) / 2)[None, :]
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].sum() + np.abs(ea - eb).sum()


def test_single_point_and_bad_input():
    one = tl.merge_tree(tl.Landscape(axes=[np.zeros(1)], values=[2.0]))
    assert one.pairs.tolist() == [[2.0, np.inf]]
    assert one.features()["n_minima"] == 1
    with pytest.raises(ValueError, match="values: all 4 values are non-finite"):
        tl.merge_tree(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"values: expected shape \(3,\)"):
        tl.merge_tree_from_points(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="points: 1 duplicate points"):
        tl.merge_tree_from_points(np.array([[0, 0], [1, 1], [0, 0]]), np.arange(3.0))
    with pytest.raises(ValueError, match="connectivity: expected"):
        tl.merge_tree(np.zeros((3, 3)), connectivity="diagonal")
    with pytest.raises(ValueError, match="graph: expected"):
        tl.merge_tree(np.zeros((3, 3)), graph="delaunay")
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        tl.merge_tree_from_points(np.random.default_rng(0).random((10, 2)), np.arange(10.0), k=0)
    with pytest.raises(ValueError, match="values: expected shape"):
        tl.Landscape(axes=[np.arange(3.0)], values=np.zeros(4))


def test_features_against_values_computed_from_the_wells():
    x = np.linspace(0, 6, 601)
    depths = np.array([1.0, 0.5, 0.3, 0.1, 0.05])
    values = 2.0 + wells(depths, [1, 2, 3, 4, 5], x)
    f = tl.merge_tree(tl.Landscape(axes=[x], values=values)).features()
    pers = depths[1:]  # the four wells that merge, each as deep as its well
    shares = pers / pers.sum()
    assert f["n_minima"] == 5 and f["n_saddles"] == 4 and f["n_components"] == 1
    assert f["total_persistence"] == pytest.approx(pers.sum(), rel=1e-4)
    assert f["max_persistence"] == pytest.approx(0.5, rel=1e-4)
    assert f["mean_persistence"] == pytest.approx(pers.mean(), rel=1e-4)
    assert f["relative_total_persistence"] == pytest.approx(
        pers.sum() / (values.max() - values.min()), rel=1e-4
    )
    assert f["persistence_entropy"] == pytest.approx(-(shares * np.log(shares)).sum(), rel=1e-3)
    assert f["global_min"] == pytest.approx(1.0, abs=1e-9)
    assert f["basin_1_size"] == 1.0 and f["basin_1_depth"] == pytest.approx(values.max() - 1.0)
    assert f["basin_1_mean_loss"] == pytest.approx(values.mean())
    # each shallower well's basin: the samples below its saddle around its centre (~0 here)
    assert 0 < f["basin_2_size"] < 0.25 and f["basin_2_depth"] == pytest.approx(0.5, rel=1e-4)
    assert f["relative_depth_2"] == pytest.approx(0.5 / (values.max() - 1.0), rel=1e-4)


def test_smad_as_landscaper_defines_it_on_a_tree_by_hand():
    """values [1, 0, 3, 2, 4, 0.5, 5] on a line. Sweeping up: minima at 1 (0), 5 (0.5) and 3 (2);
    sample 2 (value 3) joins 3 to the oldest branch, sample 4 (value 4) joins 5 to it; the root
    is sample 6 (value 5). Edges from each minimum to its adjacent saddle: 0 -> 3 (the lowest
    saddle on the global minimum's chain), 0.5 -> 4, 2 -> 3: gaps 3, 3.5 and 1."""
    values = np.array([1.0, 0.0, 3.0, 2.0, 4.0, 0.5, 5.0])
    tree = tl.merge_tree(values)
    assert tree.branches.minimum.tolist() == [1, 5, 3]
    # basins as swept: the saddles and what joins later belong to the surviving branch
    assert tree.labels.tolist() == [0, 0, 0, 2, 0, 1, 0]
    f = tree.features()
    assert f["smad"] == pytest.approx((3 + 3.5 + 1) / 3)
    assert f["smad_relative"] == pytest.approx((3 + 3.5 + 1) / 3 / 5)
    assert f["smad_weighted"] == pytest.approx((5 * 3 + 1 * 3.5 + 1 * 1) / 7)
    assert f["mean_persistence"] == pytest.approx((3.5 + 1) / 2)  # not the same number
    # one minimum and nothing merging into it: the edge runs to the root
    assert tl.merge_tree(np.array([3.0, 1.0, 2.0, 4.0])).features()["smad"] == pytest.approx(3.0)


def test_boundary_minima_are_flagged_and_counted_apart():
    a = np.linspace(-1, 1, 21)
    X, Y = np.meshgrid(a, a, indexing="ij")
    # a slope falling to the face x = -1 (the global minimum, on the boundary) and a well at
    # x = 0.3 inside
    values = 0.6 * (X + 1) - 0.5 * np.exp(-((X - 0.3) ** 2) / 0.01) + 0.1 * Y**2
    land = tl.Landscape(axes=[a, a], values=values)
    tree = tl.merge_tree(land)
    flags = tree.on_boundary
    minima = tree.points[tree.branches.minimum]
    assert flags.tolist() == [bool(np.isclose(np.abs(p), 1).any()) for p in minima]
    assert flags[0] and not flags[1:].all()
    f = tree.features()
    assert f["n_minima_boundary"] == int(flags.sum()) and f["global_min_on_boundary"]
    assert f["n_minima_interior"] + f["n_minima_boundary"] == f["n_minima"]
    pers = tree.persistence
    assert f["total_persistence_interior"] == pytest.approx(pers[~flags & np.isfinite(pers)].sum())
    # scattered points: the hull's vertices
    pts = np.random.default_rng(0).uniform(-1, 1, size=(400, 2))
    slope = -pts[:, 0] + 0.3 * np.exp(-((pts**2).sum(1)) / 0.05)  # lowest where x is largest
    scattered = tl.merge_tree_from_points(pts, slope, k=8)
    from scipy.spatial import ConvexHull

    hull = set(ConvexHull(pts).vertices.tolist())
    assert scattered.on_boundary.tolist() == [m in hull for m in scattered.branches.minimum]
    assert scattered.on_boundary[0] and scattered.branches.minimum[0] == np.argmax(pts[:, 0])


@pytest.mark.parametrize("scale", [1e-3, 7.0, 1e4])
def test_relative_features_do_not_change_when_the_loss_is_scaled(scale):
    values = 2.0 + wells(np.array([1.0, 0.5, 0.3, 0.005]), [1, 2, 3, 4], np.linspace(0, 5, 501))
    x = np.linspace(-1, 1, 501)
    base = tl.merge_tree(tl.Landscape(axes=[x], values=values)).features()
    scaled = tl.merge_tree(tl.Landscape(axes=[x], values=scale * values)).features()
    for key in [
        "relative_total_persistence",
        "relative_max_persistence",
        "max_persistence_over_center",
        "smad_relative",
        "n_minima_above_0.001",
        "n_minima_above_0.01",
    ]:
        assert scaled[key] == pytest.approx(base[key], rel=1e-9), key
    assert scaled["total_persistence"] == pytest.approx(scale * base["total_persistence"])
    assert base["n_minima_above_0.01"] == 3  # the 0.005-deep well is below 1% of the range
    assert base["n_minima_above_0.001"] == 4
