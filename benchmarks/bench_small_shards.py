"""Where the reduction stops working: rows per machine against parameters per local model, and the
supporting sample's size S against the reduced model's parameters, on small real data sets and three
synthetic designs; and how the check after the fit (moecore.shard_check.check_fit) catches what the
size rule cannot.

    .venv/bin/python benchmarks/bench_small_shards.py            # writes benchmarks/results/small_shards.csv
    .venv/bin/python benchmarks/bench_small_shards.py --only gag,cats --seeds 1   # a quick look
    .venv/bin/python benchmarks/bench_small_shards.py --unseen   # the 18 UNSEEN sets: small_shards_unseen.csv

For each data set, K in {2, 3, 4}, M from 2 up to the most machines the library accepts, S in {default
floor(n / 4M), n} and three seeds: the distributed fit's RPE on all the rows divided by the global EM's
(same EM settings, same seed), whether the size rule warned (SmallShardWarning), and the check's ratio
(final model's training RPE / the local models' own in sample) and warning (AccuracyWarning).  The data:
the shipped small real sets (moecore.datasets) and, when Rscript is there, fifteen more small real sets
exported from R (datasets, MASS, flexmix; none was used to choose the rules' bounds before they were
measured here), plus three designs.  The summary prints, for bands of r = (rows per machine) /
(parameters per local model) and of S / (parameters of the reduced model), the share of fits worse than
1.2x the global EM's RPE; then the check's catches and false alarms, and what was accepted without any
warning.  moecore.shard_check's bounds are read from it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moecore import DistributedMoE, simulate_design  # noqa: E402
from moecore.baselines import fit_global  # noqa: E402
from moecore.metrics import rpe  # noqa: E402
from moecore.params import min_samples, n_free_parameters  # noqa: E402
from moecore.shard_check import AccuracyWarning, SmallShardWarning  # noqa: E402

SMALL = ("tonedata", "nodata", "boston", "mcycle", "faithful")
# More small real data sets, from R: (package, object, y, x columns).  Rounded or tied responses
# (cats, quakes, Traffic) and narrow-region experts (GAGurine) are where the size rule alone failed.
MORE = {
    "quakes_stations": ("datasets", "quakes", "stations", ["mag"]),
    "quakes_mag": ("datasets", "quakes", "mag", ["depth", "stations"]),
    "chickweight": ("datasets", "ChickWeight", "weight", ["Time"]),
    "gagurine": ("MASS", "GAGurine", "GAG", ["Age"]),
    "sitka": ("MASS", "Sitka", "size", ["Time"]),
    "geyser": ("MASS", "geyser", "duration", ["waiting"]),
    "airquality": ("datasets", "airquality", "Ozone", ["Temp"]),
    "airquality_2": ("datasets", "airquality", "Ozone", ["Temp", "Wind"]),
    "attenu": ("datasets", "attenu", "accel", ["dist"]),
    "iris": ("datasets", "iris", "Petal.Width", ["Petal.Length"]),
    "boston_2": ("MASS", "Boston", "medv", ["lstat", "rm"]),
    "nregfix": ("flexmix", "NregFix", "y", ["x1"]),
    "cats": ("MASS", "cats", "Hwt", ["Bwt"]),
    "crabs": ("MASS", "crabs", "CW", ["FL"]),
    "traffic": ("MASS", "Traffic", "y", ["day"]),
}
# Eighteen more, chosen after the portfolio's every-run rule (docs/method.md section 8, item 7) to
# check it on data it was not chosen on (benchmarks/README.md section 22): bench_portfolio.py real --unseen.
UNSEEN = {
    "npreg": ("flexmix", "NPreg", "yn", ["x"]),
    "cars93": ("MASS", "Cars93", "Price", ["Horsepower"]),
    "whiteside": ("MASS", "whiteside", "Gas", ["Temp"]),
    "loblolly": ("datasets", "Loblolly", "height", ["age"]),
    "co2": ("datasets", "CO2", "uptake", ["conc"]),
    "uscereal": ("MASS", "UScereal", "calories", ["sugars"]),
    "rabbit": ("MASS", "Rabbit", "BPchange", ["Dose"]),
    "survey": ("MASS", "survey", "Height", ["Wr.Hnd"]),
    "cars": ("datasets", "cars", "dist", ["speed"]),
    "wtloss": ("MASS", "wtloss", "Weight", ["Days"]),
    "birthwt": ("MASS", "birthwt", "bwt", ["lwt"]),
    "theoph": ("datasets", "Theoph", "conc", ["Time"]),
    "dnase": ("datasets", "DNase", "density", ["conc"]),
    "pima": ("MASS", "Pima.tr", "glu", ["bmi"]),
    "anorexia": ("MASS", "anorexia", "Postwt", ["Prewt"]),
    "melanoma": ("MASS", "Melanoma", "time", ["thickness"]),
    "beaver1": ("datasets", "beaver1", "temp", ["time"]),
    "indometh": ("datasets", "Indometh", "conc", ["time"]),
}
_R_EXPORT = {
    "tonedata": ("mixtools", "tonedata", "tuned", ["stretchratio"]),
    "nodata": ("mixtools", "NOdata", "NO", ["Equivalence"]),
    "boston": ("MASS", "Boston", "medv", ["lstat"]),
    "mcycle": ("MASS", "mcycle", "accel", ["times"]),
    "faithful": ("datasets", "faithful", "eruptions", ["waiting"]),
}


def small_sets():
    """{name: (X (n, 1), y (n,))} of the small real data sets."""
    try:
        from moecore.datasets import load_dataset
    except ImportError:
        return from_r()
    return {name: (ds.X, ds.y) for name in SMALL for ds in [load_dataset(name)]}


def from_r(sets=None):
    """{name: (X, y)} exported from R through Rscript (rows with a missing value dropped); {} without R."""
    if shutil.which("Rscript") is None:
        return {}
    sets = _R_EXPORT if sets is None else sets
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (pkg, obj, yname, xnames) in sets.items():
            path = os.path.join(tmp, f"{name}.csv")
            cols = ", ".join(f"'{c}'" for c in [yname, *xnames])
            code = (f"suppressPackageStartupMessages(library({pkg})); data({obj}); "
                    f"write.csv(na.omit({obj}[, c({cols})]), '{path}', row.names = FALSE)")
            subprocess.run(["Rscript", "-e", code], check=True, capture_output=True)
            df = pd.read_csv(path)
            out[name] = (df.iloc[:, 1:].to_numpy(float), df.iloc[:, 0].to_numpy(float))
    return out


def one_fit(X, y, K, M, S, seed, g_rpe):
    """The distributed fit's RPE ratio to the global EM's, and what it warned (NaN: refused or failed)."""
    dm = DistributedMoE(K, M, support_size=S, backend="sequential", random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dm.fit(X, y)
        except (ValueError, RuntimeError) as exc:
            return dict(rpe_ratio=np.nan, error=str(exc)[:60], size_warned=False, check_warned=False,
                        check_ratio=np.nan)
    kinds = {w.category for w in caught}
    check = dm.fit_check_
    return dict(rpe_ratio=rpe(y, dm.predict(X)) / g_rpe, error="", size_warned=SmallShardWarning in kinds,
                check_warned=AccuracyWarning in kinds, check_ratio=np.nan if check is None else check.ratio)


def summarise(df):
    df["bad"] = ~(df["rpe_ratio"] <= 1.2)   # a failed fit counts as bad
    r_bands = pd.cut(df["r"], [0, 2, 3, 4, 5, 6, 8, 10, 15, 1e9], right=False)
    s_bands = pd.cut(df["s_ratio"], [0, 1, 2, 3, 5, 10, 1e9], right=False)
    with pd.option_context("display.width", 160):
        print("\nby rows per machine / parameters per local model (r), S = n (support not limiting):")
        full = df["S"] == df["n"]
        print(df[full].groupby(r_bands[full], observed=True)
              .agg(fits=("bad", "size"), bad_share=("bad", "mean"), worst=("rpe_ratio", "max")))
        print("\nby S / parameters of the reduced model, r >= 5:")
        sel = df["r"] >= 5
        print(df[sel].groupby(s_bands[sel], observed=True)
              .agg(fits=("bad", "size"), bad_share=("bad", "mean"), worst=("rpe_ratio", "max")))
        quiet = ~df["size_warned"]
        print(f"\nthe size rule alone: {int(quiet.sum())} fits accepted without a SmallShardWarning, "
              f"{int((quiet & df['bad']).sum())} of them above 1.2x (worst {df.loc[quiet, 'rpe_ratio'].max():.2f}x)")
        ok = df["error"] == ""
        for name, sel in (("all fits", ok), ("fits the size rule accepts", ok & quiet)):
            bad, flag = df["bad"] & sel, df["check_warned"] & sel
            print(f"the check after the fit, {name}: caught {int((bad & flag).sum())} of {int(bad.sum())} above "
                  f"1.2x; false alarms {int((flag & ~bad).sum())} of {int((sel & ~bad).sum())}")
        good = ok & ~df["bad"]
        print("local models' in-sample RPE / global EM's, every fit: "
              f"{(df.loc[ok, 'rpe_ratio'] / df.loc[ok, 'check_ratio']).min():.3f}-"
              f"{(df.loc[ok, 'rpe_ratio'] / df.loc[ok, 'check_ratio']).max():.3f}; the check's ratio on fits above "
              f"1.2x: min {df.loc[df['bad'] & ok, 'check_ratio'].min():.3f}; false alarms with r >= 16: "
              f"{int((good & df['check_warned'] & (df['r'] >= 16)).sum())} of {int((good & (df['r'] >= 16)).sum())}")
        silent = ok & quiet & ~df["check_warned"]
        print(f"accepted without any warning: {int(silent.sum())} fits, {int((silent & df['bad']).sum())} above 1.2x "
              f"(worst {df.loc[silent, 'rpe_ratio'].max():.3f}x)")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated data set names (default: all)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--unseen", action="store_true",
                    help="the eighteen R sets of UNSEEN instead, none of them used for the rule or the check")
    args = ap.parse_args(argv)
    if args.unseen:
        sets = from_r(UNSEEN)
        if not sets:
            raise SystemExit("--unseen needs Rscript with the datasets, MASS and flexmix packages.")
    else:
        sets = {**small_sets(), **from_r(MORE)}
        for design, n in (("teaching-1d", 600), ("separated-2d", 1200), ("overlapping-5d", 2000)):
            sim = simulate_design(design, n, random_state=7)
            sets[design] = (sim.X, sim.y)
    if args.only:
        sets = {k: v for k, v in sets.items() if k in args.only.split(",")}
    rows = []
    for name, (X, y) in sets.items():
        n, d = X.shape
        for K in (2, 3, 4):
            q_local = n_free_parameters(K, d)
            M_max = n // min_samples(K, d)
            Ms = sorted({m for m in (2, 3, 4, 6, 8, 12, 16, 24, 32) if m <= M_max})
            for seed in range(args.seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    g = fit_global(X, y, K, random_state=seed)
                g_rpe = rpe(y, g.predict(X))
                for M in Ms:
                    for S in (None, n):
                        S_used = n // (4 * M) if S is None else S
                        rows.append(dict(data=name, n=n, d=d, K=K, M=M, seed=seed, rows_per_machine=n // M,
                                         q_local=q_local, r=(n // M) / q_local, S=max(S_used, K),
                                         s_ratio=max(S_used, K) / q_local, global_rpe=g_rpe,
                                         **one_fit(X, y, K, M, S, seed, g_rpe)))
        print(f"{name}: done", flush=True)
    df = pd.DataFrame(rows)
    out = ROOT / "benchmarks" / "results" / f"small_shards{'_unseen' if args.unseen else ''}.csv"
    if not args.only:
        df.to_csv(out, index=False)
    summarise(df)
    if not args.only:
        print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
