"""The check after the fit (moecore.shard_check.check_fit): a reduced model clearly worse than the local
models it was made from is reported, in the library (AccuracyWarning) and on the Fit page, where the size
rule before the run accepted the configuration."""

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

import numpy as np
import pytest
from app_helpers import load_real

from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.baselines import fit_global
from moecore.datasets import load_dataset
from moecore.metrics import rpe
from moecore.model import predict_mean
from moecore.params import n_free_parameters
from moecore.shard_check import (
    FIT_CHECK_RATIO,
    GLOBAL_RPE_RATIO,
    LOGLIK_CHECK_FACTOR,
    MIN_EXPERT_ROWS_PER_PARAMETER,
    MIN_EXPERT_ROWS_PER_PARAMETER_ROUNDS,
    AccuracyWarning,
    SmallShardWarning,
    check_expert_rows,
    check_fit,
    machine_errors,
)
from moecore.splits import Split

ROOT = Path(__file__).resolve().parents[1]


def test_machine_errors_are_the_squared_errors_and_rpe_denominator():
    teaching = simulate_design("teaching-1d", 300, random_state=3)
    X, y = teaching.X, teaching.y
    sse, yy, ll = machine_errors(X, y, teaching.params)
    np.testing.assert_allclose(sse, np.sum((y - predict_mean(X, teaching.params)) ** 2), rtol=1e-12)
    np.testing.assert_allclose(sse / yy, rpe(y, predict_mean(X, teaching.params)), rtol=1e-12)
    np.testing.assert_allclose(ll, MixtureOfExperts.from_params(teaching.params).score(X, y) * len(y), rtol=1e-12)


def test_check_fit_pools_the_machines_and_says_what_to_change():
    # Two machines: local squared errors 1 + 3, the final model's 2.5 + 2.5, sum of y^2 10 + 30.
    c = check_fit([1.0, 3.0], [[2.5, 10.0], [2.5, 30.0]])
    assert (c.train_rpe, c.local_rpe, c.ratio, c.ok) == (5 / 40, 4 / 40, 1.25, False)
    assert "12.5 %" in c.message and "1.25x" in c.message and "refine_rounds = 1 or 3" in c.message
    assert "more refinement rounds (refine_rounds > 2)" in check_fit([1.0], [[2.0, 10.0]], refine_rounds=2).message
    assert check_fit([1.0], [[FIT_CHECK_RATIO, 10.0]]).ok  # at the bound: accepted
    assert check_fit([0.0], [[0.0, 10.0]]).ok  # a perfect fit everywhere


def test_check_fit_compares_log_likelihoods_per_row():
    # Two machines of 100 rows, q = 5: the allowance is LOGLIK_CHECK_FACTOR q / n_m nats per row (0.075).
    errors = [[1.0, 10.0, -120.0], [1.0, 10.0, -130.0]]
    half = LOGLIK_CHECK_FACTOR * 5 / 100 * 200 / 2  # each machine's share of a gap at the allowance
    c = check_fit([1.0, 1.0], errors, local_loglik=[-120.0 + half, -130.0 + half], sizes=[100, 100], n_params=5)
    assert c.ratio == 1.0 and c.loglik_gap == c.loglik_allowed == LOGLIK_CHECK_FACTOR * 5 / 100
    assert c.ok  # at the bound: accepted
    c = check_fit([1.0, 1.0], errors, local_loglik=[-100.0, -120.0], sizes=[100, 100], n_params=5)
    assert not c.ok and c.loglik_gap == 0.15
    assert c.message.startswith("The reduced model's log-likelihood on the machines' rows is 0.15 nats per row")
    assert "refine_rounds = 1 or 3" in c.message and "RPE" not in c.message
    both = check_fit([1.0, 1.0], [[2.0, 10.0, -120.0], [2.0, 10.0, -130.0]], local_loglik=[-100.0, -120.0],
                     sizes=[100, 100], n_params=5)
    assert "training RPE" in both.message and ", and its log-likelihood" in both.message


