"""The diagnostics core against known answers derived from the model equations, with negative controls.

Tolerances: the MCSE of a variance ratio comes from the ESS of the squared deviations
(``relative_variance_se``), about sqrt(2/n) for n effective Gaussian draws; eigenvector angles err by
about that over the eigen-gap. We allow 4 SE.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from conftest import diagnosed, fitted

import bayesid
from bayesid.diagnostics import BadDrawsError, MissingGroupError, Thresholds, name_combination
from bayesid.models import Prior

CASES = [("toy.additive", "default"), ("toy.product", "default"), ("toy.scale", "default"),
         ("toy.collinear", "collinear"), ("toy.collinear", "distinct"), ("toy.identified", "default"),
         ("toy.weak", "few"), ("toy.weak", "many")]


def _vec(loadings, names):
    v = np.array([loadings.get(n, 0.0) for n in names], float)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("name,design", CASES)
def test_known_answer(name, design):
    """Verdicts, ridges and combinations match what the algebra says — including no ridge at all
    for the identified controls (collinear/distinct, identified, weak/many)."""
    diag = diagnosed(name, design)
    spec = bayesid.models.get(name)
    ka = spec.known_answer(design)
    v = diag.verdicts
    assert diag.convergence.ok, diag.convergence.problems
    for group, verdict in ((ka.identified, "identified"), (ka.in_combination, "identified only in combination"),
                           (ka.weakly_identified, "weakly identified"), (ka.not_identified, "not identified")):
        for p in group:
            assert v[p] == verdict, f"{name}/{design}: {p} is {v[p]!r}, expected {verdict!r}"
    draw_ridges = [d for d in diag.directions if d.verdict == "not identified"]
    assert len(draw_ridges) == len(ka.ridges)
    assert diag.fisher.global_null_dim == len(ka.ridges)
    ess = min(diag.table["ess_bulk"])
    cos_min = np.cos(4 * np.sqrt(2 / ess))
    for known in ka.ridges:
        kv = _vec(known, diag.unconstrained_names)
        for found in (draw_ridges, [d for d in diag.fisher_directions if d.verdict == "not identified"]):
            best = max(abs(kv @ _vec(r.loadings, diag.unconstrained_names)) for r in found)
            assert best >= cos_min, f"{name}: ridge {known} not found (best |cos| {best:.3f} < {cos_min:.3f})"
        # a true ridge keeps the prior's width: ratio 1 within 4 MCSE
        r = max(draw_ridges, key=lambda d: abs(kv @ _vec(d.loadings, diag.unconstrained_names)))
        assert abs(r.ratio - 1.0) < 4 * r.ratio_se, (r.ratio, r.ratio_se)
    assert {c.name for c in diag.combinations} == set(ka.combinations)
    for c in diag.combinations:
        assert c.contraction > 0.9
    assert not diag.fisher.curved_ridge


def test_weak_model_contraction_equals_the_conjugate_answer():
    diag = diagnosed("toy.weak", "few")
    spec = bayesid.models.get("toy.weak")
    exact = spec.exact_contraction(spec.design("few"))  # = 1/3
    row = diag.table.loc["mu"]
    assert abs(row["contraction"] - exact) < 4 * row["contraction_se"]
    # Fisher: whitened information n/σ² · Var_prior = 2/4 · 1 = 0.5; MC error from S·K score draws
    f = diag.fisher
    s_k = len(f.local_null_dim) * 20
    tol = 4 * np.sqrt(2 * 0.5**2 / s_k) + 4 * 0.5 * np.sqrt(2 / diag.draws.prior.shape[0])
    assert abs(f.eigenvalues[0] - 0.5) < tol


def test_psense_alone_does_not_see_the_ridge():
    """ArviZ's psense answers per parameter: on toy.additive it reads the likelihood as weak for a and
    for b (likelihood sensitivity below its 0.05 threshold) and has no notion of a + b. bayesid reports
    that the same likelihood pins a + b down (contraction > 0.99) and that a − b is the ridge."""
    diag = diagnosed("toy.additive", "default")
    ps = diag.psense
    assert list(ps.index) == ["a", "b"]  # one row per parameter, nothing about directions
    assert (ps["likelihood"] < 0.05).all()
    assert all("weak likelihood" in d for d in ps["diagnosis"])
    assert diag.combination("a + b").contraction > 0.99
    assert diag.ridges[0].label == "a - b"


def _hand_tree(post, prior, chains=4):
    def ds(d, c):
        return xr.Dataset({k: (("chain", "draw"), np.asarray(v).reshape(c, -1)) for k, v in d.items()})

    return xr.DataTree.from_dict({"posterior": ds(post, chains), "prior": ds(prior, 1)})


def test_hand_built_tree_from_numpy_arrays():
    """Draw-based parts work without PyMC: exact Gaussian posterior of y ~ N(a + b, 0.1), N(0,1) priors."""
    rng = np.random.default_rng(0)
    n = 4000
    prior = {"a": rng.normal(size=n), "b": rng.normal(size=n)}
    s = rng.normal(1.0, 0.01, n)  # a + b pinned
    dlt = rng.normal(0.0, np.sqrt(2.0), n)  # a − b as in the prior
    diag = bayesid.diagnose(_hand_tree({"a": (s + dlt) / 2, "b": (s - dlt) / 2}, prior))
    assert [c.name for c in diag.combinations] == ["a + b"]
    assert len(diag.ridges) == 1 and diag.ridges[0].label == "a - b"
    assert set(diag.verdicts.values()) == {"identified only in combination"}
    # positive draws are logged automatically, so the product ridge is linear: a·b identified
    pa, pb = np.exp(rng.normal(0, .5, n)), np.exp(rng.normal(0, .5, n))
    lp = rng.normal(0.2, 0.01, n)
    ld = rng.normal(0.0, 0.5 * np.sqrt(2), n)
    diag = bayesid.diagnose(_hand_tree({"a": np.exp((lp + ld) / 2), "b": np.exp((lp - ld) / 2)},
                                       {"a": pa, "b": pb}))
    assert [c.name for c in diag.combinations] == ["a·b"]
    assert diag.ridges[0].label == "a/b"
    # negative control: independent, well-determined posterior -> no ridge
    diag = bayesid.diagnose(_hand_tree({"a": rng.normal(.3, .05, n), "b": rng.normal(-.2, .05, n)}, prior))
    assert diag.ridges == [] and set(diag.verdicts.values()) == {"identified"}


def test_non_convergence_is_reported_first_and_never_as_non_identifiability():
    """Chains stuck in different places (R-hat ≫ 1.01) on an otherwise identified parameter."""
    rng = np.random.default_rng(1)
    post = rng.normal(0, 0.05, (4, 500)) + np.array([0, 0, 0, 1.0])[:, None]
    tree = _hand_tree({"a": post, "b": rng.normal(0, 0.05, 2000)}, {"a": rng.normal(size=4000),
                                                                    "b": rng.normal(size=4000)})
    diag = bayesid.diagnose(tree)
    assert diag.verdicts["a"] == "not converged"
    assert "R-hat" in diag.table.loc["a", "reason"]
    assert diag.verdicts["b"] == "identified"  # negative control in the same fit
    assert diag.summary().startswith("Sampling did not converge")


def test_prior_data_conflict():
    """Truth 4 prior-SDs out: with 200 observations the posterior sits in the prior's far tail."""
    diag = diagnosed("toy.weak", "many", truth_key=(("mu", 4.0),))
    assert diag.verdicts["mu"] == "prior-data conflict"
    assert diagnosed("toy.weak", "many").verdicts["mu"] == "identified"  # negative control


