"""Issue 15, the compute core in a hostile world: silent wrong answers, lost data, dying workers.

Each test names the case of the issue it covers.  Worker faults are real: a worker process is
killed with SIGKILL (loky, multiprocessing), a dask LocalCluster worker process is killed; no
exception is raised by a task to pretend.  The threading and sequential backends run the local
fits inside this process: there is no worker process to lose (a dead thread would be this
process dying), so they have no kill test.
"""

import os
import signal
import subprocess
import sys
import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path

import distributed
import numpy as np
import pandas as pd
import psutil
import pytest

from moecore import DistributedMoE, LocalFitError, MixtureOfExperts, simulate_design
from moecore.cli import main as cli_main
from moecore.local import fit_local, fit_task

ROOT = Path(__file__).resolve().parents[1]
K, M = 3, 6


@pytest.fixture(scope="module")
def sim():
    return simulate_design("teaching-1d", 6000, random_state=5)


@pytest.fixture(scope="module")
def big():
    # Local fits of ~25 ms each: when the first machine is back, the others are still running.
    return simulate_design("separated-2d", 48000, random_state=1)


def quiet_fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **kw)


# ------------------------------------------------------------------ case 2: feature names
def test_case2_predict_refuses_reordered_columns(sim):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": sim.X[:, 0], "b": rng.uniform(-1, 1, len(sim.y))})
    for est in (MixtureOfExperts(K, random_state=0), DistributedMoE(K, 4, backend="sequential", random_state=0)):
        quiet_fit(est, df, sim.y)
        assert list(est.feature_names_in_) == ["a", "b"]
        np.testing.assert_array_equal(est.predict(df), est.predict(df.to_numpy()))
        with pytest.raises(ValueError, match="feature names should match"):
            est.predict(df[["b", "a"]])
        with pytest.raises(ValueError, match="feature names should match"):
            est.score(df[["b", "a"]], sim.y)
        # A refit on a plain array forgets the names (as scikit-learn does).
        quiet_fit(est, df.to_numpy(), sim.y)
        assert not hasattr(est, "feature_names_in_")


# ------------------------------------------------------------------ case 3: shard files
def _write_shards(sim, folder, n=2, sep=",", ext="csv"):
    paths = []
    for m in range(n):
        p = folder / f"s{m}.{ext}"
        pd.DataFrame({"x": sim.X[m::n, 0], "y": sim.y[m::n]}).to_csv(p, index=False, sep=sep)
        paths.append(p)
    return paths


def test_case3_one_file_under_two_names_is_refused(sim, tmp_path, monkeypatch):
    a, _ = _write_shards(sim, tmp_path)
    (tmp_path / "link.csv").symlink_to(a)
    monkeypatch.chdir(tmp_path)
    est = DistributedMoE(K, 2, backend="sequential", random_state=0)
    for other in ("./s0.csv", str(tmp_path / "link.csv"), str(tmp_path / "sub" / ".." / "s0.csv")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ValueError, match="listed more than once"):
            est.fit_shards([str(a), other])


def test_case3_extra_fields_tsv_and_directories(sim, tmp_path):
    a, b = _write_shards(sim, tmp_path)
    lines = b.read_text().split("\n")
    for row in (1, 7):  # the first data row (pandas would make it an index) and a later one
        bad = list(lines)
        bad[row] += ",99"
        p = tmp_path / f"extra{row}.csv"
        p.write_text("\n".join(bad))
        with pytest.raises(ValueError, match=f"extra{row}.csv"):
            DistributedMoE(K, 2, backend="sequential", random_state=0).fit_shards([a, p])
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        DistributedMoE(K, 2, backend="sequential", random_state=0).fit_shards([a, tmp_path / "folder.csv"])
    tsv = _write_shards(sim, tmp_path, sep="\t", ext="tsv")
    via_tsv = quiet_fit_shards(tsv)
    via_csv = quiet_fit_shards([a, b])
    np.testing.assert_array_equal(via_tsv.params_.vector(), via_csv.params_.vector())


