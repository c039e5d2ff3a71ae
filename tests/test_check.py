"""bayesid.check: structural verdicts before sampling (known answers with negative controls).

The ridges are found, straightened and named by the diagnosis' own ``diagnostics.ridges.local_ridges``
on the prior draws; a name's contraction is the local linear-Gaussian prediction
(``ridges.predicted_ratio``). Algebra used below, for y ~ Binomial(n, q), q = p1·p2 with logit (or
interval (0, 1)) coordinates θ_i: ∇_θ q = q·(1 − p1, 1 − p2) and the information on q is n/(q(1 − q)),
so the whitened information at a draw is rank one, W = I_q·u uᵀ with u = Lᵀ∇q, and the gradient of
log q, h = u/q, is its eigenvector: the predicted ratio of log p1 + log p2 at that draw is
1/(1 + I_q·∇qᵀΣ∇q), Σ = L Lᵀ the prior covariance of θ.
"""

import numpy as np
import pymc as pm
import pytest

import bayesid


def product_model(control: bool, prior=pm.Beta):
    with pm.Model() as m:
        # uniform priors, as Beta(1, 1) (logodds transform) or Uniform(0, 1) (interval transform)
        p1 = prior("p1", 1, 1) if prior is pm.Beta else prior("p1", 0, 1)
        p2 = prior("p2", 1, 1) if prior is pm.Beta else prior("p2", 0, 1)
        pm.Binomial("y", n=200, p=p1 * p2, observed=40)
        if control:  # a second data source that identifies p1
            pm.Binomial("z", n=200, p=p1, observed=100)
    return m


@pytest.mark.parametrize("prior", [pm.Beta, pm.Uniform])
def test_binomial_product_only_p1p2(prior):
    # the invariant is named in log coordinates for both transforms (interval on (0, 1) is logodds)
    r = bayesid.check(product_model(False, prior), n_draws=48, n_whitening=400, random_seed=1)
    # algebra: the likelihood depends on p1·p2 only, so at every draw one direction is uninformed and
    # both parameters load on it (shares (1-p_i)²-weighted, never 0 or 1 in the interior)
    assert (r.fisher.local_null_dim == 1).all()
    assert r.verdicts == {"p1": "identified only in combination", "p2": "identified only in combination"}
    assert [c.name for c in r.combinations] == ["p1·p2"]
    (lr,) = r.local_ridges
    assert lr.coordinates == {"p1": "log", "p2": "log"} and lr.straight
    assert "p1·p2" in r.summary() and "<table" in r._repr_html_()
    # the predicted ratio of log p1 + log p2 is the algebra's (module docstring) at the same draws
    th = r.fisher.points
    p = 1.0 / (1.0 + np.exp(-th))
    q = p[:, 0] * p[:, 1]
    grad_q = q[:, None] * (1.0 - p)
    info = 200 / (q * (1 - q)) * np.einsum("si,ij,sj->s", grad_q, r.whitening.cov, grad_q)
    (c,) = r.combinations
    np.testing.assert_allclose(c.ratio, np.mean(1.0 / (1.0 + info)), rtol=1e-6)
    np.testing.assert_allclose(c.ratio_se, np.std(1.0 / (1.0 + info), ddof=1) / np.sqrt(len(q)), rtol=1e-6)


def test_predicted_ratio_is_one_along_the_ridge():
    """Negative control for the predicted contraction: a function whose gradient at every draw lies in
    the uninformed direction (whitened h = the null eigenvector) keeps its prior variance: ratio 1/(1 + λ₀)
    with λ₀ = 0 for an exactly rank-one information (so p1/p2 could never be named as identified)."""
    from bayesid.diagnostics.ridges import predicted_ratio

    r = bayesid.check(product_model(False), n_draws=32, n_whitening=400, random_seed=3)
    W, L = r.fisher.whitened, r.whitening.chol
    null = np.linalg.eigh(W)[1][:, :, 0]  # (S, d): smallest-eigenvalue vector per draw
    grad = np.linalg.solve(L.T, null.T).T  # h = ∇g·L = the null vector
    ratio, se = predicted_ratio(W, L, grad)
    assert ratio > 1 - 1e-8 and se < 1e-8
    informed = np.linalg.solve(L.T, np.linalg.eigh(W)[1][:, :, -1].T).T
    assert predicted_ratio(W, L, informed)[0] < 0.5  # and the informed direction contracts


@pytest.mark.parametrize("prior", [pm.Beta, pm.Uniform])
def test_binomial_product_control_second_source(prior):
    r = bayesid.check(product_model(True, prior), n_draws=48, n_whitening=400, random_seed=1)
    assert (r.fisher.local_null_dim == 0).mean() > 0.9
    assert r.verdicts == {"p1": "identified", "p2": "identified"}
    assert r.combinations == [] and r.local_ridges == []


def _scale_model(control: bool):
    """y ~ N(0, s1·s2) with s1, s2 ~ Uniform(0, 3) (interval transform with bounds (0, 3))."""
    rng = np.random.default_rng(0)
    with pm.Model() as m:
        s1 = pm.Uniform("s1", 0, 3)
        s2 = pm.Uniform("s2", 0, 3)
        pm.Normal("y", 0.0, s1 * s2, observed=rng.normal(0, 2, 50))
        if control:  # a second source on s1 alone
            pm.Normal("z", 0.0, s1, observed=rng.normal(0, 1.5, 50))
    return m


