"""Side by side with a peer: R's flexmix and moecore's global EM on the same data, same model.

    .venv/bin/python benchmarks/bench_flexmix.py                    # n = 1e5, separated-2d (d = 2, K = 4)
    .venv/bin/python benchmarks/bench_flexmix.py --n 20000 --design overlapping-5d

flexmix fits the same model: FLXMRglm(family = "gaussian") experts (Gaussian linear regressions)
with a FLXPmultinom concomitant (the softmax gate on x).  Both start from the same hard partition
(one k-means run on the standardised (x, y)) and stop when the relative
change of the log-likelihood is below ``--tol``; flexmix is run with ``minprior = 0`` so that it
keeps all K components, as moecore does.  Reported: fit time (flexmix: R's system.time of the
``flexmix()`` call; moecore: ``fit_time_``, BLAS limited to one thread) and final log-likelihood of
both, plus flexmix's parameters re-evaluated by moecore's density (a check that the two programs
fit the same model: that number must equal flexmix's own log-likelihood).

Needs R with flexmix (Debian: ``apt-get install r-base-core r-cran-flexmix``).  Where ``Rscript``
or flexmix is missing, the script says so and exits with status 0 without a result: it is a
benchmark, not a test.  Output: ``benchmarks/results/flexmix.csv``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moecore import MixtureOfExperts, MoEParams  # noqa: E402
from moecore.model import loglik_per_sample  # noqa: E402
from moecore.simulation import simulate_design  # noqa: E402

COMMAND = "cd " + str(ROOT) + " && .venv/bin/python benchmarks/bench_flexmix.py " + " ".join(
    shlex.quote(a) for a in sys.argv[1:])
R_SCRIPT = ROOT / "benchmarks" / "flexmix_fit.R"


def r_status():
    """None when R and flexmix are usable, else the reason they are not."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "Rscript not found (install R: apt-get install r-base-core r-cran-flexmix)"
    r = subprocess.run([rscript, "-e", "suppressPackageStartupMessages(library(flexmix))"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "R package flexmix not installed (apt-get install r-cran-flexmix): " + r.stderr.strip()[-200:]
    return None


class _GivenPartition(MixtureOfExperts):
    """MixtureOfExperts started from a given hard partition (the one flexmix gets)."""

    labels = None

    def _initial_responsibilities(self, XtT, y, rng):
        K = self.n_experts
        tau = np.zeros((K, y.shape[0]))
        tau[self.labels, np.arange(y.shape[0])] = 1.0
        return tau


def kmeans_partition(X, y, K, seed):
    from sklearn.cluster import KMeans

    Z = np.column_stack([X, y])
    Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    return KMeans(K, n_init=1, random_state=seed).fit_predict(Z)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--design", default="separated-2d")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--max-iter", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "flexmix.csv"))
    args = ap.parse_args(argv)

    why = r_status()
    if why is not None:
        print(f"SKIPPED: flexmix benchmark not run: {why}.")
        return 0
    import pandas as pd

    data = simulate_design(args.design, args.n, random_state=args.seed)
    K, d = data.params.n_experts, data.params.n_features
    labels = kmeans_partition(data.X, data.y, K, args.seed)

    # moecore, one core, from the same partition.
    est = _GivenPartition(K, max_iter=args.max_iter, tol=args.tol, random_state=args.seed)
    est.labels = labels
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        est.fit(data.X, data.y)
    m_ll = float(loglik_per_sample(data.X, data.y, est.params_).sum())

    with tempfile.TemporaryDirectory() as tmp:
        cols = {f"x{j + 1}": data.X[:, j] for j in range(d)}
        pd.DataFrame({"y": data.y, **cols}).to_csv(Path(tmp) / "data.csv", index=False, float_format="%.17g")
        pd.DataFrame({"label": labels + 1}).to_csv(Path(tmp) / "init.csv", index=False)
        out = Path(tmp) / "out.csv"
        t = time.perf_counter()
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        r = subprocess.run(["Rscript", str(R_SCRIPT), str(Path(tmp) / "data.csv"), str(Path(tmp) / "init.csv"),
                            str(K), str(args.tol), str(args.max_iter), str(out)],
                           capture_output=True, text=True, env=env)
        r_wall = time.perf_counter() - t
        if r.returncode != 0:
            print("flexmix failed:\n" + r.stderr[-2000:])
            return 1
        fx = pd.read_csv(out)

    # flexmix's parameters in moecore's layout; its gate has the first column as reference.
    experts = np.vstack([fx[f"beta{j}"].to_numpy() for j in range(d + 1)])
    gates = np.vstack([fx[f"alpha{j}"].to_numpy() for j in range(d + 1)])
    fparams = MoEParams(gates, experts, fx["sigma2"].to_numpy())  # re-pinned to the last column
    f_ll_moecore = float(loglik_per_sample(data.X, data.y, fparams).sum())
    f_ll = float(fx["loglik"].iloc[0])
    rows = [
        dict(program="moecore MixtureOfExperts (1 core)", time=est.fit_time_, loglik=est.loglik_,
             loglik_by_moecore=m_ll, iterations=est.n_iter_, converged=est.converged_, version="moecore"),
        dict(program="R flexmix FLXMRglm + FLXPmultinom", time=float(fx["time"].iloc[0]), loglik=f_ll,
             loglik_by_moecore=f_ll_moecore, iterations=int(fx["iterations"].iloc[0]),
             converged=bool(fx["converged"].iloc[0]),
             version=f"flexmix {fx['flexmix_version'].iloc[0]}, {fx['r_version'].iloc[0]}"),
    ]
    df = pd.DataFrame(rows)
    df["speedup_vs_flexmix"] = df["time"].iloc[1] / df["time"]
    for k, v in dict(design=args.design, n=args.n, K=K, d=d, tol=args.tol, seed=args.seed,
                     host=platform.node(), cpus=os.cpu_count(), rscript_wall_incl_startup=r_wall,
                     command=COMMAND).items():
        df[k] = v
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False, float_format="%.10g")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df[["program", "time", "loglik", "loglik_by_moecore", "iterations", "converged",
                  "speedup_vs_flexmix"]].to_string(index=False))
    print(f"\nwritten {args.out}\ncommand: {COMMAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
