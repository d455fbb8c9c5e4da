"""EM starts: the portfolio ("small EM") against k-means, on real data and high-dimensional shards.

    .venv/bin/python benchmarks/bench_portfolio.py real     # real data: default vs best-known maximum (+ flexmix)
    .venv/bin/python benchmarks/bench_portfolio.py kinds    # each start kind alone, real data and d = 20 shards
    .venv/bin/python benchmarks/bench_portfolio.py highd --n 200000 --machines 16   # then --n 1000000 --machines 128
    .venv/bin/python benchmarks/bench_portfolio.py lost     # a lost 8 % expert: global misses, poor shards
    .venv/bin/python benchmarks/bench_portfolio.py lostdist --seeds 5   # the same distributed: flags, blocks
    .venv/bin/python benchmarks/bench_portfolio.py diamonds --seeds 30   # ggplot2 diamonds (log price ~ log carat)
    .venv/bin/python benchmarks/bench_portfolio.py large --seeds 2   # default fits of the shipped designs, n = 2e5
    .venv/bin/python benchmarks/bench_portfolio.py waves    # the portfolio's second wave skipped vs always run
    .venv/bin/python benchmarks/bench_portfolio.py stage2   # every short run goes on vs each kind's best
    .venv/bin/python benchmarks/bench_portfolio.py sharp    # sharp experts (low noise) are not spikes
    .venv/bin/python benchmarks/bench_portfolio.py splits   # split_moves=True vs the default on small real sets
    .venv/bin/python benchmarks/bench_portfolio.py heldout --seeds 10   # the same on small simulated data, held out
    .venv/bin/python benchmarks/bench_portfolio.py mid --seeds 10   # real data of 2 000-100 000 rows: repeats vs one

Every part writes ``benchmarks/results/bench_portfolio_<part>.csv`` and prints a table.

* ``real``: the shipped data sets (moecore.datasets) for K in {2, 3, 4}, seeds 0-4 (``--more``: the
  fifteen small sets from R that no default was chosen on, bench_small_shards.MORE; the last columns
  give the best-known fit's smallest expert, its effective points and variance / var(y)). The best-known
  maximum is the best non-degenerate log-likelihood (every variance >= DEGENERATE_VAR var(y)) over
  at least 50 diverse starts of moecore (portfolio fits of 13 starts each with 4 seeds, 200 random
  partitions, 50 "lines" starts) and flexmix's best of 20 ``stepFlexmix`` starts with concomitant
  ``FLXPmultinom`` (when Rscript and flexmix are installed). A fit "reaches" it when it ends within
  1 nat and is itself non-degenerate. ``--unseen``: eighteen more sets from R, bench_small_shards.UNSEEN,
  chosen after the portfolio's every-run rule to check it (cells with too few rows for K skipped).
* ``kinds``: one start of each kind ("kmeans", "lines", "random") and the portfolio; real data:
  fits within 1 nat of the best-known maximum out of 5 seeds; shards of the d = 20 design: local
  fits in a poor optimum (more than screening's GAP_FLOOR q / n_m nats per point below EM from
  the true parameters) and the median / max fit time.
* ``lost``: :func:`lost_expert_design`, where the short runs rank basins wrongly: default global fits
  more than 1 nat below EM from the true parameters, and poor local fits on 1 562-row shards.
* ``lostdist``: :func:`lost_expert_design` over M in {16, 64} machines: poor local fits, whether the
  default screening flags each, and the blocks against the global EM.
* ``lostgate``: why the one-shot gate coefficients of ``lostdist`` miss at M = 64: the gate blocks
  with larger supports, and each boundary's slope for the truth, the global EM, the reduction and
  the median local fit, with the local fits' spread of boundary locations.
* ``waves``: every default fit on high-d, lost-expert and shipped-design shards and the small real
  sets at K in {2, 3, 4}, against the same fit with the portfolio's second wave always run
  (``moecore.em._settled_kinds`` patched to settle none): how often the second wave was skipped
  or drew only part of its starts, the largest log-likelihood lost by that, and the median fit
  times.
* ``highd``: the three designs of :data:`DESIGNS` split over M machines: local fits in a poor
  optimum with ``local_check="off"`` (the same rule), learning time of the defaults against the
  global EM (each fit alone, one core), and each parameter block's MSE to the truth relative to
  the global EM's.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_small_shards import MORE, SMALL, UNSEEN, from_r, small_sets  # noqa: E402  (the classic small sets; not the flights)

from moecore import DistributedMoE, MixtureOfExperts  # noqa: E402
from moecore.datasets import load_dataset  # noqa: E402
from moecore.em import DEGENERATE_VAR  # noqa: E402
from moecore.model import MoEParams, expert_means, gate_proba  # noqa: E402
from moecore.params import min_samples  # noqa: E402
from moecore.screening import GAP_FLOOR, n_free_parameters  # noqa: E402
from moecore.simulation import simulate  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
# (d, K) of the high-dimensional designs; their coefficients come from high_d_design.
DESIGNS = {"hd-10-5": (10, 5), "hd-20-4": (20, 4), "hd-30-3": (30, 3)}


def design_shape(name):
    """(d, K) of a design name "hd-<d>-<K>": those of DESIGNS, or any other of that form (a design
    nothing here was chosen on, with ``--design-seed``)."""
    try:
        _, d, K = name.split("-")
        return int(d), int(K)
    except ValueError:
        raise SystemExit(f"design {name!r}: expected hd-<d>-<K>, e.g. {', '.join(DESIGNS)}") from None


def high_d_design(d, K, seed=0):
    """A d-feature, K-expert true model: gate slopes N(0, 0.75^2) per feature (gate logits of
    standard deviation 0.75 sqrt(d) at x ~ N(0, I): sharp gates), expert coefficients N(0, 1)
    (expert lines sqrt(2 d) apart in mean), every variance 0.25. Returns MoEParams."""
    r = np.random.default_rng(seed)
    gates = np.zeros((d + 1, K))
    gates[1:, :-1] = r.normal(0.0, 0.75, (d, K - 1))
    return MoEParams(gates, r.normal(0.0, 1.0, (d + 1, K)), np.full(K, 0.25))


def small_expert_design(sharpness=8.0):
    """K = 5, d = 1: sharp gates (slopes 8 k) with boundaries at x = -1.2, -0.4, 0.3, 1.5, so the
    last expert holds P(x > 1.5) = 6.7 % of x ~ N(0, 1); variances 0.01 to 1 (100x apart).
    Returns MoEParams."""
    K = 5
    cuts = np.array([-1.2, -0.4, 0.3, 1.5])
    slopes = sharpness * np.arange(K)
    icpt = np.concatenate([[0.0], -np.cumsum(sharpness * cuts)])
    gates = np.vstack([icpt - icpt[-1], slopes - slopes[-1]])
    experts = np.array([[0.0, 2.0, -1.0, 3.0, -2.0], [1.0, -2.0, 0.5, 2.0, 4.0]])
    return MoEParams(gates, experts, np.array([0.01, 0.1, 1.0, 0.05, 0.3]))


def lost_expert_design():
    """K = 5, d = 1: gates of slope 20 per expert with boundaries at x = -1, 0, 0.8, 1.4, so the
    last expert holds P(x > 1.4) = 8 % of x ~ N(0, 1); variances 0.01 to 1 (100x apart). Short
    runs on a few hundred points rank its basins wrongly (the portfolio's runoff, docs/method.md)."""
    K, sharp, cuts = 5, 20.0, np.array([-1.0, 0.0, 0.8, 1.4])
    slopes, icpt = sharp * np.arange(K), np.concatenate([[0.0], -np.cumsum(sharp * cuts)])
    return MoEParams(np.vstack([icpt - icpt[-1], slopes - slopes[-1]]),
                     np.array([[0.0, 1.0, -1.0, 2.0, 0.0], [1.0, -1.0, 1.0, -1.0, 1.0]]),
                     np.array([1.0, 0.01, 0.3, 0.05, 1.0]))


def poor_gap(K, d, n_m):
    """Per-point log-likelihood gap beyond which a fit is in another, poorer optimum: screening's
    bound GAP_FLOOR q / n_m on the estimation noise of a fit."""
    return GAP_FLOOR * n_free_parameters(K, d) / n_m


def correlated_design(seed, n, d=5, K=4, rho=0.95):
    """(X, y) of a K-expert model on d inputs correlated rho (every pair), gate and expert coefficients
    drawn N(0, 1.5^2) and N(0, 3^2) from ``seed``, variances 0.5: the experts' shares come out uneven
    (seed 11: 3.7, 49, 45 and 1.9 %), and a library audit's case where default fits missed the maximum."""
    r = np.random.default_rng(seed)
    gates = r.normal(0, 1.5, (d + 1, K))
    gates[:, -1] = 0
    truth = MoEParams(gates, r.normal(0, 3, (d + 1, K)), np.full(K, 0.5))
    X = r.standard_normal((n, d)) @ np.linalg.cholesky(rho + (1 - rho) * np.eye(d)).T
    z = (gate_proba(X, truth).cumsum(1) < r.random((n, 1))).sum(1).clip(max=K - 1)
    return X, expert_means(X, truth)[np.arange(n), z] + np.sqrt(truth.variances[z]) * r.standard_normal(n)


def _ok(model, y):
    return bool(model.variances_.min() >= DEGENERATE_VAR * np.var(y))


def _write(name, rows):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"bench_portfolio_{name}.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}")


