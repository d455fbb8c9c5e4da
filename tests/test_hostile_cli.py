"""Issue 22, a second adversarial pass: the command line as a shell user drives it (real processes).

A closed pipe, an impossible size, Ctrl-C and an empty --csv each end with a one-line message
(or silently for the pipe) and a meaningful exit status, never a traceback.
"""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
CMD = [sys.executable, "-m", "moecore"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cap_memory():
    # Were the size check missing, the child gets a MemoryError instead of the machine's OOM killer.
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def test_a_reader_that_leaves_early_is_no_error():
    p = subprocess.Popen([*CMD, "designs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT,
                         bufsize=0)
    p.stdout.read(10)
    p.stdout.close()  # as `| head -c 10` does
    err = p.stderr.read().decode()
    assert p.wait(60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_size_beyond_memory_is_refused_before_allocating():
    r = subprocess.run([*CMD, "compare", "--n", "1000000000", "--backend", "sequential"], capture_output=True,
                       text=True, env=_env(), cwd=ROOT, timeout=120, preexec_fn=_cap_memory)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "--n 1000000000" in r.stderr and "GiB" in r.stderr and "lower --n" in r.stderr


def test_an_empty_csv_name_is_refused():
    r = subprocess.run([*CMD, "compare", "--n", "500", "--csv", ""], capture_output=True, text=True, env=_env(),
                       cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert "--csv needs a file name" in r.stderr


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_ctrl_c_mid_fit_is_reported_as_an_interruption(backend):
    # Ctrl-C reaches the whole foreground process group: the command and its loky workers.
    # Large enough that the fit cannot end first on a quiet machine; interrupted as soon as the
    # local fits are running (the loky workers exist), not after a fixed sleep.
    # A terminal's Ctrl-C: SIGINT at its default, as an interactive shell leaves it. A test run started
    # in the background (`make test &`, nohup) inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: the compare ran to the end and exited 0 in a fresh-clone run started that way.
    p = subprocess.Popen([*CMD, "compare", "--n", "2000000", "--machines", "8", "--backend", backend, "--n-jobs", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not psutil.Process(p.pid).children(recursive=True) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    assert p.poll() is None, "the fit ended before it could be interrupted"
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err and "died" not in err


def _sigint_blocked():
    return os.getpid(), signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_worker_processes_never_take_ctrl_c(backend):
    # Ctrl-C reaches the workers too, and one that takes it while it starts (importing NumPy, in
    # loky's bootstrap) prints a traceback that the parent cannot catch: a CI run failed the test above
    # so, 3 times in 25 in a loop. The workers start with SIGINT blocked; the parent alone handles it.
    from joblib import delayed

    from moecore.dispatch import Runner

    out = list(Runner(backend, 2).dispatch([delayed(_sigint_blocked)() for _ in range(4)], 2))
    assert len(out) == 4 and all(pid != os.getpid() for pid, _ in out)
    assert all(blocked for _, blocked in out), out
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, []), "the parent must still take Ctrl-C"
