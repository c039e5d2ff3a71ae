"""mixed.regression / mixed.noncentred: simulator vs PyMC, the exact posterior and its known answer,
and the cluster-aware networks of bayesid.neural.mixed; the example notebook at tiny size.

Tolerances
----------
* Simulator vs PyMC prior predictive: two-sample z of summary statistics over 2000 draws per side,
  accepted below 4.5 (≤ 12 comparisons: family-wise false alarm < 1e-4), with a negative control.
* Exact posterior algebra: the closed forms are exact, checked to 1e-8 relative (round-off of p×p solves).
* Quadrature: the refined grid's error is checked by doubling it (difference < 1e-3 of the variance).
* MCMC vs exact: 4 MCSE, the MCSE of a mean sd/√ESS and of a variance ratio ratio·√(2/ESS).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from _notebooks import run_notebook
from scipy import stats

from bayesid import models
from bayesid.models.mixed import MixedRegression, _grid_pass, design_matrix

N_PP = 2000
Z_MAX = 4.5
NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "mixed_effects.ipynb"


def _summaries(y):
    """(n, J, obs) → cluster-mean spread, overall mean, within-cluster slope and log residual sd."""
    y = np.asarray(y, float)
    x = np.linspace(-1, 1, y.shape[-1])
    cm = y.mean(-1)
    slope = (y * x).sum(-1) / (x**2).sum()
    resid = y - cm[..., None] - slope[..., None] * x
    t = np.stack([cm.mean(-1), np.log(cm.var(-1)), slope.mean(-1), np.log(slope.var(-1)),
                  np.log(resid.var((-1, -2))), (cm * np.linspace(-1, 1, y.shape[1])).sum(-1)], axis=-1)
    return t


def _max_z(a, b):
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    return float(np.max(np.abs(a.mean(0) - b.mean(0)) / se))


def _agreement(spec, design, simulate=None, seed=0):
    model = spec.build(spec.simulate(design=design, random_seed=seed), design=design)
    y_pm = pm.draw(model["y"], draws=N_PP, random_seed=seed)
    th = spec.sample_prior(N_PP, random_seed=seed + 1)
    y_sim = (simulate or spec.simulate)(th, design=design, random_seed=seed + 2)["y"]
    return _max_z(_summaries(y_pm), _summaries(y_sim))


@pytest.mark.parametrize("name, design", [
    ("mixed.regression", "between"), ("mixed.noncentred", "within"),
    pytest.param("mixed.regression", "within", marks=pytest.mark.slow),
    pytest.param("mixed.noncentred", "between", marks=pytest.mark.slow)])
def test_simulator_agrees_with_pymc(name, design):
    assert _agreement(models.get(name), design) < Z_MAX


def test_agreement_detects_a_wrong_random_intercept_scale():
    """Negative control: a simulator with the random intercepts doubled must fail the check."""
    spec = models.get("mixed.regression")

    def wrong(theta, design, random_seed):
        return spec.simulate({**theta, "b": 2 * theta["b"]}, design=design, random_seed=random_seed)

    assert _agreement(spec, "between", simulate=wrong) > Z_MAX


def test_centred_and_noncentred_forms_are_one_model():
    c, nc = models.get("mixed.regression"), models.get("mixed.noncentred")
    a = c.simulate(design="between", random_seed=3)["y"]
    b = nc.simulate(design="between", random_seed=3)["y"]
    np.testing.assert_allclose(a, b, rtol=1e-12)
    mc, mn = c.build({"y": a}), nc.build({"y": a})
    assert {v.name for v in mc.free_RVs} >= {"b", "u"} and "b" in {v.name for v in mn.deterministics}
    with pytest.raises(ValueError, match="change the prior of the scale"):
        c.priors({"b": models.Prior("normal", {"mu": 0.0, "sigma": 2.0})})


def test_marginal_likelihood_and_conditional_posterior_are_exact():
    """At fixed scales the quadrature node equals dense Gaussian algebra (N × N covariance)."""
    spec = MixedRegression(n_clusters=3, n_per=4)
    d = spec.design("within")
    y = spec.simulate(design=d, random_seed=1)["y"].ravel()
    x, w = (a.ravel() for a in spec.covariates(d))
    cl = np.repeat(np.arange(3), 4)
    Phi = design_matrix(x, w, cl, 3)
    sigma, tau, tau_u = d["sigma"], 0.8, 0.4
    s_fixed = np.array([1.0, 1.0, 1.0])
    S = np.diag(np.r_[s_fixed**2, np.full(3, tau**2), np.full(3, tau_u**2)])
    C = sigma**2 * np.eye(y.size) + Phi @ S @ Phi.T
    T, TU, logw, means, covs = _grid_pass(Phi.T @ Phi / sigma**2, Phi.T @ y / sigma**2, float(y @ y),
                                          np.zeros(Phi.shape[1]), s_fixed, 3, sigma, y.size,
                                          np.log([tau]), np.log([tau_u]))
    np.testing.assert_allclose(logw[0], stats.multivariate_normal(np.zeros(y.size), C).logpdf(y), rtol=1e-10)
    K = S @ Phi.T @ np.linalg.inv(C)
    np.testing.assert_allclose(means[0], K @ y, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(covs[0], S - K @ Phi @ S, rtol=1e-8, atol=1e-12)


def _between_setup():
    """mixed.regression's confounded 'between' design: (spec, design, design matrix Φ, J, n, σ)."""
    spec = models.get("mixed.regression")
    d = spec.design("between")
    x, w = spec.covariates(d)
    J, n = spec.n_clusters, spec.n_per
    return spec, d, design_matrix(x, w, np.repeat(np.arange(J), n), J), J, n, d["sigma"]