def flexmix_best(X, y, K, nrep=20):
    """flexmix's best non-degenerate log-likelihood of ``nrep`` stepFlexmix starts, or NaN."""
    if shutil.which("Rscript") is None:
        return float("nan")
    script = f"""
suppressPackageStartupMessages(library(flexmix))
dat <- read.csv(commandArgs(trailingOnly = TRUE)[1])
xs <- setdiff(names(dat), "y")
fe <- as.formula(paste("y ~", paste(xs, collapse = " + ")))
fg <- as.formula(paste("~", paste(xs, collapse = " + ")))
set.seed(1)
best <- -Inf
for (r in 1:{nrep}) {{
  f <- try(stepFlexmix(fe, data = dat, k = {K}, nrep = 1, model = FLXMRglm(family = "gaussian"),
                       concomitant = FLXPmultinom(fg), control = list(minprior = 0, verbose = 0),
                       verbose = FALSE), silent = TRUE)
  if (inherits(f, "try-error") || f@k < {K}) next
  s2 <- parameters(f)[nrow(parameters(f)), ]^2
  if (min(s2) >= {DEGENERATE_VAR} * var(dat$y)) best <- max(best, as.numeric(logLik(f)))
}}
cat(best, "\\n")
"""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d.csv"
        cols = {"y": y, **{f"x{j + 1}": X[:, j] for j in range(X.shape[1])}}
        np.savetxt(data, np.column_stack(list(cols.values())), delimiter=",", header=",".join(cols),
                   comments="")
        (Path(tmp) / "f.R").write_text(script)
        out = subprocess.run(["Rscript", str(Path(tmp) / "f.R"), str(data)], capture_output=True, text=True)
    try:
        return float(out.stdout.split()[-1])
    except (ValueError, IndexError):
        return float("nan")


def moecore_best(X, y, K):
    """Best non-degenerate log-likelihood of moecore over 4 x 13 portfolio + 200 random + 50 lines starts,
    and that fit (None when every fit was degenerate).

    Many random starts: mcycle at K = 3 has basins 2.5-2.9 nats above flexmix's best that about 1
    random start in 150 reaches and no portfolio did in 40; 20 random starts found one only by luck."""
    fits = [MixtureOfExperts(K, n_init=1, random_state=100 + s).fit(X, y) for s in range(4)]
    fits += [MixtureOfExperts(K, init="random", random_state=200 + s).fit(X, y) for s in range(200)]
    fits += [MixtureOfExperts(K, init="lines", random_state=500 + s).fit(X, y) for s in range(50)]
    ok = [f for f in fits if _ok(f, y)]
    best = max(ok, key=lambda f: f.loglik_) if ok else None
    return (best.loglik_ if best is not None else float("nan")), best


def smallest_expert(model, X, y):
    """(effective points, variance / var(y)) of the fit's expert with the fewest effective points."""
    Nk = model.posterior_proba(X, y).sum(axis=0)
    k = int(np.argmin(Nk))
    return float(Nk[k]), float(model.variances_[k] / np.var(y))


