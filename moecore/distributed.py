"""Distribution over machines: shard the data, fit local MoEs in parallel, reduce them.

The local fits are independent, so they run with joblib (processes by default) or on a
``dask.distributed`` cluster.  Every random choice is drawn from child seeds of one
``numpy.random.SeedSequence``, one per machine, so the result depends on ``random_state`` alone and
not on ``n_jobs``, the backend or the order in which machines finish.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_feature_names

from ._threads import one_blas_thread as _one_thread
from ._validation import (
    check_choice,
    check_float,
    check_int,
    check_nonconstant_columns,
    check_random_state_seed,
    check_response_scale,
    check_Xy,
)
from .em import MixtureOfExperts, MoEPredictorMixin, min_samples
from .reduction import reduce_mixtures

__all__ = ["DistributedMoE", "LocalFitError", "LocalFitResult", "fit_local", "split_shards", "default_support_size"]

BACKENDS = {"loky", "threading", "multiprocessing", "sequential", "dask"}
_EM_KEYS = ("init", "n_init", "max_iter", "tol", "var_floor", "gate_steps")
# A machine whose worker died is re-run: once more in the pool (a one-off crash, e.g. a killed
# process, costs only a re-run), then alone in a fresh worker, where a second death can only be its
# own. Only then is it reported (on_error="raise") or skipped (on_error="skip").
_LOST_POOL_RETRIES = 1
_DASK_ATTEMPTS = 3


class LocalFitError(RuntimeError):
    """A machine's local fit failed; the message names the shard and the cause."""


@dataclass
class LocalFitResult:
    """What one machine sends back: its model (or the error) and its own fit time in seconds."""

    index: int
    n_samples: int
    model: MixtureOfExperts | None
    time: float
    error: str | None = None
    cpu_time: float = float("nan")  # CPU seconds of the fitting thread (immune to co-tenants)


def default_support_size(n, n_machines):
    """The paper's default supporting sample size floor(n / (4 M)): a quarter of a shard."""
    return max(1, n // (4 * n_machines))


def split_shards(n, n_machines, rng):
    """Shuffle 0..n-1 with ``rng`` and cut into ``n_machines`` near-equal index arrays."""
    return np.array_split(rng.permutation(n), n_machines)


def degeneracy(model: MixtureOfExperts):
    """Why a fitted local model is unusable for aggregation, or None if it is fine."""
    prm = model.params_
    for name, a in (("gates", prm.gates), ("experts", prm.experts), ("variances", prm.variances)):
        if not np.all(np.isfinite(a)):
            return f"non-finite {name}"
    if not np.isfinite(model.loglik_):
        return "non-finite log-likelihood"
    return None


def fit_local(index, X, y, n_experts, em_params, seed):
    """Fit one machine's MoE.  Never raises: an error is returned in the result.

    Parameters
    ----------
    index : int, the machine number (for messages)
    X : (n_m, d) ; y : (n_m,)
    em_params : dict of MixtureOfExperts parameters
    seed : numpy SeedSequence of this machine

    The fit runs BLAS on one thread (``MixtureOfExperts.fit`` does), so a worker process per core
    does not oversubscribe.
    """
    t0 = time.perf_counter()
    c0 = time.thread_time()
    try:
        est = MixtureOfExperts(n_experts, random_state=seed, **em_params)
        with warnings.catch_warnings():
            # The parent reports non-convergence per machine; a warning per worker is noise.
            warnings.simplefilter("ignore")
            est.fit(X, y)
        why = degeneracy(est)
        if why is not None:
            return LocalFitResult(index, len(y), None, time.perf_counter() - t0, f"degenerate model: {why}",
                                  time.thread_time() - c0)
        return LocalFitResult(index, len(y), est, time.perf_counter() - t0, None, time.thread_time() - c0)
    except Exception as exc:  # reported with the shard number by the caller
        return LocalFitResult(index, len(y), None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}",
                              time.thread_time() - c0)


