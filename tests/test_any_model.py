"""A simulator from any pm.Model (bayesid.simulate): agrees with a registered model's own simulator."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from bayesid import models
from bayesid.simulate import DesignValueError, ModelSimulator


def _stats(y, x):
    """Per-dataset mean, standard deviation and least-squares slope on x."""
    xc = x - x.mean()
    return np.column_stack([y.mean(1), y.std(1), (y * xc).sum(1) / (xc**2).sum()])


@pytest.mark.parametrize("sigma_scale, agree", [(1.0, True), (1.15, False)])
def test_pymc_forward_simulator_agrees_with_the_fast_simulator(sigma_scale, agree):
    """Both paths simulate toy.identified at the same N prior draws; the paired differences of three
    per-dataset statistics have mean zero, so |z| = |mean diff| / (sd diff / sqrt N) < 4 for each
    (Bonferroni over 3 statistics at ~1e-4). Negative control: the fast simulator with σ scaled by
    1.15 must be detected (the sd statistic then differs by 0.15·E σ ≈ 0.12 against a per-dataset
    noise of order σ/sqrt(2·100) ≈ 0.05, so z ≈ 0.12·sqrt(N)/0.07 ≫ 4)."""
    spec = models.get("toy.identified")
    n = 1000
    theta = spec.sample_prior(n, random_seed=0)
    model = spec.build(spec.simulate(random_seed=0))
    sim = ModelSimulator(model)
    y_pymc = sim.simulate(theta, random_seed=1)["y"]
    th2 = dict(theta, sigma=theta["sigma"] * sigma_scale)
    y_fast = spec.simulate(th2, random_seed=2)["y"]
    x = np.linspace(-1.0, 1.0, spec.design().settings["n_obs"])
    diff = _stats(y_pymc, x) - _stats(y_fast, x)
    z = diff.mean(0) / (diff.std(0, ddof=1) / np.sqrt(n))
    if agree:
        assert np.all(np.abs(z) < 4), z
    else:
        assert np.abs(z[1]) > 4, z


def test_prior_draws_in_unconstrained_coordinates_and_back():
    """Unconstrained draws equal bayesid.pymc_utils.to_unconstrained (the loop used by fit), the inverse
    recovers the constrained draws, and the prior moments match the algebra (HalfNormal(1): E σ = √(2/π))."""
    from bayesid.pymc_utils import to_unconstrained

    x = np.linspace(0.0, 1.0, 8)
    with pm.Model() as m:
        xd = pm.Data("x", x)
        a = pm.Normal("a", 0.0, 2.0)
        s = pm.HalfNormal("s", 1.0)
        u = pm.Uniform("u", -1.0, 3.0)
        z = pm.ZeroSumNormal("z", shape=3)
        pm.Normal("y", a + u * xd + z.sum(), s, observed=np.zeros(8), shape=xd.shape)
    sim = ModelSimulator(m)
    n = 4000
    s_ = sim.prior_predictive(n, random_seed=3)
    ref = to_unconstrained(m, {k: v[:20] for k, v in s_.theta.items()}, sample_ndim=1)
    for k, v in ref.items():
        np.testing.assert_allclose(s_.theta_unc[k][:20], v, atol=1e-10)
    back = sim.to_constrained(s_.theta_unc)
    for k, v in back.items():
        np.testing.assert_allclose(v, s_.theta[k], atol=1e-9)
    assert s_.unconstrained_names == ["a", "s_log__", "u_interval__", "z_zerosum__[0]", "z_zerosum__[1]"]
    es = np.sqrt(2 / np.pi)
    assert abs(s_.theta["s"].mean() - es) < 4 * np.sqrt(1 - 2 / np.pi) / np.sqrt(n)
    # the same seed gives the same simulations; a design changes the layout and is restored after
    again = sim.prior_predictive(n, random_seed=3)
    np.testing.assert_array_equal(again.data["y"], s_.data["y"])
    with sim.design({"x": np.linspace(0, 1, 3)}):
        assert sim.simulate(s_.theta, random_seed=0)["y"].shape == (n, 3)
    assert sim.simulate(s_.theta, random_seed=0)["y"].shape == (n, 8)


def test_bad_design_values_give_clear_errors():
    with pm.Model() as m:
        xd = pm.Data("x", np.arange(5.0))
        a = pm.Normal("a")
        pm.Normal("y", a * xd, 1.0, observed=np.zeros(5))  # observed shape fixed at 5
    sim = ModelSimulator(m)
    with pytest.raises(DesignValueError, match="not pm.Data containers"):
        with sim.design({"n_visits": 3}):
            pass
    th = sim.sample_prior(4, random_seed=0)
    with pytest.raises(DesignValueError, match="shape=x.shape"):
        with sim.design({"x": np.arange(3.0)}):
            sim.simulate(th, random_seed=0)
    assert sim.simulate(th, random_seed=0)["y"].shape == (4, 5)


@pytest.mark.slow
@pytest.mark.neural
def test_point_estimator_on_a_plain_pymc_model():
    """PointEstimator.fit(pm.Model): y ~ N(a + b, 0.5), 10 obs, a, b ~ N(0, 1), s ~ HalfNormal (not in
    the likelihood). Known answer: Var(a | y) = (Var(a+b | y) + Var(a−b))/4 = (1/40.5 + 2)/4 = 0.506, so
    no estimator can have an error/prior variance ratio below 0.506 on a (nor below 1 on s); held-out
    1000 datasets give a ratio sd ≈ 0.506·√(2/1000) = 0.023. The trained network must come within
    0.2 of the optimum on a and b (training adequacy) and stay at the prior (> 0.85) on log s."""
    from bayesid.neural import PointEstimator
    from bayesid.neural.simulation import simulate_training_set

    x = np.linspace(-1, 1, 10)
    with pm.Model() as m:
        xd = pm.Data("x", x)
        a = pm.Normal("a", 0, 1)
        b = pm.Normal("b", 0, 1)
        pm.HalfNormal("s", 1)
        pm.Normal("y", a + b + 0 * xd, 0.5, observed=np.zeros(10), shape=xd.shape)
    est = PointEstimator(epochs=10, random_seed=0).fit(m, n_simulations=4000)
    assert est.unconstrained_names == ["a", "b", "s_log__"]
    te = simulate_training_set(m, 1000, random_seed=5)
    ratio = ((est.predict_unconstrained(te) - te.theta_unc) ** 2).mean(0) / te.theta_unc.var(0)
    se = 0.506 * np.sqrt(2 / 1000)
    assert np.all(ratio[:2] > 0.506 - 4 * se) and np.all(ratio[:2] < 0.506 + 0.2), ratio
    assert ratio[2] > 0.85, ratio
    assert est.predict(te)["s"].shape == (1000,)


@pytest.mark.slow
@pytest.mark.neural
def test_compare_on_a_plain_pymc_model_against_its_mcmc_diagnosis():
    """bayesid.compare(diagnosis, estimator, model=m) on y ~ N(a + b, 0.5), 10 obs, a, b ~ N(0, 1).
    Known answer: a − b is independent of y, so along the ridge the posterior mean is the prior mean and
    no estimator has an error/prior variance ratio below 1 (500 held-out datasets: se √(2/500) = 0.063,
    bound 1 − 4·0.063); along a + b the optimum is Var(a+b | y)/Var(a+b) = (1/(1/2 + 40))/2 = 0.012,
    so a trained network must be "recovered" there (ratio ≤ 1 − identified = 0.5) while its a and b stay
    at or above the per-parameter optimum 0.506 − 4·0.506·√(2/500). One held-out dataset is refitted by
    NUTS through bayesid.fit on pm.observe(model, data).

    Along a + b the ratio is also held to the optimum itself: mean(err²)/var(truth) over 500 datasets has
    relative sd √(2/500 + 2/500) = 0.089 for the optimal estimator, so it lies in 0.0123·(1 ± 4·0.089).
    Training-seed spread (BAYESID_SEED_OFFSET 0-3, each a new training, test set and fit): 0.0119,
    0.0119, 0.0134, 0.0114 (mean 0.0121, sd 0.0008) — the 10-epoch network's gap to the optimum is below
    the test-set noise, so the band holds for any seed; an untrained network (ratio ≈ 1) and the ridge
    (1.001-1.017 on the same seeds, must stay > 1 − 4·√(2/500)) fall outside it."""
    import torch

    import bayesid
    from bayesid.neural import PointEstimator

    torch.set_num_threads(1)
    with pm.Model() as m:
        a = pm.Normal("a", 0.0, 1.0)
        b = pm.Normal("b", 0.0, 1.0)
        pm.Normal("y", a + b, 0.5, observed=np.random.default_rng(0).normal(0.1, 0.5, 10))
    tree = bayesid.fit(m, draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
    diag = bayesid.diagnose(tree, model=m)
    est = PointEstimator(epochs=10, random_seed=0).fit(m, n_simulations=4000)
    cmp = bayesid.compare(diag, est, model=m, n_test=500, n_mcmc=1, n_boot=200, random_seed=2,
                          mcmc_kwargs={"draws": 200, "tune": 200, "chains": 1})
    d = cmp.directions
    se = np.sqrt(2 / 500)
    ridge = d[d["mcmc_verdict"] == "not identified"]
    ident = d[d["mcmc_verdict"] == "identified"]
    assert len(ridge) == 1 and len(ident) == 1, d
    assert ridge["error_ratio"].iloc[0] > 1 - 4 * se and ridge["neural_verdict"].iloc[0] == "regresses to the prior"
    assert ident["neural_verdict"].iloc[0] == "recovered"
    optimum = (1 / (1 / 2 + 40)) / 2
    rel = np.sqrt(2 / 500 + 2 / 500)
    assert optimum * (1 - 4 * rel) < ident["error_ratio"].iloc[0] < optimum * (1 + 4 * rel), d
    assert np.all(cmp.parameters.loc[["a", "b"], "error_ratio"] > 0.506 * (1 - 4 * se))
    assert len(cmp.held_out) == 1 and np.isfinite(cmp.held_out["mcmc_seconds"].iloc[0])
    with pytest.raises(bayesid.errors.BadInputError, match="no known answer"):
        bayesid.compare(None, est, model=m)


def test_vectorised_prior_of_a_sized_variable_with_a_batched_scale():
    """pm.Normal("b", 0, tau, shape=8) — a size and a parameter (tau) that is itself random — is drawn in
    one vectorised call (PyTensor's own rule looked only at the first parameter and raised, so fit fell
    back to one call per draw). Known answers: the draws equal those of the unsized
    pm.Normal("b", zeros(8), tau) with the same seed, and b depends on its own draw's tau:
    E[b_i²·tau²] = E[tau⁴] = 3 for tau ~ HalfNormal(1), 4 SE from the draws. Negative control: tau from
    other draws (shuffled) gives E[b_i²]·E[tau²] = 1."""
    from bayesid.vectorize import sample_prior

    def model(sized):
        with pm.Model(coords={"g": np.arange(8)}) as m:
            tau = pm.HalfNormal("tau", 1.0)
            if sized:
                pm.Normal("b", 0.0, tau, dims="g")
            else:
                pm.Normal("b", np.zeros(8), tau)
        return m

    n = 20_000
    t = sample_prior(model(True), n, random_seed=0)["prior"]
    ref = sample_prior(model(False), n, random_seed=0)["prior"]
    np.testing.assert_array_equal(t["b"].values, ref["b"].values)
    b, tau = t["b"].values[0], t["tau"].values[0]
    assert b.shape == (n, 8)
    prod = (b**2).mean(axis=1) * tau**2
    se = prod.std(ddof=1) / np.sqrt(n)
    assert abs(prod.mean() - 3.0) < 4 * se, (prod.mean(), se)
    shuffled = (b**2).mean(axis=1) * np.random.default_rng(1).permutation(tau) ** 2
    assert shuffled.mean() < 3.0 - 8 * se
