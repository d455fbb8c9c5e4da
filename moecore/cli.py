"""Command line: ``python -m moecore compare ...`` runs one distributed-versus-global comparison."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .reduction import GATE_TARGETS, VARIANCE_UPDATES
from .screening import LOCAL_CHECKS
from .simulation import DESIGNS


def _int_at_least(low):
    """An argparse type: an integer >= low, refused with a one-line message otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _n_jobs(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive number of workers or -1 (all cores), not 0")
    return value


def _build_parser():
    ap = argparse.ArgumentParser(
        prog="python -m moecore",
        description="Distributed learning of mixtures of experts (Chamroukhi & Pham).",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("designs", help="list the named synthetic designs")
    c = sub.add_parser("compare", help="reduction vs global EM vs naive aggregators on a design")
    c.add_argument("--design", default="separated-2d", choices=sorted(DESIGNS))
    c.add_argument("--n", type=_int_at_least(2), default=100_000, help="training samples (default 100000)")
    c.add_argument("--n-test", type=_int_at_least(1), default=20_000, help="held-out samples (default 20000)")
    c.add_argument("--machines", "-M", type=_int_at_least(1), default=16, help="number of machines M (default 16)")
    c.add_argument("--experts", "-K", type=_int_at_least(1), default=None, help="K (default: the design's)")
    c.add_argument("--support-size", type=_int_at_least(1), default=None, help="S (default floor(n / 4M))")
    c.add_argument("--n-jobs", type=_n_jobs, default=-1, help="parallel local fits (default: all cores)")
    c.add_argument("--backend", default="loky", choices=["loky", "threading", "multiprocessing", "sequential"])
    c.add_argument("--variance-update", default="exact", choices=list(VARIANCE_UPDATES))
    c.add_argument("--gate-targets", default="component", choices=list(GATE_TARGETS),
                   help="how the reduced gate is obtained (default component; plan = the paper's)")
    c.add_argument("--local-check", default="refit", choices=list(LOCAL_CHECKS),
                   help="screening of poor local fits (default refit; off = the paper)")
    c.add_argument("--rounds", type=_int_at_least(0), default=0, help="distributed EM refinement rounds (default 0: one-shot)")
    c.add_argument("--seed", type=_int_at_least(0), default=0)
    c.add_argument("--csv", default=None, help="also write the table to this CSV file")
    return ap


def main(argv=None):
    args = _build_parser().parse_args(argv)
    if args.command == "designs":
        for name, d in DESIGNS.items():
            print(f"{name:16s} K={d.n_experts} d={d.n_features}  {d.description}")
        return 0
    if args.csv:
        # Before minutes of fitting: a table that cannot be written is refused now.
        folder = os.path.dirname(os.path.abspath(args.csv))
        if not os.path.isdir(folder):
            print(f"error: --csv {args.csv}: the folder {folder} does not exist.", file=sys.stderr)
            return 2
        if os.path.isdir(args.csv) or not os.access(folder, os.W_OK):
            print(f"error: --csv {args.csv}: cannot write a file there.", file=sys.stderr)
            return 2
    import pandas as pd

    from .experiments import compare_methods
    from .simulation import simulate_design

    ss = np.random.SeedSequence(args.seed)
    s_train, s_test = ss.spawn(2)
    try:
        train = simulate_design(args.design, args.n, random_state=s_train)
        test = simulate_design(args.design, args.n_test, random_state=s_test)
        K = args.experts if args.experts is not None else train.params.n_experts
        comp = compare_methods(
            train.X, train.y, test.X, test.y, K, args.machines,
            labels_test=test.labels, truth=train.params if K == train.params.n_experts else None,
            random_state=args.seed, n_jobs=args.n_jobs, backend=args.backend,
            support_size=args.support_size, variance_update=args.variance_update,
            gate_targets=args.gate_targets, local_check=args.local_check, refine_rounds=args.rounds,
        )
    except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: LocalFitError
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
        try:
            table.to_csv(args.csv)
        except OSError as exc:
            print(f"error: could not write --csv {args.csv}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