def _fit_local_packed(index, shard, n_experts, em_params, seed):
    X, y = shard
    return fit_local(index, X, y, n_experts, em_params, seed)


_SHM_FOLDER = re.compile(r"^moecore-(\d+)-")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphaned_shared(shm="/dev/shm"):
    """Delete the shared copies left by processes that died mid-fit (killed, out of memory...).

    A copy's folder is named ``moecore-<pid of its process>-...``: those whose process no longer
    exists are orphans (a live process's copy is never touched). Returns the folders removed.
    """
    removed = []
    try:
        names = os.listdir(shm)
    except OSError:
        return removed
    for name in names:
        m = _SHM_FOLDER.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(shm, name), ignore_errors=True)
            removed.append(name)
    return removed


@contextmanager
def _shared_arrays(*arrays):
    """Read-only memory-mapped copies of ``arrays`` in /dev/shm, deleted on exit.

    A worker process receives a memory map as a file reference (joblib pickles np.memmap by
    reference), so every task can be given the whole data at no cost and take its rows itself.
    Without room in /dev/shm the arrays are yielded as they are: joblib then memory-maps large
    arguments itself, in its own temporary folder.  The folder carries this process's id, so that
    a later run removes it if this process is killed before its ``finally`` runs.
    """
    shm = "/dev/shm"
    need = sum(a.nbytes for a in arrays)
    if not (os.path.isdir(shm) and shutil.disk_usage(shm).free > 2 * need):
        yield arrays
        return
    remove_orphaned_shared(shm)
    folder = tempfile.mkdtemp(prefix=f"moecore-{os.getpid()}-", dir=shm)
    try:
        maps = []
        for i, a in enumerate(arrays):
            path = os.path.join(folder, f"a{i}.dat")
            mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
            mm[...] = a
            mm.flush()
            del mm
            maps.append(np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape))
        yield maps
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fit_local_rows(index, X, y, rows, n_experts, em_params, seed):
    """Machine ``index`` takes its rows of the whole (X, y) itself, outside its timed fit."""
    return fit_local(index, X[rows], y[rows], n_experts, em_params, seed)


