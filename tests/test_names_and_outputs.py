"""What a researcher calling moecore from their own code trips on: column names that a criterion, a saved
model or the predictions table ignored, outputs that overwrote the user's columns, a repeated feature, a
fit that kept the last fit's attributes, and public helpers whose refusals were tracebacks."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.model import MoEParams
from moecore.predictions import apply_model, prediction_frame
from moecore.reduction import reduce_mixtures
from moecore.selection import choose_k
from moecore.shard_check import check_shards
from moecore.shards import ShardError


@pytest.fixture(scope="module")
def sim():
    return simulate_design("separated-2d", 3000, random_state=0)


@pytest.fixture(scope="module")
def frame(sim):
    return pd.DataFrame(sim.X, columns=["a", "b"])


@pytest.fixture(scope="module")
def model(sim, frame):
    return MixtureOfExperts(4, random_state=0).fit(frame, sim.y)


def test_criteria_refuse_columns_out_of_order(sim, frame, model):
    """bic/aic read X as predict does: (b, a) where the model learnt (a, b) gave BIC 69 363 for 5 904."""
    n, q = len(sim.y), model.n_parameters()
    ll = model.score_samples(frame, sim.y).sum()
    assert model.bic(frame, sim.y) == pytest.approx(-2 * ll + q * np.log(n), rel=1e-12)
    assert model.aic(frame, sim.y) == pytest.approx(-2 * ll + 2 * q, rel=1e-12)
    for criterion in (model.bic, model.aic):
        with pytest.raises(ValueError, match="same order"):
            criterion(frame[["b", "a"]], sim.y)
    dm = DistributedMoE(4, 4, random_state=0, backend="sequential").fit(frame, sim.y)  # it has them too
    assert dm.bic(frame, sim.y) == pytest.approx(-2 * dm.score_samples(frame, sim.y).sum() + q * np.log(n), rel=1e-12)


def test_a_saved_model_checks_column_order_when_given_its_names(sim, frame, model):
    saved = MoEParams.from_dict(json.loads(json.dumps(model.params_.to_dict())))
    restored = MixtureOfExperts.from_params(saved, feature_names=model.feature_names_in_)
    np.testing.assert_array_equal(restored.predict(frame), model.predict(frame))
    with pytest.raises(ValueError, match="same order"):
        restored.predict(frame[["b", "a"]])
    for bad, match in ((["a"], "2 column name"), (["a", "a"], "distinct"), ([1, 2], "2 column name")):
        with pytest.raises(ValueError, match=match):
            MixtureOfExperts.from_params(saved, feature_names=bad)


def test_the_predictions_table_takes_a_tables_columns_by_name(sim, frame, model):
    right = model.predict(frame)
    out = prediction_frame(model.params_, frame[["b", "a"]], x_names=["a", "b"], y=sim.y)
    np.testing.assert_array_equal(out["prediction"], right)
    assert list(out.columns[:3]) == ["a", "b", "y"]
    # Without x_names a table's own names label the inputs (not x1, x2), in its order.
    assert list(prediction_frame(model.params_, frame).columns[:2]) == ["a", "b"]
    with pytest.raises(ValueError, match=r"lacks the input column\(s\) \['c'\]"):
        prediction_frame(model.params_, frame, x_names=["a", "c"])


def test_outputs_never_overwrite_the_users_columns(sim, frame, model):
    out = prediction_frame(model.params_, sim.X, y=sim.y, y_name="prediction", x_names=["most_likely_expert", "x2"])
    np.testing.assert_array_equal(out["prediction"], sim.y)  # the response, kept
    np.testing.assert_array_equal(out["most_likely_expert"], sim.X[:, 0])  # the input, kept
    np.testing.assert_array_equal(out["prediction_model"], model.predict(frame))
    assert out["most_likely_expert_model"].between(1, 4).all() and "posterior_expert" in out


@pytest.mark.parametrize("call, error, match", [
    (lambda p, f, y: apply_model(p, f, ["a", "a"]), ValueError, r"names \['a'\] more than once"),
    (lambda p, f, y: prediction_frame(p, f.to_numpy(), y=y[:10]), ValueError, "X and y must have the same number"),
    (lambda p, f, y: prediction_frame(p, f.to_numpy(), x_names=["a"]), ValueError, "1 name"),
    (lambda p, f, y: prediction_frame(p, f, y=y, y_name="a"), ValueError, "also an input column"),
    (lambda p, f, y: apply_model(p, f, 3), TypeError, "x_names must be a list"),
])
def test_bad_table_arguments_are_named(sim, frame, model, call, error, match):
    with pytest.raises(error, match=match):
        call(model.params_, frame, sim.y)


def test_a_bare_name_is_one_column_everywhere(sim):
    one = MixtureOfExperts(2, random_state=0).fit(sim.X[:, :1], sim.y)
    table = pd.DataFrame({"ab": sim.X[:, 0], "a": 0.0, "b": 0.0})
    np.testing.assert_array_equal(apply_model(one.params_, table, "ab")["prediction"], one.predict(sim.X[:, :1]))


def test_a_repeated_feature_is_named(sim, tmp_path):
    paths = []
    for m in range(2):
        paths.append(tmp_path / f"m{m}.csv")
        pd.DataFrame({"x1": sim.X[m::2, 0], "x2": sim.X[m::2, 1], "y": sim.y[m::2]}).to_csv(paths[-1], index=False)
    with pytest.raises(ShardError, match=r"features lists \['x1'\] more than once"):
        DistributedMoE(4, 2, random_state=0, backend="sequential").fit_shards([str(p) for p in paths],
                                                                               features=["x1", "x1", "x2"])


def test_a_fit_keeps_nothing_of_the_last_fit_shards(sim, tmp_path):
    paths = []
    for m in range(2):
        paths.append(tmp_path / f"m{m}.csv")
        pd.DataFrame({"x1": sim.X[m::2, 0], "x2": sim.X[m::2, 1], "y": sim.y[m::2]}).to_csv(paths[-1], index=False)
    est = DistributedMoE(4, 2, random_state=0, backend="sequential").fit_shards([str(p) for p in paths])
    assert est.shard_sizes_.tolist() == [1500, 1500]
    est.fit(sim.X[:2000], sim.y[:2000])
    assert not any(hasattr(est, a) for a in ("shard_paths_", "shard_sizes_", "support_shares_", "feature_names_in_"))
    assert [len(s) for s in est.shards_] == [1000, 1000]


@pytest.mark.parametrize("est", [MixtureOfExperts(4, random_state=0), DistributedMoE(4, 2, random_state=0)],
                         ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("columns, error", [(["a", "a"], ValueError), (["a", 1], TypeError)])
def test_column_names_a_fit_refuses_are_refused_before_its_work(sim, est, columns, error):
    stages = []
    kwargs = {"progress": lambda *a: stages.append(a)} if isinstance(est, DistributedMoE) else {}
    with pytest.raises(error):
        est.fit(pd.DataFrame(sim.X, columns=columns), sim.y, **kwargs)
    assert stages == [] and not hasattr(est, "params_")


def test_reduce_mixtures_names_what_is_wrong(sim, model):
    S = sim.X[:200]
    with pytest.raises(TypeError, match=r"local_params\[0\] must be a MoEParams, got int"):
        reduce_mixtures([1, 2], [1, 1], S, 4)
    with pytest.raises(ValueError, match=r"local_scores must hold one score per local model \(2\)"):
        reduce_mixtures([model.params_] * 2, [1, 1], S, 4, local_scores=[1.0])
    with pytest.raises(ValueError, match=r"n_experts=9 is more than the 8 local expert\(s\)"):
        reduce_mixtures([model.params_] * 2, [1, 1], S, 9)


def test_machines_that_chose_fewer_experts_than_k_are_explained():
    """local_experts="bic" on one line: each machine keeps one expert, and two machines cannot make three
    (before: k-means' "n_clusters must be between 1 and the 2 points")."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 1))
    y = 2 * X[:, 0] + 0.1 * rng.normal(size=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"n_experts=3 is more than the 2 local expert\(s\).*\[1, 1\]"):
            DistributedMoE(3, 2, random_state=0, local_experts="bic", backend="sequential").fit(X, y)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(ks=3), TypeError, "ks must be an iterable"),
    (dict(ks=(1, 10**6)), ValueError, "ks holds 1000000"),
    (dict(n_machines=2, distributed_params={"n_experts": 5}), TypeError, r"distributed_params has \['n_experts'\]"),
    (dict(n_machines=2, distributed_params={"random_state": 5}), TypeError, "random_state"),
    (dict(n_machines=2, distributed_params={"foo": 5}), TypeError, r"\['foo'\]"),
    (dict(n_machines=2, distributed_params=[1]), TypeError, "must be a dict"),
])
def test_choose_k_refuses_before_any_fit(sim, kwargs, error, match):
    with pytest.raises(error, match=match):
        choose_k(sim.X[:500], sim.y[:500], random_state=0, **kwargs)