def real_sets(args):
    """{name: (X, y)}: the shipped small sets, or (``--more``) the fifteen small sets from R of
    bench_small_shards.MORE, which no default was chosen on, or (``--unseen``) the eighteen of UNSEEN,
    chosen after the every-run rule to check it (needs Rscript; {} without it)."""
    return from_r(UNSEEN) if args.unseen else from_r(MORE) if args.more else small_sets()


def part_real(args):
    rows = []
    print(f"{'data':15s} {'K':>2s} {'best moecore':>13s} {'best flexmix':>13s} {'kmeans hits':>11s} "
          f"{'default hits':>12s} {'default gap':>11s} {'ms':>6s} {'best: smallest expert (points, var/var y)':>14s}")
    for name, (X, y) in real_sets(args).items():
        for K in (2, 3, 4):
            if len(y) < min_samples(K, X.shape[1]):
                continue
            b_m, b_fit = moecore_best(X, y, K)
            small = smallest_expert(b_fit, X, y) if b_fit is not None else (np.nan, np.nan)
            b_f = flexmix_best(X, y, K) if not args.no_flexmix else float("nan")
            best = np.nanmax([b_m, b_f])
            hits = {}
            gaps, times = [], []
            for init in ("kmeans", "portfolio"):
                hits[init] = 0
                for s in range(5):
                    t0 = time.perf_counter()
                    f = MixtureOfExperts(K, init=init, random_state=s).fit(X, y)
                    ok = _ok(f, y) and f.loglik_ >= best - 1.0
                    hits[init] += ok
                    if init == "portfolio":
                        gaps.append(best - f.loglik_ if _ok(f, y) else np.inf)
                        times.append(time.perf_counter() - t0)
            rows.append(dict(data=name, K=K, best_moecore=b_m, best_flexmix=b_f, kmeans_hits=hits["kmeans"],
                             default_hits=hits["portfolio"], default_worst_gap=max(gaps),
                             default_ms_median=1000 * float(np.median(times)), best_smallest_points=small[0],
                             best_smallest_var=small[1]))
            print(f"{name:15s} {K:2d} {b_m:13.2f} {b_f:13.2f} {hits['kmeans']:9d}/5 {hits['portfolio']:10d}/5 "
                  f"{max(gaps):11.2f} {1000 * np.median(times):6.1f} {small[0]:8.1f} {small[1]:9.2g}", flush=True)
    _write("real_unseen" if args.unseen else "real_more" if args.more else "real", rows)


def part_kinds(args):
    rows = []
    kinds = ("kmeans", "lines", "random", "portfolio")
    for name in SMALL:
        ds = load_dataset(name)
        for K in (2, 3, 4):
            best = moecore_best(ds.X, ds.y, K)[0]
            row = dict(data=name, K=K)
            for init in kinds:
                fits = [MixtureOfExperts(K, init=init, random_state=s).fit(ds.X, ds.y) for s in range(5)]
                row[init] = sum(_ok(f, ds.y) and f.loglik_ >= best - 1.0 for f in fits)
            rows.append(row)
            print(row, flush=True)
    d, K = DESIGNS["hd-20-4"]
    prm, n_m = high_d_design(d, K), args.shard
    for init in kinds:
        poor, times = 0, []
        for s in range(args.shards):
            tr = simulate(prm, n_m, random_state=1000 + s)
            t0 = time.perf_counter()
            f = MixtureOfExperts(K, init=init, random_state=s).fit(tr.X, tr.y)
            times.append(time.perf_counter() - t0)
            ref = MixtureOfExperts(K, init=prm).fit(tr.X, tr.y)
            poor += (ref.loglik_ - f.loglik_) / n_m > poor_gap(K, d, n_m)
        row = dict(data=f"hd-20-4 shards n_m={n_m}", K=K, init=init, poor=poor, shards=args.shards,
                   ms_median=1000 * float(np.median(times)), ms_max=1000 * float(np.max(times)))
        rows.append(row)
        print(row, flush=True)
    _write("kinds", rows)


def part_highd(args):
    from moecore.baselines import fit_global
    from moecore.metrics import parameter_mse

    rows = []
    for dname in args.designs.split(","):
        d, K = design_shape(dname)
        prm = high_d_design(d, K, seed=args.design_seed)
        tr = simulate(prm, args.n, random_state=1)
        n_m = args.n // args.machines
        g = None
        for seed in range(args.seeds):
            off = DistributedMoE(K, args.machines, n_jobs=args.n_jobs, local_check="off", random_state=seed)
            off.fit(tr.X, tr.y)
            lls = np.array([m.loglik_ for m in off.local_models_])
            # Poor optima: per-point gap to EM from the true parameters on the same shard.
            poor = 0
            for m, rows_m in enumerate(off.shards_):
                ref = MixtureOfExperts(K, init=prm).fit(tr.X[rows_m], tr.y[rows_m])
                poor += (ref.loglik_ - lls[m]) / len(rows_m) > poor_gap(K, d, n_m)
            # The same fits (fixed seeds) timed --repeats times, alternating: on a shared VM one
            # global fit took 3.0-5.0 s from run to run and one of 128 local fits 0.15-0.23 s.
            learning, g_times = [], []
            for _ in range(args.repeats):
                dm = DistributedMoE(K, args.machines, n_jobs=args.n_jobs, random_state=seed).fit(tr.X, tr.y)
                learning.append(dm.timings_["learning_time"])
                if g is None or len(g_times) < args.repeats:
                    t0 = time.perf_counter()
                    g = fit_global(tr.X, tr.y, K, random_state=0)
                    g_times.append(time.perf_counter() - t0)
            g_time, lt = float(np.median(g_times)), float(np.median(learning))
            eg, ed = parameter_mse(g.params_, prm), parameter_mse(dm.params_, prm)
            sp = dm.timings_["local_spread"]
            row = dict(design=dname, design_seed=args.design_seed, d=d, K=K, n=args.n, M=args.machines, seed=seed,
                       poor_off=int(poor), flagged_default=len(dm.screening_.flagged),
                       global_time=g_time, learning_time=lt, speedup=g_time / lt, repeats=args.repeats,
                       global_time_range=f"{min(g_times):.3f}-{max(g_times):.3f}",
                       learning_time_range=f"{min(learning):.3f}-{max(learning):.3f}",
                       local_time_median=sp["time"]["median"], local_time_p90=sp["time"]["p90"],
                       local_time_max=sp["time"]["max"], local_iter_median=sp["iterations"]["median"],
                       local_iter_max=sp["iterations"]["max"],
                       **{f"{b}_ratio": ed[b] / eg[b] for b in ("gates", "experts", "variances")})
            rows.append(row)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    _write(f"highd_n{args.n}_M{args.machines}" + (f"_dseed{args.design_seed}" if args.design_seed else ""), rows)


