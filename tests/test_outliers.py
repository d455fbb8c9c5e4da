"""Rows far beyond all the others (moecore.outliers): named before the fit, never a silent degenerate fit.

Thresholds are the module's (10 robust standard deviations, twice as far as the next row); the rows
moved here lie far beyond them or well inside, so no test depends on where exactly the line falls.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.datasets import dataset_names, load_dataset
from moecore.model import MoEParams, posterior_proba
from moecore.outliers import FAR_FROM_BULK, OutlierWarning, find_outliers


@pytest.fixture(scope="module")
def sim():
    return simulate_design("two-experts-1d", n=4000, random_state=0)


def _robust(a):
    q1, m, q3 = np.percentile(a, [25, 50, 75])
    return m, (q3 - q1) / 1.349


def _outlier_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, OutlierWarning)]


def test_an_input_of_1e308_is_named_before_the_fit(sim):
    X = sim.X.copy()
    X[17, 0] = 1e308
    with pytest.warns(OutlierWarning, match=r"row 17 \(column 0 of X = 1e\+308\)"):
        MixtureOfExperts(n_experts=2, random_state=0, n_init=1).fit(X, sim.y)


def test_an_outlying_response_is_named_with_the_data_frames_names(sim):
    y = sim.y.copy()
    m, s = _robust(y)
    y[3] = m + 30 * s  # an isolated row: cost 0.07-0.4 nats per row in benchmarks/bench_outliers.py harm
    X = pd.DataFrame(sim.X, columns=["dose"])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        DistributedMoE(2, 4, random_state=0, backend="threading", n_jobs=1).fit(X, pd.Series(y, name="response"))
    found = _outlier_warnings(record)
    assert len(found) == 1
    assert "row 3 (response = " in found[0] and "dose" not in found[0]


def test_every_row_of_a_group_is_named_and_a_larger_group_is_data(sim):
    y = sim.y.copy()
    y[[5, 50, 500]] = -999.0
    assert find_outliers(sim.X, y).rows.tolist() == [5, 50, 500]
    # 2 % of the rows at one value: more than MAX_SHARE, a mode of the data rather than a few bad rows.
    y[::50] = -999.0
    assert find_outliers(sim.X, y).ok


def test_a_long_tail_is_not_an_outlier():
    # Exponential draws reach about ln(n) scales with neighbours close behind; a single row beyond
    # twice the largest is what the rule is for.
    a = np.random.default_rng(3).exponential(size=20000)
    assert np.abs(a - np.median(a)).max() / _robust(a)[1] > FAR_FROM_BULK  # far, yet not isolated
    assert find_outliers(a[:, None]).ok
    a[0] = 1e4
    assert find_outliers(a[:, None]).rows.tolist() == [0]


def test_a_rare_binary_input_is_not_an_outlier(sim):
    x2 = np.zeros(len(sim.y))
    x2[::97] = 1.0  # IQR 0: a standardisation maps it to 0/1 whatever its values
    assert find_outliers(np.column_stack([sim.X, 1e6 * x2]), sim.y).ok


@pytest.mark.parametrize("name", dataset_names())
def test_the_shipped_real_data_have_no_outliers(name):
    ds = load_dataset(name)  # the flights' delays reach 110 robust standard deviations, in a continuous tail
    assert find_outliers(ds.X, ds.y).ok


def test_the_designs_have_no_outliers():
    for seed in range(3):
        for design in ("teaching-1d", "separated-2d", "overlapping-5d"):
            sim = simulate_design(design, n=20000, random_state=seed)
            assert find_outliers(sim.X, sim.y).ok, (design, seed)


def test_a_distributed_fit_with_an_input_of_1e308_leaks_no_numpy_warning(sim):
    X = sim.X.copy()
    X[0, 0] = 1e308
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dm = DistributedMoE(2, 8, random_state=0, backend="threading", n_jobs=1).fit(X, sim.y)
    messages = [str(w.message) for w in record]
    assert not [m for m in messages if "encountered in" in m], messages
    assert len(_outlier_warnings(record)) == 1
    holder = next(m for m, rows in enumerate(dm.shards_) if 0 in rows)
    assert holder not in dm.machines_  # screened out: its local fit is the outlier's


def test_posterior_of_a_response_beyond_every_expert_is_the_widest_expert():
    p = MoEParams([[0.0, 0.0], [0.5, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [1.0, 4.0])
    tau = posterior_proba(np.array([[0.0], [1.0], [2.0]]), np.array([1e300, 1.0, -1e200]), p)
    assert np.array_equal(tau[[0, 2]], [[0.0, 1.0], [0.0, 1.0]])
    assert np.allclose(tau.sum(axis=1), 1.0) and 0 < tau[1, 0] < 1


def test_posterior_that_overflows_in_x_raises():
    p = MoEParams([[0.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [1.0, 4.0])  # a gate slope of 2 at x = 1e308
    with pytest.raises(ValueError, match="posterior memberships overflow at 1 row"):
        posterior_proba(np.array([[1e308]]), np.array([1.0]), p)


# ----------------------------------------------------------------------------------- the app
def _with_outliers(sim):
    y, X = sim.y.copy(), sim.X.copy()
    y[10] = 5000.0
    X[20, 0] = 1e6
    return X, y


def test_the_page_words_name_the_columns_and_each_row(sim):
    from explorer import explain

    X, y = _with_outliers(sim)
    line, details = explain.outliers_warning(find_outliers(X, y, feature_names=["dose"], response_name="effect"))
    assert line.startswith("Outlying rows: 2 far beyond all the others (effect, dose).") and "To fix:" in line
    assert details[0].startswith("Row 10 (effect = 5000) lies") and details[1].startswith("Row 20 (dose = 1e+06)")
    assert explain.outliers_warning(find_outliers(sim.X, sim.y)) == ("", [])


def test_the_data_page_names_outlying_rows_and_leaves_them_out(sim):
    from app_helpers import new_session

    import explorer.data

    X, y = _with_outliers(sim)
    at = new_session()
    at.session_state["data"] = explorer.data.Dataset(X, y, "mine.csv", ["dose"], "effect", source="csv")
    at.switch_page("pages/data.py").run()
    warned = [w.value for w in at.warning if w.value.startswith("Outlying rows: 2")]
    assert len(warned) == 1 and "(effect, dose)" in warned[0]
    for page in ("pages/fit.py", "pages/compare.py", "pages/experiments.py"):  # said before their runs too
        at.switch_page(page).run()  # Experiments starts on the uploaded data (on a design until 2026-12-06)
        assert [w.value for w in at.warning if w.value.startswith("Outlying rows: 2")], page
    at.radio(key="exp_data").set_value("design").run()
    assert not [w for w in at.warning if w.value.startswith("Outlying rows")]  # a design's draws
    at.switch_page("pages/data.py").run()
    at.button(key="btn_drop_outliers").click().run()
    assert not at.exception, [e.value for e in at.exception]
    data = at.session_state["data"]
    assert data.n == len(y) - 2 and data.name == "mine.csv without 2 outlying rows"
    assert np.array_equal(data.y, np.delete(y, [10, 20])) and np.array_equal(data.X, np.delete(X, [10, 20], axis=0))
    assert not [w.value for w in at.warning if w.value.startswith("Outlying rows")]


@pytest.mark.parametrize("backend", ["sequential", "threading"])
def test_each_machine_checks_its_own_file(sim, tmp_path, backend):
    paths = []
    for m in range(4):
        part = slice(1000 * m, 1000 * (m + 1))
        frame = pd.DataFrame({"dose": sim.X[part, 0], "effect": sim.y[part]})
        if m == 2:
            frame.loc[7, "effect"] = 5000.0
        paths.append(tmp_path / f"site{m}.csv")
        frame.to_csv(paths[-1], index=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        DistributedMoE(2, 4, random_state=0, backend=backend).fit_shards([str(p) for p in paths], response="effect")
    found = [w for w in record if issubclass(w.category, OutlierWarning)]
    assert len(found) == 1 and found[0].filename == __file__  # pointed at the caller's line
    assert "in site2.csv, row 7 (effect = 5000) lies" in str(found[0].message)
