"""Issue 11: non-IID splits (moecore.splits) and covariate machine weights (moecore.machine_weights)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, MixtureOfExperts
from moecore.machine_weights import association_test, decide_machine_weights, fit_machine_weights
from moecore.metrics import rpe
from moecore.model import predict_mean
from moecore.reduction import LargeMixture, reduce_mixtures
from moecore.simulation import simulate_design
from moecore.splits import Split, machine_labels, make_split, shard_sizes, split_shards


@pytest.fixture(scope="module")
def teaching():
    return simulate_design("teaching-1d", 20000, random_state=3), simulate_design("teaching-1d", 20000, random_state=4)


def test_random_split_is_the_historical_shuffle_draw_for_draw():
    X = np.random.default_rng(0).normal(size=(1003, 2))
    a = make_split(X, 7, "random", random_state=5)
    b = split_shards(1003, 7, np.random.default_rng(np.random.SeedSequence(5)))
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def test_region_split_gives_quantile_bands_and_alpha_keeps_sizes():
    X = np.random.default_rng(1).uniform(size=(4000, 2))
    sep = make_split(X, 4, "region", feature=1, random_state=0)
    assert [len(s) for s in sep] == [1000] * 4
    # Machine m holds the m-th quarter of x2, and nothing else.
    for m, s in enumerate(sep):
        assert X[s, 1].min() >= np.quantile(X[:, 1], m / 4) - 1e-12
        assert X[s, 1].max() <= np.quantile(X[:, 1], (m + 1) / 4) + 1e-12
    lab0 = machine_labels(sep)
    for alpha in (0.25, 1.0):
        mixed = make_split(X, 4, Split("region", alpha=alpha, feature=1), random_state=0)
        assert [len(s) for s in mixed] == [1000] * 4
        moved = np.mean(machine_labels(mixed) != lab0)
        # A share alpha of the rows is re-dealt; a re-dealt row keeps its machine w.p. about 1/4.
        assert abs(moved - 0.75 * alpha) < 0.03


def test_kmeans_and_label_splits_are_deterministic_and_follow_their_groups():
    d = simulate_design("separated-2d", 4000, random_state=0)
    a = make_split(d.X, 6, "kmeans", random_state=2)
    b = make_split(d.X, 6, "kmeans", random_state=2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    lab = machine_labels(make_split(d.X, 4, "label", labels=d.labels, random_state=0))
    assert np.array_equal(lab, d.labels)
    lab8 = machine_labels(make_split(d.X, 8, "label", labels=d.labels, random_state=0))
    assert np.array_equal(lab8 % 4, d.labels)


def test_dirichlet_sizes_sum_to_n_and_respect_the_minimum():
    rng = np.random.default_rng(0)
    sizes = shard_sizes(10000, 16, concentration=0.3, min_size=50, rng=rng)
    assert sizes.sum() == 10000 and sizes.min() >= 50
    # Dirichlet(0.3) shares over 16 machines have a coefficient of variation of about 1.6 (equal
    # shares: 0); 0.5 leaves room for one draw.
    assert sizes.std() / sizes.mean() > 0.5
    X = rng.normal(size=(10000, 1))
    sh = make_split(X, 16, Split("random", concentration=0.3), min_size=50, random_state=1)
    assert sorted(np.concatenate(sh).tolist()) == list(range(10000))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="by-site"), "split must be one of"),
        (dict(split="region", alpha=1.5), "alpha must be in"),
        (dict(split="region", feature=3), "feature must be in"),
        (dict(split="kmeans", concentration=1.0), "concentration applies to"),
        (dict(split="label"), "needs labels"),
        (dict(split="random", concentration=-1.0), "concentration must be in"),
    ],
)
def test_bad_split_parameters_name_the_parameter(kwargs, match):
    X = np.random.default_rng(0).normal(size=(200, 2))
    with pytest.raises(ValueError, match=match):
        make_split(X, 4, **kwargs)


def test_bad_machine_weights_option_is_refused():
    X = np.random.default_rng(0).normal(size=(400, 1))
    with pytest.raises(ValueError, match="machine_weights must be one of"):
        DistributedMoE(2, 2, machine_weights="pointwise").fit(X, X[:, 0])
    with pytest.raises(TypeError, match="split must be one of"):
        DistributedMoE(2, 2, split=3).fit(X, X[:, 0])


def test_score_test_keeps_random_machines_and_flags_regions():
    X = simulate_design("separated-2d", 2500, random_state=0).X
    rng = np.random.default_rng(0)
    # Under independence the p-value is uniform: at level 1e-3, 20 seeds give at most 1 false
    # alarm with probability 0.9998.
    p = [association_test(X, rng.integers(8, size=2500), 8).p_value for _ in range(20)]
    assert sum(q < 1e-3 for q in p) <= 1
    region = machine_labels(make_split(X, 8, "region", random_state=0))
    t = association_test(X, region, 8)
    assert t.df == 7 * 2 and t.p_value < 1e-12
    assert decide_machine_weights("auto", X, region, 8)[0] == "covariate"


@pytest.mark.parametrize("method", ["knn", "logistic"])
def test_machine_weights_recover_the_region_of_each_point(method):
    X = simulate_design("teaching-1d", 3000, random_state=1).X
    lab = machine_labels(make_split(X, 4, "region", random_state=0))
    w = fit_machine_weights(X, lab, 4, method=method).predict_proba(X)
    assert w.shape == (3000, 4) and np.allclose(w.sum(axis=1), 1.0)
    assert np.mean(w.argmax(axis=1) == lab) > 0.97
    # Far inside band m, all the weight is machine m's.
    inner = np.abs(X[:, 0] - (-2.25)) < 0.3
    assert np.all(w[inner, 0] > 0.9)


def test_pointwise_weights_equal_to_the_shares_give_the_constant_mixture_bitwise(teaching):
    tr, _ = teaching
    dm = DistributedMoE(3, 4, random_state=0, backend="sequential", machine_weights="constant").fit(tr.X, tr.y)
    local = [m.params_ for m in dm.local_models_]
    Xs = dm.support_X_
    a = LargeMixture(local, dm.weights_).evaluate(Xs)
    b = LargeMixture(local, np.tile(dm.weights_, (len(Xs), 1))).evaluate(Xs)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="per-point machine weights must have shape"):
        LargeMixture(local, np.ones((len(Xs), 3))).evaluate(Xs)


def test_constant_weights_are_the_historical_reduction_and_auto_keeps_them_on_random_splits(teaching):
    tr, _ = teaching
    kw = dict(random_state=0, backend="sequential")
    const = DistributedMoE(3, 4, machine_weights="constant", **kw).fit(tr.X, tr.y)
    auto = DistributedMoE(3, 4, **kw).fit(tr.X, tr.y)
    assert auto.machine_weights_used_ == "constant" and auto.machine_weights_test_ is None
    # The reduction with the shares n_m / n, as before machine weights existed.
    ref = reduce_mixtures([m.params_ for m in const.local_models_], const.weights_, const.support_X_, 3,
                          y_support=const.support_y_, local_scores=const.local_scores_[const.machines_],
                          variance_update="debiased", net_variances=[m.net_variances_ for m in const.local_models_],
                          random_state=np.random.SeedSequence(0).spawn(4)[2])
    for a in ("gates", "experts", "variances"):
        assert np.array_equal(getattr(const.params_, a), getattr(ref.params, a))
        assert np.array_equal(getattr(auto.params_, a), getattr(ref.params, a))
    # Explicit random machine labels: "auto" runs the test and keeps the constant weights.
    lab = machine_labels(const.shards_)
    given = DistributedMoE(3, 4, **kw).fit(tr.X, tr.y, machine=lab)
    assert given.machine_weights_used_ == "constant" and given.machine_weights_test_.p_value > 1e-3


def test_covariate_weights_repair_a_region_split(teaching):
    tr, te = teaching
    true_rpe = rpe(te.y, predict_mean(te.X, tr.params))
    kw = dict(random_state=0, backend="sequential", split="region")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        const = DistributedMoE(3, 4, machine_weights="constant", **kw).fit(tr.X, tr.y)
        auto = DistributedMoE(3, 4, **kw).fit(tr.X, tr.y)
        g = MixtureOfExperts(3, random_state=0).fit(tr.X, tr.y)
    assert auto.machine_weights_used_ == "covariate" and auto.machine_weights_test_.p_value < 1e-12
    assert auto.support_weights_.shape == (auto.support_X_.shape[0], 4)
    assert np.all(np.isfinite(auto.params_.gates))
    r_auto = rpe(te.y, auto.predict(te.X))
    r_glob = rpe(te.y, g.predict(te.X))
    # The global fit's excess over the truth's RPE is estimation error, O(1/n); the reduction with
    # covariate weights must stay within 5 % of the global fit, the constant weights do not.
    assert r_glob < 1.02 * true_rpe
    assert r_auto < 1.05 * r_glob
    assert rpe(te.y, const.predict(te.X)) > 1.5 * r_glob


def test_bic_local_experts_fit_one_expert_per_label_skewed_machine(teaching):
    # Label skew, M = K = 3: machine m holds the rows of expert m only, so a K-expert local fit
    # would cut one line into pieces; with local_experts="bic" each machine keeps one expert.
    tr, te = teaching
    kw = dict(random_state=0, backend="sequential", split=Split("label", labels=tr.labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = DistributedMoE(3, 3, **kw).fit(tr.X, tr.y)
        bic = DistributedMoE(3, 3, local_experts="bic", **kw).fit(tr.X, tr.y)
    assert np.array_equal(fixed.local_n_experts_, [3, 3, 3])
    assert np.array_equal(bic.local_n_experts_, [1, 1, 1])
    # Each machine's single expert is its true expert's line (slopes within 0.05 of the truth).
    for m, model in enumerate(bic.local_models_):
        assert abs(model.experts_[1, 0] - tr.params.experts[1, m]) < 0.05
    true_rpe = rpe(te.y, predict_mean(te.X, tr.params))
    assert rpe(te.y, bic.predict(te.X)) < 1.05 * true_rpe
    with pytest.raises(ValueError, match="local_experts must be one of"):
        DistributedMoE(3, 3, local_experts="aic").fit(tr.X, tr.y)


def test_fit_shards_support_points_keep_their_machine(tmp_path):
    # Issue 11: with files holding regions of x1, each worker's support share carries its machine,
    # and "auto" finds the machines differ and uses covariate weights.
    import pandas as pd

    d = simulate_design("separated-2d", 6000, random_state=11)
    lab = machine_labels(make_split(d.X, 4, "region", random_state=0))
    paths = []
    for m in range(4):
        sel = lab == m
        path = tmp_path / f"m{m}.csv"
        pd.DataFrame({"x1": d.X[sel, 0], "x2": d.X[sel, 1], "y": d.y[sel]}).to_csv(path, index=False)
        paths.append(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(4, 4, random_state=2, backend="sequential").fit_shards(paths)
    assert np.array_equal(dm.support_machine_, np.repeat(np.arange(4), dm.support_shares_))
    # Machine m's support points lie in its band of x1.
    for m in range(4):
        xs = dm.support_X_[dm.support_machine_ == m, 0]
        assert np.all((xs >= d.X[lab == m, 0].min()) & (xs <= d.X[lab == m, 0].max()))
    assert dm.machine_weights_used_ == "covariate" and dm.machine_weights_test_.p_value < 1e-12


def test_screening_judges_non_iid_machines_on_their_own_points_and_never_drops_them():
    # Region split with a quarter of the rows mixed: the two extreme machines' models extrapolate
    # badly over the pooled support, so the exchangeable-shard screening (constant weights) drops
    # them although their fits are good where their data lie. With covariate weights each machine
    # is scored on its own support points, and a machine is refitted at most, never dropped.
    # k-means starts: the extreme machines' fits they give are the case the screening must judge
    # (the default portfolio start fits those machines differently).
    d = simulate_design("separated-2d", 20000, random_state=1)
    kw = dict(random_state=1, backend="sequential", split=Split("region", alpha=0.25), local_check="drop",
              init="kmeans")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        const = DistributedMoE(4, 8, machine_weights="constant", **kw).fit(d.X, d.y)
        cov = DistributedMoE(4, 8, machine_weights="covariate", **kw).fit(d.X, d.y)
    assert const.screening_.actions == {0: "dropped", 7: "dropped"}
    assert cov.skipped_ == {} and "dropped" not in cov.screening_.actions.values()
    assert np.all(np.isfinite(cov.screening_.scores)) and len(cov.local_models_) == 8
    # Scored on its own points, machine 0 is within the others' range (it was 0.5 nats below
    # the median on the pooled support).
    own = cov.screening_.scores
    assert own[0] > np.median(own) - 0.3


def test_callable_split_gives_the_machines_and_bad_labels_are_refused():
    d = simulate_design("two-experts-1d", 3000, random_state=0)

    def by_sign(X, n_machines, rng):
        return (X[:, 0] > 0).astype(int)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(2, 2, random_state=0, backend="sequential", split=by_sign).fit(d.X, d.y)
    assert np.all(d.X[dm.shards_[1], 0] > 0) and np.all(d.X[dm.shards_[0], 0] <= 0)
    assert dm.machine_weights_used_ == "covariate"  # a user's split is tested, not trusted
    with pytest.raises(ValueError, match=r"machine\(s\) \[2\] hold no rows"):
        DistributedMoE(2, 3, split=by_sign).fit(d.X, d.y)


def test_label_skewed_machines_refit_from_the_reduced_model_and_recover_every_expert():
    # Label skew, half the rows mixed: each machine holds ~60 % of one expert and ~13 % of each
    # other. k-means on such a shard puts two centres on the dominant expert and merges two minor
    # ones into a wide expert, on every machine, so every local fit misses an expert, no machine
    # has a better fit to refit from, and the reduction kept a merged expert (variance 14.6 times
    # the true one, RPE 2.1 times the true model's). Refitting from the reduced model, which pools
    # what each machine saw often, reaches a better optimum on every shard. (k-means starts, the
    # case this safety net is for: the default portfolio start does not merge the minor experts.)
    from moecore.alignment import align_to
    from moecore.screening import GAP_FLOOR, n_free_parameters

    d = simulate_design("separated-2d", 20000, random_state=1)
    test = simulate_design("separated-2d", 20000, random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(4, 4, random_state=1, backend="sequential", machine_weights="covariate",
                            split=Split("label", alpha=0.5, labels=d.labels), init="kmeans").fit(d.X, d.y)
    gains = dm.screening_.warm_refits
    q = n_free_parameters(4, 2)
    assert gains and all(g > GAP_FLOOR * q / len(dm.shards_[m]) for m, g in gains.items())
    first, second = dm.screening_.warm_refit_support
    assert second > first
    # A merged expert has the variance sigma^2 + (half the gap of the merged lines)^2, over ten
    # times the true ones here; an estimate from ~5000 points per expert is within a few percent.
    ratio = align_to(d.params, dm.params_).variances / d.params.variances
    assert np.all(np.abs(np.log(ratio)) < np.log(1.5)), ratio
    # The goal, against the true model's held-out error.
    assert rpe(test.y, dm.predict(test.X)) <= 1.02 * rpe(test.y, predict_mean(test.X, d.params))
    # The refits draw from seeds of their own: any backend gives the same numbers.
    # Constant weights (the paper's reduction) do not run this check: their results stay the
    # historical ones bitwise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = DistributedMoE(4, 4, random_state=1, backend="threading", n_jobs=2, machine_weights="covariate",
                                 split=Split("label", alpha=0.5, labels=d.labels), init="kmeans").fit(d.X, d.y)
        const = DistributedMoE(4, 4, random_state=1, backend="sequential", machine_weights="constant",
                               split=Split("label", alpha=0.5, labels=d.labels), init="kmeans").fit(d.X, d.y)
    np.testing.assert_array_equal(threads.params_.vector(), dm.params_.vector())
    assert const.screening_.warm_refits is None and "warm_refit_down" not in const.communication_


def test_a_split_the_package_made_by_x_takes_covariate_weights_whatever_a_small_supports_test_says():
    # crossing-2d on 3 000 rows over 16 region machines: 46 support points, and the score test's
    # p = 0.0015 missed the 1e-3 level, so "auto" took constant weights and the held-out
    # log-likelihood fell 1.8 nats per point below the global EM's, with advice that did not help.
    tr = simulate_design("crossing-2d", 3000, random_state=3)
    te = simulate_design("crossing-2d", 20000, random_state=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = MixtureOfExperts(3, random_state=0).fit(tr.X, tr.y)
        dm = DistributedMoE(3, 16, split="region", random_state=0, backend="sequential").fit(tr.X, tr.y)
    assert dm.machine_weights_test_.p_value > 1e-3  # the test alone would have kept constant weights
    assert dm.machine_weights_used_ == "covariate"
    # Within 0.05 nats per point of the global EM (constant weights: 1.8 below it).
    assert dm.score(te.X, te.y) > g.score(te.X, te.y) - 0.05


def test_an_input_constant_on_a_machine_s_rows_is_refused_before_any_fit_with_what_to_change():
    # A rare 0/1 indicator (0.5 % of the rows) over 64 machines: 15 held none of its ones, their local EMs
    # failed after the others had fitted (a LocalFitError), and the message asked for the column to be
    # removed "as constant", which it was not. A machine's own property (a site) is constant on each.
    tr = simulate_design("teaching-1d", 20000, random_state=0)
    flag = (np.random.default_rng(0).random(20000) < 0.005).astype(float)
    X = pd.DataFrame({"x": tr.X[:, 0], "flag": flag})
    with pytest.raises(ValueError, match=r"input 'flag' \(column 1\) takes a single value on the rows of 15 of the "
                                         r"64 machines .*Use fewer machines than 64"):
        DistributedMoE(2, 64, random_state=0, backend="sequential").fit(X, tr.y)
    # Over 16 machines every one holds some of its ones: the same data fit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DistributedMoE(2, 16, random_state=0, backend="sequential").fit(X, tr.y)
    site = np.arange(20000) % 4
    with pytest.raises(ValueError, match=r"column 1 \(numbered from 0\) takes a single value on the rows of 4 of "
                                         r"the 4 machines .*leave it out"):
        DistributedMoE(2, 4, random_state=0, backend="sequential").fit(np.c_[tr.X, site], tr.y, machine=site)


def test_a_machine_file_with_an_input_constant_on_its_rows_says_so(tmp_path):
    # Files on the machines: the server never sees the whole, so the machine says it of its rows.
    from moecore.local import LocalFitError

    tr = simulate_design("teaching-1d", 4000, random_state=0)
    paths = []
    for m in range(4):
        rows = slice(1000 * m, 1000 * (m + 1))
        flag = np.zeros(1000) if m == 2 else (np.arange(1000) % 7 == 0).astype(float)
        p = tmp_path / f"m{m}.csv"
        pd.DataFrame({"x": tr.X[rows, 0], "flag": flag, "y": tr.y[rows]}).to_csv(p, index=False)
        paths.append(str(p))
    with pytest.raises(LocalFitError, match=r"machine 2 .*input column\(s\) \[1\] \(numbered from 0\) take a single "
                                            r"value on this machine's 1000 rows"):
        DistributedMoE(2, 4, random_state=0, backend="sequential").fit_shards(paths)
