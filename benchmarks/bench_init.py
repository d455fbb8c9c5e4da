"""EM initialisation: k-means, best of 3 restarts on a small subsample, compiled.

    .venv/bin/python benchmarks/bench_init.py            # ~2 min; CSV to benchmarks/results/bench_init.csv
    .venv/bin/python benchmarks/bench_init.py --quick    # fewer shards and data sets

Compares moecore's ``init="kmeans"`` (the best of 3 greedy k-means++ / Lloyd restarts on
max(2000, 100 K (d+1)) points, every point then labelled by its nearest centre, run by the compiled
kernel of ``moecore._kmeans``) with the same initialisation run by scikit-learn's ``KMeans`` (what
moecore used before), and with the single scikit-learn k-means run on up to 20 000 points that it
used before that. Everything else in EM is the same code.

* Local fits: the headline's shards (separated-2d, n = 10^6 over M = 128 machines, split and
  seeded as ``DistributedMoE(random_state=s)`` does, for three seeds s): EM iterations and fit time
  (one core, the minimum of 2 runs) of every shard. The slowest shard sets the learning time.
* Global fits: on separated-10d and overlapping-5d (n = 10^5), 4 data sets x 8 seeds, the number of
  fits whose final log-likelihood per sample is more than 0.02 below the best of the 8 seeds on
  the same data set (a poor local optimum).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moecore import MixtureOfExperts  # noqa: E402
from moecore.em import _kmeans_sample_size  # noqa: E402
from moecore.simulation import simulate_design  # noqa: E402
from moecore.splits import split_shards  # noqa: E402

COMMAND = "cd " + str(ROOT) + " && .venv/bin/python benchmarks/bench_init.py " + " ".join(
    shlex.quote(a) for a in sys.argv[1:])


class SklearnKMeans(MixtureOfExperts):
    """moecore's EM started by scikit-learn's KMeans: the best of ``restarts`` runs on at most
    ``sample_size(K, p)`` of the (x, y) pairs, every pair then labelled by its nearest centre.
    By default the subsample and restarts of moecore's compiled k-means: what moecore ran before it."""

    restarts = 3

    @staticmethod
    def sample_size(K, p):
        return _kmeans_sample_size(K, p)

    def _initial_responsibilities(self, XtT, y, rng):
        K = self.n_experts
        n = y.shape[0]
        Z = np.column_stack([XtT[1:].T, y])
        seed = int(rng.integers(2**31 - 1))
        n_sub = self.sample_size(K, XtT.shape[0])
        sub = Z[rng.choice(n, n_sub, replace=False)] if n > n_sub else Z
        km = KMeans(K, n_init=self.restarts, random_state=seed).fit(sub)
        labels = km.labels_ if sub is Z else km.predict(Z)
        tauT = np.zeros((K, n))
        tauT[labels, np.arange(n)] = 1.0
        return tauT


class OneKMeansRun(SklearnKMeans):
    """moecore's EM started as before that: one k-means run on at most 20 000 of the (x, y) pairs."""

    restarts = 1

    @staticmethod
    def sample_size(K, p):
        return 20000


VARIANTS = {
    "compiled k-means, 3 restarts (current)": MixtureOfExperts,
    "sklearn KMeans, 3 restarts (before)": SklearnKMeans,
    "sklearn KMeans, 1 run on <= 20 000": OneKMeansRun,
}


def local_fits(M, seeds, n):
    data = simulate_design("separated-2d", n, random_state=np.random.SeedSequence(0).spawn(2)[0])
    rows = []
    for s in seeds:
        # The split and the per-machine seeds of DistributedMoE(random_state=s).
        seed_split, _, _, seed_machines = np.random.SeedSequence(s).spawn(4)
        shards = split_shards(n, M, np.random.default_rng(seed_split))
        machine_seeds = seed_machines.spawn(M)
        for name, cls in VARIANTS.items():
            iters, times = [], []
            for m, idx in enumerate(shards):
                t_best = np.inf
                for _ in range(2):
                    # A fresh copy of machine m's seed: fit() spawns from it, which would advance it.
                    ms = machine_seeds[m]
                    est = cls(4, random_state=np.random.SeedSequence(ms.entropy, spawn_key=ms.spawn_key))
                    t = time.perf_counter()
                    est.fit(data.X[idx], data.y[idx])
                    t_best = min(t_best, time.perf_counter() - t)
                iters.append(est.n_iter_)
                times.append(t_best)
            iters, times = np.array(iters), np.array(times) * 1e3
            rows.append(dict(part="local fits", init=name, design="separated-2d", n=n, M=M, seed=s,
                             iterations_median=float(np.median(iters)), iterations_max=int(iters.max()),
                             shards_over_40_iterations=int((iters > 40).sum()),
                             fit_ms_median=float(np.median(times)), fit_ms_max=float(times.max())))
            r = rows[-1]
            print(f"local, seed {s}, {name:39s}: iterations median {r['iterations_median']:.0f}, max "
                  f"{r['iterations_max']} ({r['shards_over_40_iterations']} shards > 40); fit median "
                  f"{r['fit_ms_median']:.1f} ms, slowest {r['fit_ms_max']:.1f} ms")
    return rows


def poor_optima(designs, n, n_data, n_seeds):
    rows = []
    for design in designs:
        for name, cls in VARIANTS.items():
            bad, iters = 0, []
            for ds in range(n_data):
                data = simulate_design(design, n, random_state=100 + ds)
                ll = []
                for r in range(n_seeds):
                    est = cls(data.params.n_experts, random_state=r, max_iter=80).fit(data.X, data.y)
                    ll.append(est.loglik_ / n)
                    iters.append(est.n_iter_)
                ll = np.array(ll)
                bad += int((ll < ll.max() - 0.02).sum())
            rows.append(dict(part="global fits", init=name, design=design, n=n, poor_optima=bad,
                             fits=n_data * n_seeds, iterations_median=float(np.median(iters)),
                             iterations_max=int(np.max(iters))))
            print(f"global, {design:15s} {name:39s}: poor optima {bad}/{n_data * n_seeds}; iterations median "
                  f"{np.median(iters):.0f}, max {np.max(iters)}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="M = 32 shards of 2.5e5 points, 2 data sets")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_init.csv"))
    args = ap.parse_args(argv)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        if args.quick:
            rows = local_fits(32, [0], 250_000) + poor_optima(["separated-10d"], 50_000, 2, 4)
        else:
            rows = local_fits(128, [0, 1, 2], 1_000_000) + poor_optima(["separated-10d", "overlapping-5d"],
                                                                        100_000, 4, 8)
    import pandas as pd

    df = pd.DataFrame(rows)
    df["command"] = COMMAND
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False, float_format="%.6g")
    print(f"written {args.out}\ncommand: {COMMAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
