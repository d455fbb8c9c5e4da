"""Issue 5, library side: every bad input gets a ValueError/TypeError naming what to change.

Each case is one parametrised test id; ``pytest tests/test_bad_inputs.py -q`` counts them.
"""


import numpy as np
import pytest

from moecore import DistributedMoE, MixtureOfExperts, MoEParams, NotFittedError
from moecore.baselines import single_machine, weighted_average
from moecore.metrics import clustering_error, gate_proba_mse, parameter_mse, rpe
from moecore.reduction import reduce_mixtures
from moecore.simulation import simulate, simulate_design

DATA = simulate_design("two-experts-1d", 400, random_state=0)
X, Y = DATA.X, DATA.y
P = DATA.params


def with_nan(a):
    a = np.array(a, dtype=float)
    a.flat[3] = np.nan
    return a


def with_inf(a):
    a = np.array(a, dtype=float)
    a.flat[5] = np.inf
    return a


MOE_CASES = [
    # (id, estimator kwargs, X, y, exception, message fragment)
    ("X-nan", {}, with_nan(X), Y, ValueError, "X contains 1 NaN"),
    ("X-inf", {}, with_inf(X), Y, ValueError, "infinite"),
    ("y-nan", {}, X, with_nan(Y), ValueError, "y contains 1 NaN"),
    ("X-strings", {}, np.array([["a"]] * 400), Y, TypeError, "X must be a numeric"),
    ("X-object-mixed", {}, np.array([[1.0], ["b"]] * 200, dtype=object), Y, TypeError, "non-numeric"),
    ("X-3d", {}, X.reshape(400, 1, 1), Y, ValueError, "2-D"),
    ("X-no-columns", {}, np.empty((400, 0)), Y, ValueError, "at least one feature"),
    ("y-2d", {}, X, np.column_stack([Y, Y]), ValueError, "y must be 1-D"),
    ("length-mismatch", {}, X, Y[:-1], ValueError, "same number of samples"),
    ("X-complex", {}, X.astype(complex), Y, TypeError, "real-valued"),
    ("y-bool", {}, X, Y > 0, TypeError, "y is boolean"),
    ("X-string-scalar", {}, "data.csv", Y, TypeError, "numeric array"),
    ("constant-column", {}, np.column_stack([X, np.ones(400)]), Y, ValueError, "constant column"),
    ("constant-y", {}, X, np.ones(400), ValueError, "y is constant"),
    ("too-few-samples", {"n_experts": 3}, X[:6], Y[:6], ValueError, r"at least n_experts \* \(d \+ 1\) \+ 1 = 7"),
    ("K-zero", {"n_experts": 0}, X, Y, ValueError, "n_experts must be in"),
    ("K-float", {"n_experts": 2.5}, X, Y, TypeError, "n_experts must be an integer"),
    ("K-bool", {"n_experts": True}, X, Y, TypeError, "n_experts must be an integer"),
    ("init-unknown", {"init": "spectral"}, X, Y, ValueError, "init must be one of"),
    ("n_init-zero", {"n_init": 0}, X, Y, ValueError, "n_init"),
    ("max_iter-negative", {"max_iter": -1}, X, Y, ValueError, "max_iter"),
    ("tol-negative", {"tol": -1.0}, X, Y, ValueError, "tol"),
    ("tol-nan", {"tol": float("nan")}, X, Y, ValueError, "tol must be finite"),
    ("var_floor-zero", {"var_floor": 0.0}, X, Y, ValueError, "var_floor"),
    ("random_state-negative", {"random_state": -3}, X, Y, ValueError, "random_state"),
    ("random_state-RandomState", {"random_state": np.random.RandomState(0)}, X, Y, TypeError, "random_state"),
]


@pytest.mark.parametrize("case", MOE_CASES, ids=[c[0] for c in MOE_CASES])
def test_mixture_of_experts_rejects(case):
    _, kw, Xb, yb, exc, msg = case
    params = {"n_experts": 2}
    params.update(kw)
    with pytest.raises(exc, match=msg):
        MixtureOfExperts(**params).fit(Xb, yb)


BIG = simulate_design("two-experts-1d", 2000, random_state=1)

DMOE_CASES = [
    ("M-zero", {"n_machines": 0}, ValueError, "n_machines must be in"),
    ("M-too-large", {"n_machines": 500}, ValueError, "n_machines=500 is too large for n=2000"),
    ("K-too-large-for-shard", {"n_experts": 300, "n_machines": 4}, ValueError,
     "each shard needs at least .* = 601 samples"),
    ("support-too-small", {"support_size": 1}, ValueError, "support_size must be in"),
    ("support-too-large", {"support_size": 5000}, ValueError, r"support_size must be in \[2, 2000\]"),
    ("support-float", {"support_size": 10.5}, TypeError, "support_size must be an integer"),
    ("backend-unknown", {"backend": "spark"}, ValueError, "backend must be one of"),
    ("n_jobs-zero", {"n_jobs": 0}, ValueError, "n_jobs"),
    ("on_error-unknown", {"on_error": "ignore"}, ValueError, "on_error"),
    ("variance_update-unknown", {"variance_update": "mean"}, ValueError, "variance_update"),
    ("gate_targets-unknown", {"gate_targets": "hard"}, ValueError, "gate_targets"),
    ("mm_n_init-zero", {"mm_n_init": 0}, ValueError, "mm_n_init"),
    ("mm_tol-negative", {"mm_tol": -1e-3}, ValueError, "mm_tol"),
    ("local-max_iter-zero", {"max_iter": 0}, ValueError, "max_iter"),
    ("dask-without-client", {"backend": "dask"}, ValueError, "dask"),
]


