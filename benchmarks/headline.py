"""The paper's headline setting: n = 10^6 samples over M = 128 machines, global EM vs distributed.

    .venv/bin/python benchmarks/headline.py                       # defaults below, CSVs in benchmarks/results/
    .venv/bin/python benchmarks/headline.py --n-jobs 16 --scaling 1,2,4,8,16    # on a 16-core machine
    .venv/bin/python benchmarks/headline.py --n 100000 --m-list 4,16 --scaling 1,2 --tag smoke   # quick

What it measures, on a named design (default ``separated-2d``, d = 2, K = 4):

* the global EM on all n points (the centralised reference): its fit time;
* the distributed estimator (local EM fits in parallel + OT/MM reduction) for M in ``--m-list``:
  - wall clock on the cores used here (``--n-jobs`` joblib workers, loky processes by default),
  - the paper's learning time = max local fit time + reduction time (machines truly in parallel),
    plus the screening of the local fits and its exchange (the slowest refit or comparison on a
    machine's own rows);
  - with ``--rounds`` the same at M = ``--machines`` with refinement rounds, whose time (slowest
    machine per exchange + server step) the learning time then includes;
  - speed-ups of both over the global EM time;
* the same learning time in CPU seconds (``time.thread_time`` of each local fit and of the
  reduction; global EM likewise): what dedicated machines would take, immune to other jobs sharing
  the cores of this host;
* RPE, correlation, ARI, clustering error and parameter MSE (against the true parameters, after
  alignment) of every model on an independent test set of ``--n-test`` points;
* the scaling of the distributed wall clock with n_jobs in ``--scaling`` (M = ``--machines``);
  values above the number of CPUs are skipped unless ``--oversubscribe`` is given;
* peak memory (resident set size): the main process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
  and the worker processes (each one's ``VmHWM`` from /proc/<pid>/status, read with psutil for
  every live child process, summed: an upper bound of their simultaneous use).

Joblib's worker processes are started (and numba's cache loaded) by a warm-up fit before any timing,
so the timings do not include the one-off start of the worker pool (reported separately).
Outputs: ``headline[_TAG].csv`` (one row per model) and ``headline_scaling[_TAG].csv``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moecore import DistributedMoE, MixtureOfExperts  # noqa: E402
from moecore.experiments import evaluate  # noqa: E402
from moecore.simulation import simulate_design  # noqa: E402

COMMAND = "cd " + str(ROOT) + " && .venv/bin/python benchmarks/headline.py " + " ".join(
    shlex.quote(a) for a in sys.argv[1:])


def _ints(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def worker_peak_mb():
    """Sum over live child processes of their peak resident set size (VmHWM), in MB."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            with open(f"/proc/{child.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024.0
                        break
        except OSError:
            pass
    return total


def main_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--design", default="separated-2d")
    ap.add_argument("--n", type=int, default=1_000_000, help="training samples (default 1e6)")
    ap.add_argument("--n-test", type=int, default=100_000, help="test samples (default 1e5)")
    ap.add_argument("--machines", type=int, default=128, help="M of the headline and scaling runs (default 128)")
    ap.add_argument("--m-list", default="4,8,16,32,64,128", help="M values of the table")
    ap.add_argument("--n-jobs", type=int, default=-1, help="parallel local fits for the table (default: all CPUs)")
    ap.add_argument("--scaling", default="1,2,4,8,16", help="n_jobs values of the scaling run")
    ap.add_argument("--oversubscribe", action="store_true", help="also run n_jobs values above the CPU count")
    ap.add_argument("--backend", default="loky", choices=["loky", "multiprocessing", "threading"])
    ap.add_argument("--global-threads", type=int, default=1,
                    help="BLAS threads of the global EM (default 1: one machine, one core; on the 2-core "
                         "test host OpenBLAS threads made the global EM about 3x slower, not faster; "
                         "0 means no limit)")
    ap.add_argument("--no-global", action="store_true", help="skip the global EM (no speed-ups then)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs of every fit; times reported are the minimum (shared hosts are noisy), "
                         "medians in *_median columns; the fits themselves are identical (same seed)")
    ap.add_argument("--rounds", default="1",
                    help="refinement rounds to add at M = --machines (comma list; 0 or empty: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, choices=["portfolio", "kmeans", "random", "lines"],
                    help="EM start of the global and local fits (default: the library's)")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    import pandas as pd

    cpus = os.cpu_count() or 1
    n_jobs = cpus if args.n_jobs == -1 else args.n_jobs
    blas = ",".join(sorted({f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()}))
    print(f"host {platform.node()}: {cpus} CPU(s); BLAS {blas}; design {args.design}; n={args.n}; "
          f"n_test={args.n_test}; seed={args.seed}")
    start = {} if args.init is None else {"init": args.init}
    ss = np.random.SeedSequence(args.seed)
    s_train, s_test = ss.spawn(2)
    t = time.perf_counter()
    train = simulate_design(args.design, args.n, random_state=s_train)
    test = simulate_design(args.design, args.n_test, random_state=s_test)
    K = train.params.n_experts
    print(f"simulated in {time.perf_counter() - t:.1f} s; K={K}, d={train.params.n_features}")

    common = dict(host=platform.node(), cpus=cpus, design=args.design, n=args.n, n_test=args.n_test,
                  K=K, seed=args.seed, init=args.init or "default", command=COMMAND)
    rows = []

    def metrics(params):
        out = evaluate(params, test.X, test.y, labels=test.labels, truth=test.params)
        return {k: out[k] for k in ("rpe", "correlation", "ari", "clustering_error", "loglik", "mse_gates",
                                    "mse_experts", "mse_variances", "mse_all")}

    # Warm-up: start the worker pool and load numba's cache before anything is timed.
    t = time.perf_counter()
    warm = simulate_design(args.design, 20_000, random_state=99)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DistributedMoE(K, max(2, n_jobs), n_jobs=n_jobs, backend=args.backend, random_state=0).fit(warm.X, warm.y)
        # The "each fit alone" run fits in this process: its first local fit would pay the one-off
        # loads (numba's cache, lazy imports; 0.3 s against 0.05 s for the next) and set the maximum.
        DistributedMoE(K, 2, backend="sequential", random_state=0).fit(warm.X, warm.y)
    pool_start = time.perf_counter() - t
    print(f"warm-up (worker pool start, caches): {pool_start:.2f} s")

    g_time = g_cpu = np.nan
    if not args.no_global:
        g_times, g_cpus = [], []
        for _ in range(max(1, args.repeats)):
            c0 = time.thread_time()
            with warnings.catch_warnings(), threadpool_limits(args.global_threads or None):
                warnings.simplefilter("ignore")
                g = MixtureOfExperts(K, random_state=args.seed, **start).fit(train.X, train.y)
            g_cpus.append(time.thread_time() - c0)
            g_times.append(g.fit_time_)
        g_time = float(np.min(g_times))
        g_cpu = float(np.min(g_cpus))
        gm = metrics(g.params_)
        rows.append(dict(common, method="global EM", M=1, n_jobs=1, wall=g_time, learning_time=g_time,
                         wall_median=float(np.median(g_times)), learning_time_median=float(np.median(g_times)),
                         local_max=np.nan, local_mean=np.nan, local_sum=np.nan, reduction=np.nan,
                         learning_time_cpu=g_cpu, local_cpu_max=np.nan, reduction_cpu=np.nan,
                         em_iterations=g.n_iter_, converged=g.converged_, **gm))
        print(f"global EM: {g_time:.2f} s (min of {len(g_times)}; CPU {g_cpu:.2f} s) ({g.n_iter_} iterations); RPE "
              f"{gm['rpe']:.4%}, ARI {gm['ari']:.4f}, MSE {gm['mse_all']:.3g}; peak RSS main {main_peak_mb():.0f} MB")

    def distributed(M, nj, backend=args.backend, rounds=0):
        walls, runs = [], []
        for _ in range(max(1, args.repeats)):
            t = time.perf_counter()
            # The main process only reduces: one BLAS thread, as the global EM and every local fit.
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                dm = DistributedMoE(K, M, n_jobs=nj, backend=backend, random_state=args.seed,
                                    refine_rounds=rounds, **start).fit(train.X, train.y)
            walls.append(time.perf_counter() - t)
            runs.append(dm.timings_)
        # The run with the smallest learning time gives its components; wall is its own minimum.
        tm = min(runs, key=lambda r: r["learning_time"])
        its = [m.n_iter_ for m in dm.local_models_]
        return dm, dict(wall=float(np.min(walls)), wall_median=float(np.median(walls)),
                        learning_time=tm["learning_time"],
                        learning_time_median=float(np.median([r["learning_time"] for r in runs])),
                        local_max=tm["local_max"], local_mean=float(np.mean(tm["local"])),
                        local_sum=tm["local_sum"], reduction=tm["reduction"],
                        screening=tm["screening"], refit_max=float(np.max(tm["refit"], initial=0.0)),
                        compare_max=float(np.max(tm.get("compare", []), initial=0.0)),
                        rounds=float(np.sum(tm["rounds"])), n_flagged=len(dm.flagged_),
                        floats_total=dm.communication_["total"],
                        learning_time_cpu=min(r["learning_time_cpu"] for r in runs),
                        local_cpu_max=min(runs, key=lambda r: r["learning_time_cpu"])["local_cpu_max"],
                        reduction_cpu=min(runs, key=lambda r: r["learning_time_cpu"])["reduction_cpu"],
                        local_cpu_sum=float(np.nansum(min(runs, key=lambda r: r["learning_time"])["local_cpu"])),
                        em_iterations=float(np.mean(its)),
                        converged=all(m.converged_ for m in dm.local_models_))

    g_rpe = rows[0]["rpe"] if rows else np.nan
    runs = [(M, 0) for M in _ints(args.m_list)]
    runs += [(args.machines, r) for r in _ints(args.rounds) if r > 0]
    for M, rounds in runs:
        dm, tm = distributed(M, n_jobs, rounds=rounds)
        # The paper's machines each run one local fit alone. Inside the worker pool above, the
        # fits share this host's cores with each other and with the dispatching process, which
        # stretches the slowest one; the sequential backend times every fit alone on one core.
        # Same seed, so the same fits: only the timing conditions differ.
        dm_alone, ta = distributed(M, 1, backend="sequential", rounds=rounds)
        assert np.array_equal(dm_alone.params_.vector(), dm.params_.vector())
        dedicated = dict(learning_time_dedicated=ta["learning_time"], local_max_dedicated=ta["local_max"],
                         reduction_dedicated=ta["reduction"],
                         learning_time_dedicated_median=ta["learning_time_median"])
        dmx = metrics(dm.params_)
        method = "distributed (reduction)" + (f" + {rounds} round(s)" if rounds else "")
        row = dict(common, method=method, M=M, n_jobs=n_jobs, refine_rounds=rounds, **tm, **dedicated, **dmx)
        rows.append(row)
        print(f"M={M:4d}, rounds {rounds}: wall {tm['wall']:.2f} s, learning time {tm['learning_time']:.3f} s (max "
              f"local {tm['local_max']:.3f} + screening {tm['screening']:.3f} + refit or comparison "
              f"{max(tm['refit_max'], tm['compare_max']):.3f} + "
              f"reduction {tm['reduction']:.3f} + rounds {tm['rounds']:.3f}); speed-up learning "
              f"{g_time / tm['learning_time']:.1f}x, wall {g_time / tm['wall']:.2f}x; RPE {dmx['rpe']:.4%} "
              f"({dmx['rpe'] / g_rpe - 1:+.2%} vs global), ARI {dmx['ari']:.4f}, MSE {dmx['mse_all']:.3g}; CPU "
              f"learning time {tm['learning_time_cpu']:.3f} s ({g_cpu / tm['learning_time_cpu']:.1f}x); each fit "
              f"alone: learning time {ta['learning_time']:.3f} s (max local {ta['local_max']:.3f} + reduction "
              f"{ta['reduction']:.3f}), {g_time / ta['learning_time']:.1f}x")

    peak_main = main_peak_mb()
    peak_workers = worker_peak_mb()
    df = pd.DataFrame(rows)
    df["speedup_learning_time"] = g_time / df["learning_time"]
    df["speedup_wall"] = g_time / df["wall"]
    df["speedup_learning_time_dedicated"] = g_time / df["learning_time_dedicated"]
    df["speedup_learning_time_cpu"] = g_cpu / df["learning_time_cpu"] if not args.no_global else np.nan
    df["rpe_rel_to_global"] = df["rpe"] / g_rpe - 1.0
    df["peak_rss_main_mb"] = peak_main
    df["peak_rss_workers_sum_mb"] = peak_workers
    df["worker_pool_start_s"] = pool_start
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sfx = f"_{args.tag}" if args.tag else ""
    path = out_dir / f"headline{sfx}.csv"
    df.to_csv(path, index=False, float_format="%.6g")
    print(f"peak RSS: main {peak_main:.0f} MB, workers (sum of peaks) {peak_workers:.0f} MB, "
          f"total <= {peak_main + peak_workers:.0f} MB\nwritten {path}")

    # Scaling of the wall clock with n_jobs at M = --machines.
    srows = []
    for nj in _ints(args.scaling):
        if nj > cpus and not args.oversubscribe:
            print(f"n_jobs={nj}: skipped, only {cpus} CPU(s) here (pass --oversubscribe to run anyway)")
            srows.append(dict(common, M=args.machines, n_jobs=nj, measured=False, wall=np.nan,
                              learning_time=np.nan, local_sum=np.nan, reduction=np.nan,
                              note=f"not measured: {cpus} CPU(s)"))
            continue
        if nj != n_jobs:  # start this pool size before timing it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                DistributedMoE(K, max(2, nj), n_jobs=nj, backend=args.backend, random_state=0).fit(warm.X, warm.y)
        dm, tm = distributed(args.machines, nj)
        srows.append(dict(common, M=args.machines, n_jobs=nj, measured=True, wall=tm["wall"],
                          wall_median=tm["wall_median"], learning_time=tm["learning_time"], local_sum=tm["local_sum"],
                          local_cpu_sum=tm["local_cpu_sum"], reduction=tm["reduction"], note=""))
        print(f"n_jobs={nj:2d}: wall {tm['wall']:.2f} s (sum of local fits {tm['local_sum']:.2f} s wall, "
              f"{tm['local_cpu_sum']:.2f} s CPU; "
              f"reduction {tm['reduction']:.3f} s)")
    sdf = pd.DataFrame(srows)
    base = sdf.loc[sdf["n_jobs"] == 1, "wall"]
    if len(base) and np.isfinite(base.iloc[0]):
        sdf["speedup_vs_1"] = base.iloc[0] / sdf["wall"]
        sdf["efficiency"] = sdf["speedup_vs_1"] / sdf["n_jobs"]
    sdf["global_em_time"] = g_time
    spath = out_dir / f"headline_scaling{sfx}.csv"
    sdf.to_csv(spath, index=False, float_format="%.6g")
    print(f"written {spath}\ncommand: {COMMAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