def part_small(args):
    """Small experts: the local fits of small_expert_design's shards, k-means start against the
    default, poor optima by the same rule as the high-d designs; and whether the default fit's
    screening flags every poor local fit."""
    prm = small_expert_design()
    rows = []
    for M in (16, 64):
        n_m = args.n // M
        for seed in range(args.seeds):
            tr = simulate(prm, args.n, random_state=10 + seed)
            row = dict(n=args.n, M=M, seed=seed, share_smallest=float(np.mean(tr.labels == 4)))
            for init in ("kmeans", "portfolio"):
                # The first local fits are the same with and without screening (same seeds): the
                # poor ones come from local_check="off", the flags from the default.
                kw = dict(n_jobs=1, backend="sequential", init=init, random_state=seed)
                off = DistributedMoE(5, M, local_check="off", **kw).fit(tr.X, tr.y)
                poor = {m for m, rows_m in enumerate(off.shards_)
                        if (MixtureOfExperts(5, init=prm).fit(tr.X[rows_m], tr.y[rows_m]).loglik_
                            - off.local_models_[m].loglik_) / len(rows_m) > poor_gap(5, 1, n_m)}
                dm = DistributedMoE(5, M, **kw).fit(tr.X, tr.y)
                row[f"{init}_poor"] = len(poor)
                row[f"{init}_poor_unflagged"] = len(poor - set(dm.screening_.flagged))
                row[f"{init}_flagged"] = len(dm.screening_.flagged)
                row[f"{init}_local_time_max"] = dm.timings_["local_spread"]["time"]["max"]
            rows.append(row)
            print(row, flush=True)
    _write("small", rows)


def part_lost(args):
    """lost_expert_design: default global fits below EM-from-the-truth's maximum by more than 1 nat
    (10 data seeds x 3 fit seeds, n = 10^5), and poor local fits on 32 shards of 1 562 rows (k-means
    starts against the default), counted by the high-d designs' rule."""
    prm = lost_expert_design()
    misses = []
    for data_seed in range(10, 20):
        tr = simulate(prm, 100_000, random_state=data_seed)
        best = MixtureOfExperts(5, init=prm).fit(tr.X, tr.y).loglik_
        misses += [best - MixtureOfExperts(5, random_state=s).fit(tr.X, tr.y).loglik_ > 1.0 for s in range(3)]
    n_m, rows = 1562, []
    tr = simulate(prm, 32 * n_m, random_state=5)
    poor = {"kmeans": 0, "portfolio": 0}
    for m in range(32):
        sl = slice(m * n_m, (m + 1) * n_m)
        ref = MixtureOfExperts(5, init=prm).fit(tr.X[sl], tr.y[sl]).loglik_
        for init in poor:
            fit = MixtureOfExperts(5, init=init, random_state=m).fit(tr.X[sl], tr.y[sl])
            poor[init] += (ref - fit.loglik_) / n_m > poor_gap(5, 1, n_m)
    rows.append(dict(global_fits=len(misses), global_misses=int(sum(misses)), shards=32, n_m=n_m,
                     kmeans_poor=poor["kmeans"], default_poor=poor["portfolio"]))
    print(rows[0], flush=True)
    _write("lost", rows)


def load_diamonds():
    """ggplot2's diamonds (MIT, ggplot2 3.4.1): log price (n,) ~ log carat (n, 1), 53 940 rows, from
    tests/data/diamonds.csv.gz (price and carat as R wrote them)."""
    data = np.loadtxt(ROOT / "tests" / "data" / "diamonds.csv.gz", delimiter=",", skiprows=1)
    return np.log(data[:, 1:]), np.log(data[:, 0])


def part_diamonds(args):
    """Default fits of diamonds (K in ``--ks``, ``--seeds`` seeds) against the best-known maximum: the
    best of those fits and of 5 full-data "random" and "lines" starts (flexmix's best of 20 starts at
    K = 2 is the same -2877.75)."""
    X, y = load_diamonds()
    rows = []
    for K in (int(k) for k in args.ks.split(",")):
        fits = [MixtureOfExperts(K, random_state=s).fit(X, y) for s in range(args.seeds)]
        others = [MixtureOfExperts(K, init=init, random_state=s).fit(X, y)
                  for init in ("random", "lines") for s in range(5)]
        best = max(f.loglik_ for f in fits + others if _ok(f, y))
        gaps = np.array([best - f.loglik_ for f in fits])
        row = dict(data="diamonds log price ~ log carat", n=len(y), K=K, seeds=args.seeds, best=round(best, 2),
                   reached=int(np.sum(gaps <= 1.0)), worst_gap=round(float(gaps.max()), 2),
                   ms_median=round(1000 * float(np.median([f.fit_time_ for f in fits])), 1))
        rows.append(row)
        print(row, flush=True)
    _write("diamonds", rows)


def load_txhousing():
    """ggplot2's txhousing (MIT, ggplot2 3.4.1), the months with sales and listings: log sales (n,) ~ log
    listings (n, 1), 7 175 rows, from tests/data/txhousing.csv.gz (sales and listings as R wrote them)."""
    data = np.loadtxt(ROOT / "tests" / "data" / "txhousing.csv.gz", delimiter=",", skiprows=1)
    return np.log(data[:, 1:]), np.log(data[:, 0])


