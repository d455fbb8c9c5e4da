"""EM's per-iteration kernels compiled with numba: the E-step, the gates' state and Newton step,
the experts' small solves, SQUAREM's extrapolation, and the k-planes start; and the screening's
log-likelihood of every local model at every support point.

Local fits run on shards of a few thousand rows, and most of a portfolio's EM iterations on a
subsample of 500: at that size one NumPy iteration (about sixty array calls, each allocating its
temporaries) cost 150-300 us, nearly all of it per-call overhead, and the slowest machine's fit
sets the learning time.  Each kernel here is a few passes over the points with no temporaries,
the loops running along the contiguous rows of the transposed (p, n) / (K, n) arrays.  The
products that BLAS does better stay BLAS calls: the experts' means ``experts.T @ XtT``, their
pair-product statistics, and the gates' Hessian above p = 6 (gating.KERNEL_HESSIAN_MAX_P).
``benchmarks/bench_em_kernels.py`` times iterations and local fits against the NumPy code these
replaced; ``tests/test_em_kernels.py`` checks every kernel against the NumPy formula.

Shapes: meansT / etaT / logpT / probT / tauT (K, n), XtT (p, n) with row 0 all ones, y (n,).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "em_gate_step", "estep_inplace", "experts_solve", "gate_eval", "gate_grad_hess", "gate_q", "kplanes",
    "mixtures_loglik", "softmax_inplace", "spd_solve", "squarem_step",
]

_LOG_2PI = math.log(2.0 * math.pi)
# As for k-means and the reduction: reassociation lets LLVM vectorise the sums over points;
# results move at rounding level only and are the same in every process. No nnan/ninf: a NaN or
# an infinite log-likelihood must show.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


# exp by hand, in a form LLVM vectorises: libm's is a scalar call, which made a compiled E-step
# at 4 000 points slower than NumPy's SIMD exp (82 against 63 us). Cody-Waite reduction
# x = k ln2 + r, |r| <= ln2 / 2, a degree-12 Taylor polynomial (truncation below 2e-16 relative),
# 2^k written into the exponent bits: within 4 ulp of libm's (tests/test_em_kernels.py). It
# returns 0 below -708 (exp(-708) = 3e-308), where a responsibility or a gate probability is
# nothing anyway.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split so that k * _LN2_HI is exact for |k| < 2^20
_LN2_LO = 1.9082149292705877e-10
_EXP_MIN = -708.0
# Log-likelihoods and the gates' Q sum log s_i, s_i = sum_k exp(v_ik - max_k v_ik) in [1, K]: as
# logs of products of this many s_i (at most K^32, finite for any K below 4e9), a log per 32
# points instead of one per point.
_LOG_BLOCK = 32


@njit(cache=True, nogil=True, fastmath={"contract"})  # no reassociation: it would undo Cody-Waite's split
def _exp_inplace(x, bits):
    """x <- exp(x) elementwise for a 1-d x (n,) (NaN stays NaN); ``bits`` int64 scratch (n,)."""
    n = x.shape[0]
    scale = bits.view(np.float64)
    for i in range(n):
        v = x[i]
        k = math.floor(v * _LOG2E + 0.5)
        k = min(max(k, -1022.0), 1023.0)
        r = (v - k * _LN2_HI) - k * _LN2_LO
        q = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (
            1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0 + r * (1.0 / 362880.0 + r * (
                1.0 / 3628800.0 + r * (1.0 / 39916800.0 + r * (1.0 / 479001600.0))))))))))))
        bits[i] = (np.int64(k) + 1023) << 52
        x[i] = 0.0 if v < _EXP_MIN else q
    for i in range(n):
        x[i] *= scale[i]


@njit(cache=True, nogil=True, fastmath=_FAST)
def estep_inplace(aT, y, logpT, variances):
    """E-step in the log domain, in place: ``aT`` (K, n) holds the experts' means on entry and
    the responsibilities on return; ``logpT`` (K, n) the gates' log-probabilities, or any shift
    of them by a constant per point (the etaT of :func:`gate_eval`). Returns the total
    log-likelihood plus the sum of those shifts."""
    K, n = aT.shape
    mx = np.full(n, -np.inf)
    for k in range(K):
        iv = -0.5 / variances[k]
        c = -0.5 * (_LOG_2PI + math.log(variances[k]))
        row = aT[k]
        lp = logpT[k]
        for i in range(n):
            r = y[i] - row[i]
            v = r * r * iv + c + lp[i]
            row[i] = v
            mx[i] = max(mx[i], v)
    total = 0.0
    for i in range(n):
        total += mx[i]
    # log sum_k exp(v_ik) = max_k v_ik + log s_i; the responsibilities are the softmax of v.
    return total + _block_log_sum(softmax_inplace(aT, aT))


@njit(cache=True, nogil=True, fastmath=_FAST)
def softmax_inplace(etaT, probT):
    """Softmax over experts: ``etaT`` (K, n) holds the logits on entry and the logits less their
    maximum over experts on return; ``probT`` (K, n) receives pi. Returns s (n,), the sums of
    exp(etaT) on return, whose logs complete log pi = etaT - log s (NumPy's SIMD log)."""
    K, n = etaT.shape
    mx = np.full(n, -np.inf)
    for k in range(K):
        row = etaT[k]
        for i in range(n):
            mx[i] = max(mx[i], row[i])
    for k in range(K):
        row = etaT[k]
        pr = probT[k]
        for i in range(n):
            v = row[i] - mx[i]
            row[i] = v
            pr[i] = v
    _exp_inplace(probT.reshape(K * n), np.empty(K * n, dtype=np.int64))
    s = np.zeros(n)
    for k in range(K):
        pr = probT[k]
        for i in range(n):
            s[i] += pr[i]
    inv = np.empty(n)
    for i in range(n):
        inv[i] = 1.0 / s[i]
    for k in range(K):
        pr = probT[k]
        for i in range(n):
            pr[i] *= inv[i]
    return s


@njit(cache=True, nogil=True, fastmath=_FAST)
def gate_q(targetsT, logpT):
    """Q = sum_ki T_ki log pi_ki. Newton's step halving compares two of these, so both come from
    this one function: the same summation order on both sides."""
    K, n = logpT.shape
    q = 0.0
    for k in range(K):
        t = targetsT[k]
        row = logpT[k]
        for i in range(n):
            q += t[i] * row[i]
    return q


@njit(cache=True, nogil=True, fastmath=_FAST)
def gate_grad_hess(XtT, targetsT, probT, weights, stride, grad, hess):
    """Gradient and negative Hessian of Q in the free gate coefficients (the first K - 1 experts),
    filled into ``grad`` ((K-1) p,) and ``hess`` ((K-1) p, (K-1) p), entry ``k p + a`` for
    alpha[a, k].  ``weights`` (n,): the targets' row sums, or an empty array for all ones.  The
    Hessian sums every ``stride``-th point, scaled up to n; the gradient sums them all."""
    p, n = XtT.shape
    K = probT.shape[0]
    Km = K - 1
    has_w = weights.shape[0] == n
    r = np.empty(n)
    for k in range(Km):
        t = targetsT[k]
        pr = probT[k]
        if has_w:
            for i in range(n):
                r[i] = t[i] - weights[i] * pr[i]
        else:
            for i in range(n):
                r[i] = t[i] - pr[i]
        for a in range(p):
            x = XtT[a]
            acc = 0.0
            for i in range(n):
                acc += r[i] * x[i]
            grad[k * p + a] = acc
    # The Hessian's points gathered contiguous first: strided loads do not vectorise.
    ns = (n + stride - 1) // stride
    xs = np.empty((p, ns))
    ps = np.empty((Km, ns))
    for a in range(p):
        for s in range(ns):
            xs[a, s] = XtT[a, s * stride]
    for k in range(Km):
        for s in range(ns):
            i = s * stride
            ps[k, s] = probT[k, i]
    wk = np.empty(ns)
    w = np.empty(ns)
    scale = n / ns
    # Block (k, l), k <= l: sum_i w_i pi_ik (delta_kl - pi_il) x_i x_i^T, symmetric in (a, b).
    for k in range(Km):
        for s in range(ns):
            wk[s] = ps[k, s] * weights[s * stride] if has_w else ps[k, s]
        for l in range(k, Km):
            if k == l:
                for s in range(ns):
                    w[s] = wk[s] * (1.0 - ps[l, s])
            else:
                for s in range(ns):
                    w[s] = -wk[s] * ps[l, s]
            for a in range(p):
                xa = xs[a]
                for b in range(a, p):
                    xb = xs[b]
                    acc = 0.0
                    for s in range(ns):
                        acc += w[s] * xa[s] * xb[s]
                    v = acc * scale
                    hess[k * p + a, l * p + b] = v
                    hess[k * p + b, l * p + a] = v
                    hess[l * p + b, k * p + a] = v
                    hess[l * p + a, k * p + b] = v
    return grad, hess


@njit(cache=True, nogil=True)
def _cholesky_solve_inplace(A, b):
    """Solve A x = b for a symmetric positive definite A (m, m), overwriting A with its Cholesky
    factor and b with x. Returns False (A, b spoilt) when A is not numerically positive definite."""
    m = A.shape[0]
    for j in range(m):
        d = A[j, j]
        for t in range(j):
            d -= A[j, t] * A[j, t]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        A[j, j] = d
        for i in range(j + 1, m):
            s = A[i, j]
            for t in range(j):
                s -= A[i, t] * A[j, t]
            A[i, j] = s / d
    for i in range(m):
        s = b[i]
        for t in range(i):
            s -= A[i, t] * b[t]
        b[i] = s / A[i, i]
    for i in range(m - 1, -1, -1):
        s = b[i]
        for t in range(i + 1, m):
            s -= A[t, i] * b[t]
        b[i] = s / A[i, i]
    return True


@njit(cache=True, nogil=True)
def spd_solve(A, b):
    """x with A x = b for a symmetric positive definite A (m, m) (inputs untouched), and whether
    the Cholesky factorisation succeeded (False: x is meaningless, solve otherwise)."""
    A2 = A.copy()
    x = b.copy()
    ok = _cholesky_solve_inplace(A2, x)
    return x, ok


@njit(cache=True, nogil=True)
def experts_solve(stats, p, ridge_rel, var_floor, experts, variances):
    """The experts' weighted least squares from their pair-product statistics.

    ``stats`` (K, q): per expert the tau-weighted sums of the rows of em._wls_design (pair
    products x_a x_b, a <= b, in np.triu_indices order, then x_a y, then y^2; the first is N_k).
    Fills ``experts`` (p, K) and ``variances`` (K,) (floored at ``var_floor``); the normal
    equations get a ridge of ``ridge_rel`` times their mean diagonal.  Returns False when a
    system is not numerically positive definite (the caller then solves it by LAPACK).
    """
    K = stats.shape[0]
    npp = p * (p + 1) // 2
    G = np.empty((p, p))
    A = np.empty((p, p))
    h = np.empty(p)
    B = np.empty(p)
    for k in range(K):
        j = 0
        for a in range(p):
            for b in range(a, p):
                G[a, b] = stats[k, j]
                G[b, a] = stats[k, j]
                j += 1
        tr = 0.0
        for a in range(p):
            tr += G[a, a]
        ridge = ridge_rel * max(tr / p, 1e-300)
        for a in range(p):
            h[a] = stats[k, npp + a]
            B[a] = h[a]
            for b in range(p):
                A[a, b] = G[a, b]
            A[a, a] += ridge
        if not _cholesky_solve_inplace(A, B):
            return False
        # sum_i tau_ik (y_i - b x_i)^2 = yy - 2 b.h + b' G b: no second pass over the data.
        rss = stats[k, npp + p]
        for a in range(p):
            gb = 0.0
            for b in range(p):
                gb += G[a, b] * B[b]
            rss += B[a] * (gb - 2.0 * h[a])
        Nk = max(stats[k, 0], 1e-300)
        variances[k] = max(rss / Nk, var_floor)
        for a in range(p):
            experts[a, k] = B[a]
    return True


@njit(cache=True, nogil=True, fastmath=_FAST)
def _line_fit(XtT, y, members, n_members, ridge_rel, out, k):
    """Least-squares line of the points ``members[:n_members]`` into column k of ``out`` (p, K),
    by the normal equations with a ridge of ``ridge_rel`` times their mean diagonal (a singular
    subset, such as a dummy input constant on it, then gets a small-norm line, as lstsq's)."""
    p = XtT.shape[0]
    G = np.zeros((p, p))
    h = np.zeros(p)
    for s in range(n_members):
        i = members[s]
        for a in range(p):
            xa = XtT[a, i]
            h[a] += xa * y[i]
            for b in range(a, p):
                G[a, b] += xa * XtT[b, i]
    tr = 0.0
    for a in range(p):
        tr += G[a, a]
        for b in range(a + 1, p):
            G[b, a] = G[a, b]
    ridge = ridge_rel * max(tr / p, 1e-300)
    for a in range(p):
        G[a, a] += ridge
    if _cholesky_solve_inplace(G, h):
        for a in range(p):
            out[a, k] = h[a]


@njit(cache=True, nogil=True, fastmath=_FAST)
def _nearest_line(XtT, y, B, labels):
    """labels[i] <- the line (column of B (p, K)) nearest to point i in y (the first on ties);
    returns whether any label changed."""
    p, n = XtT.shape
    K = B.shape[1]
    changed = False
    for i in range(n):
        best = np.inf
        kb = 0
        for k in range(K):
            mu = 0.0
            for a in range(p):
                mu += B[a, k] * XtT[a, i]
            d = abs(y[i] - mu)
            if d < best:
                best = d
                kb = k
        if labels[i] != kb:
            changed = True
            labels[i] = kb
    return changed


@njit(cache=True, nogil=True)
def kplanes(XtT, y, seeds, n_iter, ridge_rel):
    """Clusterwise regression from K lines: line k through the points ``seeds[k]`` ((K, m) indices),
    every point to the line nearest in y, then up to ``n_iter`` rounds of refitting each line to
    its points (when it holds more than p) and reassigning, until no label changes.
    Returns labels (n,)."""
    p, n = XtT.shape
    K = seeds.shape[0]
    B = np.zeros((p, K))
    for k in range(K):
        _line_fit(XtT, y, seeds[k], seeds.shape[1], ridge_rel, B, k)
    labels = np.full(n, -1, dtype=np.int64)
    _nearest_line(XtT, y, B, labels)
    members = np.empty(n, dtype=np.int64)
    for _ in range(n_iter):
        for k in range(K):
            m = 0
            for i in range(n):
                if labels[i] == k:
                    members[m] = i
                    m += 1
            if m > p:
                _line_fit(XtT, y, members, m, ridge_rel, B, k)
        if not _nearest_line(XtT, y, B, labels):
            break
    return labels


@njit(cache=True, nogil=True, fastmath=_FAST)
def _block_log_sum(s):
    """sum_i log s_i for s_i in [1, K], as logs of products of _LOG_BLOCK of them."""
    n = s.shape[0]
    total = 0.0
    for start in range(0, n, _LOG_BLOCK):
        prod = 1.0
        for i in range(start, min(start + _LOG_BLOCK, n)):
            prod *= s[i]
        total += math.log(prod)
    return total


@njit(cache=True, nogil=True, fastmath=_FAST)
def mixtures_loglik(etaT, meansT, y, variances, out):
    """log f_m(y_s | x_s) of M mixtures at S points, filled into ``out`` (M, S).

    etaT, meansT : (M, K, S) every mixture's gate logits and experts' means at the points (BLAS
    products, overwritten) ; y : (S,) ; variances : (M, K).  Two log-sum-exps over the experts
    per point, log sum_k pi_k N_k = lse_k(eta_k + log N_k) - lse_k(eta_k), with the vectorised exp
    and one log per point: the screening scores every local model on every support point
    (M = 128, K = 4, S = 1 953: 25 ms in NumPy's passes and temporaries)."""
    M, K, S = etaT.shape
    bits = np.empty(K * S, dtype=np.int64)
    mg = np.empty(S)
    mv = np.empty(S)
    sg = np.empty(S)
    sv = np.empty(S)
    for m in range(M):
        eta = etaT[m]
        v = meansT[m]
        mg[:] = -np.inf
        mv[:] = -np.inf
        for k in range(K):
            iv = -0.5 / variances[m, k]
            c = -0.5 * (_LOG_2PI + math.log(variances[m, k]))
            e = eta[k]
            row = v[k]
            for s in range(S):
                r = y[s] - row[s]
                w = e[s] + r * r * iv + c
                row[s] = w
                mg[s] = max(mg[s], e[s])
                mv[s] = max(mv[s], w)
        for k in range(K):
            e = eta[k]
            row = v[k]
            for s in range(S):
                e[s] -= mg[s]
                row[s] -= mv[s]
        _exp_inplace(eta.reshape(K * S), bits)
        _exp_inplace(v.reshape(K * S), bits)
        sg[:] = 0.0
        sv[:] = 0.0
        for k in range(K):
            e = eta[k]
            row = v[k]
            for s in range(S):
                sg[s] += e[s]
                sv[s] += row[s]
        o = out[m]
        for s in range(S):
            o[s] = (mv[s] - mg[s]) + math.log(sv[s] / sg[s])


@njit(cache=True, nogil=True, fastmath=_FAST)
def gate_eval(XtT, gates, targetsT, etaT, probT):
    """The gates' state at ``gates`` (p, K): fills etaT (K, n) with the logits less their maximum
    over experts and probT (K, n) with pi, and returns (Q, lognorm), where log pi_ki = etaT_ki -
    log s_i with s_i = sum_k exp(etaT_ki), lognorm = sum_i log s_i, and Q = sum T etaT - lognorm
    for EM targets ``targetsT`` (K, n) whose columns sum to one (0.0 for an empty (0, 0) array).
    Neither needs a log per point: EM's E-step and gate steps take the state as it is."""
    p, n = XtT.shape
    K = gates.shape[1]
    for k in range(K):
        row = etaT[k]
        for i in range(n):
            row[i] = 0.0
        for a in range(p):
            g = gates[a, k]
            x = XtT[a]
            for i in range(n):
                row[i] += g * x[i]
    lognorm = _block_log_sum(softmax_inplace(etaT, probT))
    q = 0.0
    if targetsT.shape[0] == K:
        q = gate_q(targetsT, etaT) - lognorm
    return q, lognorm


@njit(cache=True, nogil=True)
def em_gate_step(XtT, targetsT, gates, etaT, probT, lognorm, stride, grad, hess, max_step, damping, max_halvings):
    """One damped Newton step on the gates with step halving on Q, for EM responsibilities
    ``targetsT`` (K, n) (columns summing to one), from ``gates`` (p, K) (last column zero) whose
    state (:func:`gate_eval`) is ``etaT``, ``probT`` (K, n) and ``lognorm``.  ``grad`` ((K-1) p,)
    and ``hess`` ((K-1) p, (K-1) p): the gradient and negative Hessian of Q there, or empty arrays
    to have them summed here (:func:`gate_grad_hess`, the Hessian over every ``stride``-th point);
    ``hess`` is overwritten.

    Returns (status, gates, etaT, probT, lognorm): status 0 when the Newton system is singular
    (nothing done: the caller solves it by least squares), 1 when a step raised Q (the new gates
    and their state), 2 when no step did (keep the input gates; the arrays are scratch).
    """
    p, n = XtT.shape
    K = gates.shape[1]
    m = (K - 1) * p
    if grad.shape[0] != m:
        grad = np.empty(m)
        hess = np.empty((m, m))
        gate_grad_hess(XtT, targetsT, probT, np.empty(0), stride, grad, hess)
    tr = 0.0
    for j in range(m):
        tr += hess[j, j]
    lam = damping * max(tr / m, 1e-300)
    for j in range(m):
        hess[j, j] += lam
    step = grad.copy()
    eta1 = np.empty((K, n))
    prob1 = np.empty((K, n))
    if not _cholesky_solve_inplace(hess.copy(), step):
        # Not numerically positive definite (an expert whose gate is nearly zero everywhere
        # leaves its block at the damping's size, below rounding): LAPACK's LU, as NumPy's code.
        try:
            step = np.linalg.solve(hess, grad)
        except Exception:
            return 0, gates, eta1, prob1, 0.0
    big = 0.0
    for j in range(m):
        if not math.isfinite(step[j]):
            return 2, gates, eta1, prob1, 0.0
        big = max(big, abs(step[j]))
    if big > max_step:
        for j in range(m):
            step[j] *= max_step / big
    q0 = gate_q(targetsT, etaT) - lognorm
    cand = gates.copy()
    t = 1.0
    for _ in range(max_halvings):
        for k in range(K - 1):
            for a in range(p):
                cand[a, k] = gates[a, k] + t * step[k * p + a]
        q1, lognorm1 = gate_eval(XtT, cand, targetsT, eta1, prob1)
        if q1 >= q0:
            return 1, cand, eta1, prob1, lognorm1
        t *= 0.5
    return 2, gates, eta1, prob1, 0.0


@njit(cache=True, nogil=True)
def squarem_step(g0, e0, v0, g1, e1, v1, g2, e2, v2, step_max, var_floor):
    """One SQUAREM extrapolation (Varadhan & Roland's SqS3) from theta0, theta1 = EM(theta0) and
    theta2 = EM(theta1), each gates (p, K) (last column zero), experts (p, K) and variances (K,),
    in the coordinates free gate columns, experts, log variances.

    Returns (alpha, gates, experts, variances): the step length |r| / |v| within [1, step_max]
    (r = theta1 - theta0, v = theta2 - 2 theta1 + theta0) and, when alpha > 1, the point
    theta0 + 2 alpha r + alpha^2 v with its variances floored at ``var_floor`` (a log variance
    capped at 700, past which exp overflows: the point is then simply a poor one).
    """
    p, K = g0.shape
    rr = 0.0
    vv = 0.0
    for a in range(p):
        for k in range(K - 1):
            r = g1[a, k] - g0[a, k]
            v = g2[a, k] - 2.0 * g1[a, k] + g0[a, k]
            rr += r * r
            vv += v * v
        for k in range(K):
            r = e1[a, k] - e0[a, k]
            v = e2[a, k] - 2.0 * e1[a, k] + e0[a, k]
            rr += r * r
            vv += v * v
    l0 = np.log(v0)
    l1 = np.log(v1)
    l2 = np.log(v2)
    for k in range(K):
        r = l1[k] - l0[k]
        v = l2[k] - 2.0 * l1[k] + l0[k]
        rr += r * r
        vv += v * v
    alpha = min(math.sqrt(rr / vv), step_max) if vv > 0.0 else 1.0
    gates = np.zeros((p, K))
    experts = np.empty((p, K))
    variances = np.empty(K)
    if alpha > 1.0:
        c1 = 2.0 * alpha
        c2 = alpha * alpha
        for a in range(p):
            for k in range(K - 1):
                gates[a, k] = g0[a, k] + c1 * (g1[a, k] - g0[a, k]) + c2 * (g2[a, k] - 2.0 * g1[a, k] + g0[a, k])
            for k in range(K):
                experts[a, k] = e0[a, k] + c1 * (e1[a, k] - e0[a, k]) + c2 * (e2[a, k] - 2.0 * e1[a, k] + e0[a, k])
        for k in range(K):
            lv = l0[k] + c1 * (l1[k] - l0[k]) + c2 * (l2[k] - 2.0 * l1[k] + l0[k])
            variances[k] = max(math.exp(min(lv, 700.0)), var_floor)
    return alpha, gates, experts, variances
