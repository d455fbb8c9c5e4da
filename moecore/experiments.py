"""Side-by-side comparisons and parameter sweeps: the experiments of the paper, as functions.

Used by the command line, the app's Compare and Experiments pages and the benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from sklearn.model_selection import train_test_split

from . import metrics as mt
from ._validation import check_choice, check_float, check_int, check_random_state_seed, check_Xy
from .baselines import coordinate_median, single_machine, weighted_average
from .distributed import DistributedMoE
from .em import MixtureOfExperts
from .model import MoEParams, posterior_proba, predict_mean
from .params import DISTRIBUTED_PARAMETERS, SIMULATION_PARAMETERS, SWEEP_PARAMETER, SWEEPABLE, em_settings
from .selection import criterion_values
from .simulation import get_design, simulate_design
from .splits import SPLITS, Split

__all__ = ["SWEEPABLE", "Comparison", "alpha_sweep", "compare_methods", "data_rows", "evaluate", "held_out_split",
           "sweep"]

METHODS = ("reduction", "global", "weighted average", "median", "single machine")
# The naive average of the local parameters as each machine numbered its experts (label switching).
UNALIGNED = "average, unaligned"
# With refinement rounds the comparison also shows the reduced model before them.
ONE_SHOT = "reduction, one-shot"


def evaluate(params: MoEParams, X, y, *, labels=None, truth: MoEParams | None = None,
             reference: MoEParams | None = None):
    """Metrics of one model on (held-out) data.

    Returns a dict: rpe, correlation, loglik (mean per sample) and, when given, ari, rand,
    clustering_error (from ``labels``), mse_* (gates, experts, variances, all) and
    transport_divergence against ``truth``, and gap_* (the same blocks) against ``reference``
    (e.g. the global EM's parameters: how far an estimate is from the centralised fit); with each,
    mse_gate_proba / gap_gate_proba, the gates judged by their probabilities on (the first 2 000
    of) X: a sharp gate's coefficients are barely determined, and their MSE reached 1e8 between
    fits that route every point alike (:func:`moecore.metrics.gate_proba_mse`).
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
        out["mse_gate_proba"] = mt.gate_proba_mse(params, truth, X[:2000])
        out["transport_divergence"] = mt.transport_divergence_to_truth(params, truth, X[:2000])
    if reference is not None and reference.n_experts == params.n_experts and reference.n_features == params.n_features:
        out.update({f"gap_{k}": v for k, v in mt.parameter_mse(params, reference).items()})
        out["gap_gate_proba"] = mt.gate_proba_mse(params, reference, X[:2000])
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
                    random_state=0, distributed=None, global_model=None, unaligned=False, progress=None,
                    **dmoe_params):
    """Fit the reduction and every baseline on one split of (X, y) and evaluate on the test set.

    ``dmoe_params`` go to :class:`~moecore.distributed.DistributedMoE`; the global EM uses the same
    EM settings.  A ready ``distributed`` model and ``global_model`` fitted on (X, y) (e.g. the
    ones a user is looking at) are evaluated as they are instead of being refitted.
    ``unaligned``: also evaluate the weighted average of the local parameters without aligning the
    experts first (:data:`UNALIGNED`), which label switching ruins.
    """
    X_test, y_test, labels_test, truth = _check_comparison(X, X_test, y_test, labels_test, truth, distributed,
                                                           global_model)
    if distributed is None:
        dm = DistributedMoE(n_experts, n_machines, random_state=random_state, **dmoe_params)
        dm.fit(X, y, progress=progress)
    else:
        dm = distributed
    if global_model is None:
        global_model = _global_em(n_experts, X, y, random_state, dm.get_params())
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
    if unaligned:
        t0 = time.perf_counter()
        params[UNALIGNED] = weighted_average(local, dm.weights_, align=False)
        times[UNALIGNED] = t_local + time.perf_counter() - t0
    rows = []
    for name in params:
        row = {"method": name, "time": times[name]}
        row.update(evaluate(params[name], X_test, y_test, labels=labels_test, truth=truth,
                            reference=global_model.params_ if name != "global" else None))
        rows.append(row)
    return Comparison(dm, global_model, params, rows)


