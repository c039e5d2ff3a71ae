"""Property test over random small models (issue 16): ``diagnose`` never raises anything but
bayesid's documented errors, never leaves NaN in a verdict's inputs without saying why, and the table,
``.ridges`` and the summary never disagree.

Each case draws 1–3 parameters with priors among Normal / HalfNormal / Beta / LogNormal (random
hyper-parameters, sometimes extreme), a linear or product link of a random subset of them (so ridges
and weak directions occur), and 1–60 Gaussian observations. The tree is built the way
``bayesid.fit`` builds it (prior, posterior, unconstrained groups, recorded parameters), with a
Laplace approximation of the posterior in unconstrained coordinates instead of NUTS so that a case
costs milliseconds; the properties concern the diagnosis of whatever draws it is given. The default
suite runs 40 cases, ``-m slow`` 400.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from scipy import optimize, special, stats

from bayesid.diagnostics import diagnose
from bayesid.errors import BayesidError

PRIORS = ("normal", "halfnormal", "beta", "lognormal")
SUFFIX = {"normal": "", "halfnormal": "_log__", "lognormal": "_log__", "beta": "_logodds__"}
TRANSFORM = {"normal": None, "halfnormal": "log", "lognormal": "log", "beta": "logodds"}
# columns the verdicts are computed from
VERDICT_INPUTS = ("contraction", "contraction_unc", "overlap", "ridge_weight", "rhat", "ess_bulk")


def _random_case(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 4))
    names = ["a", "b", "c"][:k]
    priors = []
    for _ in names:
        kind = PRIORS[rng.integers(len(PRIORS))]
        s = float(10 ** rng.uniform(-1.5, 1.0))
        if kind == "normal":
            pr = (kind, float(rng.normal(0, 2)), s)
        elif kind == "halfnormal":
            pr = (kind, s)
        elif kind == "lognormal":
            pr = (kind, float(rng.normal(0, 1)), min(s, 2.0))
        else:
            pr = (kind, float(10 ** rng.uniform(-1, 1)), float(10 ** rng.uniform(-1, 1)))
        priors.append(pr)
    used = [j for j in range(k) if rng.uniform() < 0.8] or [0]
    link = "product" if rng.uniform() < 0.4 else "linear"
    n = int(rng.choice([1, 3, 10, 60]))
    x = rng.uniform(-1, 1, size=n)
    coef = rng.choice([-1.0, 1.0, 2.0], size=k)
    on_x = rng.uniform(size=k) < 0.5
    return dict(names=names, priors=priors, used=used, link=link, n=n, x=x, coef=coef, on_x=on_x,
                sigma=float(10 ** rng.uniform(-1, 0.5)), rng=rng)


def _sample_prior(pr, size, rng):
    kind = pr[0]
    if kind == "normal":
        return rng.normal(pr[1], pr[2], size)
    if kind == "halfnormal":
        return np.abs(rng.normal(0, pr[1], size))
    if kind == "lognormal":
        return np.exp(rng.normal(pr[1], pr[2], size))
    return rng.beta(pr[1], pr[2], size)


def _to_unc(pr, v):
    with np.errstate(divide="ignore"):
        if pr[0] == "normal":
            return v
        if pr[0] == "beta":
            return np.log(v) - np.log1p(-v)
        return np.log(v)


def _from_unc(pr, z):
    if pr[0] == "normal":
        return z
    if pr[0] == "beta":
        return special.expit(z)
    return np.exp(z)


def _logprior_unc(pr, z):
    """log density of the unconstrained coordinate (prior density × Jacobian)."""
    if pr[0] == "normal":
        return stats.norm.logpdf(z, pr[1], pr[2])
    if pr[0] == "halfnormal":
        return stats.halfnorm.logpdf(np.exp(z), scale=pr[1]) + z
    if pr[0] == "lognormal":
        return stats.norm.logpdf(z, pr[1], pr[2])
    return stats.beta.logpdf(special.expit(z), pr[1], pr[2]) + np.log(special.expit(z)) + np.log(special.expit(-z))


def _mean(case, theta):
    """Mean of the observations for parameters ``theta`` (d,) or (m, d): linear — each used parameter
    times its regressor (a constant or x; two on the constant make a ridge) — or a product."""
    theta = np.atleast_2d(theta)
    x = case["x"][None]
    if case["link"] == "linear":
        return sum(case["coef"][j] * theta[:, j][:, None] * (x if case["on_x"][j] else 1.0 + 0.0 * x)
                   for j in case["used"])
    return np.prod([theta[:, j] for j in case["used"]], axis=0)[:, None] * (1.0 + 0.5 * x)


def _tree(case, n_prior=1000, chains=4, draws=150):
    rng = case["rng"]
    names, priors = case["names"], case["priors"]
    prior = np.column_stack([_sample_prior(p, n_prior, rng) for p in priors])
    truth = np.array([_sample_prior(p, 1, rng)[0] for p in priors])
    y = _mean(case, truth)[0] + case["sigma"] * rng.standard_normal(case["n"])

    def nlp(z):
        th = np.array([_from_unc(p, zz) for p, zz in zip(priors, z)])
        r = (y - _mean(case, th)[0]) / case["sigma"]
        lp = sum(_logprior_unc(p, zz) for p, zz in zip(priors, z)) - 0.5 * r @ r
        return -lp if np.isfinite(lp) else 1e300

    z0 = np.array([np.median(_to_unc(p, prior[:, j])) for j, p in enumerate(priors)])
    z0 = np.where(np.isfinite(z0), z0, 0.0)
    mode = optimize.minimize(nlp, z0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6}).x
    d = len(names)
    h = np.empty((d, d))
    eps = 1e-3 * np.maximum(1.0, np.abs(mode))
    for i in range(d):
        for j in range(d):
            ei, ej = np.eye(d)[i] * eps[i], np.eye(d)[j] * eps[j]
            h[i, j] = (nlp(mode + ei + ej) - nlp(mode + ei - ej) - nlp(mode - ei + ej) + nlp(mode - ei - ej)) / (
                4 * eps[i] * eps[j])
    h = 0.5 * (h + h.T)
    w, v = np.linalg.eigh(h)
    cov = (v / np.clip(w, 1e-6, None)) @ v.T  # a flat direction gets a wide (prior-scale) spread
    zq = rng.multivariate_normal(mode, cov, size=(chains, draws))
    q = np.stack([_from_unc(p, zq[..., j]) for j, p in enumerate(priors)], axis=-1)
    zp = np.column_stack([_to_unc(p, prior[:, j]) for j, p in enumerate(priors)])

    def ds(arr, lead):
        return xr.Dataset({n: (lead, arr[..., j]) for j, n in enumerate(names)})

    def uds(arr, lead):
        return xr.Dataset({n + SUFFIX[p[0]]: (lead, arr[..., j]) for j, (n, p) in enumerate(zip(names, priors))})

    tree = xr.DataTree.from_dict({
        "posterior": ds(q, ("chain", "draw")),
        "prior": ds(prior[None], ("chain", "draw")),
        "unconstrained_posterior": uds(zq, ("chain", "draw")),
        "unconstrained_prior": uds(zp[None], ("chain", "draw")),
        "observed_data": xr.Dataset({"y": ("obs", y)}),
    })
    tree.attrs["bayesid_parameters"] = json.dumps(
        [{"name": n, "value_name": n + SUFFIX[p[0]], "transform": TRANSFORM[p[0]]} for n, p in zip(names, priors)])
    return tree


def _check_case(seed):
    case = _random_case(seed)
    tree = _tree(case)
    try:
        d = diagnose(tree)
    except BayesidError:
        return "documented error"
    except Exception as err:  # pragma: no cover - the property under test
        pytest.fail(f"case {seed} ({case['priors']}, {case['link']} of {case['used']}, n={case['n']}): "
                    f"undocumented {type(err).__name__}: {err}")
    t = d.table
    for col in VERDICT_INPUTS:
        if col not in t:
            continue
        bad = [p for p, v in t[col].items() if not np.isfinite(v)]
        for p in bad:
            said = "nan" in str(t.loc[p, "reason"]).lower() or any(p in n for n in d.notes)
            assert said, f"case {seed}: {col}[{p}] is {t.loc[p, col]} and nothing says why ({t.loc[p].to_dict()})"
    if hasattr(d, "consistency_problems"):
        problems = d.consistency_problems()
        assert not problems, f"case {seed}: {problems}"
    s = d.summary()
    for v in set(t["verdict"]):
        line = next((ln for ln in s.splitlines() if ln.lower().startswith(f"{v}:".lower())), None)
        if line is not None:
            listed = {x.strip() for x in line.split(":", 1)[1].rstrip(".").split(",")}
            assert listed == set(t.index[t["verdict"] == v]), f"case {seed}: summary {line!r} vs table"
    if "No ridge" in s:
        assert not d.ridges
    return "ok"


@pytest.mark.parametrize("chunk", range(4))
def test_random_small_models_diagnose_cleanly(chunk):
    outcomes = [_check_case(1000 + 10 * chunk + i) for i in range(10)]
    assert outcomes.count("ok") >= 5, outcomes  # most cases are diagnosable, not refused


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(20))
def test_random_small_models_diagnose_cleanly_many(chunk):
    for i in range(20):
        _check_case(5000 + 20 * chunk + i)
