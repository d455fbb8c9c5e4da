"""Aggregation of local MoEs by the optimal-transport reduction and its MM algorithm.

M local K-expert models with weights ``w_m`` form a large MoE of L = M K components: component
``l = (m, j)`` has gate ``w_m pi^(m)_j(x)`` and expert ``(beta_l, sigma2_l)``.  The reduction looks
for a K-expert MoE ``g`` (experts ``b_k``, variances ``v_k``) minimising the expected
transportation divergence over a supporting sample ``x_1..x_S``::

    R(g) = (1/S) sum_s min_{P_s} sum_{l,k} P_s(l, k) c_{x_s}(l, k),
    c_x(l, k) = 1/2 [log(v_k / sigma2_l) + sigma2_l / v_k + (beta_l.x~ - b_k.x~)^2 / v_k - 1]

with each row ``l`` of ``P_s`` carrying exactly the gate mass of component ``l`` at ``x_s`` (columns
free).  MM alternates the exact plan (each row to its cheapest column) with the exact minimising
experts for that plan, so ``R`` never increases.  Finally a softmax gate is fitted to the gate
mass the plan sends to each reduced expert.

Shapes: S support points, L = M K local components, K reduced experts, p = d + 1.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba import njit

from . import model as _m
from ._em_kernels import _exp_inplace
from ._kmeans import kmeans
from ._validation import (
    check_choice,
    check_float,
    check_int,
    check_random_state_seed,
    check_X,
)
from .gating import fit_softmax_gate, pair_products, sym_from_pairs
from .params import GATE_TARGETS, VARIANCE_UPDATES
from .screening import SCORE_POINTS, support_scores
from .shard_check import ratio_text

__all__ = [
    "DUPLICATE_KL",
    "GATE_TARGETS",
    "SPREAD_EXCESS",
    "SPREAD_RATIO",
    "VARIANCE_UPDATES",
    "ExpertSpread",
    "LargeMixture",
    "MMState",
    "OptimalPlan",
    "ReductionResult",
    "TransportPlan",
    "best_mm_run",
    "debiased_variances",
    "expert_divergence",
    "expert_spread",
    "gate_misfit",
    "kl_cost",
    "mm_starts",
    "mm_steps",
    "reduce_mixtures",
    "reduced_gate",
    "separate_duplicates",
    "transport_divergence",
]



def kl_cost(mean_l, var_l, mean_k, var_k):
    """KL( N(mean_l, var_l) || N(mean_k, var_k) ), broadcasting over its arguments."""
    mean_l, var_l, mean_k, var_k = map(np.asarray, (mean_l, var_l, mean_k, var_k))
    return 0.5 * (np.log(var_k / var_l) + var_l / var_k + (mean_l - mean_k) ** 2 / var_k - 1.0)


# Reassociation lets LLVM vectorise the sums over l (about 6x faster); the result moves only at
# rounding level and is the same in every process, so runs stay reproducible across backends.
# No nnan/ninf: a user's extreme variances must not be assumed away.
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _plan_kernel(mass, mu, var_l, m, var_k, assign, D, T, Q2, QV):
    """Optimal plan for fixed reduced experts, the objective, and the plan's statistics.

    mass, mu : (S, L) gate mass and expert mean of every local component at every x_s
    var_l : (L,) ; m : (S, K) reduced expert means ; var_k : (K,)
    Outputs (filled in place): assign (S, L) cheapest reduced expert; D, T, Q2, QV (S, K) the
    sums over l sent to k of mass, mass * mu, mass * mu^2 and mass * sigma2_l.
    Returns R(g) = (1/S) sum_{s,l} mass_sl c_{x_s}(l, assign_sl).
    """
    S, L = mass.shape
    K = var_k.shape[0]
    logv = np.log(var_k)
    inv_v = 1.0 / var_k
    log_var_l = np.log(var_l)
    total = 0.0
    # Per support point: the argmin over k as K passes over l (branch-free, SIMD-friendly), then
    # the plan's sums as K masked passes.
    best = np.empty(L)
    kb = np.empty(L)  # the index as a float: same SIMD width as best, so selects vectorise
    for s in range(S):
        mu_s = mu[s]
        w_s = mass[s]
        mk = m[s, 0]
        lv = logv[0]
        iv = inv_v[0]
        for l in range(L):
            d = mu_s[l] - mk
            best[l] = lv + (var_l[l] + d * d) * iv
            kb[l] = 0.0
        for k in range(1, K):
            mk = m[s, k]
            lv = logv[k]
            iv = inv_v[k]
            kf = float(k)
            for l in range(L):
                d = mu_s[l] - mk
                c = lv + (var_l[l] + d * d) * iv
                lt = c < best[l]
                best[l] = c if lt else best[l]
                kb[l] = kf if lt else kb[l]
        for l in range(L):
            total += w_s[l] * (best[l] - log_var_l[l] - 1.0)
            assign[s, l] = np.int16(kb[l])
        for k in range(K):
            kf = float(k)
            a = 0.0
            b = 0.0
            q = 0.0
            v = 0.0
            for l in range(L):
                w = w_s[l] if kb[l] == kf else 0.0
                x = mu_s[l]
                a += w
                b += w * x
                q += w * x * x
                v += w * var_l[l]
            D[s, k] = a
            T[s, k] = b
            Q2[s, k] = q
            QV[s, k] = v
    return 0.5 * total / S


@njit(cache=True, nogil=True)
def _coupling_kernel(mass, assign, K):
    """(L, K) mean over the support of the mass each local component sends to each reduced expert.

    mass : (S, L) ; assign : (S, L) reduced expert of each (support point, component).
    One pass, no (S, L) index temporaries (np.bincount needed one of int64).
    """
    S, L = mass.shape
    out = np.zeros((L, K))
    for s in range(S):
        for l in range(L):
            out[l, assign[s, l]] += mass[s, l]
    return out / S


@njit(cache=True, nogil=True)
def _grouped_mass_kernel(mass, group, K):
    """(S, K) sums over the columns l of ``mass`` (S, L) in each group ``group[l]``.

    One pass over the (S, L) mass: the product with an (L, K) indicator matrix did K times the
    work (and took as long as the whole MM at M = 128).
    """
    S, L = mass.shape
    out = np.zeros((S, K))
    for s in range(S):
        for l in range(L):
            out[s, group[l]] += mass[s, l]
    return out


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _gate_mass_kernel(eta, n_groups, group_size, w, pointwise):
    """In place: the logits ``eta`` (S, G * Kmax) of G softmax gates of Kmax experts each (columns
    group-major) become the gate masses w_g pi_gj(x_s), with ``w`` (1, G) or, ``pointwise``, (S, G).
    The (S, L) layout is the plan kernel's, so no transpose, and each row is done while in cache, its
    exp vectorised."""
    S, L = eta.shape
    bits = np.empty(L, dtype=np.int64)  # one row's scratch: it stays in cache
    for s in range(S):
        row = eta[s]
        for g in range(n_groups):
            base = g * group_size
            mx = row[base]
            for j in range(1, group_size):
                mx = max(mx, row[base + j])
            for j in range(group_size):
                row[base + j] -= mx
        _exp_inplace(row, bits)
        for g in range(n_groups):
            base = g * group_size
            tot = 0.0
            for j in range(group_size):
                tot += row[base + j]
            scale = (w[s, g] if pointwise else w[0, g]) / tot
            for j in range(group_size):
                row[base + j] *= scale


@dataclass
class LargeMixture:
    """The weighted union of M local MoEs (L = M K components), evaluated on a support.

    Component l = (m, j) has gate mass ``w_m pi^(m)_j(x)``.  The machine weights ``w_m`` are either
    constants (the paper: the shares n_m / n, right when every machine sees the same inputs) or
    functions of x, ``w_m(x) = P(machine m | x)`` (non-IID machines, see
    :mod:`moecore.machine_weights`); in both cases the gates sum to one at every x.

    Attributes
    ----------
    local_params : list of MoEParams, length M
    weights : ndarray (M,) summing to one; or ndarray (S, M), rows summing to one, the weights at the
        S points ``evaluate`` will be called on; or a callable X (n, d) -> (n, M)
    experts : ndarray (p, L)  ; variances : ndarray (L,)
    machine : ndarray (L,) machine index m of component l ; expert : ndarray (L,) its index j
    """

    local_params: list
    weights: np.ndarray
    experts: np.ndarray = field(init=False)
    variances: np.ndarray = field(init=False)
    machine: np.ndarray = field(init=False)
    expert: np.ndarray = field(init=False)

    def __post_init__(self):
        if len(self.local_params) == 0:
            raise ValueError("local_params must hold at least one local model.")
        for i, prm in enumerate(self.local_params):
            if not isinstance(prm, _m.MoEParams):
                raise TypeError(f"local_params[{i}] must be a MoEParams, got {type(prm).__name__}.")
        d = self.local_params[0].n_features
        for i, prm in enumerate(self.local_params):
            if prm.n_features != d:
                raise ValueError(
                    f"local_params[{i}] has {prm.n_features} features, local_params[0] has {d}."
                )
        if not callable(self.weights):
            w = np.asarray(self.weights, dtype=np.float64)
            if w.ndim == 2:
                self.weights = self._check_pointwise(w)
            else:
                if w.shape != (len(self.local_params),) or np.any(w < 0) or not w.sum() > 0:
                    raise ValueError(
                        f"weights must be {len(self.local_params)} non-negative numbers with a positive sum."
                    )
                self.weights = w / w.sum()
        self.experts = np.hstack([prm.experts for prm in self.local_params])
        self.variances = np.concatenate([prm.variances for prm in self.local_params])
        self.machine = np.concatenate(
            [np.full(prm.n_experts, i) for i, prm in enumerate(self.local_params)]
        )
        self.expert = np.concatenate([np.arange(prm.n_experts) for prm in self.local_params])

    def _check_pointwise(self, w, n=None):
        """Per-point weights (n, M): finite, non-negative, each row with a positive sum; normalised."""
        M = len(self.local_params)
        if w.ndim != 2 or w.shape[1] != M or (n is not None and w.shape[0] != n):
            want = f"({n}, {M})" if n is not None else f"(S, {M})"
            raise ValueError(f"per-point machine weights must have shape {want}, got {w.shape}.")
        tot = w.sum(axis=1)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.all(tot > 0):
            raise ValueError(
                "per-point machine weights must be finite and non-negative, with a positive sum at every point."
            )
        return w / tot[:, None]

    @property
    def pointwise(self):
        """Whether the machine weights depend on x."""
        return callable(self.weights) or np.ndim(self.weights) == 2

    @property
    def n_features(self):
        return self.experts.shape[0] - 1

    @property
    def machine_shares(self):
        """(M,) each machine's overall share: the constant weights, or the per-point weights'
        mean over the points they are given at (for a callable: unknown, equal shares)."""
        if callable(self.weights):
            return np.full(len(self.local_params), 1.0 / len(self.local_params))
        return self.weights if np.ndim(self.weights) == 1 else self.weights.mean(axis=0)

    def machine_weights(self, X):
        """The machine weights at X (n, d): (n, M), or (M,) when they are constant."""
        if callable(self.weights):
            return self._check_pointwise(np.asarray(self.weights(X), dtype=np.float64), X.shape[0])
        if np.ndim(self.weights) == 2:
            if self.weights.shape[0] != X.shape[0]:
                raise ValueError(
                    f"the per-point machine weights are given at {self.weights.shape[0]} points; the "
                    f"mixture is evaluated at {X.shape[0]} (pass a callable to evaluate elsewhere)."
                )
            return self.weights
        return self.weights

    def evaluate(self, X):
        """Gate mass and expert means of the L components at X (n, d): two arrays (n, L)."""
        Xt = _m.add_intercept(X)
        M = len(self.local_params)
        # All M softmaxes at once on (M, Kmax, n) logits: a loop over the machines cost more in
        # call overhead than in arithmetic. A machine with fewer experts than Kmax gets -inf
        # logits, so zero mass, in its missing slots, which are then dropped.
        Kmax = max(prm.n_experts for prm in self.local_params)
        p = Xt.shape[1]
        gates = np.zeros((p, M, Kmax))
        present = np.zeros((M, Kmax), dtype=bool)
        for i, prm in enumerate(self.local_params):
            gates[:, i, :prm.n_experts] = prm.gates
            present[i, :prm.n_experts] = True
        ragged = not present.all()
        # One product straight into the (n, L) layout the plan kernel walks by rows (an F-ordered
        # mass made it five times slower), then the softmaxes compiled.
        mass = Xt @ gates.reshape(p, M * Kmax)
        if ragged:
            mass[:, ~present.ravel()] = -np.inf
        w = self.machine_weights(X)
        _gate_mass_kernel(mass, M, Kmax, np.atleast_2d(w), w.ndim == 2)
        if ragged:
            mass = np.ascontiguousarray(mass[:, present.ravel()])
        return mass, Xt @ self.experts


@dataclass
class TransportPlan:
    """Which local expert went to which reduced expert, with how much gate mass.

    Attributes
    ----------
    coupling : ndarray (L, K)
        Mean over the support of the mass sent from local component l to reduced expert k;
        row l sums to the average gate mass of l, the whole array to one.
    assignment : ndarray (S, L)
        The reduced expert each local component is sent to at each support point.
    machine, expert : ndarray (L,)
        Component l is expert ``expert[l]`` of machine ``machine[l]``.
    """

    coupling: np.ndarray
    assignment: np.ndarray
    machine: np.ndarray
    expert: np.ndarray

    def dominant(self):
        """(L,) the reduced expert that receives most of each local component's mass."""
        return self.coupling.argmax(axis=1)


