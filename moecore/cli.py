"""Command line: ``python -m moecore compare ...`` runs one distributed-versus-global comparison."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .reduction import GATE_TARGETS, VARIANCE_UPDATES
from .screening import LOCAL_CHECKS
from .simulation import DESIGNS


def _build_parser():
    ap = argparse.ArgumentParser(
        prog="python -m moecore",
        description="Distributed learning of mixtures of experts (Chamroukhi & Pham).",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("designs", help="list the named synthetic designs")
    c = sub.add_parser("compare", help="reduction vs global EM vs naive aggregators on a design")
    c.add_argument("--design", default="separated-2d", choices=sorted(DESIGNS))
    c.add_argument("--n", type=int, default=100_000, help="training samples (default 100000)")
    c.add_argument("--n-test", type=int, default=20_000, help="held-out samples (default 20000)")
    c.add_argument("--machines", "-M", type=int, default=16, help="number of machines M (default 16)")
    c.add_argument("--experts", "-K", type=int, default=None, help="K (default: the design's)")
    c.add_argument("--support-size", type=int, default=None, help="S (default floor(n / 4M))")
    c.add_argument("--n-jobs", type=int, default=-1, help="parallel local fits (default: all cores)")
    c.add_argument("--backend", default="loky", choices=["loky", "threading", "multiprocessing", "sequential"])
    c.add_argument("--variance-update", default="exact", choices=list(VARIANCE_UPDATES))
    c.add_argument("--gate-targets", default="component", choices=list(GATE_TARGETS),
                   help="how the reduced gate is obtained (default component; plan = the paper's)")
    c.add_argument("--local-check", default="refit", choices=list(LOCAL_CHECKS),
                   help="screening of poor local fits (default refit; off = the paper)")
    c.add_argument("--rounds", type=int, default=0, help="distributed EM refinement rounds (default 0: one-shot)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--csv", default=None, help="also write the table to this CSV file")
    return ap


def main(argv=None):
    args = _build_parser().parse_args(argv)
    if args.command == "designs":
        for name, d in DESIGNS.items():
            print(f"{name:16s} K={d.n_experts} d={d.n_features}  {d.description}")
        return 0
    import pandas as pd

    from .experiments import compare_methods
    from .simulation import simulate_design

    ss = np.random.SeedSequence(args.seed)
    s_train, s_test = ss.spawn(2)
    try:
        train = simulate_design(args.design, args.n, random_state=s_train)
        test = simulate_design(args.design, args.n_test, random_state=s_test)
        K = args.experts or train.params.n_experts
        comp = compare_methods(
            train.X, train.y, test.X, test.y, K, args.machines,
            labels_test=test.labels, truth=train.params if K == train.params.n_experts else None,
            random_state=args.seed, n_jobs=args.n_jobs, backend=args.backend,
            support_size=args.support_size, variance_update=args.variance_update,
            gate_targets=args.gate_targets, local_check=args.local_check, refine_rounds=args.rounds,
        )
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = comp.table()
    dm = comp.distributed
    t = dm.timings_
    print(f"design={args.design} n={args.n} M={args.machines} K={K} S={len(dm.support_indices_)} "
          f"(test n={args.n_test}, seed={args.seed})")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(table)
    print(
        f"\ntime column: reduction/average/median = paper's learning time (max local {t['local_max']:.3f} s "
        f"+ aggregation" + (f", with {args.rounds} refinement round(s) {t['rounds'].sum():.3f} s" if args.rounds else "")
        + f"); global = its EM time.\ndistributed wall clock on this machine: {t['wall']:.3f} s "
        f"(reduction {t['reduction']:.3f} s, sum of local fits {t['local_sum']:.3f} s)"
    )
    if args.csv:
        table.to_csv(args.csv)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
