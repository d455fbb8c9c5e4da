"""The softmax-gated mixture of Gaussian linear experts: parameters, densities, gates, prediction.

Notation (see ``docs/method.md``): an input ``x`` in R^d is used with an intercept,
``x~ = (1, x)``.  A K-expert model has

* ``gates``     array (d+1, K): softmax gate coefficients, row 0 the intercepts, last column 0;
* ``experts``   array (d+1, K): regression coefficients of the experts, row 0 the intercepts;
* ``variances`` array (K,): the experts' noise variances.

Internally the hot paths work on transposed per-sample arrays of shape (K, n): reductions over
the K experts are then element-wise operations over contiguous rows, which NumPy vectorises
(a reduction over a short last axis is about 50 times slower).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from ._threads import one_blas_thread
from ._validation import check_response_scale, check_X, check_Xy, column_moments

LOG_2PI = float(np.log(2.0 * np.pi))

__all__ = [
    "MAX_COEFFICIENT",
    "VARIANCE_RANGE",
    "MoEParams",
    "Standardizer",
    "add_intercept",
    "check_predictable",
    "expert_means",
    "feature_names",
    "gate_proba",
    "log_expert_density",
    "log_gate_proba",
    "loglik_per_sample",
    "net_variances",
    "posterior_proba",
    "predict_mean",
]


@dataclass(frozen=True)
class MoEParams:
    """Parameters of a K-expert MoE in the original units of x and y.

    Attributes
    ----------
    gates : ndarray of shape (d+1, K)
        Softmax gate coefficients; row 0 holds the intercepts and the last column is zero.
    experts : ndarray of shape (d+1, K)
        Expert regression coefficients; row 0 holds the intercepts.
    variances : ndarray of shape (K,)
        Expert noise variances, all > 0.
    """

    gates: np.ndarray
    experts: np.ndarray
    variances: np.ndarray

    def __post_init__(self):
        gates = np.array(self.gates, dtype=np.float64, ndmin=2)
        experts = np.array(self.experts, dtype=np.float64, ndmin=2)
        variances = np.array(self.variances, dtype=np.float64, ndmin=1)
        if gates.ndim != 2 or experts.ndim != 2 or variances.ndim != 1:
            raise ValueError(
                "gates and experts must be 2-D (d+1, K) and variances 1-D (K,); got shapes "
                f"{gates.shape}, {experts.shape}, {variances.shape}."
            )
        if gates.shape != experts.shape or variances.shape[0] != experts.shape[1]:
            raise ValueError(
                "gates (d+1, K), experts (d+1, K) and variances (K,) must agree; got shapes "
                f"{gates.shape}, {experts.shape}, {variances.shape}."
            )
        if experts.shape[0] < 2:
            raise ValueError("gates and experts need an intercept row and at least one input row (d >= 1).")
        for name, a in (("gates", gates), ("experts", experts), ("variances", variances)):
            if not np.isfinite(a).all():
                raise ValueError(f"{name} must be finite.")
        if np.any(variances <= 0):
            raise ValueError(f"variances must all be > 0, got {variances.tolist()}.")
        # The softmax is invariant to adding a vector to every column: pin the last one to 0.
        gates = gates - gates[:, -1:]
        object.__setattr__(self, "gates", gates)
        object.__setattr__(self, "experts", experts)
        object.__setattr__(self, "variances", variances)

    @property
    def n_experts(self) -> int:
        return self.experts.shape[1]

    @property
    def n_features(self) -> int:
        return self.experts.shape[0] - 1

    def permute(self, perm) -> MoEParams:
        """Reorder the experts: expert ``k`` of the result is expert ``perm[k]`` of ``self``."""
        perm = np.asarray(perm, dtype=int)
        return MoEParams(self.gates[:, perm], self.experts[:, perm], self.variances[perm])

    def to_dict(self) -> dict:
        return {
            "gates": self.gates.tolist(),
            "experts": self.experts.tolist(),
            "variances": self.variances.tolist(),
        }

    @classmethod
    def from_dict(cls, d, name="the MoE parameters") -> MoEParams:
        """The parameters stored by :meth:`to_dict` (e.g. read back from JSON), checked as a model read
        from outside: numbers only, and within :func:`check_predictable`'s bounds.  Raises TypeError
        (not a mapping) or ValueError, each message starting with ``name``."""
        if not isinstance(d, dict):
            raise TypeError(f"{name} must be a mapping, got {type(d).__name__}.")
        missing = {"gates", "experts", "variances"} - set(d)
        if missing:
            raise ValueError(f"{name} lack the field(s) {sorted(missing)}.")
        arrays = []
        for field, shape in (("gates", "(d+1, K)"), ("experts", "(d+1, K)"), ("variances", "(K,)")):
            value = d[field]
            if value is None or isinstance(value, (str, bytes)) or not np.iterable(value):
                raise ValueError(f"{name}: {field} must be an array {shape} of numbers, got {type(value).__name__}.")
            try:
                cells = np.asarray(value, dtype=object)
            except ValueError:  # a ragged nesting NumPy cannot even hold as objects (arrays of two shapes)
                raise ValueError(f"{name}: {field} must be an array {shape} of numbers, got rows of different "
                                 "lengths.") from None
            # Numbers only: float64 would take "1.5" and True as 1.5 and 1.0 without a word, and an
            # integer beyond float64 (10**400 in a file) raised a bare OverflowError.
            odd = [v for v in cells.ravel() if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real)]
            if odd:
                what = ("rows of different lengths" if isinstance(odd[0], (list, tuple, np.ndarray))
                        else f"{odd[0]!r} ({type(odd[0]).__name__})")
                raise ValueError(f"{name}: {field} must be an array {shape} of numbers, got {what}.")
            try:
                arrays.append(cells.astype(np.float64))
            except OverflowError:
                raise ValueError(f"{name}: {field} hold an integer beyond float64's range (about 1.8e308).") from None
        try:
            params = cls(*arrays)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {exc}") from None
        return check_predictable(params, name)

    def vector(self) -> np.ndarray:
        """All free parameters in one vector: gates (without the zero column), experts, variances."""
        return np.concatenate([self.gates[:, :-1].ravel(), self.experts.ravel(), self.variances])


# A model read from outside (a file, typed numbers) is accepted only within these bounds: with
# |coefficients| <= 1e100, a gate logit or an expert mean at any |x| <= 1e100 / (d + 1) is at most
# 1e200, the softmax's log-sum-exp stays finite (no inf - inf = NaN), and so do a simulated y
# and the log-densities, with variances in [1e-100, 1e100].  Fits never pass through this check.
MAX_COEFFICIENT = 1e100
VARIANCE_RANGE = (1e-100, 1e100)


def check_predictable(params: MoEParams, name="the model"):
    """Refuse a model whose predictions, densities or simulations could be NaN or infinite.

    Raises ValueError naming the block and the bound (:data:`MAX_COEFFICIENT`,
    :data:`VARIANCE_RANGE`); returns ``params``.
    """
    for block, a in (("gates", params.gates), ("experts", params.experts)):
        big = float(np.abs(a).max())
        if big > MAX_COEFFICIENT:
            raise ValueError(f"{name}: {block} hold a coefficient of magnitude {big:.3g}; every coefficient must be "
                             f"at most {MAX_COEFFICIENT:.0e} in absolute value (beyond, predictions overflow).")
    lo, hi = VARIANCE_RANGE
    v = params.variances
    if v.min() < lo or v.max() > hi:
        raise ValueError(f"{name}: variances must lie in [{lo:.0e}, {hi:.0e}], got values from {v.min():.3g} "
                         f"to {v.max():.3g} (beyond, the densities underflow or overflow).")
    return params


def feature_names(d, names=None):
    """The input names: ``names`` as a list when given, else x1, ..., xd."""
    return list(names) if names is not None else [f"x{j + 1}" for j in range(int(d))]


def add_intercept(X):
    """Return ``[1, X]`` of shape (n, d+1)."""
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([np.ones((X.shape[0], 1)), X])


def _finite_shift(m):
    """The max used to shift a log-sum-exp, 0 where it is infinite (so inf - inf never occurs).

    A sample whose every term is -inf (y so far from every expert that each density underflows,
    e.g. y = 1e300) then gets log f = -inf, the correctly rounded value, instead of NaN.
    """
    return np.where(np.isfinite(m), m, 0.0)


def _log_softmax_T(etaT):
    """Log-softmax over axis 0 of an array (K, n); returns (log-probabilities, log-normaliser)."""
    m = _finite_shift(etaT.max(axis=0))
    lse = m + np.log(np.exp(etaT - m).sum(axis=0))
    return etaT - lse, lse


def _logsumexp_T(aT):
    m = _finite_shift(aT.max(axis=0))
    with np.errstate(divide="ignore"):  # log(0) = -inf is the answer when every term is -inf
        return m + np.log(np.exp(aT - m).sum(axis=0))


def _log_gate_T(XtT, gates):
    """(K, n) log gate probabilities from the transposed design XtT (d+1, n)."""
    return _log_softmax_T(gates.T @ XtT)[0]


def _log_expert_T(XtT, y, experts, variances):
    """(K, n) log N(y_i; beta_k . x~_i, sigma2_k)."""
    resid = y[None, :] - experts.T @ XtT
    with np.errstate(over="ignore"):  # a residual beyond 1e154: its density underflows to 0, as it should
        return -0.5 * (LOG_2PI + np.log(variances)[:, None] + resid * resid / variances[:, None])


def _coerce(params, X, y=None):
    if not isinstance(params, MoEParams):
        raise TypeError(f"params must be a MoEParams, got {type(params).__name__}.")
    if y is None:
        X = check_X(X, n_features=params.n_features)
        return X, None
    return check_Xy(X, y, n_features=params.n_features)


def _finite(compute, X, what, params, *, minus_inf=False):
    """``compute()`` (n, ...), computed from X (n, d), or a ValueError naming the rows where it overflowed.

    Finite inputs far beyond the scale a model was fitted on overflow its products (|x| = 1e308 with
    slopes of a few units): the softmax then gave NaN, and predict returned it with NumPy's warnings only.
    ``minus_inf``: a log-density of -inf is an answer (a point no expert can reach), not an overflow.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # the error below says what NumPy's warnings would
        out = compute()
    bad = np.isnan(out) if minus_inf else ~np.isfinite(out)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(X), -1).any(axis=1))
        coef = max(float(np.abs(params.gates).max()), float(np.abs(params.experts).max()))
        raise ValueError(f"{what} overflow at {len(rows)} row(s) of X (the first, row {rows[0]}, has |x| up to "
                         f"{np.abs(X[rows[0]]).max():.3g}; the model's coefficients reach {coef:.3g}): rescale X to "
                         "the scale the model was fitted on, or check the model (moecore.model.check_predictable).")
    return out


