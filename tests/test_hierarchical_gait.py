"""gait.hierarchical: simulator vs PyMC program, the exact k/m ridges of the population, viability, and
(slow) the population-level known answer from NUTS with the force-plate control.

Tolerances: the likelihood comparison is exact up to the numba backend's fastmath log (1e-7 relative, as
in tests/test_gait.py); the ridge invariance is exact up to round-off of k/m (1e-9 m/s²); prior moments by
a two-sample z below 4.5; posterior variance ratios at 4 MCSE (ratio·√(2/ESS)).
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesid import models
from bayesid.models.gait import NonViableGaitError
from bayesid.models.gait.hierarchical import HierarchicalBSLIP


@pytest.fixture(scope="module")
def small():
    return HierarchicalBSLIP(n_subjects=2, n_walks=2, duration=1.0)


def test_registry_and_shapes():
    spec = models.get("gait.hierarchical")
    assert isinstance(spec, HierarchicalBSLIP)
    assert spec.data_shapes("imu_grf") == {"accel": (3, 2, 200, 2), "grf": (3, 2, 200, 2)}
    ka = spec.known_answer("imu_accel")
    assert ka.ridges == ({"mu_log_k": 1.0, "mu_log_m": 1.0},) and not spec.known_answer("imu_grf").ridges


def test_accelerometer_sees_only_k_over_m(small):
    """The known answer's ridges are exact: shifting both population means, or each subject's log k and
    log m together, leaves the accelerometer and motion-capture signals unchanged; force plates move."""
    th = small.true_values()
    shifted = dict(th, mu_log_k=th["mu_log_k"] + 0.05, mu_log_m=th["mu_log_m"] + 0.05)
    c = np.array([0.03, -0.02])  # per subject: Δ(τ_k z_k) = Δ(τ_m z_m) = c_s
    per_subject = dict(th, z_k=th["z_k"] + c / th["tau_log_k"], z_m=th["z_m"] + c / th["tau_log_m"])
    base = small.walk(th)["out"]
    for other in (shifted, per_subject):
        out = small.walk(other)["out"]
        np.testing.assert_allclose(out[..., :6], base[..., :6], atol=1e-9)
        m0, m1 = small.subject_values(th)["m"], small.subject_values(other)["m"]
        assert np.max(np.abs(m1 - m0)) > 0.5  # kg: the force plates see the shift
    moved = dict(th, mu_log_k=th["mu_log_k"] + 0.05)
    assert np.max(np.abs(small.walk(moved)["out"][..., 4:6] - base[..., 4:6])) > 0.1


@pytest.mark.parametrize("design", ["imu_grf", pytest.param("imu_accel", marks=pytest.mark.slow),
                                    pytest.param("kinematics", marks=pytest.mark.slow)])
def test_simulator_and_pymc_program_agree(small, design):
    """The PyMC log-likelihood equals the Gaussian density around the simulator's noise-free output."""
    th = small.true_values()
    data = small.simulate(th, design, random_seed=4)
    model = small.build(data, design=design)
    from _gait_checks import assert_loglik_matches_simulator

    other = dict(th, mu_log_k=th["mu_log_k"] + 0.03, z_alpha0=th["z_alpha0"] + 0.5, v0=th["v0"] * 1.01)
    d = small.design(design)

    def mean_of(t):
        out = small.walk(t, design)["out"][0]
        m = small.subject_values(t)["m"][0]
        return {"accel": out[..., 4:6], "com": out[..., 0:2], "grf": m[:, None, None, None] * out[..., 4:6]}

    sd = {"accel": d.settings.get("sigma_accel"), "com": d.settings.get("sigma_pos"),
          "grf": d.settings.get("sigma_grf")}
    assert set(data) == {v.name for v in model.observed_RVs}
    assert_loglik_matches_simulator(model, data, (th, other), mean_of, sd)


