"""Parameter error by block (gates, experts, variances) of the default one-shot reduction, as a ratio to
the global EM's MSE to the truth, on every shipped design, n = 10^5, M in {4, 16, 64}:

    .venv/bin/python benchmarks/bench_blocks_default.py
"""

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moecore import DistributedMoE, MixtureOfExperts
from moecore.metrics import parameter_mse
from moecore.simulation import DESIGNS, simulate_design

BLOCKS = ("gates", "experts", "variances")


def main():
    warnings.simplefilter("ignore")
    for name in sorted(DESIGNS):
        train = simulate_design(name, 100_000, random_state=1)
        K = train.params.n_experts
        reference = parameter_mse(MixtureOfExperts(K, random_state=0).fit(train.X, train.y).params_,
                                  train.params, train.X)
        for M in (4, 16, 64):
            dm = DistributedMoE(K, M, random_state=0, n_jobs=2).fit(train.X, train.y)
            mse = parameter_mse(dm.params_, train.params, train.X)
            print(name, M, {b: round(mse[b] / reference[b], 2) for b in BLOCKS}, flush=True)


if __name__ == "__main__":
    main()