def test_curved_ridge_from_fisher_information():
    """y ~ N(a·b, σ) with real-valued a, b: the ridge a·b = 1 is a hyperbola in the unconstrained
    (identity) coordinates. Every draw has a locally uninformed direction (b, −a)·(…) but the
    posterior-averaged information has none: a curved ridge. Negative controls: the linear ridge of
    toy.additive is not curved; toy.identified has no locally uninformed draws."""
    rng = np.random.default_rng(2)
    with pm.Model() as m:
        a = pm.Normal("a", 1.0, 0.4)
        b = pm.Normal("b", 1.0, 0.4)
        pm.Normal("y", a * b, 0.05, observed=rng.normal(1.0, 0.05, 50))
    tree = bayesid.fit(m, draws=500, tune=1000, chains=4, random_seed=3, progressbar=False)
    diag = bayesid.diagnose(tree, model=m, random_seed=1)
    f = diag.fisher
    assert f.local_null_fraction > 0.9
    assert f.global_null_dim == 0
    assert f.curved_ridge
    assert not diagnosed("toy.additive", "default").fisher.curved_ridge
    assert diagnosed("toy.identified", "default").fisher.local_null_fraction == 0.0


def test_pymc_models_outside_the_registry_eight_schools():
    from _plain_models import eight_schools

    for m, latent in ((eight_schools(centered=True), "theta"), (eight_schools(centered=False), "z")):
        tree = bayesid.fit(m, draws=500, tune=1000, chains=4, random_seed=4, progressbar=False)
        diag = bayesid.diagnose(tree, model=m)
        assert list(diag.table.index) == ["mu", "tau"] + [f"{latent}[{i}]" for i in range(8)]
        assert diag.table.loc["tau", "unconstrained"] == "tau_log__"
        bad = not diag.convergence.ok
        for p, v in diag.verdicts.items():
            # precedence: sampling trouble is reported as such, never as (non-)identifiability
            assert (v == "not converged") == (bad or p in diag.convergence.parameter_problems)
        # eight observations cannot inform ten unknowns: at least two uninformed Fisher directions
        assert diag.fisher.global_null_dim >= 2