def test_prior_of_subject_parameters_agrees_with_pymc(small):
    import pymc as pm

    model = small.build(small.simulate(design="imu_accel", random_seed=0), design="imu_accel")
    n = 2000
    k_pm, m_pm = pm.draw([model["k"], model["m"]], draws=n, random_seed=1)
    sv = small.subject_values(small.sample_prior(n, random_seed=2))
    for a, b in ((np.log(k_pm), np.log(sv["k"])), (np.log(m_pm), np.log(sv["m"]))):
        for f in (lambda v: v, lambda v: (v - v.mean()) ** 2):
            x, y = f(a), f(b)
            z = (x.mean() - y.mean()) / np.sqrt(x.var() / n + y.var() / n)
            assert abs(z) < 4.5


def test_viability_and_clear_error(small):
    th = small.sample_prior(200, random_seed=3)
    assert (small.viability(th) == 0).mean() > 0.85
    bad = dict(small.true_values(), mu_log_alpha0=np.log(60.0))
    with pytest.raises(NonViableGaitError, match="subject 0, walk 0"):
        small.simulate(bad, random_seed=0)


def _pop_sum_ratio(spec, design, seed):
    import arviz_stats

    import bayesid

    data = spec.simulate(design=design, random_seed=seed)
    model = spec.build(data, design=design)
    tree = bayesid.fit(model, draws=300, tune=300, chains=2, random_seed=seed, progressbar=False,
                       **spec.sampler_kwargs(model))
    post = tree.posterior
    s = (post["mu_log_k"] + post["mu_log_m"]).transpose("chain", "draw").values
    prior_var = spec.priors()["mu_log_k"].params["sigma"] ** 2 + spec.priors()["mu_log_m"].params["sigma"] ** 2
    ess = float(arviz_stats.ess((s - s.mean()) ** 2))
    return s.var() / prior_var, ess


@pytest.mark.slow
def test_population_mean_of_log_k_plus_log_m_is_prior_determined_without_force_plates():
    """Known answer: under imu_accel Var_post(mu_log_k + mu_log_m) equals the prior's (ratio 1 within 4 MCSE);
    negative control: with force plates it contracts (ratio well below 1)."""
    spec = HierarchicalBSLIP(n_subjects=2, n_walks=1, duration=1.0)
    r, ess = _pop_sum_ratio(spec, "imu_accel", seed=3)
    assert abs(r - 1.0) < 4 * np.sqrt(2.0 / ess), (r, ess)
    r_grf, ess_g = _pop_sum_ratio(spec, "imu_grf", seed=4)
    assert r_grf < 1.0 - 4 * np.sqrt(2.0 / ess_g) * r_grf, (r_grf, ess_g)


@pytest.mark.slow
@pytest.mark.parametrize("design", [pytest.param("imu_accel", marks=pytest.mark.slice), "imu_grf"])
def test_levels_known_answer_on_the_linearised_posterior(design):
    """Population- vs subject-level verdicts on the real gait.hierarchical program (3 subjects), from the
    exact posterior of the model linearised at the true values given the population sds (no MCMC).

    Known answer (accelerometer): per subject only k/m; mu_log_k + mu_log_m keeps its prior exactly (ratio 1);
    mu_log_k − mu_log_m has ratio 1/(1 + S·2s²/(2τ²)) (a Normal mean from S subjects whose k/m the data pin).
    Control (force plates): k and m per subject and both population means identified. Tolerance 4 MCSE."""
    import bayesid
    from bayesid.diagnostics.verdicts import Verdict

    spec = HierarchicalBSLIP(n_subjects=3, n_walks=1, duration=1.0)
    tree = spec.linearised_tree(design, draws=1000, chains=2, prior_draws=4000, random_seed=0)
    model = spec.build({k: np.zeros(v) for k, v in spec.data_shapes(design).items()}, design=design)
    diag = bayesid.diagnose(tree, model=model, fisher=False, transforms=spec.unconstrained_transforms())
    lv = diag.levels(model=model)
    pop = {q.name: q for q in lv.population}
    sub = {q.name: q for q in lv.cluster}
    S = spec.n_subjects
    if design == "imu_accel":
        assert sub["k/m"].count() == S and sub["k·m"].count(Verdict.NOT_IDENTIFIED) == S
        s = pop["mu_log_k + mu_log_m"]
        assert s.verdict == Verdict.NOT_IDENTIFIED and abs(s.ratio - 1) < 4 * s.ratio_se
        d = pop["mu_log_k - mu_log_m"]
        s2, tau2 = spec.priors()["mu_log_k"].params["sigma"] ** 2, spec.true_values()["tau_log_k"] ** 2
        expect = 1 / (1 + S * 2 * s2 / (2 * tau2))
        assert d.verdict == Verdict.IDENTIFIED and abs(d.ratio - expect) < 4 * d.ratio_se, (d, expect)
        assert "k/m per subject: identified in 3/3 subjects" in lv.summary()
    else:
        assert sub["k"].count() == S and sub["m"].count() == S
        assert pop["mu_log_k"].verdict == pop["mu_log_m"].verdict == Verdict.IDENTIFIED
        assert "prior-determined" not in lv.summary()
    assert any("constant" in n for n in diag.notes)  # the fixed population sds are reported, not dropped silently


