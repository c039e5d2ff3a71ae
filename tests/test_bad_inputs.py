"""Bad and awkward inputs (issue 16): each gets a clear, documented error — or, where the input is
legitimate, an answer that says what was done with it.

``BAD_INPUTS`` is one table, one row per input: an id, a callable that *performs* the bad call (it
receives pytest's ``tmp_path``), the expected exception type and words its message must contain.
Add a row to cover a new input. Inputs that are not errors (a Deterministic, an imputed value, a
Beta(0.1, 0.1) prior, a constant parameter, a changed cache key...) have their own tests below.

Everything here is fast: hand-built DataTrees of exact draws, and fits of 1 chain × 100 draws.
"""

from __future__ import annotations

import time

import numpy as np
import pymc as pm
import pytest
import xarray as xr

import bayesid
from bayesid.errors import BadInputError, BayesidError, CacheError, EstimatorFileError, ModelMismatchError
from bayesid.diagnostics import diagnose, extract_draws
from bayesid.diagnostics.draws import CONSTANT_RTOL, BadDrawsError, UnknownVariableError

TINY = dict(draws=100, tune=100, chains=1, random_seed=1, progressbar=False)


# --------------------------------------------------------------------------------------- helpers
def _tree(prior: dict, post: dict, observed: dict | None = None, attrs: dict | None = None) -> xr.DataTree:
    """A hand-built tree: ``prior`` values (n,) or (n, k), ``post`` values (chains, draws[, k])."""

    def ds(d, dims):
        out = xr.Dataset()
        for k, v in d.items():
            v = np.asarray(v, float)
            out[k] = (dims + [f"{k}_dim_{i}" for i in range(v.ndim - len(dims))], v)
        return out

    groups = {"prior": ds({k: np.asarray(v)[None] for k, v in prior.items()}, ["chain", "draw"]),
              "posterior": ds(post, ["chain", "draw"])}
    if observed:
        groups["observed_data"] = xr.Dataset({k: ("obs", np.asarray(v, float)) for k, v in observed.items()})
    t = xr.DataTree.from_dict(groups)
    t.attrs.update(attrs or {})
    return t


def _ab_tree(seed=0, n_prior=2000, chains=2, draws=300):
    """a, b ~ N(0, 1) a priori; exact Gaussian posterior of a + b from 20 observations of σ = 1."""
    rng = np.random.default_rng(seed)
    # posterior of (a, b) under y_i ~ N(a + b, 1), i = 1..20, ȳ = 1: precision I + 20·11ᵀ
    prec = np.eye(2) + 20.0 * np.ones((2, 2))
    cov = np.linalg.inv(prec)
    mean = cov @ (20.0 * np.ones(2))
    q = rng.multivariate_normal(mean, cov, size=(chains, draws))
    p = rng.standard_normal((n_prior, 2))
    return _tree({"a": p[:, 0], "b": p[:, 1]}, {"a": q[..., 0], "b": q[..., 1]})


def _toy_model(sigma=2.0, x=None, data=None, y=None, n=5):
    x = np.linspace(0.0, 1.0, n) if x is None else x
    with pm.Model() as m:
        d = pm.Data("d", np.ones(n) if data is None else data)
        a = pm.Normal("a", 0.0, sigma)
        b = pm.HalfNormal("b", 1.0)
        pm.Normal("y", a * x + b * d, 1.0, observed=np.zeros(n) if y is None else y)
    return m


def _netcdf(path):
    xr.DataTree.from_dict({"posterior": xr.Dataset({"a": ("draw", np.arange(3.0))})}).to_netcdf(path)
    return path


def _fit_cache(path_of):
    def run(tmp_path):
        return bayesid.fit(_toy_model(), cache=path_of(tmp_path), **TINY)
    return run


def _truncated_netcdf(tmp_path):
    p = _netcdf(tmp_path / "t.nc")
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    return p


def _parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "fit.nc"


# ----- neural estimators (trained once per session, tiny)
_EST = {}


