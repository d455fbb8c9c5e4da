"""The scale frontier (issue 14): high-dimensional inputs, EM iterations, many machines, 10^7 rows.

    .venv/bin/python benchmarks/bench_scale.py highd      # d = 100 / 200 memory and time per iteration
    .venv/bin/python benchmarks/bench_scale.py d2main     # d = 2 fit time against main's code
    .venv/bin/python benchmarks/bench_scale.py accel      # time to a fitted model vs a plain NumPy EM
    .venv/bin/python benchmarks/bench_scale.py scaling    # M = 16..1024, S = default / 4 .. 4 x default
    .venv/bin/python benchmarks/bench_scale.py shards     # n = 10^7 from 128 Parquet files, fit_shards
    .venv/bin/python benchmarks/bench_scale.py all

Each section writes ``benchmarks/results/scale_<section>.csv`` (one row per measurement, with the
command and host). Sections:

* **highd**: the global EM at d = 100, n = 10^6, K = 3 in a child process (peak resident memory,
  ``ru_maxrss``, before the fit, i.e. the data, and after it), d = 200, n = 2 x 10^5; one EM
  iteration's parts at d = 100 next to the K weighted Gram products ``X^T diag(tau_k) X`` alone
  (plain ``(X * w) @ X.T``), measured side by side in CPU seconds.
* **d2main**: the d = 2 fit time (n = 10^5 and a 10^6 / 128 shard) against main's code
  (``git archive main moecore`` into a temporary directory, child processes alternating).
* **accel**: n = 10^5, d = 2, K = 4 (separated-2d and overlapping-5d's d = 5 for contrast), one
  BLAS thread: ``MixtureOfExperts`` (SQUAREM, and ``acceleration="none"``) against
  ``reference_em.py`` (plain NumPy EM, full IRLS gate step) from the same k-means partition;
  the reference's time excludes that k-means, ours includes everything in ``fit``.
* **scaling**: n = 10^6, separated-2d, M = 16 ... 1024, S = default/4 ... 4 x default
  (default floor(n / 4M)); slowest local fit, reduction time (CPU seconds, and wall), numbers sent
  to the server, RPE and parameter MSE on a test set; ``aggregation_dominates`` marks a reduction
  that takes more CPU time than the slowest local fit.
* **shards**: writes n = 10^7 rows of separated-2d as 128 Parquet files, then
  ``DistributedMoE(4, 128, n_jobs=2).fit_shards``: end-to-end wall clock and the peak resident
  memory of the main process and of every worker process.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from moecore import DistributedMoE, MixtureOfExperts  # noqa: E402
from moecore import model as _m  # noqa: E402
from moecore.em import _estep, _wls_design, _wls_experts  # noqa: E402
from moecore.gating import fit_softmax_gate, newton_step  # noqa: E402
from moecore.model import MoEParams  # noqa: E402
from moecore.simulation import simulate, simulate_design  # noqa: E402

COMMAND = "cd " + str(ROOT) + " && .venv/bin/python benchmarks/bench_scale.py " + " ".join(
    shlex.quote(a) for a in sys.argv[1:])
RESULTS = ROOT / "benchmarks" / "results"


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0**2  # Linux: kB


def highd_params(d, K=3):
    """A K-expert model on d inputs: intercepts apart, slopes from a closed formula scaled by 1/sqrt(d)."""
    j = np.arange(d)[:, None]
    k = np.arange(K)[None, :]
    slopes = np.round(np.sin(0.7 * (j + 1) + 1.3 * (k + 1) ** 1.5), 2) / np.sqrt(d)
    gates = np.vstack([np.linspace(0.5, -0.5, K), 3.0 * slopes])
    gates[:, -1] = 0.0
    experts = np.vstack([np.linspace(-4.0, 4.0, K), slopes])
    return MoEParams(gates, experts, np.full(K, 0.3))


def simulate_blocks(params, n, seed, block=100_000):
    """simulate() in blocks written into one (n, d) array: the peak is the data plus one block."""
    X = np.empty((n, params.n_features))
    y = np.empty(n)
    for b, s in enumerate(range(0, n, block)):
        part = simulate(params, min(block, n - s), random_state=np.random.SeedSequence([seed, b]))
        X[s:s + block], y[s:s + block] = part.X, part.y
    return X, y


def save(rows, name):
    import pandas as pd

    df = pd.DataFrame(rows)
    df["host"] = platform.node()
    df["cpus"] = os.cpu_count()
    df["command"] = COMMAND
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"scale_{name}.csv"
    df.to_csv(path, index=False)
    print(f"written {path}")


# ---------------------------------------------------------------------------------------- highd
def child_fit(n, d, max_iter):
    """(In a child process) simulate, fit, print peak memory before / after and the fit's figures."""
    X, y = simulate_blocks(highd_params(d), n, seed=1)
    before = peak_gb()
    c = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixtureOfExperts(3, max_iter=max_iter, random_state=0).fit(X, y)
    print(f"RESULT {before:.4f} {peak_gb():.4f} {est.fit_time_:.3f} {est.n_iter_} {int(est.converged_)} "
          f"{est.loglik_:.6f} {X.nbytes / 1024**3:.4f} {time.process_time() - c:.3f}")


