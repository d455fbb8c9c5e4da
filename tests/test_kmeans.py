"""The compiled k-means that seeds EM and MM, checked against scikit-learn's KMeans."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from moecore._kmeans import _kmeanspp, _lloyd, assign_labels, kmeans


def blobs(n_per, centres, scale, seed):
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=float)
    Z = np.vstack([c + scale * rng.standard_normal((n_per, centres.shape[1])) for c in centres])
    truth = np.repeat(np.arange(len(centres)), n_per)
    return Z, truth


CORNERS = [[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]]


def lloyd(Z, C0, w=None, tol=1e-4):
    w = np.ones(len(Z)) if w is None else w
    return _lloyd(np.ascontiguousarray(Z.T), w, C0, 300, tol * np.mean(np.var(Z, axis=0)))


@pytest.mark.parametrize("weighted", [False, True])
def test_lloyd_matches_sklearn_from_the_same_start(weighted):
    # Overlapping blobs, so Lloyd takes several iterations to settle.
    Z, _ = blobs(300, [[0, 0], [2, 0], [0, 2], [2, 2]], 1.0, 0)
    w = np.random.default_rng(1).uniform(0.1, 3.0, len(Z)) if weighted else None
    C0 = Z[[0, 1, 2, 3]].copy()  # four points of the first blob: a poor start, many iterations
    C, labels, inertia, n_iter = lloyd(Z, C0, w)
    ref = KMeans(4, init=C0, n_init=1).fit(Z, sample_weight=w)
    assert n_iter > 3
    np.testing.assert_allclose(C, ref.cluster_centers_, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(labels, ref.labels_)
    assert inertia == pytest.approx(ref.inertia_, rel=1e-12)


def test_empty_cluster_is_reseeded_like_sklearn():
    Z, _ = blobs(100, CORNERS, 0.5, 2)
    C0 = np.vstack([Z[0], Z[0], Z[150], Z[250]])  # two identical centres: one cluster starts empty
    C, labels, inertia, _ = lloyd(Z, C0)
    ref = KMeans(4, init=C0, n_init=1).fit(Z)
    assert np.bincount(labels, minlength=4).min() > 0
    np.testing.assert_allclose(C, ref.cluster_centers_, rtol=0, atol=1e-10)
    assert inertia == pytest.approx(ref.inertia_, rel=1e-12)


def test_seeding_spreads_over_separated_blobs():
    Z, truth = blobs(200, CORNERS, 0.3, 3)
    rng = np.random.default_rng(4)
    for _ in range(20):
        C0 = _kmeanspp(np.ascontiguousarray(Z.T), np.ones(len(Z)), 4, rng.random(), rng.random((3, 3)))
        # Every seed is a data point, and each blob gets one: a second seed in the same blob is
        # (0.3 / 10)^2 ~ 1e-3 times less likely per candidate than one in an empty blob.
        idx = [np.flatnonzero((Z == c).all(axis=1))[0] for c in C0]
        assert sorted(truth[idx]) == [0, 1, 2, 3]


def test_kmeans_recovers_blobs_and_sklearn_inertia():
    Z, truth = blobs(250, CORNERS, 1.0, 5)
    C, labels, inertia = kmeans(Z.T, 4, np.random.default_rng(6), n_init=3)
    ref = KMeans(4, n_init=10, random_state=0).fit(Z)
    assert adjusted_rand_score(truth, labels) == 1.0
    assert inertia == pytest.approx(ref.inertia_, rel=1e-9)
    np.testing.assert_array_equal(assign_labels(Z.T, C), labels)


def test_weights_move_the_centres():
    Z, _ = blobs(200, [[0.0], [10.0]], 1.0, 7)
    w = np.ones(len(Z))
    w[:200][Z[:200, 0] > 0] = 50.0  # the right half of the left blob weighs 50x
    C, _, _ = kmeans(Z.T, 2, np.random.default_rng(8), sample_weight=w)
    left = C[np.argmin(C[:, 0]), 0]
    expected = np.average(Z[:200, 0], weights=w[:200])
    assert left == pytest.approx(expected, abs=1e-12)
    assert left > 0.5  # unweighted it would be near 0


def test_assign_labels_is_the_nearest_centre():
    rng = np.random.default_rng(9)
    Z = rng.standard_normal((500, 3))
    C = rng.standard_normal((5, 3))
    d2 = ((Z[:, None, :] - C[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(assign_labels(Z.T, C), d2.argmin(axis=1))


def test_reproducible_and_best_of_restarts():
    Z, _ = blobs(150, [[0, 0], [2, 0], [0, 2], [2, 2], [1, 1]], 0.8, 10)
    a = kmeans(Z.T, 5, np.random.default_rng(11), n_init=4)
    b = kmeans(Z.T, 5, np.random.default_rng(11), n_init=4)
    np.testing.assert_array_equal(a[0], b[0])
    singles = []
    rng = np.random.default_rng(11)
    for _ in range(4):  # the same four runs, one at a time: n_init keeps the lowest inertia
        singles.append(kmeans(Z.T, 5, rng)[2])
    assert a[2] == min(singles)


@pytest.mark.parametrize("k", [0, 11])
def test_bad_cluster_count(k):
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans(np.zeros((2, 10)), k, np.random.default_rng(0))


def test_fewer_distinct_points_than_clusters():
    # Two distinct points for three clusters: every centre sits on a data point, none is lost.
    Z = np.repeat(np.array([[0.0, 0.0], [1.0, 2.0]]), [5, 4], axis=0)
    C, labels, inertia = kmeans(Z.T, 3, np.random.default_rng(0), n_init=2)
    assert inertia == 0.0
    assert set(labels) <= {0, 1, 2} and len(set(labels)) == 2
    for c in C:
        assert any(np.array_equal(c, z) for z in Z)
    np.testing.assert_array_equal(C[labels], Z)