@dataclass
class MMState:
    """One MM iterate, for step-by-step teaching and inspection.

    ``objective`` is R at (``experts_std``, ``variances``) with its optimal plan ``assignment``.
    Expert coefficients are on the standardised support x (see ``ReductionProblem.scaler``).
    """

    iteration: int
    objective: float
    experts_std: np.ndarray
    variances: np.ndarray
    assignment: np.ndarray
    D: np.ndarray


@dataclass
class ReductionResult:
    """Output of :func:`reduce_mixtures`.

    Attributes
    ----------
    params : MoEParams, the reduced K-expert MoE in original units
    objective_history : ndarray (n_iter,), R at each MM iterate of the kept run (non-increasing)
    objective : float, final R
    n_iter : int ; converged : bool
    init_objectives : ndarray (n_init + local starts,), final R from every start (R at the
        start itself for a local start that MM did not run from)
    plan : TransportPlan
    gate_targets : ndarray (S, K), the soft targets the reduced gate was fitted to
    time : float, seconds
    """

    params: _m.MoEParams
    objective_history: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    init_objectives: np.ndarray
    plan: TransportPlan
    gate_targets: np.ndarray
    time: float


class OptimalPlan(NamedTuple):
    """The optimal plan for fixed reduced experts (:meth:`ReductionProblem.plan`) and its sums.

    Attributes
    ----------
    objective : float, R(g) = (1/S) sum_{s,l} mass_sl c_{x_s}(l, assignment_sl)
    assignment : ndarray (S, L) of int16, the cheapest reduced expert of each local component at
        each support point (the plan sends the component's whole mass there)
    D, T, Q2, QV : ndarray (S, K), at each support point the sums over the components sent to
        reduced expert k of mass, mass * mu, mass * mu^2 and mass * sigma2_l: what
        :meth:`ReductionProblem.update` needs (each row of D sums to one: the large mixture's gates)
    """

    objective: float
    assignment: np.ndarray
    D: np.ndarray
    T: np.ndarray
    Q2: np.ndarray
    QV: np.ndarray


