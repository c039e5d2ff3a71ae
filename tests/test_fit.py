"""bayesid.fit: groups, reproducibility, caching, and clear errors."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr

import bayesid
from bayesid import models

GROUPS = {"posterior", "sample_stats", "log_likelihood", "log_prior", "observed_data", "prior",
          "unconstrained_prior", "unconstrained_posterior"}


def _model():
    spec = models.get("toy.product")
    return spec.build(spec.simulate(random_seed=0))


def test_fit_returns_all_groups_and_unconstrained_draws():
    import json

    tree = bayesid.fit(_model(), draws=200, tune=200, chains=2, random_seed=5, progressbar=False)
    assert GROUPS <= set(tree.children)
    # the prior predictive is not drawn by default, and the tree says so (not silently absent)
    assert "prior_predictive" not in tree.children
    assert "prior_predictive" in json.loads(tree.attrs["bayesid_not_computed"])
    assert json.loads(tree.attrs["bayesid_fallbacks"]) == []
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


_SEPARATE_PROCESS_FIT = """
import hashlib, sys
import numpy as np
import bayesid
spec = bayesid.models.get("toy.product")
tree = bayesid.fit(spec.build(spec.simulate(random_seed=0)), draws=100, tune=100, chains=2,
                   random_seed=int(sys.argv[1]), progressbar=False)
h = hashlib.sha256()
for g in ("posterior", "prior", "unconstrained_posterior"):
    for v in sorted(tree[g].data_vars):
        h.update(np.ascontiguousarray(tree[g][v].values).tobytes())
