"""Foundation: the model contract, the registry, the toy models and their simulators."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from conftest import TOYS

import bayesid
from bayesid import models
from bayesid.models import BadDataError, Prior, UnknownDesignError, UnknownModelError

N_PP = 2000  # prior-predictive datasets per side in the agreement test
Z_MAX = 4.5  # two-sided; with ≤ 40 comparisons the family-wise false-alarm rate is < 3e-4


def _stats(y):
    """Per-dataset summaries: location, log spread, and the slope-like weighted mean, with squares."""
    y = np.asarray(y, float)
    n = y.shape[-1]
    w = np.linspace(-1.0, 1.0, n)
    t = np.stack([y.mean(-1), np.log(y.var(-1) + 1e-12) if n > 1 else y[..., 0] ** 2,
                  (y * w).sum(-1) / (w**2).sum() if n > 1 else y[..., 0]], axis=-1)
    return np.concatenate([t, t[:, :1] ** 2, t[:, 2:3] ** 2], axis=-1)


def _max_z(a, b):
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    return float(np.max(np.abs(a.mean(0) - b.mean(0)) / se))


def agreement(spec, design, simulate=None, seed=0):
    """Largest two-sample z between PyMC prior-predictive and simulator summary statistics."""
    d = spec.design(design)
    model = spec.build(spec.simulate(design=d, random_seed=seed), design=d)
    pp = pm.sample_prior_predictive(draws=N_PP, model=model, random_seed=seed)
    y_pymc = pp["prior_predictive"]["y"].values.reshape(N_PP, -1)
    theta = spec.sample_prior(N_PP, random_seed=seed + 1)
    sim = simulate or spec.simulate
    y_sim = sim(theta, design=d, random_seed=seed + 2)["y"]
    return _max_z(_stats(y_pymc), _stats(y_sim))


@pytest.mark.parametrize("name", TOYS)
def test_simulator_agrees_with_pymc_prior_predictive(name):
    spec = models.get(name)
    for design in spec.designs:
        assert agreement(spec, design) < Z_MAX, f"{name}/{design}"


def test_agreement_check_detects_a_doubled_noise_scale():
    """Negative control: the agreement test must fail when the simulator's σ is doubled."""
    spec = models.get("toy.additive")

    def wrong(theta, design, random_seed):
        d = spec.design(design)
        bad = models.Design(d.name, d.description, {**d.settings, "sigma": 2 * d["sigma"]})
        return spec.simulate(theta, design=bad, random_seed=random_seed)

    assert agreement(spec, "default", simulate=wrong) > Z_MAX
    ident = models.get("toy.identified")

    def wrong_sigma(theta, design, random_seed):
        return ident.simulate({**theta, "sigma": 2 * theta["sigma"]}, design=design, random_seed=random_seed)

    assert agreement(ident, "default", simulate=wrong_sigma) > Z_MAX


def test_agreement_check_detects_a_wider_prior():
    """Negative control: a simulator drawing from a prior twice as wide must fail the check."""
    spec = models.get("toy.additive")

    def wider(theta, design, random_seed):
        return spec.simulate({"a": 2 * theta["a"], "b": 2 * theta["b"]}, design=design, random_seed=random_seed)

    assert agreement(spec, "default", simulate=wider) > Z_MAX


@pytest.mark.parametrize("name", TOYS)
def test_every_toy_builds_simulates_and_has_known_answers(name):
    spec = models.get(name)
    assert spec.name == name and spec.description
    for design in spec.designs:
        data = spec.simulate(design=design, random_seed=0)
        assert {k: v.shape for k, v in data.items()} == spec.data_shapes(design)
        m = spec.build(data, design=design)
        assert {rv.name for rv in m.free_RVs} == set(spec.parameter_names)
        ka = spec.known_answer(design)
        named = set(ka.identified + ka.weakly_identified + ka.not_identified + ka.in_combination)
        assert named == set(spec.parameter_names), f"{name}/{design}: known answer must cover every parameter"
    batch = spec.simulate(spec.sample_prior(7, random_seed=1), random_seed=2)
    assert all(v.shape[0] == 7 for v in batch.values())


def test_simulate_is_reproducible_and_seed_sensitive():
    spec = models.get("toy.collinear")
    th = spec.sample_prior(5, random_seed=3)
    a = spec.simulate(th, random_seed=11)["y"]
    assert np.array_equal(a, spec.simulate(th, random_seed=11)["y"])
    assert not np.allclose(a, spec.simulate(th, random_seed=12)["y"])
    assert np.array_equal(th["alpha"], spec.sample_prior(5, random_seed=3)["alpha"])


def test_registry_lists_and_rejects_unknown_names():
    names = models.list()
    assert set(TOYS) <= set(names)
    with pytest.raises(UnknownModelError, match="toy.additive") as err:
        models.get("toy.addative")
    assert "Did you mean 'toy.additive'" in str(err.value)
    with pytest.raises(UnknownDesignError, match="Valid designs: collinear, distinct"):
        models.get("toy.collinear").design("orthogonal")


def test_bad_data_gets_clear_errors():
    spec = models.get("toy.additive")
    y = spec.simulate(random_seed=0)["y"]
    with pytest.raises(BadDataError, match="NaN"):
        spec.build({"y": np.where(np.arange(y.size) == 3, np.nan, y)})
    with pytest.raises(BadDataError, match=r"shape \(49,\).*\(50,\)"):
        spec.build({"y": y[:-1]})
    with pytest.raises(BadDataError, match="lack"):
        spec.build({"x": y})
    with pytest.raises(KeyError, match="unknown parameter"):
        spec.build({"y": y}, priors={"c": Prior("normal", {"mu": 0, "sigma": 1})})
    with pytest.raises(ValueError, match="Unknown prior distribution"):
        Prior("cauchyish", {})
    with pytest.raises(BadDataError, match="batch"):
        spec.simulate({"a": np.zeros(3), "b": 0.0})


def test_prior_override_changes_the_pymc_program():
    spec = models.get("toy.weak")
    m = spec.build(spec.simulate(random_seed=0), priors={"mu": Prior("normal", {"mu": 3.0, "sigma": 0.1})})
    draws = pm.draw(m["mu"], draws=2000, random_seed=1)
    assert abs(draws.mean() - 3.0) < 4 * 0.1 / np.sqrt(2000)


def test_package_layout_has_no_top_level_models_package(tmp_path):
    """bayesid.models / bayesid.diagnostics map the root folders; nothing named `models` is installed."""
    import subprocess
    import sys

    code = ("import importlib.util, bayesid.models, bayesid.diagnostics;"
            "print(importlib.util.find_spec('models'), importlib.util.find_spec('diagnostics'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"]
    assert bayesid.models.__name__ == "bayesid.models"


@pytest.mark.parametrize("name", models.list())
def test_every_registered_model_honours_the_contract(name):
    """Every registered family loads, records a known answer for each design, and its simulator's
    output builds its PyMC program under every design."""
    spec = models.get(name)
    assert spec.name == name and spec.parameters and spec.default_design in spec.designs
    assert set(spec.known_answers) == set(spec.designs)
    for design in spec.designs:
        data = spec.simulate(design=design, random_seed=0)
        assert {k: np.shape(v) for k, v in data.items() if k in spec.data_shapes(design)} == \
            {k: tuple(v) for k, v in spec.data_shapes(design).items()}
        m = spec.build(data, design=design)
        assert set(spec.parameter_names) <= {rv.name for rv in m.free_RVs} | {v.name for v in m.deterministics}
