"""EM's default start (init="portfolio", small EM) reaches the maxima that k-means starts miss; the
shipped real data sets; the spread of local fit times and iterations."""

import warnings

import numpy as np
import pytest

from benchmarks.bench_portfolio import (
    correlated_design,
    high_d_design,
    load_diamonds,
    load_txhousing,
    lost_expert_design,
    poor_gap,
)
from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.datasets import DATASETS, dataset_names, load_dataset
from moecore.em import DEGENERATE_VAR
from moecore.simulation import simulate


@pytest.mark.parametrize("name", dataset_names())
def test_shipped_data_sets_load_with_their_description(name):
    ds = load_dataset(name)
    n, d = ds.X.shape
    assert n >= 50 and d == len(ds.feature_names) >= 1 and ds.y.shape == (n,)
    assert np.all(np.isfinite(ds.X)) and np.all(np.isfinite(ds.y)) and np.std(ds.y) > 0
    assert ds.response_name not in ds.feature_names
    assert ds.source and ds.licence and ds.description and ds.suggested_experts >= 2
    assert list(ds.frame.columns) == [ds.response_name, *ds.feature_names]
    assert ds.name == name == DATASETS[name].name


def test_unknown_data_set_is_refused_with_the_names():
    with pytest.raises(ValueError, match=r"name must be one of .*mcycle"):
        load_dataset("iris")


def test_mcycle_default_reaches_the_maximum_every_k_means_start_misses():
    # Motorcycle data, K = 2: k-means on (x, y) puts the flat, quiet start and the swings in one
    # basin whatever its seed; random partitions reach another basin about 29 nats higher. The
    # best-known maximum comes from the random starts here, not from a stored number.
    ds = load_dataset("mcycle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = MixtureOfExperts(2, init="random", n_init=20, random_state=7).fit(ds.X, ds.y)
        kmeans = [MixtureOfExperts(2, init="kmeans", n_init=5, random_state=s).fit(ds.X, ds.y) for s in range(3)]
        default = [MixtureOfExperts(2, random_state=s).fit(ds.X, ds.y) for s in range(3)]
    assert best.variances_.min() >= DEGENERATE_VAR * ds.y.var()
    # Far more than the 1 nat the target allows: another basin, not a stopping tolerance.
    assert all(best.loglik_ - f.loglik_ > 10.0 for f in kmeans)
    for f in default:
        assert f.loglik_ >= best.loglik_ - 1.0
        assert f.variances_.min() >= DEGENERATE_VAR * ds.y.var()
        h = f.loglik_history_
        assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))  # the continued run is one GEM run


