"""The union-find sweep behind the merge tree, compiled with numba (cached on disk).

Samples are visited in order of value (ties by index, non-finite last). A sample with no
visited neighbour starts a component (a minimum); one whose visited neighbours lie in several
components joins them (a saddle): the component with the lowest minimum survives, the others
die there (the elder rule).
"""

from __future__ import annotations

import numba
import numpy as np

# rows of the sweep's state, an int64 array of shape (ROWS, N); -1 = none
PARENT = 0  # union-find parent (-1: not visited yet)
SIZE = 1  # a root's component size
OLDEST = 2  # a root's oldest minimum
HEAD = 3  # a root's lowest tree node (its last minimum or saddle)
OWNER = 4  # per sample: the tree node whose arc holds it
SURVIVOR = 5  # per node: the minimum whose branch it lies on
DIES_AT = 6  # per minimum: the saddle where its branch ends
MERGED_INTO = 7  # per minimum: the elder branch's minimum
ROWS = 8


@numba.njit(cache=True, nogil=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@numba.njit(cache=True, nogil=True)
def _add_component(parent, u, roots, n_roots):
    """Add the component of neighbour u to ``roots[:n_roots]`` if u was visited and it is new."""
    if parent[u] < 0:
        return n_roots
    r = _find(parent, u)
    for i in range(n_roots):
        if roots[i] == r:
            return n_roots
    roots[n_roots] = r
    return n_roots + 1


@numba.njit(cache=True, nogil=True)
def _visit(v, roots, n_roots, rank, state):
    """Process sample v whose visited neighbours lie in components ``roots[:n_roots]``."""
    parent, size, oldest, head = state[PARENT], state[SIZE], state[OLDEST], state[HEAD]
    if n_roots == 0:  # a minimum
        parent[v] = v
        size[v] = 1
        oldest[v] = v
        head[v] = v
        state[OWNER, v] = v
        state[SURVIVOR, v] = v
        return
    if n_roots == 1:  # regular: v lies on the arc above its component's lowest node
        r = roots[0]
        parent[v] = r
        size[r] += 1
        state[OWNER, v] = head[r]
        return
    # a saddle: the component with the lowest (oldest) minimum survives
    best = roots[0]
    for i in range(1, n_roots):
        if rank[oldest[roots[i]]] < rank[oldest[best]]:
            best = roots[i]
    elder = oldest[best]
    for i in range(n_roots):
        r = roots[i]
        if r != best:
            state[DIES_AT, oldest[r]] = v
            state[MERGED_INTO, oldest[r]] = elder
    # union by size; the new root carries the survivor's identity and v as its lowest node
    big = roots[0]
    for i in range(1, n_roots):
        if size[roots[i]] > size[big]:
            big = roots[i]
    total = 1
    for i in range(n_roots):
        total += size[roots[i]]
        parent[roots[i]] = big
    parent[v] = big
    size[big] = total
    oldest[big] = elder
    head[big] = v
    state[OWNER, v] = v
    state[SURVIVOR, v] = elder


@numba.njit(cache=True, nogil=True)
def _sweep_grid(order, rank, shape, offsets, state):
    n = shape.size
    strides = np.ones(n, np.int64)
    for d in range(n - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    coords = np.empty(n, np.int64)
    roots = np.empty(offsets.shape[0], np.int64)
    parent = state[PARENT]
    for t in range(order.size):
        v = order[t]
        rem = v
        for d in range(n):
            coords[d] = rem // strides[d]
            rem -= coords[d] * strides[d]
        n_roots = 0
        for k in range(offsets.shape[0]):
            u = 0
            inside = True
            for d in range(n):
                c = coords[d] + offsets[k, d]
                if c < 0 or c >= shape[d]:
                    inside = False
                    break
                u += c * strides[d]
            if inside:
                n_roots = _add_component(parent, u, roots, n_roots)
        _visit(v, roots, n_roots, rank, state)


@numba.njit(cache=True, nogil=True)
def _sweep_csr(order, rank, indptr, indices, state):
    max_degree = 0
    for v in range(indptr.size - 1):
        max_degree = max(max_degree, indptr[v + 1] - indptr[v])
    roots = np.empty(max(max_degree, 1), np.int64)
    parent = state[PARENT]
    for t in range(order.size):
        v = order[t]
        n_roots = 0
        for j in range(indptr[v], indptr[v + 1]):
            n_roots = _add_component(parent, indices[j], roots, n_roots)
        _visit(v, roots, n_roots, rank, state)


@numba.njit(cache=True, nogil=True)
def _components(parent):
    out = np.empty(parent.size, np.int64)
    for v in range(parent.size):
        out[v] = _find(parent, v)
    return out


def sweep(order: np.ndarray, *, shape=None, offsets=None, indptr=None, indices=None) -> dict:
    """Run the sweep over a grid stencil (shape, offsets) or a CSR graph (indptr, indices)."""
    N = order.size
    rank = np.empty(N, np.int64)
    rank[order] = np.arange(N)
    state = np.full((ROWS, N), -1, np.int64)
    state[SIZE] = 0
    if shape is not None:
        _sweep_grid(order, rank, np.asarray(shape, np.int64), np.ascontiguousarray(offsets), state)
    else:
        _sweep_csr(order, rank, indptr.astype(np.int64), indices.astype(np.int64), state)
    return {
        "rank": rank,
        "component": _components(state[PARENT]),
        "owner": state[OWNER],
        "survivor": state[SURVIVOR],
        "dies_at": state[DIES_AT],
        "merged_into": state[MERGED_INTO],
    }
