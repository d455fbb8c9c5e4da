"""A straightforward NumPy EM for the softmax-gated mixture of linear experts: the yardstick.

Written plainly, the way the model is usually fitted by hand (and by the authors' MATLAB code):
each iteration an E-step (log domain, ``scipy.special.logsumexp``), the experts by weighted least
squares (normal equations X^T W X b = X^T W y), and the gates by a full IRLS: Newton steps on the
multinomial logistic objective, with its full Hessian on every sample, to convergence (relative
change of the objective below 1e-8, at most 50 steps).
No precomputed products, no subsampling, no acceleration. It stops, as ``MixtureOfExperts`` does,
when the relative change of the log-likelihood falls below ``tol``.

Used by ``bench_scale.py`` (time to a fitted model); not part of the package.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def _log_softmax(eta):
    return eta - logsumexp(eta, axis=1, keepdims=True)


NEWTON_STEPS = [0]  # IRLS steps taken, summed over calls (reported by the benchmark)


def irls_gates(Xd, tau, A, max_iter=50, tol=1e-8):
    """Maximise sum_ik tau_ik log pi_k(x_i; A) over A (p, K), last column fixed at 0, by Newton."""
    p = Xd.shape[1]
    K = tau.shape[1]

    def q(A):
        return float((tau * _log_softmax(Xd @ A)).sum())

    q_old = q(A)
    for _ in range(max_iter):
        NEWTON_STEPS[0] += 1
        P = np.exp(_log_softmax(Xd @ A))
        grad = (Xd.T @ (tau - P))[:, :-1].T.ravel()  # (K-1) p, expert-major
        H = np.zeros(((K - 1) * p, (K - 1) * p))
        for k in range(K - 1):
            for l in range(K - 1):
                w = P[:, k] * ((k == l) - P[:, l])
                H[k * p:(k + 1) * p, l * p:(l + 1) * p] = Xd.T @ (Xd * w[:, None])
        H[np.diag_indices_from(H)] += 1e-8 * np.trace(H) / H.shape[0]
        step = np.linalg.solve(H, grad).reshape(K - 1, p).T
        t = 1.0
        while True:  # step halving: the objective is concave, so it rarely triggers
            A_new = A.copy()
            A_new[:, :-1] += t * step
            q_new = q(A_new)
            if q_new >= q_old or t < 1e-6:
                break
            t *= 0.5
        A, done = A_new, q_new - q_old <= tol * max(abs(q_old), 1.0)
        q_old = q_new
        if done:
            break
    return A


def m_step(Xd, y, tau, A):
    p = Xd.shape[1]
    K = tau.shape[1]
    B = np.empty((p, K))
    v = np.empty(K)
    for k in range(K):
        Xw = Xd * tau[:, k][:, None]
        B[:, k] = np.linalg.solve(Xw.T @ Xd, Xw.T @ y)
        r = y - Xd @ B[:, k]
        v[k] = max((tau[:, k] * r * r).sum() / tau[:, k].sum(), 1e-6)
    return B, v, irls_gates(Xd, tau, A)


def e_step(Xd, y, A, B, v):
    logp = _log_softmax(Xd @ A)
    r = y[:, None] - Xd @ B
    logf = logp - 0.5 * (np.log(2 * np.pi * v) + r * r / v)
    ll_i = logsumexp(logf, axis=1)
    return float(ll_i.sum()), np.exp(logf - ll_i[:, None])


def reference_em(X, y, labels, K, *, tol=1e-6, max_iter=1000):
    """EM from the hard partition ``labels`` (n,) (smoothed as MixtureOfExperts smooths its start).

    X and y are standardised here as in ``MixtureOfExperts`` (same optimum, same conditioning).
    Returns (log-likelihood history in the original units of y, (gates, experts, variances) in
    standardised units).
    """
    n = X.shape[0]
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    ys = (y - y.mean()) / y.std()
    Xd = np.column_stack([np.ones(n), Xs])
    tau = np.full((n, K), 0.1 / K)
    tau[np.arange(n), labels] += 0.9
    A = np.zeros((Xd.shape[1], K))
    B, v, A = m_step(Xd, ys, tau, A)
    history = []
    for _ in range(max_iter):
        ll, tau = e_step(Xd, ys, A, B, v)
        history.append(ll)
        if len(history) > 1 and abs(ll - history[-2]) <= tol * abs(history[-2]):
            break
        B, v, A = m_step(Xd, ys, tau, A)
    return np.asarray(history) - n * np.log(y.std()), (A, B, v)