def test_clear_errors():
    spec = bayesid.models.get("toy.additive")
    spec_, model, tree, truth = fitted("toy.additive", "default")
    no_prior = xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset()})
    with pytest.raises(MissingGroupError, match="sample_prior_predictive"):
        bayesid.diagnose(no_prior)
    rng = np.random.default_rng(0)
    with pytest.raises(BadDrawsError, match="discrete"):
        bayesid.diagnose(_hand_tree({"k": rng.integers(0, 5, 2000)}, {"k": rng.integers(0, 5, 2000)}))
    with pytest.raises(BadDrawsError, match="at least 100"):
        bayesid.diagnose(_hand_tree({"a": rng.normal(size=40)}, {"a": rng.normal(size=2000)}))
    bad = rng.normal(size=2000)
    bad[17] = np.nan
    with pytest.raises(BadDrawsError, match="NaN"):
        bayesid.diagnose(_hand_tree({"a": bad}, {"a": rng.normal(size=2000)}))
    with pytest.raises(ValueError, match="needs the PyMC model"):
        bayesid.diagnose(tree, fisher=True)
    del spec


def test_thresholds_are_arguments():
    """Raising the identification bar to contraction 0.999 turns toy.weak/many (c ≈ 0.98) weak."""
    spec_, model, tree, truth = fitted("toy.weak", "many")
    strict = bayesid.diagnose(tree, thresholds=Thresholds(identified=0.999, ridge=0.9999))
    assert strict.verdicts["mu"] == "weakly identified"


def test_combination_names():
    log = {"k_log__": "log", "m_log__": "log", "a_log__": "log", "b_log__": "log"}
    assert name_combination({"k_log__": 1, "m_log__": -1}, log) == "k/m"
    assert name_combination({"k_log__": -2, "m_log__": 2}, log) == "k/m"
    assert name_combination({"a_log__": 1, "b_log__": 2}, log) == "a·b^2"
    assert name_combination({"a_log__": 0.5, "b_log__": -1}, log) == "a/b^2"
    ident = {"a": None, "b": None, "c": None}
    assert name_combination({"a": 1, "b": 1, "c": 1}, ident) == "a + b + c"
    assert name_combination({"a": 1, "b": -1}, ident) == "a - b"
    assert name_combination({"a": 0.3, "b": 0.7}, ident) == "0.43·a + b"
    assert name_combination({"a": 1, "k_log__": 1}, {**ident, **log}) == "a + log(k)"


