"""The nineteenth audit of the library's bad inputs: each case was a wrong answer, a hang or a raw
traceback on main at 2367ebd, and each test fails there."""

import warnings

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.experiments import alpha_sweep, sweep
from moecore.predictions import apply_model, prediction_frame


@pytest.fixture(scope="module")
def two():
    return simulate_design("two-experts-1d", 2000, random_state=0)


@pytest.fixture(scope="module")
def fitted(two):
    return MixtureOfExperts(2, random_state=0).fit(two.X, two.y).params_


# ------------------------------------------------------------------ a y of tiny or huge spread
@pytest.mark.parametrize("exponent", [-149, -100, 80, 149])
def test_distributed_fit_is_the_same_at_any_accepted_scale_of_y(two, exponent):
    """The debiased variances were computed with v**2 (overflow at a spread of 1e80, 1 / v at 1e-100):
    NumPy warnings and a silent fallback to the plain variance.  The fit of y * s is s^2 times that of y,
    up to rounding, and warns of nothing."""
    s = 10.0 ** exponent
    base = DistributedMoE(2, 4, backend="sequential", random_state=0).fit(two.X, two.y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = DistributedMoE(2, 4, backend="sequential", random_state=0).fit(two.X, two.y * s)
    np.testing.assert_allclose(scaled.variances_ / s**2, base.variances_, rtol=1e-9)


def test_a_y_whose_variances_leave_the_normal_floats_is_refused(two):
    """At a spread of 1e-155 the variances (1e-310) are subnormal floats of few digits: the reduced
    variance came out 8x too large, with a warning blaming the number of experts."""
    for est in (MixtureOfExperts(2), DistributedMoE(2, 4, backend="sequential")):
        with pytest.raises(ValueError, match="Rescale y"):
            est.fit(two.X, two.y * 1e-155)


# ------------------------------------------------------------------ parameters
def test_a_narrow_numpy_integer_is_refused_before_it_wraps_around(two):
    """np.int8(64) experts: K (d + 1) + 1 wrapped to -127, the minimum-rows check passed and the fit
    ran for seconds into 'experts must be finite'."""
    with pytest.raises(TypeError, match=r"n_experts must be a Python int or a 64-bit integer, got int8"):
        MixtureOfExperts(np.int8(64)).fit(two.X[:100], two.y[:100])
    with pytest.raises(TypeError, match="n_machines"):
        DistributedMoE(2, np.int16(4), backend="sequential").fit(two.X, two.y)
    assert MixtureOfExperts(np.int64(2), random_state=0).fit(two.X, two.y).n_experts == 2


@pytest.mark.parametrize("name, value", [("tol", 1.0), ("var_floor", 10.0), ("n_init", 10**18), ("gate_steps", 10**4)])
def test_a_setting_beyond_any_sensible_use_is_refused(two, name, value):
    """tol = 1 stopped EM after two iterations and var_floor = 10 set every variance to 10 var(y), both
    reported as converged without a warning; 10**18 restarts filled the memory; 10**4 gate steps a
    fit took 67 s."""
    with pytest.raises(ValueError, match=rf"{name} must be in [\[(]"):
        MixtureOfExperts(2, **{name: value}).fit(two.X, two.y)


@pytest.mark.parametrize("name, value", [("mm_n_init", 10**18), ("mm_tol", 0.5)])
def test_the_reduction_settings_have_upper_bounds_too(two, name, value):
    with pytest.raises(ValueError, match=rf"{name} must be in [\[(]"):
        DistributedMoE(2, 4, backend="sequential", **{name: value}).fit(two.X, two.y)


# ------------------------------------------------------------------ EM's re-seeding
def test_reseeding_stops_when_the_rows_run_out():
    """K = 5 on 12 rows with most responses tied: starving experts took their rows from a list that ran
    out, np.var([]) made a NaN variance and the fit ended in 'experts must be finite' (8 of 40 seeds)."""
    X, y = np.arange(12.0)[:, None], np.r_[np.zeros(10), 1.0, 2.0]
    for seed in range(40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = MixtureOfExperts(5, init="lines", random_state=seed).fit(X, y)
        assert np.all(np.isfinite(m.variances_)) and np.all(m.variances_ > 0)


# ------------------------------------------------------------------ predictions of a saved model
@pytest.mark.parametrize("column", [pd.date_range("2020", periods=3), [1 + 5j, 2.0, 3.0],
                                    pd.to_timedelta([1, 2, 3], unit="s")])
def test_applying_a_model_refuses_what_fit_refuses(fitted, column):
    """Dates read as nanoseconds (predictions of 3e15) and complex numbers lost their imaginary part."""
    with pytest.raises(TypeError, match="X must be"):
        apply_model(fitted, pd.DataFrame({"x": column}), ["x"])


def test_applying_a_model_checks_its_response_and_table(fitted):
    with pytest.raises(TypeError, match="y is boolean"):
        apply_model(fitted, pd.DataFrame({"x": [1.0, 2.0], "y": [True, False]}), ["x"], "y")
    with pytest.raises(TypeError, match="frame must be a pandas DataFrame"):
        apply_model(fitted, np.zeros((3, 1)), ["x"])
    with pytest.raises(TypeError, match="params must be a MoEParams"):
        prediction_frame({"gates": 1}, np.zeros((3, 1)))
    out = apply_model(fitted, pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 3.0]}), ["x"], "y")
    assert list(out.columns) == ["x", "y", "prediction", "gate_1", "gate_2", "most_likely_expert",
                                 "posterior_expert"]