def _estimator():
    if "est" not in _EST:
        torch = pytest.importorskip("torch")
        torch.set_num_threads(1)
        from bayesid.neural import PointEstimator

        _EST["est"] = PointEstimator(epochs=2, width=16, random_seed=0).fit("toy.additive", n_simulations=400)
    return _EST["est"]


def _saved(tmp_path, mutate=None):
    p = _estimator().save(tmp_path / "est.pt")
    if mutate is not None:
        b = bytearray(p.read_bytes())
        p.write_bytes(bytes(mutate(b)))
    return p


def _flip(b):
    mid = len(b) // 2
    for i in range(mid, mid + 200):
        b[i] ^= 0xFF
    return b


def _load(path_of):
    def run(tmp_path):
        from bayesid.neural import load

        return load(path_of(tmp_path))
    return run


def _predict(x):
    def run(tmp_path):
        return _estimator().predict(x(tmp_path) if callable(x) else x)
    return run


def _compare_other_model(tmp_path):
    """An estimator of toy.additive against a diagnosis of another model that also has a, b."""
    tree = _ab_tree()
    tree.attrs["bayesid_model_fingerprint"] = "another model"
    return bayesid.compare(diagnose(tree), _estimator(), n_test=20, random_seed=0)


def _designs_compare(**kw):
    def run(tmp_path):
        from bayesid import designs
        from bayesid.models import Prior

        args = dict(spec="toy.additive", n_prior=20, random_seed=0)
        args.update(kw)
        if args.get("priors") == "flat":
            args["priors"] = {"a": Prior("normal", {"mu": 0.0, "sigma": 2.0})}
        return designs.compare(**args)
    return run