def _fitted(model, kind, name):
    """``model``, refused unless it is a fitted ``kind`` (its error named an attribute after every other fit)."""
    if not isinstance(model, kind):
        raise TypeError(f"{name} must be a fitted {kind.__name__} (or None to fit one here), got "
                        f"{type(model).__name__}.")
    if not hasattr(model, "params_"):
        raise ValueError(f"{name} is not fitted: call its fit on (X, y) first, or pass None to fit one here.")
    return model


def _check_comparison(X, X_test, y_test, labels_test, truth, distributed, global_model):
    """compare_methods' held-out rows, labels, truth and ready models checked before any fit; returns
    (X_test (m, d), y_test (m,), labels_test (m,) or None, truth or None)."""
    d = np.shape(X)[1] if np.ndim(X) == 2 else 1
    try:
        X_test, y_test = check_Xy(X_test, y_test, n_features=d)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"the held-out rows (X_test, y_test): {exc}") from None
    if labels_test is not None:
        labels_test = np.asarray(labels_test)
        if labels_test.shape != y_test.shape or labels_test.dtype.kind not in "iu":
            raise ValueError(f"labels_test must hold one integer label per held-out row ({y_test.size}), got "
                             f"shape {labels_test.shape} and dtype {labels_test.dtype}.")
    if truth is not None and not isinstance(truth, MoEParams):
        raise TypeError(f"truth must be a MoEParams (the true model) or None, got {type(truth).__name__}.")
    if truth is not None and truth.n_features != d:
        raise ValueError(f"truth has {truth.n_features} input(s); X has {d}.")
    if distributed is not None:
        _fitted(distributed, DistributedMoE, "distributed")
    if global_model is not None:
        _fitted(global_model, MixtureOfExperts, "global_model")
    return X_test, y_test, labels_test, truth


# Settings of a run, recorded in every row of a sweep (so a saved table says how it was made).
SETTING_KEYS = ("mm_n_init", "backend", "n_jobs", "variance_update", "gate_targets", "local_check",
                "refine_rounds", "machine_weights")


def _global_em(K, X, y, seed, dmoe_params):
    """The global EM on (X, y) with the EM settings (restarts, iterations, tolerance, variance
    floor, gate steps) of the distributed fit's parameters ``dmoe_params``."""
    return MixtureOfExperts(K, random_state=seed, **em_settings(dmoe_params))._fit(X, y, quiet=True)


def _run_settings(design, dm, n, n_test, seed, fit_seed):
    """The settings of one distributed fit, as flat columns: design, n, M, K, seed, fit_seed, support
    (the supporting sample size actually used), restarts and the other estimator settings."""
    p = dm.get_params()
    out = dict(design=design, n=int(n), M=int(p["n_machines"]), K=int(p["n_experts"]), seed=seed,
               fit_seed=int(fit_seed), support=len(dm.support_indices_), restarts=int(p["n_init"]),
               n_test=int(n_test))
    out.update({k: p[k] for k in SETTING_KEYS if k in p})
    if hasattr(dm, "machine_weights_used_"):
        out["machine_weights"] = dm.machine_weights_used_
    return out


def _sweep_rows(design, data, test_size, n_test, s_train, s_test):
    """One repeat's rows: (held-out rows, draw(n) -> n training rows).

    A named design draws both afresh from the repeat's seeds.  Given data (X, y) are split at
    random, ``test_size`` of the rows held out; a sweep over n takes the first n training rows of
    one random order, so that a smaller n is a subset of a larger one.  Rows: SimpleNamespace of
    X (n, d), y (n,), labels and params (None for given data).
    """
    if data is None:
        test = simulate_design(design, n_test, random_state=s_test)
        return test, lambda n: simulate_design(design, n, random_state=s_train)
    X, y = data
    tr, te = held_out_split(y.size, test_size, int(s_test.generate_state(1)[0]))
    order = np.random.default_rng(s_train).permutation(tr)
    return data_rows(X, y, te), lambda n: data_rows(X, y, order[:n])


