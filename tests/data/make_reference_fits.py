"""Fit the reference models whose parameters ``tests/test_reference_fits.py`` compares bitwise.

Run ``python tests/data/make_reference_fits.py`` to (re)write ``reference_fits.npz`` next to this
file (and ``reference_fits.<machine>.npz``, the same numbers, bitwise on that kind of machine).  The
stored numbers come from the code just before the restructuring of ``moecore`` into thin estimators
(main at 3b3e442): the test proves that the restructuring changed no arithmetic.
A deliberate change of the numerics (a new default, a new scoring rule) rewrites the file, and its
commit says why.  Rewritten when EM's iteration moved into compiled kernels (moecore/_em_kernels.py):
every stored array within 3.4e-7 relative of the old one (the gates of crossing-2d and of "off"), every
integer (iterations, flags, bookkeeping) unchanged.  Rewritten when every machine began to send its
local model's log-likelihood on its rows with the model, and the final model's in the check after the
fit (moecore.shard_check.check_fit): only ``one_shot_up`` (+1 per machine) and ``communication_total``
(+2 per checked machine) changed; every other array bitwise as before.  Rewritten when the screening's
exchange began to send the best-scoring model to every machine it passed, to compare with its own on
its rows (moecore.screening.second_look): only ``communication_total`` changed (q down and 1 up per
compared machine), no machine was flagged by the comparison, every other array bitwise as before.
Rewritten when the reduction began to work on the expert means less a centre of the response
(moecore.reduction.ReductionProblem.y_center: its variance update cancelled catastrophically on a
response near 1e9): every stored array within 8.8e-12 of its largest magnitude, every integer (plans,
flags, iterations, bookkeeping) unchanged.

Every estimator parameter is written out, never read from a default, so a changed default cannot
change these fits: the comparison is of the code, not of the defaults.  (``acceleration`` of the
distributed estimator came later: 3b3e442's local fits ran SQUAREM, the value written here.)
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np

from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.simulation import DESIGNS
from moecore.splits import Split

PATH = Path(__file__).with_name("reference_fits.npz")
# Written twice, as the latest rewrite and as this machine's (bitwise there): tests/data/stores.py.
_spec = importlib.util.spec_from_file_location("stores", Path(__file__).with_name("stores.py"))
stores = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stores)

# The distributed estimator's settings, each one written out (the values of 3b3e442's defaults,
# except the backend: sequential gives the same numbers, tested elsewhere, without process start-ups).
DISTRIBUTED = dict(
    support_size=None, n_jobs=1, backend="sequential", random_state=7, init="kmeans", n_init=1,
    max_iter=300, tol=1e-6, var_floor=1e-6, gate_steps=1, acceleration="squarem", mm_n_init=3,
    mm_max_iter=200, mm_tol=1e-8,
    mm_local_starts=1, variance_update="exact", gate_targets="component", local_check="refit",
    refine_rounds=0, on_error="raise", scheduler=None, split="random", machine_weights="auto",
    local_experts="fixed",
)
GLOBAL = dict(init="kmeans", n_init=1, max_iter=300, tol=1e-6, var_floor=1e-6, gate_steps=1,
              acceleration="squarem", random_state=7)

N = {"separated-10d": 4000}  # n per design; others N_DEFAULT
N_DEFAULT = 2400
M = 4

# name: (design, changes to DISTRIBUTED; "machine" names labels given to fit)
VARIANTS = {
    "rounds": ("teaching-1d", dict(refine_rounds=1)),
    "drop": ("separated-2d", dict(local_check="drop")),
    "off": ("crossing-2d", dict(local_check="off")),
    "plan": ("crossing-2d", dict(gate_targets="plan")),
    "posterior": ("teaching-1d", dict(gate_targets="posterior")),
    "coefficients": ("separated-2d", dict(gate_targets="coefficients")),
    "authors": ("overlapping-5d", dict(variance_update="authors")),
    "skip": ("two-experts-1d", dict(on_error="skip", mm_local_starts=0, support_size=300)),
    "region-covariate": ("teaching-1d", dict(split=Split("region", alpha=0.1), machine_weights="covariate")),
    "label-auto": ("separated-2d", dict(split="label", machine_weights="auto")),
    "kmeans-constant": ("crossing-2d", dict(split="kmeans", machine_weights="constant", refine_rounds=2)),
    "bic": ("teaching-1d", dict(split="region", local_experts="bic", machine_weights="covariate")),
    "machine-labels": ("separated-2d", dict(machine="x-halves", machine_weights="auto")),
    # random starts stop in poor optima on separated-2d: the screening flags a machine
    "poor-refit": ("separated-2d", dict(init="random", random_state=1, local_check="refit")),
    "poor-drop": ("separated-2d", dict(init="random", random_state=1, local_check="drop")),
    "poor-off": ("separated-2d", dict(init="random", random_state=2, local_check="off", refine_rounds=1)),
    "random-init": ("two-experts-1d", dict(init="random", n_init=2, mm_n_init=2)),
}


def _data(design):
    return simulate_design(design, N.get(design, N_DEFAULT), random_state=11)


def _params_arrays(prefix, params):
    return {f"{prefix}gates": params.gates, f"{prefix}experts": params.experts,
            f"{prefix}variances": params.variances}


def fit_distributed(design, **changes):
    """{name: array} of one distributed fit: the model, the local models, MM and what was kept."""
    data = _data(design)
    kw = dict(DISTRIBUTED, **changes)
    if kw["split"] == "label":
        kw["split"] = Split("label", alpha=0.0, labels=data.labels)
    # The machine holding each row given to fit, as data partitioned by site would be.
    machine = kw.pop("machine", None)
    if machine == "x-halves":
        machine = (data.X[:, 0] > np.median(data.X[:, 0])).astype(int) + 2 * (np.arange(len(data.y)) % 2)
    K = DESIGNS[design].params.n_experts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spare experts, screening: the numbers are what is compared
        est = DistributedMoE(K, M, **kw).fit(data.X, data.y, machine=machine)
    out = _params_arrays("", est.params_)
    out.update(_params_arrays("one_shot_", est.one_shot_params_))
    for i, model in enumerate(est.local_models_):
        out.update(_params_arrays(f"local{i}_", model.params_))
    out["mm_history"] = np.asarray(est.mm_history_)
    out["coupling"] = np.asarray(est.transport_plan_.coupling)
    out["machines"] = np.asarray(est.machines_)
    out["weights"] = np.asarray(est.weights_)
    out["local_scores"] = np.asarray(est.local_scores_)
    out["flagged"] = np.asarray(est.flagged_, dtype=np.int64)
    out["refine_loglik"] = np.asarray(est.refine_loglik_)
    out["support_indices"] = np.asarray(est.support_indices_)
    out["one_shot_up"] = np.asarray(est.communication_["one_shot_up"])
    out["communication_total"] = np.asarray(est.communication_["total"])
    out["machine_weights_used"] = np.asarray(est.machine_weights_used_ == "covariate")
    return out


def fit_global(design, **changes):
    data = _data(design)
    K = DESIGNS[design].params.n_experts
    est = MixtureOfExperts(K, **dict(GLOBAL, **changes)).fit(data.X, data.y)
    out = _params_arrays("", est.params_)
    out["loglik"] = np.asarray(est.loglik_)
    out["loglik_history"] = np.asarray(est.loglik_history_)
    return out


def cases():
    """{case name: callable returning {name: array}}, every design and every variant."""
    out = {}
    for design in DESIGNS:
        out[f"dmoe:{design}"] = lambda d=design: fit_distributed(d)
        out[f"moe:{design}"] = lambda d=design: fit_global(d)
    out["moe:random-none"] = lambda: fit_global("teaching-1d", init="random", n_init=3, acceleration="none")
    for name, (design, changes) in VARIANTS.items():
        out[f"dmoe:{name}"] = lambda d=design, c=changes: fit_distributed(d, **c)
    return out


def main():
    stored = {}
    for case, fit in cases().items():
        for key, value in fit().items():
            stored[f"{case}/{key}"] = value
        print(case, file=sys.stderr)
    for path in stores.write(PATH, stored):
        print(f"wrote {len(stored)} arrays to {path}")


if __name__ == "__main__":
    main()