def test_closed_form_alpha_gamma_covariance_matches_the_full_posterior():
    """Derivation check: Cov(α, γ | τ) = [diag(1/s²) + WᵀW/(τ² + σ²/n)]⁻¹ for the cluster-level covariate."""
    spec, d, Phi, J, n, s = _between_setup()
    for tau in (0.3, 1.0, 2.0):
        _, _, _, _, covs = _grid_pass(Phi.T @ Phi / s**2, np.zeros(Phi.shape[1]), 0.0, np.zeros(Phi.shape[1]),
                                      np.ones(3), J, s, J * n, np.log([tau]), np.log([0.3]))
        np.testing.assert_allclose(covs[0][np.ix_([0, 2], [0, 2])], spec.conditional_cov_alpha_gamma(tau, d),
                                   rtol=1e-8, atol=1e-12)


def test_quadrature_is_converged():
    spec = models.get("mixed.regression")
    data = spec.simulate(design="between", random_seed=2)
    a, b = spec.exact_posterior(data, "between", n_grid=40), spec.exact_posterior(data, "between", n_grid=80)
    for k in ("alpha", "gamma", "b[0]"):
        assert abs(a.var(k) - b.var(k)) < 1e-3 * b.var(k)
        assert abs(a.mean[a.index(k)] - b.mean[b.index(k)]) < 1e-3 * np.sqrt(b.var(k))


def _gamma_answer(design, seed=0):
    spec = models.get("mixed.regression")
    ep = spec.exact_posterior(spec.simulate(design=design, random_seed=seed), design)
    wj = spec.cluster_covariate()
    bw = {f"b[{j}]": wj[j] / np.sum(wj**2) for j in range(spec.n_clusters)}
    _, var_sum = ep.combination({"gamma": 1.0, **bw})
    _, var_bw = ep.combination(bw)
    corr = (var_sum - ep.var("gamma") - var_bw) / (2 * np.sqrt(ep.var("gamma") * var_bw))
    return spec, ep, 1.0 - ep.var("gamma"), corr, var_sum


