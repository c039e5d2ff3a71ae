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


def test_pm_model_designs_by_fisher():
    """Known answer: with x2 = x1 only β1 + β2 enters, so β1 − β2 is uninformed and, with N(0,1) priors,
    β1's posterior variance is Var((β1−β2)/2) = 1/2 of the prior's: contraction 0.5 (exact in the
    linear-Gaussian model, which the Fisher screen is; tolerance 4 se of the whitening from 2000 prior
    draws, √(2/2000)·0.5 ≈ 0.016). Distinct covariates (control) identify everything."""
    m, D = _regression()
    dc = designs.compare(m, D, n_prior=8, random_seed=0)
    by = {r.design: r for r in dc.results}
    assert dc.best == ("distinct", "default")
    assert by["collinear"].n_uninformed == 1 and by["collinear"].combinations == ["beta1 + beta2"]
    assert by["distinct"].n_uninformed == 0
    assert abs(by["collinear"].predicted_contraction["beta1"] - 0.5) < 4 * 0.5 * np.sqrt(2 / 2000)
    assert by["distinct"].predicted_contraction["beta1"] > 0.95


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
    """MCMC on 3 simulated datasets per design (1 chain × 200 draws) gives the same ranking and, for β1
    under the collinear design, the known contraction 0.5: a variance ratio from ESS ≥ 100 draws has a
    relative sd ≤ √(2/100), so |ĉ − 0.5| < 4·0.5·√(2/100) ≈ 0.28; the distinct design (control)
    contracts β1 above 0.9 (algebra: 1 − 0.09/(20·Var x2) ≈ 0.99)."""
    m, D = _regression()
    mc = designs.compare_model(m, D, method="mcmc", n_datasets=3, random_seed=0, progressbar=False)
    t = mc.table
    assert mc.best == ("distinct", "default")
    assert abs(t.loc[("collinear", "default"), "contraction[beta1]"] - 0.5) < 4 * 0.5 * np.sqrt(2 / 100)
    assert t.loc[("distinct", "default"), "contraction[beta1]"] > 0.9
    assert t.loc[("collinear", "default"), "contraction[alpha]"] > 0.9


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
