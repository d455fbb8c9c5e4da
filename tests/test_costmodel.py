"""The cost model (moecore.costmodel): its fit, its monotonicity and the consistency of what it
says.  No timing assertion: the times themselves are the benchmark's (bench_costmodel.py)."""

import math

import numpy as np
import pytest

from moecore import costmodel as cm
from moecore.em import MID_DATA_ROWS, portfolio_repeats

# Coefficients of the order the calibration finds on a 2-core x86 machine (seconds).
KNOWN = cm.CostModel(em=(3e-3, 8e-8, 6e-9), server=(2e-3, 5e-8, 6e-9, 2e-9), round=(4e-4, 2e-9),
                     small=(1.4e-2, 1e-6, 2.5e-7))


def synthetic_rows(model, rng):
    """Measurements made by ``model`` itself, on a grid like the calibration's."""
    rows = []
    for d, K in [(1, 3), (2, 4), (5, 3), (10, 5)]:
        for n in [500, 2000, 8000, 32_000, 64_000]:
            rows.append(dict(kind="em", n=n, d=d, K=K, seconds=model.em_time(n, d, K)))
        for M, S in [(2, 4000), (8, 1000), (32, 500), (64, 250)]:
            rows.append(dict(kind="server", n=0, d=d, K=K, M=M, S=S, mm_restarts=int(rng.integers(1, 4)),
                             seconds=0.0))
            rows[-1]["seconds"] = model.server_time(M, K, S, d, rows[-1]["mm_restarts"])
        for n_m in [250, 4000, 16_000]:
            rows.append(dict(kind="round", n=n_m, d=d, K=K, seconds=model.round_time(n_m, d, K)))
        for n in [200, 500, 1000]:
            rows.append(dict(kind="em_small", n=n, d=d, K=K, repeats=portfolio_repeats(n),
                             seconds=model.global_time(n, d, K)))
    return rows


def test_fit_recovers_the_coefficients_of_exact_measurements():
    got = cm.fit_model(synthetic_rows(KNOWN, np.random.default_rng(0)))
    for a, b in [(got.em, KNOWN.em), (got.server, KNOWN.server), (got.round, KNOWN.round), (got.small, KNOWN.small)]:
        # nnls on exact data: round-off of a least-squares solve with condition number ~1e8 at most
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-12)


def test_fit_keeps_coefficients_non_negative_on_noisy_measurements():
    rng = np.random.default_rng(1)
    rows = synthetic_rows(KNOWN, rng)
    for r in rows:
        r["seconds"] *= rng.lognormal(0, 0.5)
    got = cm.fit_model(rows)
    assert min(got.em + got.server + got.round + got.small) >= 0


@pytest.fixture(scope="module")
def stored():
    return cm.load()


def test_stored_calibration_is_a_valid_model(stored):
    assert min(stored.em + stored.server + stored.round) >= 0
    assert stored.em[1] + stored.em[2] > 0  # the EM time grows with the rows
    assert stored.meta["unit"] == "CPU seconds of one thread"
    assert len(stored.small) == 3 and min(stored.small) >= 0 and stored.small[0] > 0


