"""Poor local optima at scale: 20 seeds of n = 1e6 over M = 128 machines, with and without screening.

For each design and seed: the global EM, the reduction with the default settings (screening on,
component-level gate targets) and the same fit with ``local_check="off"``.  Reports per fit the
parameter MSE by block against the truth, the ratio of the reduction's expert MSE to the global
EM's, how many machines the screening flagged and what it did, and the gap between the flagged
machines' support scores and the median (in nats per point and in units of q / n_m).

    .venv/bin/python benchmarks/bench_screening.py                 # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_screening.py --seeds 3 --n 200000   # quick

Output: results/screening.csv.  Goal (issue 10): no default reduced model whose expert MSE exceeds
3x the global EM's.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from moecore import DistributedMoE, MixtureOfExperts, simulate_design
from moecore.metrics import parameter_mse
from moecore.screening import n_free_parameters

OUT = Path(__file__).resolve().parent / "results" / "screening.csv"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--machines", type=int, default=128)
    ap.add_argument("--designs", default="separated-2d,overlapping-5d")
    ap.add_argument("--n-jobs", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for design in args.designs.split(","):
        for seed in range(args.seeds):
            train = simulate_design(design, args.n, random_state=5000 + seed)
            K, d = train.params.n_experts, train.params.n_features
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = MixtureOfExperts(K, random_state=seed).fit(train.X, train.y)
                fits = {check: DistributedMoE(K, args.machines, n_jobs=args.n_jobs, random_state=seed,
                                              local_check=check).fit(train.X, train.y)
                        for check in ("refit", "off")}
            g_err = parameter_mse(g.params_, train.params)
            q = n_free_parameters(K, d)
            for check, dm in fits.items():
                err = parameter_mse(dm.params_, train.params)
                rep = dm.screening_
                med = np.nanmedian(rep.scores)
                n_m = args.n / args.machines
                gaps = [med - rep.scores[m] for m in rep.flagged]
                rows.append(dict(
                    design=design, seed=seed, local_check=check, M=args.machines, n=args.n,
                    gates=err["gates"], experts=err["experts"], variances=err["variances"],
                    global_gates=g_err["gates"], global_experts=g_err["experts"],
                    global_variances=g_err["variances"], experts_ratio=err["experts"] / g_err["experts"],
                    variances_ratio=err["variances"] / g_err["variances"], flagged=len(rep.flagged),
                    actions=";".join(f"{m}:{a}" for m, a in sorted(rep.actions.items())),
                    max_gap_nats=max(gaps, default=0.0), max_gap_q_over_n=max(gaps, default=0.0) / (q / n_m),
                    learning_time=dm.timings_["learning_time"], global_time=g.fit_time_,
                ))
            r = rows[-2]
            print(f"{design} seed {seed}: experts MSE ratio {r['experts_ratio']:.2f} (off: "
                  f"{rows[-1]['experts_ratio']:.2f}), flagged {r['flagged']} [{r['actions']}]", flush=True)
    df = pd.DataFrame(rows)
    df["command"] = "benchmarks/bench_screening.py " + " ".join(sys.argv[1:])
    df["host"] = platform.node()
    df["cpus"] = os.cpu_count()
    OUT.parent.mkdir(exist_ok=True)
    df.to_csv(OUT, index=False, float_format="%.6g")
    summary = df.groupby(["design", "local_check"]).agg(
        fits=("seed", "size"), worst_experts_ratio=("experts_ratio", "max"),
        over_3x=("experts_ratio", lambda r: int((r > 3).sum())), worst_variances_ratio=("variances_ratio", "max"),
        machines_flagged=("flagged", "sum"))
    print(summary.to_string())


if __name__ == "__main__":
    main()
