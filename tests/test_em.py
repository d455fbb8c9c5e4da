"""EM for the MoE: exact M-steps, monotone log-likelihood, recovery of the truth, the estimator API."""

import warnings

import numpy as np
import pytest

from moecore import ConvergenceWarning, MixtureOfExperts, MoEParams, NotFittedError
from moecore.em import _wls_design, _wls_experts, expert_statistics, experts_from_statistics
from moecore.metrics import parameter_mse
from moecore.model import loglik_per_sample
from moecore.simulation import DESIGNS, simulate_design


@pytest.mark.parametrize("pairs", [True, False], ids=["pair-products", "blas"])
def test_expert_m_step_is_the_exact_weighted_least_squares_minimiser(pairs):
    rng = np.random.default_rng(0)
    n, p, K = 500, 3, 2
    XtT = np.vstack([np.ones(n), rng.normal(size=(p - 1, n))])
    y = rng.normal(size=n)
    tau = rng.dirichlet(np.ones(K), size=n).T
    design = _wls_design(XtT, y) if pairs else None
    assert (design is not None) == pairs  # p = 3: the pair products are chosen automatically
    B, V, Nk = _wls_experts(XtT, y, tau, 1e-12, design)
    np.testing.assert_allclose(Nk, tau.sum(axis=1), rtol=1e-12)
    for k in range(K):
        w = tau[k]
        # Closed form through lstsq on sqrt(w)-scaled rows.
        b_ref = np.linalg.lstsq(XtT.T * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
        np.testing.assert_allclose(B[:, k], b_ref, rtol=1e-9)
        v_ref = (w * (y - XtT.T @ b_ref) ** 2).sum() / w.sum()
        np.testing.assert_allclose(V[k], v_ref, rtol=1e-9)

        def q(b, v, w=w):  # expected complete-data log-likelihood of expert k
            r = y - XtT.T @ b
            return -0.5 * (w * (np.log(v) + r * r / v)).sum()

        best = q(B[:, k], V[k])
        for _ in range(20):
            db = rng.normal(scale=1e-3, size=p)
            assert q(B[:, k] + db, V[k]) <= best
            assert q(B[:, k], V[k] * np.exp(rng.normal(scale=1e-3))) <= best


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_loglik_never_decreases(name):
    data = simulate_design(name, 3000, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for init in ("kmeans", "random"):
            est = MixtureOfExperts(data.params.n_experts, init=init, max_iter=150, random_state=0).fit(data.X, data.y)
            h = est.loglik_history_
            assert len(h) == est.n_iter_ >= 2
            assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
            # The last entry is the log-likelihood of the returned parameters.
            np.testing.assert_allclose(h[-1], loglik_per_sample(data.X, data.y, est.params_).sum(), rtol=1e-9)


def test_recovers_the_teaching_design_and_mse_falls_with_n():
    design = DESIGNS["teaching-1d"]
    mses = []
    for n in (1000, 10000, 100000):
        data = simulate_design("teaching-1d", n, random_state=n)
        est = MixtureOfExperts(3, n_init=2, random_state=0).fit(data.X, data.y)
        mses.append(parameter_mse(est.params_, design.params)["experts"])
    # Expert MSE scales like 1/n: each tenfold increase must cut it by well over half.
    assert mses[1] < 0.5 * mses[0] and mses[2] < 0.5 * mses[1], mses
    # At n = 1e5 the expert coefficients are within a few standard errors (~0.003) of the truth.
    assert mses[2] < 1e-3


def test_estimator_api():
    data = simulate_design("two-experts-1d", 4000, random_state=2)
    est = MixtureOfExperts(2, random_state=0)
    with pytest.raises(NotFittedError):
        est.predict(data.X)
    est.fit(data.X, data.y)
    assert est.gates_.shape == (2, 2) and np.all(est.gates_[:, -1] == 0)
    assert est.experts_.shape == (2, 2) and est.variances_.shape == (2,)
    assert est.converged_ and est.n_iter_ == len(est.loglik_history_)
    assert est.predict(data.X).shape == (4000,)
    P = est.predict_proba(data.X)
    np.testing.assert_allclose(P.sum(1), 1.0)
    np.testing.assert_allclose(est.score(data.X, data.y) * 4000, est.loglik_, rtol=1e-9)
    k = est.n_parameters()
    assert k == 2 + 4 + 2
    np.testing.assert_allclose(est.bic(data.X, data.y), -2 * est.loglik_ + k * np.log(4000), rtol=1e-9)
    np.testing.assert_allclose(est.aic(data.X, data.y), -2 * est.loglik_ + 2 * k, rtol=1e-9)
    # Two experts explain this data better than one (BIC), and the truth scores close to the fit.
    one = MixtureOfExperts(1).fit(data.X, data.y)
    assert est.bic(data.X, data.y) < one.bic(data.X, data.y)
    truth = MixtureOfExperts.from_params(data.params)
    assert abs(truth.score(data.X, data.y) - est.score(data.X, data.y)) < 0.01


def test_same_seed_same_fit_and_n_init_keeps_the_best():
    data = simulate_design("separated-2d", 3000, random_state=5)
    a = MixtureOfExperts(4, init="random", n_init=1, random_state=7).fit(data.X, data.y)
    b = MixtureOfExperts(4, init="random", n_init=1, random_state=7).fit(data.X, data.y)
    np.testing.assert_array_equal(a.experts_, b.experts_)
    c = MixtureOfExperts(4, init="random", n_init=4, random_state=7).fit(data.X, data.y)
    assert c.loglik_ >= a.loglik_ - 1e-9


def test_convergence_warning_at_max_iter():
    data = simulate_design("overlapping-5d", 2000, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        est = MixtureOfExperts(3, max_iter=2, random_state=0).fit(data.X, data.y)
    assert not est.converged_ and est.n_iter_ == 2


def test_a_quiet_fit_warns_nothing_and_fits_the_same():
    # A distributed fit reports each machine's non-convergence itself: its local fits are quiet,
    # through an argument rather than process-wide warning filters (fits run in threads).
    data = simulate_design("overlapping-5d", 2000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = MixtureOfExperts(3, max_iter=2, random_state=0)._fit(data.X, data.y, quiet=True)
    with pytest.warns(ConvergenceWarning):
        loud = MixtureOfExperts(3, max_iter=2, random_state=0).fit(data.X, data.y)
    np.testing.assert_array_equal(quiet.experts_, loud.experts_)


def test_invariant_to_affine_rescaling_of_x_and_y():
    data = simulate_design("two-experts-1d", 3000, random_state=3)
    a = MixtureOfExperts(2, random_state=0).fit(data.X, data.y)
    b = MixtureOfExperts(2, random_state=0).fit(1000.0 + 50.0 * data.X, -20.0 + 0.01 * data.y)
    # Same partition, same fit: predictions map through the affine change of y.
    np.testing.assert_allclose(b.predict(1000.0 + 50.0 * data.X), -20.0 + 0.01 * a.predict(data.X),
                               rtol=1e-6, atol=1e-8)


def test_from_params_builds_a_usable_model():
    prm = DESIGNS["separated-2d"].params
    est = MixtureOfExperts.from_params(gates=prm.gates, experts=prm.experts, variances=prm.variances)
    assert isinstance(est.params_, MoEParams)
    X = np.zeros((1, 2))
    assert est.predict(X).shape == (1,)
    with pytest.raises(TypeError):
        MixtureOfExperts.from_params("not params")


@pytest.mark.parametrize("design", ["separated-2d", "separated-10d"])
def test_loglik_never_decreases_with_a_subsampled_hessian(design):
    # Past gating.HESSIAN_SAMPLES points (HESSIAN_SAMPLES_BLAS on the BLAS path, p > 6) the Newton
    # step uses a strided-subsample Hessian: the line search on the exact objective must still make
    # every iteration monotone.
    from moecore import gating

    n = 3 * gating.HESSIAN_SAMPLES
    data = simulate_design(design, n, random_state=4)
    K, p = data.params.n_experts, data.X.shape[1] + 1
    assert gating._hessian_stride(n, K, p) > 1  # the subsample is in use on this path
    est = MixtureOfExperts(K, init="random", max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(data.X, data.y)
    h = est.loglik_history_
    assert len(h) > 5 and np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))


def test_min_samples_is_the_bound_em_and_the_shards_enforce():
    from moecore import DistributedMoE
    from moecore.em import min_samples

    K, d = 3, 2
    assert min_samples(K, d) == K * (d + 1) + 1 == 10
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, d)), rng.standard_normal(10)
    # One rule, one phrasing: EM, the distributed fit and the shards cite the same bound.
    with pytest.raises(ValueError, match="at least n_experts \\* \\(d \\+ 1\\) \\+ 1 = 10 are needed"):
        MixtureOfExperts(K, random_state=0).fit(X[:9], y[:9])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 10 points for 3 experts may need re-seeding: fine here
        MixtureOfExperts(K, random_state=0).fit(X, y)
    X2, y2 = rng.standard_normal((39, d)), rng.standard_normal(39)
    # 4 shards of 9 or 10 points: the smallest is below the bound.
    with pytest.raises(ValueError, match="each shard needs at least n_experts \\* \\(d \\+ 1\\) \\+ 1 = 10"):
        DistributedMoE(K, 4, random_state=0).fit(X2, y2)


def test_expert_statistics_of_two_parts_add_up_to_those_of_the_whole():
    rng = np.random.default_rng(3)
    n, p, K = 900, 31, 3  # p = 31: past the pair-product threshold, the BLAS path
    XtT = np.vstack([np.ones(n), rng.normal(size=(p - 1, n))])
    y = rng.normal(size=n)
    tau = rng.dirichlet(np.ones(K), size=n).T
    whole = expert_statistics(XtT, y, tau)
    parts = [expert_statistics(XtT[:, s], y[s], tau[:, s]) for s in (slice(0, 400), slice(400, None))]
    both = sum(parts)
    for name in ("Nk", "G", "h", "yy"):
        np.testing.assert_allclose(getattr(both, name), getattr(whole, name), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(whole.G[1], (XtT * tau[1]) @ XtT.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(whole.h[2], XtT @ (tau[2] * y), rtol=1e-10, atol=1e-10)
    B, _ = experts_from_statistics(both, 1e-12)
    ref = np.linalg.lstsq(XtT.T * np.sqrt(tau[0])[:, None], y * np.sqrt(tau[0]), rcond=None)[0]
    np.testing.assert_allclose(B[:, 0], ref, rtol=1e-8, atol=1e-10)
    # The pair-product path gives the same sums where it is used.
    small = XtT[:4]
    a, b = expert_statistics(small, y, tau), expert_statistics(small, y, tau, design=_wls_design(small, y))
    for name in ("Nk", "G", "h", "yy"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-10)


def test_blas_and_pair_product_paths_fit_the_same_model(monkeypatch):
    # The M-step's path is chosen by the dimension; forcing either one must not change the fit.
    from moecore import gating

    data = simulate_design("overlapping-5d", 4000, random_state=4)
    fits = {}
    for max_p in (gating.PAIR_PRODUCTS_MAX_P, 0):  # 0: every p takes the BLAS path
        monkeypatch.setattr(gating, "PAIR_PRODUCTS_MAX_P", max_p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[max_p] = MixtureOfExperts(3, max_iter=60, random_state=0).fit(data.X, data.y)
    a, b = fits.values()
    np.testing.assert_allclose(b.loglik_history_, a.loglik_history_, rtol=1e-9)
    np.testing.assert_allclose(b.experts_, a.experts_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b.gates_, a.gates_, rtol=1e-6, atol=1e-6)


def test_squarem_needs_fewer_iterations_for_the_same_optimum():
    # overlapping-5d: weak gates and overlapping experts, where plain EM crawls.
    data = simulate_design("overlapping-5d", 20000, random_state=1)
    fits = {acc: MixtureOfExperts(3, random_state=0, acceleration=acc).fit(data.X, data.y)
            for acc in ("none", "squarem")}
    plain, fast = fits["none"], fits["squarem"]
    assert fast.converged_ and plain.converged_
    assert fast.n_iter_ < 0.8 * plain.n_iter_, (fast.n_iter_, plain.n_iter_)
    h = fast.loglik_history_
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    # Both stop at a relative change of 1e-6: the same optimum within a few times tol * |ll|.
    assert abs(fast.loglik_ - plain.loglik_) <= 5e-6 * abs(plain.loglik_)
    with pytest.raises(ValueError, match="acceleration"):
        MixtureOfExperts(3, acceleration="fast").fit(data.X, data.y)


def test_a_warm_start_from_a_fitted_model_ends_at_least_where_it_starts():
    # init= a fitted model's parameters began EM from their responsibilities, smoothed and refitted as a
    # partition is: on diamonds (log price ~ log carat + depth, K = 2) the refit began 922 nats below the model
    # and ended 58 below it (a peer audit). A warm start is EM's first point now, and EM does not go down.
    from benchmarks.bench_portfolio import load_diamonds

    X, y = load_diamonds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for K, seed in [(2, 0), (4, 2)]:
            fit = MixtureOfExperts(K, random_state=seed).fit(X, y)
            again = MixtureOfExperts(K, init=fit.params_).fit(X, y)
            assert again.loglik_history_[0] == pytest.approx(fit.loglik_, abs=1e-6 * abs(fit.loglik_))
            assert again.loglik_ >= fit.loglik_ - 1e-6 * abs(fit.loglik_), (K, seed)