def held_out_split(n_rows, test_size, seed):
    """(training, held-out) row indices of data with ``n_rows`` rows: ``test_size`` of them held out
    at random (rounded up), from the int ``seed``."""
    return train_test_split(np.arange(n_rows), test_size=test_size, random_state=seed)


def data_rows(X, y, idx):
    """Rows ``idx`` of data (X (n, d), y (n,)), in their original order, as the sweeps and the command
    line pass them around: SimpleNamespace of X, y, labels and params (None: data have no truth)."""
    idx = np.sort(idx)
    return SimpleNamespace(X=X[idx], y=y[idx], labels=None, params=None)


def training_size(n_rows: int, test_size: float) -> int:
    """The rows a sweep on ``n_rows`` rows of data fits with ``test_size`` of them held out
    (train_test_split rounds the held-out share up)."""
    return n_rows - int(np.ceil(test_size * n_rows))


def _values(values, name):
    """``values`` as a list: a sequence of numbers, not a string (whose characters it would iterate)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers (a list), got {type(values).__name__} {values!r}.")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must hold at least one value to sweep over.")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        # Each value runs with the same seeds: a copy is the same fits again, which a mean and sd over
        # the rows of one value would count as independent repeats.
        raise ValueError(f"{name} holds {', '.join(f'{v:g}' for v in repeated)} more than once: each value is run "
                         "once per repeat (its copies would be the same fits, counted twice).")
    return values


# How each sweepable parameter's values are checked: the declaration of the setting it stands for, so
# that a sweep runs what it records (M = 2.7 ran M = 2, recorded 2.7; True ran M = 1).
_SWEEP_CHECKS = {
    "n_machines": DISTRIBUTED_PARAMETERS["n_machines"].check,
    "n_experts": DISTRIBUTED_PARAMETERS["n_experts"].check,
    "refine_rounds": DISTRIBUTED_PARAMETERS["refine_rounds"].check,
    "n": SIMULATION_PARAMETERS["n"].check,
    "support_fraction": lambda v: check_float(v, "support_fraction", low=0.0, low_open=True),
}


def _check_runs(design, data, n, n_test, n_experts, n_machines, repeats, random_state):
    """The arguments :func:`sweep` and :func:`alpha_sweep` share, checked before any fit."""
    if data is None:
        get_design(design)
        SIMULATION_PARAMETERS["n"].check(n)
        check_int(n_test, "n_test", low=1)
    if n_experts is not None:
        DISTRIBUTED_PARAMETERS["n_experts"].check(n_experts)
    DISTRIBUTED_PARAMETERS["n_machines"].check(n_machines)
    check_int(repeats, "repeats", low=1)
    check_random_state_seed(random_state)


def _check_sweep(parameter, values, data, n_experts, test_size):
    """The sweep's arguments checked before any fit; returns (values, data as checked arrays)."""
    SWEEP_PARAMETER.check(parameter)
    values = _values(values, "values")
    check = _SWEEP_CHECKS[parameter]
    values = [check(v) for v in values]
    if data is None:
        return values, None
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"data must be a pair (X, y), got {type(data).__name__}.")
    X, y = check_Xy(*data)
    check_float(test_size, "test_size", low=0.0, high=1.0, low_open=True)
    n_train = training_size(y.size, test_size)
    if n_train < 1:
        raise ValueError(f"test_size = {test_size} leaves no training rows of the {y.size} given.")
    if n_experts is None and parameter != "n_experts":
        raise ValueError("n_experts must be given with data: only a named design knows its number of experts.")
    if parameter == "n" and max(int(v) for v in values) > n_train:
        raise ValueError(f"n must be at most the {n_train:,} training rows of the data ({1 - test_size:.0%} of "
                         f"{y.size:,}), got {max(int(v) for v in values):,}.")
    return values, (X, y)