# population sds of the prior of mu_log_k and mu_log_m for the NUTS levels test (see its docstring)
_WIDE_MU = 0.2


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("design", ["imu_accel", "imu_grf"])
def test_levels_known_answer_from_nuts(design):
    """diag.levels on NUTS draws of the real gait.hierarchical program (3 subjects × one 1-s walk, 2 chains).

    Known answer (accelerometer; module docstring of models/gait/hierarchical.py): the likelihood sees
    (k_s, m_s) only as k_s/m_s and the population only through d_s = (mu_log_k − mu_log_m) + tau_k z_k −
    tau_m z_m. So M = mu_log_k + mu_log_m, a priori independent of everything the likelihood sees (equal
    prior sds s), keeps its prior exactly: ratio 1. Per subject, log k_s + log m_s = M + (tau_k z_k + tau_m z_m),
    where M is independent of the rest in the posterior too, so its posterior variance is at least Var(M) = 2s²
    while its prior variance is 2s² + 2E[tau²]: the per-subject k·m ratio is ≥ s²/(s² + E[tau²]) — 0.89 with
    s = 0.2 and tau ~ HalfNormal(0.07) (E[tau²] = 0.0049), above the ridge threshold 0.8, so "only k/m per
    subject" is a consequence of the algebra, not of the seed. (With the default s = 0.07 the bound is 1/2,
    exactly the 'identified' cut-off, and the pooled basis would split k and m on noise; hence s = 0.2.)
    D = mu_log_k − mu_log_m is a Normal mean from S subject differences with spread √(tau_k² + tau_m²):
    identified (ratio ≈ E[tau_k² + tau_m²]/(S·2s²) ≈ 0.04).
    Control (force plates): m_s and k_s = κ_s m_s per subject identified, and M informed by the S subjects
    (ratio ≈ E[tau_k² + tau_m²]/(S·2s²), far below 1).
    Tolerances: 4 MCSE of the variance ratios (ratio·√(2/ESS) of the squares, and the prior draws' 2/n).
    Run time: 414 s (accel) and 323 s (force plates) on the shared 2-core box — slow, not slice.
    """
    import bayesid
    from bayesid.diagnostics.verdicts import Verdict
    from bayesid.models import Prior

    spec = HierarchicalBSLIP(n_subjects=3, n_walks=1, duration=1.0)
    pri = {f"mu_log_{p}": Prior("normal", {"mu": spec.priors()[f"mu_log_{p}"].params["mu"], "sigma": _WIDE_MU})
           for p in ("k", "m")}
    seed = {"imu_accel": 3, "imu_grf": 4}[design]
    data = spec.simulate(design=design, random_seed=seed)
    model = spec.build(data, design=design, priors=pri)
    tree = bayesid.fit(model, draws=300, tune=300, chains=2, random_seed=seed, progressbar=False,
                       **spec.sampler_kwargs(model))
    diag = bayesid.diagnose(tree, model=model, fisher=False)
    lv = diag.levels(model=model)
    print(f"\n{design}: {diag.convergence.problems}\n{lv.table.to_string()}\n{lv.summary()}")
    import arviz_stats

    S = spec.n_subjects

    def ratio(post, prior):
        """Posterior/prior variance ratio of a (chain, draw) array, its MCSE (ESS of the squares, 2/n prior)."""
        ess = float(arviz_stats.ess((post - post.mean()) ** 2))
        r = post.var() / prior.var()
        return r, r * np.sqrt(2.0 / ess + 2.0 / prior.size)

    po, pr = tree.posterior, tree.prior
    r_sum, se_sum = ratio((po["mu_log_k"] + po["mu_log_m"]).transpose("chain", "draw").values,
                          (pr["mu_log_k"] + pr["mu_log_m"]).values.ravel())
    # per subject, along the known directions (natural logs of the subject values)
    lk, lm = (np.log(po[v].transpose("chain", "draw", "subject").values) for v in ("k", "m"))
    pk, pm_ = (np.log(pr[v].values.reshape(-1, S)) for v in ("k", "m"))
    per = {name: [ratio(f(lk[..., s], lm[..., s]), f(pk[:, s], pm_[:, s])) for s in range(S)]
           for name, f in (("k/m", np.subtract), ("k·m", np.add), ("k", lambda a, b: a), ("m", lambda a, b: b))}

    def dominant(q, same_sign):
        ck, cm = (q.coefficients.get(f"{v}_log__", 0.0) for v in ("k", "m"))
        big = max(abs(x) for x in q.coefficients.values())
        return min(abs(ck), abs(cm)) >= 0.5 * big and (ck * cm > 0) == same_sign

    def pop_dominant(q, same_sign):
        ck, cm = q.coefficients.get("mu_log_k", 0.0), q.coefficients.get("mu_log_m", 0.0)
        big = max(abs(x) for x in q.coefficients.values())
        return min(abs(ck), abs(cm)) >= 0.5 * big and (ck * cm > 0) == same_sign

    if design == "imu_accel":
        assert abs(r_sum - 1.0) < 4 * se_sum, (r_sum, se_sum)
        bound = _WIDE_MU**2 / (_WIDE_MU**2 + 0.07**2)
        for r, se in per["k·m"]:
            assert r > bound - 4 * se, (per["k·m"], bound)
        for r, se in per["k/m"]:
            assert r < 0.5 - 4 * se, per["k/m"]
        # levels: the k/m direction identified in every subject, the k·m direction in none, k and m not alone
        km = [q for q in lv.cluster if dominant(q, False)]
        assert km and all(q.count() == S for q in km), lv.cluster
        assert all(q.count() == 0 for q in lv.cluster if dominant(q, True)), lv.cluster
        assert not any(q.name in ("k", "m") and q.count() for q in lv.cluster), lv.cluster
        d = [q for q in lv.population if pop_dominant(q, False)]
        assert d and all(q.verdict == Verdict.IDENTIFIED and q.ratio < 0.5 - 4 * q.ratio_se for q in d), d
        s = [q for q in lv.population if pop_dominant(q, True)]
        assert s and all(q.verdict == Verdict.NOT_IDENTIFIED for q in s), s
    else:  # negative control
        assert r_sum < 1.0 - 4 * se_sum, (r_sum, se_sum)
        for name in ("k", "m"):
            for r, se in per[name]:
                assert r < 0.5 - 4 * se, (name, per[name])
        assert all(q.count() == S for q in lv.cluster if {"k_log__", "m_log__"} & set(q.coefficients)), lv.cluster
        covered = {c for q in lv.cluster if q.count() == S for c in q.coefficients}
        assert {"k_log__", "m_log__"} <= covered, lv.cluster  # both k and m named among the identified
        assert not any(q.verdict == Verdict.NOT_IDENTIFIED and {"mu_log_k", "mu_log_m"} & set(q.coefficients)
                       for q in lv.population), lv.population
    assert not lv.consistency_problems(diag), lv.consistency_problems(diag)
    print(f"{design}: M ratio {r_sum:.3f} ± {se_sum:.3f}; levels",
          lv.table[["quantity", "verdict", "ratio"]].values.tolist())