def test_known_answer_confounded_cluster_covariate():
    """Design 'between': γ is weakly identified, trades off against the w-weighted mean of b (correlation
    near −1), and γ + b_w is pinned to ≈ σ²/(n Σ w²). Every claim is an exact inequality of the quadrature
    (no tolerance beyond round-off):

    * law of total variance over the scale nodes: Var(γ | y) ≥ E[Var(γ | τ) | y], so the contraction of γ
      is at most 1 − E[Var(γ | τ) | y], with Var(γ | τ) the closed form (checked equal to every node's
      conditional covariance). That bound is below 1/2 here — the data put τ where Var(γ | τ) > 1/2,
      i.e. above τ₀ = 0.73 — so γ is not identified (contraction < 0.5) whatever the Monte Carlo;
    * Var(γ + b_w | τ) = (σ²/(n Σw²)) / (1 + σ²/(n λ_w)), λ_w = s_γ² Σw² + τ² (w is an eigenvector of the
      prior covariance of the cluster means, Σ w_j = 0), hence in [σ²/(nΣw²)/(1 + σ²/(n s_γ² Σw²)),
      σ²/(nΣw²)] at every τ; the posterior variance adds the spread of the conditional means (≥ 0);
    * correlation: ρ ≤ −1 + V(γ+b_w) / (2 sd(γ) (sd(γ) − sd(γ + b_w))) (AM–GM and the triangle
      inequality of sds), and that bound is below −0.9."""
    spec, ep, c_gamma, corr, var_sum = _gamma_answer("between")
    d = spec.design("between")
    wj = spec.cluster_covariate()
    g = ep.grid
    tau = np.exp(g["log_tau"])
    v_gamma = np.array([spec.conditional_cov_alpha_gamma(t, d)[1, 1] for t in tau])
    np.testing.assert_allclose(v_gamma, g["covs"][:, 2, 2], rtol=1e-10)
    bound = 1.0 - g["weight"] @ v_gamma
    assert c_gamma <= bound + 1e-12 and bound < 0.5, (c_gamma, bound)
    expect = d["sigma"] ** 2 / (spec.n_per * np.sum(wj**2))
    s_g = spec.priors()["gamma"].params["sigma"]
    lam_w = s_g**2 * np.sum(wj**2) + tau**2
    v_sum = expect / (1.0 + d["sigma"] ** 2 / (spec.n_per * lam_w))
    c = np.zeros(len(ep.names))
    c[ep.index("gamma")] = 1.0
    c[[ep.index(f"b[{j}]") for j in range(spec.n_clusters)]] = wj / np.sum(wj**2)
    np.testing.assert_allclose(v_sum, np.einsum("i,gij,j->g", c, g["covs"], c), rtol=1e-8)
    assert expect / (1.0 + d["sigma"] ** 2 / (spec.n_per * s_g**2 * np.sum(wj**2))) <= g["weight"] @ v_sum <= expect
    assert var_sum >= g["weight"] @ v_sum - 1e-12
    sd_g, sd_s = np.sqrt(ep.var("gamma")), np.sqrt(var_sum)
    rho_max = -1.0 + var_sum / (2 * sd_g * (sd_g - sd_s))
    assert corr <= rho_max + 1e-12 and rho_max < -0.9, (corr, rho_max)
    assert spec.known_answer("between").ridges and "gamma" in spec.known_answer("between").weakly_identified


