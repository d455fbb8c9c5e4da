"""Small weighted k-means (greedy k-means++ seeding, Lloyd iterations) compiled with numba.

Both starting points of the method cluster a few thousand points at most: EM seeds each local fit
from k-means on a subsample of max(2000, 100 K (d+1)) (x, y) pairs, and the reduction seeds MM
from k-means on the L = M K local experts.  On such sizes scikit-learn's ``KMeans`` spends its
time in per-call and per-iteration overhead (validation, OpenMP chunking): 1.3 ms for one run on
2000 x 3 points, 2.5-4.5 ms for the 3 restarts of a local fit and the labelling of its 7812
points, which take 0.4 ms here.  With 128 machines the slowest local fit and the reduction both set the learning
time, so the k-means runs here instead (``benchmarks/bench_init.py`` measures both).  The
algorithm is scikit-learn's: greedy k-means++ with ``2 + log(K)`` candidates per centre drawn
proportionally to the weighted squared distance, Lloyd until the labels repeat or the centres
move less than ``tol`` times the mean feature variance, an empty cluster re-seeded with the point
farthest from its centre, the run of lowest inertia kept.  ``tests/test_kmeans.py`` checks it
against ``sklearn.cluster.KMeans``.

Shapes: ZT (q, n) the n points as columns, w (n,) non-negative weights, centres (K, q), labels (n,).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["assign_labels", "kmeans"]

# Reassociation lets LLVM vectorise the sums over points; as for the reduction's kernels, results
# move only at rounding level and are the same in every process. No nnan/ninf.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, nogil=True, fastmath=_FAST)
def _sq_dist_to(ZT, z, out):
    """out[i] = ||ZT[:, i] - z||^2."""
    q, n = ZT.shape
    for i in range(n):
        out[i] = 0.0
    for j in range(q):
        c = z[j]
        row = ZT[j]
        for i in range(n):
            t = row[i] - c
            out[i] += t * t


@njit(cache=True, nogil=True, fastmath=_FAST)
def _assign(ZT, C, labels, d2):
    """Nearest centre of every point (filled in place); returns whether any label changed.

    ZT (q, n) is the transposed data: the loops over points then run on contiguous rows, with a
    branch-free running minimum, which vectorises.
    """
    n = ZT.shape[1]
    K = C.shape[0]
    best = np.empty(n)
    kb = np.zeros(n)  # the index as a float: the same SIMD width as best
    dist = np.empty(n)
    for i in range(n):
        best[i] = np.inf
    for k in range(K):
        _sq_dist_to(ZT, C[k], dist)
        kf = float(k)
        for i in range(n):
            lt = dist[i] < best[i]
            best[i] = dist[i] if lt else best[i]
            kb[i] = kf if lt else kb[i]
    changed = False
    for i in range(n):
        k = int(kb[i])
        if k != labels[i]:
            changed = True
            labels[i] = k
        d2[i] = best[i]
    return changed


@njit(cache=True, nogil=True)
def _draw(w, d, u):
    """Index i with probability w_i d_i / sum(w d): the first i whose cumulative sum reaches u sum(w d).

    A plain scan (it costs as much as one distance pass) rather than np.cumsum and np.searchsorted,
    which tripled numba's compile time.
    """
    n = w.shape[0]
    total = 0.0
    for i in range(n):
        total += w[i] * d[i]
    r = u * total
    acc = 0.0
    for i in range(n):
        acc += w[i] * d[i]
        if acc >= r and w[i] * d[i] > 0.0:
            return i
    return n - 1


@njit(cache=True, nogil=True, fastmath=_FAST)
def _kmeanspp(ZT, w, K, u_first, u_trials):
    """Greedy k-means++ centres (K, q) from the uniforms u_first () and u_trials (K - 1, trials)."""
    q, n = ZT.shape
    C = np.empty((K, q))
    first = _draw(w, np.ones(n), u_first)
    for j in range(q):
        C[0, j] = ZT[j, first]
    closest = np.empty(n)
    _sq_dist_to(ZT, C[0], closest)
    cand = np.empty(n)
    best_d = np.empty(n)
    z = np.empty(q)
    for c in range(1, K):
        best_pot = np.inf
        best_idx = 0
        for t_ in range(u_trials.shape[1]):
            idx = _draw(w, closest, u_trials[c - 1, t_])
            for j in range(q):
                z[j] = ZT[j, idx]
            _sq_dist_to(ZT, z, cand)
            pot = 0.0
            for i in range(n):
                cand[i] = min(cand[i], closest[i])
                pot += w[i] * cand[i]
            if pot < best_pot:
                best_pot = pot
                best_idx = idx
                for i in range(n):
                    best_d[i] = cand[i]
        for j in range(q):
            C[c, j] = ZT[j, best_idx]
        for i in range(n):
            closest[i] = best_d[i]
    return C


@njit(cache=True, nogil=True, fastmath=_FAST)
def _lloyd(ZT, w, C0, max_iter, tol):
    """Lloyd iterations from C0 (K, q): (centres, labels (n,), inertia, iterations)."""
    q, n = ZT.shape
    K = C0.shape[0]
    C = np.empty((K, q))
    for k in range(K):
        for j in range(q):
            C[k, j] = C0[k, j]
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        labels[i] = -1
    d2 = np.empty(n)
    settled = False
    n_iter = 0
    for it in range(max_iter):
        n_iter = it + 1
        if not _assign(ZT, C, labels, d2) and it > 0:
            settled = True  # C are already the means of these labels
            break
        # K masked passes rather than one scatter: they vectorise, while the scatter's additions to
        # one cluster's sums wait on each other.
        sums = np.zeros((K, q))
        wk = np.zeros(K)
        for k in range(K):
            a = 0.0
            for i in range(n):
                a += w[i] if labels[i] == k else 0.0
            wk[k] = a
            for j in range(q):
                row = ZT[j]
                a = 0.0
                for i in range(n):
                    a += w[i] * row[i] if labels[i] == k else 0.0
                sums[k, j] = a
        for k in range(K):
            if wk[k] > 0.0:
                continue
            # An empty cluster takes the point farthest from its centre; -1 keeps a second empty
            # cluster from taking the same point when all points coincide.
            far = 0
            for i in range(n):
                far = i if d2[i] > d2[far] else far
            src = labels[far]
            wk[src] -= w[far]
            for j in range(q):
                sums[src, j] -= w[far] * ZT[j, far]
                sums[k, j] = w[far] * ZT[j, far]
            wk[k] = w[far]
            d2[far] = -1.0
            if not wk[k] > 0.0:  # a zero-weight point: place the centre there all the same
                wk[k] = 1.0
                for j in range(q):
                    sums[k, j] = ZT[j, far]
        shift = 0.0
        for k in range(K):
            if not wk[k] > 0.0:
                continue  # emptied by a relocation: keep its centre
            for j in range(q):
                v = sums[k, j] / wk[k]
                t = v - C[k, j]
                shift += t * t
                C[k, j] = v
        if shift <= tol:
            break
    if not settled:
        _assign(ZT, C, labels, d2)
    inertia = 0.0
    for i in range(n):
        inertia += w[i] * d2[i]
    return C, labels, inertia, n_iter


def assign_labels(ZT, centres):
    """(n,) index of the nearest centre (K, q) of every point (column) of ZT (q, n)."""
    ZT = np.ascontiguousarray(ZT, dtype=np.float64)
    labels = np.full(ZT.shape[1], -1, dtype=np.int64)
    _assign(ZT, np.ascontiguousarray(centres, dtype=np.float64), labels, np.empty(ZT.shape[1]))
    return labels


def kmeans(ZT, n_clusters, rng, *, sample_weight=None, n_init=1, max_iter=300, tol=1e-4):
    """Best of ``n_init`` greedy k-means++ / Lloyd runs on the n points (columns) of ZT.

    Parameters
    ----------
    ZT : ndarray (q, n), the points as columns (the package's transposed layout), n >= n_clusters
    n_clusters : int, K
    rng : numpy Generator, the only source of randomness (the same draws give the same result in
        every process)
    sample_weight : ndarray (n,) or None (all ones)
    n_init, max_iter : int
    tol : float, relative to the mean variance of the q coordinates, as in scikit-learn

    Returns
    -------
    centres : ndarray (K, q) ; labels : ndarray (n,) int64 ; inertia : float
    """
    ZT = np.ascontiguousarray(ZT, dtype=np.float64)
    n = ZT.shape[1]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 1 and the {n} points, got {n_clusters}.")
    w = np.ones(n) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    tol_abs = float(tol * np.mean(np.var(ZT, axis=1)))
    n_trials = 2 + int(np.log(n_clusters))
    best = None
    for _ in range(n_init):
        C0 = _kmeanspp(ZT, w, n_clusters, rng.random(), rng.random((max(n_clusters - 1, 1), n_trials)))
        C, labels, inertia, _ = _lloyd(ZT, w, C0, max_iter, tol_abs)
        if best is None or inertia < best[2]:
            best = (C, labels, inertia)
    return best