class ReductionProblem:
    """The large mixture evaluated once on the support: everything MM iterates over.

    Parameters
    ----------
    large : LargeMixture
    X_support : ndarray (S, d)
    """

    def __init__(self, large: LargeMixture, X_support):
        X_support = check_X(X_support, "X_support", n_features=large.n_features)
        self.large = large
        self.X = X_support
        self.S = X_support.shape[0]
        self.mass, mu = large.evaluate(X_support)
        # The expert means less a centre of the response (their mass-weighted mean): the variance
        # update pools mass * mu^2 and takes 2 m T - m^2 D away (update).  With a response near 1e9
        # that cancellation left nothing of the spread: reduced variances at the floor from local
        # fits that were right (benchmarks/README.md section 29).  Experts enter and leave MM through
        # experts_std and experts_original.
        self.y_center = float(np.sum(self.mass * mu) / np.sum(self.mass))
        self.mu = mu - self.y_center
        self.scaler = _m.Standardizer.fit(X_support)
        self.XsT = self.scaler.design_T(X_support)
        self.XX = pair_products(self.XsT)
        self.p = self.XsT.shape[0]

    def experts_std(self, experts):
        """Expert coefficients (p, K) as MM works with them: on the standardised support x, less the
        response centre ``y_center``.  ``experts`` (p, K) in original units."""
        out = self.scaler.coef_to_standard(experts)
        out[0] -= self.y_center
        return out

    def experts_original(self, experts_std):
        """Inverse of :meth:`experts_std`: coefficients (p, K) in original units."""
        out = np.array(experts_std, dtype=np.float64)
        out[0] += self.y_center
        return self.scaler.coef_to_original(out)

    def plan(self, experts_std, variances):
        """The optimal plan for reduced experts ``experts_std`` (p, K) (standardised x) and
        ``variances`` (K,): an :class:`OptimalPlan` (objective, assignment, D, T, Q2, QV)."""
        K = variances.shape[0]
        m = self.XsT.T @ experts_std
        D = np.empty((self.S, K))
        T = np.empty((self.S, K))
        Q2 = np.empty((self.S, K))
        QV = np.empty((self.S, K))
        # int16: K is far below 32767, and the (S, L) array is 4x smaller to fill and keep.
        assign = np.empty(self.mass.shape, dtype=np.int16)
        obj = _plan_kernel(self.mass, self.mu, self.large.variances, m, variances, assign, D, T, Q2, QV)
        return OptimalPlan(obj, assign, D, T, Q2, QV)

    def update(self, D, T, Q2, QV, experts_std, variances, variance_update="exact"):
        """Exact minimisers (b_k, v_k) of the transport cost for the fixed plan.

        D, T, Q2, QV : (S, K), the plan's sums (:class:`OptimalPlan`); experts_std (p, K) and
        variances (K,): the current experts.  Returns the new (experts_std, variances).

        A reduced expert that receives no mass keeps its previous value: R does not depend on it.
        """
        p = self.p
        K = D.shape[1]
        Dk = D.sum(axis=0)
        G = sym_from_pairs(D.T @ self.XX.T, p)  # (K, p, p)
        h = T.T @ self.XsT.T  # (K, p)
        B = experts_std.copy()
        V = variances.copy()
        for k in range(K):
            if not Dk[k] > 1e-300:
                continue
            Gk = G[k] + 1e-12 * np.trace(G[k]) / p * np.eye(p)
            try:
                B[:, k] = np.linalg.solve(Gk, h[k])
            except np.linalg.LinAlgError:
                B[:, k] = np.linalg.lstsq(Gk, h[k], rcond=None)[0]
        m = self.XsT.T @ B
        if variance_update == "authors":  # the authors' code: only the local variances, not the spread of the means
            num = QV.sum(axis=0)
        else:  # "exact", and "debiased" (its MM is the exact one; reduce_mixtures corrects the final variances)
            num = (Q2 + QV - 2.0 * m * T + m * m * D).sum(axis=0)
        upd = Dk > 1e-300
        V[upd] = np.maximum(num[upd] / Dk[upd], _variance_floor(self.large.variances))
        return B, V

    def relocated(self, state, k):
        """Start of a further MM run: ``state``'s experts with expert ``k`` moved onto the local component
        that costs ``state``'s plan most (its mass times its divergence from the expert it is sent to,
        summed over the support); (experts_std (p, K), variances (K,))."""
        m = np.take_along_axis(self.XsT.T @ state.experts_std, state.assignment.astype(np.intp), axis=1)  # (S, L)
        sig = self.large.variances
        cost = (self.mass * kl_cost(self.mu, sig, m, state.variances[state.assignment])).sum(axis=0)  # (L,)
        l = int(np.argmax(cost))
        B, V = state.experts_std.copy(), state.variances.copy()
        B[:, k], V[k] = self.experts_std(self.large.experts[:, l:l + 1])[:, 0], sig[l]
        return B, V

    def initial_experts(self, n_experts, rng):
        """k-means on the L local expert vectors (standardised coefficients, log-variance)."""
        coef = self.experts_std(self.large.experts)  # (p, L)
        scale = max(np.sqrt(np.mean(self.large.variances)), np.abs(coef).max() * 1e-6, 1e-300)
        featsT = np.vstack([coef / scale, 0.5 * np.log(self.large.variances)])  # (p + 1, L)
        # A component's weight in the large mixture: its mean gate mass on the support.
        w = self.mass.mean(axis=0)
        _, labels, _ = kmeans(featsT, n_experts, rng, sample_weight=w + 1e-12)
        B = np.empty((self.p, n_experts))
        V = np.empty(n_experts)
        for k in range(n_experts):
            sel = labels == k
            if not sel.any():  # k-means can leave a cluster empty with duplicated points
                sel = np.zeros_like(sel)
                sel[rng.integers(sel.size)] = True
            ww = w[sel] + 1e-12
            B[:, k] = coef[:, sel] @ ww / ww.sum()
            V[k] = self.large.variances[sel] @ ww / ww.sum()
        return B, V

    def plan_sums(self, assignment, n_experts):
        """(D, T, Q2, QV) (S, K) of a given ``assignment`` (S, L): the sums over the components l sent
        to each reduced expert of mass, mass * mu, mass * mu^2 and mass * sigma2_l, as
        :meth:`plan` returns them for its optimal assignment; what :meth:`update` takes."""
        sums = np.zeros((4, self.S, n_experts))
        for k in range(n_experts):
            w = np.where(assignment == k, self.mass, 0.0)  # (S, L)
            wm = w * self.mu
            sums[:, :, k] = w.sum(axis=1), wm.sum(axis=1), (wm * self.mu).sum(axis=1), w @ self.large.variances
        return tuple(sums)

    def transport_plan(self, assignment, n_experts):
        """The :class:`TransportPlan` of an assignment (S, L) of components to reduced experts."""
        large = self.large
        return TransportPlan(_coupling_kernel(self.mass, assignment, n_experts), assignment, large.machine,
                             large.expert)