def test_diagnosis_displays(tmp_path):
    diag = diagnosed("toy.product", "default")
    html = diag._repr_html_()
    assert "identified only in combination" in html and "a·b" in html
    path = bayesid.report.write(diag, tmp_path / "r.html")
    text = path.read_text()
    assert text.count("data:image/png;base64,") >= 4  # contraction, spectrum, pair, marginals
    assert text.index("verdict") < text.index("data:image/png") < text.index("Summary")
    assert "Ridge" in repr(diag)


def test_prior_design_changes_the_answer():
    """A prior that pins b makes a identified by itself (the prior, not the data, breaks the ridge)."""
    spec = bayesid.models.get("toy.additive")
    data = spec.simulate(random_seed=0)
    m = spec.build(data, priors={"b": Prior("normal", {"mu": -0.2, "sigma": 0.01})})
    tree = bayesid.fit(m, draws=500, tune=500, chains=4, random_seed=2, progressbar=False)
    diag = bayesid.diagnose(tree)
    assert diag.verdicts["a"] == "identified"
    assert diag.verdicts["b"] == "not identified"  # the data add nothing to its (tight) prior
    assert len(diag.ridges) == 1


def test_dimension_changing_transform_zero_sum():
    """ZeroSumNormal samples n − 1 free coordinates; they are diagnosed in those coordinates.
    Known answer: with 20 precise observations of every item all contrasts are identified — no ridge
    (the constraint removed the shift)."""
    rng = np.random.default_rng(0)
    with pm.Model() as m:
        th = pm.ZeroSumNormal("theta", sigma=1.0, shape=(4,))
        pm.Normal("y", th, 0.1, observed=rng.normal([1, -1, 0.5, -0.5], 0.1, size=(20, 4)))
    tree = bayesid.fit(m, draws=500, tune=500, chains=4, random_seed=1, progressbar=False)
    diag = bayesid.diagnose(tree, model=m, truth={"theta": np.array([1, -1, 0.5, -0.5])})
    assert list(diag.table.index) == [f"theta_zerosum__[{i}]" for i in range(3)]
    assert diag.table["z"].isna().all()  # natural-scale truth has no meaning in the free coordinates
    assert diag.ridges == [] and set(diag.verdicts.values()) == {"identified"}
    assert "do not map one-to-one" in diag.psense_note


def test_multimodal_posterior_is_flagged():
    """Known answer: a 50/50 mixture of N(±2, 0.1) has bimodality coefficient ≈ 0.97 > 0.6 (a label
    swap). Negative control: Gaussian draws give ≈ 1/3 and no flag."""
    rng = np.random.default_rng(3)
    sign = np.where(rng.random(4000) < 0.5, -1.0, 1.0)
    post = {"a": sign * 2 + rng.normal(0, .1, 4000), "b": rng.normal(0, .1, 4000)}
    prior = {"a": rng.normal(0, 3, 4000), "b": rng.normal(0, 1, 4000)}
    diag = bayesid.diagnose(_hand_tree(post, prior))
    assert diag.table.loc["a", "bimodality"] > 0.9
    assert abs(diag.table.loc["b", "bimodality"] - 1 / 3) < 0.05
    assert "a looks multimodal" in diag.summary()


