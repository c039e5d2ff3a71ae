"""bayesid.fit: groups, reproducibility, caching, and clear errors."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

import bayesid
from bayesid import models

GROUPS = {"posterior", "sample_stats", "log_likelihood", "log_prior", "observed_data", "prior",
          "prior_predictive", "unconstrained_prior", "unconstrained_posterior"}


def _model():
    spec = models.get("toy.product")
    return spec.build(spec.simulate(random_seed=0))


def test_fit_returns_all_groups_and_unconstrained_draws():
    tree = bayesid.fit(_model(), draws=200, tune=200, chains=2, random_seed=5, progressbar=False)
    assert GROUPS <= set(tree.children)
    up, p = tree["unconstrained_posterior"], tree["posterior"]
    # the unconstrained coordinates of a positive parameter are exactly its log
    np.testing.assert_allclose(up["a_log__"].values, np.log(p["a"].values), rtol=1e-10)
    np.testing.assert_allclose(tree["unconstrained_prior"]["b_log__"].values,
                               np.log(tree["prior"]["b"].values), rtol=1e-10)
    assert tree["posterior"].sizes["chain"] == 2 and tree["posterior"].sizes["draw"] == 200
    assert tree.attrs["random_seed"] == "5"


def test_same_seed_same_draws_different_seed_different_draws():
    m = _model()
    kw = dict(draws=100, tune=100, chains=2, progressbar=False)
    a = bayesid.fit(m, random_seed=7, **kw)
    b = bayesid.fit(m, random_seed=7, **kw)
    c = bayesid.fit(m, random_seed=8, **kw)
    for g in ("posterior", "prior"):
        assert np.array_equal(a[g]["a"].values, b[g]["a"].values)
        assert not np.array_equal(a[g]["a"].values, c[g]["a"].values)


def test_cache_resumes_an_expensive_run(tmp_path):
    m = _model()
    path = tmp_path / "fit.nc"
    a = bayesid.fit(m, draws=100, tune=100, chains=2, random_seed=3, cache=path, progressbar=False)
    assert path.exists()
    b = bayesid.fit(m, draws=100, tune=100, chains=2, random_seed=3, cache=path, progressbar=False)
    np.testing.assert_array_equal(a["posterior"]["a"].values, b["posterior"]["a"].values)
    assert b.attrs["bayesid_fingerprint"] == a.attrs["bayesid_fingerprint"]
    with pytest.warns(UserWarning, match="another model/data/settings"):
        bayesid.fit(m, draws=100, tune=100, chains=2, random_seed=4, cache=path, progressbar=False)


def test_fit_rejects_discrete_parameters_and_non_models():
    with pm.Model() as m:
        k = pm.Poisson("k", 3.0)
        pm.Normal("y", k, 1.0, observed=np.zeros(3))
    with pytest.raises(TypeError, match="Discrete parameter.*marginalize"):
        bayesid.fit(m, draws=10, tune=10, chains=1)
    with pytest.raises(TypeError, match="takes a pymc.Model"):
        bayesid.fit("toy.additive")
