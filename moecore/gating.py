"""Gating regression: a multinomial logistic (softmax) regression with soft targets.

The gate M-step of EM maximises ``Q(alpha) = sum_i sum_k T_ki log pi_k(x_i; alpha)`` where the
targets ``T`` are EM responsibilities (or, for the reduced model, the transport plan's gate mass).
We solve it by Newton-Raphson (IRLS) with step halving on the exact objective, so each accepted
step increases ``Q``: one such step per EM iteration is a generalised EM step.

Arrays follow the package's hot-path layout: the design is transposed, ``XtT`` of shape (p, n)
with p = d+1 and row 0 all ones; targets and log-probabilities are (K, n).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import _em_kernels as _kern
from .model import _log_softmax_T

__all__ = [
    "em_newton_step",
    "fit_softmax_gate",
    "gate_gradient_hessian",
    "gate_newton_step",
    "gate_objective",
    "gate_state",
    "hessian_pairs",
    "pair_products",
    "sym_from_pairs",
    "use_pair_products",
]

# Newton steps on saturated (separable) gates would be huge; the objective barely moves there.
# Capping the step keeps logits bounded without changing any accepted step's monotonicity.
MAX_STEP = 10.0
# Levenberg damping relative to the Hessian's mean diagonal: keeps the system solvable when
# gates saturate, while (H + lam I)^-1 g is still an ascent direction of the undamped objective.
DAMPING = 1e-8
MAX_HALVINGS = 30
# The Newton step's Hessian comes from a strided subsample of at least this many points (and
# HESSIAN_SAMPLES_PER_PARAM per free gate coefficient). With 2000 instead of 25 000, EM iteration
# counts and final log-likelihoods were unchanged on separated-10d and overlapping-5d (n = 1e5,
# 4 data sets x 8 seeds) and fits were 15-20 % faster; at n = 7812 (a shard of 1e6 over 128
# machines) it saves about 1 ms a fit.
HESSIAN_SAMPLES = 2000
HESSIAN_SAMPLES_PER_PARAM = 20
# Above KERNEL_HESSIAN_MAX_P the Hessian is a BLAS product over the points, the largest cost of a
# high-d short run (2 100 points at d = 20), so it sums fewer of them there. Measured on shards of
# 7 812 rows, each default local fit alone (with hessian_pairs): d = 20, K = 4 183 -> 147 ms; d = 30,
# K = 3 302 -> 212 ms; d = 10 unchanged (61 ms); the same log-likelihoods and iteration counts. 300
# points and 3 per coefficient gained no more. Fits at p <= KERNEL_HESSIAN_MAX_P are bitwise unchanged.
HESSIAN_SAMPLES_BLAS = 500
HESSIAN_SAMPLES_PER_PARAM_BLAS = 5
# ... but never below a quarter of the points, up to the samples above: on many points the Hessian
# is a small part of an iteration, and 500 of them cost EM iterations (7 812-row shards: 7 -> 9-11 at
# d = 20; the global EM at n = 2 x 10^5: 7 -> 12 at d = 20, 7 -> 9 at d = 30).
HESSIAN_FRACTION_BLAS = 4
# Weighted Gram matrices sum_i w_i x_i x_i^T come from one of two paths, chosen by
# use_pair_products: precomputed pair products x_a x_b (p(p+1)/2 rows per sample, fixed for a
# whole fit, so every Gram matrix is one skinny product), or per weight vector a BLAS product of
# the weighted design with itself (O(n p) memory). Measured on one core (n = 5e4-1e5, K = 4, the
# expert M-step): pair products 1.0 / 4.3 / 10.4 / 20.2 / 57 / 241 ms at p = 2 / 8 / 21 / 31 / 51 /
# 101, the BLAS path 2.0 / 6.0 / 10.9 / 19.0 / 34 / 93 ms: they cross near p = 25.
PAIR_PRODUCTS_MAX_P = 24
# Beyond this many bytes the pair products are not worth their memory (unless they are at most
# PAIR_PRODUCTS_MAX_RATIO times the design itself, as at d <= 3, where they are always kept).
PAIR_PRODUCTS_MAX_BYTES = 1 << 30
PAIR_PRODUCTS_MAX_RATIO = 4.0
# Up to this p the gates' gradient and Hessian come from one compiled pass over the points
# (moecore._em_kernels.gate_grad_hess); beyond it from the BLAS products below. At 2 000 points the
# kernel took 21 / 57 / 113 / 314 us at p = 4 / 8 / 12 / 21 (K = 3), the pair-product path
# 27 / 41 / 66 / 196 us; with K = 5 the kernel fell behind already at p = 8 (167 against 82 us).
KERNEL_HESSIAN_MAX_P = 6
_NO_WEIGHTS = np.empty(0)  # the kernels' "all ones"
_NO_GRAD = np.empty(0)
_NO_HESS = np.empty((0, 0))
_NO_TARGETS = np.empty((0, 0))  # the kernels' "no targets"


def gate_objective(targetsT, logpT):
    """Q = sum_ik T_ki log pi_ki (float) for targets and log pi, both (K, n)."""
    return float(_kern.gate_q(targetsT, logpT))


@lru_cache(maxsize=64)
def _triu(m):
    """np.triu_indices(m), computed once per size: EM asks for it several times per iteration."""
    a, b = np.triu_indices(m)
    a.flags.writeable = False
    b.flags.writeable = False
    return a, b


def use_pair_products(p, n):
    """Whether weighted Gram matrices of a (p, n) design should come from :func:`pair_products`.

    True for small p (p <= PAIR_PRODUCTS_MAX_P, where they are faster) when their p(p+1)/2 rows
    per sample fit in PAIR_PRODUCTS_MAX_BYTES or in PAIR_PRODUCTS_MAX_RATIO times the design;
    otherwise the BLAS path (:func:`weighted_gram`) keeps memory O(n p).
    """
    if p > PAIR_PRODUCTS_MAX_P:
        return False
    q = p * (p + 1) // 2 + p + 1  # the rows the expert M-step precomputes (em._wls_design)
    return q * n * 8 <= PAIR_PRODUCTS_MAX_BYTES or q <= PAIR_PRODUCTS_MAX_RATIO * p


def gram_chunk(p):
    """Columns per block of the BLAS Gram products: a (p, chunk) buffer of about 4 MB."""
    return max(1024, (1 << 19) // p)


def weighted_gram(XtT, W, *, sqrt_weights=False):
    """``sum_i w_ji x_i x_i^T`` for every row j of the weights, in blocks of columns (O(n p) memory).

    Parameters
    ----------
    XtT : ndarray (p, n)
    W : ndarray (m, n)
        The weights w (they may be negative: the gate Hessian's off-diagonal blocks), or with
        ``sqrt_weights`` their square roots: each Gram matrix is then ``Z Z^T`` with
        ``Z = X diag(W[j])``, which NumPy hands to BLAS syrk (half the flops of a general product).

    Returns
    -------
    ndarray (m, p, p), symmetric.
    """
    p, n = XtT.shape
    m = W.shape[0]
    out = np.zeros((m, p, p))
    chunk = gram_chunk(p)
    buf = np.empty((p, min(chunk, n)))
    for s in range(0, n, chunk):
        Xc = XtT[:, s:s + chunk]
        b = buf[:, :Xc.shape[1]]
        for j in range(m):
            np.multiply(Xc, W[j, s:s + chunk], out=b)
            out[j] += b @ (b.T if sqrt_weights else Xc.T)
    return out


def pair_products(XtT):
    """Products x_a x_b (a <= b) of every sample, shape (p(p+1)/2, n).

    They do not change across iterations, so weighted Gram matrices ``sum_i w_i x_i x_i^T``
    for many weight vectors at once become one matrix product ``W @ pair_products.T``.
    """
    p, n = XtT.shape
    out = np.empty((p * (p + 1) // 2, n))
    row = 0
    # Row blocks in np.triu_indices order, written in place (no fancy-indexed temporaries).
    for a in range(p):
        np.multiply(XtT[a], XtT[a:], out=out[row:row + p - a])
        row += p - a
    return out


def sym_from_pairs(vals, p):
    """Unpack (..., p(p+1)/2) upper-triangle entries into symmetric (..., p, p) matrices."""
    a, b = _triu(p)
    out = np.zeros((*vals.shape[:-1], p, p))
    out[..., a, b] = vals
    out[..., b, a] = vals
    return out


def gate_gradient_hessian(XtT, XX, targetsT, probT, weights=None, hess_stride=1):
    """Gradient and negative Hessian of Q with respect to the free gate coefficients.

    Parameters
    ----------
    XtT : ndarray (p, n)
    XX : ndarray (p(p+1)/2, n) or (p(p+1)/2, ceil(n / hess_stride)) or None
        At p > KERNEL_HESSIAN_MAX_P, :func:`pair_products` of ``XtT`` for the Hessian blocks (of
        every point, or already of every ``hess_stride``-th one: :func:`hessian_pairs`), or
        None for BLAS products of the weighted design (:func:`weighted_gram`, O(n p) memory);
        at smaller p a compiled kernel sums them and XX is not read.
    targetsT : ndarray (K, n)
    probT : ndarray (K, n)
        Current gate probabilities.
    weights : ndarray (n,) or None
        Row sums of the targets (None means all ones, as for EM responsibilities).
    hess_stride : int
        Estimate the Hessian from every ``hess_stride``-th sample (scaled up to n); the gradient
        is always exact.

    Returns
    -------
    grad : ndarray ((K-1) * p,)
        Ordered expert-major: entry ``k * p + a`` is dQ/d alpha[a, k].
    hess : ndarray ((K-1) * p, (K-1) * p)
        ``sum_i w_i (diag(pi_i) - pi_i pi_i^T) kron x_i x_i^T`` (positive semi-definite).
    """
    K = probT.shape[0]
    p = XtT.shape[0]
    n = probT.shape[1]
    if p <= KERNEL_HESSIAN_MAX_P:
        # Small p: one compiled pass over the points (XX unused). Beyond, the Hessian blocks below
        # go to BLAS, whose products beat the kernel's loops there.
        m = (K - 1) * p
        return _kern.gate_grad_hess(XtT, targetsT, probT, _NO_WEIGHTS if weights is None else weights,
                                    hess_stride, np.empty(m), np.empty((m, m)))
    P = probT[:-1]
    wP = P if weights is None else P * weights
    grad = ((targetsT[:-1] - wP) @ XtT.T).ravel()
    Xh = XtT
    if hess_stride > 1:
        P, wP = P[:, ::hess_stride], wP[:, ::hess_stride]
        if XX is None:
            Xh = np.ascontiguousarray(XtT[:, ::hess_stride])
        elif XX.shape[1] == n:  # not yet the Hessian's points (see hessian_pairs)
            XX = XX[:, ::hess_stride]
    # Weight of block (k, l): w_i pi_ik (delta_kl - pi_il); one product gives every block.
    k_idx, l_idx = _triu(K - 1)
    W = np.empty((k_idx.size, P.shape[1]))
    # Row by row into one buffer: fancy indexing would allocate (and page-fault) three copies.
    for j, (k, l) in enumerate(zip(k_idx, l_idx, strict=True)):
        r = W[j]
        np.multiply(wP[k], P[l], out=r)
        if k == l:
            np.subtract(wP[k], r, out=r)
        else:
            np.negative(r, out=r)
    if XX is None:
        blocks = weighted_gram(Xh, W)  # (n_pairs, p, p)
    else:
        blocks = sym_from_pairs(W @ XX.T, p)  # (n_pairs, p, p)
    if hess_stride > 1:
        blocks *= n / P.shape[1]
    hess = np.empty(((K - 1) * p, (K - 1) * p))
    for blk, k, l in zip(blocks, k_idx, l_idx, strict=True):
        hess[k * p:(k + 1) * p, l * p:(l + 1) * p] = blk
        hess[l * p:(l + 1) * p, k * p:(k + 1) * p] = blk
    return grad, hess


def _log_softmax_into(etaT, buf):
    """In-place log-softmax over axis 0 of ``etaT`` (K, n); ``buf`` (K, n) receives the softmax.

    Same values as :func:`moecore.model._log_softmax_T` (up to rounding) without its temporaries;
    the probabilities come out of the same pass, so the next Newton step needs no second exp.
    """
    s = _kern.softmax_inplace(etaT, buf)
    etaT -= np.log(s, out=s)
    return etaT


def gate_newton_step(XtT, XX, targetsT, gates, logpT, weights=None):
    """One damped Newton step with step halving on Q.

    Parameters
    ----------
    XtT : ndarray (p, n)
    XX : ndarray (p(p+1)/2, n) or None
        :func:`pair_products` of ``XtT``, or None for the BLAS Hessian (see
        :func:`gate_gradient_hessian`).
    targetsT : ndarray (K, n)
    gates : ndarray (p, K), last column zero
    logpT : ndarray (K, n)
        log pi at ``gates`` (cached by the caller: EM needs it for its E-step anyway).

    Returns
    -------
    gates_new : ndarray (p, K)
    logpT_new : ndarray (K, n)
    q_new : float
        Q at the returned gates; never below Q at the input gates.
    """
    gates, logpT, _, q = newton_step(XtT, XX, targetsT, gates, logpT, np.exp(logpT), weights)
    return gates, logpT, q


def _hessian_stride(n, K, p):
    """Every how many points the gates' Hessian sums. Past HESSIAN_SAMPLES points (above
    p = KERNEL_HESSIAN_MAX_P, HESSIAN_SAMPLES_BLAS or a quarter of the points) a strided subsample
    estimates it well enough: the step is still an ascent direction, the line search on the exact Q
    keeps every step monotone, and the (memory-bound) Hessian no longer dominates an EM iteration."""
    samples = max(HESSIAN_SAMPLES, HESSIAN_SAMPLES_PER_PARAM * (K - 1) * p)
    if p > KERNEL_HESSIAN_MAX_P:
        samples = max(HESSIAN_SAMPLES_BLAS, HESSIAN_SAMPLES_PER_PARAM_BLAS * (K - 1) * p,
                      min(samples, n // HESSIAN_FRACTION_BLAS))
    return max(1, n // samples)


def hessian_pairs(XX, n, K, p):
    """The pair products (p(p+1)/2, n) ``XX`` of the points the gates' Hessian sums in EM's Newton
    steps (:func:`em_newton_step`), as one contiguous array: taken once per EM run, since a strided
    view costs BLAS a copy at every step (a d = 20 product on 2 100 points 122 us strided, 67 us
    contiguous). ``XX`` itself where the kernel sums the Hessian or every point is summed."""
    stride = _hessian_stride(n, K, p)
    if XX is None or p <= KERNEL_HESSIAN_MAX_P or stride == 1:
        return XX
    return np.ascontiguousarray(XX[:, ::stride])


def gate_state(gates, XtT):
    """The gates' state for EM at ``gates`` (p, K): (etaT, probT, lognorm), with etaT (K, n) the
    logits less their maximum over experts, probT (K, n) the probabilities pi and lognorm the sum
    over points of log sum_k exp(etaT), so that log pi = etaT - log s per point without a log per
    point (see :func:`moecore._em_kernels.gate_eval`)."""
    K = gates.shape[1]
    n = XtT.shape[1]
    etaT = np.empty((K, n))
    probT = np.empty((K, n))
    _, lognorm = _kern.gate_eval(XtT, np.ascontiguousarray(gates), _NO_TARGETS, etaT, probT)
    return etaT, probT, lognorm


def em_newton_step(XtT, XX, tauT, gates, state):
    """:func:`newton_step` for EM responsibilities ``tauT`` (K, n), whose columns sum to one, on
    the gates' :func:`gate_state`: returns (gates, state).  The solve and the step halving are one
    compiled call (with the gradient and Hessian too at p <= KERNEL_HESSIAN_MAX_P); a local fit's
    iterations on a few thousand rows were mostly the per-call overhead of NumPy's small arrays."""
    K = gates.shape[1]
    p, n = XtT.shape
    etaT, probT, lognorm = state
    if K > 1:
        stride = _hessian_stride(n, K, p)
        grad, hess = _NO_GRAD, _NO_HESS  # summed in the kernel
        if p > KERNEL_HESSIAN_MAX_P:
            grad, hess = gate_gradient_hessian(XtT, XX, tauT, probT, hess_stride=stride)
        status, new_gates, new_etaT, new_probT, new_lognorm = _kern.em_gate_step(
            XtT, tauT, gates, etaT, probT, lognorm, stride, grad, hess, MAX_STEP, DAMPING, MAX_HALVINGS)
        if status == 1:
            return new_gates, (new_etaT, new_probT, new_lognorm)
        if status == 2:
            return gates, state
    # log pi exactly: log s_i = -log max_k pi_ki, since the largest etaT of each point is 0.
    logpT = etaT + np.log(probT.max(axis=0))
    gates, logpT, probT, _ = newton_step(XtT, XX, tauT, gates, logpT, probT)
    return gates, (logpT, probT, 0.0)