def mm_steps(problem: ReductionProblem, experts_std, variances, *, max_iter=200, tol=1e-8,
             variance_update="exact"):
    """Iterate MM from (experts_std (p, K), variances (K,)); yield an :class:`MMState` per iterate.

    The first state is the initial point with its optimal plan; iteration stops when the plan
    repeats the previous one (the update depends on the plan alone, so MM has reached its fixed
    point: the next iterate would be this one again), when the relative decrease of R falls
    below ``tol``, or after ``max_iter`` updates.
    """
    B = np.array(experts_std, dtype=np.float64)
    V = np.array(variances, dtype=np.float64)
    prev = prev_assign = None
    for it in range(max_iter + 1):
        plan = problem.plan(B, V)
        obj, assign = plan.objective, plan.assignment
        yield MMState(it, obj, B, V, assign, plan.D)
        if prev is not None and (prev - obj <= tol * abs(prev) or np.array_equal(assign, prev_assign)):
            return
        prev, prev_assign = obj, assign
        if it == max_iter:
            return
        B, V = problem.update(plan.D, plan.T, plan.Q2, plan.QV, B, V, variance_update)


def transport_divergence(local_params, weights, params: _m.MoEParams, X):
    """Expected transportation divergence R from a (large) mixture to ``params`` over X.

    Parameters
    ----------
    local_params : list of MoEParams (or one MoEParams); weights : (M,), (S, M), callable or None
    params : MoEParams, the K-expert model the mass is transported to
    X : (S, d) the points the expectation is taken over

    Returns
    -------
    float: R >= 0, zero when ``params`` equals the (single) source model.
    """
    if isinstance(local_params, _m.MoEParams):
        local_params = [local_params]
    if weights is None:
        weights = np.full(len(local_params), 1.0 / len(local_params))
    problem = ReductionProblem(LargeMixture(list(local_params), weights), X)
    return problem.plan(problem.experts_std(params.experts), params.variances).objective


def _start_key(experts_std, variances):
    """Bytes identifying an MM starting point up to the order of its experts."""
    cols = np.vstack([experts_std, variances[None, :]]).T
    return cols[np.lexsort(cols.T[::-1])].tobytes()


def _component_targets(problem, plan, n_experts):
    """(S, K) gate mass with each local component's whole mass on its dominant reduced expert."""
    return _grouped_mass_kernel(problem.mass, plan.dominant().astype(np.int64), n_experts)


