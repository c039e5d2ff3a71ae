"""Population- vs cluster-level verdicts (bayesid.diagnostics.hierarchy), on exact posterior draws.

Known answers
-------------
* Linear analogue of the hierarchical gait model (written below in plain PyMC): per subject
  ``log k_s = mu_k + tau z_k[s]``, ``log m_s = mu_m + tau z_m[s]`` (known, equal tau; equal prior sds
  of the means), an "accelerometer" that records ``log k_s − log m_s`` and, in the control, a "force
  plate" that records ``log m_s``. Linear-Gaussian: the exact posterior is Gaussian and drawn exactly.
  Sums and differences are a priori independent, and the likelihood sees only differences, so without
  force plates the per-subject ``log k + log m`` and the population ``mu_k + mu_m`` keep their prior
  exactly (ratio 1), while ``mu_k − mu_m`` has ratio ``1 / (1 + S·2s²/(2τ² + σ²/W))`` (a Normal mean
  from S subject differences); with force plates everything is identified.
* Mixed regression (bayesid.models.mixed), exact draws: the share R² of γ's posterior variance
  explained by the random effects equals ``Cov(γ, b) Cov(b)⁻¹ Cov(b, γ) / Var(γ)`` of the exact
  posterior covariance; γ is confounded with the w-weighted mean of b for a cluster-level covariate,
  not when w varies within clusters (control).
* Funnel: with no cluster data the centred ``b_j | τ`` has sd ∝ τ (slope 1); data that dominate give
  slope 0; the non-centred form of the same posterior has no funnel when the data are weak.

Tolerances: 4 standard errors (MCSE of variance ratios from the ESS of squares and 2/n of the prior
draws; regression standard errors for slopes; 2R(1 − R²)/√n for R²).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr

import bayesid
from bayesid.diagnostics.hierarchy import block_directions, cluster_directions, confounding, funnel_slope, structure
from bayesid.diagnostics.verdicts import Verdict
from bayesid.errors import BadInputError
from bayesid.models.mixed import MixedRegression, MixedRegressionNonCentred

N_POST, N_PRIOR = 2000, 4000


# ----------------------------------------------------------------------------- numpy cores
def test_block_directions_name_the_sum_and_difference():
    rng = np.random.default_rng(0)
    prior = rng.standard_normal((N_PRIOR, 3))
    s, d = rng.standard_normal(N_POST), 0.05 * rng.standard_normal(N_POST)  # a + b prior, a − b pinned
    post = np.column_stack([(s + d) / np.sqrt(2), (s - d) / np.sqrt(2), 0.1 * rng.standard_normal(N_POST)])
    out = {q.name: q for q in block_directions(prior, post, ["a", "b", "c"], [None] * 3)}
    assert set(out) == {"a - b", "a + b", "c"}
    assert out["a + b"].verdict == Verdict.NOT_IDENTIFIED and abs(out["a + b"].ratio - 1) < 4 * out["a + b"].ratio_se
    assert out["a - b"].verdict == Verdict.IDENTIFIED and out["c"].verdict == Verdict.IDENTIFIED
    with pytest.raises(BadInputError, match="names"):
        block_directions(prior, post, ["a", "b"], [None] * 2)


def test_cluster_directions_count_clusters():
    """Ratio along log k − log m: 0.01 in 4 clusters, 1 (prior) in the fifth; log k + log m prior."""
    rng = np.random.default_rng(1)
    J = 5
    prior = rng.standard_normal((N_PRIOR, J, 2))
    s = rng.standard_normal((N_POST, J))
    d = rng.standard_normal((N_POST, J)) * np.array([0.1, 0.1, 0.1, 0.1, 1.0])
    post = np.stack([(s + d) / np.sqrt(2), (s - d) / np.sqrt(2)], -1)
    out = {q.name: q for q in cluster_directions(prior, post, ["k_log__", "m_log__"], ["log", "log"])}
    assert set(out) == {"k/m", "k·m"}
    assert out["k/m"].count() == 4 and out["k/m"].verdicts[4] == Verdict.NOT_IDENTIFIED
    assert out["k·m"].count(Verdict.NOT_IDENTIFIED) == J


def test_confounding_share_known_answer_and_control():
    """f = 2 − mean(b) + e: R² = Var(mean b)/(Var(mean b) + Var e) exactly; an independent f has R² ≈ J/n."""
    rng = np.random.default_rng(2)
    J, n = 6, N_POST
    b = rng.standard_normal((n, J, 1))
    e = 0.1 * rng.standard_normal(n)
    f = np.column_stack([2 - b[:, :, 0].mean(1) + e, rng.standard_normal(n)])
    res = confounding(f, b, ["f", "g"], ["b"])
    expect = (1 / J) / (1 / J + 0.01)
    assert abs(res[0].share - expect) < 4 * res[0].share_se + 4 * 2 * np.sqrt(expect) * (1 - expect) / np.sqrt(n)
    assert res[0].confounded and res[0].against == "the mean of b"
    assert not res[1].confounded and res[1].share < 10 * J / n


def test_funnel_slope_limits():
    rng = np.random.default_rng(3)
    n, J = N_POST, 4
    lt = 0.5 * rng.standard_normal(n)
    eps = rng.standard_normal((n, J))
    for x, expect in ((np.exp(lt)[:, None] * eps, 1.0),  # no data: b_j | tau ~ N(0, tau²)
                      (1.0 + 0.1 * eps, 0.0),  # data dominate
                      ((1.0 + 0.01 * eps) / np.exp(lt)[:, None], -1.0)):  # non-centred z = b/tau, data dominate
        s, se, rng_ = funnel_slope(lt, x)
        assert abs(s - expect) < 4 * se + 0.02, (s, se, expect)  # 0.02: log|residual| of z's 1/tau curvature
    assert funnel_slope(lt, np.exp(lt)[:, None] * eps)[2] > 3


# ----------------------------------------------------------------------------- structure
def _plain_mixed(centred, J=4, n=3):
    y = np.zeros((J, n))
    with pm.Model(coords={"group": np.arange(J), "obs": np.arange(n)}) as m:
        alpha = pm.Normal("alpha", 0, 1)
        mu = pm.Normal("mu", 0, 1)
        tau = pm.HalfNormal("tau", 1)
        if centred:
            b = pm.Normal("b", mu, tau, dims="group")
        else:
            z = pm.Normal("z", 0, 1, dims="group")
            b = pm.Deterministic("b", mu + tau * z, dims="group")
        v = pm.Normal("v", 0, 1, dims=("group", "obs"))  # an unpooled per-record nuisance
        pm.Normal("y", alpha + b[:, None] + v, 1.0, observed=y, dims=("group", "obs"))
    return m


def test_structure_from_the_graph():
    c = structure(_plain_mixed(True))
    assert (c.cluster_dim, c.n_clusters) == ("group", 4)
    assert c.population == ["mu", "tau"] and c.fixed == ["alpha"] and c.cluster == ["b"] and c.unpooled == ["v"]
    assert c.centred == [("tau", "b")] and not c.noncentred
    nc = structure(_plain_mixed(False))
    assert nc.cluster == ["b"] and nc.standardised == ["z"] and set(nc.population) == {"mu", "tau"}
    assert ("tau", "z", "b") in nc.noncentred and not nc.centred
    with pytest.raises(BadInputError, match="not a dimension"):
        structure(_plain_mixed(True), cluster_dim="subject")
    with pm.Model(coords={"i": range(3)}) as flat:
        pm.Normal("x", 0, 1, dims="i")
    with pytest.raises(BadInputError, match="cluster_dim="):
        structure(flat)


def test_structure_of_the_hierarchical_gait_model():
    from bayesid.models.gait.hierarchical import HierarchicalBSLIP

    spec = HierarchicalBSLIP(n_subjects=2, n_walks=1, duration=0.5)
    shapes = spec.data_shapes("imu_accel")  # the graph only: no simulation (and no numba compilation) needed
    model = spec.build({k: np.zeros(v) for k, v in shapes.items()}, design="imu_accel")
    st = structure(model)
    assert st.cluster_dim == "subject" and st.cluster == ["k", "m", "L0", "alpha0"]
    assert set(st.population) == {f"{a}_log_{p}" for a in ("mu", "tau") for p in ("k", "m", "L0", "alpha0")}
    assert set(st.standardised) == {"z_k", "z_m", "z_L0", "z_alpha0"} and set(st.unpooled) == {"v0", "d0"}
    assert not st.fixed


# ----------------------------------------------------------------------------- gait analogue (exact)
S, W, TAU, S_MU, SIG = 20, 2, 0.05, 0.07, 0.01


def _gait_analogue(force_plates, seed=0):
    rng = np.random.default_rng(seed)
    mk, mm = np.log(14000.0) + 0.03, np.log(80.0)
    zk, zm = rng.standard_normal(S), rng.standard_normal(S)
    lk, lm = mk + TAU * zk, mm + TAU * zm
    acc = (lk - lm)[:, None] + SIG * rng.standard_normal((S, W))
    grf = lm[:, None] + SIG * rng.standard_normal((S, W))
    m0 = np.array([np.log(13000.0), np.log(80.0)])
    with pm.Model(coords={"subject": np.arange(S), "walk": np.arange(W)}) as model:
        mu_k = pm.Normal("mu_log_k", m0[0], S_MU)
        mu_m = pm.Normal("mu_log_m", m0[1], S_MU)
        z_k = pm.Normal("z_k", 0, 1, dims="subject")
        z_m = pm.Normal("z_m", 0, 1, dims="subject")
        k = pm.Deterministic("k", pm.math.exp(mu_k + TAU * z_k), dims="subject")
        m = pm.Deterministic("m", pm.math.exp(mu_m + TAU * z_m), dims="subject")
        pm.Normal("accel", (pm.math.log(k) - pm.math.log(m))[:, None], SIG, observed=acc, dims=("subject", "walk"))
        if force_plates:
            pm.Normal("grf", pm.math.log(m)[:, None], SIG, observed=grf, dims=("subject", "walk"))
    # exact Gaussian posterior of theta = (mu_k, mu_m, z_k, z_m)
    p = 2 + 2 * S
    A, y = [], []
    for s in range(S):
        row = np.zeros(p)
        row[[0, 1, 2 + s, 2 + S + s]] = [1, -1, TAU, -TAU]
        A += [row] * W
        y += list(acc[s])
        if force_plates:
            row = np.zeros(p)
            row[[1, 2 + S + s]] = [1, TAU]
            A += [row] * W
            y += list(grf[s])
    A, y = np.array(A), np.array(y)
    m_prior = np.r_[m0, np.zeros(2 * S)]
    P0 = np.diag(np.r_[[1 / S_MU**2] * 2, np.ones(2 * S)])
    P = P0 + A.T @ A / SIG**2
    C = np.linalg.inv(P)
    mean = C @ (P0 @ m_prior + A.T @ y / SIG**2)
    th_post = rng.multivariate_normal(mean, C, size=N_POST)
    th_prior = rng.multivariate_normal(m_prior, np.linalg.inv(P0), size=N_PRIOR)

    def group(th, chains):
        n = th.shape[0] // chains
        r = th.reshape(chains, n, p)
        d = {"mu_log_k": (("chain", "draw"), r[..., 0]), "mu_log_m": (("chain", "draw"), r[..., 1]),
             "z_k": (("chain", "draw", "subject"), r[..., 2:2 + S]),
             "z_m": (("chain", "draw", "subject"), r[..., 2 + S:])}
        d["k"] = (d["z_k"][0], np.exp(r[..., :1] + TAU * r[..., 2:2 + S]))
        d["m"] = (d["z_m"][0], np.exp(r[..., 1:2] + TAU * r[..., 2 + S:]))
        return xr.Dataset(d, coords={"subject": np.arange(S)})

    tree = xr.DataTree.from_dict({"posterior": group(th_post, 2), "prior": group(th_prior, 1)})
    return model, tree


@pytest.mark.parametrize("force_plates", [False, True])
def test_gait_analogue_population_and_subject_known_answer(force_plates):
    model, tree = _gait_analogue(force_plates)
    diag = bayesid.diagnose(tree, model=model, fisher=False, transforms={"mu_log_k": None, "mu_log_m": None})
    lv = diag.levels(model=model)
    assert lv.structure.population == ["mu_log_k", "mu_log_m"] and lv.structure.cluster == ["k", "m"]
    pop = {q.name: q for q in lv.population}
    sub = {q.name: q for q in lv.cluster}
    if not force_plates:
        assert set(pop) == {"mu_log_k + mu_log_m", "mu_log_k - mu_log_m"} and set(sub) == {"k/m", "k·m"}
        diff = pop["mu_log_k - mu_log_m"]
        v_d = 2 * TAU**2 + SIG**2 / W
        expect = 1 / (1 + S * 2 * S_MU**2 / v_d)
        assert abs(diff.ratio - expect) < 4 * diff.ratio_se and diff.verdict == Verdict.IDENTIFIED
        assert sub["k/m"].count() == S  # "k/m per subject: identified in 20/20 subjects"
        q = pop["mu_log_k + mu_log_m"]
        assert q.verdict == Verdict.NOT_IDENTIFIED and abs(q.ratio - 1) < 4 * q.ratio_se
        assert sub["k·m"].count(Verdict.NOT_IDENTIFIED) == S and abs(sub["k·m"].ratio - 1) < 4 * sub["k·m"].ratio_se
        s = lv.summary()
        assert "k/m per subject: identified in 20/20 subjects" in s
        assert "Population mu_log_k + mu_log_m: prior-determined" in s
    else:  # negative control: force plates identify both means and both subject values on their own
        assert set(pop) == {"mu_log_k", "mu_log_m"} and all(q.verdict == Verdict.IDENTIFIED for q in pop.values())
        assert set(sub) == {"k", "m"} and all(q.count() == S for q in sub.values())
        assert "prior-determined" not in lv.summary()
    assert not diag.consistency_problems() and not lv.consistency_problems(diag)


# ----------------------------------------------------------------------------- mixed regression (exact)
def _mixed(cls, design, seed=0, n_grid=60, **kw):
    spec = cls(**kw)
    data = spec.simulate(design=design, random_seed=seed)
    model = spec.build(data, design=design)
    tree = spec.exact_tree(data, design, draws=N_POST // 2, chains=2, prior_draws=N_PRIOR, random_seed=seed + 1,
                           n_grid=n_grid)
    diag = bayesid.diagnose(tree, model=model, fisher=False)
    return spec, data, diag, diag.levels(model=model, cluster_covariates={"w": spec.cluster_covariate()})


@pytest.mark.parametrize("design", ["between", "within"])
def test_fixed_vs_random_confounding_found_and_named(design):
    spec, data, diag, lv = _mixed(MixedRegression, design)
    conf = {c.fixed: c for c in lv.confounding}
    # the exact R² from the exact posterior covariance
    ep = spec.exact_posterior(data, design)
    g = ep.index("gamma")
    re = list(range(3, len(ep.names)))
    c_gr = ep.cov[g, re]
    r2 = float(c_gr @ np.linalg.solve(ep.cov[np.ix_(re, re)], c_gr) / ep.cov[g, g])
    gam = conf["gamma"]
    assert abs(gam.share - r2) < 4 * gam.share_se + 0.01, (gam.share, r2)  # 0.01: the scale grid's quadrature
    assert conf["alpha"].confounded and conf["alpha"].against == "the mean of b"  # only α + b_j enters
    if design == "between":
        assert gam.confounded and gam.against == "the w-weighted mean of b"
        assert "gamma against the w-weighted mean of b" in lv.summary()
    else:  # negative control: w varies within clusters
        assert not gam.confounded and "gamma against" not in lv.summary()
    assert not lv.consistency_problems(diag), lv.consistency_problems(diag)


def test_centred_funnel_is_a_sampling_problem_not_a_ridge():
    """Same data and exact posterior in both forms; weak cluster data (σ²/n = 8 ≫ τ²): the centred form has
    a funnel in its sampled coordinates, the non-centred one none; the level verdicts are the same, and the
    level words agree with each form's table. Control: dominant cluster data → no funnel in the centred form."""
    kw = dict(n_clusters=8, n_per=2, sigma=4.0, n_grid=30)
    _, _, dc, lc = _mixed(MixedRegression, "between", **kw)
    _, _, dn, ln = _mixed(MixedRegressionNonCentred, "between", **kw)
    fc = {f.variable: f for f in lc.funnels}
    fn = {f.variable: f for f in ln.funnels}
    assert fc["b"].kind == "funnel" and fc["b"].form == "centred" and "not a ridge" in lc.summary()
    assert fn["z_b"].kind == "" and "unnel" not in ln.summary()
    assert [(q.name, q.verdict, q.count()) for q in lc.cluster] == [(q.name, q.verdict, q.count()) for q in ln.cluster]
    # identifiability is the posterior's, the same in both: the level verdicts (natural coordinates) agree
    assert [(q.name, q.verdict) for q in lc.population] == [(q.name, q.verdict) for q in ln.population]
    # the words agree with each form's own table
    assert not lc.consistency_problems(dc) and not ln.consistency_problems(dn)
    _, _, _, strong = _mixed(MixedRegression, "between", n_clusters=8, n_per=50, sigma=0.2, n_grid=30)
    assert all(not f.kind for f in strong.funnels)


def test_levels_needs_the_model():
    spec, data, diag, _ = _mixed(MixedRegression, "between")
    with pytest.raises(BadInputError, match="model="):
        diag.levels()
