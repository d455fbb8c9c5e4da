"""Non-IID machines: the reduction with constant and with covariate machine weights.

    .venv/bin/python benchmarks/bench_noniid.py            # ~10 min on 2 cores; CSVs to benchmarks/results/
    .venv/bin/python benchmarks/bench_noniid.py --quick    # n = 2e4, fewer cells: a smoke run

Parts (each row of the CSVs carries its part, the command, host and CPU count):

* ``headline``: region, k-means and label splits at alpha = 0, M in {4, 8, 16}, n = 10^5,
  teaching-1d and separated-2d; held-out RPE (10^5 test points) of the reduction with constant
  weights n_m / n and with covariate weights w_m(x), against the global EM on the same data.
  Goal: covariate within 5 % of the global EM (label skew: 10 %), no refinement rounds.  Also
  covariate weights with ``local_experts="bic"`` (each machine's number of experts by BIC).
* ``table``: every split (region, k-means, label, random) x alpha in {0, .25, .5, .75, 1} x weights
  (constant, covariate, auto) x refinement rounds (0-3) at M = 8.  Goal: within 2 % of the global
  EM with at most 3 rounds.  Rounds are computed from each fit's one-shot model with
  ``moecore.refine.em_rounds`` on the machines' shards (what ``refine_rounds=r`` runs), one round
  at a time, so one fit gives r = 1, 2, 3.  "auto" is the decision ``machine_weights="auto"`` takes
  on the same support (score test, p < 1e-3), and its RPE the RPE of the option it picks (same
  seeds, so the same fit).  Each covariate row also records which machines' refits from the
  reduced model replaced their first fits (``screening_.warm_refits``; "rejected" when the
  second reduction explained the support pairs worse and the first was kept).
* ``auto``: explicit random machine labels (``fit(X, y, machine=labels)``), 20 seeds, M = 8,
  teaching-1d: how often "auto" keeps the constant weights, and whether its result is then bitwise
  the constant-weight result.
* ``stranded`` (``--parts stranded``, about 2 min): a reduced expert stranded on a spurious local expert,
  with and without the move of a light expert (``part_stranded``).
* ``timing``: n = 10^6, M = 128 (the headline's setting), region split with covariate weights and
  random labels with "auto": seconds spent deciding and estimating w_m(x) at the server against
  the reduction's seconds (goal: < 20 %).  Median of 3 fits; the machine was shared with other
  jobs, so read the ratio, measured inside each fit, rather than the absolute times.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import socket
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moecore import DistributedMoE, MixtureOfExperts  # noqa: E402
from moecore.machine_weights import decide_machine_weights  # noqa: E402
from moecore.metrics import rpe  # noqa: E402
from moecore.model import Standardizer, predict_mean  # noqa: E402
from moecore.refine import em_rounds  # noqa: E402
from moecore.simulation import simulate_design  # noqa: E402
from moecore.splits import Split  # noqa: E402

COMMAND = "cd " + str(ROOT) + " && .venv/bin/python benchmarks/bench_noniid.py " + " ".join(
    shlex.quote(a) for a in sys.argv[1:])
DESIGNS = ("teaching-1d", "separated-2d")
SPLITS = ("region", "kmeans", "label")
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
MAX_ROUNDS = 3


def _meta():
    return {"command": COMMAND, "host": socket.gethostname(), "cpus": os.cpu_count()}


def _fit(tr, M, split, weights, seed=1, machine=None, local_experts="fixed"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DistributedMoE(tr.params.n_experts, M, random_state=seed, n_jobs=2, split=split,
                              machine_weights=weights, local_experts=local_experts).fit(tr.X, tr.y, machine=machine)


def _split(kind, alpha, tr):
    if kind == "random":
        return Split("random")
    return Split(kind, alpha=alpha, labels=tr.labels if kind == "label" else None)


def run_cells(part, cells, data, writer, out):
    for design, kind, alpha, M in cells:
        tr, te, glob = data[design]
        sp = _split(kind, alpha, tr)
        row = dict(part=part, design=design, split=kind, alpha=alpha, n_machines=M, n=len(tr.y),
                   rpe_global=glob)
        res = {}
        for w in ("constant", "covariate"):
            dm = _fit(tr, M, sp, w)
            res[w] = rpe(te.y, dm.predict(te.X))
            for r, prm in enumerate(_rounds(dm, tr, MAX_ROUNDS), start=1):
                row[f"rpe_{w}_rounds{r}"] = rpe(te.y, predict_mean(te.X, prm))
            row[f"rpe_{w}"] = res[w]
            row[f"reduction_s_{w}"] = dm.timings_["reduction"]
            if w == "covariate":
                local_fixed = dm.timings_["local_max"]
                row["machine_weights_s"] = dm.timings_["machine_weights"]
                used, test = decide_machine_weights("auto", dm.support_X_, dm.support_machine_, M)
                row["auto_uses"] = used
                row["auto_p_value"] = test.p_value
                row["retired_machines"] = sum(m.retired_experts_.size > 0 for m in dm.local_models_)
                # Machines whose refit from the reduced model replaced their first fit (kept
                # only when the second reduction explains the support pairs better).
                warm = dm.screening_.warm_refits
                row["warm_refit_machines"] = " ".join(map(str, sorted(warm))) if warm else ""
                row["warm_refit_second_rejected"] = bool(dm.screening_.warm_refit_support and not warm)
                row["warm_refit_max_s"] = float(np.max(dm.timings_["warm_refit"], initial=0.0))
        row["rpe_auto"] = res[row["auto_uses"]]
        # Covariate weights with each machine's number of experts chosen by BIC (1..K).
        dm = _fit(tr, M, sp, "covariate", local_experts="bic")
        row["rpe_covariate_bic"] = rpe(te.y, dm.predict(te.X))
        row["ratio_covariate_bic"] = row["rpe_covariate_bic"] / glob
        row["local_n_experts_bic"] = " ".join(map(str, dm.local_n_experts_))
        row["local_max_s_fixed"] = local_fixed
        row["local_max_s_bic"] = dm.timings_["local_max"]
        for w in ("constant", "covariate", "auto"):
            row[f"ratio_{w}"] = row[f"rpe_{w}"] / glob
        for w in ("constant", "covariate"):
            seq = [row[f"ratio_{w}"]] + [row[f"rpe_{w}_rounds{r}"] / glob for r in range(1, MAX_ROUNDS + 1)]
            ok = [r for r, q in enumerate(seq) if q <= 1.02]
            row[f"rounds_to_2pct_{w}"] = ok[0] if ok else f">{MAX_ROUNDS}"
        row.update(_meta())
        writer(row)
        print(f"{part:8s} {design:12s} {kind:7s} a={alpha:<4} M={M:<3} global {glob:.4f} const "
              f"{row['rpe_constant']:.4f} cov {row['rpe_covariate']:.4f} ({row['ratio_covariate']:.3f}x) "
              f"cov+bic {row['rpe_covariate_bic']:.4f} ({row['ratio_covariate_bic']:.3f}x) "
              f"auto->{row['auto_uses']} rounds(2%): const {row['rounds_to_2pct_constant']} cov "
              f"{row['rounds_to_2pct_covariate']} (cov r3 {row[f'rpe_covariate_rounds{MAX_ROUNDS}'] / glob:.3f}x) "
              f"warm refits [{row['warm_refit_machines']}]{' (rejected)' if row['warm_refit_second_rejected'] else ''}",
              flush=True)


def _rounds(dm, tr, rounds):
    """The model after each of 1..rounds refinement rounds from ``dm``'s one-shot model.

    ``moecore.refine.em_rounds`` on the machines' shards, the reference implementation of
    ``DistributedMoE(refine_rounds=r)`` (same scaler: the supporting sample's); one round at a time
    so that every r comes from one fit.
    """
    shards = [(tr.X[idx], tr.y[idx]) for idx in dm.shards_]
    scaler = Standardizer.fit(dm.support_X_, dm.support_y_)
    prm, out = dm.one_shot_params_, []
    for _ in range(rounds):
        prm, _ = em_rounds(shards, prm, 1, scaler=scaler, var_floor=dm.var_floor)
        out.append(prm)
    return out


def part_auto(n, seeds, out):
    tr = simulate_design("teaching-1d", n, random_state=1)
    rows = []
    for s in range(seeds):
        lab = np.random.default_rng(1000 + s).integers(8, size=n)
        auto = _fit(tr, 8, "random", "auto", seed=s, machine=lab)
        const = _fit(tr, 8, "random", "constant", seed=s, machine=lab)
        same = all(np.array_equal(getattr(auto.params_, a), getattr(const.params_, a))
                   for a in ("gates", "experts", "variances"))
        rows.append(dict(part="auto", seed=s, auto_uses=auto.machine_weights_used_,
                         p_value=auto.machine_weights_test_.p_value, bitwise_equal_constant=same,
                         test_s=auto.timings_["machine_weights"], reduction_s=auto.timings_["reduction"],
                         **_meta()))
        print(f"auto seed {s}: {auto.machine_weights_used_} p={rows[-1]['p_value']:.3g} equal={same}", flush=True)
    _write(out / "noniid_auto.csv", rows)
    kept = sum(r["auto_uses"] == "constant" for r in rows)
    print(f"auto kept constant weights on {kept} of {seeds} seeds")


def part_timing(n, M, repeats, out):
    rows = []
    for design in DESIGNS:
        tr = simulate_design(design, n, random_state=1)
        lab = np.random.default_rng(7).integers(M, size=n)
        for case, split, weights, machine in (("region, covariate", "region", "covariate", None),
                                              ("random labels, auto", "random", "auto", lab)):
            w, r, warm, kept, local = [], [], [], [], []
            for rep in range(repeats):
                dm = _fit(tr, M, split, weights, seed=rep, machine=machine)
                w.append(dm.timings_["machine_weights"])
                r.append(dm.timings_["reduction"])
                # Covariate weights: the refits from the reduced model (and a second reduction,
                # counted in "reduction", when any is kept).
                warm.append(float(np.max(dm.timings_["warm_refit"], initial=0.0)))
                kept.append(len(dm.screening_.warm_refits or {}))
                local.append(dm.timings_["local_max"])
            row = dict(part="timing", design=design, case=case, n=n, n_machines=M,
                       uses=dm.machine_weights_used_, machine_weights_s=float(np.median(w)),
                       reduction_s=float(np.median(r)),
                       ratio=float(np.median(np.array(w) / np.array(r))),
                       warm_refit_max_s=float(np.median(warm)), warm_refits_kept=" ".join(map(str, kept)),
                       local_max_s=float(np.median(local)), **_meta())
            rows.append(row)
            print(f"timing {design} {case}: weights {row['machine_weights_s'] * 1e3:.2f} ms, reduction "
                  f"{row['reduction_s'] * 1e3:.1f} ms, ratio {row['ratio']:.3f}; refits from the reduced model "
                  f"kept on {row['warm_refits_kept']} machines, slowest {row['warm_refit_max_s']:.2f} s "
                  f"(slowest local fit {row['local_max_s']:.2f} s)", flush=True)
    _write(out / "noniid_timing.csv", rows)


def part_blocks(n, M, out):
    """Parameter error by block on every shipped design, non-IID splits (alpha = 0): covariate
    weights with the refits from the reduced model (local_check="refit", the default), the same
    fit without them (local_check="drop") and with 3 refinement rounds, each against the truth and
    the global EM."""
    from moecore.metrics import parameter_mse
    from moecore.simulation import DESIGNS as ALL_DESIGNS

    rows = []
    for design in ALL_DESIGNS:
        tr = simulate_design(design, n, random_state=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = MixtureOfExperts(tr.params.n_experts, random_state=1).fit(tr.X, tr.y).params_
        for kind in SPLITS:
            sp = _split(kind, 0.0, tr)
            for check, rounds in (("refit", 0), ("drop", 0), ("refit", 3)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dm = DistributedMoE(tr.params.n_experts, M, random_state=1, n_jobs=2, split=sp,
                                        machine_weights="covariate", local_check=check,
                                        refine_rounds=rounds).fit(tr.X, tr.y)
                row = dict(part="blocks", design=design, split=kind, alpha=0.0, n_machines=M, n=n,
                           local_check=check, refine_rounds=rounds,
                           warm_refits=len(dm.screening_.warm_refits or {}))
                for ref_name, ref in (("truth", tr.params), ("global", g)):
                    err = parameter_mse(dm.params_, ref)
                    for b in ("gates", "experts", "variances"):
                        row[f"{b}_vs_{ref_name}"] = err[b]
                glob = parameter_mse(g, tr.params)
                for b in ("gates", "experts", "variances"):
                    row[f"{b}_global_vs_truth"] = glob[b]
                row.update(_meta())
                rows.append(row)
                print(f"blocks {design:14s} {kind:7s} {check:6s} r{rounds} vs truth g/e/v {row['gates_vs_truth']:.3g} "
                      f"{row['experts_vs_truth']:.3g} {row['variances_vs_truth']:.3g} | vs global "
                      f"{row['gates_vs_global']:.3g} {row['experts_vs_global']:.3g} {row['variances_vs_global']:.3g}"
                      f" | global vs truth {glob['gates']:.3g} {glob['experts']:.3g} {glob['variances']:.3g}",
                      flush=True)
    _write(out / "noniid_blocks.csv", rows)


def part_stranded(out):
    """A reduced expert stranded on a spurious local expert (docs/method.md, "A stranded reduced expert"):
    crossing-2d, teaching-1d and separated-2d, n = 8 000, 5 data seeds, M in {8, 16}, region and random
    splits; the held-out log-likelihood per point of the global EM less the reduction's, with the move of
    a light expert (moecore.reduction.LIGHT_SHARE) and without it, side by side on the same fits."""
    import moecore.reduction as red

    rows = []
    for design in ("crossing-2d", "teaching-1d", "separated-2d"):
        for seed in range(5):
            tr = simulate_design(design, 8000, random_state=seed)
            te = simulate_design(design, 20000, random_state=100 + seed)
            K = tr.params.n_experts
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = MixtureOfExperts(K, random_state=0).fit(tr.X, tr.y).score(te.X, te.y)
                for M in (8, 16):
                    for split in ("region", "random"):
                        gaps = {}
                        for name, share in (("move", red.LIGHT_SHARE), ("no_move", 0.0)):
                            red.LIGHT_SHARE, keep = share, red.LIGHT_SHARE
                            try:
                                dm = DistributedMoE(K, M, split=split, backend="sequential",
                                                    random_state=seed).fit(tr.X, tr.y)
                            finally:
                                red.LIGHT_SHARE = keep
                            gaps[name] = g - dm.score(te.X, te.y)
                        rows.append(dict(part="stranded", design=design, seed=seed, M=M, split=split,
                                         gap_move=gaps["move"], gap_no_move=gaps["no_move"], **_meta()))
                        print(design, seed, M, split, {k: round(v, 4) for k, v in gaps.items()}, flush=True)
    _write(out / "noniid_stranded.csv", rows)
    moved = [r for r in rows if r["gap_move"] != r["gap_no_move"]]
    print(f"{len(moved)} of {len(rows)} fits changed by the move:",
          [(r["design"], r["seed"], r["M"], r["split"], round(r["gap_no_move"], 3), round(r["gap_move"], 3))
           for r in moved])


def _write(path, rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="headline,table,auto,timing")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    n = 20000 if args.quick else 100000
    data = {}
    if {"headline", "table"} & set(parts):
        for design in DESIGNS:
            tr = simulate_design(design, n, random_state=1)
            te = simulate_design(design, 100000, random_state=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = MixtureOfExperts(tr.params.n_experts, random_state=1).fit(tr.X, tr.y)
            data[design] = (tr, te, rpe(te.y, g.predict(te.X)))
    rows = []
    if "headline" in parts:
        Ms = (4, 8) if args.quick else (4, 8, 16)
        run_cells("headline", [(d, s, 0.0, M) for d in DESIGNS for s in SPLITS for M in Ms], data,
                  rows.append, out)
    if "table" in parts:
        alphas = (0.0, 0.5) if args.quick else ALPHAS
        cells = [(d, s, a, 8) for d in DESIGNS for s in SPLITS for a in alphas]
        cells += [(d, "random", 1.0, 8) for d in DESIGNS]
        run_cells("table", cells, data, rows.append, out)
    if rows:
        _write(out / "noniid.csv", rows)
    if "auto" in parts:
        part_auto(n, 5 if args.quick else 20, out)
    if "blocks" in parts:
        part_blocks(20000 if args.quick else 100000, 8, out)
    if "timing" in parts:
        part_timing(10**5 if args.quick else 10**6, 128, 1 if args.quick else 3, out)
    if "stranded" in parts:
        part_stranded(out)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.0f} s")
