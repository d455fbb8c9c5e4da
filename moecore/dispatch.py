"""Where the machines' tasks run: joblib (processes, threads, sequential) or a dask cluster.

:class:`Runner` holds the backend settings of a fit and runs per-machine tasks on them, re-running
the machines whose worker died; :class:`MachineData` says where each machine's data lives during a
fit (this process, shared memory, dask futures, files) and runs a function next to it.  Nothing
here knows what the tasks compute (:mod:`moecore.local`) or which estimator asked
(:mod:`moecore.distributed`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext

import numpy as np
from joblib import Parallel, delayed

from ._threads import one_blas_thread as _one_thread
from ._warn import warn
from .local import LocalFitError, MachineWarning

__all__ = ["MachineData", "Runner", "SchedulerPickling", "check_scheduler_backend", "gather_dask",
           "remove_orphaned_shared"]

# A machine whose worker died is re-run: once more in the pool (a one-off crash, e.g. a killed
# process, costs only a re-run), then alone, where a further death can only be its own. Only then
# is it reported (on_error="raise") or, for a local fit, skipped (on_error="skip").
_LOST_POOL_RETRIES = 1
_DASK_ATTEMPTS = 3

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


def _exit_with_parent(parent, kernel_watch):
    """Worker initializer: end this worker process once its parent, process ``parent``, is gone.

    A parent killed mid-fit (SIGKILL, the OOM killer) runs no cleanup: without this its workers
    go on computing, then wait for work for loky's idle timeout (300 s), holding memory and
    keeping the resource trackers alive (docs/method.md section 11).  With ``kernel_watch``
    (Linux, workers started from the parent's main thread) the kernel kills the worker when its
    parent dies (PR_SET_PDEATHSIG, which needs no GIL: a worker busy in a long kernel is stopped
    too).  Not otherwise: the signal follows the *thread* that started the worker, and a
    Streamlit script thread ends after every rerun while its pool lives on.  A daemon thread also
    notices the worker being re-parented.
    """
    if kernel_watch:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # not Linux
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="moecore-parent-watch", daemon=True).start()


# In a worker: whether it started with SIGINT blocked, as moecore's workers must (read by the tests).
_STARTED_DEAF = None


def _ctrl_c_ends_worker():
    """Worker initializer: from now on SIGINT ends this worker at once, silently (the system's default
    action, not Python's KeyboardInterrupt), and a Ctrl-C that came while it started ends it now.

    The worker was started with SIGINT blocked (:func:`_spawning_deaf_workers`): taken during its start
    (importing NumPy, in loky's bootstrap, in a garbage-collector callback), Python's KeyboardInterrupt
    printed a traceback that the parent cannot catch.  Ended by the signal, the worker tells its parent
    why (loky: "terminated ... SIGINT"), and a fit waiting on it stops as interrupted, even in a thread
    that is not the one Python gives KeyboardInterrupt to (a Streamlit session's, a user's).
    """
    global _STARTED_DEAF
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _STARTED_DEAF = signal.SIGINT in signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _worker_start(parent, kernel_watch):
    """Every worker process's initializer: :func:`_exit_with_parent`, then :func:`_ctrl_c_ends_worker`."""
    _exit_with_parent(parent, kernel_watch)
    _ctrl_c_ends_worker()


@contextmanager
def _ctrl_c_blocked():
    """SIGINT blocked in this thread: a process started meanwhile inherits the mask."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_SPAWNING = threading.local()  # .deaf: this thread is starting moecore's workers
_WRAP_LOCK = threading.Lock()


def _loky_spawn_wrapped():
    """Make loky start its processes with SIGINT blocked while this thread is in
    :func:`_spawning_deaf_workers`.  Wraps the one function loky starts processes with (looked up at
    each start), once per process; loky pools that other code starts are left as they are."""
    try:
        from joblib.externals.loky.backend import fork_exec as module
    except ImportError:  # pragma: no cover - a joblib without that module starts workers otherwise
        return
    with _WRAP_LOCK:
        spawn = module.fork_exec
        if getattr(spawn, "_moecore_deaf", False):
            return

        @functools.wraps(spawn)
        def wrapper(*args, **kwargs):
            if not getattr(_SPAWNING, "deaf", False):
                return spawn(*args, **kwargs)
            with _ctrl_c_blocked():
                return spawn(*args, **kwargs)

        wrapper._moecore_deaf = True
        module.fork_exec = wrapper


@contextmanager
def _spawning_deaf_workers():
    """Worker processes that this thread starts meanwhile start with SIGINT blocked, until their
    initializer (:func:`_ctrl_c_ends_worker`) has run.

    A terminal's Ctrl-C goes to the whole foreground process group, workers included.  A worker that
    took it while starting printed a traceback that this process cannot catch (it failed a CI run; 3 of
    25 interruptions in a loop here).  A blocked signal is inherited across fork and exec and waits;
    the initializer then lets it end the worker silently.  This thread itself still takes Ctrl-C.
    """
    _loky_spawn_wrapped()
    before = getattr(_SPAWNING, "deaf", False)
    _SPAWNING.deaf = True
    try:
        yield
    finally:
        _SPAWNING.deaf = before


def _pool_processes(executor):
    """A ProcessPoolExecutor's worker processes (multiprocessing.Process); [] where it hides them."""
    return list((getattr(executor, "_processes", None) or {}).values())


def _exit_code_text(code):
    """A process's exit code as loky writes it: ``SIGINT(-2)`` for a signal, ``EXIT(1)`` otherwise."""
    if code < 0:
        try:
            return f"{signal.Signals(-code).name}({code})"
        except ValueError:
            pass
    return f"EXIT({code})"


def _kill_workers(executor):
    """Stop a ProcessPoolExecutor's workers mid-task: an interrupt that reached this process alone
    (``kill -INT``, a notebook's interrupt) would otherwise leave them computing, and the exit waits
    for them."""
    if hasattr(executor, "kill_workers"):  # Python 3.14
        executor.kill_workers()
        return
    for proc in _pool_processes(executor):
        proc.kill()


def _watch_args():
    """The arguments of :func:`_worker_start` for workers started now, from this thread."""
    return os.getpid(), threading.current_thread() is threading.main_thread()


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _call_rows(fn, m, X, y, rows, args):
    """Machine ``m`` takes its rows of the whole (X, y) itself, then runs ``fn`` on them (timed)."""
    Xm, ym = X[rows], y[rows]
    return m, _timed(fn, Xm, ym, *args)


def _call_packed(fn, m, packed, args):
    X, y = packed[:2]
    return m, _timed(fn, X, y, *args)


def _call_file(fn, m, read, path, args):
    """Machine ``m`` on a joblib worker: ``read(path)`` gives its (X, y) (a reader that keeps the
    file in memory for later rounds and checks it is unchanged, e.g. :class:`moecore.shards.PinnedShards`)."""
    X, y = read(path)
    return m, _timed(fn, X, y, *args)


def _worker_lost_types():
    from concurrent.futures.process import BrokenProcessPool

    return (BrokenProcessPool,)  # loky's TerminatedWorkerError is one


@functools.cache
def _dask_lost_types():
    # Imported on first use: dask.distributed takes 0.26 s to import, which every process that
    # never uses the dask backend (the app's first page load among them) would pay.
    from concurrent.futures import CancelledError

    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - dask is a requirement
        return (CancelledError,)
    return (CancelledError, KilledWorker)


_WORKER_LOST = _worker_lost_types()


def _raise_if_interrupted(exc):
    """A worker that died of SIGINT took the user's Ctrl-C (sent to the whole foreground process
    group): stop as interrupted rather than re-run the machines and blame the workers."""
    if "SIGINT" in str(exc):
        raise KeyboardInterrupt from None


def _lost_text(exc, limit=300):
    """One short line saying how a worker was lost (loky's message runs over several lines)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit] + "..."


class Runner:
    """Runs one task per machine on a joblib backend or a dask cluster, despite dying workers.

    Parameters
    ----------
    backend : {"loky", "threading", "multiprocessing", "sequential", "dask"}
    n_jobs : int or None, joblib's number of parallel tasks (-1: all cores)
    scheduler : str, dask Client or None, for ``backend="dask"`` (None: the current client)

    The settings are those of :class:`~moecore.distributed.DistributedMoE`, which checks them.
    """

    def __init__(self, backend="loky", n_jobs=None, scheduler=None):
        check_scheduler_backend(scheduler, backend)
        self.backend = backend
        self.n_jobs = n_jobs
        self.scheduler = scheduler

    @property
    def process_backend(self):
        """Whether the tasks run in worker processes (rather than threads of this one)."""
        return self.backend in ("loky", "multiprocessing")

    def effective_jobs(self, n_tasks):
        """Workers for ``n_tasks`` tasks: never more than tasks, nor processes than cores."""
        if self.backend == "sequential":
            return 1
        cores = os.cpu_count() or 1
        # None: joblib's default, which a `with joblib.parallel_config(n_jobs=...)` block sets (1 outside one);
        # it was read as 1 whatever the block said (the audit of 2026-12-06).
        n = self.n_jobs if self.n_jobs is not None else _joblib_default_jobs()
        n = cores if n == -1 else (max(cores + 1 + n, 1) if n < 0 else n)
        if not self.process_backend:
            return max(1, min(n, n_tasks))
        n = min(n, cores)
        # joblib runs n_jobs=1 in this very process: keep a process pool (of 2) when one was asked
        # for, so a task that kills its worker (out of memory...) cannot take this process along.
        return max(min(n, 2), min(n, n_tasks))

    def dispatch(self, tasks, n_jobs):
        """Yield the results of joblib ``delayed`` tasks as they finish."""
        if self.backend == "multiprocessing":
            # joblib's multiprocessing pool waits forever for the task of a killed worker (and
            # cannot return results unordered); the standard library's pool reports the death
            # (BrokenProcessPool). Forked workers, as joblib's backend has them: spawn or
            # forkserver would re-run a user's script that lacks a __main__ guard.
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ex = ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("fork"),
                                     initializer=_worker_start, initargs=_watch_args())
            workers = []
            try:
                # The pool forks its workers at the first submit, from this thread, which they take
                # their signal mask from (see _spawning_deaf_workers).
                with _ctrl_c_blocked():
                    futures = [ex.submit(f, *a, **kw) for f, a, kw in tasks]
                workers = _pool_processes(ex)
                for fut in as_completed(futures):
                    yield fut.result()
            except KeyboardInterrupt:
                _kill_workers(ex)
                raise
            except _WORKER_LOST as exc:
                # The pool says only that a worker ended abruptly: name how, as loky's error does, for
                # with_retries to read (a Ctrl-C: _raise_if_interrupted) and to report.
                for w in workers:
                    w.join(1)
                codes = sorted({w.exitcode for w in workers if w.exitcode})
                if not codes:
                    raise
                raise type(exc)(f"{exc} The exit codes of the workers are "
                                f"{{{', '.join(_exit_code_text(c) for c in codes)}}}") from None
            finally:
                ex.shutdown(wait=False, cancel_futures=True)
            return
        # In-process fits share one BLAS pool: hold it at one thread around the whole batch, so that
        # concurrent fits entering and leaving their own limit never restore it under each other.
        # (Local fits are quiet by a flag, not by warnings.catch_warnings, for the same reason.)
        with _one_thread() if not self.process_backend else nullcontext():
            workers = {"initializer": _worker_start, "initargs": _watch_args()} if self.backend == "loky" else {}
            with _spawning_deaf_workers() if self.backend == "loky" else nullcontext():
                yield from Parallel(n_jobs=n_jobs, backend=self.backend, return_as="generator_unordered",
                                    **workers)(tasks)

    def with_retries(self, machines, run_some, is_done, store_lost):
        """Run every machine of ``machines`` by ``run_some(todo, n_jobs)`` despite dying workers.

        When a worker process dies (killed, out of memory) the results already back are kept and
        only the unfinished machines run again: once more in the pool, then each alone, so that a
        death names its own machine.  A machine that still dies goes to ``store_lost(m, why)``
        (a failed result, which ``on_error`` then handles), or raises :class:`LocalFitError`
        when ``store_lost`` is None.
        """
        todo = list(machines)
        for _ in range(1 + _LOST_POOL_RETRIES):
            try:
                run_some(todo, self.effective_jobs(len(todo)))
                return
            except _WORKER_LOST as exc:
                _raise_if_interrupted(exc)
                left = [m for m in todo if not is_done(m)]
                warn(
                    f"a worker process died on host {os.uname().nodename} ({_lost_text(exc)}); the "
                    f"{len(todo) - len(left)} finished result(s) are kept and machine(s) {left} are "
                    "run again.",
                    MachineWarning,
                )
                todo = left
        for m in todo:
            try:
                run_some([m], self.effective_jobs(1))
            except _WORKER_LOST as exc:
                _raise_if_interrupted(exc)
                why = (f"its worker process on host {os.uname().nodename} died at each of "
                       f"{2 + _LOST_POOL_RETRIES} attempts (the last alone): {_lost_text(exc)}")
                if store_lost is None:
                    raise LocalFitError(f"machine {m}: {why}") from None
                store_lost(m, why)

    def run_joblib(self, tasks, M, progress, lost=None):
        """Run joblib tasks; results in machine order (``result.index``).

        Task m must be the m-th of ``tasks`` and return an object whose ``index`` is m.  A machine
        lost every time becomes ``lost(m, why)`` (or raises, ``lost=None``): see :meth:`with_retries`.
        """
        tasks = list(tasks)
        results = [None] * M
        done = 0

        def run_some(todo, n_jobs):
            nonlocal done
            for res in self.dispatch([tasks[m] for m in todo], n_jobs):
                results[res.index] = res
                done += 1
                if progress is not None:
                    progress("local", done, M)

        def store_lost(m, why):
            results[m] = lost(m, why)

        self.with_retries(range(M), run_some, lambda m: results[m] is not None,
                          None if lost is None else store_lost)
        return results

    @contextmanager
    def dask_client(self):
        """The dask Client of ``scheduler``, closed afterwards if we opened it, once the cluster is checked
        (:func:`check_cluster`).  Inside a task of the same cluster (a sweep of fits mapped over it) the
        task's thread leaves the worker's pool while the fit waits for its machines (``worker_client``):
        blocking it, the outer tasks held every thread the inner ones needed, and the fit waited forever."""
        try:
            from distributed import Client, get_client, worker_client
        except ImportError:  # pragma: no cover - dask is a requirement
            raise ImportError('backend="dask" needs the "distributed" package.') from None
        if not (self.scheduler is None or isinstance(self.scheduler, (str, Client))):
            raise TypeError(
                "scheduler must be None, an address string or a distributed.Client, got "
                f"{type(self.scheduler).__name__}."
            )
        own = _own_scheduler()
        target = self.scheduler if isinstance(self.scheduler, str) or self.scheduler is None else \
            getattr(getattr(self.scheduler, "scheduler", None), "address", None)
        if own is not None and (target is None or target == own):
            with worker_client() as client:
                check_cluster(client)
                yield client
        elif self.scheduler is None:
            try:
                client = get_client()
            except ValueError:
                raise ValueError(
                    'backend="dask" needs a running dask client: pass scheduler="tcp://host:port" '
                    "or a distributed.Client, or create a Client first."
                ) from None
            check_cluster(client)
            yield client
        elif isinstance(self.scheduler, str):
            try:
                client = Client(self.scheduler, timeout=30)
            except OSError as exc:
                raise OSError(
                    f"could not connect to the dask scheduler at {self.scheduler!r}: {exc}"
                ) from None
            try:
                check_cluster(client)
                yield client
            finally:
                client.close()
        else:
            check_cluster(self.scheduler)
            yield self.scheduler

    @contextmanager
    def machine_data(self, X, y, shards):
        """The machines' data for a whole fit (local fits, refits, refinement rounds): X (n, d),
        y (n,) and ``shards``, a list of M row-index arrays.  Yields a :class:`MachineData`.

        For worker processes (X, y) go once into shared memory and each task carries a reference:
        copying each shard into its task made the dispatching process pickle the whole data
        through pipes, taking CPU from the workers while they fit (n = 1e6, M = 128 on 2 cores:
        slowest local fit 24 -> 17 ms).  With dask each shard is scattered once, to the worker
        that fits it, and stays there until the fit ends.
        """
        if self.backend == "dask":
            with self.dask_client() as client:
                # Fresh keys (hash=False), not content hashes: the previous fit of the same data
                # on this cluster cancels its keys when it ends, and a new fit scattering the same
                # content under the same keys raced with the scheduler forgetting them (its tasks
                # then waited forever: seen once in a full test run).
                data = client.scatter([(X[idx], y[idx]) for idx in shards], hash=False)

                def resend(m):
                    # Scattered data has no recipe on the cluster: it dies with its worker. The
                    # shard is still here; send it again, to whichever worker takes it, under a
                    # fresh key: re-scattering under the content hash (the lost key) could race
                    # with the scheduler forgetting that key, and the re-run then waited forever.
                    data[m] = client.scatter([(X[shards[m]], y[shards[m]])], hash=False)[0]

                try:
                    yield MachineData(self, "dask", data, client, resend=resend)
                finally:
                    client.cancel(data)
            return
        with _shared_arrays(X, y) if self.process_backend else nullcontext((X, y)) as (Xs, ys):
            yield MachineData(self, "rows", (Xs, ys, shards))


def _joblib_default_jobs():
    """The n_jobs of the enclosing ``joblib.parallel_config`` block (its -1 as the cores), 1 outside one."""
    from joblib import effective_n_jobs

    return max(1, int(effective_n_jobs(None)))


def _own_scheduler():
    """The scheduler address of the dask worker running this thread's task, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker().scheduler.address
    except (ImportError, ValueError, AttributeError):
        return None


# Seconds a fit waits for a cluster without workers to get one.
_WORKER_WAIT = 10.0
# Per client, the workers found able to run moecore's tasks: checked again only when others join.  Weak keys:
# a closed client's entry goes with it.
_CHECKED_WORKERS = weakref.WeakKeyDictionary()


def check_cluster(client):
    """Refuse, before any task, a dask ``client`` that is closed, a cluster without workers (after
    ``_WORKER_WAIT`` s) or with workers that cannot import this moecore: each met a bare AttributeError
    from inside dask, a 30 s "TimeoutError: No valid workers found", or a worker that died unpickling
    the first task (the audit of 2026-12-06).  ValueError naming what to change."""
    import importlib

    __version__ = importlib.import_module(__package__).__version__  # imported, not "from .": no import cycle

    status = getattr(client, "status", "running")
    if status != "running":
        raise ValueError(f"scheduler: the distributed.Client is {status}: pass an open Client, or the scheduler's "
                         "address (scheduler='tcp://host:port').")
    address = getattr(getattr(client, "scheduler", None), "address", "the scheduler")
    try:
        client.wait_for_workers(1, timeout=_WORKER_WAIT)
    except TimeoutError:
        raise ValueError(f"the dask cluster at {address} has no workers (waited {_WORKER_WAIT:g} s): start some "
                         f"(dask worker {address}), or scale the cluster, then fit again.") from None
    workers = frozenset(client.scheduler_info().get("workers", {}))
    if workers <= _CHECKED_WORKERS.get(client, frozenset()):
        return

    def version():  # sent by value (a local function): the worker need not import moecore to run it
        import importlib

        try:
            return importlib.import_module("moecore").__version__
        except Exception as exc:  # any failure to import is the answer
            return f"cannot import moecore ({type(exc).__name__}: {exc})"

    found = client.run(version)
    bad = {w: v for w, v in found.items() if v != __version__}
    if bad:
        w, v = next(iter(bad.items()))
        v = v if v.startswith("cannot") else f"it has moecore {v}"
        raise ValueError(f"{len(bad)} of the {len(found)} dask workers cannot run this fit: worker {w}: {v}; this "
                         f"process has moecore {__version__}. Install the same moecore on every worker.")
    _CHECKED_WORKERS[client] = frozenset(found)


def check_scheduler_backend(scheduler, backend):
    """Refuse a ``scheduler`` that ``backend`` would ignore (a user who meant the cluster)."""
    if scheduler is not None and backend != "dask":
        raise ValueError(f"scheduler is for backend='dask' only, and backend={backend!r} would ignore it: pass "
                         "backend='dask' to fit on that cluster, or leave scheduler=None.")


class SchedulerPickling:
    """An estimator with a ``scheduler`` parameter that pickles: a distributed.Client holds sockets
    and an event loop and cannot be pickled, so the pickle keeps the address of its scheduler, which
    names the same cluster (None once the client is closed: the current client)."""

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: BaseEstimator may hand back the instance's own dict
        client = state.get("scheduler")
        if client is not None and not isinstance(client, str):
            address = getattr(getattr(client, "scheduler", None), "address", None)
            state["scheduler"] = address if isinstance(address, str) else None
        return state

    def __sklearn_clone__(self):
        """scikit-learn's ``clone`` (cross_val_score, GridSearchCV) deep-copies every parameter, and a
        Client cannot be copied: the clone shares it, as two estimators on one cluster would."""
        from sklearn.base import clone

        params = self.get_params(deep=False)
        client = params.pop("scheduler")
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, scheduler=client)


def gather_dask(futures, M, progress, resubmit=None, lost=None, stage="local", stranded=None):
    """Results of dask futures in the order of ``futures``, reporting progress as they complete.

    A future lost with its worker (the worker died, or the data scattered to it went with
    it) is replaced by ``resubmit(i)`` (a new future for position i), up to ``_DASK_ATTEMPTS``
    times in all; a position lost every time becomes ``lost(i, why)`` or, with ``lost=None``,
    a :class:`LocalFitError`.  ``stranded(i)``: why the task at position i can never run (pinned to
    a worker that left the cluster), or None; checked every ``_STRANDED_CHECK_S`` seconds, such a
    task is cancelled and lost at once, where dask would keep it waiting for its worker forever.
    Errors raised by the task itself propagate.
    """
    from distributed import as_completed

    results = [None] * M
    position = {fut.key: i for i, fut in enumerate(futures)}
    current = dict(enumerate(futures))
    attempts = dict.fromkeys(range(M), 1)
    gone: dict = {}  # position -> why its pinned worker is gone (set by the watcher)
    finished = threading.Event()
    if stranded is not None:
        def watch():
            while not finished.wait(_STRANDED_CHECK_S):
                for i, fut in list(current.items()):
                    why = None if i in gone or fut.done() else stranded(i)
                    if why is not None:
                        gone[i] = why
                        fut.cancel()
        threading.Thread(target=watch, daemon=True, name="moecore-stranded-tasks").start()
    ac = as_completed(futures)
    done = 0
    try:
        for fut in ac:
            i = position[fut.key]
            try:
                res = fut.result()
            except _dask_lost_types() as exc:
                why = f"its task waited for {gone[i]}" if i in gone else _lost_text(exc)
                if i not in gone and resubmit is not None and attempts[i] < _DASK_ATTEMPTS:
                    warn(f"task {i} was lost with its dask worker ({why}); it is sent again and run elsewhere.",
                         MachineWarning)
                    attempts[i] += 1
                    new = resubmit(i)
                    position[new.key] = i
                    current[i] = new
                    ac.add(new)
                    continue
                why = why if i in gone else f"lost with its dask worker {attempts[i]} time(s): {why}"
                if lost is None:
                    raise LocalFitError(f"machine {i}: {why}") from None
                res = lost(i, why)
            results[i] = res
            current.pop(i, None)
            done += 1
            if progress is not None:
                progress(stage, done, M)
    finally:
        finished.set()
    return results


# Seconds between the checks that a pinned task's worker is still in the cluster.
_STRANDED_CHECK_S = 1.0


def pinned_worker_gone(client, where, n):
    """``stranded`` for :func:`gather_dask`: why the task of position i, pinned by ``where(i)`` (a dict of
    ``workers`` and ``allow_other_workers``), can no longer run, or None; None (no watch) when none of the
    ``n`` positions is pinned."""
    if not any(where(i).get("workers") and not where(i).get("allow_other_workers", True) for i in range(n)):
        return None

    def stranded(i):
        place = where(i)
        if not place.get("workers") or place.get("allow_other_workers", True):
            return None
        present = set(client.scheduler_info().get("workers", {}))
        gone = [w for w in place["workers"] if w not in present]
        return None if len(gone) < len(place["workers"]) else (
            f"worker {gone[0]}, which left the cluster (the files pinned to it are read nowhere else)")
    return stranded


class MachineData:
    """Where each machine's data lives during a fit, and how to run a function on it there.

    ``kind`` is "rows" (one (X, y) in this process or in shared memory, and each machine's row
    indices: ``payload = (X, y, shards)``), "dask" (one future per machine: a scattered (X, y) or
    a shard loaded on a worker; ``payload`` the list of futures), or "files" (one file per
    machine, read by the joblib worker that runs the task: ``payload = (read, paths)``, with
    ``read(path) -> (X, y)`` a picklable function).
    """

    def __init__(self, runner, kind, payload, client=None, where=None, resend=None):
        self.runner = runner
        self.kind = kind
        self.payload = payload
        self.client = client
        self.where = where or (lambda m: {})
        # dask: resend(m) places machine m's data on the cluster again (scattered data dies with
        # its worker); None when it cannot be (a file pinned to one worker).
        self.resend = resend

    def run(self, fn, machines, args_of, progress=None, stage=None, lost=None):
        """``{m: (fn(X_m, y_m, *args_of(m)), seconds)}`` for every machine in ``machines``.

        A machine lost with its worker is run again (``_LOST_POOL_RETRIES``, ``_DASK_ATTEMPTS``);
        one lost every time gives ``(lost(m, why), nan)``, or a :class:`LocalFitError` when
        ``lost`` is None.
        """
        machines = list(machines)
        runner = self.runner
        if self.kind == "dask":
            client = self.client

            def submit(m):
                return client.submit(_call_packed, fn, m, self.payload[m], args_of(m), pure=False,
                                     **self.where(m))

            def resubmit(i):
                if self.resend is not None:
                    self.resend(machines[i])
                return submit(machines[i])

            lost_at = None if lost is None else (lambda i, why: (machines[i], (lost(machines[i], why), np.nan)))
            done = gather_dask([submit(m) for m in machines], len(machines), progress if stage else None,
                               resubmit, lost_at, stage=stage,
                               stranded=pinned_worker_gone(client, lambda i: self.where(machines[i]), len(machines)))
            return dict(done)
        out = {}

        def run_some(todo, n_jobs):
            if self.kind == "rows":
                X, y, shards = self.payload
                if runner.backend == "multiprocessing":
                    # A plain process pool pickles every argument: each task carries its own rows.
                    tasks = [delayed(_call_packed)(fn, m, (X[shards[m]], y[shards[m]]), args_of(m)) for m in todo]
                else:
                    tasks = [delayed(_call_rows)(fn, m, X, y, shards[m], args_of(m)) for m in todo]
            else:
                read, paths = self.payload
                tasks = [delayed(_call_file)(fn, m, read, paths[m], args_of(m)) for m in todo]
            for m, res in runner.dispatch(tasks, n_jobs):
                out[m] = res
                if progress is not None and stage is not None:
                    progress(stage, len(out), len(machines))

        def store_lost(m, why):
            out[m] = (lost(m, why), np.nan)

        runner.with_retries(machines, run_some, lambda m: m in out, None if lost is None else store_lost)
        return out