def test_numpy_timedeltas_are_not_read_as_nanoseconds():
    with pytest.raises(TypeError, match="timedelta64"):
        MixtureOfExperts(2).fit(np.arange(50).astype("m8[ns]")[:, None], np.arange(50.0))


# ------------------------------------------------------------------ sweeps run what they record
KW = dict(n=2000, n_test=300, repeats=1, backend="sequential")


@pytest.mark.parametrize("call, error, match", [
    (lambda: sweep("teaching-1d", "n_machines", [2.7], **KW), TypeError, "n_machines must be an integer"),
    (lambda: sweep("teaching-1d", "n_machines", [True], **KW), TypeError, "n_machines must be an integer"),
    (lambda: sweep("teaching-1d", "n_machines", "24", **KW), TypeError, "values must be a sequence"),
    (lambda: sweep("teaching-1d", "refine_rounds", [1.9], **KW), TypeError, "refine_rounds must be an integer"),
    (lambda: sweep("teaching-1d", "support_fraction", [-5.0], **KW), ValueError, "support_fraction must be in"),
    (lambda: sweep("teaching-1d", "n_machines", [2], n_experts=0, **KW), ValueError, "n_experts must be in"),
    (lambda: sweep("teaching-1d", "n_machines", [2], **dict(KW, repeats=0)), ValueError, "repeats must be in"),
    (lambda: sweep("no-such-design", "n_machines", [2], **KW), ValueError, "design must be one of"),
    (lambda: alpha_sweep("teaching-1d", "region", "1", **KW), TypeError, "alphas must be a sequence"),
    (lambda: alpha_sweep("teaching-1d", "region", [0.5, 0.5], **KW), ValueError, "more than once"),
    (lambda: alpha_sweep("teaching-1d", "region", [0.5], **dict(KW, repeats=-1)), ValueError, "repeats"),
])
def test_a_sweep_refuses_values_it_would_not_run_as_recorded(call, error, match):
    """M = 2.7 ran M = 2 and recorded 2.7; "24" ran M = 2 and M = 4; n_experts = 0 ran the design's K;
    alpha_sweep checked nothing until its first run.  Each is refused when the sweep is made."""
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ where the rows go
def test_machine_labels_and_a_split_are_not_both_taken(two):
    labels = np.arange(two.y.size) % 4
    with pytest.raises(ValueError, match="both place the rows"):
        DistributedMoE(2, 4, backend="sequential", split="region").fit(two.X, two.y, machine=labels)


def test_machine_labels_with_too_few_rows_are_refused_before_any_fit(two):
    labels = np.r_[np.zeros(two.y.size - 4, int), 1, 2, 3, 3]
    with pytest.raises(ValueError, match=r"machine\(s\) \[1, 2, 3\] fewer than 5 rows"):
        DistributedMoE(2, 4, backend="sequential").fit(two.X, two.y, machine=labels)


def test_a_column_varying_below_its_offset_is_not_called_constant(two):
    """x + 1e13 (spread 1, like nanosecond timestamps) was refused as "constant column(s) [0]": the fix is
    to subtract an offset, not to remove the column."""
    with pytest.raises(ValueError, match=r"vary by less than 1e-12 of their size .*subtract an offset"):
        MixtureOfExperts(2).fit(two.X + 1e13, two.y)
    with pytest.raises(ValueError, match="constant column"):
        MixtureOfExperts(2).fit(np.c_[two.X, np.ones(two.y.size)], two.y)


# ------------------------------------------------------------------ the command line says what it ignores
@pytest.mark.parametrize("argv, said", [
    (["choose-k", "--data", "faithful", "--n", "100"], "--n is the size drawn from a --design"),
    (["choose-k", "--design", "teaching-1d", "--response", "y"], "--response is for --data"),
    (["compare", "--design", "teaching-1d", "--test-size", "0.5"], "--test-size is the share of --data's rows"),
])
def test_the_command_line_refuses_a_flag_it_would_ignore(capsys, argv, said):
    from moecore.cli import main

    assert main(argv) == 2
    assert said in capsys.readouterr().err