# Real data of 2 000 to 100 000 rows from R, where a fit of all the rows repeats its portfolio (y ~ x as R
# computes them; rows with a missing value dropped): {name: R expression of a data frame (y, x)}.
MID_SETS = {
    "nlschools lang ~ IQ": "with(MASS::nlschools, data.frame(y = lang, x = IQ))",
    "NOxEmissions LNOx ~ LNOxEm": "with(robustbase::NOxEmissions, data.frame(y = LNOx, x = LNOxEm))",
    "txhousing sales ~ listings": "with(ggplot2::txhousing[which(ggplot2::txhousing$listings > 0), ], "
                                  "data.frame(y = sales, x = listings))",
    "txhousing log sales ~ log listings": None,  # tests/data/txhousing.csv.gz (load_txhousing)
    "GSSvocab vocab ~ age": "with(carData::GSSvocab, data.frame(y = vocab, x = age))",
    "CPS1988 log wage ~ experience": "with(local({data(CPS1988, package = 'AER'); CPS1988}), "
                                     "data.frame(y = log(wage), x = experience))",
    "Vocab vocabulary ~ education": "with(carData::Vocab, data.frame(y = vocabulary, x = education))",
}


def mid_sets():
    """{name: (X, y)} of MID_SETS (those from R need Rscript with MASS, robustbase, ggplot2, carData, AER)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, expr in MID_SETS.items():
            if expr is None:
                out[name] = load_txhousing()
                continue
            if shutil.which("Rscript") is None:
                continue
            path = Path(tmp) / "d.csv"
            code = f'd <- {expr}; write.csv(d[complete.cases(d), ], "{path}", row.names = FALSE)'
            subprocess.run(["Rscript", "-e", code], check=True, capture_output=True)
            data = np.loadtxt(path, delimiter=",", skiprows=1)
            out[name] = data[:, 1:], data[:, 0]
    return out


def part_mid(args):
    """Real data of 2 000 to 100 000 rows (MID_SETS), K in {2, 3, 4}, ``--seeds`` seeds: the default fit
    (portfolios repeated until one confirms the best maximum, at most portfolio_repeats(n)) against one
    portfolio (the default before 2026-12-07: ``moecore.em._MID_DATA_BUDGET`` set to 1 here), side by side.
    The best-known maximum: the best non-degenerate fit of these and of 2 fits of 8 portfolios each."""
    import moecore.em as em
    rows = []
    for name, (X, y) in mid_sets().items():
        for K in (2, 3, 4):
            budget = em._MID_DATA_BUDGET
            try:
                em._MID_DATA_BUDGET = 1
                one = [MixtureOfExperts(K, random_state=s).fit(X, y) for s in range(args.seeds)]
            finally:
                em._MID_DATA_BUDGET = budget
            default = [MixtureOfExperts(K, random_state=s).fit(X, y) for s in range(args.seeds)]
            many = [MixtureOfExperts(K, n_init=8, random_state=100 + s).fit(X, y) for s in range(2)]
            best = max(f.loglik_ for f in one + default + many if _ok(f, y))
            row = dict(data=name, n=len(y), K=K, seeds=args.seeds, best=round(best, 2))
            for label, fits in (("one", one), ("default", default)):
                gaps = np.array([best - f.loglik_ if _ok(f, y) else np.inf for f in fits])
                row.update({f"{label}_reached": int(np.sum(gaps <= 1.0)), f"{label}_over_50": int(np.sum(gaps > 50)),
                            f"{label}_worst_gap": round(float(gaps.max()), 1),
                            f"{label}_ms_median": round(1000 * float(np.median([f.fit_time_ for f in fits])), 1)})
            row["default_portfolios"] = "/".join(str(f.n_inits_) for f in default)
            rows.append(row)
            print(row, flush=True)
    _write("mid", rows)


def part_large(args):
    """Default fits of all the data of each shipped design (moecore.simulation.DESIGNS) at ``--n`` rows,
    ``--seeds`` seeds: log-likelihood and fit time, for the portfolio's large-data stages (runoff,
    finalists) against the code before them (run this file with that code's moecore on PYTHONPATH)."""
    from moecore.simulation import DESIGNS as SHIPPED
    from moecore.simulation import simulate_design
    warm = simulate_design("teaching-1d", 3000, random_state=9)
    MixtureOfExperts(2, random_state=0).fit(warm.X, warm.y)
    rows = []
    for name, design in SHIPPED.items():
        for s in range(args.seeds):
            data = simulate_design(name, args.n, random_state=100 + s)
            t = time.perf_counter()
            fit = MixtureOfExperts(design.params.n_experts, random_state=s).fit(data.X, data.y)
            rows.append(dict(design=name, n=args.n, seed=s, loglik=round(fit.loglik_, 2),
                             seconds=round(time.perf_counter() - t, 3)))
            print(rows[-1], flush=True)
    _write("large", rows)


def part_lostdist(args):
    """lost_expert_design distributed (n = 10^5, M in {16, 64}, ``--seeds`` seeds, defaults): the
    poor local fits (``local_check="off"``, the high-d designs' rule), those the default's screening
    flags and those it lets through, and each block's MSE to the truth relative to the global EM's
    (gate coefficients of slope-20 gates are poorly determined: expect wild gate ratios; the gate
    probabilities' MSE, :func:`moecore.metrics.gate_proba_mse`, alongside)."""
    from moecore.metrics import gate_proba_mse, parameter_mse

    prm = lost_expert_design()
    rows = []
    for seed in range(args.seeds):
        tr = simulate(prm, 100_000, random_state=10 + seed)
        g = MixtureOfExperts(5, random_state=seed).fit(tr.X, tr.y).params_
        ref = parameter_mse(g, prm, tr.X)
        for M in (16, 64):
            n_m = 100_000 // M
            kw = dict(n_jobs=2, random_state=seed)
            off = DistributedMoE(5, M, local_check="off", **kw).fit(tr.X, tr.y)
            poor = {m for m, r in enumerate(off.shards_)
                    if (MixtureOfExperts(5, init=prm).fit(tr.X[r], tr.y[r]).loglik_
                        - off.local_models_[m].loglik_) / len(r) > poor_gap(5, 1, n_m)}
            dm = DistributedMoE(5, M, refine_rounds=args.rounds, **kw).fit(tr.X, tr.y)
            mse = parameter_mse(dm.params_, prm, tr.X)
            row = dict(seed=seed, M=M, rounds=args.rounds, poor=len(poor), flagged=len(dm.screening_.flagged),
                       poor_unflagged=len(poor - set(dm.screening_.flagged)),
                       **{f"{b}_ratio": mse[b] / ref[b] for b in ("gates", "experts", "variances")},
                       gate_proba_ratio=gate_proba_mse(dm.params_, prm, tr.X) / gate_proba_mse(g, prm, tr.X))
            rows.append(row)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    _write("lostdist" + (f"_rounds{args.rounds}" if args.rounds else ""), rows)


def _boundaries(gates):
    """(K - 1, 2) location and slope of the boundary between experts k and k + 1 of a d = 1 softmax
    gate (2, K), experts in order of x."""
    diff = gates[:, :-1] - gates[:, 1:]
    return np.column_stack([-diff[0] / diff[1], diff[1]])


def part_lostgate(args):
    """Why the one-shot gate coefficients of lost_expert_design miss at M = 64 (``--seeds`` seeds,
    those of ``lostdist``): the gate blocks with the default support and larger ones,
    and every gate boundary's location and slope for the truth, the global EM, the reduction and
    the median local fit, with the spread of the local fits' locations. Averaging local gates whose
    boundaries scatter flattens the average (Jensen; the probit approximation predicts the slope
    over sqrt(1 + pi a^2 s^2 / 8) for slope a and location spread s)."""
    from moecore.alignment import align_to
    from moecore.metrics import gate_proba_mse, parameter_mse

    prm = lost_expert_design()
    rows = []
    for seed in range(args.seeds):
        tr = simulate(prm, 100_000, random_state=10 + seed)
        g = MixtureOfExperts(5, random_state=seed).fit(tr.X, tr.y).params_
        ref, ref_p = parameter_mse(g, prm, tr.X)["gates"], gate_proba_mse(g, prm, tr.X)
        for S in (None, 2000, 8000):
            dm = DistributedMoE(5, 64, support_size=S, n_jobs=2, random_state=seed).fit(tr.X, tr.y)
            row = dict(seed=seed, S=len(dm.support_indices_),
                       gates_ratio=parameter_mse(dm.params_, prm, tr.X)["gates"] / ref,
                       gate_proba_ratio=gate_proba_mse(dm.params_, prm, tr.X) / ref_p)
            if S is None:
                local = np.array([_boundaries(align_to(prm, m.params_, tr.X).gates) for m in dm.local_models_
                                  if m.params_.n_experts == 5])
                for name, b in (("true", _boundaries(prm.gates)), ("global", _boundaries(align_to(prm, g, tr.X).gates)),
                                ("reduced", _boundaries(align_to(prm, dm.params_, tr.X).gates)),
                                ("local_median", np.median(local, axis=0))):
                    row.update({f"{name}_slope_{k + 1}": b[k, 1] for k in range(4)})
                row.update({f"local_location_sd_{k + 1}": local[:, k, 0].std() for k in range(4)})
            rows.append(row)
            print({k: round(float(v), 3) for k, v in row.items()}, flush=True)
    _write("lostgate", rows)


def waves_cases():
    """(name, K, [(X, y) shards], fit seeds) of ``waves``."""
    from moecore.simulation import DESIGNS as SHIPPED
    from moecore.simulation import simulate_design

    cases = []
    for d, K in ((10, 5), (20, 4), (30, 3)):
        sd = simulate(high_d_design(d, K), 7812 * 4, random_state=2)
        cases.append((f"hd-{d}-{K}/7812", K, [(sd.X[i::4], sd.y[i::4]) for i in range(4)], 3))
    for rows, shards in ((1562, 6), (6250, 4)):
        sd = simulate(lost_expert_design(), rows * shards, random_state=3)
        cases.append((f"lost/{rows}", 5, [(sd.X[i::shards], sd.y[i::shards]) for i in range(shards)], 3))
    for name in ("separated-10d", "overlapping-5d", "crossing-2d", "teaching-1d"):
        sd = simulate_design(name, 1562 * 4, random_state=3)
        cases.append((f"{name}/1562", SHIPPED[name].n_experts, [(sd.X[i::4], sd.y[i::4]) for i in range(4)], 3))
    for name in SMALL:
        ds = load_dataset(name)
        cases += [(f"{name}/K{K}", K, [(ds.X, ds.y)], 8) for K in (2, 3, 4)]
    return cases


def part_waves(args):
    import moecore.em as em

    settled = em._settled_kinds
    small_em, make = em.MixtureOfExperts._small_em, em.MixtureOfExperts._initial_responsibilities
    starts = []  # starts drawn by each portfolio

    def counted(self, *a, **kw):
        starts.append(0)
        return small_em(self, *a, **kw)

    def drawn(self, *a, **kw):
        starts[-1] += 1
        return make(self, *a, **kw)

    em.MixtureOfExperts._small_em, em.MixtureOfExperts._initial_responsibilities = counted, drawn
    rows = []
    for name, K, shards, seeds in waves_cases():
        out = {}
        for mode, fn in (("default", settled), ("full", lambda runs, n_points: set())):
            em._settled_kinds = fn
            starts.clear()
            lls, times = [], []
            for X, y in shards:
                for s in range(seeds):
                    t0 = time.perf_counter()
                    lls.append(MixtureOfExperts(K, random_state=s).fit(X, y).loglik_)
                    times.append(time.perf_counter() - t0)
            out[mode] = (np.array(lls), float(np.median(times)), list(starts))
        em._settled_kinds = settled
        lost = out["full"][0] - out["default"][0]
        drawn_starts = np.array(out["default"][2])
        rows.append(dict(case=name, fits=lost.size, portfolios=drawn_starts.size,
                         second_wave_skipped=int((drawn_starts == 7).sum()),
                         second_wave_part=int(((drawn_starts > 7) & (drawn_starts < 13)).sum()),
                         most_lost=float(lost.max()), most_gained=float(-lost.min()),
                         ms_default=1000 * out["default"][1], ms_full=1000 * out["full"][1]))
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    em.MixtureOfExperts._small_em, em.MixtureOfExperts._initial_responsibilities = small_em, make
    _write("waves", rows)


# (data seed, n, d, K, rho): the audit's case (11, d = 5, K = 4) and designs nobody chose the rule on.
STAGE2_CASES = ((11, 20000, 5, 4, 0.95), (11, 5000, 5, 4, 0.95), (13, 20000, 5, 4, 0.95), (14, 20000, 5, 4, 0.95),
                (31, 20000, 3, 3, 0.9), (32, 20000, 3, 5, 0.95), (33, 20000, 8, 4, 0.9), (34, 5000, 8, 3, 0.95),
                (35, 50000, 5, 5, 0.9), (36, 20000, 4, 4, 0.0))


def part_stage2(args):
    """A fit of all the data continues every short run of its portfolio (``every_short``) against only
    each kind's best (what a machine's local fit still does, ``_fit(local_fit=True)``: on more than
    1 000 rows the same fit otherwise). Per correlated design: default fits of 5 seeds more than 1 nat
    below the best-known non-degenerate maximum (every fit here, 20 random and 20 lines starts), and
    the median fit times; then the shipped designs at n = 20 000 and the lost expert at n = 10^5."""
    rows = []

    def compare(name, X, y, K, reference=True):
        new = [MixtureOfExperts(K, random_state=s) for s in range(5)]
        old = [MixtureOfExperts(K, random_state=s) for s in range(5)]
        t_new, t_old = [], []
        for a, b in zip(new, old, strict=True):  # alternated, so both see the same load
            t0 = time.perf_counter()
            a.fit(X, y)
            t_new.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b._fit(X, y, local_fit=True)
            t_old.append(time.perf_counter() - t0)
        others = [MixtureOfExperts(K, init=init, n_init=20, random_state=0).fit(X, y)
                  for init in ("random", "lines")] if reference else []
        best = max(f.loglik_ for f in new + old + others if _ok(f, y))
        miss = lambda fits: sum(not _ok(f, y) or best - f.loglik_ > 1.0 for f in fits)  # noqa: E731
        rows.append(dict(case=name, n=len(y), K=K, best=best, misses_every_short=miss(new),
                         misses_best_of_kind=miss(old),
                         worst_gap_every_short=max(best - f.loglik_ for f in new),
                         worst_gap_best_of_kind=max(best - f.loglik_ for f in old),
                         ms_every_short=1000 * float(np.median(t_new)), ms_best_of_kind=1000 * float(np.median(t_old))))
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)

    for seed, n, d, K, rho in STAGE2_CASES:
        X, y = correlated_design(seed, n, d, K, rho)
        compare(f"correlated seed {seed} d={d} rho={rho}", X, y, K)
    from moecore.simulation import DESIGNS, simulate_design

    for name in sorted(DESIGNS):
        sim = simulate_design(name, 20000, random_state=3)
        compare(name, sim.X, sim.y, sim.params.n_experts, reference=False)
    tr = simulate(lost_expert_design(), 100_000, random_state=10)
    compare("lost expert", tr.X, tr.y, 5, reference=False)
    _write("stage2", rows)


