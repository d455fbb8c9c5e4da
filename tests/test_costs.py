"""One bookkeeping object for a distributed fit's seconds and traffic: the learning time is the sum
of its parts wherever it is read (estimator, app text, command line)."""

import warnings

import numpy as np
import pytest

from moecore import DistributedMoE, simulate_design
from moecore.costs import FitCosts
from moecore.splits import Split


@pytest.fixture(scope="module")
def covariate_fit():
    # A region split with covariate weights: the machine weights are estimated and every machine
    # refits from the reduced model, the two terms a hand-written sum once left out.
    sim = simulate_design("teaching-1d", 2400, random_state=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DistributedMoE(3, 4, backend="sequential", random_state=7, split=Split("region", alpha=0.1),
                              machine_weights="covariate", local_check="refit", refine_rounds=1).fit(sim.X, sim.y)


def test_learning_time_is_the_sum_of_its_parts_including_weights_and_warm_refits(covariate_fit):
    costs = covariate_fit.costs_
    parts = costs.learning_time_parts()
    assert parts["machine weights"] > 0 and parts["slowest warm refit"] > 0
    assert parts["1 refinement round(s)"] > 0
    assert costs.learning_time == pytest.approx(sum(parts.values()), rel=1e-15)
    assert covariate_fit.timings_["learning_time"] == costs.learning_time
    assert covariate_fit.timings_["machine_weights"] == parts["machine weights"]


def test_described_sum_names_every_nonzero_term_and_the_total(covariate_fit):
    costs = covariate_fit.costs_
    text = costs.describe()
    for name, sec in costs.learning_time_parts().items():
        assert (f"{name} {sec:.3f} s" in text) == bool(sec) or name == "slowest local fit"
    assert text.endswith(f"= {costs.learning_time:.3f} s")
    assert costs.describe(cpu=True).endswith(f"= {costs.learning_time_cpu:.3f} s")


def test_communication_totals_add_up():
    costs = FitCosts(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([10.0, 12.0]),
                     warm_refit_down=np.array([3.0, 3.0]), round_up=np.array([4.0, 4.0]),
                     round_down=np.array([5.0, 5.0]), n_rounds=2)
    com = costs.communication()
    assert com["one_shot_total"] == 28.0 and com["rounds_total"] == 36.0 and com["total"] == 64.0
    assert FitCosts(np.ones(2), np.ones(2), np.ones(2)).communication()["total"] == 2.0
    assert "warm_refit_down" not in FitCosts(np.ones(2), np.ones(2), np.ones(2)).communication()