def test_the_command_line_seed_is_bounded_as_its_split_takes_it(capsys):
    from moecore.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "--data", "faithful", "-K", "2", "-M", "2", "--seed", str(2**32)])
    err = capsys.readouterr().err
    assert "argument --seed: must be in [0, 4294967295]" in err and "train_test_split" not in err


# ------------------------------------------------------------------ a comparison checks what it is given
@pytest.mark.parametrize("kw, error, match", [
    (dict(truth={"gates": 1}), TypeError, "truth must be a MoEParams"),
    (dict(distributed="x"), TypeError, "distributed must be a fitted DistributedMoE"),
    (dict(distributed=DistributedMoE(2, 2)), ValueError, "distributed is not fitted"),
    (dict(global_model=MixtureOfExperts(2)), ValueError, "global_model is not fitted"),
    (dict(labels_test=np.zeros(3, int)), ValueError, "labels_test must hold one integer label per held-out row"),
])
def test_a_comparison_refuses_what_it_cannot_use_before_any_fit(two, kw, error, match):
    """Each of these raised AttributeError or sklearn's own message, the labels only after every fit."""
    from moecore.experiments import compare_methods

    test = simulate_design("two-experts-1d", 300, random_state=1)
    with pytest.raises(error, match=match):
        compare_methods(two.X, two.y, test.X, test.y, 2, 2, backend="sequential", **kw)
    with pytest.raises(ValueError, match=r"the held-out rows \(X_test, y_test\)"):
        compare_methods(two.X, two.y, np.c_[test.X, test.X], test.y, 2, 2, backend="sequential")


def test_rounds_and_the_cost_model_check_their_arguments(fitted, two):
    """em_rounds(rounds=-1) raised IndexError; the cost model predicted negative times and S = -5."""
    from moecore import costmodel
    from moecore.refine import em_rounds

    with pytest.raises(ValueError, match=r"rounds must be in \[0"):
        em_rounds([(two.X, two.y)], fitted, -1)
    with pytest.raises(ValueError, match="shards must be a non-empty list"):
        em_rounds([], fitted, 1)
    with pytest.raises(ValueError, match="features"):
        em_rounds([(np.c_[two.X, two.X], two.y)], fitted, 1)
    model = costmodel.load()
    for name, bad in [("S", -5), ("rounds", -3), ("restarts", 0), ("cores", -4)]:
        with pytest.raises(ValueError, match=name):
            model.predict(10**6, 2, 4, 128, **{name: bad})


def test_the_baselines_check_their_machine_index_and_weights():
    """reference=10 raised IndexError, reference=True and -1 silently used machines 1 and M, two weights of
    1e308 summed to inf (a 'variances must be > 0' error) and a list of dicts raised AttributeError."""
    from moecore.baselines import coordinate_median, single_machine, weighted_average

    dm = DistributedMoE(2, 4, backend="sequential", random_state=0).fit(
        *(lambda s: (s.X, s.y))(simulate_design("two-experts-1d", 4000, random_state=0)))
    local = [m.params_ for m in dm.local_models_]
    for reference, error in [(10, ValueError), (-1, ValueError), (True, TypeError), (1.0, TypeError)]:
        with pytest.raises(error, match="reference must be"):
            weighted_average(local, reference=reference)
        with pytest.raises(error, match="reference must be"):
            coordinate_median(local, reference=reference)
    with pytest.raises(TypeError, match="index must be an integer"):
        single_machine(local, 1.0)
    with pytest.raises(ValueError, match="finite non-negative"):
        weighted_average(local, weights=[np.inf, 1, 1, 1])
    with pytest.raises(TypeError, match="local_params must be MoEParams"):
        weighted_average([p.to_dict() for p in local])
    huge = weighted_average(local, weights=[1e308, 1e308, 1, 1])
    np.testing.assert_allclose(huge.variances, weighted_average(local, weights=[1, 1, 0, 0]).variances)