def part_sharp(args):
    """Sharp experts, not spikes (moecore.em.spike_experts): two lines 6 apart (y's sd 1.7) with noise sd from
    0.1 to 0, and teaching-1d with one expert's variance times 1e-4; default fits of 5 seeds against the best
    of 20 random and 10 k-means starts: the gap in nats per row, and how many fits a DegenerateFitWarning
    called a spike (none should be: every expert there holds hundreds of rows)."""
    import warnings as _w

    from moecore import DegenerateFitWarning
    from moecore.simulation import simulate_design

    rows, rng = [], np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5000, 1))
    cases = [(f"two lines sd={sd}", x, np.where(x[:, 0] < 0, 3 + x[:, 0], -3 - x[:, 0]) + sd * rng.normal(size=5000),
              2) for sd in (0.1, 0.05, 0.03, 0.02, 0.01, 0.003, 0.0)]
    t = simulate_design("teaching-1d", 20000, random_state=0).params
    sharp = simulate(MoEParams(t.gates, t.experts, t.variances * np.array([1e-4, 1.0, 1.0])), 20000, random_state=0)
    cases.append(("teaching-1d, expert 1's variance x 1e-4", sharp.X, sharp.y, 3))
    for name, X, y, K in cases:
        with _w.catch_warnings(record=True) as rec:
            _w.simplefilter("always")
            fits = [MixtureOfExperts(K, random_state=s).fit(X, y) for s in range(5)]
        spikes = sum(issubclass(w.category, DegenerateFitWarning) for w in rec)
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            ref = max(MixtureOfExperts(K, init=i, n_init=n, random_state=0).fit(X, y).loglik_
                      for i, n in (("random", 20), ("kmeans", 10)))
        best = max(ref, *(f.loglik_ for f in fits))
        rows.append(dict(case=name, n=len(y), K=K, worst_gap_per_row=max(best - f.loglik_ for f in fits) / len(y),
                         smallest_var_over_var_y=min(f.variances_.min() for f in fits) / np.var(y),
                         spike_warnings=spikes))
        print({k: (float(f"{v:.3g}") if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    _write("sharp", rows)


def part_splits(args):
    """Split-and-merge moves (``MixtureOfExperts(split_moves=True)``) against the default, side by side: the
    shipped small sets and those of bench_small_shards' MORE and UNSEEN (from R, when installed), K in
    {2, 3, 4}, fits of seeds 0-4 with and without the moves (alternated, so both see the same load). Cells
    where at least 4 of 5 fits end within 1 nat of the maximum known before (the stored ``real*`` tables' best
    of 254 moecore starts and flexmix's best of 20) and of the best known now (those and every fit here); the
    median fit times."""
    stored = {}
    for tag in ("real", "real_more", "real_unseen"):
        path = OUT / f"bench_portfolio_{tag}.csv"
        if path.exists():
            with open(path) as fh:
                for r in csv.DictReader(fh):
                    stored[r["data"], int(r["K"])] = float(np.nanmax([float(r["best_moecore"]),
                                                                      float(r["best_flexmix"])]))
    sets = {**small_sets(), **from_r(MORE), **from_r(UNSEEN)}
    rows = []
    for name, (X, y) in sets.items():
        for K in (2, 3, 4):
            if len(y) < min_samples(K, X.shape[1]) or (name, K) not in stored:
                continue
            fits = {"moves": [], "none": []}
            times = {"moves": [], "none": []}
            for s in range(5):
                for kind in ("moves", "none"):
                    t0 = time.perf_counter()
                    fits[kind].append(MixtureOfExperts(K, split_moves=kind == "moves", random_state=s).fit(X, y))
                    times[kind].append(time.perf_counter() - t0)
            before = stored[name, K]
            now = float(max([before] + [f.loglik_ for f in fits["moves"] + fits["none"] if _ok(f, y)]))
            hits = lambda fs, best, y=y: int(sum(_ok(f, y) and f.loglik_ >= best - 1.0 for f in fs))  # noqa: E731
            rows.append(dict(data=name, n=len(y), K=K, best_before=before, best_now=now,
                             hits_before_none=hits(fits["none"], before), hits_before_moves=hits(fits["moves"], before),
                             hits_now_none=hits(fits["none"], now), hits_now_moves=hits(fits["moves"], now),
                             ms_none=1000 * float(np.median(times["none"])),
                             ms_moves=1000 * float(np.median(times["moves"]))))
            print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    for col in ("hits_before_none", "hits_before_moves", "hits_now_none", "hits_now_moves"):
        print(f"cells with >= 4 of 5 fits within 1 nat ({col}): {sum(r[col] >= 4 for r in rows)} of {len(rows)}")
    ratio = [r["ms_moves"] / r["ms_none"] for r in rows]
    print(f"time with / without the moves: median {np.median(ratio):.2f}x, max {np.max(ratio):.2f}x")
    _write("splits", rows)


# (design, training rows, K) of ``heldout``: small data from known models, K the truth's or one more.
HELDOUT_CASES = (("separated-10d", 150, 5), ("separated-10d", 300, 5), ("separated-10d", 500, 5),
                 ("overlapping-5d", 150, 3), ("overlapping-5d", 300, 4), ("crossing-2d", 100, 4),
                 ("crossing-2d", 300, 4), ("separated-2d", 100, 5), ("separated-2d", 300, 5), ("teaching-1d", 300, 4))


def part_heldout(args):
    """What the split-and-merge moves' higher maxima are worth on data from a known model: per case of
    HELDOUT_CASES, ``--seeds`` data sets (fit seed = data seed), the default fit and ``split_moves=True`` on the
    same rows; the mean held-out log-likelihood per point on 20 000 fresh rows, the fits the moves changed,
    those that got worse or better by more than 0.01 nats per held-out point, and the smallest variance /
    var(y) (median) of each."""
    from moecore.metrics import parameter_mse
    from moecore.model import loglik_per_sample
    from moecore.simulation import simulate_design

    rows = []
    for design, n, K in HELDOUT_CASES:
        test = simulate_design(design, 20_000, random_state=999_999)
        ho = {"none": [], "moves": []}
        small = {"none": [], "moves": []}
        mse = {"none": [], "moves": []}  # (gates, experts, variances) against the truth, at the truth's K
        for s in range(args.seeds):
            train = simulate_design(design, n, random_state=1000 + s)
            for kind in ho:
                f = MixtureOfExperts(K, split_moves=kind == "moves", random_state=s).fit(train.X, train.y)
                ho[kind].append(float(loglik_per_sample(test.X, test.y, f.params_).mean()))
                small[kind].append(float(f.variances_.min() / np.var(train.y)))
                if K == train.params.n_experts:
                    e = parameter_mse(f.params_, train.params, test.X[:5000])
                    mse[kind].append([e["gates"], e["experts"], e["variances"]])
        diff = np.array(ho["moves"]) - np.array(ho["none"])
        blocks = {f"mse_{b}_{kind}": float(np.mean([m[i] for m in mse[kind]])) if mse[kind] else float("nan")
                  for kind in mse for i, b in enumerate(("gates", "experts", "variances"))}
        rows.append(dict(design=design, n=n, K=K, fits=args.seeds, moved=int(np.sum(diff != 0)),
                         heldout_none=float(np.mean(ho["none"])), heldout_moves=float(np.mean(ho["moves"])),
                         worse=int(np.sum(diff < -0.01)), better=int(np.sum(diff > 0.01)),
                         median_diff_moved=float(np.median(diff[diff != 0])) if np.any(diff != 0) else 0.0,
                         min_var_none=float(np.median(small["none"])), min_var_moves=float(np.median(small["moves"])),
                         **blocks))
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    print(f"fits the moves changed: {sum(r['moved'] for r in rows)} of {sum(r['fits'] for r in rows)}; worse by "
          f"> 0.01 nats per held-out point: {sum(r['worse'] for r in rows)}; better: {sum(r['better'] for r in rows)}")
    _write("heldout", rows)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = {"real": part_real, "kinds": part_kinds, "highd": part_highd, "small": part_small, "lost": part_lost,
             "lostdist": part_lostdist, "lostgate": part_lostgate, "diamonds": part_diamonds, "large": part_large,
             "waves": part_waves, "stage2": part_stage2, "sharp": part_sharp, "splits": part_splits,
             "heldout": part_heldout, "mid": part_mid}
    ap.add_argument("part", choices=list(parts))
    ap.add_argument("--no-flexmix", action="store_true", help="real: skip flexmix's best of 20 starts")
    ap.add_argument("--more", action="store_true", help="real: the fifteen small sets from R no default was "
                                                        "chosen on (bench_small_shards.MORE) instead of the shipped")
    ap.add_argument("--unseen", action="store_true", help="real: the eighteen small sets from R chosen after the "
                                                          "every-run rule to check it (bench_small_shards.UNSEEN)")
    ap.add_argument("--shard", type=int, default=7800, help="kinds: rows per d = 20 shard")
    ap.add_argument("--shards", type=int, default=16, help="kinds: d = 20 shards")
    ap.add_argument("--n", type=int, default=200_000, help="highd, small: training rows")
    ap.add_argument("--machines", type=int, default=16, help="highd: M")
    ap.add_argument("--seeds", type=int, default=1, help="highd, small, lostdist, lostgate, diamonds, large, heldout, "
                                                         "mid: seeds of the fits")
    ap.add_argument("--ks", default="2", help="diamonds: comma list of K")
    ap.add_argument("--designs", default=",".join(DESIGNS), help="highd: comma list of hd-<d>-<K> (default DESIGNS)")
    ap.add_argument("--design-seed", type=int, default=0, help="highd: seed of the designs' coefficients")
    ap.add_argument("--n-jobs", type=int, default=1, help="highd: parallel local fits (times are each fit's own)")
    ap.add_argument("--rounds", type=int, default=0, help="lostdist: refine_rounds of the default fit")
    ap.add_argument("--repeats", type=int, default=1, help="highd: timings of the same fits (medians reported)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    parts[args.part](args)


if __name__ == "__main__":
    main()
