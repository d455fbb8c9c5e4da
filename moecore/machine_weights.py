"""Covariate-dependent machine weights w_m(x) = P(machine m | x) for non-IID machines.

The large mixture of the reduction gives component (m, j) the gate mass ``w_m pi^(m)_j(x)``.  With
a random split every machine sees the same inputs, P(m | x) = n_m / n for every x, and the constant
weight is right.  When machine m holds only part of the input space, the pooled density is
``f(y | x) = sum_m P(m | x) f_m(y | x)``: a machine that never saw x must get no mass there, whatever
its gates extrapolate to.  So the weights become functions of x, estimated at the server from the
supporting sample, each of whose points knows the machine it came from.

Estimator (default ``method="knn"`` with k = 1): the machines of the k support points nearest to
x (standardised x), ``w_m(x) = #{s' in kNN(x): m_s' = m} / k``; at a support point with k = 1 this
is the indicator of the machine the point came from.  Why this and not a multinomial logistic
regression of the machine on x, which the package's Newton solver also fits
(``method="logistic"``, kept as an option): the reduction's objective, its expert updates and its
gate targets are all *linear* in the row masses ``w_m(x_s) pi^(m)_j(x_s)`` (each row goes to its
cheapest column whatever its mass), and E[1{m_s = m} | x_s] = P(m | x_s), so the indicator gives an
unbiased estimate of the objective with the true weights, with no model to choose and no cost.
Averaging over k > 1 neighbours trades that for less noise, but the neighbours are found in the
whole of x: with M = 128 bands of x1 on separated-2d, k = 8 took most neighbours from other bands
(held-out RPE 0.103 against 0.091 with k = 1).  The logistic model is exact in shape for the splits
the package makes at alpha = 0 (quantile bands, Voronoi cells of k-means, softmax gates for label
skew) but its boundaries are only as sharp as its ridge allows and its Newton steps cost
O(M^2 p^2 S): with M = 128 bands it took 1.5-6 s and put 8-32 % of the support in the right band.
At M = 8 and 16 the three gave the same held-out RPE to 3 digits on region, k-means and label
splits (benchmarks/README.md, "Non-IID machines").

Deciding whether to use them (``machine_weights="auto"``): the Rao score test of "the machine does
not depend on x" in that same logistic model.  At the null (intercepts only) the score statistic
has the closed form ``T = sum_m S_m zbar_m^T Sigma^-1 zbar_m`` (S_m support points of machine m,
zbar_m their mean standardised x, Sigma the support's covariance of x), asymptotically chi-square
with (M - 1) d degrees of freedom when the machine is independent of x: one pass over the support,
no fit.  Covariate weights are used when its p-value is below ``AUTO_LEVEL`` = 1e-3, so a random
split keeps the constant weights with probability 0.999 (19 of 20 seeds or more with probability
0.9998), while a split by region gives T in the thousands.

Shapes: S support points, d inputs, M machines, p = d + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import model as _m
from ._validation import check_choice, check_float, check_int, check_X
from .gating import gate_gradient_hessian, gate_objective, pair_products
from .params import MACHINE_WEIGHTS

__all__ = [
    "MACHINE_WEIGHTS",
    "AssociationTest",
    "KNNMachineWeights",
    "MachineWeights",
    "association_test",
    "choose_machine_weights",
    "covariate_weights",
    "decide_machine_weights",
    "fit_machine_weights",
    "support_positions",
]

AUTO_LEVEL = 1e-3
# Ridge on the standardised slopes (sum over the support of log-likelihood terms): at S = 3125,
# M = 8 it keeps the band boundaries of a region split about 0.02 standard deviations wide.
RIDGE = 1e-3
N_NEIGHBORS = 1
_MAX_ITER = 50
_TOL = 1e-9
_MAX_STEP = 20.0


@dataclass
class AssociationTest:
    """Score test of "machine independent of x" on the supporting sample.

    statistic : float, T ; df : int, (M - 1) d ; p_value : float
    """

    statistic: float
    df: int
    p_value: float


@dataclass
class MachineWeights:
    """A fitted softmax regression of the machine on x.

    Attributes
    ----------
    coef : ndarray (p, M) on the standardised x; a machine without support points has intercept
        -inf (weight zero everywhere)
    scaler : Standardizer of the support's x
    n_iter : int, Newton steps taken
    """

    coef: np.ndarray
    scaler: _m.Standardizer
    n_iter: int

    @property
    def n_machines(self):
        return self.coef.shape[1]

    def predict_proba(self, X):
        """w_m(x) = P(machine m | x), shape (n, M); rows sum to one."""
        X = check_X(X, "X", n_features=self.coef.shape[0] - 1)
        logp = _m._log_softmax_T(self.coef.T @ self.scaler.design_T(X))[0]
        return np.exp(logp).T

    def __call__(self, X):
        return self.predict_proba(X)


def _check(X, machine, n_machines):
    X = check_X(X, "X_support")
    M = check_int(n_machines, "n_machines", low=1)
    machine = np.asarray(machine)
    if machine.shape != (X.shape[0],):
        raise ValueError(
            f"machine must hold one machine index per support point ({X.shape[0]}), got shape {machine.shape}."
        )
    if machine.dtype.kind not in "iu" or (machine.size and (machine.min() < 0 or machine.max() >= M)):
        raise ValueError(f"machine must hold integers in [0, n_machines - 1] = [0, {M - 1}].")
    return X, machine.astype(np.int64), M


def association_test(X, machine, n_machines):
    """Rao score test that the machine of a support point does not depend on its x.

    Parameters
    ----------
    X : array (S, d), the supporting sample ; machine : int array (S,) ; n_machines : int, M

    Returns
    -------
    AssociationTest; p_value = 1 when only one machine holds support points.
    """
    X, machine, M = _check(X, machine, n_machines)
    S, d = X.shape
    counts = np.bincount(machine, minlength=M)
    present = counts > 0
    k = int(present.sum())
    if k < 2:
        return AssociationTest(0.0, 0, 1.0)
    Z = X - X.mean(axis=0)
    sigma = Z.T @ Z / S
    sums = np.stack([np.bincount(machine, weights=Z[:, j], minlength=M) for j in range(d)], axis=1)
    means = sums[present] / counts[present, None]
    # T = sum_m S_m zbar_m^T Sigma^-1 zbar_m; lstsq tolerates a singular Sigma (collinear inputs).
    sol = np.linalg.lstsq(sigma, means.T, rcond=None)[0]
    T = float(np.sum(counts[present] * np.sum(means.T * sol, axis=0)))
    df = (k - 1) * int(np.linalg.matrix_rank(sigma))
    return AssociationTest(T, df, float(stats.chi2.sf(T, df)) if df > 0 else 1.0)


@dataclass
class KNNMachineWeights:
    """w_m(x): the share of machine m among the k support points nearest to x (standardised).

    Attributes
    ----------
    tree : scipy.spatial.cKDTree of the standardised support ; machine : (S,) their machines
    n_machines : int ; n_neighbors : int ; scaler : Standardizer of the support's x
    """

    tree: object
    machine: np.ndarray
    n_machines: int
    n_neighbors: int
    scaler: _m.Standardizer

    def predict_proba(self, X):
        """w_m(x) = P(machine m | x), shape (n, M); rows sum to one."""
        X = check_X(X, "X", n_features=self.scaler.x_mean.shape[0])
        n, M, k = X.shape[0], self.n_machines, self.n_neighbors
        _, nb = self.tree.query(self.scaler.transform_X(X), k)
        nb = nb.reshape(n, k)
        # One bincount over (row, machine) codes: np.add.at is several times slower.
        codes = (np.arange(n)[:, None] * M + self.machine[nb]).ravel()
        return np.bincount(codes, minlength=n * M).reshape(n, M) / k

    def __call__(self, X):
        return self.predict_proba(X)


def fit_machine_weights(X, machine, n_machines, *, method="knn", n_neighbors=N_NEIGHBORS, ridge=RIDGE,
                        max_iter=_MAX_ITER):
    """Estimate w_m(x) = P(machine m | x) from support points that know their machine.

    Parameters
    ----------
    X : array (S, d), the supporting sample
    machine : int array (S,), the machine each support point came from
    n_machines : int, M; a machine without support points gets weight zero everywhere
    method : {"knn", "logistic"}, see the module docstring
    n_neighbors : int >= 1, k of "knn" (at most S)
    ridge : float >= 0, "logistic": penalty (ridge / 2) |slopes|^2 on the standardised x
    max_iter : int, "logistic": Newton steps at most

    Returns
    -------
    KNNMachineWeights or MachineWeights, with ``predict_proba(X) -> (n, M)``
    """
    check_choice(method, "method", {"knn", "logistic"})
    X, machine, M = _check(X, machine, n_machines)
    if method == "knn":
        from scipy.spatial import cKDTree

        k = check_int(n_neighbors, "n_neighbors", low=1, high=X.shape[0])
        scaler = _m.Standardizer.fit(X)
        return KNNMachineWeights(cKDTree(scaler.transform_X(X)), machine, M, k, scaler)
    return _fit_logistic(X, machine, M, check_float(ridge, "ridge", low=0.0),
                         check_int(max_iter, "max_iter", low=1))


def _fit_logistic(X, machine, M, ridge, max_iter):
    """Ridge-penalised multinomial logistic regression of the machine on x (damped Newton)."""
    S, d = X.shape
    p = d + 1
    scaler = _m.Standardizer.fit(X)
    XtT = scaler.design_T(X)
    counts = np.bincount(machine, minlength=M)
    present = np.flatnonzero(counts > 0)
    Mp = present.size
    coef = np.zeros((p, M))
    if Mp == 1:
        coef[0] = -np.inf
        coef[0, present[0]] = 0.0
        return MachineWeights(coef, scaler, 0)
    # Classes: the machines holding support points, the last one as the reference (zero column).
    cls = np.searchsorted(present, machine)
    T = np.zeros((Mp, S))
    T[cls, np.arange(S)] = 1.0
    XX = pair_products(XtT)
    # Start from the null model (intercepts log S_m / S_M): the constant weights.
    C = np.zeros((p, Mp))
    C[0] = np.log(counts[present] / counts[present[-1]])
    free = np.zeros(((Mp - 1), p), dtype=bool)
    free[:, 1:] = True
    pen_mask = free.ravel().astype(float)

    def objective(C):
        logp = _m._log_softmax_T(C.T @ XtT)[0]
        return gate_objective(T, logp) - 0.5 * ridge * float(np.sum(C[1:, :-1] ** 2)), logp

    q, logp = objective(C)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (returned: the steps taken)
        grad, hess = gate_gradient_hessian(XtT, XX, T, np.exp(logp))
        grad -= ridge * (C[:, :-1].T.ravel() * pen_mask)
        hess[np.diag_indices_from(hess)] += ridge * pen_mask + 1e-10 * max(np.trace(hess) / hess.shape[0], 1e-300)
        step = np.linalg.solve(hess, grad)
        big = np.abs(step).max()
        if big > _MAX_STEP:
            step *= _MAX_STEP / big
        delta = step.reshape(Mp - 1, p).T
        t = 1.0
        for _ in range(30):
            cand = C.copy()
            cand[:, :-1] += t * delta
            q_new, logp_new = objective(cand)
            if q_new >= q:
                break
            t *= 0.5
        else:
            break
        C, logp, gain = cand, logp_new, q_new - q
        q = q_new
        if gain <= _TOL * max(abs(q), 1.0):
            break
    coef[:, present] = C
    absent = np.setdiff1d(np.arange(M), present)
    coef[0, absent] = -np.inf
    return MachineWeights(coef, scaler, n_iter)


def decide_machine_weights(mode, X, machine, n_machines, *, level=AUTO_LEVEL):
    """Resolve ``machine_weights`` = "constant" | "covariate" | "auto" on the supporting sample.

    Returns
    -------
    used : "constant" or "covariate"
    test : AssociationTest or None (computed for "auto" only)
    """
    check_choice(mode, "machine_weights", set(MACHINE_WEIGHTS))
    if mode != "auto":
        return mode, None
    test = association_test(X, machine, n_machines)
    return ("covariate" if test.p_value < level else "constant"), test


def support_positions(support_machine, machines, n_machines):
    """Index into ``machines`` (M',) of every support point's machine (S,); -1: a machine whose fit
    is not aggregated (its support points still serve the reduction, not the weights)."""
    pos = np.full(n_machines, -1)
    pos[machines] = np.arange(len(machines))
    return pos[support_machine]


def choose_machine_weights(mode, X_support, support_pos, n_kept, *, random_split, x_split=False):
    """Resolve ``machine_weights`` before the screening (which treats exchangeable machines and
    covariate ones differently): ("constant" | "covariate", AssociationTest or None).

    random_split : the rows were shuffled over the machines by the package itself, so
    P(machine | x) = n_m / n exactly and "auto" needs no test.  x_split : the package itself split
    the rows by x (region, k-means), so P(machine | x) depends on x by construction and "auto" takes
    covariate weights whatever the test says (it is still returned, for the record): on a small
    support the test could miss it (crossing-2d, n = 3 000 over 16 region machines: 46 support
    points, p = 0.0015, and constant weights ended 1.8 nats per point below the global EM on held-out
    data, covariate ones 0.01).
    """
    if mode == "auto" and random_split:
        return "constant", None
    ok = support_pos >= 0
    used, test = decide_machine_weights(mode, X_support[ok], support_pos[ok], n_kept)
    return ("covariate" if mode == "auto" and x_split else used), test


def covariate_weights(X_support, support_pos, n_kept):
    """The fitted w_m(x) and its values (S, M') at the support points: the large mixture's
    machine weights when the machines hold different x."""
    ok = support_pos >= 0
    model = fit_machine_weights(X_support[ok], support_pos[ok], n_kept)
    return model, model.predict_proba(X_support)
