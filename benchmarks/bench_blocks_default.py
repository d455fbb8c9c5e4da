"""Parameter error by block (gates, experts, variances) of the default one-shot reduction, as a ratio to
the global EM's MSE to the truth, on every shipped design, n = 10^5, M in {4, 16, 64}:

    .venv/bin/python benchmarks/bench_blocks_default.py
"""
import warnings

warnings.simplefilter("ignore")
from moecore import DistributedMoE, MixtureOfExperts
from moecore.metrics import parameter_mse
from moecore.simulation import DESIGNS, simulate_design

for name in sorted(DESIGNS):
    tr = simulate_design(name, 100000, random_state=1); K = tr.params.n_experts
    g = MixtureOfExperts(K, random_state=0).fit(tr.X, tr.y)
    mg = parameter_mse(g.params_, tr.params, tr.X)
    for M in (4, 16, 64):
        dm = DistributedMoE(K, M, random_state=0, n_jobs=2).fit(tr.X, tr.y)
        md = parameter_mse(dm.params_, tr.params, tr.X)
        print(name, M, {k: round(md[k] / mg[k], 2) for k in md if k in ("gates", "experts", "variances")}, flush=True)
