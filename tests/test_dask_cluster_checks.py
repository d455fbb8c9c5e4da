"""A researcher's cluster, the hostile way (the audit of 2026-12-06): what hung forever, what raised from inside
dask, and what fitted changed data without a word.  Real LocalClusters of worker processes."""

import os
import re
import signal
import subprocess
import sys
import time
import warnings

import distributed
import joblib
import numpy as np
import pandas as pd
import pytest
from cluster_helpers import client_of, local_cluster

import moecore.dispatch
from moecore import DistributedMoE, simulate_design
from moecore.local import LocalFitError
from moecore.shards import ShardError

K, M = 3, 4


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as lc:
        yield lc


@pytest.fixture()
def client(cluster):
    with client_of(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data():
    return simulate_design("teaching-1d", 4000, random_state=1)


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _fit_in_a_task(M):
    """A sweep's task: a whole distributed fit on the cluster that runs the task."""
    data = simulate_design("teaching-1d", 4000, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DistributedMoE(K, M, backend="dask", random_state=0).fit(data.X, data.y).experts_


def test_fits_mapped_over_the_cluster_run_their_machines_on_it(client, data):
    # Every worker thread held an outer task waiting for inner tasks that had no thread left: forever.
    futures = client.map(_fit_in_a_task, [2, 4], pure=False)
    distributed.wait(futures, timeout=120)  # a TimeoutError here is the old hang
    direct = [_quiet(DistributedMoE(K, m, backend="dask", scheduler=client, random_state=0).fit, data.X,
                     data.y).experts_ for m in (2, 4)]
    for got, want in zip(client.gather(futures), direct, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_closed_client_is_named(cluster, data):
    c = distributed.Client(cluster)
    c.close()
    with pytest.raises(ValueError, match=r"scheduler: the distributed.Client is closed: pass an open Client"):
        DistributedMoE(K, M, backend="dask", scheduler=c).fit(data.X, data.y)


def test_a_cluster_without_workers_or_without_moecore_is_refused_before_any_task(data, tmp_path, monkeypatch):
    # A 30 s "TimeoutError: No valid workers found" from scatter, and a worker that died unpickling the first task.
    monkeypatch.setattr(moecore.dispatch, "_WORKER_WAIT", 1.0)
    with local_cluster(n_workers=0) as lc:
        _refused_before_any_task(lc, data, tmp_path)


def _refused_before_any_task(lc, data, tmp_path):
    c = distributed.Client(lc)
    worker = None
    try:
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=r"has no workers \(waited 1 s\): start some \(dask worker tcp://"):
            DistributedMoE(K, M, backend="dask", scheduler=c).fit(data.X, data.y)
        assert time.perf_counter() - t0 < 20
        fake = tmp_path / "moecore"
        fake.mkdir()
        (fake / "__init__.py").write_text('raise ImportError("this worker has no moecore")\n')
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", lc.scheduler_address,
                                   "--nthreads", "1", "--no-dashboard"], env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                                  cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c.wait_for_workers(1, timeout=60)
        with pytest.raises(ValueError, match=r"1 of the 1 dask workers cannot run this fit: worker tcp://\S+: cannot "
                                             r"import moecore \(ImportError: this worker has no moecore\)"):
            DistributedMoE(K, M, backend="dask", scheduler=c).fit(data.X, data.y)
        assert len(c.scheduler_info()["workers"]) == 1  # the worker is still there: no task reached it
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        c.close()


def _write_shards(data, folder):
    paths = []
    for m in range(M):
        path = folder / f"s{m}.csv"
        pd.DataFrame({"x": data.X[m::M, 0], "y": data.y[m::M]}).to_csv(path, index=False)
        paths.append(str(path))
    return paths


def test_a_worker_name_nobody_has_is_refused(client, data, tmp_path):
    paths = _write_shards(data, tmp_path)
    real = list(client.scheduler_info()["workers"])
    with pytest.raises(ValueError, match=r"workers: \['tcp://127.0.0.1:1'\] name no worker of the dask cluster \(1 of "
                                         r"the 4 entries\)"):
        DistributedMoE(K, M, backend="dask", scheduler=client).fit_shards(
            paths, workers=[real[0], real[1], real[0], "tcp://127.0.0.1:1"])


@pytest.fixture()
def own_client():
    """A client of a cluster of its own, for a test that kills its workers: a nanny restarts them slowly on a
    loaded machine, and the next test would meet a cluster of one."""
    with local_cluster() as lc, client_of(lc) as c:
        yield c


def test_a_machine_whose_pinned_worker_dies_fails_by_name_instead_of_waiting(own_client, data, tmp_path):
    client = own_client
    paths = _write_shards(data, tmp_path)
    pids = client.run(os.getpid)
    w = list(pids)
    killed = []

    def progress(stage, done, total):
        if stage == "local" and not killed:
            killed.append(w[1])
            os.kill(pids[w[1]], signal.SIGKILL)

    t0 = time.perf_counter()
    with pytest.raises(LocalFitError, match=rf"machine [13].*: its task waited for worker {re.escape(w[1])}, which "
                                            r"left the cluster"):
        _quiet(DistributedMoE(K, M, backend="dask", scheduler=client, random_state=0, refine_rounds=1).fit_shards,
               paths, workers=[w[0], w[1], w[0], w[1]], progress=progress)
    assert killed and time.perf_counter() - t0 < 60


def test_a_shard_rewritten_then_reloaded_after_its_worker_died_is_refused(own_client, data, tmp_path):
    # dask reloaded the lost shards from the rewritten files: the rounds fitted y + 100 (intercepts 100.4 where the
    # machines had fitted 2.0), with no error; loky's pinned files said so.
    client = own_client
    paths = _write_shards(data, tmp_path)
    pids = client.run(os.getpid)
    done = []

    def progress(stage, k, total):
        if stage == "mm" and not done:
            done.append(1)
            for p in paths:
                frame = pd.read_csv(p)
                frame.assign(y=frame["y"] + 100).to_csv(p, index=False)
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)
            client.wait_for_workers(1, timeout=60)

    with pytest.raises(ShardError, match=r"machine \d: shard file .*s\d\.csv.* holds 1000 rows as when its machine "
                                         r"fitted them, but other values \(read again after its worker was lost\)"):
        _quiet(DistributedMoE(K, M, backend="dask", scheduler=client, random_state=0, refine_rounds=2).fit_shards,
               paths, progress=progress)


def test_n_jobs_none_takes_joblibs_parallel_config():
    from moecore.dispatch import Runner

    assert Runner("threading").effective_jobs(8) == 1
    with joblib.parallel_config(n_jobs=3):
        assert Runner("threading").effective_jobs(8) == 3
        assert Runner("threading", n_jobs=2).effective_jobs(8) == 2  # a number given wins