def _average_gate_coefficients(large, plan, n_experts):
    """Mass-weighted mean of the machines' gate coefficients, aligned through the plan.

    Machine m's experts are matched one-to-one to the reduced experts by the assignment that
    keeps most of its transported mass (Hungarian on its (K, K) block of the coupling); its gate
    columns, in that order and pinned to the last reduced expert, are averaged with weights w_m.
    Returns gates (p, K) in original units (the average commutes with the linear change of scale).
    """
    from scipy.optimize import linear_sum_assignment

    acc = np.zeros((large.experts.shape[0], n_experts))
    shares = large.machine_shares  # (per-point weights: their mean, computed once)
    for m, prm in enumerate(large.local_params):
        if prm.n_experts != n_experts:
            raise ValueError(
                f'gate_targets="coefficients" needs every local model to have n_experts={n_experts} '
                f"experts; local model {m} has {prm.n_experts} (a machine fits fewer when it chooses its own "
                f"number, local_experts='bic'). Use gate_targets=\"component\", or local_experts='fixed'."
            )
        block = plan.coupling[large.machine == m]  # (K_m, K)
        rows, cols = linear_sum_assignment(-block)
        A = np.empty_like(prm.gates)
        A[:, cols] = prm.gates[:, rows]
        A -= A[:, -1:]
        acc += shares[m] * A
    return acc


def reduce_mixtures(local_params, weights, X_support, n_experts, *, y_support=None, n_init=3, local_starts=1,
                    local_scores=None, max_iter=200, tol=1e-8, variance_update="exact", gate_targets="component",
                    net_variances=None, random_state=None, callback=None):
    """Reduce M local MoEs to one K-expert MoE by the MM algorithm: validate, start, MM, gate fit.

    Parameters
    ----------
    local_params : list of MoEParams, length M
    weights : array (M,), the machines' shares n_m / n (normalised here); or array (S, M), the
        machine weights w_m(x_s) at every support point (non-IID machines, rows normalised here);
        or a callable X -> (n, M) (see :class:`LargeMixture`)
    X_support : array (S, d), the supporting sample ; n_experts : int, K
    y_support : array (S,) or None, the support responses: needed for ``gate_targets="posterior"``;
        when given, the ``local_starts`` local models are the best-scoring ones on the support pairs
    n_init : int, number of k-means initialisations on the L local experts
    local_starts : int >= 0, rescue starts from whole local models (see :func:`mm_starts`)
    local_scores : array (M,) or None, the local models' :func:`support_scores`, when known
    max_iter, tol : MM stopping rule (relative decrease of R below ``tol``)
    variance_update : {"exact", "debiased", "authors"}
        "exact" is the true minimiser of the transport cost; "debiased" the same MM with each local
        variance replaced by its ``net_variances`` in the final update (:func:`debiased_variances`);
        "authors" keeps only the local variances, as the authors' MATLAB code (R may then increase).
    gate_targets : {"component", "plan", "posterior", "coefficients"}, see :func:`reduced_gate`
    net_variances : list of M arrays (K_m,) or None, each local expert's variance net of its
        line's estimation noise (:func:`moecore.model.net_variances` on its machine's rows);
        needed by ``variance_update="debiased"`` only
    random_state : int, SeedSequence or None
    callback : callable(init_index, MMState) or None, called after every MM iterate

    Returns
    -------
    ReductionResult
    """
    t0 = time.perf_counter()
    settings = dict(n_experts=n_experts, n_init=n_init, local_starts=local_starts, max_iter=max_iter, tol=tol,
                    variance_update=variance_update, gate_targets=gate_targets)
    v = _check_reduction(settings, y_support)
    large = LargeMixture(list(local_params), weights)
    _check_parts(large, v["n_experts"], local_scores)
    problem = ReductionProblem(large, X_support)
    y_support = _check_support(problem, v, y_support)
    net = _check_net_variances(net_variances, large) if variance_update == "debiased" else None
    starts = mm_starts(problem, v["n_experts"], check_random_state_seed(random_state).spawn(v["n_init"]),
                       v["local_starts"], local_scores, y_support)
    state, history, converged, finals = best_mm_run(problem, starts, max_iter=v["max_iter"], tol=v["tol"],
                                                    variance_update=variance_update, callback=callback)
    state, history, converged = _relocate_light_experts(problem, (state, history, converged), v, variance_update)
    plan = problem.transport_plan(state.assignment, v["n_experts"])
    variances = debiased_variances(state.variances, plan.coupling, large.variances, net)
    gates, targets = reduced_gate(problem, state, plan, gate_targets, y_support)
    experts_std = state.experts_std
    if gate_targets == "component":
        plan, gates, targets, experts_std, variances = _with_copies_separated(
            problem, state, plan, (gates, targets, experts_std, variances), y_support, variance_update, net)
    params = _m.MoEParams(gates, problem.experts_original(experts_std), variances)
    return ReductionResult(params=params, objective_history=history, objective=float(history[-1]),
                           n_iter=len(history), converged=bool(converged), init_objectives=np.asarray(finals),
                           plan=plan, gate_targets=targets, time=time.perf_counter() - t0)


# A reduced expert holding less than this share of the gate mass, over K, may be stranded: on a local
# expert that carries almost none (a spurious one of a machine that saw few rows of it), while the others
# share the mass of more experts than they are.
LIGHT_SHARE = 0.1


def _relocate_light_experts(problem, best, v, variance_update):
    """(state, history, converged) of MM's ``best`` run, or of a run from it with its lightest expert moved
    onto the costliest local component (:meth:`ReductionProblem.relocated`) where that run ends with a
    lower R; tried, up to K times, while the lightest expert holds less than LIGHT_SHARE / K of the mass.

    On crossing-2d split by region over 8 machines every k-means start put one reduced expert on a spurious
    local expert of one machine (coefficients -51, 64; 0.08 % of the mass), which MM never moves: the two
    others shared three experts' mass, R ended at 0.78 against 0.15 at the global EM's parameters, and the
    reduced model lost 1.06 nats per row (the audit of 2026-12-06)."""
    state, history, converged = best
    K = state.variances.shape[0]
    for _ in range(K):
        shares = state.D.sum(axis=0) / state.D.sum()
        k = int(np.argmin(shares))
        if not shares[k] < LIGHT_SHARE / K:
            break
        moved, moved_history, moved_converged, _ = best_mm_run(
            problem, [(False, functools.partial(problem.relocated, state, k))], max_iter=v["max_iter"], tol=v["tol"],
            variance_update=variance_update)
        if not moved.objective < state.objective:
            break
        state, history, converged = moved, moved_history, moved_converged
    return state, history, converged