def log_gate_proba(X, params: MoEParams):
    """Log gate probabilities log pi_k(x_i), shape (n, K)."""
    X, _ = _coerce(params, X)
    return _finite(lambda: _log_gate_T(add_intercept(X).T, params.gates).T, X, "the gate probabilities", params,
                   minus_inf=True)


def gate_proba(X, params: MoEParams):
    """Gate probabilities pi_k(x_i), shape (n, K); rows sum to one."""
    return np.exp(log_gate_proba(X, params))


def expert_means(X, params: MoEParams):
    """Expert means beta_k . x~_i, shape (n, K)."""
    X, _ = _coerce(params, X)
    return _finite(lambda: add_intercept(X) @ params.experts, X, "the expert means", params)


def log_expert_density(X, y, params: MoEParams):
    """log N(y_i; beta_k . x~_i, sigma2_k), shape (n, K)."""
    X, y = _coerce(params, X, y)
    return _log_expert_T(add_intercept(X).T, y, params.experts, params.variances).T


def _log_joint_T(X, y, params):
    XtT = add_intercept(X).T
    return _log_gate_T(XtT, params.gates) + _log_expert_T(XtT, y, params.experts, params.variances)


def loglik_per_sample(X, y, params: MoEParams):
    """log f(y_i | x_i), shape (n,)."""
    X, y = _coerce(params, X, y)
    return _finite(lambda: _logsumexp_T(_log_joint_T(X, y, params)), X, "the log-densities", params, minus_inf=True)


