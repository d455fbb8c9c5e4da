"""DistributedMoE on a real dask.distributed cluster (several worker processes).

The local fits and the reduction must be those of the loky backend for the same random_state:
the seeds are per machine, so where a fit runs cannot change it.
"""

import subprocess
import sys
import textwrap
import time
import traceback
import warnings

import numpy as np
import pytest
from cluster_helpers import client_of, local_cluster

from moecore import DistributedMoE, simulate_design

K, M = 4, 4


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as lc:
        yield lc


@pytest.fixture(scope="module")
def client(cluster):
    with client_of(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data():
    return simulate_design("separated-2d", 6000, random_state=3)


def _fit(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return DistributedMoE(K, M, random_state=7, max_iter=100, **kw).fit(data.X, data.y)


def _same(a, b):
    for ma, mb in zip(a.local_models_, b.local_models_, strict=True):
        for name in ("gates_", "experts_", "variances_"):
            np.testing.assert_allclose(getattr(ma, name), getattr(mb, name), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(a.machines_, b.machines_)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=0, atol=0)
    for name in ("gates_", "experts_", "variances_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.mm_history_, b.mm_history_, rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def loky_fit(data):
    return _fit(data, backend="loky", n_jobs=2)


def test_dask_without_client_is_a_clear_error():
    # In a process of its own: the cluster fixtures of this module leave a default client in
    # this one, and the error is about there being none.
    code = textwrap.dedent("""
        from moecore import DistributedMoE, simulate_design
        data = simulate_design("separated-2d", 600, random_state=3)
        try:
            DistributedMoE(2, 2, backend="dask", random_state=7).fit(data.X, data.y)
        except ValueError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "needs a running dask client" in out.stdout, out.stdout + out.stderr


def test_cluster_has_several_worker_processes(client):
    info = client.scheduler_info()
    assert len(info["workers"]) == 2
    pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids


def test_dask_client_equals_loky(client, data, loky_fit):
    dm = _fit(data, backend="dask", scheduler=client)
    _same(dm, loky_fit)
    assert dm.timings_["learning_time"] > 0 and len(dm.timings_["local"]) == M


def test_dask_scheduler_address_equals_loky(cluster, data, loky_fit):
    addr = cluster.scheduler_address
    assert isinstance(addr, str) and addr.startswith("tcp://")
    dm = _fit(data, backend="dask", scheduler=addr)
    _same(dm, loky_fit)


def test_dask_current_client_and_progress(client, data, loky_fit):
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dm = DistributedMoE(K, M, random_state=7, max_iter=100, backend="dask").fit(
            data.X, data.y, progress=lambda stage, done, total: calls.append((stage, done, total))
        )
    _same(dm, loky_fit)
    local = [c for c in calls if c[0] == "local"]
    assert [c[1] for c in local] == list(range(1, M + 1)) and all(c[2] == M for c in local)


@pytest.mark.parametrize("n_jobs", [1, 2, 4])
def test_determinism_across_n_jobs_and_backends(client, data, loky_fit, n_jobs):
    """Issue 5: one random_state, identical parameters for every n_jobs and backend."""
    _same(_fit(data, backend="loky", n_jobs=n_jobs), loky_fit)
    _same(_fit(data, backend="threading", n_jobs=n_jobs), loky_fit)
    if n_jobs == 1:
        _same(_fit(data, backend="dask", scheduler=client), loky_fit)


def test_dask_data_scattered_once_not_in_task_graph(client, data):
    """The shards go to the workers by scatter: the submitted tasks carry only keys."""
    seen = []
    orig = client.scatter

    def spy(obj, *a, **k):
        seen.append(len(obj))
        return orig(obj, *a, **k)

    client.scatter = spy
    try:
        _fit(data, backend="dask", scheduler=client)
    finally:
        del client.scatter
    assert seen == [M]


def test_dask_bad_scheduler_type(data):
    with pytest.raises(TypeError, match=r"scheduler must be None, an address string or a distributed\.Client"):
        _fit(data, backend="dask", scheduler=3.5)


def test_refinement_rounds_on_the_cluster_equal_loky(client, data):
    """Rounds run where the scattered shards live and give the same model as on loky."""
    ref = _fit(data, backend="loky", n_jobs=2, refine_rounds=2)
    dm = _fit(data, backend="dask", scheduler=client, refine_rounds=2)
    _same(dm, ref)
    np.testing.assert_array_equal(dm.refine_loglik_, ref.refine_loglik_)
    assert dm.timings_["rounds"].shape == (2,)
    assert np.all(np.diff(dm.refine_loglik_) >= -1e-9 * np.abs(dm.refine_loglik_[:-1]))


def test_interrupted_fit_leaves_nothing_on_the_cluster(cluster, client, data, loky_fit):
    """Ctrl-C in a notebook mid local fits: the fit ends by KeyboardInterrupt, the cluster drops the
    machines' tasks and data although the exception is still held (as a notebook's last traceback
    holds it), and the same client fits again.  The interrupt is raised where the fit waits for its
    machines: a real SIGINT lands wherever the main thread happens to be, and under a test worker
    one was once not seen at all (a fresh-clone CI run), which is no part of what is tested here."""
    big = simulate_design("separated-2d", 200_000, random_state=5)
    before = set(cluster.scheduler.tasks)

    def interrupt_after_the_first(stage, done, total):
        if stage == "local" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as held:
        DistributedMoE(K, 8, random_state=7, backend="dask", scheduler=client).fit(
            big.X, big.y, progress=interrupt_after_the_first)
    assert "gather_dask" in [f.f_code.co_name for f, _ in traceback.walk_tb(held.value.__traceback__)]
    deadline = time.monotonic() + 20
    while set(cluster.scheduler.tasks) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    left = set(cluster.scheduler.tasks) - before
    assert not left, f"{len(left)} task(s) of the interrupted fit still on the cluster"
    _same(_fit(data, backend="dask", scheduler=client), loky_fit)


def test_a_model_fitted_with_a_client_pickles_with_its_address(cluster, client, data):
    import pickle

    dm = _fit(data, backend="dask", scheduler=client)
    back = pickle.loads(pickle.dumps(dm))
    assert back.scheduler == cluster.scheduler_address and dm.scheduler is client  # the original keeps its Client
    np.testing.assert_array_equal(back.predict(data.X[:50]), dm.predict(data.X[:50]))
    # That address fits on the same cluster: test_dask_scheduler_address_equals_loky. A second client
    # connecting here once failed inside distributed ("assert len(msg) == 1" in _ensure_connected, a
    # fresh-clone CI run), which that test has not shown in any run.


def test_an_estimator_with_a_client_clones_for_cross_validation(client, data):
    # clone deep-copied the Client: "cannot pickle '_asyncio.Task'" from cross_val_score or GridSearchCV.
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    est = DistributedMoE(4, 4, backend="dask", scheduler=client, random_state=0)
    twin = clone(est)
    assert twin is not est and twin.scheduler is client and twin.get_params() == est.get_params()
    scores = cross_val_score(est, data.X, data.y, cv=2)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
