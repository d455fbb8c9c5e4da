"""Calibrate the cost model of moecore.costmodel on this machine and check it against real fits.

Measures the calibration grid (moecore.costmodel.CALIBRATION_GRID: ten distributed fits and
their global EMs, one thread, CPU seconds), stores the coefficients in moecore/costmodel.json
(what the app's Fit page reads), prints how well the fitted formulas match the measurements,
and predicts three configurations that were not in the grid next to their measured CPU times.

Run:  .venv/bin/python benchmarks/bench_costmodel.py   (about 45 s; --no-save to keep the stored file)
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from moecore import DistributedMoE, costmodel  # noqa: E402
from moecore.baselines import fit_global  # noqa: E402
from moecore.simulation import DESIGNS, simulate_design  # noqa: E402

# Not in the calibration grid: the app's landing example, a bad-machine-sized fit, a larger one.
# Since 2026-12-05 also two small data sets (a global EM that repeats its portfolio) at 4 machines.
CHECKS = (("teaching-1d", 20_000, 8), ("separated-2d", 40_000, 16), ("separated-2d", 200_000, 32),
          ("teaching-1d", 272, 4), ("overlapping-5d", 800, 4))


def relative_errors(model, rows):
    out = {}
    for kind in ("em", "em_small", "server", "round"):
        R = [r for r in rows if r["kind"] == kind]
        if kind == "em":
            pred = [model.em_time(r["n"], r["d"], r["K"]) for r in R]
        elif kind == "em_small":
            pred = [model.global_time(r["n"], r["d"], r["K"]) for r in R]
        elif kind == "server":
            pred = [model.server_time(r["M"], r["K"], r["S"], r["d"], r["mm_restarts"]) for r in R]
        else:
            pred = [model.round_time(r["n"], r["d"], r["K"]) for r in R]
        out[kind] = np.array(pred) / np.array([r["seconds"] for r in R])
    return out


def main(save=True):
    t0 = time.perf_counter()
    model, rows = costmodel.calibrate()
    print(f"calibration: {len(rows)} measurements in {time.perf_counter() - t0:.1f} s")
    for kind, ratio in relative_errors(model, rows).items():
        q = np.quantile(ratio, [0.1, 0.5, 0.9])
        print(f"  {kind:8s} predicted / measured over {ratio.size:3d} fits: 10 % {q[0]:.2f}, median {q[1]:.2f}, "
              f"90 % {q[2]:.2f}")
    print(f"coefficients: em {model.em}, server {model.server}, round {model.round}, small {model.small}")
    print("\nconfigurations outside the grid (CPU seconds, one thread):")
    print(f"{'design':15s} {'n':>8s} {'M':>4s} {'global pred/meas':>18s} {'learning pred/meas':>20s} "
          f"{'speed-up pred/meas':>19s}")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for design, n, M in CHECKS:
            sim = simulate_design(design, n, random_state=99)
            K, d = DESIGNS[design].n_experts, DESIGNS[design].n_features
            c0 = time.thread_time()
            fit_global(sim.X, sim.y, K, random_state=0)
            g = time.thread_time() - c0
            dm = DistributedMoE(K, M, backend="sequential", random_state=0).fit(sim.X, sim.y)
            c = dm.costs_
            learn = float(c.local_cpu.max()) + c.screening + c.machine_weights + c.reduction_cpu
            p = model.predict(n, d, K, M)
            print(f"{design:15s} {n:8d} {M:4d} {p.global_time:8.3f} / {g:7.3f} {p.learning_time:9.3f} / "
                  f"{learn:8.3f} {p.speedup:9.1f} / {g / learn:6.1f}")
    if save:
        costmodel.save(model)
        print(f"\nstored in {costmodel.CALIBRATION_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    import argparse

    # --help must not run the calibration: it rewrites moecore/costmodel.json, which the Fit page reads.
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-save", action="store_true", help="keep the stored moecore/costmodel.json")
    main(save=not parser.parse_args().no_save)