def quiet_fit_shards(paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DistributedMoE(K, len(paths), backend="sequential", random_state=0).fit_shards(paths)


# ------------------------------------------------------------------ case 4: extreme scales
@pytest.mark.parametrize("scale", [1e160, 1e-13])
def test_case4_rescaled_x_gives_the_same_model(sim, scale):
    # x -> c x is an exact reparametrisation: slopes divide by c, the likelihood is unchanged.
    ref = quiet_fit(MixtureOfExperts(K, random_state=0), sim.X, sim.y)
    est = quiet_fit(MixtureOfExperts(K, random_state=0), sim.X * scale, sim.y)
    np.testing.assert_allclose(est.loglik_, ref.loglik_, rtol=1e-9)
    np.testing.assert_allclose(est.experts_[1] * scale, ref.experts_[1], rtol=1e-6)
    np.testing.assert_allclose(est.experts_[0], ref.experts_[0], rtol=1e-6, atol=1e-9)
    assert np.all(est.experts_[1] != 0)


def test_case4_score_far_away_is_minus_inf_not_nan(sim):
    est = quiet_fit(MixtureOfExperts(K, random_state=0), sim.X, sim.y)
    assert est.score(np.full((3, 1), 1e300), np.zeros(3)) == -np.inf
    assert est.score(sim.X[:3], np.full(3, 1e300)) == -np.inf
    assert np.all(np.isfinite(est.score_samples(sim.X[:100], sim.y[:100])))


def test_case4_response_too_spread_is_named(sim):
    for est in (MixtureOfExperts(K, random_state=0), DistributedMoE(K, 4, backend="sequential", random_state=0)):
        with pytest.raises(ValueError, match=r"^y varies over about .*Rescale y"):
            est.fit(sim.X, sim.y * 1e200)


# ------------------------------------------------------------------ case 5: SeedSequence
def test_case5_a_seedsequence_is_not_consumed(sim):
    ss = np.random.SeedSequence(42)
    spawned = ss.n_children_spawned
    for make in (lambda: MixtureOfExperts(K, init="random", random_state=ss),
                 lambda: DistributedMoE(K, 4, backend="sequential", random_state=ss)):
        a = quiet_fit(make(), sim.X, sim.y).params_.vector()
        b = quiet_fit(make(), sim.X, sim.y).params_.vector()
        np.testing.assert_array_equal(a, b)
    assert ss.n_children_spawned == spawned


# ------------------------------------------------------------------ case 13: atomic refit
def test_case13_failed_refit_leaves_the_estimator_as_it_was(sim):
    est = quiet_fit(DistributedMoE(K, 4, backend="sequential", random_state=0), sim.X, sim.y)
    before = {k: v for k, v in vars(est).items() if k.endswith("_")}
    y_bad = sim.y.copy()
    y_bad[est.shards_[2]] = 1.0  # machine 2 of the refit gets a constant response: its local fit fails
    with pytest.raises(LocalFitError, match="machine 2"):
        est.fit(sim.X, y_bad)
    after = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    for k in before:
        assert after[k] is before[k], k
    np.testing.assert_array_equal(est.predict(sim.X[:5]), before["reduced_"].predict(sim.X[:5]))


# ------------------------------------------------------------------ case 14: /dev/shm orphans
@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_case14_copy_of_a_killed_process_is_removed_by_the_next_run():
    from moecore.dispatch import _shared_arrays

    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time, numpy as np
            from moecore.dispatch import _shared_arrays
            with _shared_arrays(np.arange(1000.0), np.ones(1000)) as maps:
                print(maps[0].filename, flush=True)
                time.sleep(120)
        """)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        folder = Path(child.stdout.readline().strip()).parent
        assert folder.name.startswith(f"moecore-{child.pid}-") and folder.is_dir()
        # A live process's copy is never touched.
        with _shared_arrays(np.zeros(4)):
            assert folder.is_dir()
        child.send_signal(signal.SIGKILL)  # the child's finally never runs
        child.wait(10)
        assert folder.is_dir()
        with _shared_arrays(np.zeros(4)) as (own,):
            assert not folder.exists()
            assert Path(own.filename).parent.name.startswith(f"moecore-{os.getpid()}-")
    finally:
        child.kill()
        child.wait(10)


# ------------------------------------------------------------------ case 15: command line
@pytest.mark.parametrize("args, expect", [
    (["--seed", "-1"], "--seed: must be in [0, 4294967295], got -1"),
    (["--experts", "0"], "--experts/-K: must be at least 1"),
    (["--n-jobs", "0"], "--n-jobs: must be a positive"),
    (["--csv", "/nonexistent/dir/x.csv"], "folder /nonexistent/dir does not exist"),
])
def test_case15_bad_arguments_are_one_line_errors(capsys, args, expect):
    try:
        rc = cli_main(["compare", "--n", "3000", "--n-test", "500", "--machines", "2", *args])
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and expect in err and "Traceback" not in err, err


def test_case15_multiprocessing_backend_runs(capsys):
    rc = cli_main(["compare", "--design", "teaching-1d", "--n", "4000", "--n-test", "1000", "--machines", "4",
                   "--n-jobs", "2", "--backend", "multiprocessing"])
    assert rc == 0 and "reduction" in capsys.readouterr().out


# ------------------------------------------------------------------ case 12: dying workers
def _listens(proc):
    """Whether ``proc`` listens on a TCP port: a dask worker (another test's cluster, in this pytest worker, is
    spawned by multiprocessing too), not a pool's worker."""
    try:
        return any(c.status == psutil.CONN_LISTEN for c in proc.net_connections(kind="tcp"))
    except psutil.Error:
        return False


def _worker_pids(kind):
    """This process's worker processes of one backend (not loky's resource tracker)."""
    out = []
    for c in psutil.Process().children(recursive=True):
        try:
            cl = " ".join(c.cmdline())
        except psutil.Error:
            continue
        if kind == "loky" and "popen_loky" in cl:
            out.append(c.pid)
        elif kind == "multiprocessing" and "loky" not in cl and "resource_tracker" not in cl and not _listens(c):
            out.append(c.pid)
    return out


def _killer(kind, killed):
    """A progress callback that SIGKILLs one worker process once the first machine is back."""
    def progress(stage, done, total):
        if stage == "local" and done == 1 and not killed:
            pids = _worker_pids(kind)
            assert pids, "no worker process to kill"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
    return progress


def _same_fit(a, b):
    np.testing.assert_array_equal(a.machines_, b.machines_)
    for la, lb in zip(a.local_models_, b.local_models_, strict=True):
        np.testing.assert_array_equal(la.params_.vector(), lb.params_.vector())
    np.testing.assert_array_equal(a.params_.vector(), b.params_.vector())


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_case12_killed_worker_process_costs_a_rerun_only(big, backend):
    kw = dict(n_experts=4, n_machines=8, n_jobs=2, random_state=3)
    ref = quiet_fit(DistributedMoE(backend="threading", **kw), big.X, big.y)
    killed = []
    with pytest.warns(RuntimeWarning, match=r"worker process died .* finished result\(s\) are kept"):
        dm = DistributedMoE(backend=backend, **kw).fit(big.X, big.y, progress=_killer(backend, killed))
    assert killed
    assert dm.skipped_ == {}
    _same_fit(dm, ref)


def _fit_or_die(X, y, index, n_experts, em_params, seed, local_experts):
    """A local fit whose machine 2 kills its own worker process (as the kernel's out-of-memory
    killer would), at every attempt."""
    if index == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return fit_local(index, X, y, n_experts, em_params, seed, local_experts)


class DoomedMoE(DistributedMoE):
    """DistributedMoE whose machine 2 always takes its worker process down with it."""

    @contextmanager
    def _machine_data(self, X, y, shards):
        assert self.backend in ("loky", "multiprocessing")  # never in this very process
        with super()._machine_data(X, y, shards) as machines:
            real = machines.run

            def run(fn, *args, **kw):
                return real(_fit_or_die if fn is fit_task else fn, *args, **kw)

            machines.run = run
            yield machines


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_case12_machine_that_always_kills_its_worker_is_skipped_or_named(sim, backend):
    kw = dict(n_experts=K, n_machines=M, n_jobs=2, random_state=3)
    ref = quiet_fit(DistributedMoE(backend="threading", **kw), sim.X, sim.y)
    dm = quiet_fit(DoomedMoE(backend=backend, on_error="skip", **kw), sim.X, sim.y)
    # The skip rule: machine 2 alone is skipped, every other local fit is the undisturbed one,
    # the weights are renormalised over the kept machines.
    assert list(dm.skipped_) == [2] and "died" in dm.skipped_[2] and "alone" in dm.skipped_[2]
    np.testing.assert_array_equal(dm.machines_, [0, 1, 3, 4, 5])
    for m, local in zip(dm.machines_, dm.local_models_, strict=True):
        np.testing.assert_array_equal(local.params_.vector(), ref.local_models_[m].params_.vector())
    sizes = np.array([len(ref.shards_[m]) for m in dm.machines_], dtype=float)
    np.testing.assert_allclose(dm.weights_, sizes / sizes.sum())
    if backend == "multiprocessing":  # forked pools restart in milliseconds: check "raise" here
        with pytest.raises(LocalFitError, match=r"machine 2 .*worker process on host \S+ died"):
            quiet_fit(DoomedMoE(backend=backend, **kw), sim.X, sim.y)


def test_case12_killed_dask_worker_costs_a_resend_only(big):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, scheduler_port=0, silence_logs=50)
    client = distributed.Client(cluster)
    try:
        kw = dict(n_experts=4, n_machines=8, random_state=3, backend="dask", scheduler=client)
        ref = quiet_fit(DistributedMoE(**kw), big.X, big.y)
        pids = sorted(client.run(os.getpid).values())
        killed = []

        def progress(stage, done, total):
            if stage == "local" and done == 1 and not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dm = DistributedMoE(**kw).fit(big.X, big.y, progress=progress)
        assert killed
        resent = [str(w.message) for w in caught if "sent again" in str(w.message)]
        assert resent, "the kill lost no machine: the test did not test anything"
        assert dm.skipped_ == {}
        _same_fit(dm, ref)
    finally:
        client.close()
        cluster.close()