@pytest.mark.parametrize("case", DMOE_CASES, ids=[c[0] for c in DMOE_CASES])
def test_distributed_rejects(case):
    _, kw, exc, msg = case
    params = {"n_experts": 2, "n_machines": 4, "random_state": 0, "n_jobs": 1}
    params.update(kw)
    with pytest.raises(exc, match=msg):
        DistributedMoE(**params).fit(BIG.X, BIG.y)


MACHINE_CASES = [
    ("machine-wrong-length", np.zeros(10, dtype=int), ValueError, "one machine index per row"),
    ("machine-float", np.zeros(2000), TypeError, "integers"),
    ("machine-out-of-range", np.full(2000, 7), ValueError, r"\[0, 3\]"),
    ("machine-empty", np.repeat([0, 1, 2], [700, 700, 600]), ValueError, r"machine\(s\) \[3\] hold no rows"),
]


@pytest.mark.parametrize("case", MACHINE_CASES, ids=[c[0] for c in MACHINE_CASES])
def test_machine_partition_rejects(case):
    _, machine, exc, msg = case
    with pytest.raises(exc, match=msg):
        DistributedMoE(2, 4, n_jobs=1).fit(BIG.X, BIG.y, machine=machine)


def fitted():
    return MixtureOfExperts(2, random_state=0).fit(X, Y)


MISC_CASES = [
    ("predict-before-fit", lambda: MixtureOfExperts(2).predict(X), NotFittedError, "not fitted"),
    ("dmoe-predict-before-fit", lambda: DistributedMoE(2, 2).predict(X), NotFittedError, "not fitted"),
    ("predict-wrong-width", lambda: fitted().predict(np.ones((5, 3))), ValueError, "fitted with 1"),
    ("score-nan", lambda: fitted().score(with_nan(X), Y), ValueError, "NaN"),
    ("params-negative-variance", lambda: MoEParams(P.gates, P.experts, [-1.0, 1.0]), ValueError, "variances"),
    ("params-shape", lambda: MoEParams(P.gates, P.experts[:, :1], P.variances), ValueError, "must agree"),
    ("params-nan", lambda: MoEParams(P.gates, with_nan(P.experts), P.variances), ValueError, "finite"),
    ("params-no-input-row", lambda: MoEParams([[0.0, 0.0]], [[1.0, 2.0]], [1.0, 1.0]), ValueError, "input row"),
    ("params-json-missing", lambda: MoEParams.from_dict({"gates": []}), ValueError, "lack"),
    ("params-json-not-dict", lambda: MoEParams.from_dict([1, 2]), TypeError, "mapping"),
    ("simulate-n-zero", lambda: simulate(P, 0), ValueError, "n must be in"),
    ("simulate-x_dist", lambda: simulate(P, 10, x_dist="cauchy"), ValueError, "x_dist"),
    ("simulate-x_scale", lambda: simulate(P, 10, x_scale=0.0), ValueError, "x_scale"),
    ("design-unknown", lambda: simulate_design("nope", 10), ValueError, "design must be one of"),
    ("reduce-empty", lambda: reduce_mixtures([], [], X, 2), ValueError, "at least one local model"),
    ("reduce-support-too-small", lambda: reduce_mixtures([P], [1.0], X[:1], 2), ValueError, "supporting sample"),
    ("reduce-weights", lambda: reduce_mixtures([P, P], [1.0, -1.0], X, 2), ValueError, "weights"),
    ("reduce-support-width", lambda: reduce_mixtures([P], [1.0], np.ones((5, 3)), 2), ValueError, "fitted with 1"),
    ("reduce-debiased-without-net", lambda: reduce_mixtures([P], [1.0], X, 2, variance_update="debiased"), ValueError,
     "needs net_variances"),
    ("reduce-net-length", lambda: reduce_mixtures([P], [1.0], X, 2, variance_update="debiased",
                                                  net_variances=[[1.0]]), ValueError, "one array per local model"),
    ("reduce-net-negative", lambda: reduce_mixtures([P], [1.0], X, 2, variance_update="debiased",
                                                    net_variances=[-P.variances]), ValueError, "non-negative"),
    ("rpe-length", lambda: rpe([1.0, 2.0], [1.0]), ValueError, "same length"),
    ("rpe-zero-y", lambda: rpe([0.0, 0.0], [1.0, 1.0]), ValueError, "every y is 0"),
    ("mse-mismatch", lambda: parameter_mse(P, simulate_design("teaching-1d", 5).params), ValueError, "same K"),
    ("gate-mse-mismatch", lambda: gate_proba_mse(P, simulate_design("teaching-1d", 5).params, X), ValueError, "same K"),
    ("clustering-length", lambda: clustering_error([0, 1], [0]), ValueError, "same length"),
    ("average-weights", lambda: weighted_average([P, P], [1.0]), ValueError, "weights"),
    ("single-index", lambda: single_machine([P], 3), ValueError, "index"),
]


@pytest.mark.parametrize("case", MISC_CASES, ids=[c[0] for c in MISC_CASES])
def test_other_entry_points_reject(case):
    _, call, exc, msg = case
    with pytest.raises(exc, match=msg):
        call()


def test_count_of_bad_inputs_covered():
    total = len(MOE_CASES) + len(DMOE_CASES) + len(MACHINE_CASES) + len(MISC_CASES)
    print(f"\nbad inputs covered: {total}")
    assert total >= 60