def test_a_lost_expert_that_rpe_cannot_see_is_reported():
    # separated-2d has four experts; fitted with K = 2 on two machines, the reduced model predicts as well
    # as the local models (RPE within 1.1x) but its log-likelihood on the rows is 0.08 nats per row below
    # theirs, and 0.11 below the global EM's: it lost what the machines' gates and variances had.
    sim = simulate_design("separated-2d", 1200, random_state=7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = DistributedMoE(2, 2, backend="sequential", random_state=0).fit(sim.X, sim.y)
    check = dm.fit_check_
    assert AccuracyWarning in [w.category for w in caught]
    assert check.ratio <= FIT_CHECK_RATIO and check.loglik_gap > check.loglik_allowed
    q = n_free_parameters(2, 2)
    np.testing.assert_allclose(check.loglik_allowed, LOGLIK_CHECK_FACTOR * q / 600, rtol=1e-12)
    local = sum(mdl.score(sim.X[dm.shards_[m]], sim.y[dm.shards_[m]]) * len(dm.shards_[m])
                for m, mdl in zip(dm.machines_, dm.local_models_, strict=True))
    np.testing.assert_allclose(check.loglik_gap, (local - dm.score(sim.X, sim.y) * 1200) / 1200, rtol=1e-9)
    # The truth of the warning: the global EM fits those rows better by more than q / n_m per row.
    g = fit_global(sim.X, sim.y, 2, random_state=0)
    assert g.score(sim.X, sim.y) - dm.score(sim.X, sim.y) > q / 600


def test_seven_regimes_whose_reduced_gates_miss_are_reported():
    # Seven regimes along one input, two alternating lines (K = 7, n = 20 000 over 16 machines, 1 250 rows each,
    # 39 per parameter: no size warning). The reduced gate probabilities came out 836x the global EM's MSE to the
    # truth and 0.039 nats per held-out row short, without a word: the check's gap, 1.97 q / n_m, was under the
    # allowance of 2 q / n_m it had until the audit of 2026-12-06.
    from moecore import MoEParams
    from moecore.metrics import gate_proba_mse, heldout_loglik
    from moecore.simulation import simulate

    K = 7
    c = np.linspace(-3, 3, K)
    gates = np.array([-2 * c * c, 4 * c])
    sgn = (-1.0) ** np.arange(K)
    truth = MoEParams(gates - gates[:, -1:], np.array([sgn, 0.8 * sgn]), np.full(K, 0.1))
    train = simulate(truth, 20_000, x_dist="uniform", x_scale=3.5, random_state=0)
    test = simulate(truth, 20_000, x_dist="uniform", x_scale=3.5, random_state=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = DistributedMoE(K, 16, n_jobs=2, random_state=0).fit(train.X, train.y)
        g = MixtureOfExperts(K, random_state=0).fit(train.X, train.y)
    q_over_n = n_free_parameters(K, 1) / 1250
    assert dm.fit_check_.loglik_gap > LOGLIK_CHECK_FACTOR * q_over_n and not dm.fit_check_.ok
    assert [w for w in caught if w.category is AccuracyWarning and "log-likelihood on the machines' rows" in
            str(w.message)]
    # The warning is the truth: the reduced model is worse than the global EM, by gates and by likelihood.
    assert gate_proba_mse(dm.params_, truth, test.X) > 10 * gate_proba_mse(g.params_, truth, test.X)
    assert heldout_loglik(g.params_, test.X, test.y) - heldout_loglik(dm.params_, test.X, test.y) > q_over_n


def test_a_reduction_the_size_rule_accepts_but_that_misses_is_reported():
    # mcycle, K = 2, M = 2: 66 rows per machine for 8 parameters (8.25, above the rule's 8) and the
    # paper's S = 16 (2 per reduced parameter): accepted before the run, yet the reduced model's training
    # RPE comes out 1.25x the global EM's (benchmarks/README.md, section 20).
    ds = load_dataset("mcycle")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = DistributedMoE(2, 2, backend="sequential", random_state=0).fit(ds.X, ds.y)
    kinds = [w.category for w in caught]
    assert SmallShardWarning not in kinds and AccuracyWarning in kinds
    g = fit_global(ds.X, ds.y, 2, random_state=0)
    assert rpe(ds.y, dm.predict(ds.X)) > GLOBAL_RPE_RATIO * rpe(ds.y, g.predict(ds.X))
    check = dm.fit_check_
    assert not check.ok and check.ratio > FIT_CHECK_RATIO
    np.testing.assert_allclose(check.train_rpe, rpe(ds.y, dm.predict(ds.X)), rtol=1e-12)
    # The yardstick: the local models on their own rows, in sample.
    local = sum(np.sum((ds.y[dm.shards_[m]] - mdl.predict(ds.X[dm.shards_[m]])) ** 2)
                for m, mdl in zip(dm.machines_, dm.local_models_, strict=True))
    np.testing.assert_allclose(check.local_rpe, local / (ds.y @ ds.y), rtol=1e-12)


def test_a_good_fit_passes_and_the_check_is_counted_apart_from_the_learning_time():
    sim = simulate_design("teaching-1d", 8000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)
        dm = DistributedMoE(3, 4, backend="sequential", random_state=0).fit(sim.X, sim.y)
    # 2 000 rows per machine for 11 parameters: the reduced model is as good as the local models.
    assert dm.fit_check_.ok and abs(dm.fit_check_.ratio - 1) < 0.05
    q = n_free_parameters(3, 1)
    c = dm.communication_
    np.testing.assert_array_equal(c["check_down"], q)
    np.testing.assert_array_equal(c["check_up"], 3)
    assert dm.timings_["check"] > 0
    assert "check" not in " ".join(dm.costs_.learning_time_parts())


def test_machines_split_by_x_are_checked_and_label_splits_are_not():
    """Covariate weights: a region split's local models are yardsticks on their own rows (80 of 85 losses
    above 0.1 nats per point flagged, 3 of 123 good fits, docs/method.md section 3b); the check was off there,
    and a region split with the "coefficients" gate lost 2.7 nats per point without a word (a fuzzing audit).
    A label split hands each machine one expert's rows, which every mixture fits worse: still no check."""
    sim = simulate_design("teaching-1d", 4000, random_state=0)
    test = simulate_design("teaching-1d", 4000, random_state=99991)
    good = DistributedMoE(3, 4, backend="sequential", random_state=0, split="region").fit(sim.X, sim.y)
    assert good.machine_weights_used_ == "covariate" and good.fit_check_.ok and good.expert_rows_ is None
    np.testing.assert_array_equal(good.communication_["check_up"], 3)
    a = simulate_design("teaching-1d", 1200, random_state=0)
    with pytest.warns(AccuracyWarning, match="The machines hold different x"):
        bad = DistributedMoE(3, 2, backend="sequential", random_state=0, split="region",
                             gate_targets="coefficients").fit(a.X, a.y)
    assert bad.machine_weights_used_ == "covariate" and not bad.fit_check_.ok
    global_em = MixtureOfExperts(3, random_state=0).fit(a.X, a.y)
    assert bad.score(test.X, test.y) < global_em.score(test.X, test.y) - 1.0  # the loss it names
    label = DistributedMoE(3, 3, backend="sequential", random_state=0,
                           split=Split("label", labels=sim.labels)).fit(sim.X, sim.y)
    assert label.machine_weights_used_ == "covariate" and label.fit_check_ is None
    assert "check_down" not in label.communication_


def test_the_fit_page_warns_when_the_reduction_misses_the_global_em():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    load_real(at, "mcycle")
    at.switch_page("pages/fit.py").run()
    at.number_input(key="cfg_K").set_value(2).run()
    at.number_input(key="cfg_M").set_value(2).run()
    assert any("enough for the reduction" in c.value for c in at.caption)  # the size rule accepts it
    at.button(key="btn_fit").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    fit = at.session_state["fit"]
    ratio = fit.train_rpe["reduction"] / fit.train_rpe["global"]
    assert ratio > GLOBAL_RPE_RATIO
    text = " ".join(w.value for w in at.warning)
    assert "training RPE" in text and f"{ratio:.2f}x the global EM's" in text and "refinement rounds" in text
    assert any("moecore's check after the fit" in c.value for c in at.caption)
    # mcycle's small expert: about 5 rows on each of the two machines for its line and variance.
    assert "rows on each machine, too few to estimate its line and variance" in text and "1 refinement round" in text
    # One refinement round brings it within the bound (1.08x): the page's warning goes, while moecore's own
    # check, whose yardstick (the local models in sample, 8 rows per parameter) is optimistic, stays. The round
    # re-estimates the small expert on all the rows: its warning goes too.
    at.number_input(key="cfg_rounds").set_value(1).run()
    at.button(key="btn_fit").click().run()
    fit = at.session_state["fit"]
    assert fit.train_rpe["reduction"] < GLOBAL_RPE_RATIO * fit.train_rpe["global"]
    assert not any("the global EM's (" in w.value or "too few" in w.value for w in at.warning)
    assert any("moecore's check after the fit" in c.value for c in at.caption)


def test_page_warnings_name_the_ratio_and_the_values():
    from explorer.explain import accuracy_warning, sweep_accuracy_warning

    line = accuracy_warning(0.13, 0.10, "held-out")
    assert "held-out RPE (13 %) is 1.30x the global EM's (10 %)" in line and "refinement rounds" in line
    assert accuracy_warning(GLOBAL_RPE_RATIO * 0.10, 0.10, "training") == ""  # at the bound: no warning
    assert accuracy_warning(0.5, 0.0, "training") == ""  # no yardstick
    line = sweep_accuracy_warning({4: (0.10, 0.10), 16: (0.15, 0.10), 64: (0.30, 0.10)}, "Machines M")
    assert line.startswith("At Machines M = 16 (1.50x), 64 (3.00x) the reduction's mean held-out RPE")
    assert sweep_accuracy_warning({4: (0.10, 0.10)}, "Machines M") == ""


# ------------------------------------------------------------------ an expert too rare to split
def test_expert_rows_arithmetic():
    from moecore.model import MoEParams

    # Gates that put expert 1 at exactly 10 % everywhere: logit log(0.1 / 0.45) against two equal experts.
    params = MoEParams(np.array([[np.log(0.1 / 0.45), 0.0, 0.0], [0.0, 0.0, 0.0]]), np.zeros((2, 3)), np.ones(3))
    X = np.linspace(-1, 1, 50)[:, None]
    check = check_expert_rows(params, X, 20_000, 16)  # 125 rows of expert 1 per machine
    np.testing.assert_allclose(check.rows, [125.0, 562.5, 562.5])
    assert check.ok and check.needed == MIN_EXPERT_ROWS_PER_PARAMETER * 3  # p + 1 = 3 parameters per expert
    check = check_expert_rows(params, X, 2_000, 16)  # 12.5 rows of expert 1 per machine, needs 9: ok
    assert check.ok
    check = check_expert_rows(params, X, 2_000, 32)  # 6.25
    assert not check.ok and check.sparse == [0]
    assert "expert 0 (numbered from 0) has about 6.2 rows per machine:" in check.message
    assert "at most 22 machines" in check.message and "refine_rounds=1" in check.message  # 200 // 9
    assert check.max_machines == 22 and check.machines_advice() in check.message
    assert "fewer experts" not in check.message
    tiny = check_expert_rows(params, X, 200, 32).message  # 0.6 rows per machine: K may be too large
    assert "fewer experts (moecore.selection.choose_k)" in tiny and "refine_rounds" not in tiny
    rounds = check_expert_rows(params, X, 2_000, 32, refine_rounds=1)  # needs 4.5 with rounds
    assert rounds.ok and rounds.needed == MIN_EXPERT_ROWS_PER_PARAMETER_ROUNDS * 3
    # One machine splits nothing: 5 rows of expert 1 on it were flagged with the advice "one machine".
    single = check_expert_rows(params, X, 50, 1)
    assert single.ok and single.rows[0] == 5.0 and not single.message


def test_an_expert_too_rare_to_split_is_reported():
    """An expert with about 0.5 % of 20 000 rows over 16 machines: 6 rows each for its line and variance. The
    reduction predicts as well as the global EM, but that expert's variance is far from the global EM's; the
    library says so, and a round (all the rows) both fixes it and silences the warning."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_fit_check import rare_expert_design
    from moecore import simulate
    from moecore.alignment import align_to

    truth = rare_expert_design()
    train = simulate(truth, 20_000, random_state=1)
    glob = align_to(truth, MixtureOfExperts(3, random_state=0).fit(train.X, train.y).params_, train.X)
    with pytest.warns(AccuracyWarning, match=r"Reduced expert \d \(numbered from 0\) has about") as record:
        dm = DistributedMoE(3, 16, n_jobs=2, random_state=2).fit(train.X, train.y)
    red = align_to(truth, dm.params_, train.X)
    assert dm.expert_rows_.sparse == [int(np.argmin(dm.expert_rows_.rows))]
    # Numbered from 0 like every other library message (it said k + 1, the app's numbering).
    assert any(f"Reduced expert {dm.expert_rows_.sparse[0]} (numbered from 0)" in str(w.message) for w in record)
    assert (red.variances[0] - truth.variances[0]) ** 2 > 10 * (glob.variances[0] - truth.variances[0]) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)
        one = DistributedMoE(3, 16, n_jobs=2, random_state=2, refine_rounds=1).fit(train.X, train.y)
    red = align_to(truth, one.params_, train.X)
    assert one.expert_rows_.ok
    assert (red.variances[0] - truth.variances[0]) ** 2 <= 3 * (glob.variances[0] - truth.variances[0]) ** 2


def test_reduced_variances_that_hold_the_machines_disagreement_are_flagged():
    # A library audit's design (d = 6, K = 5, variances 0.5-5; 1 250 rows per machine): the one-shot
    # variance of the variance-5 expert came out 6.36, 125x the global EM's MSE to the truth, with no
    # warning (its rows per machine passed check_expert_rows, and predictions matched).
    from benchmarks.bench_fit_check import spread_data
    from moecore.metrics import parameter_mse

    truth, X, y = spread_data(11)
    with pytest.warns(AccuracyWarning, match="disagreement between the machines"):
        dm = DistributedMoE(5, 16, random_state=0, backend="sequential").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = MixtureOfExperts(5, random_state=0).fit(X, y)
        rounds = DistributedMoE(5, 16, random_state=0, backend="sequential", refine_rounds=5).fit(X, y)
    mse = lambda m: parameter_mse(m.params_, truth)["variances"]  # noqa: E731
    assert mse(dm) > 10 * mse(g)  # the warning is right: that block is far off
    (k,) = dm.expert_spread_.flagged
    assert dm.expert_spread_.ratio[k] > 3 and dm.expert_spread_.excess[k] > 0.1
    # What the message advises brings the block within 2x (and the check is then quiet).
    assert rounds.expert_spread_.ok and mse(rounds) < 2 * mse(g)


@pytest.mark.parametrize("design, M", [("separated-2d", 64), ("overlapping-5d", 16), ("separated-10d", 16)])
def test_the_spread_check_is_quiet_where_the_variances_are_right(design, M):
    # Between machines that agree but for noise the lines' spread is their estimation noise: a ratio
    # about 1 (at most 1.9 on the shipped designs at M = 4-64).
    tr = simulate_design(design, 50000, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(tr.params.n_experts, M, random_state=0, backend="sequential").fit(tr.X, tr.y)
    assert dm.expert_spread_.ok and dm.expert_spread_.ratio.max() < 2.5 and dm.expert_spread_.excess.max() < 0.05


def test_the_fit_page_words_the_spread_check():
    from explorer import explain
    from moecore.reduction import ExpertSpread

    check = ExpertSpread(np.array([1.1, 4.2]), np.array([0.0, 0.18]), [1], False, "library words")
    line = explain.expert_spread_warning(check, 0)
    assert line.startswith("About 18 % of reduced expert 2's variance is disagreement between the machines: their "
                           "lines spread 4.2x more than their estimation noise explains")
    assert "To fix: 5 refinement rounds (they re-estimate it on all the rows), or fewer machines." in line
    assert "(1 ran)" in explain.expert_spread_warning(check, 1)
    assert explain.expert_spread_warning(None, 0) == "" and explain.expert_spread_warning(
        ExpertSpread(np.ones(2), np.zeros(2), [], True), 0) == ""
