"""A poor optimum most machines share, and a reduced model that loses what RPE cannot see.

    .venv/bin/python benchmarks/bench_fit_check.py majority   # results/fit_check_majority.csv, about 1 min
    .venv/bin/python benchmarks/bench_fit_check.py loglik     # results/fit_check_loglik.csv, about 15 min
    .venv/bin/python benchmarks/bench_fit_check.py quiet      # results/fit_check_quiet.csv, about 15 min
    .venv/bin/python benchmarks/bench_fit_check.py cross      # results/fit_check_cross.csv, under 1 min
    .venv/bin/python benchmarks/bench_fit_check.py sparse     # results/fit_check_sparse.csv, about 2 min
    .venv/bin/python benchmarks/bench_fit_check.py spread     # results/fit_check_spread.csv, about 3 min

* ``majority``: :func:`rare_expert_design` (K = 3, d = 1, an expert with 0.5 % of the rows), n = 20 000
  over M in {4, 16} machines, seeds 0-7.  For every machine: whether its first local fit is poor by the
  truth (EM started from the true parameters on its rows ends more than GAP_FLOOR q / n_m nats per row
  above it), and which screening rule flags it (the median rule of moecore.screening.flag_poor_fits, the
  second rule of moecore.screening.beaten_by_best).  Then the default fit's held-out log-likelihood
  against the global EM's (a fresh draw of 20 000 rows) and what the check after the fit said.
* ``quiet``: where the second rule must add nothing (good fits, exchangeable machines): the shipped designs
  (n = 50 000, M in {2, 4, 16, 64, 128}, seeds 0-1), lost_expert_design and small_expert_design (n = 10^5,
  M in {4, 16, 64}, seeds 0-2), the shipped real sets (flights at M in {16, 64, 128}, seeds 0-3; the small
  ones at K in {2, 3, 4}, M in {2, 4, 8}), the high-dimensional designs (n = 2 10^5, M in {16, 64}) and,
  with ``--large``, the d = 2 headline and hd-20-4 at n = 10^6, M = 128.  Per fit (local_check="off"):
  the machines the median rule flags and those the second rule adds.
* ``cross``: the screening's comparison on each machine's own rows (moecore.screening.second_look: the
  best-scoring machine's model against each machine's own, on that machine's rows), on the designs whose
  poor local fits the support cannot always show: :func:`rare_expert_design` (n = 20 000, M in {4, 16},
  seeds 0-7; and M = 16 with S = 100, a support the user chose small) and lost_expert_design (n = 10^5,
  M in {16, 64}, seeds 0-4).
  Per fit: the poor local fits by the truth (as in ``majority``), those each rule flags (median, second,
  comparison: all three computed from the same ``local_check="off"`` fit), every machine's gain
  per row (the largest among good fits, the smallest among poor ones), then the default fit: what it
  flagged, its held-out log-likelihood below the global EM's, its parameter blocks over the global EM's
  MSE to the truth, and the comparison's seconds (slowest machine).
* ``sparse``: moecore.shard_check.check_expert_rows.  :func:`rare_line_design` (K = 3, an expert made rare
  by its gate intercept), d = 1 (n = 20 000, four shares) and d = 4 (n = 40 000, three), M in {4, 8, 16, 32},
  seeds 0-3, one-shot and with one round.  Per fit: that expert's rows per machine per parameter (p + 1:
  its line and variance), as the truth has it and as the rule estimates it from the reduced gates, whether
  the rule warned, and the reduced expert's line and variance MSE to the truth over the global EM's.
* ``loglik``: the log-likelihood side of moecore.shard_check.check_fit, read against the global EM.  On
  the small real sets (moecore.datasets and the fifteen R sets of bench_small_shards.MORE, when Rscript
  is there) and three small designs, K in {2, 3, 4}, M from 2 up to what the library accepts, S in
  {default, n}, seeds 0-1 (sequential backend); and on large designs (the five shipped designs at
  n = 50 000, lost_expert_design and small_expert_design at 10^5, the rare-expert design), M in
  {4, 16, 64}, seeds 0-2.  Per fit: the check's gap (local models' in-sample log-likelihood less the
  final model's, per row), its allowance, and the final model's log-likelihood per row below the global
  EM's on all the rows (same K and seed).  The summary prints, for allowances c q / n_m with c in
  {1, 1.5, 2, 3, 4}, how many fits each flags and the smallest loss to the global EM among them.
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

from bench_portfolio import lost_expert_design, small_expert_design  # noqa: E402
from bench_small_shards import MORE, from_r, small_sets  # noqa: E402

from moecore import DistributedMoE, MixtureOfExperts, MoEParams, simulate, simulate_design  # noqa: E402
from moecore.baselines import fit_global  # noqa: E402
from moecore.metrics import parameter_mse, rpe  # noqa: E402
from moecore.model import expert_means, gate_proba  # noqa: E402
from moecore.params import min_samples, n_free_parameters  # noqa: E402
from moecore.screening import GAP_FLOOR, beaten_by_best, flag_poor_fits, support_loglik  # noqa: E402
from moecore.shard_check import FIT_CHECK_RATIO, LOGLIK_CHECK_FACTOR, check_expert_rows, check_shards  # noqa: E402

OUT = ROOT / "benchmarks" / "results"


def rare_expert_design():
    """K = 3, d = 1: expert 0 holds about 0.5 % of x ~ N(0, I) (gate intercept -4.6), far from the others
    (intercept 10 against 2 and -1), variances 0.1-0.3.  Found by a hostile-user audit: on 5 000-row
    shards most local EMs miss that expert, and the median rule flagged none of them."""
    return MoEParams(gates=[[-4.6, 0.0, 0.0], [0.5, 1.0, 0.0]], experts=[[10.0, 0.0, -3.0], [2.0, 1.0, -1.0]],
                     variances=[0.1, 0.2, 0.3])


def majority(seeds):
    truth = rare_expert_design()
    train, test = simulate(truth, 20_000, random_state=1), simulate(truth, 20_000, random_state=2)
    K, q = 3, n_free_parameters(3, truth.n_features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        glob = MixtureOfExperts(K, random_state=0).fit(train.X, train.y)
    rows = []
    for M in (4, 16):
        for seed in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                off = DistributedMoE(K, M, n_jobs=2, random_state=seed, local_check="off").fit(train.X, train.y)
                poor = []
                for m, idx in enumerate(off.shards_):
                    X, y = train.X[idx], train.y[idx]
                    best = MixtureOfExperts(K, init=truth).fit(X, y).score(X, y)
                    poor.append(best - off.local_models_[m].score(X, y) > GAP_FLOOR * q / len(idx))
            sizes = np.array([len(s) for s in off.shards_])
            median_rule = flag_poor_fits(off.local_scores_, sizes, q)[1]
            ll = support_loglik([m.params_ for m in off.local_models_], off.support_X_, off.support_y_)
            second = off.local_scores_ < beaten_by_best(ll, off.machines_, sizes, q)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                dm = DistributedMoE(K, M, n_jobs=2, random_state=seed).fit(train.X, train.y)
            poor = np.array(poor)
            rows.append(dict(M=M, seed=seed, support=len(off.support_indices_), poor=int(poor.sum()),
                             flagged_median=int(median_rule.sum()), flagged_second=int((second & ~median_rule).sum()),
                             poor_flagged=int((poor & (median_rule | second)).sum()),
                             good_flagged=int((~poor & (median_rule | second)).sum()),
                             heldout_gap=glob.score(test.X, test.y) - dm.score(test.X, test.y),
                             check_ok=bool(dm.fit_check_.ok),
                             warnings=";".join(sorted({w.category.__name__ for w in caught}))))
    df = pd.DataFrame(rows)
    _save(df, "fit_check_majority")
    print(df.to_string(index=False))


def _cross_gains(dm, X, y):
    """(M,) per row: the best-scoring local model's log-likelihood of each machine's rows less the
    machine's own model's (what moecore.screening.second_look compares), from a local_check="off" fit."""
    best = dm.local_models_[int(np.nanargmax(dm.local_scores_))].params_
    return np.array([(support_loglik([best], X[idx], y[idx]).sum() - mdl.train_loglik_) / len(idx)
                     for idx, mdl in zip(dm.shards_, dm.local_models_, strict=True)])


def _cross_row(name, truth, train, test, g, K, M, seed, S=None):
    q = n_free_parameters(K, train.X.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        off = DistributedMoE(K, M, n_jobs=2, random_state=seed, support_size=S, local_check="off").fit(train.X, train.y)
        poor = np.array([MixtureOfExperts(K, init=truth).fit(train.X[i], train.y[i]).score(train.X[i], train.y[i])
                         - off.local_models_[m].score(train.X[i], train.y[i]) > GAP_FLOOR * q / len(i)
                         for m, i in enumerate(off.shards_)])
        dm = DistributedMoE(K, M, n_jobs=2, random_state=seed, support_size=S).fit(train.X, train.y)
    sizes = np.array([len(i) for i in off.shards_])
    median_rule = flag_poor_fits(off.local_scores_, sizes, q)[1]
    ll = support_loglik([m.params_ for m in off.local_models_], off.support_X_, off.support_y_)
    second = off.local_scores_ < beaten_by_best(ll, off.machines_, sizes, q)
    gain = _cross_gains(off, train.X, train.y)
    cross = gain > GAP_FLOOR * q / sizes
    support_rules = median_rule | second
    err, gerr = parameter_mse(dm.params_, truth, train.X), parameter_mse(g.params_, truth, train.X)
    return dict(design=name, M=M, S=len(off.support_indices_), seed=seed, poor=int(poor.sum()),
                flagged_support=int((poor & support_rules).sum()), flagged_cross=int((poor & cross).sum()),
                flagged_either=int((poor & (support_rules | cross)).sum()),
                good_flagged_cross=int((~poor & cross).sum()),
                largest_good_gain=float(gain[~poor].max()), smallest_poor_gain=float(gain[poor].min()) if poor.any()
                else np.nan, floor=float(GAP_FLOOR * q / sizes.mean()),
                default_flagged=len(dm.flagged_), default_cross_flagged=len(dm.screening_.cross_flagged),
                heldout_gap=g.score(test.X, test.y) - dm.score(test.X, test.y),
                **{f"{b}_vs_global": err[b] / gerr[b] for b in ("gates", "experts", "variances")},
                compare_max_s=float(np.max(dm.timings_["compare"], initial=0.0)),
                learning_time=dm.timings_["learning_time"])


def cross():
    rows = []
    for name, truth, n, K, Ms, seeds in (("rare_expert", rare_expert_design(), 20_000, 3, (4, 16), range(8)),
                                         ("lost_expert", lost_expert_design(), 100_000, 5, (16, 64), range(5))):
        train, test = simulate(truth, n, random_state=1), simulate(truth, n, random_state=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = MixtureOfExperts(K, random_state=0).fit(train.X, train.y)
        cells = [(M, seed, None) for M in Ms for seed in seeds]
        if name == "rare_expert":
            cells += [(16, seed, 100) for seed in seeds]
        for M, seed, S in cells:
            row = _cross_row(name, truth, train, test, g, K, M, seed, S)
            rows.append(row)
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    df = pd.DataFrame(rows)
    _save(df, "fit_check_cross")
    for (name, M, S), part in df.groupby(["design", "M", "S"]):
        print(f"{name} M {M} S {S}: poor {part.poor.sum()}, flagged by the support rules {part.flagged_support.sum()}, "
              f"by the comparison {part.flagged_cross.sum()}, by either {part.flagged_either.sum()}; good flagged by "
              f"the comparison {part.good_flagged_cross.sum()}; largest good gain {part.largest_good_gain.max():.4f}, "
              f"smallest poor gain {part.smallest_poor_gain.min():.4f}, floor {part.floor.mean():.4f} nats per row; "
              f"held-out gap at most {part.heldout_gap.max():.4f}; worst blocks "
              f"{part.gates_vs_global.max():.3g} / {part.experts_vs_global.max():.3g} / "
              f"{part.variances_vs_global.max():.3g}; comparison at most {1e3 * part.compare_max_s.max():.1f} ms")


def rare_line_design(d, logit, seed=0):
    """K = 3 in d dimensions: expert 0's share set by its gate intercept ``logit`` (-4.6: about 0.5 %, -2.5:
    about 4 %), the other two split by x_1; random slopes (``seed``), variances 0.1-0.3."""
    rng = np.random.default_rng(seed)
    gates = np.zeros((d + 1, 3))
    gates[0, 0], gates[1, 1] = logit, 1.0
    experts = np.column_stack([np.r_[10.0, rng.normal(0, 1, d)], np.r_[0.0, rng.normal(0, 1, d)],
                               np.r_[-3.0, rng.normal(0, 1, d)]])
    return MoEParams(gates, experts, np.array([0.1, 0.2, 0.3]))


def sparse():
    """The rare expert's line and variance against its rows per machine (see the module docstring)."""
    from moecore.alignment import align_to
    from moecore.model import posterior_proba

    rows = []
    for d, n, logits in ((1, 20_000, (-4.6, -3.9, -3.2, -2.5)), (4, 40_000, (-4.6, -3.9, -3.2))):
        for logit in logits:
            truth = rare_line_design(d, logit)
            tr = simulate(truth, n, random_state=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = align_to(truth, MixtureOfExperts(3, random_state=0).fit(tr.X, tr.y).params_, tr.X)
            share = float(posterior_proba(tr.X, tr.y, truth).mean(axis=0)[0])
            for M in (4, 8, 16, 32):
                for seed in range(4):
                    for R in (0, 1):
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            dm = DistributedMoE(3, M, n_jobs=2, random_state=seed, refine_rounds=R).fit(tr.X, tr.y)
                        est = align_to(truth, dm.params_, tr.X)
                        check = check_expert_rows(dm.params_, dm.support_X_, n, M, refine_rounds=R)
                        line = [np.sum((a.experts[:, 0] - truth.experts[:, 0]) ** 2) for a in (est, g)]
                        var = [(a.variances[0] - truth.variances[0]) ** 2 for a in (est, g)]
                        rows.append(dict(d=d, logit=logit, share=share, M=M, seed=seed, rounds=R,
                                         rows_per_parameter=share * n / M / (d + 2),
                                         estimated=float(check.rows.min() / (d + 2)), warned=not check.ok,
                                         line_vs_global=line[0] / line[1], variance_vs_global=var[0] / var[1]))
            print(f"d {d} logit {logit}: done", flush=True)
    df = pd.DataFrame(rows)
    _save(df, "fit_check_sparse")
    df["worst"] = df[["line_vs_global", "variance_vs_global"]].max(axis=1)
    table = df.groupby(["d", "logit", "M", "rounds"]).agg(
        rows_per_parameter=("rows_per_parameter", "mean"), estimated=("estimated", "median"),
        warned=("warned", "sum"), line_max=("line_vs_global", "max"), variance_max=("variance_vs_global", "max"),
        worst_median=("worst", "median"))
    print(table.round(2).to_string())
    for R in (0, 1):
        part = df[df.rounds == R]
        print(f"rounds {R}: the rare expert's line or variance above 10x the global EM's in "
              f"{int((part.worst > 10).sum())} of {len(part)} fits; the rule warned on {int(part.warned.sum())}: "
              f"{int((part.warned & (part.worst > 10)).sum())} of those above 10x, "
              f"{int((part.warned & (part.worst <= 5)).sum())} within 5x; unwarned above 5x: "
              f"{int((~part.warned & (part.worst > 5)).sum())}")


def _quiet_row(name, X, y, K, M, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = DistributedMoE(K, M, n_jobs=2, random_state=seed, local_check="off").fit(X, y)
    sizes, q = np.array([len(s) for s in dm.shards_]), n_free_parameters(K, X.shape[1])
    median_rule = flag_poor_fits(dm.local_scores_, sizes, q)[1]
    added = sorted(set(dm.flagged_) - set(np.flatnonzero(median_rule).tolist()))
    # The comparison on the machines' own rows runs in the default's exchange, on the machines the
    # support rules passed: the same fits, the same best-scoring model.
    compared = _cross_gains(dm, X, y) > GAP_FLOOR * q / sizes
    compared[dm.flagged_] = False
    rows = check_expert_rows(dm.params_, dm.support_X_, len(y), M)
    row = dict(data=name, n=len(y), d=X.shape[1], K=K, M=M, seed=seed, median_rule=int(median_rule.sum()),
               second_rule_added=len(added), added=" ".join(map(str, added)), comparison_added=int(compared.sum()),
               compared_added=" ".join(map(str, np.flatnonzero(compared))),
               expert_rows_per_parameter=float(rows.rows.min() / (X.shape[1] + 2)), sparse_experts=len(rows.sparse),
               size_rule_ok=check_shards(len(y), X.shape[1], K, M, len(dm.support_indices_)).ok)
    print(f"{name:16s} K {K} M {M:3d} seed {seed}: median rule {row['median_rule']}, second rule adds {added}, "
          f"the comparison adds {np.flatnonzero(compared).tolist()}", flush=True)
    return row


def quiet(large):
    from bench_portfolio import DESIGNS, high_d_design

    from moecore.datasets import load_dataset

    rows = []
    for des in ("teaching-1d", "two-experts-1d", "separated-2d", "crossing-2d", "overlapping-5d", "separated-10d"):
        sim = simulate_design(des, 50_000, random_state=1)
        rows += [_quiet_row(des, sim.X, sim.y, sim.params.n_experts, M, seed)
                 for M in (2, 4, 16, 64, 128) for seed in (0, 1)]
    for name, params in (("lost_expert", lost_expert_design()), ("small_expert", small_expert_design())):
        sim = simulate(params, 100_000, random_state=1)
        rows += [_quiet_row(name, sim.X, sim.y, 5, M, seed) for M in (4, 16, 64) for seed in range(3)]
    flights = load_dataset("flights")
    rows += [_quiet_row("flights", flights.X, flights.y, 3, M, seed) for M in (16, 64, 128) for seed in range(4)]
    for name in ("tonedata", "nodata", "boston", "mcycle", "faithful"):
        ds = load_dataset(name)
        rows += [_quiet_row(name, ds.X, ds.y, K, M, 0) for K in (2, 3, 4) for M in (2, 4, 8)
                 if M <= len(ds.y) // min_samples(K, ds.X.shape[1])]
    for name, (d, K) in DESIGNS.items():
        sim = simulate(high_d_design(d, K), 200_000, random_state=1)
        rows += [_quiet_row(name, sim.X, sim.y, K, M, 0) for M in (16, 64)]
    if large:
        sim = simulate_design("separated-2d", 1_000_000, random_state=0)
        rows.append(_quiet_row("headline", sim.X, sim.y, 4, 128, 0))
        sim = simulate(high_d_design(20, 4), 1_000_000, random_state=0)
        rows.append(_quiet_row("hd-20-4", sim.X, sim.y, 4, 128, 0))
    df = pd.DataFrame(rows)
    _save(df, "fit_check_quiet")
    print(f"{len(df)} fits; the median rule flagged {int(df['median_rule'].sum())} machines in "
          f"{int((df['median_rule'] > 0).sum())} fits; the second rule added {int(df['second_rule_added'].sum())}; "
          f"the comparison on the machines' rows added {int(df['comparison_added'].sum())} in "
          f"{int((df['comparison_added'] > 0).sum())} fits; the expert-rows rule fires on "
          f"{int((df['sparse_experts'] > 0).sum())} fits, "
          f"{int(((df['sparse_experts'] > 0) & df['size_rule_ok']).sum())} of them accepted by the size rule")


def _check_row(name, X, y, K, M, S, seed, g, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dm = DistributedMoE(K, M, support_size=S, backend=backend, n_jobs=2, random_state=seed).fit(X, y)
        except (ValueError, RuntimeError):
            return None
    c = dm.fit_check_
    if c is None:
        return None
    q = n_free_parameters(K, X.shape[1])
    n_bar = LOGLIK_CHECK_FACTOR * q / c.loglik_allowed
    return dict(data=name, n=len(y), d=X.shape[1], K=K, M=M, S=len(dm.support_indices_), seed=seed, q=q,
                rows_per_machine=n_bar, gap=c.loglik_gap, allowed=c.loglik_allowed,
                flagged=c.loglik_gap > c.loglik_allowed,
                below_global=g.score(X, y) - dm.score(X, y), rpe_ratio=rpe(y, dm.predict(X)) / rpe(y, g.predict(X)),
                rpe_check_ok=bool(c.ratio <= FIT_CHECK_RATIO))


def loglik(seeds):
    rows = []
    sets = {**small_sets(), **from_r(MORE)}
    for design, n in (("teaching-1d", 600), ("separated-2d", 1200), ("overlapping-5d", 2000)):
        sim = simulate_design(design, n, random_state=7)
        sets[design] = (sim.X, sim.y)
    for name, (X, y) in sets.items():
        n, d = X.shape
        for K in (2, 3, 4):
            Ms = sorted({m for m in (2, 4, 8, 16, 32) if m <= n // min_samples(K, d)})
            for seed in seeds:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    g = fit_global(X, y, K, random_state=seed)
                for M in Ms:
                    for S in (None, n):
                        row = _check_row(name, X, y, K, M, S, seed, g, "sequential")
                        if row:
                            rows.append(dict(row, kind="small"))
        print(f"{name}: done", flush=True)
    large = [(des, simulate_design(des, 50_000, random_state=1), None) for des in
             ("teaching-1d", "separated-2d", "crossing-2d", "overlapping-5d", "separated-10d")]
    large += [("lost_expert", simulate(lost_expert_design(), 100_000, random_state=1), 5),
              ("small_expert", simulate(small_expert_design(), 100_000, random_state=1), 5),
              ("rare_expert", simulate(rare_expert_design(), 20_000, random_state=1), 3)]
    for name, sim, K in large:
        K = K or sim.params.n_experts
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = fit_global(sim.X, sim.y, K, random_state=0)
        for M in (4, 16, 64):
            for seed in range(3):
                row = _check_row(name, sim.X, sim.y, K, M, None, seed, g, "loky")
                if row:
                    rows.append(dict(row, kind="large"))
        print(f"{name}: done", flush=True)
    df = pd.DataFrame(rows)
    _save(df, "fit_check_loglik")
    summarise(df)


def summarise(df):
    unit = df["q"] / df["rows_per_machine"]  # q / n_m, n_m the mean rows per machine
    gap, loss = df["gap"] / unit, df["below_global"] / unit
    print(f"\n(gap - loss to the global EM) / (q / n_m), i.e. the local fits' in-sample optimism: quantiles "
          f"1/10/50/90/99 % {np.round(np.quantile(gap - loss, [.01, .1, .5, .9, .99]), 2).tolist()}")
    for kind in ("small", "large"):
        sel = df["kind"] == kind
        print(f"\n{kind} data: {int(sel.sum())} fits")
        for c in (1, 1.5, 2, 3, 4):
            fire = sel & (gap > c)
            print(f"  allowance {c:g} q / n_m: flags {int(fire.sum()):4d}; smallest loss to the global EM among them "
                  f"{loss[fire].min() if fire.any() else float('nan'):.2f} q / n_m; of them RPE check silent "
                  f"{int((fire & df['rpe_check_ok']).sum())}; unflagged with a loss above 2 q / n_m "
                  f"{int((sel & ~fire & (loss > 2)).sum())}")


def _save(df, name):
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / f"{name}.csv", index=False)
    print(f"wrote {OUT / f'{name}.csv'}")


def spread_design(seed, d=6, K=5):
    """A library audit's case: gate and expert coefficients N(0, 1.5^2) and N(0, 3^2) from ``seed``, variances
    0.5 to 5 (geometric), x ~ N(0, I_d): uneven experts, the one of variance 5 on 3-7 % of the rows."""
    r = np.random.default_rng(seed)
    gates = r.normal(0, 1.5, (d + 1, K))
    gates[:, -1] = 0
    return MoEParams(gates, r.normal(0, 3, (d + 1, K)), 0.5 * np.exp(np.linspace(0, np.log(10), K))), r


def _draw(truth, n, r):
    X = r.standard_normal((n, truth.n_features))
    z = (gate_proba(X, truth).cumsum(1) < r.random((n, 1))).sum(1).clip(max=truth.n_experts - 1)
    return X, expert_means(X, truth)[np.arange(n), z] + np.sqrt(truth.variances[z]) * r.standard_normal(n)


def spread_data(seed, n=20000):
    """(truth, X, y) of :func:`spread_design` (the design and the rows from one seed, as the audit drew them)."""
    truth, r = spread_design(seed)
    return (truth, *_draw(truth, n, r))


def spread():
    """The check of the reduced variances against the spread of the local lines (moecore.reduction.expert_spread):
    its ratio and excess next to the variance block's MSE to the truth over the global EM's, one-shot, on the
    audit's d = 6, K = 5 designs (n = 20 000, M = 16, seeds 11-23), the six shipped designs (n = 50 000, M = 4,
    16, 64) and the flights (M = 16, 64, 128; against the global EM, no truth)."""
    rows = []

    def row(name, truth, X, y, K, M, ref=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = MixtureOfExperts(K, random_state=0).fit(X, y)
            dm = DistributedMoE(K, M, random_state=0, n_jobs=2).fit(X, y)
        against = truth if truth is not None else g.params_
        ratio = parameter_mse(dm.params_, against)["variances"] / (
            parameter_mse(g.params_, truth)["variances"] if truth is not None else 1.0)
        sp = dm.expert_spread_
        rows.append(dict(data=name, K=K, M=M, variance_mse_ratio=ratio, max_ratio=float(sp.ratio.max()),
                         max_excess=float(sp.excess.max()), warned=not sp.ok))
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)

    for seed in (11, 16, 21, 22, 23):
        truth, X, y = spread_data(seed)
        row(f"spread_design({seed})", truth, X, y, 5, 16)
    for name in ("teaching-1d", "separated-2d", "crossing-2d", "overlapping-5d", "separated-10d", "two-experts-1d"):
        tr = simulate_design(name, 50000, random_state=3)
        for M in (4, 16, 64):
            row(name, tr.params, tr.X, tr.y, tr.params.n_experts, M)
    from moecore.datasets import load_dataset

    ds = load_dataset("flights")
    for M in (16, 64, 128):  # no truth: the variance MSE is against the global EM's
        row("flights (vs global EM)", None, np.asarray(ds.X, float), np.asarray(ds.y, float), 3, M)
    _save(pd.DataFrame(rows), "fit_check_spread")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["majority", "loglik", "quiet", "cross", "sparse", "spread"])
    ap.add_argument("--large", action="store_true", help="quiet: also n = 10^6 over M = 128 (two fits)")
    ap.add_argument("--seeds", default="", help="comma-separated (default: 0-7 for majority, 0,1 for loglik)")
    args = ap.parse_args(argv)
    if args.part == "majority":
        majority([int(s) for s in args.seeds.split(",")] if args.seeds else range(8))
    elif args.part == "quiet":
        quiet(args.large)
    elif args.part == "cross":
        cross()
    elif args.part == "sparse":
        sparse()
    elif args.part == "spread":
        spread()
    else:
        loglik([int(s) for s in args.seeds.split(",")] if args.seeds else range(2))


if __name__ == "__main__":
    main()