def sweep(design, parameter, values, *, n=20000, n_experts=None, n_machines=8, repeats=3,
          n_test=20000, random_state=0, include_global=True, data=None, test_size=0.2, **dmoe_params):
    """Run the reduction (and the global EM) over a grid of one parameter, with repeats.

    Parameters
    ----------
    design : str, a named design of :mod:`moecore.simulation`; with ``data``, the data's name
        (recorded in every row)
    parameter : {"n_machines", "support_fraction", "n", "refine_rounds", "n_experts"}
        "support_fraction" multiplies the default support size floor(n / (4 M)).
    values : sequence of the parameter's values
    repeats : independent data sets and seeds per value
    data : tuple (X (n, d), y (n,)) or None
        Fit these rows instead of drawing from ``design``: each repeat holds a random
        ``test_size`` of them out (its own split, from its seed) and fits all the others, or the
        first n of them in a random order when n is swept; ``n`` and ``n_test`` are then unused,
        and ``n_experts`` is needed unless K is swept.
    dmoe_params : further :class:`~moecore.distributed.DistributedMoE` settings (n_init,
        support_size, backend, n_jobs, ...); the global EM takes the EM ones.

    Each repeat draws (or splits) its training and test data once per sample size: every value of
    M, of the support fraction or of the rounds is fitted on the same rows, and the global EM, which
    depends on none of them, is fitted once per repeat (once per value when n or K is swept).

    Yields
    ------
    dict per (value, repeat, method): parameter, value, repeat, method, time, the metrics of
    :func:`evaluate` on the held-out rows, ``bic`` on the training rows
    (:func:`moecore.selection.criterion_values`), the settings of the run (design, n, M, K, seed,
    fit_seed, support, restarts, backend, n_jobs, variance_update, ..., n_test), and for the
    reduction its wall-clock time, its slowest local fit (``local_max``) and the reduction's own
    time (``reduction_time``), in seconds; global rows say whether they reuse the repeat's one fit
    (``global_reused``).  A generator, so a caller can stop (cancel) between runs and show progress;
    the arguments are checked when it is made, before any fit.
    """
    values, data = _check_sweep(parameter, values, data, n_experts, test_size)
    _check_runs(design, data, n, n_test, n_experts, n_machines, repeats, random_state)
    return _sweep_runs(design, parameter, values, n, n_experts, n_machines, repeats, n_test, random_state,
                       include_global, data, test_size, dmoe_params)


