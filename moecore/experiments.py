"""Side-by-side comparisons and parameter sweeps: the experiments of the paper, as functions.

Used by the command line, the app's Compare and Experiments pages and the benchmarks.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import metrics as mt
from .baselines import coordinate_median, single_machine, weighted_average
from .distributed import DistributedMoE
from .em import MixtureOfExperts
from .model import MoEParams, posterior_proba, predict_mean
from .simulation import simulate_design

__all__ = ["evaluate", "Comparison", "compare_methods", "SWEEPABLE", "sweep"]

METHODS = ("reduction", "global", "weighted average", "median", "single machine")
# With refinement rounds the comparison also shows the reduced model before them.
ONE_SHOT = "reduction, one-shot"


def evaluate(params: MoEParams, X, y, *, labels=None, truth: MoEParams | None = None,
             reference: MoEParams | None = None):
    """Metrics of one model on (held-out) data.

    Returns a dict: rpe, correlation, loglik (mean per sample) and, when given, ari, rand,
    clustering_error (from ``labels``), mse_* (gates, experts, variances, all) and
    transport_divergence against ``truth``, and gap_* (the same blocks) against ``reference``
    (e.g. the global EM's parameters: how far an estimate is from the centralised fit).
    """
    yhat = predict_mean(X, params)
    out = {
        "rpe": mt.rpe(y, yhat),
        "correlation": mt.correlation(y, yhat),
        "loglik": mt.heldout_loglik(params, X, y),
    }
    if labels is not None:
        pred = posterior_proba(X, y, params).argmax(axis=1)
        out["ari"] = mt.ari(labels, pred)
        out["rand"] = mt.rand_index(labels, pred)
        out["clustering_error"] = mt.clustering_error(labels, pred)
    if truth is not None and truth.n_experts == params.n_experts and truth.n_features == params.n_features:
        mse = mt.parameter_mse(params, truth)
        out.update({f"mse_{k}": v for k, v in mse.items()})
        out["transport_divergence"] = mt.transport_divergence_to_truth(params, truth, X[:2000])
    if reference is not None and reference.n_experts == params.n_experts and reference.n_features == params.n_features:
        out.update({f"gap_{k}": v for k, v in mt.parameter_mse(params, reference).items()})
    return out


@dataclass
class Comparison:
    """Fitted models of every method on one split, and their metrics.

    ``rows``: list of dicts, one per method, with "method", "time" (seconds; for the reduction and
    the naive aggregators the paper's learning time, max local + aggregation) and the metrics of
    :func:`evaluate`.  ``params``: method -> MoEParams.
    """

    distributed: DistributedMoE
    global_model: MixtureOfExperts
    params: dict
    rows: list = field(default_factory=list)

    def table(self):
        """The rows as a pandas DataFrame indexed by method."""
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("method")


def compare_methods(X, y, X_test, y_test, n_experts, n_machines, *, labels_test=None, truth=None,
                    random_state=0, global_model=None, progress=None, **dmoe_params):
    """Fit the reduction and every baseline on one split of (X, y) and evaluate on the test set.

    ``dmoe_params`` go to :class:`~moecore.distributed.DistributedMoE`; the global EM uses the same
    EM settings.  A ready ``global_model`` fitted on (X, y) may be passed to skip refitting it.
    """
    dm = DistributedMoE(n_experts, n_machines, random_state=random_state, **dmoe_params)
    dm.fit(X, y, progress=progress)
    if global_model is None:
        em_keys = ("init", "n_init", "max_iter", "tol", "var_floor", "gate_steps")
        em = {k: v for k, v in dm.get_params().items() if k in em_keys}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            global_model = MixtureOfExperts(n_experts, random_state=random_state, **em).fit(X, y)
    local = [m.params_ for m in dm.local_models_]
    t_local = dm.timings_["local_max"]
    t0 = time.perf_counter()
    avg = weighted_average(local, dm.weights_)
    t_avg = time.perf_counter() - t0
    t0 = time.perf_counter()
    med = coordinate_median(local)
    t_med = time.perf_counter() - t0
    params = {
        "reduction": dm.params_,
        ONE_SHOT: dm.one_shot_params_,
        "global": global_model.params_,
        "weighted average": avg,
        "median": med,
        "single machine": single_machine(local, 0),
    }
    rounds = dm.timings_["rounds"]
    times = {
        "reduction": dm.timings_["learning_time"],
        ONE_SHOT: dm.timings_["learning_time"] - float(np.sum(rounds)),
        "global": global_model.fit_time_,
        "weighted average": t_local + t_avg,
        "median": t_local + t_med,
        "single machine": float(dm.timings_["local"][dm.machines_[0]]),
    }
    if not rounds.size:
        del params[ONE_SHOT], times[ONE_SHOT]  # the reduction is the one-shot model
    rows = []
    for name in params:
        row = {"method": name, "time": times[name]}
        row.update(evaluate(params[name], X_test, y_test, labels=labels_test, truth=truth,
                            reference=global_model.params_ if name != "global" else None))
        rows.append(row)
    return Comparison(dm, global_model, params, rows)


# What a sweep may vary, and how each value enters one run.
SWEEPABLE = ("n_machines", "support_fraction", "n", "refine_rounds")


def sweep(design, parameter, values, *, n=20000, n_experts=None, n_machines=8, repeats=3,
          n_test=20000, random_state=0, include_global=True, **dmoe_params):
    """Run the reduction (and the global EM) over a grid of one parameter, with repeats.

    Parameters
    ----------
    design : str, a named design of :mod:`moecore.simulation`
    parameter : {"n_machines", "support_fraction", "n", "refine_rounds"}
        "support_fraction" multiplies the default support size floor(n / (4 M)).  The global EM
        is fitted once per repeat and data size (it depends on neither M, S nor the rounds).
    values : sequence of the parameter's values
    repeats : independent data sets and seeds per value

    Yields
    ------
    dict per (value, repeat, method): parameter, value, repeat, method, time, the metrics of
    :func:`evaluate`, and for the reduction its wall-clock time.  A generator, so a caller can stop
    (cancel) between runs and show progress.
    """
    if parameter not in SWEEPABLE:
        raise ValueError(f"parameter must be one of {list(SWEEPABLE)}, got {parameter!r}.")
    values = list(values)
    if not values:
        raise ValueError("values must hold at least one value to sweep over.")
    seeds = np.random.SeedSequence(random_state).spawn(repeats)
    em_keys = ("init", "n_init", "max_iter", "tol", "var_floor", "gate_steps")
    for r, seed in enumerate(seeds):
        s_train, s_test, s_fit = seed.spawn(3)
        global_rows = {}  # n -> the global EM's metrics on this repeat's data of that size
        for v in values:
            n_v = int(v) if parameter == "n" else n
            M = int(v) if parameter == "n_machines" else n_machines
            train = simulate_design(design, n_v, random_state=s_train)
            test = simulate_design(design, n_test, random_state=s_test)
            K = n_experts or train.params.n_experts
            kw = dict(dmoe_params)
            if parameter == "support_fraction":
                kw["support_size"] = max(K, int(float(v) * max(1, n_v // (4 * M))))
            if parameter == "refine_rounds":
                kw["refine_rounds"] = int(v)
            fit_seed = int(s_fit.generate_state(1)[0])
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dm = DistributedMoE(K, M, random_state=fit_seed, **kw).fit(train.X, train.y)
            wall = time.perf_counter() - t0
            base = {"parameter": parameter, "value": v, "repeat": r}
            row = dict(base, method="reduction", time=dm.timings_["learning_time"], wall=wall)
            row.update(evaluate(dm.params_, test.X, test.y, labels=test.labels, truth=test.params))
            yield row
            if include_global:
                if n_v not in global_rows:
                    em = {k: kw[k] for k in em_keys if k in kw}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        g = MixtureOfExperts(K, random_state=fit_seed, **em).fit(train.X, train.y)
                    grow = dict(method="global", time=g.fit_time_, wall=g.fit_time_)
                    grow.update(evaluate(g.params_, test.X, test.y, labels=test.labels, truth=test.params))
                    global_rows[n_v] = grow
                yield dict(base, **global_rows[n_v])