def test_short_messages_for_objects_and_missing_fields(sim):
    warm = MoEParams(np.zeros((3, 2)), np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"got a MoEParams: .*warm start is MixtureOfExperts' alone"):
        DistributedMoE(2, 2, init=warm).fit(sim.X, sim.y)
    with pytest.raises(ValueError, match="gates must be an array"):
        MoEParams.from_dict({"gates": None, "experts": [[1.0], [2.0]], "variances": [1.0]})


def test_small_shard_advice_is_never_the_setting_in_use():
    one = check_shards(20, 1, 3, 1, 20)
    assert "even one machine holding all 20 rows" in one.message and "at most 1 machine" not in one.message
    files = check_shards(1000, 1, 3, 4, 100, smallest_shard=13)  # 1 000 rows would fill 9 machines
    assert "give the smallest shard more rows" in files.message


def test_the_command_line_prints_warnings_as_messages(tmp_path):
    """Not ``<frozen runpy>:88: SmallShardWarning`` with a source line."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    pd.DataFrame({"y": 2 * x + rng.normal(size=60), "x": x}).to_csv(tmp_path / "small.csv", index=False)
    run = subprocess.run([sys.executable, "-m", "moecore", "compare", "--data", str(tmp_path / "small.csv"), "-K", "3",
                          "-M", "4", "--n-jobs", "1", "--backend", "sequential"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "warning (SmallShardWarning): Each machine holds 12 rows" in run.stderr
    assert "runpy" not in run.stderr and "warnings.warn(" not in run.stderr