def _with_copies_separated(problem, state, plan, fit, y_support, variance_update, net):
    """(plan, gates, targets, experts_std, variances): ``fit`` = (gates, targets, experts_std, variances)
    of ``plan``, or those of :func:`separate_duplicates`' plan where its gate follows its targets
    better. The copies' experts and variances are then re-solved for the separated plan: MM's were
    pooled over the components the cost split by noise, which sorts a line's copies by their local
    variances (docs/method.md, "Copies of one line")."""
    gates, targets = fit[:2]
    split = separate_duplicates(problem, state, plan)
    if split is plan:
        return (plan, *fit)
    split_gates, split_targets = reduced_gate(problem, state, split, "component", y_support)
    if not gate_misfit(problem, split_gates, split_targets) < gate_misfit(problem, gates, targets):
        return (plan, *fit)
    experts_std, exact = problem.update(*problem.plan_sums(split.assignment, state.variances.shape[0]),
                                        state.experts_std, state.variances, variance_update)
    return split, split_gates, split_targets, experts_std, debiased_variances(exact, split.coupling,
                                                                              problem.large.variances, net)


def _variance_floor(local_variances):
    """The least reduced variance, against a zero one, which only exact duplicates of noiseless
    experts reach: 1e-12 of the largest local variance (L,)."""
    return 1e-12 * max(local_variances.max(), 1e-300)


def debiased_variances(variances, coupling, local_variances, net_variances):
    """The reduced variances (K,) with every local variance replaced by its net variance.

    variances : (K,) the exact MM update for the plan whose ``coupling`` (L, K) is given ;
    local_variances, net_variances : (L,).  The exact update pools, over the local components l
    sent to reduced expert k, ``v_l`` plus the spread of their lines around expert k's; on small
    shards that spread is mostly the lines' own estimation noise and ``v_l`` is deflated by the
    coefficients fitted.  ``net_variances`` (:func:`moecore.model.net_variances`) undo both, so
    what remains of the spread is the machines' real disagreement (docs/method.md, section 3).
    A reduced expert that receives no mass keeps its variance; ``net_variances=None`` (another
    variance update) keeps them all.
    """
    if net_variances is None:
        return variances
    mass = coupling.sum(axis=0)
    shift = coupling.T @ (local_variances - net_variances)
    out = np.array(variances, dtype=np.float64)
    has = mass > 1e-300
    out[has] = np.maximum(out[has] - shift[has] / mass[has], _variance_floor(local_variances))
    return out


# The check of the reduced variances against the spread of the local lines (expert_spread): their
# spread around a reduced expert's line, over what the lines' own estimation noise would give, and the
# share of the variance that excess makes.  Measured (benchmarks/README.md section 31) on the six
# shipped designs at M = 4-64 (n = 50 000), the headline (10^6 rows, M = 128) and d = 6, K = 5
# designs at M = 16: where the reduced variances were within 1.4x of the global EM's error, the
# ratio was at most 1.9 and the excess at most 3 % of the variance; where they were 5-470x off,
# the ratio was 4-19 and the excess 18-77 %.
SPREAD_RATIO = 3.0
SPREAD_EXCESS = 0.10
SPREAD_ROUNDS = 5  # rounds that brought those variances within 2x of the global EM's


@dataclass(frozen=True)
class ExpertSpread:
    """:func:`expert_spread`'s numbers and verdict.

    ratio : ndarray (K,), the spread of the local lines sent to each reduced expert over their
    expected estimation noise (about 1 when the machines agree but for noise) ; excess : ndarray (K,),
    the share of each reduced variance that the spread beyond that noise makes ; flagged : list of
    int, experts with ratio > SPREAD_RATIO and excess > SPREAD_EXCESS ; ok : bool ; message : str
    """

    ratio: np.ndarray
    excess: np.ndarray
    flagged: list
    ok: bool
    message: str = ""


def expert_spread(params: _m.MoEParams, local_params, weights, X_support, plan: TransportPlan, n_samples,
                  refine_rounds=0) -> ExpertSpread:
    """Whether the one-shot reduced variances hold more than noise: the check after the reduction.

    A reduced variance pools its local variances and the spread of their lines around its own.
    Between machines that hold the same experts that spread is the lines' estimation noise, about
    v_l p / (N_l - p) for a line of p coefficients fitted to N_l rows; beyond it the local fits
    disagree (a poor optimum, an expert too rare to split, a model the data do not follow), and the
    reduced variance comes out too large while predictions look fine.

    params : the one-shot reduced MoEParams ; local_params, weights : the large mixture's (see
    :class:`LargeMixture`) ; X_support : (S, d) ; plan : the reduction's TransportPlan ; n_samples :
    the aggregated machines' rows ; refine_rounds : the rounds run after it.
    Returns :class:`ExpertSpread`.
    """
    large, X_support = LargeMixture(list(local_params), weights), np.asarray(X_support, dtype=np.float64)
    mass, mu = large.evaluate(X_support)  # (S, L)
    means = _m.expert_means(X_support, params)  # (S, K)
    p = params.n_features + 1
    rows = float(n_samples) * plan.coupling.sum(axis=1)  # (L,), each component's rows
    noise = large.variances * p / np.maximum(rows - p, 1.0)
    K = params.n_experts
    A = plan.assignment.astype(np.intp)
    # One pass over the (S, L) plan: each (point, component)'s squared distance to the line it is sent to.
    far = mass * (mu - np.take_along_axis(means, A, axis=1)) ** 2
    sent_mass = np.bincount(A.ravel(), weights=mass.ravel(), minlength=K)
    spread = np.bincount(A.ravel(), weights=far.ravel(), minlength=K) / np.maximum(sent_mass, 1e-300)
    c = plan.coupling  # (L, K)
    total = c.sum(axis=0)
    has = total > 0
    expected = np.where(has, c.T @ noise / np.where(has, total, 1.0), 0.0)
    pooled = np.where(has, c.T @ large.variances / np.where(has, total, 1.0), 0.0)
    ratio = np.where(expected > 0, spread / np.where(expected > 0, expected, 1.0), 0.0)
    excess = np.where(has, np.maximum(spread - expected, 0.0) / np.maximum(pooled + spread, 1e-300), 0.0)
    flagged = [int(k) for k in np.flatnonzero((ratio > SPREAD_RATIO) & (excess > SPREAD_EXCESS))]
    if not flagged or refine_rounds >= SPREAD_ROUNDS:
        return ExpertSpread(ratio, excess, flagged, True)
    k = max(flagged, key=lambda j: excess[j])
    more = f" ({len(flagged) - 1} more)" if len(flagged) > 1 else ""
    after = (f"; {refine_rounds} round(s) ran, which may not be enough" if refine_rounds else "")
    return ExpertSpread(ratio, excess, flagged, False, (
        f"About {100 * excess[k]:.0f} % of the one-shot variance of reduced expert {k} (numbered from 0) is "
        f"disagreement between the machines{more}: their lines spread {ratio_text(ratio[k], 1)} more than their "
        "estimation noise explains "
        "(poor local fits, an expert too rare to split, or a model the data do not follow), so that variance comes "
        "out too large while predictions look fine (5-470x a global EM's error on d = 6, K = 5 designs at 1 250 "
        f"rows per machine){after}. To fix: refine_rounds={SPREAD_ROUNDS} (rounds re-estimate it on all the rows: "
        "within 2x there), or fewer machines."))


