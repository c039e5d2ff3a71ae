"""Shared fixtures: fits are cached per session so each model/design is sampled once."""

from __future__ import annotations

import functools
import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("PYTENSOR_FLAGS", "")

TOYS = ["toy.additive", "toy.product", "toy.scale", "toy.collinear", "toy.identified", "toy.weak"]


@functools.cache
def fitted(name, design=None, draws=1000, chains=4, seed=1, truth_key=None):
    """(spec, model, tree, truth) for a registered model, simulated at its true values (cached)."""
    import numpy as np

    import bayesid

    spec = bayesid.models.get(name)
    truth = spec.true_values()
    if truth_key is not None:
        truth.update({k: np.asarray(v, float) for k, v in truth_key})
    data = spec.simulate(truth, design=design, random_seed=seed)
    model = spec.build(data, design=design)
    tree = bayesid.fit(model, draws=draws, tune=1000, chains=chains, random_seed=seed, progressbar=False)
    return spec, model, tree, truth


@functools.cache
def diagnosed(name, design=None, fisher=True, truth_key=None):
    import bayesid

    spec, model, tree, truth = fitted(name, design, truth_key=truth_key)
    return bayesid.diagnose(tree, model=model if fisher else None, truth=truth, random_seed=0)


@pytest.fixture
def fit_cached():
    return fitted


@pytest.fixture
def diag_cached():
    return diagnosed