def test_small_data_global_time_counts_every_repeated_portfolio():
    # A default fit on n <= 1000 rows runs portfolio_repeats(n) whole portfolios (at least n_init).
    per = float(cm._em_features(500, 2, 4) @ np.array(KNOWN.small))
    assert KNOWN.global_time(500, 2, 4) == pytest.approx(4 * per)
    assert KNOWN.global_time(500, 2, 4, restarts=6) == pytest.approx(6 * per)
    per_1000 = float(cm._em_features(1000, 2, 4) @ np.array(KNOWN.small))
    assert KNOWN.global_time(1000, 2, 4) == pytest.approx(2 * per_1000)
    # Beyond small data the large-data formula, twice up to MID_DATA_ROWS: a second portfolio confirms the
    # maximum (where there is one; up to portfolio_repeats(n) where there are several); once past it.
    assert KNOWN.global_time(1001, 2, 4) == KNOWN.em_time(1001, 2, 4, 2)
    assert KNOWN.global_time(1001, 2, 4, confirm=False) == KNOWN.em_time(1001, 2, 4)
    assert KNOWN.global_time(MID_DATA_ROWS, 2, 4, restarts=6) == KNOWN.em_time(MID_DATA_ROWS, 2, 4, 6)
    assert KNOWN.global_time(MID_DATA_ROWS + 1, 2, 4) == KNOWN.em_time(MID_DATA_ROWS + 1, 2, 4)
    # For a calibration stored before the small-data term, small data take the large-data formula.
    old = cm.CostModel.from_dict({k: v for k, v in KNOWN.to_dict().items() if k != "small"})
    assert old.small == () and old.global_time(500, 2, 4) == old.em_time(500, 2, 4)
    # The prediction's global EM is that time; the local fits (never repeated) keep the large-data formula.
    p = KNOWN.predict(600, 2, 4, 4)
    assert p.global_time == KNOWN.global_time(600, 2, 4) and p.local == KNOWN.em_time(150, 2, 4)


def test_explain_on_small_data_names_the_repeated_portfolios_and_crosses_one_beyond_them():
    text = KNOWN.explain(272, 1, 3, 4)
    assert "4 whole portfolios" in text and "not the work split" in text
    n_even = KNOWN.breakeven_n(1, 3, 4)
    assert n_even > 1000 and KNOWN.predict(n_even, 1, 3, 4, confirm=False).speedup >= 1
    assert KNOWN.predict(1001, 1, 3, 4, confirm=False).speedup < 1 and KNOWN.predict(272, 1, 3, 4).speedup > 1
    assert f"falls below 1 and passes it again at about n = {cm._round_n(n_even):,} rows" in text
    assert "whole portfolios" not in KNOWN.explain(20_000, 1, 3, 4)


@pytest.mark.parametrize("model", ["known", "stored"])
def test_times_grow_with_every_size(model, stored):
    m = KNOWN if model == "known" else stored
    base = dict(n=100_000, d=2, K=4, M=16, S=2000)
    p0 = m.predict(**base)
    for name, bigger in [("n", 400_000), ("d", 5), ("K", 6)]:
        p1 = m.predict(**dict(base, **{name: bigger}))
        assert p1.global_time > p0.global_time, name
        assert p1.local >= p0.local, name
    # More machines: smaller local fits, more work at the server.
    p1 = m.predict(**dict(base, M=64))
    assert p1.local < p0.local and p1.server > p0.server
    assert m.predict(**dict(base, S=4000)).server > p0.server
    assert m.predict(**base, rounds=3).learning_time > p0.learning_time


def test_parts_add_up_and_wall_runs_the_machines_cores_at_a_time():
    p = KNOWN.predict(200_000, 2, 4, 32, rounds=2, cores=2)
    assert p.learning_time == pytest.approx(p.local + p.server + p.rounds)
    assert p.wall == pytest.approx(16 * p.local + p.server + 16 * p.rounds)
    assert p.speedup == pytest.approx(p.global_time / p.learning_time)
    assert p.support == 200_000 // (4 * 32)
    # As many cores as machines: the wall clock is the learning time.
    assert KNOWN.predict(200_000, 2, 4, 32, cores=32).wall == pytest.approx(
        KNOWN.predict(200_000, 2, 4, 32).learning_time)


def test_speedup_grows_with_n_at_a_fixed_support():
    sp = [KNOWN.predict(n, 2, 4, 16, S=1000).speedup for n in [2000, 20_000, 200_000, 2_000_000]]
    assert np.all(np.diff(sp) > 0)


def test_breakeven_is_where_the_speedup_crosses_one():
    # Against one portfolio of the global EM: where the work split alone pays.
    n_even = KNOWN.breakeven_n(1, 3, 8)
    assert n_even is not None
    assert KNOWN.predict(n_even, 1, 3, 8, confirm=False).speedup >= 1
    assert KNOWN.predict(math.floor(0.98 * n_even), 1, 3, 8, confirm=False).speedup < 1


