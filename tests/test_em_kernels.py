"""EM's compiled kernels (moecore._em_kernels) against the NumPy formulas they replaced.

Each kernel is checked on random inputs (fixed seeds) against a direct NumPy computation of the same
quantity; tolerances are rounding-level (a few ulp per operation summed over the points), far below
anything EM's stopping rule (1e-6 relative) could see.
"""

import numpy as np
import pytest
from scipy.special import logsumexp

from moecore import _em_kernels as kern
from moecore import em
from moecore.gating import DAMPING, MAX_HALVINGS, MAX_STEP, em_newton_step, gate_state, newton_step, pair_products

RNG = np.random.default_rng(20261205)


def _design(n, p, rng):
    return np.vstack([np.ones(n), rng.normal(size=(p - 1, n))])


def _targets(K, n, rng):
    return np.ascontiguousarray(rng.dirichlet(np.ones(K), size=n).T)


def test_exp_is_within_a_few_ulp_of_libm_and_keeps_nan():
    x = np.concatenate([-RNG.exponential(5.0, 20000), -RNG.uniform(0, 708, 5000),
                        [0.0, -0.0, -1e-300, -1e-20, -707.9, -708.0]])
    got = x.copy()
    kern._exp_inplace(got, np.empty(x.size, dtype=np.int64))
    ref = np.exp(x)
    assert np.max(np.abs(got - ref) / ref) < 4 * np.finfo(float).eps
    edge = np.array([-708.5, -745.0, -1e4, -np.inf, np.nan])
    kern._exp_inplace(edge, np.empty(edge.size, dtype=np.int64))
    assert np.array_equal(edge[:4], np.zeros(4)) and np.isnan(edge[4])