def posterior_proba(X, y, params: MoEParams):
    """Posterior expert memberships tau_ik = P(z_i = k | x_i, y_i), shape (n, K)."""
    X, y = _coerce(params, X, y)

    def tau():
        lj = _log_joint_T(X, y, params)
        lse = _logsumexp_T(lj)
        t = np.exp(lj - lse)
        # y so far from every expert that each density underflows (|residual| beyond ~1e154): the
        # posterior's limit as the residual grows puts all mass on the widest expert, as
        # exp(-r^2 / 2 sigma_k^2) decays slowest there. NaN would be a silent wrong answer.
        far = np.isneginf(lse)
        if far.any():
            t[:, far] = (np.arange(params.n_experts) == np.argmax(params.variances))[:, None]
        return t.T

    return _finite(tau, X, "the posterior memberships", params)


def net_variances(X, y, params: MoEParams):
    """Each expert's noise variance net of the estimation noise of its own line, shape (K,).

    What a machine sends for the reduction's ``variance_update="debiased"`` (docs/method.md,
    section 3).  The exact MM update pools ``v_l + (mu_l(x) - m_k(x))^2`` over the local experts
    sent to reduced expert k; on a small shard both terms are off: the ML variance ``v_l`` is
    deflated by the ``p_eff`` coefficients fitted to the expert's ``N = sum_i tau_ik`` points, and
    the spread of the local lines re-adds their estimation noise.  With the observed information of
    the expert's coefficients (Louis 1982: complete information less the missing part carried by
    uncertain memberships),

        I_c = sum_i tau_ik x~ x~' / v ,   I_o = I_c - sum_i tau_ik (1 - tau_ik) r_ik^2 x~ x~' / v^2,

    ``p_eff = tr(I_c I_o^-1)`` (p for complete data) and the line's noise variance averaged over the
    gate-weighted inputs ``lev v = sum_i pi_k(x_i) x~' I_o^-1 x~ / sum_i pi_k(x_i)``, the expert's
    net variance is ``v N / (N - p_eff) (1 - lev)``: its unbiased noise variance less the noise its
    line will add as spread.  With one expert (``tau = 1``) it equals ``v``.

    X : (n, d) the machine's rows ; y : (n,) ; params : the model fitted to them.  An expert with
    at most p + 1 points, or whose information is singular, keeps ``v``.
    """
    X, y = _coerce(params, X, y)
    XtT = add_intercept(X).T
    gate_T = _log_gate_T(XtT, params.gates)
    lj = gate_T + _log_expert_T(XtT, y, params.experts, params.variances)
    tau = np.exp(lj - _logsumexp_T(lj))
    gate = np.exp(gate_T)
    r2 = (y - params.experts.T @ XtT) ** 2
    # Traces of products of the information and its inverse do not change under a linear map of
    # x~: a standardised design keeps the solves well conditioned (flights' distances are in the
    # thousands).
    Z = Standardizer.fit(X).design_T(X)  # (p, n)
    p = Z.shape[0]
    out = np.array(params.variances, dtype=np.float64)
    with one_blas_thread():  # skinny products, as in EM (moecore._threads)
        for k, v in enumerate(params.variances):
            N = tau[k].sum()
            if not N > p + 1:
                continue
            # In units of 1 / v: v I_c and v I_o, whose inverse C is I_o^-1 / v. Written with v as
            # above, v**2 overflowed for a y of spread 1e80 (and 1 / v for 1e-100), and the update fell
            # back to the plain variance with NumPy's warnings.
            C = _inverse_pd((Z * (tau[k] - tau[k] * (1.0 - tau[k]) * (r2[k] / v))) @ Z.T)
            if C is None:  # the missing information swamps the complete: leave it out
                C = _inverse_pd((Z * tau[k]) @ Z.T)
            if C is None:
                continue
            # h_i = x~_i' I_o^-1 x~_i / v for every row: both traces are weighted sums of it.
            h = np.einsum("ij,ij->j", C @ Z, Z)
            p_eff = min(float(tau[k] @ h), 0.5 * N)
            lev = min(max(float(gate[k] @ h) / max(gate[k].sum(), 1e-300), 0.0), 1.0)
            net = v * N / (N - p_eff) * (1.0 - lev)
            if np.isfinite(net):
                out[k] = net
    return out


