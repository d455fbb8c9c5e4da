"""One machine's part of a distributed fit: its local MoE, fitted on its own shard.

What runs on a worker (a joblib process or thread, a dask worker) and what it sends back.  It
knows nothing of where it runs (:mod:`moecore.dispatch`) nor of the estimator that asked for it
(:mod:`moecore.distributed`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._validation import check_random_state_seed
from ._warn import warn
from .em import ConvergenceWarning, DegenerateFitWarning, MixtureOfExperts, uses_portfolio
from .model import net_variances
from .params import min_samples
from .shard_check import machine_errors

__all__ = [
    "LocalFitError",
    "LocalFitResult",
    "collect_local_fits",
    "degeneracy",
    "derived_seed",
    "fit_local",
    "fit_local_models",
    "fit_pilot",
    "fit_task",
    "kept_machines",
    "refitter",
    "with_pilot",
]


class LocalFitError(RuntimeError):
    """A machine's local fit failed; the message names the shard and the cause."""


class MachineWarning(RuntimeWarning):
    """A machine's work was left out or run again: a failed local fit skipped (``on_error="skip"``), one the
    screening dropped, a task lost with its worker and resubmitted.  A RuntimeWarning, as these were before
    they had a category of their own to filter by."""


@dataclass
class LocalFitResult:
    """What one machine sends back: its model (or the error) and its own fit time in seconds."""

    index: int
    n_samples: int
    model: MixtureOfExperts | None
    time: float
    error: str | None = None
    cpu_time: float = float("nan")  # CPU seconds of the fitting thread (immune to co-tenants)


def degeneracy(model: MixtureOfExperts):
    """Why a fitted local model is unusable for aggregation, or None if it is fine."""
    prm = model.params_
    for name, a in (("gates", prm.gates), ("experts", prm.experts), ("variances", prm.variances)):
        if not np.all(np.isfinite(a)):
            return f"non-finite {name}"
    if not np.isfinite(model.loglik_):
        return "non-finite log-likelihood"
    return None


def fit_local(index, X, y, n_experts, em_params, seed, local_experts="fixed"):
    """Fit one machine's MoE.  Never raises: an error is returned in the result.

    Parameters
    ----------
    index : int, the machine number (for messages)
    X : (n_m, d) ; y : (n_m,)
    em_params : dict of MixtureOfExperts parameters
    seed : numpy SeedSequence of this machine
    local_experts : "fixed" (n_experts experts) or "bic" (the number up to n_experts of lowest BIC)

    The fitted model carries ``net_variances_`` (K_m,), :func:`moecore.model.net_variances` on the
    shard, for the reduction's ``variance_update="debiased"``.

    The fit runs BLAS on one thread (``MixtureOfExperts.fit`` does), so a worker process per core
    does not oversubscribe.
    """
    t0 = time.perf_counter()
    c0 = time.thread_time()
    flat = np.flatnonzero(np.ptp(X, axis=0) == 0) if len(y) > 1 else np.array([], dtype=int)
    if flat.size:
        # Said of this machine's rows: the estimator's own message ("X has constant column(s): remove
        # them") told a user to drop an input that varies over the data (machines fitted from files,
        # where the server never sees the whole; DistributedMoE.fit refuses such a split before any fit).
        return LocalFitResult(index, len(y), None, time.perf_counter() - t0,
                              f"input column(s) {flat.tolist()} (numbered from 0) take a single value on this "
                              f"machine's {len(y)} rows: its local EM cannot estimate their coefficients; leave "
                              "the column(s) out of every machine's data, or give this machine rows where they vary",
                              time.thread_time() - c0)
    try:
        # Quiet: the parent reports non-convergence and retired experts per machine. One portfolio
        # however few the rows (MixtureOfExperts._fit): the slowest machine sets the learning time.
        params = dict(em_params)
        pilot = params.pop("pilot", None)
        if not uses_portfolio(params.get("init")):
            pilot = None  # a refit's warm start replaces the portfolio, and the pilot with it
        est = MixtureOfExperts(n_experts, random_state=seed, **params)._fit(X, y, quiet=True,
                                                                           local_fit=True, pilot=pilot)
        if local_experts == "bic" and n_experts > 1:
            est = _fewer_experts_by_bic(est, X, y, params, seed)
        why = degeneracy(est)
        if why is not None:
            return LocalFitResult(index, len(y), None, time.perf_counter() - t0, f"degenerate model: {why}",
                                  time.thread_time() - c0)
        return LocalFitResult(index, len(y), shard_summaries(est, X, y), time.perf_counter() - t0, None,
                              time.thread_time() - c0)
    except Exception as exc:  # reported with the shard number by the caller
        return LocalFitResult(index, len(y), None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}",
                              time.thread_time() - c0)