def test_explain_past_small_data_counts_the_confirming_portfolio_and_the_work_split_alone():
    n = 20_000
    text = KNOWN.explain(n, 1, 3, 8)
    both, one = KNOWN.predict(n, 1, 3, 8), KNOWN.predict(n, 1, 3, 8, confirm=False)
    assert both.speedup == pytest.approx(2 * one.speedup)
    assert f"speed-up of {both.speedup:.1f}x" in text and "a second whole portfolio of starts to confirm" in text
    assert f"against one portfolio, the work split alone, it is {one.speedup:.1f}x" in text
    assert "crosses 1 against one portfolio at about" in text
    assert "confirm" not in KNOWN.explain(MID_DATA_ROWS + 1, 1, 3, 8)


def test_breakeven_is_none_when_the_reduction_always_costs_more():
    # S = floor(n / 4M) grows with n: a reduction this costly per point stays above the global EM.
    slow_server = cm.CostModel(em=KNOWN.em, server=(2e-3, 5e-8, 1e-5, 2e-9), round=KNOWN.round)
    assert slow_server.breakeven_n(1, 3, 8, n_max=10**7) is None
    assert "stays below 1 at any n" in slow_server.explain(20_000, 1, 3, 8)
    assert "Past 1,000 rows, where the global EM runs one portfolio, it stays below 1 at any n" in \
        slow_server.explain(600, 1, 3, 8)


def test_explain_quotes_the_prediction_and_a_remedy():
    text = KNOWN.explain(20_000, 1, 3, 8)
    p = KNOWN.predict(20_000, 1, 3, 8)
    assert f"{p.speedup:.1f}x" in text
    assert "What would raise it" in text
    n_even = KNOWN.breakeven_n(1, 3, 8)
    assert ("crosses 1" if n_even <= 20_000 else "would cross 1") in text


def test_best_machines_keeps_shards_large_enough():
    M, sp = KNOWN.best_machines(20_000, 1, 3)
    assert 20_000 // M >= cm.min_rows(1, 3)
    assert sp == pytest.approx(KNOWN.predict(20_000, 1, 3, M).speedup)


@pytest.mark.parametrize(("bad", "name"), [(dict(n=0), "n must"), (dict(M=0), "M must"), (dict(K=1.5), "K must"),
                                           (dict(n=3, M=8), "n must be at least M"), (dict(d=True), "d must")])
def test_bad_sizes_name_the_parameter(bad, name):
    args = dict(dict(n=1000, d=1, K=3, M=8), **bad)
    with pytest.raises(ValueError, match=name):
        KNOWN.predict(**args)


def test_explain_names_a_fixed_cost_that_dominates_the_local_fit():
    fixed = cm.CostModel(em=(0.04, 8e-8, 6e-9), server=KNOWN.server, round=KNOWN.round)
    assert "fixed cost" in fixed.explain(20_000, 1, 3, 8)
    assert "fixed cost" not in KNOWN.explain(2_000_000, 1, 3, 8)


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("server"), "no 'server' coefficients"),
    (lambda d: d.update(em=[1.0, 2.0]), "'em' must be 3 finite non-negative numbers"),
    (lambda d: d.update(round=[1.0, float("nan")]), "'round' must be 2 finite"),
    (lambda d: d.update(small=[1.0, -1.0, 0.0]), "'small' must be 3 finite non-negative"),
    (lambda d: d.update(server="fast"), "'server' must be 4"),
    (lambda d: d.update(meta=[1]), "'meta' must be a dict"),
])
def test_a_damaged_calibration_is_refused_naming_the_key(stored, change, words):
    # A hand-edited costmodel.json raised KeyError or predicted with the wrong number of coefficients.
    d = stored.to_dict()
    change(d)
    with pytest.raises(ValueError, match=words):
        cm.CostModel.from_dict(d)


def test_a_calibration_without_the_small_data_part_still_loads(stored):
    d = stored.to_dict()
    d.pop("small")
    assert cm.CostModel.from_dict(d).small == ()
    assert cm.CostModel.from_dict(stored.to_dict()) == stored
