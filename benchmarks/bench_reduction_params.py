"""Parameter error of the reduction, block by block, against the truth and against the global EM.

For every shipped design, M in {4, 16, 64}, n = 1e5 and 5 seeds: the global EM, the one-shot
reduction with each gate rule (component = default, plan = the paper's pointwise targets,
coefficients = aligned coefficient average) on the same local models and supporting sample, and
the default reduction followed by 1, 2 and 3 refinement rounds.  Reports the median over seeds of
the gate, expert and variance MSE (aligned to the truth) and the ratio to the global EM's.

    .venv/bin/python benchmarks/bench_reduction_params.py            # ~6 min on 2 cores
    .venv/bin/python benchmarks/bench_reduction_params.py --quick    # 2 seeds, M in {4, 16}

Output: results/reduction_params.csv (one row per design, M, seed, method) and a summary table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings
from pathlib import Path

import pandas as pd

from moecore import DESIGNS, DistributedMoE, MixtureOfExperts, simulate_design
from moecore.metrics import parameter_mse, rpe
from moecore.model import Standardizer
from moecore.reduction import reduce_mixtures
from moecore.refine import em_rounds

OUT = Path(__file__).resolve().parent / "results" / "reduction_params.csv"


def run(designs, machines, seeds, n, n_test=50_000):
    rows = []
    for name in designs:
        K = DESIGNS[name].n_experts
        for seed in seeds:
            train = simulate_design(name, n, random_state=1000 + seed)
            test = simulate_design(name, n_test, random_state=2000 + seed)

            def record(M, method, prm, name=name, seed=seed, train=train, test=test, **extra):
                # name ... test bound now: the loop moves on after this seed's records.
                err = parameter_mse(prm, train.params)
                rows.append(dict(design=name, M=M, seed=seed, method=method, gates=err["gates"],
                                 experts=err["experts"], variances=err["variances"],
                                 rpe=rpe(test.y, _predict(prm, test.X)), **extra))

            g = MixtureOfExperts(K, random_state=seed).fit(train.X, train.y)
            for M in machines:
                record(M, "global", g.params_)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dm = DistributedMoE(K, M, backend="sequential", random_state=seed).fit(train.X, train.y)
                    off = DistributedMoE(K, M, backend="sequential", random_state=seed, local_check="off",
                                         gate_targets="plan").fit(train.X, train.y)
                record(M, "reduction", dm.params_, flagged=len(dm.flagged_))
                record(M, "paper (plan, no screening)", off.params_)
                locals_ = [m.params_ for m in dm.local_models_]
                Xs, ys = dm.support_X_, dm.support_y_
                for rule in ("plan", "coefficients"):
                    red = reduce_mixtures(locals_, dm.weights_, Xs, K, y_support=ys, gate_targets=rule,
                                          random_state=seed)
                    record(M, f"reduction ({rule})", red.params)
                shards = [(train.X[s], train.y[s]) for s in dm.shards_]
                prm = dm.params_
                for r in (1, 2, 3):
                    prm, _ = em_rounds(shards, prm, 1, scaler=Standardizer.fit(Xs, ys))
                    record(M, f"reduction + {r} round(s)", prm)
            print(f"  {name} seed {seed} done", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def _predict(prm, X):
    from moecore.model import predict_mean

    return predict_mean(X, prm)


def summary(df):
    blocks = ["gates", "experts", "variances", "rpe"]
    med = df.groupby(["design", "M", "method"], sort=False)[blocks].median().reset_index()
    glob = med[med.method == "global"].set_index(["design", "M"])[blocks]
    ratio = med.join(glob, on=["design", "M"], rsuffix="_g")
    for b in blocks:
        med[f"{b}/global"] = ratio[b] / ratio[f"{b}_g"]
    return med.set_index(["design", "M", "method"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--summary", action="store_true", help="summarise the recorded CSV, fit nothing")
    args = ap.parse_args()
    if args.summary:
        print(summary(pd.read_csv(OUT))[["gates/global", "experts/global", "variances/global", "rpe/global"]]
              .round(2).to_string())
        return
    seeds = range(2) if args.quick else range(5)
    machines = (4, 16) if args.quick else (4, 16, 64)
    df = run(sorted(DESIGNS), machines, seeds, 100_000)
    df["command"] = "benchmarks/bench_reduction_params.py" + (" --quick" if args.quick else "")
    df["host"] = platform.node()
    df["cpus"] = os.cpu_count()
    if not args.quick:
        OUT.parent.mkdir(exist_ok=True)
        df.to_csv(OUT, index=False)
    pd.set_option("display.width", 250, "display.max_rows", 500)
    s = summary(df)
    cols = ["gates/global", "experts/global", "variances/global", "rpe/global"]
    print(s[cols].round(2).to_string())


if __name__ == "__main__":
    main()