class DistributedMoE(MoEPredictorMixin, BaseEstimator):
    """Distributed learning of a K-expert MoE: M local EM fits, then the OT/MM reduction.

    Parameters
    ----------
    n_experts : int, K >= 1
    n_machines : int, M >= 1
    support_size : int or None
        Size S of the supporting sample drawn from the pooled data; default floor(n / (4 M)).
    n_jobs : int or None, joblib's number of parallel local fits (-1: all cores)
    backend : {"loky", "threading", "multiprocessing", "sequential", "dask"}
    random_state : int, SeedSequence or None
    init, n_init, max_iter, tol, var_floor, gate_steps : the local fits' EM settings
        (see :class:`~moecore.em.MixtureOfExperts`)
    mm_n_init, mm_max_iter, mm_tol : the MM reduction's restarts and stopping rule
    variance_update : {"exact", "authors"}, see :func:`~moecore.reduction.reduce_mixtures`
    gate_targets : {"plan", "posterior"}, see :func:`~moecore.reduction.reduce_mixtures`
    on_error : {"raise", "skip"}
        What to do when a local fit fails: raise :class:`LocalFitError` naming the shard, or
        aggregate the other machines with renormalised weights (recorded in ``skipped_``).
    scheduler : str, dask Client or None
        For ``backend="dask"``: a scheduler address or a Client; None uses the current client.

    Attributes
    ----------
    local_models_ : list of MixtureOfExperts, one per machine that succeeded
    machines_ : ndarray (M',), the machine index of each entry of ``local_models_``
    skipped_ : dict {machine index: reason}
    weights_ : ndarray (M',), shares n_m / n of the kept machines, renormalised
    shards_ : list of index arrays, the rows of X each machine received
    support_indices_ : ndarray (S,), rows of X forming the supporting sample
    reduction_ : ReductionResult
    reduced_ : MixtureOfExperts, the reduced K-expert model
    gates_, experts_, variances_ : its parameters
    mm_history_ : ndarray, MM objective per iteration (non-increasing)
    transport_plan_ : TransportPlan
    timings_ : dict with "local" (M',) seconds of each local fit, "local_max", "local_sum",
        "reduction", "wall" (this fit, on the cores used) and "learning_time" = local_max +
        reduction (the paper's figure: machines truly in parallel)
    """

    def __init__(
        self,
        n_experts=2,
        n_machines=4,
        *,
        support_size=None,
        n_jobs=None,
        backend="loky",
        random_state=None,
        init="kmeans",
        n_init=1,
        max_iter=300,
        tol=1e-6,
        var_floor=1e-6,
        gate_steps=1,
        mm_n_init=3,
        mm_max_iter=200,
        mm_tol=1e-8,
        variance_update="exact",
        gate_targets="plan",
        on_error="raise",
        scheduler=None,
    ):
        self.n_experts = n_experts
        self.n_machines = n_machines
        self.support_size = support_size
        self.n_jobs = n_jobs
        self.backend = backend
        self.random_state = random_state
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.var_floor = var_floor
        self.gate_steps = gate_steps
        self.mm_n_init = mm_n_init
        self.mm_max_iter = mm_max_iter
        self.mm_tol = mm_tol
        self.variance_update = variance_update
        self.gate_targets = gate_targets
        self.on_error = on_error
        self.scheduler = scheduler

    # ------------------------------------------------------------------ validation
    def _check_parameters(self, n, d):
        K = check_int(self.n_experts, "n_experts", low=1)
        M = check_int(self.n_machines, "n_machines", low=1)
        check_int(self.n_jobs, "n_jobs", allow_none=True)
        if self.n_jobs == 0:
            raise ValueError("n_jobs must be a non-zero integer (-1 for all cores) or None, got 0.")
        check_choice(self.backend, "backend", BACKENDS)
        check_choice(self.on_error, "on_error", {"raise", "skip"})
        check_choice(self.variance_update, "variance_update", {"exact", "authors"})
        check_choice(self.gate_targets, "gate_targets", {"plan", "posterior"})
        check_int(self.mm_n_init, "mm_n_init", low=1)
        check_int(self.mm_max_iter, "mm_max_iter", low=1)
        check_float(self.mm_tol, "mm_tol", low=0.0)
        check_random_state_seed(self.random_state)
        MixtureOfExperts(K, **self._em_params())._check_parameters()
        # Every shard must hold enough points for K experts of d + 1 coefficients each.
        per_shard = min_samples(K, d)
        if n // M < per_shard:
            raise ValueError(
                f"n_machines={M} is too large for n={n} samples: each shard needs at least "
                f"n_experts * (d + 1) + 1 = {per_shard} samples, so n_machines must be at most "
                f"{max(n // per_shard, 0)} (or use fewer experts)."
            )
        if self.support_size is None:
            S = default_support_size(n, M)
        else:
            S = check_int(self.support_size, "support_size", low=K, high=n)
        return K, M, max(S, K)

    def _em_params(self):
        return {k: getattr(self, k) for k in _EM_KEYS}

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, *, machine=None, progress=None):
        """Shard (X, y) over the machines, fit them in parallel and reduce.

        Parameters
        ----------
        X : array-like (n, d) ; y : array-like (n,)
        machine : array-like (n,) of ints in 0..M-1, or None
            The machine holding each row, when the data is already partitioned (by site, by
            day...); None shuffles the rows into M near-equal shards.
        progress : callable(stage, done, total) or None
            Called with ("local", machines done, M) as local fits finish and with
            ("mm", iteration, max iterations) during the reduction.
        """
        # All or nothing: a refit that raises (a failed machine, a bad argument) leaves the
        # estimator as it was, never shards_ of the new data beside the old parameters.
        with _all_or_nothing(self):
            t0 = time.perf_counter()
            X_in = X
            X, y = check_Xy(X, y)
            n, d = X.shape
            K, M, S = self._check_parameters(n, d)
            check_nonconstant_columns(X)
            check_response_scale(y)
            ss = check_random_state_seed(self.random_state)
            seed_split, seed_support, seed_mm, seed_machines = ss.spawn(4)
            machine_seeds = seed_machines.spawn(M)
            if machine is None:
                shards = split_shards(n, M, np.random.default_rng(seed_split))
            else:
                shards = _shards_from_labels(machine, n, M)
            results = self._fit_locals(X, y, shards, machine_seeds, progress)
            self.shards_ = shards
            self._collect(results, n)
            self.support_indices_ = np.sort(
                np.random.default_rng(seed_support).choice(n, size=S, replace=False)
            )
            self._reduce(X[self.support_indices_], y[self.support_indices_], seed_mm, progress)
            _check_feature_names(self, X_in, reset=True)
            self.timings_["wall"] = time.perf_counter() - t0
            return self

    def _fit_locals(self, X, y, shards, seeds, progress):
        K = self.n_experts
        em = self._em_params()
        if self.backend == "dask":
            return self._fit_locals_dask(X, y, shards, seeds, progress)

        def lost(m, why):
            return LocalFitResult(m, len(shards[m]), None, float("nan"), why)

        if self.backend == "multiprocessing":
            # A plain process pool pickles every argument: send each machine its own rows only.
            tasks = [delayed(_fit_local_packed)(m, (X[idx], y[idx]), K, em, seeds[m])
                     for m, idx in enumerate(shards)]
            return self._run_joblib(tasks, len(shards), progress, lost)
        # Every task gets the whole (X, y) and its row indices. For worker processes (X, y) go
        # once into shared memory and each task carries a reference: copying each shard into its
        # task made the dispatching process pickle the whole data through pipes, taking CPU from
        # the workers while they fit (n = 1e6, M = 128 on 2 cores: slowest local fit 24 -> 17 ms).
        with _shared_arrays(X, y) if self._process_backend else nullcontext((X, y)) as (Xs, ys):
            tasks = (
                delayed(_fit_local_rows)(m, Xs, ys, idx, K, em, seeds[m])
                for m, idx in enumerate(shards)
            )
            return self._run_joblib(tasks, len(shards), progress, lost)

    @property
    def _process_backend(self):
        """Whether the local fits run in worker processes (rather than threads of this one)."""
        return self.backend in ("loky", "multiprocessing")

    def _run_joblib(self, tasks, M, progress, lost=None):
        """Run joblib tasks on the configured backend; results in machine order (``result.index``).

        Shared by the array path (:meth:`fit`) and the shard-file path (:meth:`fit_shards`).
        Task m must be the m-th of ``tasks``.  When a worker process dies (killed, out of memory),
        the results already back are kept and only the unfinished machines are re-run (see
        ``_LOST_POOL_RETRIES``); a machine that still dies becomes ``lost(m, why)`` (a failed
        result, which ``on_error`` then handles) or, with ``lost=None``, a :class:`LocalFitError`.
        """
        tasks = list(tasks)
        results = [None] * M
        done = 0

        def run(todo, n_jobs):
            nonlocal done
            for res in self._dispatch([tasks[m] for m in todo], n_jobs):
                results[res.index] = res
                done += 1
                if progress is not None:
                    progress("local", done, M)

        todo, why = list(range(M)), None
        for attempt in range(1 + _LOST_POOL_RETRIES):
            try:
                run(todo, self._effective_jobs(len(todo)))
                return results
            except _WORKER_LOST as exc:
                why = _lost_text(exc)
                todo = [m for m in range(M) if results[m] is None]
                warnings.warn(
                    f"a worker process died on host {os.uname().nodename} ({why}); the {M - len(todo)} "
                    f"finished local fit(s) are kept and machine(s) {todo} are run again.",
                    RuntimeWarning,
                    stacklevel=3,
                )
        # Still dying: run each remaining machine alone, so a death names its own machine.
        for m in todo:
            try:
                run([m], self._effective_jobs(1))
            except _WORKER_LOST as exc:
                why = (f"its worker process on host {os.uname().nodename} died at each of "
                       f"{2 + _LOST_POOL_RETRIES} attempts (the last alone): {_lost_text(exc)}")
                if lost is None:
                    raise LocalFitError(f"machine {m}: {why}") from None
                results[m] = lost(m, why)
        return results

    def _effective_jobs(self, n_tasks):
        """Workers for ``n_tasks`` tasks: never more than tasks, nor processes than cores."""
        if self.backend == "sequential":
            return 1
        cores = os.cpu_count() or 1
        n = self.n_jobs if self.n_jobs is not None else 1
        n = cores if n == -1 else (max(cores + 1 + n, 1) if n < 0 else n)
        if not self._process_backend:
            return max(1, min(n, n_tasks))
        n = min(n, cores)
        # joblib runs n_jobs=1 in this very process: keep a process pool (of 2) when one was asked
        # for, so a task that kills its worker (out of memory...) cannot take this process along.
        return max(min(n, 2), min(n, n_tasks))

    def _dispatch(self, tasks, n_jobs):
        """Yield the results of joblib ``delayed`` tasks as they finish."""
        if self.backend == "multiprocessing":
            # joblib's multiprocessing pool waits forever for the task of a killed worker; the
            # standard library's pool reports it (BrokenProcessPool). Forked workers, as joblib's
            # backend has them: spawn or forkserver would re-run a script without a __main__ guard.
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ex = ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("fork"))
            try:
                futures = [ex.submit(f, *a, **kw) for f, a, kw in tasks]
                for fut in as_completed(futures):
                    yield fut.result()
            finally:
                ex.shutdown(wait=False, cancel_futures=True)
            return
        backend = "sequential" if self.backend == "sequential" else self.backend
        # In-process fits share one BLAS pool: hold it at one thread around the whole batch, so that
        # concurrent fits entering and leaving their own limit never restore it under each other.
        with _one_thread() if not self._process_backend else nullcontext():
            yield from Parallel(n_jobs=n_jobs, backend=backend, return_as="generator_unordered")(tasks)

    @contextmanager
    def _dask_client(self):
        """The dask Client of ``scheduler``, closed afterwards if we opened it."""
        try:
            from distributed import Client, get_client
        except ImportError:  # pragma: no cover - dask is a requirement
            raise ImportError('backend="dask" needs the "distributed" package.') from None
        if self.scheduler is None:
            try:
                client = get_client()
            except ValueError:
                raise ValueError(
                    'backend="dask" needs a running dask client: pass scheduler="tcp://host:port" '
                    "or a distributed.Client, or create a Client first."
                ) from None
            yield client
        elif isinstance(self.scheduler, str):
            try:
                client = Client(self.scheduler, timeout=30)
            except OSError as exc:
                raise OSError(
                    f"could not connect to the dask scheduler at {self.scheduler!r}: {exc}"
                ) from None
            try:
                yield client
            finally:
                client.close()
        elif isinstance(self.scheduler, Client):
            yield self.scheduler
        else:
            raise TypeError(
                "scheduler must be None, an address string or a distributed.Client, got "
                f"{type(self.scheduler).__name__}."
            )

    @staticmethod
    def _gather_dask(futures, M, progress, resubmit=None, lost=None):
        """Results of dask futures in machine order, reporting progress as they complete.

        A future lost with its worker (the worker died, or the data scattered to it went with
        it) is resubmitted by ``resubmit(m)`` (a new future for machine m), up to
        ``_DASK_ATTEMPTS`` times in all; a machine lost every time becomes ``lost(m, why)`` or,
        with ``lost=None``, a :class:`LocalFitError`.  Errors raised by the task itself propagate.
        """
        from distributed import as_completed

        results = [None] * M
        machine = {fut.key: m for m, fut in enumerate(futures)}
        attempts = dict.fromkeys(range(M), 1)
        ac = as_completed(futures)
        done = 0
        for fut in ac:
            m = machine[fut.key]
            try:
                res = fut.result()
            except _DASK_LOST as exc:
                why = _lost_text(exc)
                if resubmit is not None and attempts[m] < _DASK_ATTEMPTS:
                    warnings.warn(f"machine {m} was lost with its dask worker ({why}); its shard is "
                                  "sent again and fitted elsewhere.", RuntimeWarning, stacklevel=3)
                    attempts[m] += 1
                    new = resubmit(m)
                    machine[new.key] = m
                    ac.add(new)
                    continue
                why = f"lost with its dask worker {attempts[m]} time(s): {why}"
                if lost is None:
                    raise LocalFitError(f"machine {m}: {why}") from None
                res = lost(m, why)
            results[res.index] = res
            done += 1
            if progress is not None:
                progress("local", done, M)
        return results

    def _fit_locals_dask(self, X, y, shards, seeds, progress):
        with self._dask_client() as client:
            # Each shard travels once, to the worker that will fit it: scatter places the data,
            # the task then runs where its data already is (no pickling of arrays per task).
            # Scattered data has no recipe on the cluster: if its worker dies, the shard is sent
            # again from here (resubmit).
            data = []

            def submit(m):
                data.append(client.scatter([(X[shards[m]], y[shards[m]])])[0])
                return client.submit(_fit_local_packed, m, data[-1], self.n_experts, self._em_params(),
                                     seeds[m], pure=False)

            def lost(m, why):
                return LocalFitResult(m, len(shards[m]), None, float("nan"), why)

            try:
                data.extend(client.scatter([(X[idx], y[idx]) for idx in shards]))
                futures = [
                    client.submit(_fit_local_packed, m, data[m], self.n_experts, self._em_params(),
                                  seeds[m], pure=False)
                    for m in range(len(shards))
                ]
                return self._gather_dask(futures, len(shards), progress, submit, lost)
            finally:
                client.cancel(data)

    def fit_shards(self, paths, *, response="y", features=None, workers=None, progress=None):
        """Fit from data that already lives on the machines: one CSV or Parquet file per machine.

        Each file is read by the worker that fits it (the full data never passes through one
        process); each worker also draws its share of the supporting sample, proportional to its
        number of rows, with its own seed.  Then the local models are reduced as in :meth:`fit`.
        See :func:`moecore.shards.fit_shards` for the parameters.
        """
        from .shards import fit_shards

        return fit_shards(self, paths, response=response, features=features, workers=workers,
                          progress=progress)

    def _collect(self, results, n):
        failed = {r.index: r.error for r in results if r.error is not None}
        if failed and self.on_error == "raise":
            m, why = next(iter(sorted(failed.items())))
            raise LocalFitError(
                f"local fit of machine {m} (shard of {results[m].n_samples} samples) failed: {why}. "
                f"{len(failed)} of {len(results)} machine(s) failed; pass on_error='skip' to "
                "aggregate the others."
            )
        kept = [r for r in results if r.error is None]
        if not kept:
            raise LocalFitError(f"all {len(results)} local fits failed; first error: {results[0].error}")
        if failed:
            warnings.warn(
                f"skipped {len(failed)} failed machine(s) {sorted(failed)}; the others are "
                "aggregated with renormalised weights.",
                RuntimeWarning,
                stacklevel=3,
            )
        self.skipped_ = failed
        self.local_models_ = [r.model for r in kept]
        self.machines_ = np.array([r.index for r in kept])
        sizes = np.array([r.n_samples for r in kept], dtype=float)
        self.weights_ = sizes / sizes.sum()
        local_times = np.array([r.time for r in results])
        self.timings_ = {
            "local": local_times,
            "local_max": float(local_times.max()),
            "local_sum": float(local_times.sum()),
            # CPU seconds of each local fit: what a dedicated machine would take, whatever else
            # shares the cores here (the wall-clock "local" figures include such waits).
            "local_cpu": np.array([r.cpu_time for r in results]),
        }
        self.timings_["local_cpu_max"] = float(np.max(self.timings_["local_cpu"]))
        not_conv = [r.index for r in kept if not r.model.converged_]
        if not_conv:
            warnings.warn(
                f"the local EM of machine(s) {not_conv} did not converge in max_iter={self.max_iter}.",
                RuntimeWarning,
                stacklevel=3,
            )

    def _reduce(self, Xs, ys, seed, progress):
        cb = None
        if progress is not None:
            def cb(i, state):
                progress("mm", state.iteration, self.mm_max_iter)
        c0 = time.thread_time()
        red = reduce_mixtures(
            [m.params_ for m in self.local_models_],
            self.weights_,
            Xs,
            self.n_experts,
            y_support=ys,
            n_init=self.mm_n_init,
            max_iter=self.mm_max_iter,
            tol=self.mm_tol,
            variance_update=self.variance_update,
            gate_targets=self.gate_targets,
            random_state=seed,
            callback=cb,
        )
        self.reduction_ = red
        self.support_X_ = Xs
        self.reduced_ = MixtureOfExperts.from_params(red.params)
        self.params_ = red.params
        self.gates_, self.experts_, self.variances_ = red.params.gates, red.params.experts, red.params.variances
        self.mm_history_ = red.objective_history
        self.transport_plan_ = red.plan
        self.n_features_in_ = red.params.n_features
        self.timings_["reduction"] = red.time
        self.timings_["learning_time"] = self.timings_["local_max"] + red.time
        self.timings_["reduction_cpu"] = time.thread_time() - c0
        self.timings_["learning_time_cpu"] = self.timings_["local_cpu_max"] + self.timings_["reduction_cpu"]