def test_closed_form_beta_variances_match_the_full_posterior():
    """Derivation check: Var(β | τ_u) = [1/s² + J/(τ_u² + σ²/S_xx)]⁻¹ and Var(β | u, τ_u) = [1/s² + J S_xx/σ²]⁻¹
    (only β + u_j enters the within-cluster slopes), exact at any τ; so the share R²(τ_u) of beta_share."""
    spec, d, Phi, J, n, s = _between_setup()
    u = list(range(3 + J, 3 + 2 * J))
    for tau_u in (0.1, 0.3, 1.0):
        _, _, _, _, covs = _grid_pass(Phi.T @ Phi / s**2, np.zeros(Phi.shape[1]), 0.0, np.zeros(Phi.shape[1]),
                                      np.ones(3), J, s, J * n, np.log([1.0]), np.log([tau_u]))
        C = covs[0]
        cond = C[1, 1] - C[1, u] @ np.linalg.solve(C[np.ix_(u, u)], C[u, 1])
        np.testing.assert_allclose(C[1, 1], spec.conditional_var_beta(tau_u, design=d), rtol=1e-8)
        np.testing.assert_allclose(cond, spec.conditional_var_beta(tau_u, given_u=True, design=d), rtol=1e-8)
        np.testing.assert_allclose(1 - cond / C[1, 1], spec.beta_share(tau_u, d), rtol=1e-8)
    assert spec.beta_share(0.3, d) < 0.8 < spec.beta_share(0.55, d)  # the docstring's τ_u ≈ 0.52 crossing
    with pytest.raises(ValueError, match="between"):
        spec.conditional_var_beta(0.3, design="within")


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_known_answer_beta_trades_off_against_the_mean_of_the_random_slopes(sigma):
    """The known answer lists the β/u direction: the likelihood ridge (Δβ, Δu_j) = (1, −1), the combinations
    β + u_j, and 'beta against the mean of u' among the algebra's confoundings; levels() finds it on exact
    draws with the exact posterior's share R² = Cov(β,u) Cov(u)⁻¹ Cov(u,β) / Var(β) (4 se + 0.01 for the
    quadrature), and reads it as confounded exactly when that R² ≥ 0.8. σ = 0.5 (seed 0): R² = 0.84,
    confounded. Negative control σ = 2: the slope noise σ²/S_xx ≈ 1 swamps τ_u², R² ≈ 0.2 (beta_share),
    separated."""
    import bayesid

    spec = MixedRegression(sigma=sigma)
    ka = spec.known_answer("between")
    J = spec.n_clusters
    assert {"beta": 1.0, **{f"u[{j}]": -1.0 for j in range(J)}} in ka.ridges
    assert {f"beta + u[{j}]" for j in range(J)} <= set(ka.combinations)
    assert spec.known_confounding("between")["beta"] == "the mean of u"
    data = spec.simulate(design="between", random_seed=0)
    model = spec.build(data, design="between")
    tree = spec.exact_tree(data, "between", draws=1000, chains=2, prior_draws=4000, random_seed=1)
    diag = bayesid.diagnose(tree, model=model, fisher=False)
    lv = diag.levels(model=model, cluster_covariates={"w": spec.cluster_covariate()})
    ep = spec.exact_posterior(data, "between")
    g, u = ep.index("beta"), [ep.index(f"u[{j}]") for j in range(J)]
    r2 = float(ep.cov[g, u] @ np.linalg.solve(ep.cov[np.ix_(u, u)], ep.cov[g, u]) / ep.cov[g, g])
    beta = {c.fixed: c for c in lv.confounding}["beta"]
    assert beta.against == "the mean of u", beta
    assert abs(beta.share - r2) < 4 * beta.share_se + 0.01, (beta.share, beta.share_se, r2)
    assert abs(r2 - 0.8) > 4 * beta.share_se and beta.confounded == (r2 >= 0.8), (r2, beta)
    assert beta.confounded == (sigma == 0.5)
    known = spec.known_confounding("between")
    for c in lv.confounded():
        assert known[c.fixed] == c.against, c  # everything levels() calls confounded, the algebra names
    assert not lv.consistency_problems(diag)


def test_known_answer_control_covariate_within_clusters():
    """Negative control: with w varying within clusters γ is identified (contraction > 0.9)."""
    spec, ep, c_gamma, corr, _ = _gamma_answer("within")
    assert c_gamma > 0.9 and corr > -0.9
    assert "gamma" in spec.known_answer("within").identified


