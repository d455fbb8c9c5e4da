"""Refinement rounds: distributed EM iterations started from the reduced model.

The reduction is one-shot: each machine sends its local model once.  A refinement round spends
one more exchange to move the reduced model towards the global maximum-likelihood fit.  In a
round every machine runs the E-step of the current model on its own shard and returns sufficient
statistics; the server adds them and takes the M-step.  Nothing but O(K p^2) sums travels, never
data, and r rounds are exactly r iterations of global EM (the sums over machines are the sums
over all the data):

* experts: per expert k, ``N_k = sum tau_ik``, ``G_k = sum tau_ik x~_i x~_i^T`` (p, p),
  ``h_k = sum tau_ik x~_i y_i`` (p,) and ``sum tau_ik y_i^2``: the exact weighted-least-squares
  M-step needs nothing else;
* gates: the gradient and Hessian of ``Q(alpha) = sum_ik tau_ik log pi_k(x_i; alpha)`` at the
  current gates, which give one damped Newton direction; a second, small exchange returns
  ``Q`` at a ladder of step lengths along it, and the server keeps the longest step that does not
  decrease ``Q`` (the step halving of :func:`moecore.gating.newton_step`, on all the data).

Every step is a generalised EM step on the pooled data, so the log-likelihood never decreases.
Work is done on the x and y standardisation of the supporting sample (known to the server and
sent to the machines with the model) for conditioning; the model is mapped back exactly.

Shapes: p = d + 1 coefficients, K experts, n_m rows on machine m.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import model as _m
from ._validation import check_int, check_Xy
from .em import ExpertStats, _estep, expert_statistics, experts_from_statistics
from .gating import DAMPING, MAX_HALVINGS, MAX_STEP, gate_gradient_hessian, gate_objective
from .screening import SCORE_POINTS, better_optimum, n_free_parameters, support_loglik, support_scores

__all__ = [
    "LADDER",
    "RoundState",
    "RoundStatistics",
    "RoundsResult",
    "WarmRefits",
    "better_reduction",
    "em_rounds",
    "machine_gate_values",
    "machine_loglik",
    "machine_statistics",
    "rounds_on_machines",
    "run_rounds",
    "server_step",
    "warm_refit_reduction",
    "warm_refits",
]

# Step lengths evaluated per exchange: 1, 1/2, 1/4, 1/8.  The full Newton step is accepted in
# almost every round; shorter ones cost a further exchange only when these four all fail.
LADDER = 4


@dataclass
class RoundState:
    """What the server sends to the machines: the model on the support's standardised scale.

    gates, experts : ndarray (p, K) ; variances : ndarray (K,) ; scaler : Standardizer (x and y)
    """

    gates: np.ndarray
    experts: np.ndarray
    variances: np.ndarray
    scaler: _m.Standardizer

    @classmethod
    def from_params(cls, params: _m.MoEParams, scaler):
        return cls(*scaler.params_to_standard(params), scaler)

    def to_params(self):
        return self.scaler.params_to_original(self.gates, self.experts, self.variances)

    def n_floats(self):
        """Numbers sent down: the model and the standardisation."""
        return self.gates.size + self.experts.size + self.variances.size + 2 * self.scaler.x_mean.size + 2


@dataclass
class RoundStatistics:
    """What a machine returns from the E-step; ``a + b`` pools two machines.

    n : rows ; loglik : log-likelihood on the standardised y ; experts : ExpertStats (the
    experts' weighted sums N_k, G_k, h_k, sum tau y^2) ; q : Q at the current gates ;
    grad ((K-1) p,) and hess ((K-1) p, (K-1) p) : gradient and negative Hessian of Q.
    """

    n: int
    loglik: float
    experts: ExpertStats
    q: float
    grad: np.ndarray
    hess: np.ndarray

    def __add__(self, other):
        return RoundStatistics(
            self.n + other.n, self.loglik + other.loglik, self.experts + other.experts, self.q + other.q,
            self.grad + other.grad, self.hess + other.hess,
        )

    def n_floats(self):
        """Numbers sent up (the symmetric G_k and Hessian count once per distinct entry)."""
        K, p = self.experts.h.shape
        g = self.grad.size
        return 3 + K * (1 + p * (p + 1) // 2 + p + 1) + g + g * (g + 1) // 2


def _standardised(X, y, state):
    XtT = state.scaler.design_T(np.asarray(X, dtype=np.float64))
    return XtT, state.scaler.transform_y(np.asarray(y, dtype=np.float64))


def _responsibilities(XtT, ys, state):
    logpT = _m._log_gate_T(XtT, state.gates)
    ll, tauT = _estep(XtT, ys, logpT, state.experts, state.variances)
    return ll, tauT, logpT


def machine_statistics(X, y, state: RoundState) -> RoundStatistics:
    """Exchange 1 of a round, on one machine: the E-step and the sums the M-step needs.

    X : (n_m, d) ; y : (n_m,).  The Gram matrices and the gate Hessian come from BLAS products of
    the weighted design (O(n_m p) memory at any d), the same kernels as EM's.
    """
    XtT, ys = _standardised(X, y, state)
    ll, tauT, logpT = _responsibilities(XtT, ys, state)
    K = tauT.shape[0]
    if K > 1:
        grad, hess = gate_gradient_hessian(XtT, None, tauT, np.exp(logpT))
    else:
        grad, hess = np.zeros(0), np.zeros((0, 0))
    return RoundStatistics(len(ys), ll, expert_statistics(XtT, ys, tauT), gate_objective(tauT, logpT), grad, hess)


def machine_gate_values(X, y, state: RoundState, direction, steps):
    """Exchange 2 of a round, on one machine: Q along the Newton direction.

    direction : (p, K) gate increment (last column zero) ; steps : (J,) step lengths.
    Returns ndarray (J,): Q(gates + t direction) with the responsibilities of ``state``.
    """
    XtT, ys = _standardised(X, y, state)
    _, tauT, _ = _responsibilities(XtT, ys, state)
    return np.array([gate_objective(tauT, _m._log_gate_T(XtT, state.gates + t * direction)) for t in steps])


def machine_loglik(X, y, state: RoundState):
    """Log-likelihood of ``state`` on one machine's rows (standardised y)."""
    XtT, ys = _standardised(X, y, state)
    return _responsibilities(XtT, ys, state)[0]


def newton_direction(stats: RoundStatistics, K):
    """(p, K) damped Newton increment of the gates from pooled gradient and Hessian."""
    p = stats.experts.h.shape[1]
    if K == 1:
        return np.zeros((p, 1))
    hess = stats.hess.copy()
    diag = hess.reshape(-1)[:: hess.shape[0] + 1]
    diag += DAMPING * max(diag.sum() / hess.shape[0], 1e-300)
    try:
        step = np.linalg.solve(hess, stats.grad)
    except np.linalg.LinAlgError:
        step = np.linalg.lstsq(hess, stats.grad, rcond=None)[0]
    if not np.all(np.isfinite(step)):
        step = np.zeros_like(stats.grad)
    big = np.abs(step).max() if step.size else 0.0
    if big > MAX_STEP:
        step *= MAX_STEP / big
    out = np.zeros((p, K))
    out[:, :-1] = step.reshape(K - 1, p).T
    return out


def server_step(state: RoundState, stats: RoundStatistics, gate_values, var_floor=1e-6):
    """The M-step at the server from pooled statistics.

    ``gate_values(direction, steps)`` returns the pooled Q at ``gates + t direction`` for each t
    (exchange 2).  Returns the new :class:`RoundState` and the number of gate exchanges used.
    """
    K = state.variances.shape[0]
    experts, variances = experts_from_statistics(stats.experts, var_floor)
    direction = newton_direction(stats, K)
    gates = state.gates
    exchanges = 0
    if K > 1 and np.any(direction):
        halvings = 0
        while halvings < MAX_HALVINGS:
            steps = 0.5 ** np.arange(halvings, min(halvings + LADDER, MAX_HALVINGS))
            q = gate_values(direction, steps)
            exchanges += 1
            ok = np.flatnonzero(q >= stats.q)
            if ok.size:
                gates = state.gates + steps[ok[0]] * direction
                break
            halvings += steps.size
    return RoundState(gates, experts, variances, state.scaler), exchanges


@dataclass
class RoundsResult:
    """What :func:`run_rounds` returns.

    state : RoundState after the rounds ; loglik : ndarray (rounds + 1,), the pooled log-likelihood
    (original y units) of the starting model and after each round ; times : ndarray (rounds,),
    seconds per round (the slowest machine of each exchange plus the server's step; the last round
    also carries the final log-likelihood exchange) ; up, down : ndarray (M,), numbers each machine
    sent and received over all the rounds.
    """

    state: RoundState
    loglik: np.ndarray
    times: np.ndarray
    up: np.ndarray
    down: np.ndarray


def run_rounds(run, n_machines, n_samples, state: RoundState, rounds, *, var_floor=1e-6, progress=None):
    """``rounds`` distributed EM rounds from ``state``, the machines reached through ``run``.

    n_machines : M ; n_samples : rows over all machines.
    ``run(fn, args)`` applies ``fn(X_m, y_m, *args)`` on every machine m, wherever its data lives,
    and returns the list (M,) of ``(value, seconds)``.  The server sums what comes back and takes
    the M-step (:func:`server_step`); ``progress(stage, done, total)`` is called with ("round", r,
    rounds).  Returns :class:`RoundsResult`.
    """
    up, down = np.zeros(n_machines), np.zeros(n_machines)
    times, history = [], []
    for r in range(rounds):
        out = run(machine_statistics, (state,))
        stats = [v for v, _ in out]
        pooled = sum(stats[1:], stats[0])
        history.append(pooled.loglik)
        up += stats[0].n_floats()
        down += state.n_floats()
        exchange_times, exchange_wall = [max(t for _, t in out)], []

        def gate_values(direction, steps, state=state, wall=exchange_wall, slowest=exchange_times, up=up, down=down):
            w0 = time.perf_counter()
            res = run(machine_gate_values, (state, direction, steps))
            wall.append(time.perf_counter() - w0)
            slowest.append(max(t for _, t in res))
            up += len(steps)
            down += direction.size + len(steps)
            return sum(v for v, _ in res)

        t0 = time.perf_counter()
        state, _ = server_step(state, pooled, gate_values, var_floor)
        # The server's own work, then the slowest machine of each exchange.
        times.append(time.perf_counter() - t0 - sum(exchange_wall) + sum(exchange_times))
        if progress is not None:
            progress("round", r + 1, rounds)
    out = run(machine_loglik, (state,))
    history.append(sum(v for v, _ in out))
    if rounds:
        up += 1
        down += state.n_floats()
        times[-1] += max(t for _, t in out)
    # Log-likelihood in original y units: the density picks up the Jacobian 1 / y_scale per row.
    loglik = np.asarray(history) - n_samples * np.log(state.scaler.y_scale)
    return RoundsResult(state, loglik, np.asarray(times), up, down)


def em_rounds(shards, params: _m.MoEParams, rounds, *, scaler=None, var_floor=1e-6):
    """``rounds`` distributed EM rounds from ``params`` over in-memory shards, in this process.

    :func:`run_rounds` with the shards held here (the driver
    :class:`~moecore.distributed.DistributedMoE` runs on every backend): with a single shard it is
    plain global EM.

    Parameters
    ----------
    shards : list of (X (n_m, d), y (n_m,))
    params : MoEParams, the starting model
    rounds : int >= 0
    scaler : Standardizer of x and y, or None (fitted on the first shard)

    Returns
    -------
    params : MoEParams after the rounds ; loglik : ndarray (rounds + 1,), the pooled log-likelihood
    (original y units) of the starting model and after each round.
    """
    rounds = check_int(rounds, "rounds", low=0)
    if not isinstance(params, _m.MoEParams):
        raise TypeError(f"params must be a MoEParams (the starting model), got {type(params).__name__}.")
    if isinstance(shards, (str, bytes)) or not len(shards):
        raise ValueError("shards must be a non-empty list of (X (n_m, d), y (n_m,)) pairs.")
    shards = [check_Xy(X, y, n_features=params.n_features) for X, y in shards]
    if scaler is None:
        scaler = _m.Standardizer.fit(*shards[0])

    def run(fn, args):
        return [(fn(X, y, *args), 0.0) for X, y in shards]

    n = sum(len(y) for _, y in shards)
    res = run_rounds(run, len(shards), n, RoundState.from_params(params, scaler), rounds, var_floor=var_floor)
    return res.state.to_params(), res.loglik


def rounds_on_machines(machines, params: _m.MoEParams, X_support, y_support, rounds, n_machines, n_samples, *,
                       var_floor=1e-6, progress=None):
    """:func:`run_rounds` from the reduced model ``params`` on the machines' data where it lives.

    machines : :class:`~moecore.dispatch.MachineData` ; the support pairs (S, d), (S,) set the
    standardisation ; n_samples : rows over all machines.  Returns :class:`RoundsResult`.
    """
    everyone = range(n_machines)

    def run(fn, args):
        out = machines.run(fn, everyone, lambda m: args)
        return [out[m] for m in everyone]

    state = RoundState.from_params(params, _m.Standardizer.fit(X_support, y_support))
    return run_rounds(run, n_machines, n_samples, state, rounds, var_floor=var_floor, progress=progress)


@dataclass
class WarmRefits:
    """What :func:`warm_refits` returns.

    models : list (M',) of the local models, with the improved refits in place ; scores : ndarray
    (M,), support scores with the improved refits' ; gains : dict {machine: shard log-likelihood
    gain per point} of the improved refits (emptied when their reduction is not kept) ; times :
    ndarray (M',), seconds of each refit ; up, down : ndarray (M,), numbers each machine sent (an
    improved model) and received (the reduced model).  Set by :func:`warm_refit_reduction`:
    reduction : the ReductionResult kept ; cpu : CPU seconds of the second reduction ; support :
    mean support log-likelihoods of both reductions (None: no second one) ; kept : whether the
    improved fits and their reduction replaced the first ones.
    """

    models: list
    scores: np.ndarray
    gains: dict
    times: np.ndarray
    up: np.ndarray
    down: np.ndarray
    reduction: object = None
    cpu: float = 0.0
    support: tuple | None = None
    kept: bool = False


def warm_refits(refit, params: _m.MoEParams, models, machines, scores, X_support, y_support, support_machine,
                n_machines):
    """Every aggregated machine refits from the reduced model; keep the refits that reach a clearly
    better optimum of their shard's likelihood (:func:`~moecore.screening.better_optimum`).

    Machines holding different data may each see some experts too rarely to resolve them (label
    skew: k-means on a shard 80 % one expert splits that expert and merges the rest), so every
    local fit, and with them the reduction, misses an expert, and no machine has a better model to
    refit from.  The reduced model pools what each machine saw often (docs/method.md, section 9).

    refit(machines) -> {machine: LocalFitResult}: fits from ``params`` on those machines' shards ;
    models, machines : the aggregated local models (M',) and their indices ; scores : (M,) support
    scores ; support_machine : (S,).  Returns :class:`WarmRefits`.
    """
    q = n_free_parameters(params.n_experts, params.n_features)
    pos = {int(m): i for i, m in enumerate(machines)}
    out = refit(list(pos))
    down, up = np.zeros(n_machines), np.zeros(n_machines)
    down[list(pos)] = q
    models, scores, gains = list(models), scores.copy(), {}
    for m, res in sorted(out.items()):
        own = models[pos[m]]
        if res.error is None and better_optimum(own.loglik_, res.model.loglik_, res.n_samples, q,
                                                own.n_parameters()):
            gains[m] = (res.model.loglik_ - own.loglik_) / res.n_samples
            models[pos[m]] = res.model
            up[m] += q + 1
            sel = support_machine == m
            if sel.any():
                scores[m] = support_scores([res.model.params_], X_support[sel], y_support[sel],
                                           max_points=SCORE_POINTS)[0]
    return WarmRefits(models, scores, gains, np.array([out[m].time for m in sorted(out)]), up, down)


def better_reduction(first, second, X_support, y_support):
    """After the warm refits: the reduction of the improved fits is kept when it explains the
    support pairs at least as well as the first.

    first, second : ReductionResult.  Returns (the kept one, whether it is ``second``, the mean
    support log-likelihoods of both); the kept one's ``time`` counts both reductions.
    """
    both = support_loglik([first.params, second.params], X_support, y_support).mean(axis=1)
    spent = first.time + second.time
    kept = second if both[1] >= both[0] else first
    kept.time = spent
    return kept, kept is second, tuple(float(v) for v in both)


def warm_refit_reduction(refit, reduce, first, models, machines, scores, X_support, y_support, support_machine,
                         n_machines):
    """:func:`warm_refits` from the first reduction, then, if some refits improved, the reduction
    of the improved fits, kept when it explains the support pairs better (:func:`better_reduction`).

    reduce(models, scores) -> (ReductionResult, CPU seconds) ; first : the first ReductionResult ;
    the other arguments as :func:`warm_refits`.  Returns :class:`WarmRefits`.
    """
    warm = warm_refits(refit, first.params, models, machines, scores, X_support, y_support, support_machine,
                       n_machines)
    warm.reduction = first
    if warm.gains:
        second, warm.cpu = reduce(warm.models, warm.scores)
        warm.reduction, warm.kept, warm.support = better_reduction(first, second, X_support, y_support)
        if not warm.kept:
            warm.gains = {}
    return warm