@pytest.mark.parametrize("name, K", [("faithful", 3), ("boston", 4), ("tonedata", 5), ("mcycle", 5)])
def test_small_data_repeat_the_portfolio_continue_every_run_and_every_seed_reaches_the_maximum(name, K):
    # One portfolio reached the maximum for 1 (faithful, K = 3) and 2 (Boston, K = 4) of these 5
    # seeds: on a few hundred rows the basins are many and shallow, so the portfolio repeats while
    # the repeats see at most 2 000 rows (4 and 3 times here). Then, ranked after a few dozen
    # iterations, a basin that climbs slowly still lost to one that had converged fast: with each
    # kind's best short run continued, one seed of five ended 2.2 (faithful, K = 3), 4.5 (tonedata,
    # K = 5) and 1.7 (mcycle, K = 5) nats below the maximum. On small data every short run goes on
    # and every basin is continued to convergence. The best-known maximum comes from many more
    # starts here, not from a stored number; 1 nat is issue 19's criterion.
    from moecore.em import MID_DATA_ROWS, SMALL_DATA_ROWS, portfolio_repeats

    ds = load_dataset(name)
    floor = DEGENERATE_VAR * ds.y.var()
    assert portfolio_repeats(len(ds.y)) == min(4, 2000 // len(ds.y)) > 1
    assert portfolio_repeats(SMALL_DATA_ROWS) == 2 and portfolio_repeats(SMALL_DATA_ROWS + 1) == 4  # past small data
    assert portfolio_repeats(MID_DATA_ROWS) > 1 == portfolio_repeats(MID_DATA_ROWS + 1) == portfolio_repeats(10**6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        many = [MixtureOfExperts(K, n_init=8, random_state=99).fit(ds.X, ds.y),
                MixtureOfExperts(K, init="random", n_init=20, random_state=7).fit(ds.X, ds.y)]
        default = [MixtureOfExperts(K, random_state=s).fit(ds.X, ds.y) for s in range(5)]
    best = max(f.loglik_ for f in many if f.variances_.min() >= floor)
    gaps = [best - f.loglik_ if f.variances_.min() >= floor else np.inf for f in default]
    assert max(gaps) <= 1.0, [round(g, 2) for g in gaps]


def test_split_and_merge_moves_reach_the_small_data_maximum_no_start_leads_to():
    # mcycle, K = 3: every default fit ends 2.9 nats below the best-known maximum (-578.0, which about one
    # random start in 150 reaches), and 8 portfolios or 20 random starts do not help. split_moves=True frees
    # an expert to split another's rows or cover the worst-fitted ones; from every seed's fit the moves reach a
    # maximum above it. They are off by default: on small simulated designs the maxima they add fit held-out
    # data worse (docs/method.md 8, item 10), so the default fits stay where they were.
    ds = load_dataset("mcycle")
    floor = DEGENERATE_VAR * ds.y.var()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moved = [MixtureOfExperts(3, split_moves=True, random_state=s).fit(ds.X, ds.y) for s in range(3)]
        default = [MixtureOfExperts(3, random_state=s).fit(ds.X, ds.y) for s in range(3)]
        others = [MixtureOfExperts(3, n_init=8, random_state=99).fit(ds.X, ds.y),
                  MixtureOfExperts(3, init="random", n_init=20, random_state=7).fit(ds.X, ds.y)]
    best_without = max(f.loglik_ for f in default + others if f.variances_.min() >= floor)
    for f, g in zip(moved, default, strict=True):
        assert f.variances_.min() >= floor
        assert f.loglik_ >= best_without + 2.0, (f.loglik_, best_without)  # 1 nat is issue 19's criterion
        assert f.loglik_ >= g.loglik_  # a move is kept only when it ends higher
        h = f.loglik_history_
        assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))  # the kept run is one GEM run from its move
        assert f.n_reseeded_ == 0 and f.retired_experts_.size == 0  # moves that re-seed are dropped
    # A warm start from a moved fit stays there (a warm start never moves).
    warm = MixtureOfExperts(3, init=moved[0].params_, split_moves=True).fit(ds.X, ds.y)
    assert warm.loglik_ >= moved[0].loglik_ - 1e-6 * abs(moved[0].loglik_)


def test_a_split_move_out_of_a_spike_is_kept_though_its_likelihood_is_lower():
    # 30 % of y exactly 0, the rest on a line: with K = 3 every portfolio run of this seed ends with an expert
    # on the zeros (variance 1e-6 var(y), a spike whose likelihood is unbounded); a move reaches a non-degenerate
    # fit, which the ranking puts first (non-degenerate, then log-likelihood) however much lower it reads.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = np.where(rng.random(300) < 0.3, 0.0, 2 + X[:, 0] + rng.normal(0, 0.5, 300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moved = MixtureOfExperts(3, split_moves=True, random_state=1).fit(X, y)
        spiky = MixtureOfExperts(3, random_state=1).fit(X, y)
    assert spiky.variances_.min() < DEGENERATE_VAR * y.var() < moved.variances_.min()
    assert moved.loglik_ < spiky.loglik_


