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