def _check_net_variances(net_variances, large):
    """The local experts' net variances as one array (L,), checked against the local models."""
    if net_variances is None:
        raise ValueError('variance_update="debiased" needs net_variances: one array (K_m,) per local model, '
                         'moecore.model.net_variances on each machine\'s rows; use variance_update="exact" '
                         "without them.")
    sizes = [prm.n_experts for prm in large.local_params]
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in net_variances]
    if len(arrays) != len(sizes) or any(a.shape[0] != k for a, k in zip(arrays, sizes, strict=False)):
        raise ValueError(f"net_variances must hold one array per local model with its number of experts "
                         f"({sizes}), got lengths {[a.shape[0] for a in arrays]}.")
    net = np.concatenate(arrays)
    if not np.all(np.isfinite(net)) or np.any(net < 0):
        raise ValueError("net_variances must be finite and non-negative.")
    return net


def _check_reduction(settings, y_support):
    """The reduction's settings, checked (ValueError/TypeError naming the one at fault)."""
    v = dict(settings)
    v["n_experts"] = check_int(v["n_experts"], "n_experts", low=1)
    v["n_init"] = check_int(v["n_init"], "n_init", low=1)
    v["local_starts"] = check_int(v["local_starts"], "local_starts", low=0)
    v["max_iter"] = check_int(v["max_iter"], "max_iter", low=1)
    v["tol"] = check_float(v["tol"], "tol", low=0.0)
    check_choice(v["variance_update"], "variance_update", VARIANCE_UPDATES)
    check_choice(v["gate_targets"], "gate_targets", GATE_TARGETS)
    return v


def _check_parts(large, n_experts, local_scores):
    """A reduced model has no more experts than the local ones it pools, and one score per machine."""
    L = large.variances.shape[0]
    if n_experts > L:
        per = [prm.n_experts for prm in large.local_params]
        raise ValueError(
            f"n_experts={n_experts} is more than the {L} local expert(s) the reduction pools ({per} on the "
            f"{len(per)} machine(s)): a reduced model has no more experts than its parts. The machines' data "
            f"support fewer experts (each chose its own number with local_experts='bic'), or too few machines "
            f"were kept: use n_experts <= {L}."
        )
    if local_scores is not None and np.shape(local_scores) != (len(large.local_params),):
        raise ValueError(f"local_scores must hold one score per local model ({len(large.local_params)}), got shape "
                         f"{np.shape(local_scores)}.")


def _check_support(problem, v, y_support):
    """The support responses (S,) as floats, or None; the support must hold K points at least."""
    if problem.S < v["n_experts"]:
        raise ValueError(
            f"the supporting sample has {problem.S} points; it needs at least n_experts={v['n_experts']}."
        )
    if y_support is not None:
        y_support = np.asarray(y_support, dtype=np.float64).ravel()
        if y_support.shape[0] != problem.S or not np.isfinite(y_support).all():
            raise ValueError(f"y_support must hold {problem.S} finite values, one per support point.")
    elif v["gate_targets"] == "posterior":
        raise ValueError('gate_targets="posterior" needs y_support (the support responses).')
    return y_support


def mm_starts(problem, n_experts, seeds, local_starts, local_scores, y_support):
    """The MM starts: (is a local model, callable -> (experts_std (p, K), variances (K,))).

    One k-means start on the L local experts per seed, then up to ``local_starts`` rescue starts
    from whole local models (their K experts as they are): the best scoring on the support pairs
    (``local_scores``, computed here from ``y_support`` when not given), or the heaviest machines
    without y_support.  k-means on the pooled components can be pulled by one outlying component
    (a merged expert with a huge variance); a good local model cannot.
    """
    large = problem.large
    starts = [(False, lambda rng_seed=seed: problem.initial_experts(n_experts, np.random.default_rng(rng_seed)))
              for seed in seeds]
    if local_scores is None and y_support is not None and local_starts > 0:
        local_scores = support_scores(large.local_params, problem.X, y_support, max_points=SCORE_POINTS)
    for m in _best_local_models(large, n_experts, local_starts, local_scores):
        prm = large.local_params[m]
        starts.append((True, lambda prm=prm: (problem.experts_std(prm.experts), prm.variances.copy())))
    return starts


def best_mm_run(problem, starts, *, max_iter, tol, variance_update, callback=None):
    """MM from every start; the run of lowest R.

    Returns (its final MMState, its objective history, whether it converged, the final R of every
    start).  A local-model start runs only when R there is already below the best k-means result
    (R only decreases, so it then ends lower); otherwise its starting R is recorded.
    """
    best, finals, seen = None, [], {}
    for i, (local, start) in enumerate(starts):
        B0, V0 = start()
        # k-means from another seed often finds the same clusters. MM is deterministic and
        # equivariant to relabelling the experts, so from the same start (in any order) it would
        # retrace the same path: run it once and count its result for every such start.
        key = _start_key(B0, V0)
        if key in seen:
            finals.append(finals[seen[key]])
            continue
        seen[key] = i
        if local and best is not None:
            # A full run from a start that does not beat k-means would cost as much as the rest
            # of the reduction, for a basin k-means already bettered.
            start_obj = problem.plan(B0, V0).objective
            if not start_obj < best[0].objective:
                finals.append(start_obj)
                continue
        history = []
        state = None
        for state in mm_steps(problem, B0, V0, max_iter=max_iter, tol=tol, variance_update=variance_update):
            history.append(state.objective)
            if callback is not None:
                callback(i, state)
        converged = len(history) <= max_iter or (
            len(history) > 1 and history[-2] - history[-1] <= tol * abs(history[-2])
        )
        finals.append(state.objective)
        if best is None or state.objective < best[0].objective:
            best = (state, np.asarray(history), converged)
    return (*best, finals)