def run_child(n, d, max_iter):
    out = subprocess.run([sys.executable, __file__, "_child_fit", str(n), str(d), str(max_iter)],
                         capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    before, after, t, it, conv, ll, data, cpu = line.split()[1:]
    return dict(n=n, d=d, K=3, peak_before_fit_gb=float(before), peak_gb=float(after), data_gb=float(data),
                fit_s=float(t), fit_cpu_s=float(cpu), em_iterations=int(it), converged=bool(int(conv)),
                loglik=float(ll))


def _median_cpu_s(f, repeats):
    """Median CPU seconds (thread_time) of f(): on a shared host, waiting for a core is not counted."""
    ts = []
    for _ in range(repeats):
        t = time.thread_time()
        f()
        ts.append(time.thread_time() - t)
    return float(np.median(ts))


def iteration_parts(n, d, repeats=3):
    """One EM iteration's parts (BLAS path at this d) next to the K plain weighted Gram products."""
    X, y = simulate_blocks(highd_params(d), n, seed=2)
    sc = _m.Standardizer.fit(X, y)
    XtT, ys = sc.design_T(X), sc.transform_y(y)
    del X
    K = 3
    rng = np.random.default_rng(0)
    tau = np.full((K, n), 0.1 / K)
    tau[rng.integers(K, size=n), np.arange(n)] += 0.9
    F = _wls_design(XtT, ys)
    assert F is None  # d = 100: the BLAS path
    experts, variances, _ = _wls_experts(XtT, ys, tau, 1e-6)
    gates, _ = fit_softmax_gate(XtT[:, ::10], tau[:, ::10], max_iter=3)
    logpT = _m._log_softmax_T(gates.T @ XtT)[0]
    probT = np.exp(logpT)
    _, tauT = _estep(XtT, ys, logpT, experts, variances)
    with threadpool_limits(1):
        gram = _median_cpu_s(lambda: [(XtT * tauT[k]) @ XtT.T for k in range(K)], repeats)
        e = _median_cpu_s(lambda: _estep(XtT, ys, logpT, experts, variances), repeats)
        m = _median_cpu_s(lambda: _wls_experts(XtT, ys, tauT, 1e-6), repeats)
        g = _median_cpu_s(lambda: newton_step(XtT, None, tauT, gates, logpT, probT), repeats)
    it = e + m + g
    return dict(n=n, d=d, K=K, timing="CPU seconds, median of 3", gram_products_s=gram, e_step_s=e,
                m_step_experts_s=m, m_step_gates_s=g, iteration_s=it, iteration_over_gram=it / gram)


_D2_SNIPPET = r"""
import sys, time, warnings, numpy as np
from threadpoolctl import threadpool_limits
from moecore import MixtureOfExperts, simulate_design
n, reps = int(sys.argv[1]), int(sys.argv[2])
data = simulate_design("separated-2d", n, random_state=1)
MixtureOfExperts(4, random_state=0).fit(data.X[:5000], data.y[:5000])  # numba cache, imports
ts, its = [], []
with threadpool_limits(1), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for r in range(reps):
        est = MixtureOfExperts(4, random_state=r).fit(data.X, data.y)
        ts.append(est.fit_time_); its.append(est.n_iter_)
import moecore
print("RESULT", np.median(ts), np.mean(its), est.loglik_, moecore.__file__)
"""


def d2_against_main(rounds=3):
    """Median fit time at d = 2 of this tree's code and of main's, child processes alternating."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {shlex.quote(str(ROOT))} archive main moecore | tar -x -C {shlex.quote(tmp)}",
                       shell=True, check=True)
        trees = {"main": tmp, "this branch": str(ROOT)}
        for n, reps in ((100_000, 5), (7812, 41)):
            times = {k: [] for k in trees}
            info = {}
            for _ in range(rounds):
                for label, path in trees.items():
                    # cwd too: "python -c" puts the working directory first on sys.path.
                    out = subprocess.run([sys.executable, "-c", _D2_SNIPPET, str(n), str(reps)], capture_output=True,
                                         text=True, check=True, cwd=path, env=dict(os.environ, PYTHONPATH=path))
                    t, it, ll, where = out.stdout.split("RESULT")[1].split()
                    assert where.startswith(path), (where, path)  # the tree meant, not another one
                    t, it, ll = float(t), float(it), float(ll)
                    times[label].append(t)
                    info[label] = (it, ll)
            for label in trees:
                rows.append(dict(section="d2_vs_main", code=label, n=n, d=2, K=4,
                                 fit_s=float(np.median(times[label])),
                                 fit_s_runs=str(np.round(times[label], 4).tolist()),
                                 em_iterations=info[label][0], loglik=info[label][1]))
                print(f"d = 2, n = {n}: {label:12s} median fit {np.median(times[label]) * 1e3:.1f} ms "
                      f"(rounds {np.round(np.asarray(times[label]) * 1e3, 1).tolist()}), "
                      f"{info[label][0]:.1f} iterations, ll {info[label][1]:.2f}")
    return rows


def section_highd(args):
    rows = []
    for n, d, it in ((args.highd_n, 100, args.highd_iter), (200_000, 200, args.highd_iter)):
        r = run_child(n, d, it)
        rows.append(dict(section="global_fit", **r))
        print(f"global EM d = {d}, n = {n}, K = 3, max_iter {it}: peak {r['peak_gb']:.2f} GB (data {r['data_gb']:.2f} "
              f"GB; {r['peak_before_fit_gb']:.2f} GB before the fit), fit {r['fit_s']:.1f} s (CPU "
              f"{r['fit_cpu_s']:.1f} s), {r['em_iterations']} iterations")
    r = iteration_parts(200_000, 100)
    rows.append(dict(section="iteration_vs_gram", **r))
    print(f"d = 100, n = 2e5, K = 3, one thread, CPU seconds: iteration {r['iteration_s']:.3f} s (E "
          f"{r['e_step_s']:.3f}, experts {r['m_step_experts_s']:.3f}, gates {r['m_step_gates_s']:.3f}); K Gram "
          f"products alone {r['gram_products_s']:.3f} s; ratio {r['iteration_over_gram']:.2f}")
    save(rows, "highd")


def section_d2main(args):
    save(d2_against_main(), "d2main")


# ---------------------------------------------------------------------------------------- accel
def section_accel(args):
    from reference_em import NEWTON_STEPS, reference_em

    from moecore._validation import check_random_state_seed

    rows = []
    for design, K in (("separated-2d", 4), ("overlapping-5d", 3)):
        data = simulate_design(design, args.accel_n, random_state=1)
        for seed in range(args.accel_seeds):
            with threadpool_limits(1), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits, cpu = {}, {}
                for acc in ("squarem", "none"):
                    # Best of 3 (wall and CPU): the host is shared, and a fit is 0.1-0.3 s.
                    runs = []
                    for _ in range(3):
                        c = time.thread_time()
                        f = MixtureOfExperts(K, random_state=seed, acceleration=acc).fit(data.X, data.y)
                        runs.append((f.fit_time_, time.thread_time() - c, f))
                    fits[acc] = min(runs, key=lambda r: r[0])[2]
                    cpu[acc] = min(r[1] for r in runs)
                # The reference starts from the very partition MixtureOfExperts starts from.
                est = fits["squarem"]
                sc = _m.Standardizer.fit(data.X, data.y)
                rng = np.random.default_rng(check_random_state_seed(seed).spawn(1)[0])
                labels = est._initial_responsibilities(sc.design_T(data.X), sc.transform_y(data.y), rng).argmax(axis=0)
                NEWTON_STEPS[0] = 0
                t, c = time.perf_counter(), time.thread_time()
                hist, _ = reference_em(data.X, data.y, labels, K)
                t_ref, c_ref = time.perf_counter() - t, time.thread_time() - c
            row = dict(design=design, n=args.accel_n, K=K, seed=seed, reference_s=t_ref, reference_cpu_s=c_ref,
                       reference_iterations=len(hist), reference_newton_steps=NEWTON_STEPS[0],
                       reference_loglik=float(hist[-1]))
            for acc, f in fits.items():
                row[f"{acc}_s"] = f.fit_time_
                row[f"{acc}_cpu_s"] = cpu[acc]
                row[f"{acc}_iterations"] = f.n_iter_
                row[f"{acc}_loglik"] = f.loglik_
            row["speedup_squarem"] = t_ref / row["squarem_s"]
            row["speedup_none"] = t_ref / row["none_s"]
            row["speedup_squarem_cpu"] = c_ref / cpu["squarem"]
            rows.append(row)
            print(f"{design} seed {seed}: reference {t_ref:.2f} s ({len(hist)} it, {NEWTON_STEPS[0]} IRLS steps, ll "
                  f"{hist[-1]:.3f}); SQUAREM {row['squarem_s']:.3f} s ({row['squarem_iterations']} it, ll "
                  f"{row['squarem_loglik']:.3f}) = {row['speedup_squarem']:.1f}x (CPU "
                  f"{row['speedup_squarem_cpu']:.1f}x); plain {row['none_s']:.3f} s ({row['none_iterations']} it) = "
                  f"{row['speedup_none']:.1f}x")
    import pandas as pd

    df = pd.DataFrame(rows)
    for design, g in df.groupby("design"):
        print(f"{design}: median speed-up SQUAREM {g.speedup_squarem.median():.1f}x (CPU "
              f"{g.speedup_squarem_cpu.median():.1f}x), plain {g.speedup_none.median():.1f}x; iterations SQUAREM "
              f"{g.squarem_iterations.median():.0f}, plain {g.none_iterations.median():.0f}, reference "
              f"{g.reference_iterations.median():.0f}; ll SQUAREM - reference: min "
              f"{(g.squarem_loglik - g.reference_loglik).min():.4f}")
    save(rows, "accel")


# ---------------------------------------------------------------------------------------- scaling
def section_scaling(args):
    from moecore.experiments import evaluate
    from moecore.params import default_support_size

    train = simulate_design("separated-2d", args.scaling_n, random_state=11)
    test = simulate_design("separated-2d", 100_000, random_state=12)
    K, d = 4, 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DistributedMoE(K, 4, n_jobs=args.n_jobs, random_state=0).fit(train.X[:40_000], train.y[:40_000])  # pool
    rows = []
    for M in args.m_list:
        S0 = default_support_size(args.scaling_n, M)
        for factor in args.s_factors:
            S = max(K + 1, round(factor * S0))
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                dm = DistributedMoE(K, M, support_size=S, n_jobs=args.n_jobs, random_state=0).fit(train.X, train.y)
                wall = time.perf_counter() - t
            tm = dm.timings_
            ev = evaluate(dm.params_, test.X, test.y, labels=test.labels, truth=test.params)
            # Each machine sends its local model (K gates, K experts of d + 1 numbers, K variances)
            # and its size; the supporting sample adds S points of d coordinates.
            sent = M * (K * (2 * (d + 1) + 1) + 1) + S * d
            # CPU seconds (thread_time of each fit and of the reduction) decide: on a shared host
            # the wall times of fits inside the worker pool mostly measure waiting for a core.
            row = dict(M=M, S=S, S_factor=factor, S_default=S0, n=args.scaling_n, wall_s=wall,
                       local_cpu_max_s=tm["local_cpu_max"], local_cpu_median_s=float(np.median(tm["local_cpu"])),
                       reduction_cpu_s=tm["reduction_cpu"], learning_time_cpu_s=tm["learning_time_cpu"],
                       local_max_s=tm["local_max"], reduction_s=tm["reduction"], numbers_sent=sent,
                       rpe=ev["rpe"], mse_all=ev["mse_all"], mse_experts=ev["mse_experts"], mse_gates=ev["mse_gates"],
                       aggregation_dominates=tm["reduction_cpu"] > tm["local_cpu_max"])
            rows.append(row)
            print(f"M={M:5d} S={S:6d} ({factor:4.2f}x): CPU slowest local {tm['local_cpu_max'] * 1e3:7.1f} ms, "
                  f"reduction {tm['reduction_cpu'] * 1e3:7.1f} "
                  f"ms{'  <- aggregation dominates' if row['aggregation_dominates'] else ''}; sent {sent}; RPE "
                  f"{ev['rpe']:.4%}, MSE {ev['mse_all']:.3g}; wall {wall:.2f} s")
    save(rows, "scaling")


# ---------------------------------------------------------------------------------------- shards
def worker_peaks_mb():
    """{pid: peak resident set size (VmHWM) in MB} of every live child process."""
    import psutil

    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            with open(f"/proc/{child.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        out[child.pid] = int(line.split()[1]) / 1024.0
        except OSError:
            pass
    return out


def section_shards(args):
    import pandas as pd

    M, n = args.shards_m, args.shards_n
    rows = []
    with tempfile.TemporaryDirectory(dir=args.shards_dir) as tmp:
        t = time.perf_counter()
        paths = []
        for m, rows_m in enumerate(np.array_split(np.arange(n), M)):
            part = simulate_design("separated-2d", rows_m.size, random_state=np.random.SeedSequence([21, m]))
            path = Path(tmp) / f"machine{m:04d}.parquet"
            pd.DataFrame({"x1": part.X[:, 0], "x2": part.X[:, 1], "y": part.y}).to_parquet(path)
            paths.append(str(path))
        t_write = time.perf_counter() - t
        size = sum(os.path.getsize(p) for p in paths) / 1024**2
        print(f"wrote {M} Parquet files, {n} rows, {size:.0f} MB in {t_write:.1f} s")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Start the worker pool and load numba's cache first (reported apart, as in headline.py).
            t = time.perf_counter()
            DistributedMoE(4, 2, n_jobs=args.n_jobs, random_state=0).fit_shards(paths[:2], response="y")
            t_pool = time.perf_counter() - t
        before = peak_gb() * 1024
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            dm = DistributedMoE(4, M, n_jobs=args.n_jobs, random_state=0).fit_shards(paths, response="y")
            wall = time.perf_counter() - t
        workers = worker_peaks_mb()
        test = simulate_design("separated-2d", 100_000, random_state=22)
        from moecore.experiments import evaluate

        ev = evaluate(dm.params_, test.X, test.y, labels=test.labels, truth=test.params)
        tm = dm.timings_
        row = dict(n=n, M=M, n_jobs=args.n_jobs, write_s=t_write, files_mb=size, pool_start_s=t_pool, end_to_end_s=wall,
                   local_max_s=tm["local_max"], local_sum_s=float(np.sum(tm["local"])), reduction_s=tm["reduction"],
                   local_cpu_sum_s=float(np.nansum(tm["local_cpu"])), reduction_cpu_s=tm["reduction_cpu"],
                   em_iterations_mean=float(np.mean([m.n_iter_ for m in dm.local_models_])),
                   main_peak_mb=peak_gb() * 1024, main_peak_before_fit_mb=before,
                   worker_peaks_mb=str({k: round(v) for k, v in sorted(workers.items())}),
                   max_process_peak_mb=max([peak_gb() * 1024, *workers.values()]), rpe=ev["rpe"], mse_all=ev["mse_all"])
        rows.append(row)
        print(f"fit_shards n = {n}, M = {M}, n_jobs = {args.n_jobs}: end to end {wall:.1f} s (slowest local fit "
              f"{tm['local_max']:.2f} s, local fits summed {row['local_sum_s']:.1f} s wall / "
              f"{row['local_cpu_sum_s']:.1f} s CPU, reduction {tm['reduction']:.3f} s wall / "
              f"{row['reduction_cpu_s']:.3f} s CPU; pool start {t_pool:.1f} s before); peak memory main "
              f"{row['main_peak_mb']:.0f} MB, workers {row['worker_peaks_mb']} MB; RPE {ev['rpe']:.4%}")
    save(rows, "shards")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child_fit":
        child_fit(*map(int, argv[1:4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=["highd", "d2main", "accel", "scaling", "shards", "all"])
    ap.add_argument("--highd-n", type=int, default=1_000_000)
    ap.add_argument("--highd-iter", type=int, default=300, help="max_iter of the high-d global fits")
    ap.add_argument("--accel-n", type=int, default=100_000)
    ap.add_argument("--accel-seeds", type=int, default=5)
    ap.add_argument("--scaling-n", type=int, default=1_000_000)
    ap.add_argument("--m-list", type=lambda s: [int(v) for v in s.split(",")],
                    default=[16, 32, 64, 128, 256, 512, 1024])
    ap.add_argument("--s-factors", type=lambda s: [float(v) for v in s.split(",")], default=[0.25, 0.5, 1, 2, 4])
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--shards-n", type=int, default=10_000_000)
    ap.add_argument("--shards-m", type=int, default=128)
    ap.add_argument("--shards-dir", default=None, help="where the Parquet files are written (a temporary folder)")
    args = ap.parse_args(argv)
    print(f"host {platform.node()}: {os.cpu_count()} CPU(s), numpy {np.__version__}")
    sections = ["highd", "d2main", "accel", "scaling", "shards"] if args.section == "all" else [args.section]
    for s in sections:
        globals()[f"section_{s}"](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