def test_local_fits_of_a_distributed_fit_run_one_portfolio_on_small_shards(monkeypatch):
    # 400-row shards: a fit on its own would repeat the portfolio 4 times and continue every short
    # run; a machine runs n_init portfolios of each kind's best (the slowest machine sets the
    # learning time; the screening refits poor fits).
    import moecore.em as em

    runs = []
    small_em = em.MixtureOfExperts._small_em

    def counted(self, XtT, y, F, rng, extra=None, every_run=False, every_short=False):
        runs.append((y.shape[0], every_run, every_short))
        return small_em(self, XtT, y, F, rng, extra, every_run, every_short)

    monkeypatch.setattr(em.MixtureOfExperts, "_small_em", counted)
    train = simulate_design("separated-2d", 1600, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(4, 4, backend="sequential", local_check="off", random_state=0).fit(train.X, train.y)
    assert len(dm.local_models_) == 4
    assert runs == [(400, False, False)] * 4
    runs.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MixtureOfExperts(4, random_state=0).fit(train.X[:400], train.y[:400])
    assert runs == [(400, True, True)] * 4
    runs.clear()
    # 1 600 rows: portfolios of every short run, the second confirming the first's maximum.
    MixtureOfExperts(4, random_state=0).fit(train.X, train.y)
    assert runs == [(1600, False, True)] * 2


def test_d20_shards_default_local_fits_avoid_the_poor_optima_of_k_means_starts():
    # Shards of a machine's size (7 800 rows) of a d = 20, K = 4 design with sharp gates. A local
    # fit is in a poor optimum when EM from the true parameters on the same shard ends higher by
    # more than screening's bound on a fit's estimation noise, GAP_FLOOR q / n_m nats per point.
    d, K, n_m = 20, 4, 7800
    prm = high_d_design(d, K)
    gap = poor_gap(K, d, n_m)
    poor = {"kmeans": 0, "portfolio": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(4):
            tr = simulate(prm, n_m, random_state=1000 + s)
            ref = MixtureOfExperts(K, init=prm).fit(tr.X, tr.y).loglik_
            for init in poor:
                est = MixtureOfExperts(K, random_state=s) if init == "portfolio" else \
                    MixtureOfExperts(K, init=init, random_state=s)
                poor[init] += (ref - est.fit(tr.X, tr.y).loglik_) / n_m > gap
    assert poor["kmeans"] >= 1
    assert poor["portfolio"] == 0


@pytest.mark.parametrize(("data_seed", "fit_seed"), [(12, 0), (10, 1)])
def test_runoff_finds_the_basin_the_subsample_ranked_second(data_seed, fit_seed):
    # On 500 points the k-means kind's run led the lines kind's by 8 nats; continued on all 10^5
    # points it ended about 9 600 nats below them (the lost 8 % expert), and it still led after
    # 30 iterations on all the data. The runoff on 5 000 points ranks them right. The maximum is
    # EM's from the true parameters; 1 nat is far inside the 9 600 at stake.
    prm = lost_expert_design()
    tr = simulate(prm, 100_000, random_state=data_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = MixtureOfExperts(5, init=prm).fit(tr.X, tr.y).loglik_
        fit = MixtureOfExperts(5, random_state=fit_seed).fit(tr.X, tr.y)
    assert fit.loglik_ >= best - 1.0


def test_large_real_data_reach_the_maximum_a_subsample_hides():
    # diamonds (ggplot2, 53 940 rows, log price ~ log carat), K = 2: on one 500-point subsample every
    # start can end in a basin 934 nats below the maximum, and basins 93 nats apart swap places on a
    # 5 000-point runoff sample. Two subsamples and finalists continued on all the data: 4 of the 5
    # seeds here reach it (23 of 30 in benchmarks/README.md section 33; 2 of these 5 before). The
    # maximum: full-data EM from random partitions reaches it (flexmix's best of 20 starts too).
    X, y = load_diamonds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = max(MixtureOfExperts(2, init="random", random_state=s).fit(X, y).loglik_ for s in range(2))
        reached = [MixtureOfExperts(2, random_state=s).fit(X, y).loglik_ >= best - 1.0 for s in range(5)]
    assert best == pytest.approx(-2877.75, abs=0.05)
    assert sum(reached) >= 4


def test_portfolio_is_reproducible_and_reaches_the_k_means_maximum_on_separated_data():
    tr = simulate_design("separated-2d", 5000, random_state=3)
    a = MixtureOfExperts(4, random_state=5).fit(tr.X, tr.y)
    b = MixtureOfExperts(4, random_state=5).fit(tr.X, tr.y)
    np.testing.assert_array_equal(a.experts_, b.experts_)
    np.testing.assert_array_equal(a.loglik_history_, b.loglik_history_)
    # Well-separated experts: k-means finds the maximum, and so must the portfolio (whose first
    # start is that k-means start), up to the two runs' stopping tolerance (tol relative on each).
    k = MixtureOfExperts(4, init="kmeans", random_state=5).fit(tr.X, tr.y)
    assert a.loglik_ >= k.loglik_ - 2 * 1e-6 * abs(k.loglik_)


def test_local_spread_summarises_every_machines_fit():
    tr = simulate_design("separated-2d", 8000, random_state=1)
    dm = DistributedMoE(4, 8, n_jobs=1, backend="sequential", random_state=0).fit(tr.X, tr.y)
    sp = dm.timings_["local_spread"]
    times = dm.timings_["local"]
    iters = np.array([m.n_iter_ for m in dm.local_models_])
    assert sp["time"]["max"] == times.max() and sp["time"]["median"] == np.median(times)
    assert sp["iterations"]["max"] == iters.max() and sp["iterations"]["median"] == np.median(iters)
    assert sp["time"]["median"] <= sp["time"]["p90"] <= sp["time"]["max"]


def test_screening_flags_a_small_expert_lost_in_a_narrow_region():
    # lost_expert_design, n = 10^5 over M = 16: machine 8's local fit ends in a poor optimum (in
    # sample 0.029 nats per point below EM from the truth, above the screening's own floor
    # 4 q / n_m = 0.015), a loss that sits on the few support points of the lost expert's region.
    # Scored on every support point it is flagged; an evenly strided 512 of the 1 562 (the rule
    # before) put it 0.003 nats from the median, and it went through to the reduction.
    from moecore.screening import flag_poor_fits, n_free_parameters, support_scores

    prm = lost_expert_design()
    tr = simulate(prm, 100_000, random_state=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(5, 16, local_check="off", n_jobs=1, backend="sequential", random_state=1).fit(tr.X, tr.y)
        rows = dm.shards_[8]
        truth_fit = MixtureOfExperts(5, init=prm).fit(tr.X[rows], tr.y[rows])
    n_m = len(rows)
    assert (truth_fit.loglik_ - dm.local_models_[8].loglik_) / n_m > poor_gap(5, 1, n_m)
    assert 8 in dm.screening_.flagged
    q = n_free_parameters(5, 1)
    strided = support_scores([m.params_ for m in dm.local_models_], dm.support_X_, dm.support_y_, max_points=512)
    assert not flag_poor_fits(strided, np.full(16, n_m), q)[1][8]


def _count_starts(monkeypatch):
    """Patch EM's start maker to count the portfolio's starts; returns the list of their kinds."""
    import moecore.em as em

    kinds = []
    make = em.MixtureOfExperts._initial_responsibilities

    def counted(self, XtT, y, rng, kind=None):
        kinds.append(kind)
        return make(self, XtT, y, rng, kind=kind)

    monkeypatch.setattr(em.MixtureOfExperts, "_initial_responsibilities", counted)
    return kinds


def test_kinds_that_agree_skip_the_second_wave_and_end_where_the_whole_portfolio_does(monkeypatch):
    # A shard of the headline's size (7 812 rows) of well-separated experts: k-means, the best of
    # 4 lines and the best of 2 random partitions reach one basin, so the second wave (4 lines,
    # 2 random) is not drawn; the whole portfolio in one wave ends in the same maximum, up to the
    # two runs' stopping rule (relative change 1e-6 on each).
    import moecore.em as em

    tr = simulate_design("separated-2d", 7812, random_state=4)
    kinds = _count_starts(monkeypatch)
    fast = MixtureOfExperts(4, random_state=2)._fit(tr.X, tr.y, local_fit=True)
    assert kinds == ["kmeans"] + ["lines"] * 4 + ["random"] * 2
    kinds.clear()
    monkeypatch.setattr(em, "_PORTFOLIO_WAVES", ((("kmeans", 1), ("lines", 8), ("random", 4)),))
    whole = MixtureOfExperts(4, random_state=2)._fit(tr.X, tr.y, local_fit=True)
    assert len(kinds) == 13
    assert fast.loglik_ >= whole.loglik_ - 2e-6 * abs(whole.loglik_)


def test_small_data_always_draw_the_whole_portfolio(monkeypatch):
    # mcycle (133 rows) at K = 2: k-means and the lines agree on a basin 29 nats below the maximum
    # that random partitions reach. On small data the second wave always runs: every portfolio
    # draws all 13 starts, and the default reaches that maximum.
    ds = load_dataset("mcycle")
    kinds = _count_starts(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = MixtureOfExperts(2, random_state=0)._fit(ds.X, ds.y, local_fit=True)
    assert kinds == ["kmeans"] + ["lines"] * 4 + ["random"] * 2 + ["lines"] * 4 + ["random"] * 2
    assert fit.loglik_ >= -614.54 - 1.0  # the best-known maximum (benchmarks/README.md, section 11)


def _run(ll, converged=True, variance=1.0):
    """An EM run's record as em._run_em returns it; a variance of 1e-9 stands for a spike (em.spike_experts)."""
    return {"ll": ll, "converged": converged, "variances": np.array([variance, 1.0]), "spike": variance < 1e-4}


def test_second_wave_draws_only_the_exploring_kinds_short_of_the_best_basin():
    from moecore.em import _SAME_BASIN, _settled_kinds

    n, near = 500, 0.5 * _SAME_BASIN * 500  # within one basin on 500 points
    # Lines and random at the best: nothing more to draw (a k-means run below them does not count).
    assert _settled_kinds({"kmeans": _run(-900.0, False), "lines": _run(-600.0),
                           "random": _run(-600.0 - near)}, n) == {"lines", "random"}
    # k-means alone at the top: the explorers have not found it, both draw again.
    assert _settled_kinds({"kmeans": _run(-500.0), "lines": _run(-600.0), "random": _run(-600.0)}, n) == set()
    # k-means and lines agree, random elsewhere: random draws again when it is below, lines when random is above.
    assert _settled_kinds({"kmeans": _run(-600.0), "lines": _run(-600.0), "random": _run(-620.0)}, n) == {"lines"}
    assert _settled_kinds({"kmeans": _run(-600.0), "lines": _run(-600.0), "random": _run(-580.0)}, n) == {"random"}
    # A degenerate best (a variance at the floor) is never a reason to stop looking.
    assert _settled_kinds({"kmeans": _run(-700.0), "lines": _run(-600.0, variance=1e-9),
                           "random": _run(-600.0, variance=1e-9)}, n) == set()


@pytest.mark.parametrize(("seed", "second_wave"), [(0, ["random"] * 2), (2, ["lines"] * 4)])
def test_a_partial_second_wave_draws_the_unsettled_kind_and_ends_where_the_whole_one_does(monkeypatch, seed,
                                                                                             second_wave):
    # Shards of lost_expert_design (1 562 rows, the size of 10^5 rows over 64 machines): after the
    # first wave one exploring kind sits in the best basin and the other does not, so the second
    # wave draws only the other's share. With the whole second wave the fit ends in the same
    # maximum, up to the two runs' stopping rule.
    import moecore.em as em

    sim = simulate(lost_expert_design(), 1562, random_state=200 + seed)
    kinds = _count_starts(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = MixtureOfExperts(5, random_state=seed)._fit(sim.X, sim.y, local_fit=True)
        assert kinds == ["kmeans"] + ["lines"] * 4 + ["random"] * 2 + second_wave
        monkeypatch.setattr(em, "_settled_kinds", lambda runs, n_points: set())
        whole = MixtureOfExperts(5, random_state=seed)._fit(sim.X, sim.y, local_fit=True)
    assert part.loglik_ >= whole.loglik_ - 2e-6 * abs(whole.loglik_)


def test_a_fit_of_all_the_data_reaches_the_maximum_that_a_short_runs_lead_hid():
    # On the 600-point subsample a start that puts one expert on a few points led its kind after 10
    # iterations, and only each kind's leader went on: 2 of 5 default fits ended 237 nats below the
    # maximum, the two small experts merged. Every short run now goes on (a fit of all the data).
    X, y = correlated_design(11, 20000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = MixtureOfExperts(4, init="random", n_init=20, random_state=0).fit(X, y)
        default = [MixtureOfExperts(4, random_state=s).fit(X, y) for s in range(5)]
    assert best.variances_.min() > 0.3  # a non-degenerate maximum: the true variances are 0.5
    gaps = [best.loglik_ - f.loglik_ for f in default]
    assert max(gaps) <= 1.0, [round(g, 1) for g in gaps]


def _one_portfolio(monkeypatch, K, X, y, seeds):
    """Default fits as they were before the portfolio repeated past small data (2026-12-07)."""
    import moecore.em as em

    with monkeypatch.context() as m:
        m.setattr(em, "_MID_DATA_BUDGET", 1)
        return [MixtureOfExperts(K, random_state=s).fit(X, y) for s in seeds]


def test_real_data_of_thousands_of_rows_repeat_the_portfolio_and_miss_no_maximum_by_far(monkeypatch):
    # txhousing (ggplot2, 7 175 months of Texas cities), log sales ~ log listings, K = 3: one portfolio, its
    # short runs on 500 of the rows, ended 61 and 110 nats below the best-known maximum for 2 seeds of 10 and
    # reached it (1 nat, issue 19's criterion) for 1. Past small data the portfolio now repeats until one
    # ends at the best maximum found before it (at most min(4, 200 000 // n) times).
    from moecore.em import portfolio_repeats

    X, y = load_txhousing()
    seeds = range(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = _one_portfolio(monkeypatch, 3, X, y, seeds)
        default = [MixtureOfExperts(3, random_state=s).fit(X, y) for s in seeds]
        many = MixtureOfExperts(3, n_init=8, random_state=99).fit(X, y)
    floor = DEGENERATE_VAR * y.var()
    best = max(f.loglik_ for f in [*one, *default, many] if f.variances_.min() >= floor)
    assert portfolio_repeats(len(y)) == 4 and many.n_inits_ == 8  # n_init runs every restart it asks for
    assert all(1 <= f.n_inits_ <= 4 for f in default) and all(f.n_inits_ == 1 for f in one)
    gaps = lambda fits: np.array([best - f.loglik_ for f in fits])  # noqa: E731
    assert np.sum(gaps(one) > 50) >= 2 and np.all(gaps(default) <= 50)
    assert np.sum(gaps(default) <= 1) > np.sum(gaps(one) <= 1)
    # The first portfolio is the one fit before: a default fit ends at least as high.
    assert all(d.loglik_ >= o.loglik_ - 1e-6 * abs(o.loglik_) for d, o in zip(default, one, strict=True))


def test_a_second_portfolio_confirms_the_maximum_of_data_with_one(monkeypatch):
    # A synthetic design has one maximum: the second portfolio ends at it, and the fit stops there (twice the
    # cost of one portfolio, not four times). Past MID_DATA_ROWS and on a machine's shard: one portfolio.
    from moecore.em import MID_DATA_ROWS

    ds = simulate_design("separated-2d", 5000, random_state=3)
    fit = MixtureOfExperts(4, random_state=0).fit(ds.X, ds.y)
    (one,) = _one_portfolio(monkeypatch, 4, ds.X, ds.y, [0])
    assert fit.n_inits_ == 2 and fit.loglik_ >= one.loglik_ - 1.0
    big = simulate_design("teaching-1d", MID_DATA_ROWS + 1, random_state=3)
    assert MixtureOfExperts(3, random_state=0).fit(big.X, big.y).n_inits_ == 1
    dm = DistributedMoE(4, 2, backend="sequential", random_state=0).fit(ds.X, ds.y)
    assert {m.n_inits_ for m in dm.local_models_} == {1}