def newton_step(XtT, XX, targetsT, gates, logpT, probT, weights=None):
    """:func:`gate_newton_step` with the gate probabilities ``probT`` (K, n) = exp(logpT) passed
    in and returned: (gates_new, logpT_new, probT_new, q_new).  EM keeps them from one step to
    the next and so saves an exponential of every entry per iteration."""
    K = gates.shape[1]
    p = XtT.shape[0]
    q_old = gate_objective(targetsT, logpT)
    if K == 1:
        return gates, logpT, probT, q_old
    stride = _hessian_stride(XtT.shape[1], K, p)
    grad, hess = gate_gradient_hessian(XtT, XX, targetsT, probT, weights, hess_stride=stride)
    diag = hess.reshape(-1)[:: hess.shape[0] + 1]  # a view of the diagonal
    diag += DAMPING * max(diag.sum() / hess.shape[0], 1e-300)
    step, ok = _kern.spd_solve(hess, grad)
    if not ok:  # not numerically positive definite (rounding on saturated gates)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
    if not np.all(np.isfinite(step)):
        return gates, logpT, probT, q_old
    big = np.abs(step).max()
    if big > MAX_STEP:
        step *= MAX_STEP / big
    delta = step.reshape(K - 1, p).T
    t = 1.0
    buf = np.empty_like(logpT)
    for _ in range(MAX_HALVINGS):
        cand = gates.copy()
        cand[:, :-1] += t * delta
        logp_new = _log_softmax_into(cand.T @ XtT, buf)
        q_new = gate_objective(targetsT, logp_new)
        if q_new >= q_old:
            return cand, logp_new, buf, q_new
        t *= 0.5
    return gates, logpT, probT, q_old


def fit_softmax_gate(XtT, targetsT, gates=None, *, max_iter=100, tol=1e-10, weights=None, XX=None):
    """Maximise Q to convergence by repeated Newton steps.

    Parameters
    ----------
    XtT : ndarray (p, n)
    targetsT : ndarray (K, n)
        Soft targets; columns sum to ``weights`` (default 1).
    gates : ndarray (p, K) or None
        Starting point (zeros by default: uniform gates).

    Returns
    -------
    gates : ndarray (p, K), last column zero
    n_iter : int
    """
    K = targetsT.shape[0]
    p = XtT.shape[0]
    gates = np.zeros((p, K)) if gates is None else np.array(gates, dtype=np.float64)
    logpT = _log_softmax_T(gates.T @ XtT)[0]
    q = gate_objective(targetsT, logpT)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (returned: the steps taken)
        gates, logpT, q_new = gate_newton_step(XtT, XX, targetsT, gates, logpT, weights)
        if q_new - q <= tol * max(abs(q), 1.0):
            break
        q = q_new
    return gates, n_iter
