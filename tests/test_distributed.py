"""DistributedMoE: sharding, determinism across n_jobs and backends, failing machines, timings."""

import warnings

import numpy as np
import pytest

from moecore import DistributedMoE, LocalFitError
from moecore.em import ConvergenceWarning, DegenerateFitWarning
from moecore.metrics import parameter_mse, rpe
from moecore.simulation import simulate_design


@pytest.fixture(scope="module")
def data():
    return simulate_design("separated-2d", 24000, random_state=11)


def fit(data, **kw):
    params = dict(n_experts=4, n_machines=8, random_state=3, n_init=2)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return DistributedMoE(**params).fit(data.X, data.y)


def test_fit_attributes_and_timings(data):
    dm = fit(data, n_jobs=2)
    assert len(dm.local_models_) == 8 and dm.skipped_ == {}
    np.testing.assert_allclose(dm.weights_.sum(), 1.0)
    assert sorted(np.concatenate(dm.shards_).tolist()) == list(range(24000))
    assert len(dm.support_indices_) == 24000 // (4 * 8)
    assert dm.gates_.shape == dm.experts_.shape == (3, 4) and dm.variances_.shape == (4,)
    assert np.all(np.diff(dm.mm_history_) <= 1e-9 * np.abs(dm.mm_history_[:-1]))
    t = dm.timings_
    assert t["local"].shape == (8,) and np.all(t["local"] > 0)
    # The learning time, extended by the screening and its comparisons (every machine but the best-scoring one).
    assert dm.flagged_ == [] and t["refit"].size == 0 and t["rounds"].size == 0 and t["compare"].shape == (7,)
    assert t["learning_time"] == pytest.approx(t["local_max"] + t["screening"] + t["compare"].max()
                                               + t["reduction"])
    assert t["wall"] >= t["reduction"]
    assert dm.transport_plan_.coupling.shape == (32, 4)
    assert dm.predict(data.X[:10]).shape == (10,)
    np.testing.assert_allclose(dm.predict_proba(data.X[:10]).sum(1), 1.0)
    assert dm.score(data.X, data.y) == pytest.approx(dm.reduced_.score(data.X, data.y))


def test_same_seed_same_result_for_any_n_jobs_and_backend(data):
    ref = fit(data, n_jobs=1, backend="sequential")
    for kw in ({"n_jobs": 2, "backend": "loky"}, {"n_jobs": 4, "backend": "loky"},
               {"n_jobs": 2, "backend": "threading"}, {"n_jobs": 1, "backend": "loky"}):
        other = fit(data, **kw)
        np.testing.assert_array_equal(other.experts_, ref.experts_, err_msg=str(kw))
        np.testing.assert_array_equal(other.gates_, ref.gates_, err_msg=str(kw))
        np.testing.assert_array_equal(other.variances_, ref.variances_, err_msg=str(kw))
    assert not np.array_equal(fit(data, random_state=4, n_jobs=1).experts_, ref.experts_)


def test_support_size_and_variance_options(data):
    dm = fit(data, support_size=500, n_jobs=1, variance_update="authors", gate_targets="posterior")
    assert len(dm.support_indices_) == 500
    with pytest.raises(ValueError, match="support_size"):
        fit(data, support_size=24001)


