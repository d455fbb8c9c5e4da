"""Outlying rows (moecore.outliers): what one isolated row costs a fit, and whether the rule stays quiet
on real data and designs.

    .venv/bin/python benchmarks/bench_outliers.py harm    # about 1 min: results/outliers_harm.csv
    .venv/bin/python benchmarks/bench_outliers.py quiet   # about 30 s with R: results/outliers_quiet.csv
    .venv/bin/python benchmarks/bench_outliers.py tails   # about 20 s: results/outliers_tails.csv

``harm``: two designs (two-experts-1d with K = 2, separated-2d with K = 3) at n in {2 000, 20 000}; one
row's y, or its first input, moved to z robust standard deviations (IQR / 1.349) from the column's
median; the held-out log-likelihood (20 000 fresh rows of the design) the global EM loses against its fit
on the data without the moved row, and whether the rule flags the row.

``quiet``: the rule on every column of the shipped real data sets, of 33 more small real data sets from R
(benchmarks/bench_small_shards.py's MORE and UNSEEN, when Rscript is there) and of six more with known
extreme values, and on the six synthetic designs (10 seeds; 200, 2 000 and 10^5 rows), at the library's
threshold and at a lower one (6) for the margin.

``tails``: how often the rule flags a row in samples with no error in them, from distributions with longer
tails than the Gaussian (exponential, Laplace, Student t with 3 and 1 degrees of freedom, lognormal with
sigma 1 and 2), n in {30, 100, 1 000, 10^5}, 400 samples each (40 at 10^5), at both thresholds.  There a
flag is no error of the data but a row a Gaussian expert is indeed pulled by.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import moecore.outliers as outliers_mod  # noqa: E402
from moecore import MixtureOfExperts, simulate_design  # noqa: E402
from moecore.datasets import dataset_names, load_dataset  # noqa: E402
from moecore.outliers import find_outliers  # noqa: E402
from moecore.simulation import DESIGNS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# Small real data sets with values far out on the raw scale (brain and body weights) or none.
EXTREME = {
    "hills": ("MASS", "hills", "time", ["dist", "climb"]),
    "animals": ("MASS", "Animals", "brain", ["body"]),
    "mammals": ("MASS", "mammals", "brain", ["body"]),
    "stackloss": ("datasets", "stackloss", "stack.loss", ["Air.Flow"]),
    "usarrests": ("datasets", "USArrests", "Murder", ["UrbanPop"]),
    "airquality_solar": ("datasets", "airquality", "Solar.R", ["Wind"]),
}


def _robust(a):
    q1, m, q3 = np.percentile(a, [25, 50, 75])
    return m, (q3 - q1) / 1.349


def harm(args):
    rows = []
    for design, K in (("two-experts-1d", 2), ("separated-2d", 3)):
        test = simulate_design(design, n=20000, random_state=1)
        for n in (2000, 20000):
            sim = simulate_design(design, n=n, random_state=0)
            clean = MixtureOfExperts(n_experts=K, random_state=0).fit(sim.X, sim.y).score(test.X, test.y)
            for where in ("y", "x"):
                for z in (4, 8, 12, 20, 30, 100, 1e4):
                    X, y = sim.X.copy(), sim.y.copy()
                    col = y if where == "y" else X[:, 0]
                    m, s = _robust(col)
                    col[0] = m + z * s
                    flagged = 0 in find_outliers(X, y).rows
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        score = MixtureOfExperts(n_experts=K, random_state=0).fit(X, y).score(test.X, test.y)
                    rows.append(dict(design=design, n=n, where=where, z=z, flagged=flagged,
                                     loss=clean - score))
                    print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(RESULTS / "outliers_harm.csv", index=False)
    print(df.pivot_table(index=["design", "n", "where"], columns="z", values="loss").round(3).to_string())
    print(df.pivot_table(index=["design", "n", "where"], columns="z", values="flagged").to_string())


def _found(far, columns):
    """find_outliers on each column (n,) of ``columns`` with the threshold ``far``."""
    old, outliers_mod.FAR_FROM_BULK = outliers_mod.FAR_FROM_BULK, far
    try:
        return [find_outliers(a[:, None]) for a in columns]
    finally:
        outliers_mod.FAR_FROM_BULK = old


def tails(args):
    rng = np.random.default_rng(0)
    draw = {"exponential": rng.exponential, "laplace": rng.laplace,
            "t3": lambda size: rng.standard_t(3, size), "t1 (Cauchy)": lambda size: rng.standard_t(1, size),
            "lognormal 1": lambda size: rng.lognormal(0, 1, size),
            "lognormal 2": lambda size: rng.lognormal(0, 2, size)}
    rows = []
    for name, fn in draw.items():
        for n in (30, 100, 1000, 100_000):
            samples = [fn(size=n) for _ in range(400 if n < 100_000 else 40)]
            row = dict(distribution=name, n=n, samples=len(samples))
            for far in (outliers_mod.FAR_FROM_BULK, 6.0):
                row[f"flagged_at_{far:g}"] = np.mean([not f.ok for f in _found(far, samples)])
            rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(RESULTS / "outliers_tails.csv", index=False)
    print(df.pivot_table(index="distribution", columns="n", values=[c for c in df if c.startswith("flagged")])
          .round(3).to_string())


def _columns():
    """(source, set, column, values) of every column checked in ``quiet``."""
    from bench_small_shards import MORE, UNSEEN, from_r

    for name in dataset_names():
        ds = load_dataset(name)
        yield "shipped", name, ds.response_name, ds.y
        for j, f in enumerate(ds.feature_names):
            yield "shipped", name, f, ds.X[:, j]
    for source, sets in (("R", {**MORE, **UNSEEN}), ("R, extreme values", EXTREME)):
        for name, (X, y) in from_r(sets).items():
            cols = sets[name]
            yield source, name, cols[2], y
            for j, f in enumerate(cols[3]):
                yield source, name, f, X[:, j]
    for design in DESIGNS:
        for seed in range(10):
            for n in (200, 2000, 100_000):
                sim = simulate_design(design, n=n, random_state=seed)
                yield "design", f"{design} n={n} seed={seed}", "y", sim.y
                for j in range(sim.X.shape[1]):
                    yield "design", f"{design} n={n} seed={seed}", f"x{j + 1}", sim.X[:, j]


def quiet(args):
    rows = []
    for source, name, col, a in _columns():
        row = dict(source=source, set=name, column=col, n=len(a))
        for far in (outliers_mod.FAR_FROM_BULK, 6.0):
            found = _found(far, [a])[0]
            row[f"rows_at_{far:g}"] = " ".join(str(int(r)) for r in found.rows)
        rows.append(row)
        if row[f"rows_at_{outliers_mod.FAR_FROM_BULK:g}"] or row["rows_at_6"]:
            print(row, flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(RESULTS / "outliers_quiet.csv", index=False)
    for far in (outliers_mod.FAR_FROM_BULK, 6.0):
        hit = df[df[f"rows_at_{far:g}"] != ""]
        print(f"threshold {far:g}: flags in {len(hit)} of {len(df)} columns;",
              {src: int((hit.source == src).sum()) for src in df.source.unique()})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["harm", "quiet", "tails"])
    args = ap.parse_args(argv)
    {"harm": harm, "quiet": quiet, "tails": tails}[args.what](args)


if __name__ == "__main__":
    main()
