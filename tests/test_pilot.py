"""The pilot start (issue 19): the server fits K experts to the supporting sample before the local
fits and every machine's portfolio also starts from that model.  Off by default (it does not pay
everywhere: benchmarks/README.md, section 11d)."""

import warnings

import numpy as np
import pytest

from benchmarks.bench_portfolio import lost_expert_design
from moecore import DistributedMoE, MixtureOfExperts
from moecore.params import n_free_parameters
from moecore.simulation import simulate, simulate_design


# Seeds whose default portfolio ends in a poor optimum (6 of seeds 0-89 do).
@pytest.mark.parametrize("seed", [8, 37])
def test_a_pilot_start_leads_a_shard_out_of_a_poor_optimum(seed):
    """On these shards (1 562 rows, the size of 10^5 rows over 64 machines) the default portfolio
    ends more than 100 nats below EM started from the truth; with the truth as the pilot it reaches
    that maximum.  Without a pilot the fit is exactly the default one."""
    prm = lost_expert_design()
    sim = simulate(prm, 1562, random_state=100 + seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = MixtureOfExperts(5, init=prm, random_state=seed).fit(sim.X, sim.y).loglik_
        default = MixtureOfExperts(5, random_state=seed)._fit(sim.X, sim.y, local_fit=True)
        none = MixtureOfExperts(5, random_state=seed)._fit(sim.X, sim.y, local_fit=True, pilot=None)
        piloted = MixtureOfExperts(5, random_state=seed)._fit(sim.X, sim.y, local_fit=True, pilot=prm)
    assert default.loglik_ < best - 100
    assert piloted.loglik_ >= best - 1e-6 * abs(best)
    np.testing.assert_array_equal(none.experts_, default.experts_)
    np.testing.assert_array_equal(none.loglik_history_, default.loglik_history_)


def test_the_pilot_is_timed_counted_and_sent():
    sim = simulate_design("separated-2d", 8000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = DistributedMoE(4, 4, backend="sequential", random_state=0).fit(sim.X, sim.y)
        dm = DistributedMoE(4, 4, backend="sequential", random_state=0, pilot=True).fit(sim.X, sim.y)
        threads = DistributedMoE(4, 4, backend="threading", n_jobs=2, random_state=0, pilot=True).fit(sim.X, sim.y)
    q = n_free_parameters(4, 2)
    assert dm.timings_["pilot"] > 0 and plain.timings_["pilot"] == 0
    parts = dm.costs_.learning_time_parts()
    assert parts["pilot"] == dm.timings_["pilot"]
    assert dm.timings_["learning_time"] == pytest.approx(sum(parts.values()))
    np.testing.assert_array_equal(dm.communication_["pilot_down"], np.full(4, float(q)))
    assert "pilot_down" not in plain.communication_
    assert dm.communication_["one_shot_total"] == pytest.approx(plain.communication_["one_shot_total"] + 4 * q)
    # The same numbers whatever runs the machines (the pilot's seed is the fit's own).
    np.testing.assert_array_equal(threads.experts_, dm.experts_)


def test_pilot_needs_the_portfolio_and_the_in_memory_fit(tmp_path):
    sim = simulate_design("separated-2d", 4000, random_state=0)
    with pytest.raises(ValueError, match=r"pilot=True .*init='portfolio'.*'kmeans'"):
        DistributedMoE(4, 4, backend="sequential", pilot=True, init="kmeans").fit(sim.X, sim.y)
    with pytest.raises(TypeError, match="pilot must be true or false"):
        DistributedMoE(4, 4, backend="sequential", pilot="yes").fit(sim.X, sim.y)
    with pytest.raises(ValueError, match="fit_shards"):
        DistributedMoE(4, 2, backend="sequential", pilot=True).fit_shards([tmp_path / "a.csv", tmp_path / "b.csv"])
    with pytest.raises(ValueError, match="init='portfolio'"):
        MixtureOfExperts(4, init="kmeans")._fit(sim.X, sim.y, pilot=simulate_design("separated-2d", 10).params)
    # A support too small for the pilot's own fit (the default floor(n / 4M) at M = 16 on 600 rows): the
    # message named neither pilot nor support_size (a fuzzing audit).
    small = simulate_design("crossing-2d", 600, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-shard warning says it too
        with pytest.raises(ValueError, match=r"pilot=True .* holds 9 points.*support_size >= 10, or pilot=False"):
            DistributedMoE(3, 16, backend="sequential", pilot=True, random_state=0).fit(small.X, small.y)


def test_the_command_line_takes_a_pilot(capsys):
    from moecore.cli import main

    args = ["compare", "--design", "separated-2d", "--n", "4000", "--n-test", "1000", "--machines", "4",
            "--backend", "sequential"]
    assert main([*args, "--pilot", "true"]) == 0
    assert "learning time (pilot " in capsys.readouterr().out
    assert main(args) == 0
    assert "pilot" not in capsys.readouterr().out
