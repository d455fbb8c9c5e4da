"""Parameter error by block (gates, experts, variances) of the default one-shot reduction, as a ratio to
the global EM's MSE to the truth, on every shipped design, n = 10^5, M in {4, 16, 64}:

    .venv/bin/python benchmarks/bench_blocks_default.py                 # 5 data sets per design
    .venv/bin/python benchmarks/bench_blocks_default.py --seeds 1       # the single data set (seed 1) of old
    .venv/bin/python benchmarks/bench_blocks_default.py --designs separated-10d --m-list 64 --rounds 1

One data set gives a ratio of two noisy numbers: the global EM's MSE to the truth varies several-fold
between data sets (separated-10d's variances at M = 64 read 3.67x on data seed 1 and 0.28x to 26x on
others).  Each cell is therefore the ratio of the MSEs averaged over ``--seeds`` data sets (seeds
0 .. seeds-1, every fit with random_state 0): the ratio of expected errors the target is about.  The
median and the largest per-data-set ratio are printed beside it.  Output:
benchmarks/results/blocks_default[_rounds R].csv, one row per design, M and data set.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moecore import DistributedMoE, MixtureOfExperts  # noqa: E402
from moecore.metrics import parameter_mse  # noqa: E402
from moecore.simulation import DESIGNS, simulate_design  # noqa: E402

BLOCKS = ("gates", "experts", "variances")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5, help="data sets per design (seeds 0 .. seeds-1)")
    ap.add_argument("--designs", default=",".join(sorted(DESIGNS)))
    ap.add_argument("--m-list", default="4,16,64")
    ap.add_argument("--rounds", type=int, default=0, help="refine_rounds (0: the one-shot reduction)")
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    ms = [int(v) for v in args.m_list.split(",")]
    seeds = [1] if args.seeds == 1 else list(range(args.seeds))
    rows = []
    for name in args.designs.split(","):
        for seed in seeds:
            train = simulate_design(name, args.n, random_state=seed)
            K = train.params.n_experts
            ref = parameter_mse(MixtureOfExperts(K, random_state=0).fit(train.X, train.y).params_,
                                train.params, train.X)
            for M in ms:
                dm = DistributedMoE(K, M, random_state=0, n_jobs=2, refine_rounds=args.rounds).fit(train.X, train.y)
                mse = parameter_mse(dm.params_, train.params, train.X)
                rows.append(dict(design=name, M=M, seed=seed, **{f"global_{b}": ref[b] for b in BLOCKS},
                                 **{f"dist_{b}": mse[b] for b in BLOCKS}))
                print(name, "seed", seed, "M", M, {b: round(mse[b] / ref[b], 2) for b in BLOCKS}, flush=True)
    df = pd.DataFrame(rows)
    tag = "" if args.rounds == 0 else f"_rounds{args.rounds}"
    out = ROOT / "benchmarks" / "results" / f"blocks_default{tag}.csv"
    df.to_csv(out, index=False)
    print(f"\nratio of mean MSEs over {len(seeds)} data set(s) (median / largest single ratio); {out.name}")
    for (name, M), g in df.groupby(["design", "M"], sort=False):
        cells = []
        for b in BLOCKS:
            r = g[f"dist_{b}"] / g[f"global_{b}"]
            cells.append(f"{b} {g[f'dist_{b}'].mean() / g[f'global_{b}'].mean():.2f} "
                         f"({np.median(r):.2f} / {r.max():.2f})")
        print(f"{name:15s} M={M:3d}  " + "   ".join(cells))


if __name__ == "__main__":
    main()