def _shards_from_labels(machine, n, M):
    machine = np.asarray(machine)
    if machine.shape != (n,):
        raise ValueError(f"machine must hold one machine index per row of X ({n}), got shape {machine.shape}.")
    if machine.dtype.kind not in "iu":
        raise TypeError(f"machine must hold integers in [0, {M - 1}], got dtype {machine.dtype}.")
    if machine.min() < 0 or machine.max() >= M:
        raise ValueError(f"machine indices must lie in [0, n_machines - 1] = [0, {M - 1}].")
    shards = [np.flatnonzero(machine == m) for m in range(M)]
    empty = [m for m, s in enumerate(shards) if s.size == 0]
    if empty:
        raise ValueError(f"machine(s) {empty} hold no rows: every one of the {M} machines needs data.")
    return shards


@contextmanager
def _all_or_nothing(est):
    """A refit that raises leaves ``est`` exactly as it was (every fitted attribute)."""
    before = dict(est.__dict__)
    try:
        yield
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(before)
        raise


def _worker_lost_types():
    from concurrent.futures.process import BrokenProcessPool

    return (BrokenProcessPool,)  # loky's TerminatedWorkerError is one


def _dask_lost_types():
    from concurrent.futures import CancelledError

    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - dask is a requirement
        return (CancelledError,)
    return (CancelledError, KilledWorker)


_WORKER_LOST = _worker_lost_types()
_DASK_LOST = _dask_lost_types()


def _lost_text(exc, limit=300):
    """One short line saying how a worker was lost (loky's message runs over several lines)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + "..."