def _nuts_check(name, seed):
    import bayesid

    spec = models.get(name)
    data = spec.simulate(design="between", random_seed=seed)
    model = spec.build(data, design="between")
    tree = bayesid.fit(model, draws=500, tune=500, chains=2, random_seed=seed, progressbar=False)
    ep = spec.exact_posterior(data, "between")
    import arviz_stats

    post = tree.posterior
    for k in ("alpha", "gamma"):
        a = post[k].transpose("chain", "draw").values
        ess = float(arviz_stats.ess(a))
        m, v = a.mean(), a.var()
        assert abs(m - ep.mean[ep.index(k)]) < 4 * np.sqrt(ep.var(k) / ess), (k, m, ep.mean[ep.index(k)])
        ess_v = float(arviz_stats.ess((a - m) ** 2))
        assert abs(v / ep.var(k) - 1) < 4 * np.sqrt(2 / ess_v), (k, v, ep.var(k))
    # levels on the NUTS draws: gamma confounded with the w-weighted mean of b, R² as in the exact posterior
    diag = bayesid.diagnose(tree, model=model, fisher=False)
    lv = diag.levels(model=model, cluster_covariates={"w": spec.cluster_covariate()})
    gam = {c.fixed: c for c in lv.confounding}["gamma"]
    g, re = ep.index("gamma"), list(range(3, len(ep.names)))
    r2 = float(ep.cov[g, re] @ np.linalg.solve(ep.cov[np.ix_(re, re)], ep.cov[g, re]) / ep.cov[g, g])
    assert gam.confounded and gam.against == "the w-weighted mean of b"
    assert abs(gam.share - r2) < 4 * gam.share_se + 0.01, (gam.share, gam.share_se, r2)
    return lv


@pytest.mark.slow
@pytest.mark.slice
def test_nuts_matches_the_exact_posterior_noncentred():
    _nuts_check("mixed.noncentred", seed=5)


@pytest.mark.slow
def test_nuts_matches_the_exact_posterior_centred():
    _nuts_check("mixed.regression", seed=6)


# ----------------------------------------------------------------------------- neural
torch = pytest.importorskip("torch")


def test_networks_fit_and_armed_adversary_is_fooled():
    from bayesid.neural.mixed import ArmedNet, ClusterBlindNet, MixedEffectsNet, simulate_clustered

    torch.set_num_threads(1)
    tr = simulate_clustered(6, 10, "between", random_seed=0)
    for cls in (ClusterBlindNet, MixedEffectsNet, ArmedNet):
        net = cls(epochs=30, width=16, random_seed=1).fit(tr)
        assert net.history[-1] < net.history[0]
    re = net.random_effects()
    assert re.shape == (6, 2)
    acc = net.adversary_accuracy(tr.x, tr.w, tr.cluster)
    assert 0.0 <= acc <= 1.0
    with pytest.raises(ValueError, match="between"):
        simulate_clustered(3, 3, "sideways")


@pytest.mark.slow
def test_cluster_study_mixed_effects_beat_blind_on_seen_clusters():
    """On seen clusters the random-effects estimators recover the cluster intercepts far better than the
    cluster-blind network; on unseen clusters no estimator can beat the random intercept's spread τ."""
    from bayesid.neural.mixed import cluster_study

    st = cluster_study("between", n_train_clusters=12, n_per=15, n_test_clusters=12, n_replicates=2,
                       epochs=300, random_seed=0)
    t = st.table.set_index(["estimator", "clusters", "direction"])
    pm_seen = t.loc[("posterior mean", "seen", "intercept")]
    me_seen = t.loc[("mixed-effects", "seen", "intercept")]
    blind = t.loc[("cluster-blind", "seen", "intercept")]
    assert me_seen.hi < blind.lo and pm_seen.hi < blind.lo
    for est in ("posterior mean", "mixed-effects", "ARMED (adversarial)"):
        assert t.loc[(est, "unseen", "intercept")].hi > 0.5  # τ = 1: irreducible without cluster data