print("DRAWS", h.hexdigest())
"""


def _draws_digest(seed):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SEPARATE_PROCESS_FIT, str(seed)], capture_output=True,
                         text=True, timeout=600, check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("DRAWS"))


def test_same_seed_bit_identical_draws_in_two_processes():
    """Two fresh interpreters, same seed: byte-identical prior, posterior and unconstrained draws (the
    negative control, another seed changing them, is test_same_seed_same_draws_different_seed_different_draws;
    the digest itself is checked to depend on the draws there too)."""
    assert _draws_digest(11) == _draws_digest(11)


def test_auto_adaptation_is_low_rank_for_small_models_and_diag_for_large_ones():
    from bayesid.fit import LOW_RANK_MAX_DIM, choose_adaptation

    with pm.Model() as small:
        pm.Normal("x", shape=3)
    with pm.Model() as large:
        pm.Normal("x", shape=LOW_RANK_MAX_DIM + 1)
    assert choose_adaptation(small) == "low_rank"
    assert choose_adaptation(large) == "diag"
    assert choose_adaptation(large, "low_rank") == "low_rank"
    with pytest.raises(ValueError, match="adaptation"):
        choose_adaptation(small, "lowrank")


def test_vectorised_log_densities_equal_pymc_per_draw_ones():
    """bayesid.vectorize.log_density (one batched call) against PyMC's per-draw compute_log_likelihood /
    compute_log_prior on a model with transforms, a hierarchy, a discrete likelihood and named dims: equal to
    float rounding. Control: a perturbed posterior gives different values."""
    from pymc.stats import compute_log_likelihood, compute_log_prior

    from bayesid.vectorize import log_density

    rng = np.random.default_rng(0)
    with pm.Model(coords={"g": range(6)}) as m:
        mu = pm.Normal("mu")
        tau = pm.HalfNormal("tau")
        z = pm.Normal("z", dims="g")
        p = pm.Beta("p", 2, 2)
        pm.Normal("y", mu + tau * z[:, None], 1, observed=rng.normal(size=(6, 3)))
        pm.Binomial("k", 10, p, observed=3)
    prior = pm.sample_prior_predictive(draws=50, model=m, random_seed=2).prior
    tree = xr.DataTree.from_dict({"posterior": prior})
    with m:
        ref_ll = compute_log_likelihood(tree.copy(), extend_inferencedata=False, progressbar=False)
        ref_lp = compute_log_prior(tree.copy(), extend_inferencedata=False, progressbar=False)
    ll, lp = log_density(m, prior, "likelihood"), log_density(m, prior, "prior")
    for ref, got in ((ref_ll, ll), (ref_lp, lp)):
        assert set(ref.data_vars) == set(got.data_vars)
        for v in ref.data_vars:
            assert ref[v].dims == got[v].dims
            np.testing.assert_allclose(got[v].values, ref[v].values, rtol=1e-12, atol=1e-12)
    shifted = prior.copy()
    shifted["mu"] = shifted["mu"] + 0.1
    assert not np.allclose(log_density(m, shifted, "likelihood")["y"].values, ll["y"].values)


def test_vectorised_prior_draws_have_the_exact_prior_moments():
    """bayesid.vectorize.sample_prior against moments derived from the model: mu ~ N(0, 2) (variance 4),
    p ~ Beta(2, 3) (mean 0.4, variance 0.04), z_g ~ N(mu, tau) with tau ~ HalfNormal(1) so
    Cov(z_1, z_2) = Var(mu) = 4 and Var(z_g) = 4 + E[tau²] = 5, y ~ N(z, 1) so Var(y) = 6, a Deterministic
    d = 2·mu exactly. Each at 4.5 standard errors of n = 4000 draws (variances: SE from the sample fourth
    moment). Same seed → same draws; another seed → different draws (control)."""
    from bayesid.vectorize import sample_prior

    with pm.Model(coords={"g": range(3)}) as m:
        mu = pm.Normal("mu", 0, 2)
        tau = pm.HalfNormal("tau", 1)
        z = pm.Normal("z", mu, tau, dims="g")
        pm.Beta("p", 2, 3)
        pm.Deterministic("d", 2 * mu)
        pm.Normal("y", z[:, None], 1, observed=np.zeros((3, 2)))
    n = 4000
    t = sample_prior(m, n, random_seed=3, block=1500)  # three blocks, two block sizes
    pr = t["prior"]
    assert pr["mu"].shape == (1, n) and pr["z"].dims == ("chain", "draw", "g")
    assert t["prior_predictive"]["y"].shape == (1, n, 3, 2)

    def z_mean(x, mean):
        return (x.mean() - mean) / (x.std() / np.sqrt(len(x)))

    def z_var(x, var):
        c = (x - x.mean()) ** 2
        return (c.mean() - var) / (c.std() / np.sqrt(len(x)))

    mu_d, p_d = pr["mu"].values[0], pr["p"].values[0]
    zz, y = pr["z"].values[0], t["prior_predictive"]["y"].values[0]
    checks = [z_var(mu_d, 4.0), z_mean(p_d, 0.4), z_var(p_d, 0.04), z_var(zz[:, 0], 5.0), z_var(y[:, 1, 0], 6.0),
              z_mean((zz[:, 0] - zz[:, 0].mean()) * (zz[:, 1] - zz[:, 1].mean()), 4.0)]
    assert np.all(np.abs(checks) < 4.5), checks
    np.testing.assert_array_equal(pr["d"].values[0], 2 * mu_d)
    assert np.array_equal(sample_prior(m, n, random_seed=3, block=1500)["prior"]["mu"].values, pr["mu"].values)
    assert not np.array_equal(sample_prior(m, n, random_seed=4, block=1500)["prior"]["mu"].values, pr["mu"].values)
    # blocks are independent streams, not repeats of one another
    assert not np.array_equal(mu_d[:1500], mu_d[1500:3000])


# ------------------------------------------------------------------ cache keys (issue 16, helper C)
def _keyed_model(sigma=2.0, x=None, d=None, n=5):
    x = np.linspace(0.0, 1.0, n) if x is None else x
    with pm.Model() as m:
        dd = pm.Data("d", np.ones(n) if d is None else d)
        a = pm.Normal("a", 0.0, sigma)
        b = pm.HalfNormal("b", 1.0)
        pm.Normal("y", a * x + b * dd, 1.0, observed=np.zeros(n))
    return m


def _key(model, **kw):
    from bayesid.fit import _fingerprint

    args = dict(draws=100, tune=100, chains=1, prior_draws=1000, seed=1, extra=[0.8, "nutpie", "low_rank", []])
    args.update(kw)
    return _fingerprint(model, **args)


def test_cache_key_covers_design_covariates_data_values_priors_and_settings():
    """``model.str_repr()`` prints all of these models alike; the key must not."""
    base = _key(_keyed_model())
    assert _key(_keyed_model()) == base  # rebuilt identically: same key (the cache works)
    changed = {
        "design (n = 6)": _key(_keyed_model(n=6)),
        "covariate array": _key(_keyed_model(x=np.linspace(0.0, 1.01, 5))),
        "pm.Data value": _key(_keyed_model(d=np.full(5, 1.5))),
        "prior sigma 2.0 -> 2.004": _key(_keyed_model(sigma=2.004)),
        "seed": _key(_keyed_model(), seed=2),
        "sampler settings": _key(_keyed_model(), extra=[0.9, "nutpie", "low_rank", []]),
    }
    reprs = {m.str_repr() for m in (_keyed_model(), _keyed_model(sigma=2.004), _keyed_model(d=np.full(5, 1.5)))}
    assert len(reprs) == 1
    same = [k for k, v in changed.items() if v == base]
    assert not same, f"cache key ignores {same}"


@pytest.mark.slow  # two NUTS compilations (~50 s on 2 shared cores); the key test above is the fast check
def test_changed_prior_refits_instead_of_returning_the_stale_tree(tmp_path):
    path = tmp_path / "fit.nc"
    kw = dict(draws=100, tune=100, chains=1, random_seed=1, progressbar=False, cache=path)
    a = bayesid.fit(_keyed_model(), **kw)
    with pytest.warns(UserWarning, match="another model/data/settings"):
        b = bayesid.fit(_keyed_model(sigma=2.004), **kw)
    assert b.attrs["bayesid_fingerprint"] != a.attrs["bayesid_fingerprint"]
    assert not np.array_equal(a["posterior"]["a"].values, b["posterior"]["a"].values)


def test_posterior_is_saved_before_post_processing_and_resumed(tmp_path, monkeypatch):
    import sys

    fit_module = sys.modules["bayesid.fit"]  # the attribute bayesid.fit is the function

    path = tmp_path / "fit.nc"
    kw = dict(draws=100, tune=100, chains=1, random_seed=1, progressbar=False, cache=path)

    def boom(*a, **k):
        raise RuntimeError("post-processing failed")

    def quick_sample(**k):  # stands in for NUTS (what is tested is the bookkeeping around it)
        pr = pm.sample_prior_predictive(draws=k["draws"], random_seed=k["random_seed"]).prior
        return xr.DataTree.from_dict({"posterior": pr.to_dataset()[["a", "b"]]})

    import xarray as xr

    monkeypatch.setattr(pm, "sample", quick_sample)
    monkeypatch.setattr(fit_module, "add_unconstrained_groups", boom)
    with pytest.raises(RuntimeError) as info:
        bayesid.fit(_keyed_model(), **kw)
    assert f"saved at {path}" in "\n".join(getattr(info.value, "__notes__", []))
    monkeypatch.undo()
    monkeypatch.setattr(pm, "sample", lambda *a, **k: pytest.fail("sampled again instead of resuming"))
    tree = bayesid.fit(_keyed_model(), **kw)
    assert {"posterior", "log_likelihood", "log_prior", "prior", "unconstrained_prior",
            "unconstrained_posterior"} <= set(tree.children)
    assert tree.attrs["bayesid_complete"] == "true"
    assert "resumed" in tree.attrs["bayesid_notes"]


def test_customdist_without_random_returns_the_posterior_and_diagnose_skips_fisher():
    with pm.Model() as m:
        mu = pm.Normal("mu")
        pm.CustomDist("y", mu, logp=lambda v, mu: -0.5 * (v - mu) ** 2, observed=np.zeros(20))
    tree = bayesid.fit(m, draws=200, tune=200, chains=1, random_seed=2, progressbar=False)
    assert {"posterior", "log_likelihood", "prior", "unconstrained_posterior"} <= set(tree.children)
    assert "prior_predictive" not in tree.children
    assert "without random" in tree.attrs["bayesid_notes"]
    d = bayesid.diagnose(tree, model=m)
    assert d.fisher is None and any("Fisher information skipped" in n for n in d.notes)
    # 20 unit-variance observations, N(0, 1) prior: posterior variance 1/21, contraction 20/21
    row = d.table.loc["mu"]
    assert abs(row["contraction"] - 20 / 21) < 4 * row["contraction_se"]


# ------------------------------------------------------------------ post-processing (issue 11, helper H2)
def _quick_sample(**k):  # stands in for NUTS: what is tested is the post-processing around it
    pr = pm.sample_prior_predictive(draws=k["draws"] * k["chains"], random_seed=k["random_seed"]).prior
    ds = pr.to_dataset()[["a", "b"]].squeeze("chain", drop=True)
    ds = xr.Dataset({v: (("chain", "draw"), ds[v].values.reshape(k["chains"], k["draws"])) for v in ds.data_vars})
    return xr.DataTree.from_dict({"posterior": ds})


def test_failed_vectorisation_falls_back_visibly_with_the_same_values(monkeypatch):
    """A vectorised step that raises is redone by PyMC per draw: warned (naming the reason) and recorded
    in tree.attrs["bayesid_fallbacks"], with values equal to the vectorised ones (control: the same fit
    without the failure records no fallback)."""
    import json

    import bayesid.vectorize as vec

    monkeypatch.setattr(pm, "sample", _quick_sample)
    kw = dict(draws=50, tune=10, chains=2, random_seed=3, progressbar=False)
    good = bayesid.fit(_keyed_model(), **kw)
    assert json.loads(good.attrs["bayesid_fallbacks"]) == []

    def broken(*a, **k):
        raise NotImplementedError("no batched form for SomeOp")

    monkeypatch.setattr(vec, "log_densities", broken)
    monkeypatch.setattr(vec, "sample_prior", broken)
    with pytest.warns(vec.VectorizeFallbackWarning, match="no batched form for SomeOp"):
        bad = bayesid.fit(_keyed_model(), **kw)
    fallbacks = json.loads(bad.attrs["bayesid_fallbacks"])
    assert len(fallbacks) == 2 and all("SomeOp" in f for f in fallbacks)
    for g, v in (("log_likelihood", "y"), ("log_prior", "a"), ("log_prior", "b")):
        np.testing.assert_allclose(bad[g][v].values, good[g][v].values, rtol=1e-12)
    assert {"prior", "unconstrained_prior"} <= set(bad.children)


def test_compiled_post_processing_is_reused_for_the_same_model_and_data_only(monkeypatch):
    """A second fit of the same model object reuses the compiled log-density function (counted) and
    gives identical groups; a changed pm.Data value changes the key, so it is compiled again and the
    log-likelihood changes (control)."""
    import bayesid.vectorize as vec

    monkeypatch.setattr(pm, "sample", _quick_sample)
    builds = []
    orig = vec._log_density_function
    monkeypatch.setattr(vec, "_log_density_function", lambda *a: builds.append(1) or orig(*a))
    m = _keyed_model()
    kw = dict(draws=50, tune=10, chains=2, random_seed=3, progressbar=False)
    a = bayesid.fit(m, **kw)
    b = bayesid.fit(m, **kw)
    assert len(builds) == 1
    for g in ("log_likelihood", "log_prior", "prior", "unconstrained_posterior"):
        for v in a[g].data_vars:
            assert np.array_equal(a[g][v].values, b[g][v].values)
    with m:
        pm.set_data({"d": np.full(5, 3.0)})
    c = bayesid.fit(m, **kw)
    assert len(builds) == 2
    assert not np.allclose(c["log_likelihood"]["y"].values, a["log_likelihood"]["y"].values)


def test_prior_predictive_on_request_has_the_exact_predictive_variance():
    """fit(prior_predictive=True) adds the group: y_i ~ N(a x_i + b d_i, 1) with a ~ N(0, 2), b ~ HalfNormal(1)
    at x_0 = 0, d = 1 has Var(y_0) = 1 + Var(b) = 1 + (1 - 2/π); checked at 4.5 standard errors of the 1000
    draws (SE from the sample fourth moment); nothing recorded as not computed."""
    import json

    from unittest import mock

    with mock.patch.object(pm, "sample", _quick_sample):
        t = bayesid.fit(_keyed_model(), draws=500, tune=10, chains=2, random_seed=4, progressbar=False,
                        prior_predictive=True)
    assert "prior_predictive" not in json.loads(t.attrs["bayesid_not_computed"])
    y0 = t["prior_predictive"]["y"].values[0, :, 0]
    c = (y0 - y0.mean()) ** 2
    assert abs((c.mean() - (2 - 2 / np.pi)) / (c.std() / np.sqrt(len(c)))) < 4.5