def _sweep_runs(design, parameter, values, n, n_experts, n_machines, repeats, n_test, random_state,
                include_global, data, test_size, dmoe_params):
    """The runs of :func:`sweep`, whose arguments are checked."""
    seeds = np.random.SeedSequence(random_state).spawn(repeats)
    for r, seed in enumerate(seeds):
        s_train, s_test, s_fit = seed.spawn(3)
        fit_seed = int(s_fit.generate_state(1)[0])
        test, draw = _sweep_rows(design, data, test_size, n_test, s_train, s_test)
        n_all = data[1].size - test.y.size if data is not None else n
        train, global_rows = None, {}  # this repeat's training rows (one size in memory); (n, K) -> global EM row
        for v in values:
            n_v = int(v) if parameter == "n" else n_all
            M = int(v) if parameter == "n_machines" else n_machines
            if train is None or train.y.size != n_v:
                train = draw(n_v)
            K = int(v) if parameter == "n_experts" else n_experts or train.params.n_experts
            kw = dict(dmoe_params)
            if parameter == "support_fraction":
                kw["support_size"] = max(K, int(float(v) * max(1, n_v // (4 * M))))
            if parameter == "refine_rounds":
                kw["refine_rounds"] = int(v)
            t0 = time.perf_counter()
            dm = DistributedMoE(K, M, random_state=fit_seed, **kw)._fit(train.X, train.y, quiet=True)
            wall = time.perf_counter() - t0
            base = dict({"parameter": parameter, "value": v, "repeat": r},
                        **_run_settings(design, dm, n_v, test.y.size, random_state, fit_seed))
            # Slowest local fit against the reduction: where aggregation costs more than local work.
            row = dict(base, method="reduction", time=dm.timings_["learning_time"], wall=wall,
                       local_max=dm.timings_["local_max"], reduction_time=dm.timings_["reduction"],
                       bic=criterion_values(dm, train.X, train.y)[1])
            row.update(evaluate(dm.params_, test.X, test.y, labels=test.labels, truth=test.params))
            yield row
            if include_global:
                reused = (n_v, K) in global_rows
                if not reused:
                    g = _global_em(K, train.X, train.y, fit_seed, dm.get_params())
                    grow = dict(method="global", time=g.fit_time_, wall=g.fit_time_,
                                bic=criterion_values(g, train.X, train.y)[1])
                    grow.update(evaluate(g.params_, test.X, test.y, labels=test.labels, truth=test.params))
                    global_rows = {(n_v, K): grow}
                yield dict(base, **global_rows[(n_v, K)], global_reused=reused)


def alpha_sweep(design, split, alphas, *, n=20000, n_experts=None, n_machines=8, repeats=2, n_test=20000,
                random_state=0, include_global=True, **dmoe_params):
    """Non-IID machines: the reduction with constant and with covariate machine weights over the
    mixing fraction alpha of a split (0: each machine holds its own part of x; 1: random).

    Parameters
    ----------
    design : str, a named design ; split : {"region", "kmeans", "label", "random"}
    alphas : sequence of floats in [0, 1]
    repeats : independent data sets and seeds per alpha
    dmoe_params : further :class:`~moecore.distributed.DistributedMoE` settings

    Yields
    ------
    dict per (alpha, repeat, method): parameter "alpha", value, repeat, method ("constant weights",
    "covariate weights" or "global"), time, wall, the metrics of :func:`evaluate` and the settings
    of the run (as in :func:`sweep`; a global row carries those of the covariate-weights fit).  The global EM
    does not depend on the split: it is fitted once per repeat and reported at every alpha.
    """
    check_choice(split, "split", SPLITS)
    alphas = [check_float(a, "alpha", low=0.0, high=1.0) for a in _values(alphas, "alphas")]
    for key in ("split", "machine_weights"):
        if key in dmoe_params:
            raise TypeError(f"alpha_sweep sets {key} itself; do not pass it.")
    _check_runs(design, None, n, n_test, n_experts, n_machines, repeats, random_state)
    # The runs in a generator of their own: this function's checks happen when it is called, not at
    # the first next() (a generator function runs none of its body until then).
    return _alpha_runs(design, split, alphas, n, n_experts, n_machines, repeats, n_test, random_state,
                       include_global, dmoe_params)


def _alpha_runs(design, split, alphas, n, n_experts, n_machines, repeats, n_test, random_state, include_global,
                dmoe_params):
    """The runs of :func:`alpha_sweep`, whose arguments are checked."""
    seeds = np.random.SeedSequence(random_state).spawn(repeats)
    for r, seed in enumerate(seeds):
        s_train, s_test, s_fit = seed.spawn(3)
        train = simulate_design(design, n, random_state=s_train)
        test = simulate_design(design, n_test, random_state=s_test)
        K = n_experts or train.params.n_experts
        fit_seed = int(s_fit.generate_state(1)[0])
        global_row = None
        if include_global:
            g = _global_em(K, train.X, train.y, fit_seed, dmoe_params)
            global_row = dict(method="global", time=g.fit_time_, wall=g.fit_time_)
            global_row.update(evaluate(g.params_, test.X, test.y, labels=test.labels, truth=test.params))
        for a in alphas:
            sp = Split(split, alpha=a, labels=train.labels if split == "label" else None)
            base = {"parameter": "alpha", "value": a, "repeat": r, "split": split}
            for weights in ("constant", "covariate"):
                t0 = time.perf_counter()
                dm = DistributedMoE(K, n_machines, random_state=fit_seed, split=sp, machine_weights=weights,
                                    **dmoe_params)._fit(train.X, train.y, quiet=True)
                settings = _run_settings(design, dm, n, n_test, random_state, fit_seed)
                row = dict(base, **settings, method=f"{weights} weights", time=dm.timings_["learning_time"],
                           wall=time.perf_counter() - t0)
                row.update(evaluate(dm.params_, test.X, test.y, labels=test.labels, truth=test.params))
                yield row
            if global_row is not None:
                yield dict(base, **settings, **global_row, global_reused=a != alphas[0])