def _inverse_pd(A):
    """The inverse of a symmetric positive definite A (p, p), or None when it is not one."""
    try:
        Linv = solve_triangular(np.linalg.cholesky(A), np.eye(A.shape[0]), lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    return Linv.T @ Linv


def predict_mean(X, params: MoEParams):
    """Conditional mean E[y | x] = sum_k pi_k(x) beta_k . x~, shape (n,)."""
    X, _ = _coerce(params, X)
    XtT = add_intercept(X).T
    return _finite(lambda: (np.exp(_log_gate_T(XtT, params.gates)) * (params.experts.T @ XtT)).sum(axis=0), X,
                   "the predictions", params)


class Standardizer:
    """Affine standardisation of x (and optionally y), with the exact maps of MoE parameters.

    A coefficient vector ``c_s`` acting on ``(1, (x - mean) / scale)`` acts on ``(1, x)`` as
    ``c = T c_s`` with ``c[1:] = c_s[1:] / scale`` and ``c[0] = c_s[0] - sum(c_s[1:] mean / scale)``.
    Experts are also rescaled by the y map ``y = y_mean + y_scale * y_s``.
    """

    def __init__(self, x_mean, x_scale, y_mean=0.0, y_scale=1.0):
        self.x_mean = np.asarray(x_mean, dtype=np.float64)
        self.x_scale = np.asarray(x_scale, dtype=np.float64)
        self.y_mean = float(y_mean)
        self.y_scale = float(y_scale)

    @classmethod
    def fit(cls, X, y=None, *, x_moments=None):
        """Standardisation of X (n, d) and, if given, y (n,).

        ``x_moments``: the (mean, std) of X's columns when the caller already has them (as
        :func:`moecore._validation.check_nonconstant_columns` returns them).
        """
        x_mean, x_scale = column_moments(X)[:2] if x_moments is None else x_moments
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        if y is None:
            return cls(x_mean, x_scale)
        y_scale = check_response_scale(y, allow_constant=True)
        return cls(x_mean, x_scale, y.mean(), y_scale if y_scale > 0 else 1.0)

    def transform_X(self, X):
        return (X - self.x_mean) / self.x_scale

    def design_T(self, X):
        """Standardised design with intercept, transposed: shape (d+1, n), C-contiguous."""
        n, d = X.shape
        out = np.empty((d + 1, n))
        out[0] = 1.0
        # By blocks of rows: whole-array arithmetic would hold two more copies of the data
        # (1.6 GB at n = 1e6, d = 100) on top of X and the result.
        step = max(1, (1 << 22) // d)
        for s in range(0, n, step):
            out[1:, s:s + step] = ((X[s:s + step] - self.x_mean) / self.x_scale).T
        return out

    def transform_y(self, y):
        return (y - self.y_mean) / self.y_scale

    def coef_to_original(self, C):
        """Map coefficients (d+1, K) on the standardised x to the original x (no y map)."""
        C = np.asarray(C, dtype=np.float64)
        out = np.empty_like(C)
        out[1:] = C[1:] / self.x_scale[:, None]
        out[0] = C[0] - (self.x_mean / self.x_scale) @ C[1:]
        return out

    def coef_to_standard(self, C):
        """Inverse of :meth:`coef_to_original`."""
        C = np.asarray(C, dtype=np.float64)
        out = np.empty_like(C)
        out[1:] = C[1:] * self.x_scale[:, None]
        out[0] = C[0] + self.x_mean @ C[1:]
        return out

    def params_to_original(self, gates_s, experts_s, variances_s) -> MoEParams:
        experts = self.coef_to_original(experts_s) * self.y_scale
        experts[0] += self.y_mean
        return MoEParams(
            self.coef_to_original(gates_s), experts, np.asarray(variances_s) * self.y_scale**2
        )

    def params_to_standard(self, params: MoEParams):
        experts = params.experts.copy()
        experts[0] -= self.y_mean
        return (
            self.coef_to_standard(params.gates),
            self.coef_to_standard(experts / self.y_scale),
            params.variances / self.y_scale**2,
        )