@pytest.mark.neural
@pytest.mark.slow
@pytest.mark.slice
def test_mixed_effects_notebook_runs(tmp_path):
    nb = run_notebook(NOTEBOOK, tmp_path, {"BAYESID_EXAMPLE_SIZE": "tiny", "MPLBACKEND": "Agg"})
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    assert "size: tiny" in text and "contraction of gamma" in text and "probe accuracy" in text
    assert "gamma against the w-weighted mean of b" in text and "(centred) slope" in text and "-> funnel" in text
    if os.environ.get("BAYESID_SAVE_NOTEBOOK"):
        pytest.importorskip("nbformat").write(nb, os.environ["BAYESID_SAVE_NOTEBOOK"])


def test_rmse_interval_from_the_number_of_test_clusters():
    """The 95 % interval of an RMSE over n clusters covers the true error sd: over 400 simulated tables of
    Gaussian errors (the most skewed squares, χ²₁), coverage is 0.95 within 3 binomial se at n = 200
    (10⁵ tables: 0.946); at n = 20 the log-t interval's small-sample coverage is 0.923 (10⁵ tables), so
    400 tables must give > 0.923 − 3 se. Negative control: the plain m ± 1.96·se interval it replaced
    covers 0.878 at n = 20, outside that bound in expectation."""
    from bayesid.neural.mixed import _rmse_row

    rng = np.random.default_rng(0)

    def cover(n):
        return float(np.mean([(r["lo"] <= 1.0 <= r["hi"])
                              for r in (_rmse_row(rng.standard_normal(n) ** 2, "c") for _ in range(400))]))

    assert abs(cover(200) - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 400)
    assert cover(20) > 0.923 - 3 * np.sqrt(0.923 * 0.077 / 400)
    r = _rmse_row(np.full(5, 4.0), "test clusters")
    assert r["rmse"] == 2.0 and r["n"] == 5 and r["n_of"] == "test clusters"


@pytest.mark.slow
def test_seen_vs_unseen_table_known_answers():
    """Seen vs unseen clusters, per direction, for the three networks and the exact posterior mean (small).

    Known answers: on seen clusters the posterior mean's intercept error is the posterior sd of the cluster
    mean, ≈ σ/√n (0.16 here); on unseen clusters nothing can predict the random intercept, so every
    estimator's intercept RMSE is at least ≈ τ = 1 (interval reaches 0.8); the cluster-blind network
    (negative control) cannot use cluster labels, so its seen-cluster intercept error stays far above σ/√n.
    Intervals come from the number of test clusters (n = clusters × replicates)."""
    from bayesid.neural.mixed import TRUE_PARAMS, cluster_study

    torch.set_num_threads(1)
    J, n, J_test, reps = 8, 10, 10, 2
    st = cluster_study("between", n_train_clusters=J, n_per=n, n_test_clusters=J_test, n_replicates=reps,
                       epochs=80, width=16, random_seed=0)
    t = st.table.set_index(["estimator", "clusters", "direction"])
    ests = ["cluster-blind", "mixed-effects", "ARMED (adversarial)", "posterior mean"]
    for e in ests:
        for kind, n_cl in (("seen", J * reps), ("unseen", J_test * reps)):
            for d in ("intercept", "slope", "prediction"):
                row = t.loc[(e, kind, d)]
                assert row.n == n_cl and row.lo <= row.rmse <= row.hi
        assert t.loc[(e, "unseen", "intercept")].hi > 0.8 * TRUE_PARAMS["tau"]
    pm_seen = t.loc[("posterior mean", "seen", "intercept")]
    s_n = TRUE_PARAMS["sigma"] / np.sqrt(n)
    assert pm_seen.lo <= s_n <= pm_seen.hi, (pm_seen, s_n)
    assert t.loc[("cluster-blind", "seen", "intercept")].lo > 2 * s_n
    assert "unseen" in st.pivot().columns.get_level_values(0)
