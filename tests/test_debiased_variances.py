"""The reduction's debiased variance update: local variances net of their lines' estimation noise."""

import numpy as np
import pytest

from moecore import DistributedMoE, MixtureOfExperts
from moecore.model import net_variances
from moecore.reduction import reduce_mixtures
from moecore.simulation import simulate_design


def test_one_expert_keeps_its_variance():
    # tau = 1: no missing information, so p_eff = p and the gate-weighted leverage is p / n exactly:
    # v n / (n - p) (1 - p / n) = v.
    data = simulate_design("overlapping-5d", 3000, random_state=0)
    prm = MixtureOfExperts(1, random_state=0).fit(data.X, data.y).params_
    np.testing.assert_allclose(net_variances(data.X, data.y, prm), prm.variances, rtol=1e-10)


def test_net_variance_of_a_small_expert_is_below_its_ml_variance():
    # On 1 562 rows of separated-10d the 3.5 % expert holds about 54 points for 11 coefficients: its
    # line's noise at the gate-weighted inputs outweighs the dof correction, so the net variance
    # is lower; the large experts (300+ points each) move by a few per cent at most.
    data = simulate_design("separated-10d", 1562, random_state=0)
    prm = MixtureOfExperts(5, random_state=0).fit(data.X, data.y).params_
    net = net_variances(data.X, data.y, prm)
    small = np.argmin(np.abs(prm.experts[0] - 8.0))
    assert net[small] < 0.95 * prm.variances[small]
    others = np.arange(5) != small
    np.testing.assert_allclose(net[others], prm.variances[others], rtol=0.05)


def test_debiased_update_with_unchanged_variances_is_the_exact_one():
    data = simulate_design("separated-2d", 4000, random_state=0)
    halves = [slice(0, 2000), slice(2000, None)]
    models = [MixtureOfExperts(4, random_state=0).fit(data.X[h], data.y[h]).params_ for h in halves]
    exact = reduce_mixtures(models, [0.5, 0.5], data.X[:500], 4, random_state=0)
    same = reduce_mixtures(models, [0.5, 0.5], data.X[:500], 4, random_state=0, variance_update="debiased",
                           net_variances=[m.variances for m in models])
    np.testing.assert_array_equal(same.params.variances, exact.params.variances)
    np.testing.assert_array_equal(same.params.experts, exact.params.experts)
    # Lower net variances lower the reduced ones, by the coupling-weighted mean of the change.
    lower = reduce_mixtures(models, [0.5, 0.5], data.X[:500], 4, random_state=0, variance_update="debiased",
                            net_variances=[0.5 * m.variances for m in models])
    assert np.all(lower.params.variances < exact.params.variances)
    c = exact.plan.coupling
    shift = c.T @ (0.5 * np.concatenate([m.variances for m in models])) / c.sum(axis=0)
    np.testing.assert_allclose(lower.params.variances, exact.params.variances - shift, rtol=1e-12)


@pytest.mark.slow
def test_small_shards_small_expert_variance_is_no_longer_inflated():
    # separated-10d, n = 10^5 over M = 64 (1 562 rows per machine): the exact update adds the local
    # lines' estimation noise to the 3.5 % expert's variance (0.35), about +0.03 to +0.05. The
    # global EM's standard error there is 0.35 sqrt(2 / 3 450) = 0.0084; over three data sets the
    # debiased estimate must be within 2.5 of those on average, and the exact one is not.
    err = {"debiased": [], "exact": []}
    for seed in (1, 2, 3):
        data = simulate_design("separated-10d", 100_000, random_state=seed)
        for update in err:
            dm = DistributedMoE(5, 64, random_state=0, n_jobs=2, variance_update=update).fit(data.X, data.y)
            small = np.argmin(np.abs(dm.experts_[0] - 8.0))
            err[update].append(abs(dm.variances_[small] - 0.35))
        assert dm.communication_["one_shot_up"][0] > 0
    bound = 2.5 * 0.35 * np.sqrt(2 / 3450)
    assert np.mean(err["debiased"]) < bound < np.mean(err["exact"])


def test_net_variances_are_counted_in_the_upload():
    data = simulate_design("teaching-1d", 4000, random_state=0)
    fits = {u: DistributedMoE(2, 4, random_state=0, n_jobs=1, variance_update=u).fit(data.X, data.y)
            for u in ("exact", "debiased")}
    assert not fits["exact"].flagged_
    up = {u: dm.communication_["one_shot_up"] for u, dm in fits.items()}
    np.testing.assert_array_equal(up["debiased"] - up["exact"], np.full(4, 2.0))
    # Every local model carries them, and the exact fit's experts are the debiased fit's.
    assert all(m.net_variances_.shape == (2,) for m in fits["debiased"].local_models_)
    np.testing.assert_array_equal(fits["debiased"].experts_, fits["exact"].experts_)