def test_vectorised_ess_equals_arviz_stats():
    """contraction.ess_bulk (every column at once, used for the variance MCSEs) is ArviZ's estimator:
    equal to rounding (1e-12 relative) on autocorrelated, antithetic, heavy-tailed, tied and constant
    columns; the prior's single chain of independent draws included. Known answer for the i.i.d.
    columns: ESS ≈ n within its sampling spread; negative control: an AR(1) column with φ = 0.9 has
    ESS ≈ n (1 − φ)/(1 + φ) ≈ n/19, far below n."""
    import arviz_stats as azs
    from scipy import stats

    from bayesid.diagnostics.contraction import _average_ranks, ess_bulk

    rng = np.random.default_rng(7)
    for c, n, d in [(4, 500, 12), (1, 2000, 6), (2, 7, 4)]:
        x = rng.normal(size=(c, n, d))
        for t in range(1, n):
            x[:, t, 1] = 0.9 * x[:, t - 1, 1] + x[:, t, 1]
        x[:, :, 2] = 1.0
        if n % 2 == 0:
            x[:, 1::2, 3] = -x[:, ::2, 3]  # antithetic pairs
        x[:, :, 0] = np.round(x[:, :, 0])  # ties
        if d > 4:
            x[:, :, 4] = x[:, :, 4] ** 3
        ours = ess_bulk(x)
        ref = np.atleast_1d(azs.ess(x, chain_axis=0, draw_axis=1, method="bulk"))
        np.testing.assert_allclose(ours, ref, rtol=1e-12)
    iid = ess_bulk(rng.normal(size=(4, 1000, 3)))
    assert np.all(np.abs(iid / 4000 - 1) < 0.25)
    ar = np.zeros((4, 1000))
    e = rng.normal(size=(4, 1000))
    for t in range(1, 1000):
        ar[:, t] = 0.9 * ar[:, t - 1] + e[:, t]
    assert ess_bulk(ar[..., None])[0] < 4000 / 19 * 1.6
    a = np.round(rng.normal(size=(5, 200)), 1)
    assert np.array_equal(_average_ranks(a), stats.rankdata(a, axis=1, method="average"))


def test_vectorised_psense_equals_arviz_psense_summary():
    """sensitivity.psense_table (all parameters at once) reproduces arviz_stats.psense_summary exactly
    (same rounded values and diagnoses) on a fitted model with a ridge (toy.additive)."""
    import arviz_stats as azs
    import pandas as pd

    from bayesid.diagnostics.sensitivity import psense_table

    _, _, tree, _ = fitted("toy.additive", "default")
    names = list(tree["posterior"].data_vars)[:2]
    ref = pd.DataFrame(azs.psense_summary(tree, var_names=names))
    ours = psense_table(tree, names)
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours[["prior", "likelihood"]].values, ref[["prior", "likelihood"]].values)
    assert list(ours["diagnosis"]) == list(ref["diagnosis"])


def _ovl_normals(s: float) -> float:
    """Exact overlap ∫ min(φ(x), φ(x/s)/s) dx of N(0, 1) and N(0, s²), s < 1: the densities cross at
    ±c with c² = 2 s² ln(1/s) / (1 − s²); inside, the wider one is the smaller."""
    from scipy.stats import norm

    c = np.sqrt(2 * s**2 * np.log(1 / s) / (1 - s**2))
    return float(2 * norm.cdf(c) - 1 + 2 * norm.sf(c / s))


def test_overlap_of_two_normals_known_answer_and_noise_control():
    """overlap() of N(0, 1) and N(0, 0.3²) draws against the closed form 0.478 (8 independent replicate
    columns, 20 000 draws each). The binned KDE widens both densities by the same factor √(1 + h²)
    (Silverman: h = 0.9·n^(-1/5) in sd units, same n), which leaves the overlap of a scale family
    unchanged; sampling noise in the two KDEs can only lower ∫ min — by at most the deficit ``b``
    measured on the control (both samples from N(0, 1), exact overlap 1). Tolerances: 4 standard
    errors of the replicate mean, plus ``b`` below. Discrimination: the exact value for s = 0.5
    (0.677) must lie outside the interval."""
    from bayesid.diagnostics import overlap

    rng = np.random.default_rng(7)
    n, k = 20_000, 8
    est = overlap(rng.normal(size=(n, k)), 0.3 * rng.normal(size=(n, k)))
    same = overlap(rng.normal(size=(n, k)), rng.normal(size=(n, k)))
    b = 1.0 - same.mean()
    se = est.std(ddof=1) / np.sqrt(k)
    exact = _ovl_normals(0.3)
    assert exact - b - 4 * se <= est.mean() <= exact + 4 * se, (est, exact, b, se)
    assert not (exact - b - 4 * se <= _ovl_normals(0.5) <= exact + 4 * se)
