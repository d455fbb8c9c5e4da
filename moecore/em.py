"""EM for the softmax-gated mixture of Gaussian linear experts (the local and the global fit).

Each iteration: an E-step in the log domain, the experts' exact M-step (weighted least squares
and weighted residual variance), and one Newton step with step halving for the gates (a
generalised EM step).  The log-likelihood therefore never decreases; ``loglik_history_`` lets
a user (and the tests) check it.  Work happens on standardised x and y; the parameters are
mapped back to the original units exactly (:class:`moecore.model.Standardizer`).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import _check_feature_names

from . import model as _m
from ._kmeans import assign_labels, kmeans
from ._threads import one_blas_thread
from ._validation import (
    check_choice,
    check_float,
    check_int,
    check_nonconstant_columns,
    check_random_state_seed,
    check_X,
    check_Xy,
)
from .gating import fit_softmax_gate, newton_step, pair_products, sym_from_pairs

__all__ = ["MixtureOfExperts", "MoEPredictorMixin", "min_samples", "DegenerateFitWarning", "ConvergenceWarning", "NotFittedError"]

# Relative ridge on the weighted least-squares normal equations: far below the 1e-9 relative
# tolerance of the monotonicity checks, large enough to keep a near-singular system solvable.
_WLS_RIDGE = 1e-12
# Data that cannot support K experts would starve one at every iteration: after this many
# re-seeds EM goes on with the starving expert (the ridge and the variance floor keep it finite).
_MAX_RESEEDS = 3
# k-means seeds EM from a subsample of max(_KMEANS_MIN_SAMPLES, _KMEANS_PER_PARAM K (d+1))
# points (every point is then labelled by its nearest centre), best of _KMEANS_RESTARTS
# k-means++ restarts. One k-means run sometimes merges two experts' clusters and EM then crawls
# for 40-105 iterations before it separates them; with data over many machines the slowest local
# fit sets the learning time. benchmarks/bench_init.py, against one run on up to 20 000 points:
# slowest of 128 shards of separated-2d 13-17 ms instead of 19-40 ms with the same median fit
# (the small subsample pays for the restarts); poor optima of global fits on separated-10d 0/32
# instead of 2/32.
_KMEANS_MIN_SAMPLES = 2000
_KMEANS_PER_PARAM = 100
_KMEANS_RESTARTS = 3
_INIT_GATE_STEPS = 5  # Newton steps fitting the starting gates to the k-means partition


def min_samples(n_experts, n_features):
    """Fewest samples EM accepts for K experts on d features: K (d + 1) + 1.

    Below this, some expert is bound to get fewer points than its d + 1 coefficients. The same
    bound applies to every machine's shard (``DistributedMoE``, ``fit_shards``, the app's checks).
    """
    return n_experts * (n_features + 1) + 1


def _kmeans_sample_size(K, p):
    """Points k-means (and the starting gates) see: max(2000, 100 K (d+1))."""
    return max(_KMEANS_MIN_SAMPLES, _KMEANS_PER_PARAM * K * p)


class DegenerateFitWarning(UserWarning):
    """EM had to repair a degenerate state (an expert that lost its points was re-seeded)."""


def _wls_design(XtT, y):
    """Per-sample statistics whose tau-weighted sums give the experts' normal equations.

    Rows: the pair products x_a x_b (a <= b), then x_a y, then y^2; shape (p(p+1)/2 + p + 1, n).
    They are fixed for the whole fit, so each M-step is a single (K, n) x (n, q) product. Row 0,
    x_0 x_0, is all ones (x_0 is the intercept), so that product also yields the weights N_k.
    """
    p, n = XtT.shape
    npp = p * (p + 1) // 2
    F = np.empty((npp + p + 1, n))
    F[:npp] = pair_products(XtT)
    np.multiply(XtT, y, out=F[npp:npp + p])
    np.multiply(y, y, out=F[-1])
    return F


def _wls_experts(F, tauT, p, var_floor):
    """Exact expert M-step (weighted least squares and weighted residual variance).

    Parameters
    ----------
    F : ndarray (p(p+1)/2 + p + 1, n)
        :func:`_wls_design` of the data.
    tauT : ndarray (K, n)
    p : int
        Number of coefficients d + 1.

    Returns
    -------
    experts : ndarray (p, K) ; variances : ndarray (K,) ; Nk : ndarray (K,) the weights sum_i tau_ik
    """
    K = tauT.shape[0]
    npp = p * (p + 1) // 2
    stats = tauT @ F.T  # (K, q)
    Nk = stats[:, 0]
    G = sym_from_pairs(stats[:, :npp], p)
    h = stats[:, npp:npp + p]
    yy = stats[:, -1]
    # Small (K, p, p) algebra: plain products, since einsum's call overhead outweighs it here.
    diag = np.arange(p)
    ridge = _WLS_RIDGE * np.maximum(G[:, diag, diag].sum(axis=1) / p, 1e-300)
    G_r = G.copy()
    G_r[:, diag, diag] += ridge[:, None]
    try:
        B = np.linalg.solve(G_r, h[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        B = np.stack([np.linalg.lstsq(G_r[k], h[k], rcond=None)[0] for k in range(K)])
    # sum_i tau_ik (y_i - b x_i)^2 from the sufficient statistics: no second pass over the data.
    rss = yy - 2.0 * (B * h).sum(axis=1) + ((G @ B[:, :, None])[:, :, 0] * B).sum(axis=1)
    variances = np.maximum(rss / np.maximum(Nk, 1e-300), var_floor)
    return B.T.copy(), variances, Nk


def _estep(XtT, y, logpT, experts, variances):
    """E-step in the log domain.

    Returns
    -------
    ll : float, total log-likelihood
    ll_i : ndarray (n,), per-sample log-likelihood
    tauT : ndarray (K, n), responsibilities
    """
    # In-place arithmetic on one (K, n) buffer: this is the hottest loop of the package.
    a = experts.T @ XtT
    np.subtract(y, a, out=a)
    np.square(a, out=a)
    a *= (-0.5 / variances)[:, None]
    a += (-0.5 * (_m.LOG_2PI + np.log(variances)))[:, None]
    a += logpT
    mx = a.max(axis=0)
    a -= mx
    np.exp(a, out=a)
    s = a.sum(axis=0)
    a /= s
    ll_i = np.log(s)
    ll_i += mx
    return float(ll_i.sum()), ll_i, a


class MoEPredictorMixin:
    """Inference shared by every estimator whose fitted model is ``self.params_`` (a MoEParams)."""

    def _check_is_fitted(self, X=None):
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call 'fit' first."
            )
        if X is not None:
            # A DataFrame whose columns differ from fit's (names or order) is refused, as in
            # scikit-learn: (b, a) where the model learnt (a, b) would predict silently wrong.
            _check_feature_names(self, X, reset=False)

    def predict(self, X):
        """Conditional mean E[y | x], shape (n,)."""
        self._check_is_fitted(X)
        return _m.predict_mean(X, self.params_)

    def predict_proba(self, X):
        """Gate probabilities pi_k(x), shape (n, K)."""
        self._check_is_fitted(X)
        return _m.gate_proba(X, self.params_)

    def predict_expert(self, X):
        """Expert means beta_k . x~, shape (n, K)."""
        self._check_is_fitted(X)
        return _m.expert_means(X, self.params_)

    def posterior_proba(self, X, y):
        """Posterior expert memberships P(z = k | x, y), shape (n, K)."""
        self._check_is_fitted(X)
        return _m.posterior_proba(X, y, self.params_)

    def predict_labels(self, X, y):
        """MAP expert labels argmax_k P(z = k | x, y), shape (n,)."""
        return self.posterior_proba(X, y).argmax(axis=1)

    def score_samples(self, X, y):
        """Per-sample log-likelihood log f(y | x), shape (n,)."""
        self._check_is_fitted(X)
        return _m.loglik_per_sample(X, y, self.params_)

    def score(self, X, y):
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X, y).mean())


class MixtureOfExperts(MoEPredictorMixin, BaseEstimator):
    """Softmax-gated mixture of Gaussian linear experts fitted by (generalised) EM.

    Parameters
    ----------
    n_experts : int, default=2
        Number of experts K (>= 1).
    init : {"kmeans", "random"}, default="kmeans"
        Initial partition: k-means on the standardised (x, y) pairs (the best of 3 k-means++
        restarts on at most max(2000, 100 K (d+1)) of them, every point then labelled by its
        nearest centre), or uniformly random labels.
    n_init : int, default=1
        Number of initialisations; the run with the highest log-likelihood is kept.
    max_iter : int, default=300
        Maximum EM iterations per initialisation.
    tol : float, default=1e-6
        Stop when the relative change of the log-likelihood is below ``tol``.
    var_floor : float, default=1e-6
        Lower bound on expert variances, relative to var(y): guards against collapse.
    gate_steps : int, default=1
        Newton steps for the gates per EM iteration.
    random_state : int, numpy SeedSequence or None
        Seed of the initialisations.

    Attributes
    ----------
    gates_ : ndarray (d+1, K)
        Gate coefficients (row 0 intercepts, last column zero), original units.
    experts_ : ndarray (d+1, K)
        Expert coefficients (row 0 intercepts), original units.
    variances_ : ndarray (K,)
    loglik_history_ : ndarray (n_iter_,)
        Log-likelihood of the training data at each EM iteration of the kept run.
    loglik_ : float
        Final training log-likelihood (the last entry of ``loglik_history_``).
    n_iter_ : int
    converged_ : bool
    n_reseeded_ : int
        Number of times an expert that lost its points was re-seeded.
    fit_time_ : float
        Seconds spent in ``fit``.
    """

    def __init__(
        self,
        n_experts=2,
        *,
        init="kmeans",
        n_init=1,
        max_iter=300,
        tol=1e-6,
        var_floor=1e-6,
        gate_steps=1,
        random_state=None,
    ):
        self.n_experts = n_experts
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.var_floor = var_floor
        self.gate_steps = gate_steps
        self.random_state = random_state

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, params=None, *, gates=None, experts=None, variances=None):
        """Build a fitted model from given parameters (e.g. the true model of a simulation).

        Pass a :class:`~moecore.model.MoEParams` or the three arrays ``gates`` (d+1, K),
        ``experts`` (d+1, K) and ``variances`` (K,).
        """
        if params is None:
            params = _m.MoEParams(gates, experts, variances)
        elif not isinstance(params, _m.MoEParams):
            raise TypeError(f"params must be a MoEParams, got {type(params).__name__}.")
        est = cls(n_experts=params.n_experts)
        est._set_params(params)
        est.loglik_history_ = np.array([])
        est.loglik_ = np.nan
        est.n_iter_ = 0
        est.converged_ = True
        est.n_reseeded_ = 0
        est.fit_time_ = 0.0
        return est

    def _set_params(self, params):
        self.params_ = params
        self.gates_ = params.gates
        self.experts_ = params.experts
        self.variances_ = params.variances
        self.n_features_in_ = params.n_features

    # ------------------------------------------------------------------ validation
    def _check_parameters(self):
        check_int(self.n_experts, "n_experts", low=1)
        check_choice(self.init, "init", {"kmeans", "random"})
        check_int(self.n_init, "n_init", low=1)
        check_int(self.max_iter, "max_iter", low=1)
        check_float(self.tol, "tol", low=0.0)
        check_float(self.var_floor, "var_floor", low=0.0, low_open=True)
        check_int(self.gate_steps, "gate_steps", low=1)
        check_random_state_seed(self.random_state)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y):
        """Fit by EM.

        Parameters
        ----------
        X : array-like (n, d)
        y : array-like (n,)
        """
        t0 = time.perf_counter()
        self._check_parameters()
        K = self.n_experts
        X_in = X
        X, y = check_Xy(X, y)
        n, d = X.shape
        min_n = min_samples(K, d)
        if n < min_n:
            raise ValueError(
                f"X has {n} samples: with n_experts={K} and {d} feature(s), at least "
                f"{min_n} are needed (n_experts * (d + 1) + 1). Use more data or fewer experts."
            )
        x_moments = check_nonconstant_columns(X)
        if not np.std(y) > 0:
            raise ValueError("y is constant: there is nothing for the experts to regress.")
        scaler = _m.Standardizer.fit(X, y, x_moments=x_moments)
        XtT = scaler.design_T(X)
        ys = scaler.transform_y(y)
        seeds = check_random_state_seed(self.random_state).spawn(self.n_init)

        best = None
        with one_blas_thread():
            F = _wls_design(XtT, ys)  # shared by every initialisation
            for seed in seeds:
                run = self._run_em(XtT, ys, F, np.random.default_rng(seed))
                if best is None or run["ll"] > best["ll"]:
                    best = run
        # Log-likelihood in original y units: the density picks up the Jacobian 1 / y_scale.
        shift = n * np.log(scaler.y_scale)
        self._set_params(scaler.params_to_original(best["gates"], best["experts"], best["variances"]))
        self.loglik_history_ = np.asarray(best["history"]) - shift
        self.loglik_ = float(self.loglik_history_[-1])
        self.n_iter_ = len(best["history"])
        self.converged_ = best["converged"]
        self.n_reseeded_ = best["reseeded"]
        # A local fit inside DistributedMoE is quiet (the parent reports per machine): a flag, not
        # warnings.catch_warnings, which is not thread-safe and left warnings switched off for
        # the whole process when fits ran in threads.
        quiet = getattr(self, "_quiet", False)
        if best["reseeded"] and not quiet:
            warnings.warn(
                f"EM re-seeded an expert that had lost its points {best['reseeded']} time(s); "
                "the data may support fewer experts than n_experts="
                f"{K}.",
                DegenerateFitWarning,
                stacklevel=2,
            )
        if not self.converged_ and not quiet:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (tol={self.tol}); "
                "increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        _check_feature_names(self, X_in, reset=True)  # after success: a failed fit changes nothing
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _initial_responsibilities(self, XtT, y, rng):
        K = self.n_experts
        n = y.shape[0]
        if K == 1:
            return np.ones((1, n))
        if self.init == "random":
            labels = rng.integers(K, size=n)
        else:
            ZT = np.vstack([XtT[1:], y])  # the (x, y) pairs as columns
            n_sub = _kmeans_sample_size(K, XtT.shape[0])
            sub = ZT[:, rng.choice(n, n_sub, replace=False)] if n > n_sub else ZT
            centres, labels, _ = kmeans(sub, K, rng, n_init=_KMEANS_RESTARTS)
            if sub is not ZT:
                labels = assign_labels(ZT, centres)
        tauT = np.zeros((K, n))
        tauT[labels, np.arange(n)] = 1.0
        return tauT

    def _run_em(self, XtT, y, F, rng):
        K = self.n_experts
        p, n = XtT.shape
        tauT = self._initial_responsibilities(XtT, y, rng)
        # Smooth the hard partition a little so no gate starts from a separable problem.
        tauT = 0.9 * tauT + 0.1 / K
        XX = F[: p * (p + 1) // 2]
        experts, variances, _ = _wls_experts(F, tauT, p, self.var_floor)
        # Starting gates from a strided subsample of the size k-means used: they only seed EM,
        # whose first Newton steps refine them on all the data (on 1e6 points fitting them on every
        # point took 15 % of the whole fit, with the same iteration counts afterwards).
        sub = slice(None, None, max(1, n // _kmeans_sample_size(K, p)))
        gates, _ = fit_softmax_gate(np.ascontiguousarray(XtT[:, sub]), np.ascontiguousarray(tauT[:, sub]),
                                    max_iter=_INIT_GATE_STEPS, XX=np.ascontiguousarray(XX[:, sub]))
        logpT = _m._log_softmax_T(gates.T @ XtT)[0]
        probT = np.exp(logpT)
        history = []
        converged = False
        reseeded = 0
        # An expert with fewer effective points than coefficients has an undetermined fit.
        min_mass = float(p)
        for it in range(self.max_iter):
            ll, ll_i, tauT = _estep(XtT, y, logpT, experts, variances)
            if history and abs(ll - history[-1]) <= self.tol * abs(history[-1]):
                history.append(ll)
                converged = True
                break
            history.append(ll)
            if it == self.max_iter - 1:
                # No M-step after the last E-step: the history ends with the returned parameters.
                break
            new_experts, new_variances, Nk = _wls_experts(F, tauT, p, self.var_floor)
            if K > 1 and Nk.min() < min_mass and reseeded < _MAX_RESEEDS:
                gates, experts, variances, logpT = self._reseed(
                    XtT, y, ll_i, tauT, gates, experts, variances, rng
                )
                probT = np.exp(logpT)
                reseeded += 1
                # A re-seed is a restart from a new point: monotonicity is only owed after it.
                history = []
                continue
            experts, variances = new_experts, new_variances
            for _ in range(self.gate_steps):
                gates, logpT, probT, _ = newton_step(XtT, XX, tauT, gates, logpT, probT)
        return dict(
            gates=gates,
            experts=experts,
            variances=variances,
            history=history,
            ll=history[-1] if history else -np.inf,
            converged=converged,
            reseeded=reseeded,
        )

    def _reseed(self, XtT, y, ll_i, tauT, gates, experts, variances, rng):
        """Give each starving expert the worst-fitted points and a fresh least-squares fit."""
        K = tauT.shape[0]
        p, n = XtT.shape
        Nk = tauT.sum(axis=1)
        n_take = max(2 * p, n // (4 * K))
        order = np.argsort(ll_i)
        gates = gates.copy()
        experts = experts.copy()
        variances = variances.copy()
        for k in np.flatnonzero(Nk < p):
            idx = order[:n_take]
            order = order[n_take:]
            coef, *_ = np.linalg.lstsq(XtT[:, idx].T, y[idx], rcond=None)
            experts[:, k] = coef
            variances[k] = max(np.var(y[idx] - XtT[:, idx].T @ coef), self.var_floor, 1e-3)
            gates[0, k] = gates[0].mean() if k < K - 1 else gates[0, k]
            gates[1:, k] = 0.0 if k < K - 1 else gates[1:, k]
        gates = gates - gates[:, -1:]
        logpT = _m._log_softmax_T(gates.T @ XtT)[0]
        return gates, experts, variances, logpT

    def n_parameters(self):
        """Free parameters: (K-1)(d+1) gates, K(d+1) experts, K variances."""
        self._check_is_fitted()
        K, p = self.params_.n_experts, self.params_.n_features + 1
        return (K - 1) * p + K * p + K

    def bic(self, X, y):
        """Bayesian information criterion -2 log L + k log n (lower is better)."""
        X = check_X(X)
        return -2.0 * self.score(X, y) * X.shape[0] + self.n_parameters() * np.log(X.shape[0])

    def aic(self, X, y):
        """Akaike information criterion -2 log L + 2 k (lower is better)."""
        X = check_X(X)
        return -2.0 * self.score(X, y) * X.shape[0] + 2 * self.n_parameters()
