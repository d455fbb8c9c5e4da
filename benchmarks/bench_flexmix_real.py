"""The shipped small real data sets with moecore and with R's flexmix, side by side.

    .venv/bin/python benchmarks/bench_flexmix_real.py            # writes benchmarks/results/flexmix_real.csv
    .venv/bin/python benchmarks/bench_flexmix_real.py --flexmix-from benchmarks/results/flexmix_real.csv

The second form refits moecore only and takes flexmix's figures from an earlier run's table (R's
starts are seeded, so they do not change; its 20 starts take about 40 minutes on 2 cores).

For each set, K is chosen by BIC over K = 1..4 (moecore.selection.choose_k, global EM, 5 restarts);
at that K (and at the set's suggested K where it differs) moecore's EM with 20 restarts and flexmix
(FLXMRglm gaussian experts + FLXPmultinom concomitant, stepFlexmix best of 20 random starts,
benchmarks/flexmix_best.R) fit the same model; printed: both maximum log-likelihoods, their
difference and both times (moecore: fit_time_ of all 20 restarts; flexmix: system.time of all 20).
flexmix has no variance floor, so where a component can collapse onto a few collinear points its
log-likelihood may exceed moecore's (var_floor = 1e-6 var(y)); ``moecore_min_var`` shows how close
moecore's smallest variance came to that.
Needs Rscript with flexmix; otherwise says so and exits 0 (a benchmark, not a test).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_small_shards import small_sets  # noqa: E402

from moecore import MixtureOfExperts  # noqa: E402
from moecore.selection import choose_k  # noqa: E402

R_SCRIPT = ROOT / "benchmarks" / "flexmix_best.R"
SUGGESTED = {"tonedata": 2, "nodata": 2, "boston": 2, "mcycle": 3, "faithful": 2}


def flexmix(X, y, K, nrep, tmp):
    data = Path(tmp) / "data.csv"
    out = Path(tmp) / "out.csv"
    df = pd.DataFrame(X, columns=[f"x{j + 1}" for j in range(X.shape[1])])
    df.insert(0, "y", y)
    df.to_csv(data, index=False)
    subprocess.run(["Rscript", str(R_SCRIPT), str(data), str(K), str(nrep), str(out)], check=True,
                   capture_output=True)
    return pd.read_csv(out).iloc[0]


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flexmix-from", type=Path, default=None,
                    help="a flexmix_real.csv whose flexmix columns are reused (R is not run)")
    args = ap.parse_args(argv)
    earlier = None
    if args.flexmix_from is not None:
        earlier = pd.read_csv(args.flexmix_from).set_index(["data", "K"])
    elif shutil.which("Rscript") is None:
        print("Rscript not found: install R with flexmix (apt-get install r-base-core r-cran-flexmix).")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (X, y) in small_sets().items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                k_bic = choose_k(X, y, (1, 2, 3, 4), random_state=0, n_init=5).chosen_global
            for K in sorted({k_bic, SUGGESTED[name]}):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m = MixtureOfExperts(K, n_init=20, random_state=0).fit(X, y)
                m_time = time.perf_counter() - t0
                m_ll = float(m.score_samples(X, y).sum())
                if earlier is None:
                    fx = flexmix(X, y, K, 20, tmp)
                elif (name, K) in earlier.index:
                    row = earlier.loc[(name, K)]
                    fx = {"loglik": row["flexmix_loglik"], "time": row["flexmix_time"],
                          "k_kept": row["flexmix_k_kept"], "flexmix_version": row["flexmix_version"]}
                else:
                    print(f"{name}, K = {K}: not in {args.flexmix_from}; skipped")
                    continue
                rows.append(dict(data=name, n=len(y), K=K, bic_choice=K == k_bic, moecore_loglik=m_ll,
                                 flexmix_loglik=fx["loglik"], gap=fx["loglik"] - m_ll, moecore_time=m_time,
                                 flexmix_time=fx["time"], flexmix_k_kept=fx["k_kept"],
                                 moecore_min_var=float(np.min(m.params_.variances)),
                                 flexmix_version=fx["flexmix_version"]))
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    out = ROOT / "benchmarks" / "results" / "flexmix_real.csv"
    df.to_csv(out, index=False)
    with pd.option_context("display.width", 200, "display.float_format", "{:.6g}".format):
        print(df.drop(columns=["flexmix_version"]).to_string(index=False))
    print(f"gap = flexmix - moecore log-likelihood (nats); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