@pytest.mark.parametrize("K, n", [(1, 50), (3, 500), (5, 4093)])
def test_estep_matches_the_log_domain_formula(K, n):
    rng = np.random.default_rng(K * n)
    XtT = _design(n, 3, rng)
    y = rng.normal(size=n) * 3
    experts = rng.normal(size=(3, K))
    variances = rng.uniform(0.05, 4.0, K)
    logpT = np.log(_targets(K, n, rng))
    joint = logpT - 0.5 * (np.log(2 * np.pi * variances)[:, None] + (y - experts.T @ XtT) ** 2 / variances[:, None])
    ll_ref = logsumexp(joint, axis=0)
    tau_ref = np.exp(joint - ll_ref)
    # Any shift per point of the gates' log-probabilities (etaT of a gate state) moves only the total.
    shift = rng.normal(size=n)
    ll, tauT = em._estep(XtT, y, logpT + shift, experts, variances, lognorm=shift.sum())
    assert ll == pytest.approx(ll_ref.sum(), rel=1e-13)
    np.testing.assert_allclose(tauT, tau_ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("K, p, n", [(2, 2, 300), (3, 4, 4092), (6, 11, 2000)])
def test_gate_state_is_the_log_softmax_and_its_q(K, p, n):
    rng = np.random.default_rng(p * n)
    XtT = _design(n, p, rng)
    gates = np.zeros((p, K))
    gates[:, :-1] = rng.normal(size=(p, K - 1)) * 2
    T = _targets(K, n, rng)
    etaT, probT, lognorm = gate_state(gates, XtT)
    logits = gates.T @ XtT
    logp_ref = logits - logsumexp(logits, axis=0)
    s = np.exp(etaT).sum(axis=0)
    np.testing.assert_allclose(etaT - np.log(s), logp_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(probT, np.exp(logp_ref), rtol=1e-12, atol=1e-300)
    assert lognorm == pytest.approx(np.log(s).sum(), rel=1e-13)
    q, _ = kern.gate_eval(XtT, gates, T, np.empty((K, n)), np.empty((K, n)))
    assert q == pytest.approx(float(np.vdot(T, logp_ref)), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("stride", [1, 3])
def test_gate_gradient_and_hessian_match_the_pair_product_formula(stride, weighted):
    rng = np.random.default_rng(stride + 10 * weighted)
    K, p, n = 4, 3, 1500
    XtT = _design(n, p, rng)
    P = _targets(K, n, rng)
    w = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    T = _targets(K, n, rng) * w
    grad, hess = np.empty((K - 1) * p), np.empty(((K - 1) * p, (K - 1) * p))
    kern.gate_grad_hess(XtT, T, P, w if weighted else np.empty(0), stride, grad, hess)
    grad_ref = ((T[:-1] - P[:-1] * w) @ XtT.T).ravel()
    sub = slice(None, None, stride)
    XX = pair_products(XtT[:, sub])
    hess_ref = np.zeros_like(hess)
    a, b = np.triu_indices(p)
    for k in range(K - 1):
        for l in range(K - 1):
            wt = w[sub] * P[k, sub] * ((k == l) - P[l, sub])
            blk = np.zeros((p, p))
            blk[a, b] = wt @ XX.T
            blk[b, a] = blk[a, b]
            hess_ref[k * p:(k + 1) * p, l * p:(l + 1) * p] = blk * (n / XX.shape[1])
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(hess, hess_ref, rtol=1e-11, atol=1e-9)


def test_em_gate_step_raises_q_as_numpys_newton_step_does():
    rng = np.random.default_rng(7)
    K, p, n = 3, 4, 3000
    XtT = _design(n, p, rng)
    tauT = _targets(K, n, rng)
    gates = np.zeros((p, K))
    gates[:, :-1] = rng.normal(size=(p, K - 1))
    state = gate_state(gates, XtT)
    new_gates, (etaT, _, lognorm) = em_newton_step(XtT, None, tauT, gates, state)
    logpT = state[0] - np.log(np.exp(state[0]).sum(axis=0))
    ref_gates, _, _, q_ref = newton_step(XtT, None, tauT, gates, logpT, state[1].copy())
    np.testing.assert_allclose(new_gates, ref_gates, rtol=1e-9, atol=1e-12)
    q_new = float(np.vdot(tauT, etaT)) - lognorm
    assert q_new == pytest.approx(q_ref, rel=1e-12)
    assert q_new > float(np.vdot(tauT, logpT))


@pytest.mark.parametrize("p", [4, 11])
def test_em_newton_step_on_either_side_of_the_kernels_hessian(p):
    # p <= KERNEL_HESSIAN_MAX_P: the kernel sums the Hessian; above, BLAS does and the kernel solves.
    rng = np.random.default_rng(p)
    K, n = 4, 2500
    XtT = _design(n, p, rng)
    tauT = _targets(K, n, rng)
    gates = np.zeros((p, K))
    gates[:, :-1] = rng.normal(size=(p, K - 1)) * 0.5
    state = gate_state(gates, XtT)
    new_gates, _ = em_newton_step(XtT, pair_products(XtT), tauT, gates, state)
    logpT = state[0] - np.log(np.exp(state[0]).sum(axis=0))
    ref_gates = newton_step(XtT, pair_products(XtT), tauT, gates, logpT, state[1].copy())[0]
    np.testing.assert_allclose(new_gates, ref_gates, rtol=1e-9, atol=1e-12)


def test_em_gate_step_falls_back_when_the_system_is_singular():
    # Two identical input columns: the Hessian is singular, Cholesky and LU both fail, and the
    # caller's least-squares step (newton_step) takes over; Q must still not fall.
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    XtT = np.vstack([np.ones(n), x, x])
    tauT = _targets(3, n, rng)
    gates = np.zeros((3, 3))
    status = kern.em_gate_step(XtT, tauT, gates, *gate_state(gates, XtT)[:2], 0.0, 1, np.empty(0), np.empty((0, 0)),
                               MAX_STEP, 0.0, MAX_HALVINGS)[0]
    assert status == 0
    state = gate_state(gates, XtT)
    q0 = float(np.vdot(tauT, state[0])) - state[2]
    _, (etaT, _, lognorm) = em_newton_step(XtT, None, tauT, gates, state)
    assert float(np.vdot(tauT, etaT)) - lognorm >= q0
    assert DAMPING > 0  # with the package's damping the same system is solvable


def test_cholesky_refuses_an_indefinite_matrix():
    A = np.array([[1.0, 2.0], [2.0, 1.0]])
    x, ok = kern.spd_solve(A, np.ones(2))
    assert not ok
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    x, ok = kern.spd_solve(A, np.array([1.0, 2.0]))
    assert ok and np.allclose(A @ x, [1.0, 2.0], rtol=1e-14)


def test_experts_solve_is_weighted_least_squares():
    rng = np.random.default_rng(11)
    K, p, n = 3, 4, 2500
    XtT = _design(n, p, rng)
    y = rng.normal(size=n)
    tauT = _targets(K, n, rng)
    experts, variances, Nk = em._wls_experts(XtT, y, tauT, 1e-9, em._wls_design(XtT, y))
    for k in range(K):
        sw = np.sqrt(tauT[k])
        beta = np.linalg.lstsq(XtT.T * sw[:, None], y * sw, rcond=None)[0]
        np.testing.assert_allclose(experts[:, k], beta, rtol=1e-9, atol=1e-12)
        assert variances[k] == pytest.approx(np.sum(tauT[k] * (y - beta @ XtT) ** 2) / tauT[k].sum(), rel=1e-9)
    np.testing.assert_allclose(Nk, tauT.sum(axis=1), rtol=1e-13)


def test_kplanes_separates_two_clean_lines_and_matches_a_numpy_reference():
    rng = np.random.default_rng(5)
    n = 600
    x = rng.uniform(-2, 2, n)
    truth = rng.integers(2, size=n)
    y = np.where(truth == 0, 3 * x + 1, -2 * x - 1) + 0.01 * rng.normal(size=n)
    XtT = np.vstack([np.ones(n), x])
    seeds = np.stack([np.flatnonzero(truth == k)[:3] for k in range(2)])
    labels = kern.kplanes(XtT, y, seeds, 3, 1e-10)
    apart = np.abs((3 * x + 1) - (-2 * x - 1)) > 0.1  # away from where the lines cross
    assert np.array_equal(labels[apart], truth[apart])
    # From random seeds: the same partition as assigning to lines refitted by lstsq, round by round.
    seeds = np.stack([rng.choice(n, 3, replace=False) for _ in range(2)])
    B = np.stack([np.linalg.lstsq(XtT[:, s].T, y[s], rcond=None)[0] for s in seeds], axis=1)
    ref = np.argmin(np.abs(y - B.T @ XtT), axis=0)
    for _ in range(3):
        for k in range(2):
            if (ref == k).sum() > 2:
                B[:, k] = np.linalg.lstsq(XtT[:, ref == k].T, y[ref == k], rcond=None)[0]
        new = np.argmin(np.abs(y - B.T @ XtT), axis=0)
        if np.array_equal(new, ref):
            break
        ref = new
    assert np.array_equal(kern.kplanes(XtT, y, seeds, 3, 1e-10), ref)


def test_squarem_step_is_the_extrapolation_of_the_packed_parameters():
    # Three points of a slowly converging path: steps d, then 0.8 d plus a little noise (alpha ~ 5).
    rng = np.random.default_rng(13)
    p, K = 3, 4
    g = np.zeros((p, K))
    g[:, :-1] = rng.normal(size=(p, K - 1))
    pts = [(g, rng.normal(size=(p, K)), rng.uniform(0.1, 2.0, K))]
    dg, de, dv = rng.normal(size=(p, K)) * 0.1, rng.normal(size=(p, K)) * 0.1, rng.normal(size=K) * 0.1
    dg[:, -1] = 0.0
    for scale in (1.0, 0.8):
        g, e, v = pts[-1]
        pts.append((g + scale * dg + 0.001 * (scale < 1) * np.pad(rng.normal(size=(p, K - 1)), ((0, 0), (0, 1))),
                    e + scale * de, v * np.exp(scale * dv)))

    def pack(g, e, v):
        return np.concatenate([g[:, :-1].ravel(), e.ravel(), np.log(v)])

    t0, t1, t2 = (pack(*pt) for pt in pts)
    r, v = t1 - t0, t2 - 2 * t1 + t0
    alpha_ref = np.sqrt((r @ r) / (v @ v))
    alpha, gates, experts, variances = kern.squarem_step(*pts[0], *pts[1], *pts[2], 100.0, 1e-6)
    assert alpha == pytest.approx(alpha_ref, rel=1e-13) and alpha > 1
    theta = t0 + 2 * alpha * r + alpha**2 * v
    np.testing.assert_allclose(gates[:, :-1].ravel(), theta[:p * (K - 1)], rtol=1e-12, atol=1e-12)
    assert np.all(gates[:, -1] == 0.0)
    np.testing.assert_allclose(experts.ravel(), theta[p * (K - 1):p * (2 * K - 1)], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.log(variances), theta[p * (2 * K - 1):], rtol=1e-12, atol=1e-12)
    # The step length is capped at step_max, and a step of 1 (plain EM) builds no point.
    assert kern.squarem_step(*pts[0], *pts[1], *pts[2], 1.5, 1e-6)[0] == 1.5
    assert kern.squarem_step(*pts[0], *pts[0], *pts[0], 1.5, 1e-6)[0] == 1.0


@pytest.mark.parametrize("M, K, p, S", [(1, 1, 2, 40), (7, 3, 4, 513), (16, 5, 21, 1000)])
def test_mixtures_loglik_matches_each_models_density(M, K, p, S):
    # The screening's batched log-likelihood: every model at every point, against the model
    # module's log f(y | x) of each model alone (log-sum-exp in SciPy).
    from moecore.model import MoEParams, loglik_per_sample
    from moecore.screening import support_loglik

    rng = np.random.default_rng(M * 100 + S)
    X = rng.normal(size=(S, p - 1))
    y = rng.normal(0.0, 3.0, S)
    models = []
    for _ in range(M):
        gates = rng.normal(0.0, 2.0, (p, K))
        gates[:, -1] = 0.0
        models.append(MoEParams(gates, rng.normal(size=(p, K)), rng.uniform(0.01, 4.0, K)))
    got = support_loglik(models, X, y)
    ref = np.stack([loglik_per_sample(X, y, prm) for prm in models])
    assert got.shape == (M, S)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
