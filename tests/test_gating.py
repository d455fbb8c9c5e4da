"""Softmax gating regression: gradient and Hessian against finite differences, ascent steps."""

import numpy as np

from moecore.gating import (
    fit_softmax_gate,
    gate_gradient_hessian,
    gate_newton_step,
    gate_objective,
    pair_products,
)
from moecore.model import _log_softmax_T


def setup(n=300, p=3, K=4, seed=0):
    rng = np.random.default_rng(seed)
    XtT = np.vstack([np.ones(n), rng.normal(size=(p - 1, n))])
    T = rng.dirichlet(np.ones(K), size=n).T
    A = rng.normal(size=(p, K)) * 0.5
    A[:, -1] = 0
    return XtT, T, A


def Q(XtT, T, A):
    return gate_objective(T, _log_softmax_T(A.T @ XtT)[0])


def test_gradient_and_hessian_match_finite_differences():
    XtT, T, A = setup()
    p, K = A.shape
    grad, hess = gate_gradient_hessian(XtT, pair_products(XtT), T, np.exp(_log_softmax_T(A.T @ XtT)[0]))
    eps = 1e-6
    fd_grad = np.empty_like(grad)
    fd_hess = np.empty_like(hess)
    for k in range(K - 1):
        for a in range(p):
            E = np.zeros_like(A)
            E[a, k] = eps
            fd_grad[k * p + a] = (Q(XtT, T, A + E) - Q(XtT, T, A - E)) / (2 * eps)
            gp, _ = gate_gradient_hessian(XtT, pair_products(XtT), T, np.exp(_log_softmax_T((A + E).T @ XtT)[0]))
            gm, _ = gate_gradient_hessian(XtT, pair_products(XtT), T, np.exp(_log_softmax_T((A - E).T @ XtT)[0]))
            fd_hess[:, k * p + a] = -(gp - gm) / (2 * eps)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-5, atol=1e-5)
    # The negative Hessian of a concave objective is positive semi-definite.
    assert np.linalg.eigvalsh(hess).min() > -1e-9


def test_weighted_targets_gradient():
    XtT, T, A = setup(seed=1)
    w = np.random.default_rng(2).uniform(0.2, 3.0, T.shape[1])
    Tw = T * w
    grad, _ = gate_gradient_hessian(XtT, pair_products(XtT), Tw, np.exp(_log_softmax_T(A.T @ XtT)[0]), weights=w)
    eps = 1e-6
    E = np.zeros_like(A)
    E[1, 0] = eps
    fd = (Q(XtT, Tw, A + E) - Q(XtT, Tw, A - E)) / (2 * eps)
    np.testing.assert_allclose(grad[1], fd, rtol=1e-6)


def test_newton_steps_never_decrease_q_and_reach_the_optimum():
    XtT, T, A = setup(seed=3)
    XX = pair_products(XtT)
    logp = _log_softmax_T(A.T @ XtT)[0]
    q = gate_objective(T, logp)
    for _ in range(15):
        A, logp, q_new = gate_newton_step(XtT, XX, T, A, logp)
        assert q_new >= q
        q = q_new
    grad, _ = gate_gradient_hessian(XtT, XX, T, np.exp(logp))
    assert np.abs(grad).max() < 1e-8 * T.shape[1]
    A2, _ = fit_softmax_gate(XtT, T)
    np.testing.assert_allclose(A2, A, atol=1e-6)


def test_separable_targets_stay_finite():
    rng = np.random.default_rng(4)
    x = rng.normal(size=200)
    XtT = np.vstack([np.ones(200), x])
    T = np.vstack([(x > 0).astype(float), (x <= 0).astype(float)])
    A, _ = fit_softmax_gate(XtT, T, max_iter=50)
    assert np.all(np.isfinite(A))
    p = np.exp(_log_softmax_T(A.T @ XtT)[0])
    assert np.mean((p[0] > 0.5) == (x > 0)) == 1.0


def test_blas_hessian_equals_the_pair_product_hessian():
    # XX=None (the path for large d, O(n p) memory) must give the same Hessian, also subsampled.
    XtT, T, A = setup(n=5000, p=4, K=3, seed=2)
    P = np.exp(_log_softmax_T(A.T @ XtT)[0])
    w = np.random.default_rng(5).uniform(0.5, 2.0, size=XtT.shape[1])
    for stride in (1, 7):
        g1, h1 = gate_gradient_hessian(XtT, pair_products(XtT), T * w, P, weights=w, hess_stride=stride)
        g2, h2 = gate_gradient_hessian(XtT, None, T * w, P, weights=w, hess_stride=stride)
        np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(h2, h1, rtol=1e-10, atol=1e-9)


def test_hessian_sample_is_small_on_a_short_run_above_p6_and_unchanged_on_many_points():
    # Above KERNEL_HESSIAN_MAX_P the Hessian is a BLAS product over its sample: a high-d short run
    # (a few thousand points) sums far fewer points than before, a fit on many points as many as
    # before (the global EM lost iterations to a noisier Hessian), and p <= 6 is untouched.
    from moecore import gating

    def old(n, K, p):
        return max(1, n // max(gating.HESSIAN_SAMPLES, gating.HESSIAN_SAMPLES_PER_PARAM * (K - 1) * p))

    K, p = 4, 21
    assert 2100 // gating._hessian_stride(2100, K, p) < 1000 < 2100 // old(2100, K, p)
    for n in (10_000, 200_000, 1_000_000):
        assert gating._hessian_stride(n, K, p) == old(n, K, p)
    for n in (2100, 7812, 200_000):
        assert gating._hessian_stride(n, 3, 4) == old(n, 3, 4)