# Reduced experts closer than this many nats (expected symmetrised KL divergence over the support)
# may be copies of one line, which the transport cost, comparing experts only, splits by the local
# fits' noise instead of by region. Measured: copies 0.003-0.09 nats apart (lost_expert_design of
# benchmarks/bench_portfolio.py, M = 16 and 64, 4 seeds; a line used on both sides of x, M = 8);
# distinct experts at least 1.2 nats apart there and 5 on the shipped designs. A split is kept only
# where the reduced gate then follows its targets better (reduce_mixtures).
DUPLICATE_KL = 0.25


def gate_misfit(problem, gates, targets):
    """Mean KL divergence (nats per support point) from the gate targets (S, K) to the gate
    probabilities of ``gates`` (d+1, K, original units) at the support: 0 when the softmax gate
    follows its targets exactly."""
    logp = _m._log_gate_T(problem.XsT, problem.scaler.coef_to_standard(gates)).T  # (S, K)
    return float(np.mean(np.sum(targets * (np.log(np.maximum(targets, 1e-300)) - logp), axis=1)))


def expert_divergence(problem, state):
    """(K, K) expected symmetrised KL divergence between the reduced experts over the support."""
    m = problem.XsT.T @ state.experts_std  # (S, K) means
    v = state.variances
    kl = kl_cost(m[:, :, None], v[:, None], m[:, None, :], v[None, :]).mean(axis=0)
    return 0.5 * (kl + kl.T)


def _duplicate_groups(div):
    """Groups (lists of >= 2 reduced experts) linked by divergences below DUPLICATE_KL."""
    from scipy.sparse.csgraph import connected_components

    n_groups, label = connected_components(div < DUPLICATE_KL, directed=False)
    groups = [np.flatnonzero(label == g).tolist() for g in range(n_groups)]
    return [g for g in groups if len(g) > 1]


def separate_duplicates(problem, state, plan):
    """The plan with the local components of duplicate reduced experts sent by where their gates live.

    Beyond the paper. A mixture can use one line in two regions of x (two experts, one line, gates
    apart); the reduction then has two copies of that line, and since its cost compares experts
    only, each local component goes to either copy by its estimation noise, not by its region. No
    softmax gate can then follow the copies' gate mass (each must dominate both regions): on
    lost_expert_design the reduced gates came out flat and the held-out log-likelihood 0.46-0.65 nats
    per point below the global EM's (benchmarks/README.md, section 11d). For each group of reduced
    experts closer than DUPLICATE_KL (:func:`expert_divergence`), the group's local components are
    clustered by the centre of their gate mass in x (k-means weighted by their mass, one cluster per
    copy) and each cluster goes whole to one copy, matched to keep most of the plan's mass where it
    was; the copies' costs being equal, R is unchanged to within their divergence. Without
    duplicates the plan is returned as it is.
    """
    groups = _duplicate_groups(expert_divergence(problem, state))
    if not groups:
        return plan
    from scipy.optimize import linear_sum_assignment

    coupling, assignment = plan.coupling.copy(), plan.assignment.copy()
    dominant = plan.dominant()
    for group in groups:
        comps = np.flatnonzero(np.isin(dominant, group) & (problem.mass.sum(axis=0) > 0))
        if comps.size < len(group):
            continue
        w = problem.mass[:, comps]  # (S, n) gate mass of each component at the support
        total = w.sum(axis=0)
        centres = problem.XsT[1:] @ w / total  # (d, n): each component's centre in standardised x
        # A fixed generator: the plan is the same in every process (a few dozen points: 10 starts).
        labels = kmeans(centres, len(group), np.random.default_rng(0), sample_weight=total, n_init=10)[1]
        kept = np.array([[coupling[comps[labels == c], k].sum() for k in group] for c in range(len(group))])
        clusters, copies = linear_sum_assignment(-kept)
        for c, j in zip(clusters, copies, strict=True):
            for comp in comps[labels == c]:
                old, new = dominant[comp], group[j]
                if old != new:  # relabel the two copies for this component: its row and its points
                    coupling[comp, [old, new]] = coupling[comp, [new, old]]
                    a = assignment[:, comp]
                    assignment[:, comp] = np.where(a == old, new, np.where(a == new, old, a))
    return TransportPlan(coupling, assignment, plan.machine, plan.expert)


def reduced_gate(problem, state, plan, gate_targets, y_support=None):
    """The reduced model's gates (d+1, K) and the targets (S, K) they were fitted to.

    gate_targets (docs/method.md, "Gate targets"): "component" (default), a softmax gate fitted to
    the gate mass of each local component sent whole to the reduced expert that receives most of
    it; "plan" (the paper), fitted to the pointwise plan's gate mass, which flattens the gate where
    expert lines cross; "posterior" (the authors' code), fitted to the reduced experts' posterior
    responsibilities on the support pairs (needs ``y_support`` (S,)); "coefficients", no fit: the
    mass-weighted mean of the local gate coefficients, each machine aligned one-to-one to the
    reduced experts through the plan.
    """
    n_experts = state.variances.shape[0]
    targets = state.D  # (S, K): rows sum to one, the large MoE's gates summing to one
    if gate_targets == "coefficients":
        return _average_gate_coefficients(problem.large, plan, n_experts), _component_targets(problem, plan,
                                                                                              n_experts)
    if gate_targets == "component":
        targets = _component_targets(problem, plan, n_experts)
    elif gate_targets == "posterior":
        m = problem.XsT.T @ state.experts_std
        logp = np.log(np.maximum(targets, 1e-300)) - 0.5 * (
            _m.LOG_2PI + np.log(state.variances) + (y_support[:, None] - problem.y_center - m) ** 2 / state.variances
        )
        targets = np.exp(logp - logp.max(axis=1, keepdims=True))
        targets /= targets.sum(axis=1, keepdims=True)
    gates_std, _ = fit_softmax_gate(problem.XsT, np.ascontiguousarray(targets.T), XX=problem.XX)
    return problem.scaler.coef_to_original(gates_std), targets


def _best_local_models(large, n_experts, count, scores):
    """Indices of up to ``count`` local models with K experts to start MM from, best first."""
    if count == 0:
        return []
    ok = [m for m, prm in enumerate(large.local_params) if prm.n_experts == n_experts]
    rank = -(large.machine_shares if scores is None else np.asarray(scores, dtype=np.float64))[ok]
    return [ok[i] for i in np.argsort(rank, kind="stable")[:count]]