# ------------------------------------------------------------------ metrics and simulation
def test_metrics_refuse_what_they_would_score_as_nan_or_perfect(fitted, two):
    from moecore import metrics

    with pytest.raises(ValueError, match="y holds 1 NaN"):
        metrics.rpe([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="yhat holds 1 NaN"):
        metrics.rpe([1.0, 2.0], [np.nan, 2.0])
    assert metrics.rpe([1.0, 2.0], [np.inf, 2.0]) == np.inf  # an overflowed prediction is the answer
    with pytest.raises(ValueError, match="two 1-D labellings"):
        metrics.ari([], [])  # scored a perfect 1.0
    with pytest.raises(ValueError, match="features"):
        metrics.parameter_mse(fitted, fitted, X=np.c_[two.X, two.X])  # a raw matmul message
    with pytest.raises(TypeError, match="estimate must be a MoEParams"):
        metrics.parameter_mse({"gates": 1}, fitted)


def test_simulation_refuses_inputs_past_float64_and_sizes_past_the_memory():
    with pytest.raises(ValueError, match=r"x_scale must be in \(0.0, 1e\+100\]"):
        simulate_design("teaching-1d", 10, x_dist="uniform", x_scale=1e308)  # NumPy's OverflowError
    with pytest.raises(MemoryError, match="simulating n = 10,000,000,000,000 rows"):
        simulate_design("teaching-1d", 10**13)  # NumPy's raw _ArrayMemoryError


def test_small_helpers_name_what_they_need():
    from moecore.collinear import collinear_columns
    from moecore.shard_check import check_shards
    from moecore.splits import shard_sizes

    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        shard_sizes(10, 3, concentration=1.0)  # AttributeError: 'NoneType' object has no attribute 'dirichlet'
    with pytest.raises(ValueError, match="X must be 2-D"):
        collinear_columns(np.arange(5.0))  # IndexError
    # support_size None is the estimators' default (the paper's rule): int(None) raised TypeError.
    assert check_shards(20000, 2, 4, 8, None) == check_shards(20000, 2, 4, 8, 625)


def test_machine_notices_mm_stops_and_metric_shapes_have_their_own_words():
    # The audit of 2026-12-06: a skipped machine warned as a bare RuntimeWarning (past a filter on moecore's
    # categories), an MM cut short by mm_max_iter said nothing, and rpe raveled a two-column y.
    from moecore import ConvergenceWarning, MachineWarning
    from moecore.metrics import rpe

    d = simulate_design("teaching-1d", 8000, random_state=0)
    y_bad = d.y.copy()
    y_bad[np.arange(8000) % 4 == 1] = 2.0  # machine 1's rows: a constant response, which its local fit refuses
    with pytest.warns(MachineWarning, match=r"skipped 1 failed machine\(s\) \[1\]"):
        DistributedMoE(3, 4, backend="sequential", random_state=0, on_error="skip").fit(
            d.X, y_bad, machine=np.arange(8000) % 4)
    assert issubclass(MachineWarning, RuntimeWarning)  # what it was, for filters written before
    with pytest.warns(ConvergenceWarning, match=r"MM reduction stopped at mm_max_iter=1"):
        DistributedMoE(3, 4, backend="sequential", random_state=0, mm_max_iter=1).fit(d.X, d.y)
    with pytest.raises(ValueError, match=r"y must be one column of values, shape \(n,\) or \(n, 1\), got shape"):
        rpe(np.c_[d.y, d.y], np.r_[d.y, d.y])
    assert rpe(d.y[:, None], d.y) == 0.0


def test_applying_a_model_keeps_the_table_s_other_columns_and_reads_empty_responses_as_unknown(fitted):
    # New inputs come as a template: an id to join back by, a response column left empty or filled in part.
    # The audit of 2026-12-06: the id was dropped, an empty response refused ("y contains 3 NaN"), and an
    # empty input cell named neither its column nor its row.
    table = pd.DataFrame({"id": [7, 8, 9], "x": [0.5, -0.5, 1.0], "y": [np.nan, 0.4, np.nan],
                          "prediction": ["a", "b", "c"]})
    out = apply_model(fitted, table, ["x"], "y")
    assert list(out.columns) == ["id", "prediction_input", "x", "y", "prediction", "gate_1", "gate_2",
                                 "most_likely_expert", "posterior_expert"]
    assert out["id"].tolist() == [7, 8, 9] and out["prediction_input"].tolist() == ["a", "b", "c"]
    whole = apply_model(fitted, table.iloc[[1]], ["x"], "y")
    assert out["posterior_expert"].isna().tolist() == [True, False, True]
    assert out["posterior_expert"][1] == whole["posterior_expert"].iloc[0]
    np.testing.assert_allclose(out["prediction"][1], whole["prediction"].iloc[0])
    blank = apply_model(fitted, table.assign(y=np.nan), ["x"], "y")
    assert "posterior_expert" not in blank and len(blank) == 3
    with pytest.raises(ValueError, match=r"input column 'x' is empty in 1 row\(s\), the first in data row 2"):
        apply_model(fitted, table.assign(x=[1.0, np.nan, 2.0]), ["x"], "y")