def test_uniform_scale_ridge_named_in_log_coordinates():
    """Known answer: the likelihood depends on s1·s2 only, a straight line in (log s1, log s2); the bounds
    (0, 3) come from the model's interval transform. Control: a second source on s1 identifies both."""
    r = bayesid.check(_scale_model(False), n_draws=32, n_whitening=400, random_seed=1)
    assert r.verdicts == {"s1": "identified only in combination", "s2": "identified only in combination"}
    (lr,) = r.local_ridges
    assert lr.coordinates == {"s1": "log", "s2": "log"} and lr.straight
    assert [c.name for c in r.combinations] == ["s1·s2"]
    assert r.combinations[0].contraction - 2 * r.combinations[0].contraction_se > 0.5
    ctl = bayesid.check(_scale_model(True), n_draws=32, n_whitening=400, random_seed=1)
    assert ctl.verdicts == {"s1": "identified", "s2": "identified"} and ctl.local_ridges == []


def _two_ridges(control: bool):
    """N(a·b, 0.1) and N(c − d, 0.1): two independent ridges (a, b > 0 HalfNormal; c, d Normal)."""
    with pm.Model() as m:
        a, b = pm.HalfNormal("a", 1.0), pm.HalfNormal("b", 1.0)
        c, d = pm.Normal("c", 0.0, 1.0), pm.Normal("d", 0.0, 1.0)
        pm.Normal("y", a * b, 0.1, observed=np.full(20, 0.5))
        pm.Normal("w", c - d, 0.1, observed=np.zeros(20))
        if control:
            pm.Normal("y2", a, 0.1, observed=np.full(20, 0.7))
            pm.Normal("w2", c, 0.1, observed=np.zeros(20))
    return m


def test_two_independent_ridges_are_named_separately():
    """Known answer: a·b and c − d are the invariants, in log coordinates for a, b and natural ones for
    c, d; the ridges are split before naming, so no name mixes the two. Control: both identified."""
    r = bayesid.check(_two_ridges(False), n_draws=48, n_whitening=400, random_seed=1)
    assert set(r.verdicts.values()) == {"identified only in combination"}
    assert sorted(c.name for c in r.combinations) == ["a·b", "c - d"]
    coords = {p: c for lr in r.local_ridges for p, c in lr.coordinates.items()}
    assert coords == {"a": "log", "b": "log", "c": "natural", "d": "natural"}
    ctl = bayesid.check(_two_ridges(True), n_draws=48, n_whitening=400, random_seed=1)
    assert set(ctl.verdicts.values()) == {"identified"} and ctl.combinations == []


def _truncated_product(control: bool):
    """N(t1·t2, 0.1) with t ~ TruncatedNormal(1, 1, lower=0): an interval transform open above,
    t = exp(θ)."""
    with pm.Model() as m:
        t1 = pm.TruncatedNormal("t1", 1.0, 1.0, lower=0.0)
        t2 = pm.TruncatedNormal("t2", 1.0, 1.0, lower=0.0)
        pm.Normal("y", t1 * t2, 0.1, observed=np.full(20, 1.0))
        if control:
            pm.Normal("z", t1, 0.1, observed=np.full(20, 1.0))
    return m


def test_half_bounded_interval_ridge_named_in_log_coordinates():
    """The bounds (0, ∞) are read from the transform, so t1, t2 are straightened in log t (the sampler's
    own coordinate here) and t1·t2 is named; a least-squares fit of a two-sided logistic map to these
    draws would invent a finite upper bound. Control: a second source on t1 identifies both."""
    from bayesid.pymc_utils import interval_bounds

    m = _truncated_product(False)
    assert {k: (float(lo[0]), float(hi[0])) for k, (lo, hi) in interval_bounds(m).items()} == \
        {"t1": (0.0, np.inf), "t2": (0.0, np.inf)}
    r = bayesid.check(m, n_draws=32, n_whitening=400, random_seed=1)
    assert r.verdicts == {"t1": "identified only in combination", "t2": "identified only in combination"}
    (lr,) = r.local_ridges
    assert lr.coordinates == {"t1": "log", "t2": "log"} and lr.straight
    assert [c.name for c in r.combinations] == ["t1·t2"]
    ctl = bayesid.check(_truncated_product(True), n_draws=32, n_whitening=400, random_seed=1)
    assert ctl.verdicts == {"t1": "identified", "t2": "identified"} and ctl.local_ridges == []


def test_interval_bounds_that_are_parameters_are_not_constants():
    """Uniform(0, s) with s a parameter has no constant bounds (left out); constant ones are read per
    component, open sides as ±inf."""
    from bayesid.pymc_utils import interval_bounds

    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0)
        pm.Uniform("x", 0.0, s)
        pm.Uniform("u", np.array([-1.0, 0.0]), 3.0)
        pm.TruncatedNormal("t", 0.0, 1.0, upper=0.5)
    b = interval_bounds(m)
    assert set(b) == {"u", "t"}
    np.testing.assert_array_equal(b["u"][0], [-1.0, 0.0])
    np.testing.assert_array_equal(b["u"][1], [3.0, 3.0])
    assert b["t"][0][0] == -np.inf and b["t"][1][0] == 0.5


def test_check_result_renders_through_the_presentation_layer():
    r = bayesid.check(product_model(False), n_draws=16, n_whitening=200, random_seed=2)
    html = r._repr_html_()
    assert "<table" in html and "p1" in html and "Structural check" in html
