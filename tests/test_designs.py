"""Design comparison: predicted identifiability per design, against the known answers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOYS

from bayesid import designs, models
from bayesid.models import Prior

_VERDICT = {"identified": "identified", "in_combination": "identified only in combination",
            "weakly_identified": "weakly identified", "not_identified": "not identified"}


@pytest.mark.parametrize("name", TOYS)
def test_predicted_verdicts_match_the_known_answers(name):
    """Before any data: the preposterior Fisher analysis predicts each design's known answer, and the
    number of uninformed directions equals the number of known ridges (0 for the controls)."""
    spec = models.get(name)
    dc = designs.compare(spec, n_prior=48, random_seed=1)
    pred = dc.verdicts()
    for r in dc.results:
        ka = spec.known_answer(r.design)
        assert r.n_uninformed == len(ka.ridges), (r.design, r.uninformed_labels)
        for field_, verdict in _VERDICT.items():
            for p in getattr(ka, field_):
                assert pred.loc[(r.design, "default"), p] == verdict, (name, r.design, p)


def test_designs_are_ranked_and_named():
    dc = designs.compare("toy.collinear", random_seed=0)
    assert dc.best == ("distinct", "default")
    col = next(r for r in dc.results if r.design == "collinear")
    assert col.uninformed_labels == ["beta1 - beta2"]
    assert col.combinations == ["beta1 + beta2"]
    assert "Design comparison" in dc.to_html()


def test_weak_design_predicts_the_conjugate_contraction():
    """toy.weak/few: whitened information n/σ²·τ² = 0.5, so the predicted contraction is exactly 1/3."""
    n_prior, k = 64, 20
    dc = designs.compare("toy.weak", designs=["few"], n_prior=n_prior, n_replicates=k, random_seed=3)
    c = dc.results[0].predicted_contraction["mu"]
    lam_se = np.sqrt(2 * 0.5**2 / (n_prior * k)) + 0.5 * np.sqrt(2 / 2000)  # score MC + whitening
    assert abs(c - 1 / 3) < 4 * lam_se / (1 + 0.5) ** 2


def test_prior_design_breaks_the_additive_ridge():
    """A tight prior on b identifies a (by the prior, not the data): predicted and ranked first."""
    dc = designs.compare("toy.additive", designs=["default"],
                         priors={"tight_b": {"b": Prior("normal", {"mu": 0.0, "sigma": 0.05})}}, random_seed=0)
    v = dc.verdicts()
    assert v.loc[("default", "tight_b"), "a"] == "identified"
    assert v.loc[("default", "tight_b"), "b"] == "not identified"
    assert v.loc[("default", "default"), "a"] == "identified only in combination"
    assert dc.best == ("default", "tight_b")


@pytest.mark.slow
@pytest.mark.slice
def test_gait_designs_before_any_data():
    """Known answer from the equations of motion: accelerations and positions depend on k and m only
    through k/m, so every design without force plates has one uninformed direction (k and m scaled
    together) and identifies k/m; force plates (imu_grf) measure m·a and identify both."""
    dc = designs.compare("gait.bslip", n_prior=8, random_seed=0)
    by = {r.design: r for r in dc.results}
    for d in ("imu_accel", "kinematics", "multi_speed"):
        assert by[d].n_uninformed == 1 and by[d].combinations == ["k/m"], (d, by[d].combinations)
        assert by[d].verdicts["k"] == by[d].verdicts["m"] == "identified only in combination"
    assert by["imu_grf"].n_uninformed == 0
    assert by["imu_grf"].verdicts["k"] == by["imu_grf"].verdicts["m"] == "identified"
    assert dc.best[0] == "imu_grf"


# ---------------------------------------------------------------- designs of a plain pm.Model
def _regression(n=20):
    """y ~ N(α + β1 x1 + β2 x2, 0.3) with x1, x2 as pm.Data: the design sets x2."""
    import pymc as pm

    x1 = np.linspace(-1.0, 1.0, n)
    with pm.Model() as m:
        a = pm.Data("x1", x1)
        b = pm.Data("x2", x1)
        al = pm.Normal("alpha", 0.0, 2.0)
        b1 = pm.Normal("beta1", 0.0, 1.0)
        b2 = pm.Normal("beta2", 0.0, 1.0)
        pm.Normal("y", al + b1 * a + b2 * b, 0.3, observed=np.zeros(n), shape=a.shape)
    designs_ = {"collinear": {"x2": x1}, "distinct": {"x2": np.cos(np.pi * np.arange(n) * 7.0 / n)}}
    return m, designs_


def _regression_contraction(x2, n=20):
    """Known answer (linear-Gaussian, σ = 0.3 known): the posterior covariance (P + XᵀX/σ²)⁻¹ with
    X = [1, x1, x2] and prior precision P = diag(1/4, 1, 1) is the same for every dataset, so the
    expected contraction of (α, β1, β2) is 1 − its diagonal over the prior variances. Collinear
    x2 = x1: (0.9989, 0.4970, 0.4970) — β1 − β2 keeps its prior variance, so β1 contracts by just under
    1/2; distinct x2 (control): (0.9989, 0.9879, 0.9910)."""
    X = np.column_stack([np.ones(n), np.linspace(-1.0, 1.0, n), np.asarray(x2, float)])
    return 1.0 - np.diag(np.linalg.inv(np.diag([0.25, 1.0, 1.0]) + X.T @ X / 0.3**2)) / np.array([4.0, 1.0, 1.0])


_REG_NAMES = ("alpha", "beta1", "beta2")


def test_pm_model_designs_by_fisher():
    """Known answer: with x2 = x1 only β1 + β2 enters, so β1 − β2 is uninformed and the contractions are
    :func:`_regression_contraction`'s. The Fisher screen is exact for this linear-Gaussian model; the
    only error is the prior whitening from 2000 prior draws (relative error of a variance √(2/2000)),
    so |ĉ − c| < 4·(1 − c)·√(2/2000) for every parameter of both designs. Distinct covariates (control)
    identify everything."""
    m, D = _regression()
    dc = designs.compare(m, D, n_prior=8, random_seed=0)
    by = {r.design: r for r in dc.results}
    assert dc.best == ("distinct", "default")
    assert by["collinear"].n_uninformed == 1 and by["collinear"].combinations == ["beta1 + beta2"]
    assert by["distinct"].n_uninformed == 0
    for d, r in by.items():
        c = _regression_contraction(D[d]["x2"])
        got = np.array([r.predicted_contraction[p] for p in _REG_NAMES])
        assert np.all(np.abs(got - c) < 4 * (1 - c) * np.sqrt(2 / 2000)), (d, got, c)


def test_pm_model_bad_designs():
    from bayesid.errors import BadInputError
    from bayesid.simulate import DesignValueError

    m, D = _regression()
    with pytest.raises(DesignValueError, match="not pm.Data"):
        designs.compare(m, {"bad": {"n_visits": 3}}, n_prior=4)
    with pytest.raises(BadInputError, match="factory"):
        designs.compare(m, D, priors={"wide": {"s": 2}}, n_prior=4)
    with pytest.raises(BadInputError, match="non-empty dict"):
        designs.compare(m, None)


@pytest.mark.slow
def test_pm_model_designs_by_mcmc_agree_with_fisher():
    """MCMC on 3 simulated datasets per design (1 chain × 200 draws) gives the same ranking and the
    known contractions (:func:`_regression_contraction`). The posterior variance is the same for every
    dataset, so the mean over n = 3 datasets of variance estimates from ESS ≥ 100 draws each has
    relative sd √(2/(100·3)), plus the whitening's √(2/2000): |ĉ − c| < 4·(1 − c)·√(2/300 + 2/2000)
    for every parameter of both designs (control: distinct x2, everything contracted ≈ 0.99)."""
    m, D = _regression()
    mc = designs.compare_model(m, D, method="mcmc", n_datasets=3, random_seed=0, progressbar=False)
    t = mc.table
    assert mc.best == ("distinct", "default")
    for d in D:
        c = _regression_contraction(D[d]["x2"])
        got = np.array([t.loc[(d, "default"), f"contraction[{p}]"] for p in _REG_NAMES])
        assert np.all(np.abs(got - c) < 4 * (1 - c) * np.sqrt(2 / 300 + 2 / 2000)), (d, got, c)


@pytest.mark.slow
def test_compiled_sampler_gives_bayesid_fits_draws():
    """The mcmc method compiles nutpie once per design and swaps each dataset in (nutpie's with_data);
    with the same seed its draws are those of bayesid.fit on pm.observe(model, data), which the method
    used per dataset before (a fit_kwargs key outside the compiled path's, here ``cache=None``, still
    goes through bayesid.fit): the same posterior means and covariances to rounding."""
    m, D = _regression()
    kw = dict(method="mcmc", n_datasets=2, random_seed=3, progressbar=False)
    fast = designs.compare_model(m, D, fit_kwargs={"draws": 100, "tune": 100}, **kw)
    slow = designs.compare_model(m, D, fit_kwargs={"draws": 100, "tune": 100, "cache": None}, **kw)
    for k in fast.records:
        for a, b in zip(fast.records[k], slow.records[k]):
            np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(a["cov"], b["cov"], rtol=1e-7, atol=1e-12)


def test_load_model_factory(tmp_path):
    from bayesid.errors import BadInputError

    f = tmp_path / "user_model.py"
    f.write_text("def build(n=3):\n    return n\n")
    assert designs.load_model_factory(f"{f}:build")(n=5) == 5
    with pytest.raises(BadInputError, match="defines no 'nope'"):
        designs.load_model_factory(f"{f}:nope")
    with pytest.raises(BadInputError, match="path/to/model.py:build"):
        designs.load_model_factory(str(f))


def test_cli_designs_on_a_users_pymc_file(tmp_path, capsys):
    """`bayesid designs path.py:build --designs path.py:DESIGNS` ranks a factory's designs (fisher)."""
    from bayesid.cli import main

    f = tmp_path / "m.py"
    f.write_text(
        "import numpy as np, pymc as pm\n"
        "X1 = np.linspace(-1, 1, 20)\n"
        "def build(x2):\n"
        "    with pm.Model() as m:\n"
        "        al = pm.Normal('alpha', 0, 2); b1 = pm.Normal('beta1', 0, 1); b2 = pm.Normal('beta2', 0, 1)\n"
        "        pm.Normal('y', al + b1 * X1 + b2 * np.asarray(x2), 0.3, observed=np.zeros(20))\n"
        "    return m\n"
        "DESIGNS = {'collinear': {'x2': X1}, 'distinct': {'x2': np.cos(np.pi * np.arange(20) * 7 / 20)}}\n")
    rc = main(["designs", f"{f}:build", "--designs", f"{f}:DESIGNS", "--n-prior", "8",
               "-o", str(tmp_path / "d.html")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "beta1 - beta2" in out
    table = (tmp_path / "d.csv").read_text().splitlines()
    assert table[1].startswith("distinct")


# ---------------------------------------------------------------- three methods on a line: y ~ N(a + b·x, σ)
_SIGMA, _N = 0.5, 10
_LINE = {"constant": {"x": np.ones(_N)}, "narrow": {"x": np.linspace(0.6, 1.4, _N)},
         "spread": {"x": np.linspace(-1.0, 1.0, _N)}}


def _line_model():
    """y_i ~ N(a + b·x_i, 0.5), a, b ~ N(0, 1); the design is the pm.Data x."""
    import pymc as pm

    with pm.Model() as m:
        x = pm.Data("x", np.linspace(-1.0, 1.0, _N))
        a = pm.Normal("a", 0.0, 1.0)
        b = pm.Normal("b", 0.0, 1.0)
        pm.Normal("y", a + b * x, _SIGMA, observed=np.zeros(_N), shape=x.shape)
    return m


def _line_contraction(x):
    """Known answer (linear-Gaussian, σ known): posterior covariance (I + XᵀX/σ²)⁻¹ with X = [1, x], the
    same for every dataset, so the expected contraction is 1 − its diagonal: constant x ≡ 1 identifies
    only a + b (a − b keeps its prior variance 2, so each of a, b contracts at most 1/2: 0.494);
    narrow x ∈ [0.6, 1.4]: 0.77, 0.78; spread x ∈ [−1, 1] (control, identifies both): 0.976, 0.942."""
    X = np.column_stack([np.ones(len(x)), x])
    return 1.0 - np.diag(np.linalg.inv(np.eye(2) + X.T @ X / _SIGMA**2))


_RANKING = ["spread", "narrow", "constant"]

#: NPE settings the npe tests rely on, pinned (bayesid.neural's defaults may change).
_NPE_PINNED = {"summary": "auto", "width": 64, "depth": 2, "summary_dim": None, "batch_size": 256,
               "val_fraction": 0.1, "weight_decay": 0.0, "linear_adjust": True, "flow": "nsf", "transforms": 3}


def _check_structure(dc):
    """The known ranking and directions: constant x leaves one uninformed direction (a − b) and
    identifies a + b; narrow and spread leave none."""
    assert [d for d, _ in dc.table.index] == _RANKING
    by = {r.design: r for r in dc.results}
    assert by["constant"].n_uninformed == 1 and by["constant"].combinations == ["a + b"]
    assert by["narrow"].n_uninformed == 0 and by["spread"].n_uninformed == 0


def test_line_designs_by_fisher_match_the_algebra():
    """The Fisher screen is exact for this linear-Gaussian model; the only error is the prior whitening
    from 2000 prior draws: relative error of a variance √(2/2000), so |ĉ − c| < 4·(1 − c)·√(2/2000)."""
    dc = designs.compare(_line_model(), _LINE, n_prior=8, random_seed=0)
    _check_structure(dc)
    for r in dc.results:
        c = _line_contraction(_LINE[r.design]["x"])
        got = np.array([r.predicted_contraction[p] for p in ("a", "b")])
        assert np.all(np.abs(got - c) < 4 * (1 - c) * np.sqrt(2 / 2000)), (r.design, got, c)


@pytest.mark.slow
def test_line_designs_by_mcmc_match_the_algebra():
    """MCMC on 4 datasets per design (1 chain × 300 draws, ESS ≥ 150 assumed): the expected contraction is
    the mean of per-dataset posterior/prior variance ratios, relative sd √(2/(150·4)) each plus the
    whitening's √(2/2000): |ĉ − c| < 4·(1 − c)·√(2/600 + 2/2000). Ranking and directions as the algebra."""
    dc = designs.compare_model(_line_model(), _LINE, method="mcmc", n_datasets=4, n_prior=8,
                               fit_kwargs={"draws": 300, "tune": 300}, random_seed=0, progressbar=False)
    _check_structure(dc)
    t = dc.table
    for d, x in _LINE.items():
        c = _line_contraction(x["x"])
        got = np.array([t.loc[(d, "default"), f"contraction[{p}]"] for p in ("a", "b")])
        assert np.all(np.abs(got - c) < 4 * (1 - c) * np.sqrt(2 / 600 + 2 / 2000)), (d, got, c)
    assert t.loc[("spread", "default"), "p_identified[a]"] == 1.0


@pytest.mark.slow
@pytest.mark.slice
@pytest.mark.neural
def test_line_designs_by_npe_agree():
    """One NPE per design (4000 simulations, 20 epochs), evaluated on 200 datasets per design: the ranking
    and directions of the algebra. Known bound: under constant x the ridge a − b keeps its prior variance
    2, so any correct posterior contracts a and b by at most 1/2 (0.494): ĉ < 0.5 + 4·se; narrow and
    spread contract both beyond 1/2 (0.77 … 0.98). Calibration: for z-scores of a calibrated posterior
    sd(z) = 1 with sampling sd 1/√(2·200) = 0.05: |sd(z) − 1| < 4·0.05."""
    pytest.importorskip("zuko")
    dc = designs.compare_model(_line_model(), _LINE, method="npe", n_datasets=200, n_prior=8, n_simulations=4000,
                               npe_kwargs={**_NPE_PINNED, "epochs": 20, "lr": 3e-3}, n_posterior_draws=500,
                               random_seed=0,
                               progressbar=False)
    _check_structure(dc)
    t = dc.table
    for p in ("a", "b"):
        assert t.loc[("constant", "default"), f"contraction[{p}]"] < 0.5 + 4 * t.loc[("constant", "default"),
                                                                                     f"contraction_se[{p}]"]
        for d in ("narrow", "spread"):
            assert t.loc[(d, "default"), f"contraction[{p}]"] > 0.5
        assert np.all(np.abs(t[f"z_sd[{p}]"] - 1) < 4 / np.sqrt(2 * 200)), t[f"z_sd[{p}]"]
    assert set(dc.training) == {(d, "default") for d in _LINE}
    html = dc.to_html(figures=False)
    assert "Per parameter over the simulated datasets" in html and "npe: one amortized posterior" in html


def test_design_comparison_bad_input():
    """Unknown design, prior design, parameter, method or option, and design values a model cannot take:
    clear errors before anything is simulated or fitted."""
    import pymc as pm

    from bayesid.errors import BadInputError
    from bayesid.simulate import DesignValueError

    with pytest.raises(BadInputError, match="unknown design 'nope'"):
        designs.compare("toy.collinear", designs=["nope"], n_prior=4)
    with pytest.raises(BadInputError, match="prior design 'wide'"):
        designs.compare("toy.collinear", priors={"wide": {"nope": Prior("normal", {"mu": 0, "sigma": 1})}})
    with pytest.raises(BadInputError, match="method='laplace'"):
        designs.compare("toy.collinear", method="laplace")
    with pytest.raises(BadInputError, match="unknown option"):
        designs.compare("toy.collinear", method="mcmc", n_dataset=3)
    m = _line_model()
    with pytest.raises(BadInputError, match="method="):
        designs.compare_model(m, _LINE, method="nuts")
    with pm.Model() as fixed:  # observed shape fixed at 10: a design with 3 values cannot be simulated
        x = pm.Data("x", np.zeros(_N))
        pm.Normal("y", pm.Normal("a") * x, 1.0, observed=np.zeros(_N))
    with pytest.raises(DesignValueError, match="shape=x.shape"):
        designs.compare_model(fixed, {"short": {"x": np.ones(3)}}, n_prior=4)
    with pytest.raises(BadInputError, match="rejected by the model"):
        designs.compare_model(m, {"text": {"x": ["a", "b"]}}, n_prior=4)

    def build(x, slope_sd=1.0):
        with pm.Model() as f:
            pm.Normal("y", pm.Normal("b", 0, slope_sd) * np.asarray(x), 1.0, observed=np.zeros(len(x)))
        return f

    with pytest.raises(BadInputError, match="rejected design 'd' / prior 'wide'"):
        designs.compare_model(build, {"d": {"x": np.ones(3)}}, priors={"wide": {"slope": 2.0}}, n_prior=4)
    with pytest.raises(BadInputError, match="n_datasets"):
        designs.compare_model(build, {"d": {"x": np.ones(3)}}, method="mcmc", n_datasets=0)


# ---------------------------------------------------------------- latent rates and gait, by fisher and mcmc
def _rates_build(model="rates.pairwise"):
    """The registered latent-rate programs as a factory: the prior design chooses the parameterisation
    (none: free log-rates; anchored: θ_0 = 0; zerosum: Σ θ = 0), the experimental design is all pairs."""
    spec = models.get(model)
    return spec.build(spec.simulate(design="all_pairs", random_seed=0), design="all_pairs")


_RATES_PRIORS = {"anchored": {"model": "rates.anchored"}, "zerosum": {"model": "rates.zerosum"}}


def _check_rates(dc):
    """Known answers (rates module): without a fix the common shift of the 6 log-rates is exactly
    unidentified (1 uninformed direction, every θ_i identified only in combination); anchoring or a
    zero-sum constraint removes it (0 uninformed, every free coordinate identified), so both rank first."""
    by = {r.prior: r for r in dc.results}
    for prior, name in (("default", "rates.pairwise"), ("anchored", "rates.anchored"), ("zerosum", "rates.zerosum")):
        assert by[prior].n_uninformed == len(models.get(name).known_answer("all_pairs").ridges), prior
    assert by["default"].n_uninformed == 1 and by["default"].n_identified == 0
    assert by["anchored"].n_identified == 5 and by["zerosum"].n_identified == 5
    assert dc.table.index[-1] == ("all_pairs", "default")


@pytest.mark.slow
def test_rates_fix_ranked_by_fisher():
    _check_rates(designs.compare_model(_rates_build, {"all_pairs": {}}, priors=_RATES_PRIORS, n_prior=16,
                                       random_seed=0))


@pytest.mark.slow
def test_rates_fix_ranked_by_mcmc():
    """The same ranking from NUTS on 3 datasets per parameterisation (1 chain × 300 draws). Known answer:
    along the shift the posterior equals the prior (ratio 1: one uninformed direction of the expected
    posterior); the fixed ones have contrast ratios ≈ 1/(1 + 30), so no dataset's own posterior keeps a
    direction at ≥ 0.8 of its prior variance. (A single dataset's estimate of the ratio-1 direction from
    300 correlated draws can fall below 0.8, so its per-dataset share is not asserted.)"""
    dc = designs.compare_model(_rates_build, {"all_pairs": {}}, priors=_RATES_PRIORS, method="mcmc",
                               n_datasets=3, n_prior=16, fit_kwargs={"draws": 300, "tune": 300},
                               random_seed=0, progressbar=False)
    _check_rates(dc)
    t = dc.table
    assert t.loc[("all_pairs", "anchored"), "p_uninformed_direction"] == 0.0
    assert t.loc[("all_pairs", "zerosum"), "p_uninformed_direction"] == 0.0


@pytest.mark.slow
def test_gait_mass_identified_by_force_plates_mcmc():
    """Which design identifies mass? Known answer (equations of motion): the accelerometer sees k and m
    only through k/m (1 uninformed direction, log k + log m, whose posterior is the prior exactly);
    force plates measure m·a and identify both. NUTS on 2 datasets per design of 1 s records
    (1 chain × 200 draws, the spec's sampler settings) ranks imu_grf first with that structure."""
    spec = models.get("gait.bslip")
    ds = [spec.make_design("imu_accel", duration=1.0), spec.make_design("imu_grf", duration=1.0)]
    dc = designs.compare(spec, designs=ds, method="mcmc", n_datasets=2, n_prior=8,
                         fit_kwargs={"draws": 200, "tune": 300}, random_seed=0, progressbar=False)
    by = {r.design: r for r in dc.results}
    assert by["imu_accel"].n_uninformed == 1 and by["imu_accel"].combinations == ["k/m"], by["imu_accel"]
    assert by["imu_grf"].n_uninformed == 0
    assert by["imu_grf"].verdicts["m"] == "identified" and by["imu_accel"].verdicts["m"] != "identified"
    assert dc.best[0] == "imu_grf"


@pytest.mark.slow
@pytest.mark.neural
def test_rates_fix_ranked_by_npe():
    """The same ranking from one NPE per parameterisation (4000 simulations, 20 epochs) on 100 datasets:
    the shift stays at its prior (one uninformed direction) only without a fix."""
    pytest.importorskip("zuko")
    dc = designs.compare_model(_rates_build, {"all_pairs": {}}, priors=_RATES_PRIORS, method="npe",
                               n_datasets=100, n_prior=16, n_simulations=4000,
                               npe_kwargs={**_NPE_PINNED, "epochs": 20, "lr": 3e-3}, n_posterior_draws=500,
                               random_seed=0,
                               progressbar=False)
    _check_rates(dc)


def _ratio_along(dc, design, weights):
    """Posterior/prior variance ratio along the unconstrained direction ``weights`` ({value name: w}),
    averaged over a design's datasets: ``(mean, se)``. The gait priors make log k and log m independent
    N(·, 0.1²), so the prior variance along u = (log k ± log m)/√2 is exactly 0.01. The se combines the
    spread over the n datasets with each variance estimate's own error from S posterior draws
    (relative sd √(2/S)): √(sd²/n + 2·mean²/(S·n))."""
    recs = [r for r in dc.records[(design, "default")] if not r.get("failed")]
    names = recs[0]["names"]
    u = np.array([weights.get(n, 0.0) for n in names], float)
    u /= np.linalg.norm(u)
    r = np.array([u @ np.array(x["cov"]) @ u for x in recs]) / 0.01
    n = len(r)
    return float(r.mean()), float(np.sqrt(r.var(ddof=1) / n + 2 * r.mean() ** 2 / (_GAIT_NPE_DRAWS * n)))


_GAIT_NPE_DRAWS = 500


@pytest.mark.slow
@pytest.mark.neural
def test_gait_mass_identified_by_force_plates_npe():
    """Which design identifies mass, by one NPE per design (4000 simulations of 1 s records, 30 epochs;
    every NPE setting pinned) on 100 datasets. Known answer (equations of motion): the accelerometer
    sees k and m only through k/m, so along log k + log m the posterior is the prior — variance ratio 1
    (contraction 0) — while log k − log m is
    identified (ratio ≤ 1 − 0.5, the verdicts' cut-off); force plates measure m·a and identify both
    (negative control: the log k + log m ratio ≤ 0.5). The summary agrees: one uninformed direction
    (k·m) and the combination k/m under imu_accel, none and m identified under imu_grf, imu_grf first.

    Tolerance of the ridge ratio: 4·√(se² + σ_train²), se from the 100 datasets (:func:`_ratio_along`)
    and σ_train = 0.020, the spread of the ratio over training/data seeds 0, 1, 2 (0.957, 0.917, 0.933,
    se 0.016–0.022 each). The dataset se alone is not enough: at this training size the NPE is
    consistently a little overconfident along the ridge (mean ratio 0.936, i.e. contraction 0.06, 3–4
    dataset se from 0 on every seed) — ≈ 0, and far above the 0.8 of an uninformed direction, but not
    exactly the prior."""
    pytest.importorskip("zuko")
    spec = models.get("gait.bslip")
    ds = [spec.make_design("imu_accel", duration=1.0), spec.make_design("imu_grf", duration=1.0)]
    npe = {**_NPE_PINNED, "epochs": 30, "lr": 1e-3}
    dc = designs.compare(spec, designs=ds, method="npe", n_datasets=100, n_prior=8, n_simulations=4000,
                         npe_kwargs=npe, n_posterior_draws=_GAIT_NPE_DRAWS, random_seed=0, progressbar=False)
    by = {r.design: r for r in dc.results}
    ridge, contrast = {"k_log__": 1.0, "m_log__": 1.0}, {"k_log__": 1.0, "m_log__": -1.0}
    r, se = _ratio_along(dc, "imu_accel", ridge)
    assert abs(r - 1.0) < 4 * np.hypot(se, 0.020), (r, se)
    assert _ratio_along(dc, "imu_accel", contrast)[0] <= 0.5
    assert _ratio_along(dc, "imu_grf", ridge)[0] <= 0.5
    assert by["imu_accel"].n_uninformed == 1 and by["imu_accel"].combinations == ["k/m"], by["imu_accel"]
    assert by["imu_grf"].n_uninformed == 0 and by["imu_grf"].verdicts["m"] == "identified"
    assert by["imu_accel"].verdicts["m"] != "identified"
    assert dc.best[0] == "imu_grf"
