"""The MoE density, gates, prediction and the standardisation maps, against direct formulas."""

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import norm

from moecore import MoEParams
from moecore import model as m
from moecore.simulation import get_design, simulate

RNG = np.random.default_rng(12)


def random_params(d=2, K=3, rng=RNG):
    g = rng.normal(size=(d + 1, K))
    return MoEParams(g, rng.normal(size=(d + 1, K)), rng.uniform(0.1, 2.0, K))


def test_params_pin_last_gate_column():
    p = random_params()
    assert np.all(p.gates[:, -1] == 0)


def test_gate_proba_is_softmax_and_invariant_to_pinning():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3, 4))
    p = MoEParams(g, rng.normal(size=(3, 4)), np.ones(4))
    X = rng.normal(size=(50, 2))
    Xt = np.hstack([np.ones((50, 1)), X])
    # Adding the same vector to every gate column leaves the softmax unchanged.
    np.testing.assert_allclose(m.gate_proba(X, p), softmax(Xt @ g, axis=1), rtol=1e-12)


def test_densities_and_prediction_match_direct_formulas():
    p = random_params()
    X = RNG.normal(size=(40, 2))
    y = RNG.normal(size=40)
    Xt = np.hstack([np.ones((40, 1)), X])
    pi = softmax(Xt @ p.gates, axis=1)
    mu = Xt @ p.experts
    dens = norm.pdf(y[:, None], mu, np.sqrt(p.variances))
    np.testing.assert_allclose(np.exp(m.log_expert_density(X, y, p)), dens, rtol=1e-12)
    np.testing.assert_allclose(m.loglik_per_sample(X, y, p), np.log((pi * dens).sum(1)), rtol=1e-12)
    np.testing.assert_allclose(m.posterior_proba(X, y, p), pi * dens / (pi * dens).sum(1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(m.predict_mean(X, p), (pi * mu).sum(1), rtol=1e-12)


def test_log_domain_survives_extreme_values():
    p = MoEParams([[0.0, 0.0], [800.0, 0.0]], [[0.0, 100.0], [1.0, 0.0]], [1e-4, 1e-4])
    X = np.array([[-5.0], [5.0]])
    y = np.array([1e3, -1e3])
    assert np.all(np.isfinite(m.loglik_per_sample(X, y, p)))
    assert np.all(np.isfinite(m.posterior_proba(X, y, p)))


def test_standardizer_maps_are_exact_inverses_and_preserve_the_model():
    p = random_params(d=3, K=2)
    X = RNG.normal(3.0, 5.0, size=(200, 3))
    y = RNG.normal(10.0, 4.0, size=200)
    sc = m.Standardizer.fit(X, y)
    gs, es, vs = sc.params_to_standard(p)
    back = sc.params_to_original(gs, es, vs)
    np.testing.assert_allclose(back.vector(), p.vector(), rtol=1e-10, atol=1e-12)
    # The standardised model on standardised data has the same density up to the y Jacobian.
    ps = MoEParams(gs, es, vs)
    ll_orig = m.loglik_per_sample(X, y, p)
    ll_std = m.loglik_per_sample(sc.transform_X(X), sc.transform_y(y), ps) - np.log(sc.y_scale)
    np.testing.assert_allclose(ll_orig, ll_std, rtol=1e-10)


def test_params_json_round_trip_and_validation():
    p = random_params()
    q = MoEParams.from_dict(p.to_dict())
    np.testing.assert_array_equal(p.vector(), q.vector())
    with pytest.raises(ValueError, match="variances"):
        MoEParams(p.gates, p.experts, -p.variances)
    with pytest.raises(ValueError, match="agree"):
        MoEParams(p.gates[:, :2], p.experts, p.variances)
    with pytest.raises(ValueError, match="lack"):
        MoEParams.from_dict({"gates": [[0.0]]})


@pytest.mark.parametrize("change, words", [
    # float64 took text and booleans as numbers without a word
    (lambda d: d["gates"][0].__setitem__(0, "1.5"),
     r"gates must be an array \(d\+1, K\) of numbers, got '1.5' \(str\)"),
    (lambda d: d["experts"][1].__setitem__(0, True), r"experts .* got True \(bool\)"),
    (lambda d: d["variances"].__setitem__(0, None), r"variances .* got None"),
    (lambda d: d["gates"][0].pop(), "gates .* got rows of different lengths"),
    (lambda d: d.update(gates=[np.zeros((2, 2)), np.zeros((2, 3))]), "gates .* got rows of different lengths"),
    # a bare OverflowError naming no field
    (lambda d: d["gates"][0].__setitem__(0, 10**400), "gates hold an integer beyond float64's range"),
    # accepted, and then predictions or densities overflowed: check_predictable's bounds
    (lambda d: d["variances"].__setitem__(0, 1e-320), r"variances must lie in \[1e-100, 1e\+100\]"),
    (lambda d: d["experts"][0].__setitem__(0, 1e300), "experts hold a coefficient of magnitude 1e\\+300"),
])
def test_params_read_from_outside_hold_numbers_a_model_can_use(change, words):
    d = random_params().to_dict()
    change(d)
    with pytest.raises(ValueError, match="^my.json: " + words):
        MoEParams.from_dict(d, "my.json")


def test_simulation_draws_labels_from_the_gates():
    design = get_design("teaching-1d")
    data = simulate(design.params, 40000, x_dist="uniform", x_scale=3.0, random_state=3)
    pi = m.gate_proba(data.X, design.params)
    # The label frequencies match the mean gate probabilities (binomial standard error ~0.0024).
    np.testing.assert_allclose(np.bincount(data.labels, minlength=3) / 40000, pi.mean(0), atol=0.01)
    resid = data.y - m.expert_means(data.X, design.params)[np.arange(40000), data.labels]
    for k in range(3):
        v = resid[data.labels == k].var()
        # chi-square: sd of the sample variance is v * sqrt(2 / n_k) <= 0.0015 here.
        v_k = design.params.variances[k]
        assert abs(v - v_k) < 5 * v_k * np.sqrt(2 / (data.labels == k).sum())
    assert np.abs(data.X).max() <= 3.0


@pytest.mark.parametrize("shape", [(5000, 2), (300, 40)])  # both branches: few columns, many
def test_column_moments_match_numpy(shape):
    from moecore._validation import column_moments

    X = np.random.default_rng(0).normal(3.0, 2.0, size=shape)
    X[:, 1] = -7.5  # a constant column, with a negative value as its largest magnitude
    mean, std, absmax = column_moments(X)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(std, X.std(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(absmax, np.abs(X).max(axis=0))
    assert std[1] < 1e-12 and absmax[1] == 7.5


def test_gate_proba_mse_judges_sharp_gates_by_what_they_route():
    # Two models of one sharp gate: logits scaled by 10 move the coefficients by hundreds but
    # route every point of a well-separated design alike, so the probability MSE stays small while
    # the coefficient MSE is huge; the metric is invariant to the experts' order and zero at equality.
    from moecore.metrics import gate_proba_mse, parameter_mse

    truth = MoEParams(np.array([[0.0, 0.0], [20.0, 0.0]]), np.array([[1.0, -1.0], [2.0, 0.5]]), np.array([0.1, 0.3]))
    X = np.concatenate([np.linspace(-3, -0.5, 200), np.linspace(0.5, 3, 200)])[:, None]
    sharper = MoEParams(truth.gates * 10, truth.experts, truth.variances)
    assert gate_proba_mse(truth, truth, X) == 0.0
    assert gate_proba_mse(sharper, truth, X) < 1e-8 < 1e4 < parameter_mse(sharper, truth, X)["gates"]
    swapped = sharper.permute(np.array([1, 0]))
    assert gate_proba_mse(swapped, truth, X) == gate_proba_mse(sharper, truth, X)
    flat = MoEParams(np.zeros((2, 2)), truth.experts, truth.variances)
    assert gate_proba_mse(flat, truth, X) > 0.2


def test_alignment_tells_apart_experts_that_share_a_line_by_their_gates():
    # lost_expert_design's experts 1 and 5 share the line y = x and the variance 1, at x < -1 and
    # x > 1.4. Without the gates in the matching cost the two match either way (a tie broken by
    # rounding), and the gate error then compares one region's gate with the other's: the gate
    # MSE ratios of benchmarks/README.md section 16 swung between 0.0 and 33 000 from one fit to
    # the next before.
    from benchmarks.bench_portfolio import lost_expert_design
    from moecore.alignment import align_to, match_experts
    from moecore.metrics import gate_proba_mse

    truth = lost_expert_design()
    X = np.linspace(-3, 3, 601)[:, None]
    perm = np.array([4, 1, 2, 3, 0])  # the two copies of y = x swapped
    estimate = truth.permute(perm)
    assert np.array_equal(estimate.experts, truth.experts) and np.array_equal(estimate.variances, truth.variances)
    assert np.array_equal(match_experts(truth, estimate, X), perm)
    assert gate_proba_mse(estimate, truth, X) == 0.0
    np.testing.assert_allclose(align_to(truth, estimate, X).gates, truth.gates, atol=1e-12)
