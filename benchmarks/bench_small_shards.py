"""Where the reduction stops working: rows per machine against parameters per local model, and the
supporting sample's size S against the reduced model's parameters, on small real data sets and two
synthetic designs.

    .venv/bin/python benchmarks/bench_small_shards.py            # writes benchmarks/results/small_shards.csv

For each data set, K in {2, 3}, M from 2 up to the most machines the library accepts, S in {default
floor(n / 4M), n} and three seeds: the distributed fit's RPE on all the rows divided by the global EM's
(same EM settings, same seed).  The small real sets are moecore.datasets' when that module exists,
otherwise exported from R (mixtools, MASS, datasets) through Rscript.  The summary prints, for bands of
r = (rows per machine) / (parameters per local model) and of S / (parameters of the reduced model),
the share of fits worse than 1.2x the global EM's RPE and the worst ratio: moecore.shard_check's rule
is read from it.
"""

from __future__ import annotations

import os
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

SMALL = ("tonedata", "nodata", "boston", "mcycle", "faithful")
_R_EXPORT = {
    "tonedata": ("mixtools", "tonedata", "tuned", "stretchratio"),
    "nodata": ("mixtools", "NOdata", "NO", "Equivalence"),
    "boston": ("MASS", "Boston", "medv", "lstat"),
    "mcycle": ("MASS", "mcycle", "accel", "times"),
    "faithful": ("datasets", "faithful", "eruptions", "waiting"),
}


def small_sets():
    """{name: (X (n, 1), y (n,))} of the small real data sets."""
    try:
        from moecore.datasets import load_dataset
    except ImportError:
        return _from_r()
    return {name: (ds.X, ds.y) for name in SMALL for ds in [load_dataset(name)]}


def _from_r():
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (pkg, obj, yname, xname) in _R_EXPORT.items():
            path = os.path.join(tmp, f"{name}.csv")
            code = (f"suppressPackageStartupMessages(library({pkg})); data({obj}); "
                    f"write.csv({obj}[, c('{yname}', '{xname}')], '{path}', row.names = FALSE)")
            subprocess.run(["Rscript", "-e", code], check=True, capture_output=True)
            df = pd.read_csv(path)
            out[name] = (df.iloc[:, 1:].to_numpy(float), df.iloc[:, 0].to_numpy(float))
    return out


def main():
    sets = small_sets()
    for design, n in (("teaching-1d", 600), ("separated-2d", 1200)):
        sim = simulate_design(design, n, random_state=7)
        sets[design] = (sim.X, sim.y)
    rows = []
    for name, (X, y) in sets.items():
        n, d = X.shape
        for K in (2, 3):
            q_local = n_free_parameters(K, d)
            M_max = n // min_samples(K, d)
            Ms = sorted({m for m in (2, 3, 4, 6, 8, 12, 16, 24, 32) if m <= M_max})
            for seed in range(3):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    g = fit_global(X, y, K, random_state=seed)
                g_rpe = rpe(y, g.predict(X))
                for M in Ms:
                    for S in (None, n):
                        dm = DistributedMoE(K, M, support_size=S, backend="sequential", random_state=seed)
                        try:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                dm.fit(X, y)
                            ratio = rpe(y, dm.predict(X)) / g_rpe
                        except (ValueError, RuntimeError) as exc:
                            ratio, why = np.nan, str(exc)[:60]
                        else:
                            why = ""
                        S_used = n // (4 * M) if S is None else S
                        rows.append(dict(data=name, n=n, d=d, K=K, M=M, seed=seed, rows_per_machine=n // M,
                                         q_local=q_local, r=(n // M) / q_local, S=max(S_used, K),
                                         s_ratio=max(S_used, K) / q_local, global_rpe=g_rpe, rpe_ratio=ratio,
                                         error=why))
        print(f"{name}: done", flush=True)
    df = pd.DataFrame(rows)
    out = ROOT / "benchmarks" / "results" / "small_shards.csv"
    df.to_csv(out, index=False)
    df["bad"] = ~(df["rpe_ratio"] <= 1.2)   # a failed fit counts as bad
    r_bands = pd.cut(df["r"], [0, 2, 3, 4, 5, 6, 8, 10, 15, 1e9], right=False)
    s_bands = pd.cut(df["s_ratio"], [0, 1, 2, 3, 5, 10, 1e9], right=False)
    with pd.option_context("display.width", 160):
        print("\nby rows per machine / parameters per local model (r), S = n (support not limiting):")
        print(df[df["S"] == df["n"]].groupby(r_bands[df["S"] == df["n"]], observed=True)
              .agg(fits=("bad", "size"), bad_share=("bad", "mean"), worst=("rpe_ratio", "max")))
        print("\nby S / parameters of the reduced model, r >= 5:")
        sel = df["r"] >= 5
        print(df[sel].groupby(s_bands[sel], observed=True)
              .agg(fits=("bad", "size"), bad_share=("bad", "mean"), worst=("rpe_ratio", "max")))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