def test_failing_machines_are_named_or_skipped():
    data = simulate_design("separated-2d", 32000, random_state=5)
    test = simulate_design("separated-2d", 20000, random_state=6)
    machine = np.repeat(np.arange(16), 2000)
    np.random.default_rng(0).shuffle(machine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        full = DistributedMoE(4, 16, random_state=1, n_init=2, n_jobs=2).fit(data.X, data.y, machine=machine)
    # Machines 3, 7 and 11 get a stuck sensor: a constant input column, which no MoE can fit.
    X_bad = data.X.copy()
    for m in (3, 7, 11):
        X_bad[machine == m, 0] = 0.5
    # Refused before any fit, naming the machines (a LocalFitError once the others had fitted, until 2026-12-06).
    with pytest.raises(ValueError, match=r"input column 0 .* single value on the rows of 3 of the 16 machines "
                                         r"\[3, 7, 11\]"):
        DistributedMoE(4, 16, random_state=1, n_init=2, n_jobs=2).fit(X_bad, data.y, machine=machine)
    with pytest.warns(RuntimeWarning, match=r"skipped 3 failed machine\(s\) \[3, 7, 11\]"):
        skip = DistributedMoE(4, 16, random_state=1, n_init=2, n_jobs=2, on_error="skip").fit(
            X_bad, data.y, machine=machine
        )
    assert sorted(skip.skipped_) == [3, 7, 11] and "take a single value on this machine's" in skip.skipped_[3]
    assert len(skip.local_models_) == 13
    np.testing.assert_allclose(skip.weights_, np.full(13, 1 / 13))
    # 13/16 of the data: the expert MSE may grow by about 16/13; allow twice the full run's.
    mse_full = parameter_mse(full.params_, data.params)["experts"]
    mse_skip = parameter_mse(skip.params_, data.params)["experts"]
    assert mse_skip < 2 * mse_full + 1e-4, (mse_skip, mse_full)
    r_full, r_skip = rpe(test.y, full.predict(test.X)), rpe(test.y, skip.predict(test.X))
    assert r_skip < 1.05 * r_full


def test_progress_callback_reports_every_machine_and_mm_iteration(data):
    events = []
    DistributedMoE(4, 8, random_state=0, n_jobs=1, backend="sequential").fit(
        data.X, data.y, progress=lambda stage, done, total: events.append((stage, done, total))
    )
    local = [e for e in events if e[0] == "local"]
    assert [e[1] for e in local] == list(range(1, 9)) and all(e[2] == 8 for e in local)
    assert any(e[0] == "mm" for e in events)


def test_worker_processes_share_the_data_and_it_is_removed_afterwards(data, monkeypatch):
    # Process backends put (X, y) once into a memory map that every task references; the files
    # must be gone after the fit, whether it succeeds or a machine fails.
    import glob
    import os

    from moecore import dispatch

    made = []
    real = dispatch._shared_arrays

    def spy(*arrays):
        cm = real(*arrays)
        made.append(cm)
        return cm

    monkeypatch.setattr(dispatch, "_shared_arrays", spy)
    # This process's copies only (named by its pid): other processes may be fitting meanwhile.
    pattern = [os.path.join("/dev/shm", f"moecore-{os.getpid()}-*")]
    before = {p for pat in pattern for p in glob.glob(pat)}
    dm = DistributedMoE(4, 4, n_jobs=2, backend="loky", random_state=3).fit(data.X, data.y)
    seq = DistributedMoE(4, 4, n_jobs=1, backend="sequential", random_state=3).fit(data.X, data.y)
    np.testing.assert_array_equal(dm.params_.vector(), seq.params_.vector())
    y_bad = data.y.copy()
    y_bad[dm.shards_[1]] = 2.0  # machine 1 gets a constant response, which its local fit refuses
    with pytest.raises(LocalFitError, match="machine 1 "):
        DistributedMoE(4, 4, n_jobs=2, backend="loky", random_state=3).fit(data.X, y_bad)
    assert len(made) == 2  # one shared copy per process-backend fit, none for "sequential"
    assert {p for pat in pattern for p in glob.glob(pat)} == before


def test_without_room_in_shared_memory_the_fit_is_the_same(data, monkeypatch):
    from collections import namedtuple

    from moecore import dispatch

    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(dispatch.shutil, "disk_usage", lambda path: Usage(1, 1, 0))
    with dispatch._shared_arrays(data.X, data.y) as (Xs, ys):
        assert Xs is data.X and ys is data.y  # handed over as they are, joblib maps them itself
    dm = DistributedMoE(4, 4, n_jobs=2, backend="loky", random_state=3).fit(data.X, data.y)
    seq = DistributedMoE(4, 4, n_jobs=1, backend="sequential", random_state=3).fit(data.X, data.y)
    np.testing.assert_array_equal(dm.params_.vector(), seq.params_.vector())


def test_a_quiet_distributed_fit_warns_nothing_and_fits_the_same():
    # Sweeps run many fits in app threads: their machines' non-convergence is read from the
    # fitted models, not announced through process-wide warning filters.
    sim = simulate_design("overlapping-5d", 4000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = DistributedMoE(3, 4, max_iter=2, n_jobs=1, random_state=0)._fit(sim.X, sim.y, quiet=True)
    assert not any(m.converged_ for m in quiet.local_models_)
    # ConvergenceWarning, as a global fit's (a RuntimeWarning escaped a ConvergenceWarning filter).
    with pytest.warns(ConvergenceWarning, match="the local EM of machine"):
        loud = DistributedMoE(3, 4, max_iter=2, n_jobs=1, random_state=0).fit(sim.X, sim.y)
    np.testing.assert_array_equal(quiet.experts_, loud.experts_)
    assert quiet.timings_["learning_time"] > 0  # the quiet path is the whole fit, costs included


def test_local_fits_that_retire_spare_experts_warn_as_a_global_fit_does():
    # A region machine that sees fewer experts than K retires the spare ones: a DegenerateFitWarning, as
    # MixtureOfExperts' own retired experts (a RuntimeWarning escaped that category's filter).
    from moecore.em import DegenerateFitWarning

    tr = simulate_design("crossing-2d", 3000, random_state=3)
    with pytest.warns(DegenerateFitWarning, match=r"the local fits of machine\(s\) \[\d+.*retired spare experts"):
        dm = DistributedMoE(3, 16, split="region", random_state=0, backend="sequential").fit(tr.X, tr.y)
    assert any(m.retired_experts_.size for m in dm.local_models_)


def test_the_small_shard_warning_sees_the_smallest_shard_of_machine_labels():
    # fit used n // M: machine labels (or a skewed split) with a 12-row machine beside 2 000-row ones passed,
    # while fit_shards on the same rows warned (the audit of 2026-12-06).
    from moecore import SmallShardWarning

    sim = simulate_design("separated-2d", 6000, random_state=0)
    lab = np.where(np.arange(6000) < 12, 0, 1 + np.arange(6000) % 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        with pytest.warns(SmallShardWarning, match=r"smallest shard holds 12 rows for the 18 parameters"):
            DistributedMoE(3, 4, backend="sequential", random_state=0).fit(sim.X, sim.y, machine=lab)