def _constant_vector_component(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.standard_normal((1000, 2))
    p[:, 1] = 1.0
    q = rng.standard_normal((2, 200, 2))
    q[..., 1] = 1.0
    return extract_draws(_tree({"theta": p}, {"theta": q}))


def _infinite_posterior_unc(tmp_path):
    """A posterior draw exactly on the boundary (0 for a logged positive parameter)."""
    rng = np.random.default_rng(0)
    q = rng.uniform(0.5, 1.5, size=(2, 100))
    q[0, 0] = 0.0
    return extract_draws(_tree({"a": rng.uniform(0.5, 1.5, size=1000)}, {"a": q}), transforms={"a": "log"})


BAD_INPUTS = [
    # id, call(tmp_path), exception, words the message must contain
    ("cache-garbage", _fit_cache(lambda t: (t / "g.nc").write_text("garbage") and t / "g.nc"),
     CacheError, ["is unreadable", "delete it or pass another path"]),
    ("cache-empty", _fit_cache(lambda t: (t / "e.nc").touch() or t / "e.nc"),
     CacheError, ["is unreadable", "empty", "delete it or pass another path"]),
    ("cache-directory", _fit_cache(lambda t: (t / "d.nc").mkdir() or t / "d.nc"),
     CacheError, ["is unreadable", "directory", "delete it or pass another path"]),
    ("cache-truncated", _fit_cache(_truncated_netcdf),
     CacheError, ["is unreadable", "delete it or pass another path"]),
    ("cache-not-bayesid", _fit_cache(lambda t: _netcdf(t / "other.nc")),
     CacheError, ["not a bayesid cache", "will not overwrite"]),
    ("cache-unwritable", _fit_cache(_parent_is_a_file),
     CacheError, ["cannot be written", "before sampling"]),
    ("var_names-typo", lambda t: diagnose(_ab_tree(), var_names=["a", "bb"]),
     UnknownVariableError, ["'bb'", "valid names", "'a'", "'b'"]),
    ("truth-unknown-key", lambda t: diagnose(_ab_tree(), truth={"a": 0.5, "c": 1.0}),
     UnknownVariableError, ["unknown key", "'c'"]),
    ("constant-component-of-a-vector", _constant_vector_component,
     BadDrawsError, ["theta[1]", "constant in the prior"]),
    ("all-parameters-constant", lambda t: extract_draws(_tree({"a": np.ones(1000)}, {"a": np.ones((1, 200))})),
     BadDrawsError, ["constant in the prior", "nothing to diagnose"]),
    ("posterior-infinite-unconstrained", _infinite_posterior_unc,
     BadDrawsError, ["infinite in unconstrained coordinates", "a_log__", "refit"]),
    ("estimator-bytes-flipped", _load(lambda t: _saved(t, _flip)),
     EstimatorFileError, ["corrupt", "checksum"]),
    ("estimator-truncated", _load(lambda t: _saved(t, lambda b: b[: len(b) // 2])),
     EstimatorFileError, ["corrupt", "truncated"]),
    ("estimator-text-file", _load(lambda t: (t / "x.pt").write_text("hello\n") and t / "x.pt"),
     EstimatorFileError, ["not a bayesid estimator file"]),
    ("estimator-missing-file", _load(lambda t: t / "nope.pt"),
     EstimatorFileError, ["no such file"]),
    ("predict-wrong-shape", _predict(np.zeros((3, 7), np.float32)),
     BadInputError, ["expected shape", "(n, 1, 50)", "(3, 7)", "dict"]),
    ("predict-nan", _predict(lambda t: {"y": np.full((2, 50), np.nan)}),
     BadInputError, ["NaN"]),
    ("compare-diagnosis-of-another-model", _compare_other_model,
     ModelMismatchError, ["another model", "trained on (toy.additive / default)"]),
    ("designs-compare-flat-priors", _designs_compare(priors="flat"),
     BadInputError, ["priors", "prior design name", "{name: {parameter: Prior}}"]),
    ("designs-compare-n_prior-0", _designs_compare(n_prior=0),
     BadInputError, ["n_prior", "positive"]),
]


@pytest.mark.parametrize("call, exc, words", [r[1:] for r in BAD_INPUTS], ids=[r[0] for r in BAD_INPUTS])
def test_bad_input_gives_a_clear_documented_error(tmp_path, call, exc, words):
    with pytest.raises(exc) as info:
        call(tmp_path)
    assert isinstance(info.value, BayesidError)
    msg = str(info.value)
    missing = [w for w in words if w.lower() not in msg.lower()]
    assert not missing, f"message lacks {missing}: {msg}"


def test_unreadable_or_foreign_cache_is_never_overwritten(tmp_path):
    for name, make in [("g.nc", lambda p: p.write_text("garbage")), ("other.nc", _netcdf)]:
        p = tmp_path / name
        make(p)
        before = p.read_bytes()
        with pytest.raises(CacheError):
            bayesid.fit(_toy_model(), cache=p, **TINY)
        assert p.read_bytes() == before


def test_unwritable_cache_fails_before_sampling(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(CacheError):
        bayesid.fit(_toy_model(), cache=_parent_is_a_file(tmp_path), **TINY)
    assert time.perf_counter() - t0 < 5.0  # no NUTS (compiling and sampling take longer)


def test_estimator_file_round_trip_checksum_and_classmethod_load(tmp_path):
    from bayesid.neural import NPE, PointEstimator

    est = _estimator()
    p = est.save(tmp_path / "e.pt")
    assert p.read_bytes().startswith(b"BAYESID-ESTIMATOR\n")
    back = PointEstimator.load(p)
    x = {"y": np.random.default_rng(0).standard_normal((4, 50))}
    np.testing.assert_array_equal(back.predict_unconstrained(x), est.predict_unconstrained(x))
    with pytest.raises(EstimatorFileError, match="holds a PointEstimator, not a NPE"):
        NPE.load(p)


def test_training_fingerprint_is_the_model_before_the_data():
    """Same model and design, two datasets: one fingerprint; another design, prior or model: another."""
    from bayesid.models import Prior
    from bayesid.pymc_utils import model_fingerprint

    spec = bayesid.models.get("toy.additive")

    def fp(seed, design=None, priors=None, name="toy.additive"):
        s = bayesid.models.get(name)
        return model_fingerprint(s.build(s.simulate(design=design, random_seed=seed), design=design,
                                         priors=priors), observed=False)

    base = fp(0)
    assert fp(1) == base
    assert fp(0, design="small") != base
    assert fp(0, priors={"a": Prior("normal", {"mu": 0.0, "sigma": 1.001})}) != base
    assert fp(0, name="toy.collinear") != fp(0, name="toy.identified")
    assert _estimator().meta["fingerprint"] == base  # what fit() writes for a fit of toy.additive
    assert spec.name == "toy.additive"


# ------------------------------------------------------------------ legitimate but awkward inputs
def _prior_tree(model, n_prior=1500, seed=0):
    """Prior draws of ``model`` as prior group, and (a stand-in posterior) the next draws as posterior."""
    pr = pm.sample_prior_predictive(draws=n_prior + 400, model=model, random_seed=seed).prior
    prior = {k: pr[k].values[0, :n_prior] for k in pr.data_vars}
    post = {k: pr[k].values[0, n_prior:].reshape(2, 200, *pr[k].shape[2:]) for k in pr.data_vars}
    return _tree(prior, post)


def test_deterministic_is_not_diagnosed_as_a_parameter_unless_asked():
    with pm.Model() as m:
        a = pm.Normal("a")
        b = pm.Normal("b")
        pm.Deterministic("s", a + b)
        pm.Normal("y", a + b, 1.0, observed=np.zeros(3))
    tree = _prior_tree(m)
    assert "s" in tree["posterior"] and "s" in tree["prior"]
    d = diagnose(tree, model=m, fisher=False)
    assert sorted(d.table.index) == ["a", "b"]
    assert any("Deterministic(s) s left out" in n for n in d.notes) and "Note: Deterministic" in d.summary()
    # without model=, a log_prior group (pm.compute_log_prior) tells the free parameters too
    t2 = tree.copy()
    t2["log_prior"] = xr.DataTree(xr.Dataset({k: t2["posterior"][k] * 0 for k in ("a", "b")}))
    assert sorted(diagnose(t2).table.index) == ["a", "b"]
    assert "s" in diagnose(tree, model=m, var_names=["a", "b", "s"], fisher=False).table.index  # asked
    # a plain tree with neither: an exact (log-)linear function of the other draws is recognised
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(size=(2, 1500))
    qa, qb = rng.lognormal(0, 0.1, size=(2, 2, 200))
    plain = _tree({"a": a, "b": b, "s": a + 2 * b, "r": a * b}, {"a": qa, "b": qb, "s": qa + 2 * qb, "r": qa * qb})
    d3 = diagnose(plain)
    assert sorted(d3.table.index) == ["a", "b"] and any("r, s left out" in n for n in d3.notes)
    # negative control: three independent parameters are all kept
    c = rng.lognormal(size=1500)
    keep = _tree({"a": a, "b": b, "c": c}, {"a": qa, "b": qb, "c": rng.lognormal(0, 0.1, size=(2, 200))})
    assert sorted(diagnose(keep).table.index) == ["a", "b", "c"] and not diagnose(keep).notes


def test_imputed_observations_are_excluded_with_a_note():
    with pm.Model() as m:
        mu = pm.Normal("mu")
        pm.Normal("y", mu, 1.0, observed=np.array([0.1, np.nan, -0.3, np.nan]))
    assert "y_unobserved" in [rv.name for rv in m.free_RVs]  # PyMC imputes the NaNs as parameters
    d = diagnose(_prior_tree(m), model=m, fisher=False)
    assert list(d.table.index) == ["mu"]
    assert any("y_unobserved left out" in n and "imputed" in n for n in d.notes)


def test_beta_prior_draws_on_the_boundary_are_dropped_with_a_count():
    """Beta(0.1, 0.1): draws that round to exactly 0 or 1 have logit ±inf. They are dropped (count
    reported) and the contraction is finite and right: 40 successes in 100 trials give a
    Beta(40.1, 60.1) posterior, prior variance 0.25/1.2 (Beta(a, a): 1/(4(2a+1)))."""
    from bayesid.fit import add_unconstrained_groups

    with pm.Model() as m:
        p = pm.Beta("p", 0.1, 0.1)
        pm.Binomial("k", n=100, p=p, observed=40)
    rng = np.random.default_rng(3)
    prior = rng.beta(0.1, 0.1, size=4000)
    prior[:7] = 0.0
    prior[7:12] = 1.0
    post = rng.beta(40.1, 60.1, size=(2, 500))
    tree = _tree({"p": prior}, {"p": post})
    add_unconstrained_groups(tree, m)
    assert np.isinf(tree["unconstrained_prior"]["p_logodds__"].values).sum() >= 12
    d = diagnose(tree, model=m, fisher=False)
    with np.errstate(divide="ignore"):
        ok = np.isfinite(np.log(prior) - np.log1p(-prior))
    n_bad = int((~ok).sum())
    assert d.draws.n_prior_dropped == n_bad >= 12
    assert any(f"{n_bad} of 4000 prior draws dropped" in n for n in d.notes)
    row = d.table.loc["p"]
    assert np.isfinite(d.table[["contraction", "contraction_unc", "overlap"]].values).all()
    kept = prior[ok]
    exact = 1 - (40.1 * 60.1 / (100.2 ** 2 * 101.2)) / kept.var()
    assert abs(row["contraction"] - exact) < 4 * row["contraction_se"]
    assert row["verdict"] == "identified"


def test_parameter_constant_in_the_prior_is_left_out_with_a_note():
    rng = np.random.default_rng(0)
    c_prior = 1.0 + 1e-16 * rng.standard_normal(2000)  # variance ~1e-32: a constant up to rounding
    c_post = 1.0 + 1e-16 * rng.standard_normal((2, 200))
    tree = _tree({"a": rng.standard_normal(2000), "c": c_prior},
                 {"a": 0.1 * rng.standard_normal((2, 200)), "c": c_post})
    d = diagnose(tree)
    assert list(d.table.index) == ["a"]
    assert any("c left out: constant in the prior" in n for n in d.notes)
    assert np.isfinite(d.table["contraction"]).all() and d.table.loc["a", "contraction"] > 0.9
    # the relative tolerance keeps a genuinely small-scale parameter
    tree2 = _tree({"a": 1e-12 * rng.standard_normal(2000)}, {"a": 1e-13 * rng.standard_normal((2, 200))})
    assert list(diagnose(tree2).table.index) == ["a"]
    assert CONSTANT_RTOL < 1e-6


def test_truth_missing_a_variable_says_why_z_is_nan():
    d = diagnose(_ab_tree(), truth={"a": 0.5})
    assert np.isnan(d.table.loc["b", "z"]) and any("truth lacks b" in n for n in d.notes)


def test_fisher_on_a_var_names_subset_holds_the_others_at_their_draws():
    """diagnose(var_names=['a'], model=m): the Fisher analysis of a alone (the sub-block of the score;
    y ~ N(a + b, 1), n = 20: information 20 per unit a, prior variance 1, whitened λ = 20)."""
    with pm.Model() as m:
        a = pm.Normal("a")
        b = pm.Normal("b")
        pm.Normal("y", a + b, 1.0, observed=np.ones(20))
    d = diagnose(_ab_tree(), model=m, var_names=["a"], fisher_draws=8, random_seed=0)
    assert list(d.table.index) == ["a"]
    assert any("Fisher information of a only, with b held at their posterior draws" in n for n in d.notes)
    lam = d.fisher.eigenvalues[0]
    # 8 draws × 20 replicates of a chi-square-like average: relative sd sqrt(2/160) ≈ 0.11
    assert abs(lam / (20.0 * d.prior_cov[0, 0]) - 1) < 4 * np.sqrt(2 / 160)
