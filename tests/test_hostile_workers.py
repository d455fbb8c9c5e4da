"""Issue 22, a second adversarial pass: a parent killed mid-fit leaves no process behind.

A real process fits with real loky or multiprocessing workers, from its main thread (a script,
the CLI) or from another thread (the app runs fits in its session threads, where the kernel's
parent-death signal cannot be used); it is SIGKILLed mid-fit, so that no cleanup of its own can
run.  Every process it started (workers, loky's and multiprocessing's resource trackers) must be
gone 15 s later.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, threading, warnings
from moecore import DistributedMoE, simulate_design
warnings.simplefilter("ignore")
sim = simulate_design("separated-2d", 1_000_000, random_state=0)
def fit():
    DistributedMoE(4, 16, backend=sys.argv[1], n_jobs=2, random_state=0, n_init=6).fit(sim.X, sim.y)
print("fitting", flush=True)
if sys.argv[2] == "thread":
    t = threading.Thread(target=fit)
    t.start()
    t.join()
else:
    fit()
print("done", flush=True)
"""

def _n_workers(procs, backend):
    """How many of ``procs`` are pool workers (loky's carry their name in their command line; forked
    multiprocessing workers are the only children of that backend)."""
    if backend == "multiprocessing":
        return len(procs)
    n = 0
    for q in procs:
        try:
            n += "LokyProcess" in " ".join(q.cmdline())
        except psutil.Error:  # already gone
            pass
    return n


@pytest.mark.parametrize("thread", ["main", "thread"])
@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_workers_end_with_a_killed_parent(backend, thread):
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, backend, thread], stdout=subprocess.PIPE, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seen = {}
    try:
        assert p.stdout.readline().strip() == "fitting"
        parent = psutil.Process(p.pid)

        def record():
            for q in parent.children(recursive=True):
                seen.setdefault(q.pid, q)

        # Both workers started, then time for them to import and be at work (seconds on a busy
        # machine); every descendant seen on the way is recorded, not only those alive at the kill.
        deadline = time.time() + 60
        while _n_workers(seen.values(), backend) < 2 and time.time() < deadline:
            record()
            time.sleep(0.1)
        for _ in range(30):
            record()
            time.sleep(0.1)
        assert _n_workers(seen.values(), backend) >= 2, "the fit started no worker processes"
        assert p.poll() is None, "the fit ended before the kill: it no longer tests a kill mid-fit"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        _, alive = psutil.wait_procs(list(seen.values()), timeout=15)
        alive = [q for q in alive if q.is_running() and q.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [(q.pid, q.name(), " ".join(q.cmdline())[:120]) for q in alive]
    finally:
        if p.poll() is None:
            p.kill()
        for q in seen.values():  # a failed run leaves no orphan to the tests after it
            try:
                q.kill()
            except psutil.Error:
                pass
