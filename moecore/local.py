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
from .em import MixtureOfExperts

__all__ = ["LocalFitError", "LocalFitResult", "degeneracy", "fit_local", "fit_task", "local_spread"]


class LocalFitError(RuntimeError):
    """A machine's local fit failed; the message names the shard and the cause."""


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


def fit_local(index, X, y, n_experts, em_params, seed):
    """Fit one machine's MoE.  Never raises: an error is returned in the result.

    Parameters
    ----------
    index : int, the machine number (for messages)
    X : (n_m, d) ; y : (n_m,)
    em_params : dict of MixtureOfExperts parameters
    seed : numpy SeedSequence of this machine

    The fit runs BLAS on one thread (``MixtureOfExperts.fit`` does), so a worker process per core
    does not oversubscribe.
    """
    t0 = time.perf_counter()
    c0 = time.thread_time()
    params = dict(em_params)
    select = params.pop("local_experts", "fixed")
    try:
        est = MixtureOfExperts(n_experts, random_state=seed, **params)
        est._quiet = True  # the parent reports non-convergence per machine
        est.fit(X, y)
        if select == "bic" and n_experts > 1:
            est = _fewer_experts_by_bic(est, X, y, params, seed)
        why = degeneracy(est)
        if why is not None:
            return LocalFitResult(index, len(y), None, time.perf_counter() - t0, f"degenerate model: {why}",
                                  time.thread_time() - c0)
        return LocalFitResult(index, len(y), est, time.perf_counter() - t0, None, time.thread_time() - c0)
    except Exception as exc:  # reported with the shard number by the caller
        return LocalFitResult(index, len(y), None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}",
                              time.thread_time() - c0)


def fit_task(X, y, index, n_experts, em_params, seed):
    """:func:`fit_local` with the data first, as :meth:`moecore.dispatch.MachineData.run` calls tasks."""
    return fit_local(index, X, y, n_experts, em_params, seed)


def _fewer_experts_by_bic(est, X, y, params, seed):
    """The K-expert fit ``est`` or a fit with fewer experts, whichever has the lowest BIC.

    A machine holding one region of x may see one or two experts only; its K-expert fit then
    splits a line into pieces whose slopes and gates extrapolate badly (issue 11). Seeds: children
    of the machine's seed spawned after the K-expert fit, so that fit is unchanged.
    """
    K = est.n_experts
    best, best_bic = est, est.bic(X, y)
    for k, s in zip(range(1, K), check_random_state_seed(seed).spawn(K - 1), strict=True):
        cand = MixtureOfExperts(k, random_state=s, **params)
        cand._quiet = True
        cand.fit(X, y)
        b = cand.bic(X, y)
        if b < best_bic:
            best, best_bic = cand, b
    return best


def local_spread(results):
    """The tail of the local fits: the slowest machine sets the learning time.

    Parameters
    ----------
    results : list of LocalFitResult (failed fits count in the times, not in the iterations)

    Returns
    -------
    dict with "time" and "iterations", each {"median", "p90", "max"} over the machines (seconds,
    EM iterations of the kept run; NaN where no fit succeeded).
    """
    def summary(a):
        a = np.asarray(a, dtype=np.float64)
        if not a.size:
            return {"median": float("nan"), "p90": float("nan"), "max": float("nan")}
        return {"median": float(np.median(a)), "p90": float(np.quantile(a, 0.9)), "max": float(a.max())}

    return {"time": summary([r.time for r in results]),
            "iterations": summary([r.model.n_iter_ for r in results if r.model is not None])}