def shard_summaries(est, X, y):
    """``est`` with what its machine sends up beside the parameters, computed on its rows X (n_m, d),
    y (n_m,): ``net_variances_`` (K_m,), what the reduction's debiased variance update needs, and
    ``train_sse_`` and ``train_loglik_``, the model's squared errors and log-likelihood on those rows,
    which the check after the fit (:func:`moecore.shard_check.check_fit`) compares the final model's with."""
    est.net_variances_ = net_variances(X, y, est.params_)
    errors = machine_errors(X, y, est.params_, loglik=getattr(est, "loglik_", None))
    est.train_sse_, est.train_loglik_ = float(errors[0]), float(errors[2])
    return est


def fit_pilot(X, y, n_experts, em_params, seed):
    """The server's pilot model (DistributedMoE(pilot=True)): a K-expert fit of the supporting
    sample, sent to every machine as one more start of its portfolio.  One portfolio, as a local
    fit runs (it is on the learning time's path: every machine waits for it).

    Returns (MoEParams, seconds, CPU seconds)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    est = MixtureOfExperts(n_experts, random_state=seed, **em_params)._fit(X, y, quiet=True, local_fit=True)
    return est.params_, time.perf_counter() - t0, time.thread_time() - c0


def with_pilot(on, em_params, X, y, n_experts, seed_mm):
    """The local fits' EM settings and the pilot's (seconds, CPU seconds): with ``on``, the pilot
    model fitted to the support pairs X (S, d), y (S,) is added to them ("pilot"), before the
    machines start (every one of them waits for it); else the settings as they are and None."""
    if not on:
        return em_params, None
    if not uses_portfolio(em_params["init"]):
        raise ValueError(f"pilot=True adds a start to the portfolio: it needs init='portfolio', "
                         f"not {em_params['init']!r}.")
    need = min_samples(n_experts, X.shape[1])
    if X.shape[0] < need:  # the pilot's own fit would refuse, naming neither pilot nor the support
        raise ValueError(f"pilot=True fits the pilot model to the supporting sample, which holds {X.shape[0]} "
                         f"points: {n_experts} experts on {X.shape[1]} input(s) need {need}. Use "
                         f"support_size >= {need}, or pilot=False.")
    params, seconds, cpu = fit_pilot(X, y, n_experts, em_params, derived_seed(seed_mm, 3))
    return {**em_params, "pilot": params}, (seconds, cpu)


def fit_task(X, y, index, n_experts, em_params, seed, local_experts="fixed"):
    """:func:`fit_local` with the data first, as :meth:`moecore.dispatch.MachineData.run` calls tasks."""
    return fit_local(index, X, y, n_experts, em_params, seed, local_experts)


def _fewer_experts_by_bic(est, X, y, params, seed):
    """The K-expert fit ``est`` or a fit with fewer experts, whichever has the lowest BIC.

    A machine holding one region of x may see one or two experts only; its K-expert fit then
    splits a line into pieces whose slopes and gates extrapolate badly (issue 11). Seeds: children
    of the machine's seed spawned after the K-expert fit, so that fit is unchanged.
    """
    K = est.n_experts
    best, best_bic = est, est.bic(X, y)
    for k, s in zip(range(1, K), check_random_state_seed(seed).spawn(K - 1), strict=True):
        cand = MixtureOfExperts(k, random_state=s, **params)._fit(X, y, quiet=True, local_fit=True)
        b = cand.bic(X, y)
        if b < best_bic:
            best, best_bic = cand, b
    return best


def derived_seed(seed, purpose):
    """A seed of its own for a further fit of the machine whose seed is ``seed`` (purpose 1: the
    screening's refit, 2: the refit from the reduced model): reproducible, and not the restarts
    that the machine already ran."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, purpose))


def collect_local_fits(results, on_error, n_experts, max_iter, quiet=False):
    """The local fits to aggregate, and {machine: error} of those that failed.

    results : list (M,) of LocalFitResult.  A failure raises :class:`LocalFitError` naming the
    shard when ``on_error="raise"``; with "skip" the others are kept (a warning says which were
    left out).  Warns of retired spare experts and of local EMs that did not converge, unless
    ``quiet`` (the same facts are in the results).
    """
    failed = {r.index: r.error for r in results if r.error is not None}
    if failed and on_error == "raise":
        m, why = next(iter(sorted(failed.items())))
        raise LocalFitError(
            f"local fit of machine {m} (shard of {results[m].n_samples} samples) failed: {why}. "
            f"{len(failed)} of {len(results)} machine(s) failed; pass on_error='skip' to "
            "aggregate the others."
        )
    kept = [r for r in results if r.error is None]
    if not kept:
        raise LocalFitError(f"all {len(results)} local fits failed; first error: {results[0].error}")
    if quiet:
        return kept, failed
    if failed:
        warn(
            f"skipped {len(failed)} failed machine(s) {sorted(failed)}; the others are "
            "aggregated with renormalised weights.",
            MachineWarning,
        )
    spare = {r.index: r.model.retired_experts_.tolist() for r in kept
             if getattr(r.model, "retired_experts_", np.array([])).size}
    if spare:
        warn(
            f"the local fits of machine(s) {sorted(spare)} retired spare experts {spare} "
            f"(machine: experts): their local EM ended with fewer than n_experts={n_experts} experts "
            "in use, because the shard supports fewer (e.g. a machine holding one region of x) or "
            "because the fit ended in a poor optimum (the screening compares them); those components "
            "carry no gate mass into the reduction.",
            DegenerateFitWarning,  # the category of MixtureOfExperts' own retired experts
        )
    not_conv = [r.index for r in kept if not r.model.converged_]
    if not_conv:
        warn(
            f"the local EM of machine(s) {not_conv} did not converge in max_iter={max_iter}.",
            ConvergenceWarning,  # as a global fit's: one filter silences or catches both
        )
    return kept, failed


def refitter(machines, n_experts, machine_seeds, em_of, purpose, local_experts="fixed"):
    """refit(todo) -> {machine: LocalFitResult}: the machines in ``todo`` fit again on their shards
    (held by ``machines``, a :class:`~moecore.dispatch.MachineData`), with the EM settings
    ``em_of(m)``, the seed :func:`derived_seed` of ``purpose`` and ``local_experts`` as in
    :func:`fit_local`."""
    def refit(todo):
        out = machines.run(fit_task, todo, lambda m: (m, n_experts, em_of(m),
                                                      derived_seed(machine_seeds[m], purpose), local_experts))
        return {m: res for m, (res, _) in out.items()}
    return refit


def fit_local_models(machines, n_experts, em_params, machine_seeds, shard_sizes, progress=None,
                     local_experts="fixed"):
    """Every machine fits its local MoE on its shard, in parallel: a list (M,) of LocalFitResult.

    machines : :class:`~moecore.dispatch.MachineData` ; machine_seeds : list (M,) of SeedSequence ;
    shard_sizes : (M,) rows of each shard ; local_experts as in :func:`fit_local`.  A machine lost
    with its worker every time gives a failed result naming the loss.
    """
    M = len(machine_seeds)
    out = machines.run(fit_task, range(M), lambda m: (m, n_experts, em_params, machine_seeds[m], local_experts),
                       progress, "local", lost=lambda m, why: LocalFitResult(m, shard_sizes[m], None, np.nan, why))
    return [out[m][0] for m in range(M)]


def kept_machines(kept):
    """The aggregated machines of a list of LocalFitResult (M',): their models, numbers of experts
    (M',), machine indices (M',) and shares n_m / n renormalised over them (M',)."""
    models = [r.model for r in kept]
    sizes = np.array([r.n_samples for r in kept], dtype=float)
    return models, np.array([m.params_.n_experts for m in models]), np.array([r.index for r in kept]), \
        sizes / sizes.sum()
