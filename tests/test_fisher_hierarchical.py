"""Fisher information through a latent level (issue 14): known answers from the Normal–Normal algebra."""

import numpy as np
import pymc as pm
import pytest

from bayesid.diagnostics.preposterior import fisher_at_draws, prior_points
from bayesid.diagnostics.ridges import whitening

G, N, SIGMA, MU, TAU = 60, 5, 1.0, 0.5, 0.8


def centred(sigma_y=SIGMA, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(MU, TAU, G)[:, None] + rng.normal(0, sigma_y, (G, N))
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfNormal("tau", 5)
        th = pm.Normal("th", mu, tau, shape=G)
        pm.Normal("y", th[:, None], sigma_y, observed=y)
    return m


def truth_point(theta_seed=1):
    th = np.random.default_rng(theta_seed).normal(MU, TAU, G)
    return np.concatenate([[MU, np.log(TAU)], th])[None]  # value_vars order: mu, tau_log__, th


@pytest.fixture(scope="module")
def model():
    return centred()


def test_hyperparameter_information_matches_normal_normal_algebra(model):
    r = fisher_at_draws(model, truth_point())
    assert r.methods == {"y": "exact", "latent": ["th"]}
    v = TAU**2 + SIGMA**2 / N  # marginal variance of a group mean
    # mu: the marginal Fisher information of G group means ~ Normal(mu, tau² + sigma²/N)
    assert r.fisher[0, 0, 0] == pytest.approx(G / v, rel=1e-10)
    # log tau: 2 Σ r_j² with reliability r = tau² / v
    assert r.fisher[0, 1, 1] == pytest.approx(2 * G * (TAU**2 / v) ** 2, rel=1e-10)
    # the groups: N / sigma² each (the likelihood), exactly
    assert np.allclose(np.diag(r.fisher[0])[2:], N / SIGMA**2)


def test_centred_hierarchy_has_no_uninformed_direction_but_likelihood_alone_does(model):
    pts = prior_points(model, 400, random_seed=2)
    white = whitening(pts)
    with_latent = fisher_at_draws(model, truth_point(), white)
    lik_only = fisher_at_draws(model, truth_point(), white, latent=False)
    assert with_latent.local_null_dim[0] == 0  # mu and tau informed through the groups
    assert lik_only.local_null_dim[0] == 2  # negative control: the old likelihood-only score
    assert lik_only.fisher[0, 0, 0] == 0.0


def test_no_group_data_no_hyperparameter_information():
    """Negative control: when the data barely inform the groups, nothing flows to mu (r -> 0)."""
    m = centred(sigma_y=1e3)
    r = fisher_at_draws(m, truth_point())
    v = TAU**2 + 1e6 / N
    assert r.fisher[0, 0, 0] == pytest.approx(G / v, rel=1e-6)  # float cancellation in A/(A + 1/s²)
    assert r.fisher[0, 0, 0] < 1e-3


@pytest.mark.slow
def test_exact_gauss_newton_matches_replicate_scores():
    """The closed form equals the Monte Carlo score estimator (tolerance: 5 MC standard errors)."""
    with pm.Model() as m:
        p1 = pm.Uniform("p1", 0, 1)
        p2 = pm.Uniform("p2", 0, 1)
        s = pm.HalfNormal("s", 1)
        pm.Binomial("y", n=100, p=p1 * p2, observed=30)
        pm.Normal("z", p1, s, observed=np.zeros(6))
        pm.Poisson("c", 3 * p2, observed=[1, 2])
    pt = np.array([[0.3, -0.2, 0.1]])
    a = fisher_at_draws(m, pt)
    k = 4000
    b = fisher_at_draws(m, pt, method="replicates", n_replicates=k, random_seed=0)
    assert a.methods["y"] == a.methods["z"] == a.methods["c"] == "exact"
    # Var of an outer-product entry ≈ F_ii F_jj + F_ij²  (Gaussian scores)
    f = a.fisher[0]
    se = np.sqrt((np.outer(np.diag(f), np.diag(f)) + f**2) / k)
    assert np.all(np.abs(b.fisher[0] - f) < 5 * se)
