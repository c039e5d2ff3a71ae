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


def _three_likelihoods():
    """Binomial, Normal and Poisson likelihoods in one model (p1, p2 on (0, 1), s > 0)."""
    with pm.Model() as m:
        p1 = pm.Uniform("p1", 0, 1)
        p2 = pm.Uniform("p2", 0, 1)
        s = pm.HalfNormal("s", 1)
        pm.Binomial("y", n=100, p=p1 * p2, observed=30)
        pm.Normal("z", p1, s, observed=np.zeros(6))
        pm.Poisson("c", 3 * p2, observed=[1, 2])
    return m


@pytest.mark.slow
def test_exact_gauss_newton_matches_replicate_scores():
    """The closed form equals the Monte Carlo score estimator (tolerance: 5 MC standard errors)."""
    m = _three_likelihoods()
    pt = np.array([[0.3, -0.2, 0.1]])
    a = fisher_at_draws(m, pt)
    k = 4000
    b = fisher_at_draws(m, pt, method="replicates", n_replicates=k, random_seed=0)
    assert a.methods["y"] == a.methods["z"] == a.methods["c"] == "exact"
    # Var of an outer-product entry ≈ F_ii F_jj + F_ij²  (Gaussian scores)
    f = a.fisher[0]
    se = np.sqrt((np.outer(np.diag(f), np.diag(f)) + f**2) / k)
    assert np.all(np.abs(b.fisher[0] - f) < 5 * se)


# ---------------------------------------------------------------- fast path = reference path (issue 14)
def _noncentred(G=40, n=3, seed=0):
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfNormal("tau", 2.5)
        b = pm.Normal("b", 0, 1)
        sigma = pm.HalfNormal("sigma", 2.5)
        z = pm.Normal("z", 0, 1, shape=G)
        pm.Normal("y", mu + tau * z[idx] + b * x, sigma, observed=rng.normal(size=G * n))
    return m


@pytest.mark.parametrize("build", [centred, _noncentred, lambda: _noncentred(G=120)],
                         ids=["centred-latent", "noncentred", "noncentred-d124-sparse-whitening"])
def test_sparse_jacobian_equals_dense_reference(build):
    """The compressed Jacobian gives the dense path's matrix up to rounding (a few ulps of max |F|),
    hence the same whitened eigen-decomposition, null dimensions and null weights (d ≥ 100 also takes
    the sparse whitening product)."""
    m = build()
    pts = prior_points(m, 300, random_seed=3)
    white = whitening(pts)
    fast = fisher_at_draws(m, pts[:6], white, jacobian="sparse")
    ref = fisher_at_draws(m, pts[:6], white, jacobian="dense")
    assert fast.jacobian.startswith("sparse") and ref.jacobian == "dense"
    assert int(fast.jacobian.split("(")[1].split()[0]) <= 5  # a handful of forward products, not d
    scale = np.abs(ref.fisher).max(axis=(1, 2))[:, None, None]
    assert np.all(np.abs(fast.fisher - ref.fisher) <= 1e-12 * scale)
    assert np.array_equal(fast.local_null_dim, ref.local_null_dim)
    L = white.chol  # null weights against their definition Σ_null (l_i·v_k)² / ‖l_i‖², all columns at once
    proj = (L[None] @ ref.local_vectors) ** 2 / np.sum(L**2, axis=1)[None, :, None]
    nw = np.einsum("sik,sk->si", proj, (ref.local_eigenvalues < ref.lambda_tol).astype(float))
    assert np.allclose(ref.null_weight, nw, atol=1e-10) and np.allclose(fast.null_weight, nw, atol=1e-8)
    assert np.allclose(fast.eigenvalues, ref.eigenvalues, rtol=1e-9, atol=1e-9 * ref.eigenvalues.max())


def test_sparse_jacobian_pattern_check_falls_back_to_the_full_jacobian():
    """A branch the two pattern draws did not take (switch on a > 0): the per-draw random-direction
    check catches the missing entries and those draws use the full Jacobian — same matrix as dense.
    Negative control: with only a > 0 draws there is no fallback."""
    with pm.Model() as m:
        a = pm.Normal("a")
        b = pm.Normal("b", shape=14)
        c = pm.Normal("c")
        pm.Normal("y", pm.math.switch(a > 0, b, c + 0 * b), 1.0, observed=np.zeros(14))
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(6, 16))
    pts[:, 0] = [1.0, 2.0, 0.5, -1.0, -0.3, 1.5]  # pattern from the first two (a > 0): b only
    fast = fisher_at_draws(m, pts, jacobian="sparse")
    ref = fisher_at_draws(m, pts, jacobian="dense")
    assert "full Jacobian at 2 draw(s)" in fast.jacobian
    assert np.allclose(fast.fisher, ref.fisher, rtol=0, atol=1e-12)
    assert ref.fisher[3, 15, 15] == pytest.approx(14.0)  # a < 0: c carries all 14 observations
    control = fisher_at_draws(m, pts[[0, 1, 2, 5]], jacobian="sparse")
    assert "full Jacobian" not in control.jacobian


def test_sparse_jacobian_mixed_likelihoods_equal_dense():
    """Binomial, Normal and Poisson closed forms in one model: the same matrix either way."""
    m = _three_likelihoods()
    pts = np.array([[0.3, -0.2, 0.1], [-1.0, 0.4, -0.5], [2.0, 1.0, 0.0]])
    fast = fisher_at_draws(m, pts, jacobian="sparse")
    ref = fisher_at_draws(m, pts, jacobian="dense")
    assert np.allclose(fast.fisher, ref.fisher, rtol=1e-12, atol=0)
