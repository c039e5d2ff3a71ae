"""Toy models with known identifiability answers, derived by algebra.

Each toy is small enough that its answer can be read off the likelihood:

* ``toy.additive``   y ~ N(a + b, σ): only a + b enters the likelihood, a − b is a ridge.
* ``toy.product``    y ~ N(a·b, σ), a, b > 0: only a·b enters; in log coordinates log a − log b is a ridge.
* ``toy.scale``      y ~ N(0, s1·s2): only the product of the scales enters.
* ``toy.collinear``  y ~ N(α + β1 x + β2 x, σ): identical covariates, only β1 + β2 enters.
  Design ``distinct`` uses independent covariates and identifies both (negative control).
* ``toy.identified`` y ~ N(α + β x, σ) with plenty of data: everything identified (negative control).
* ``toy.weak``       y ~ N(μ, σ) with two observations: the prior matters, contraction is 1/3.
"""

from __future__ import annotations

import numpy as np
import pymc as pm

from .base import Design, KnownAnswer, ModelSpec, Parameter
from .priors import Prior

__all__ = ["Additive", "Product", "Scale", "Collinear", "Identified", "Weak"]


class _GaussianObs(ModelSpec):
    """Shared machinery: ``n_obs`` observations ``y ~ Normal(mean, sd)``.

    Subclasses give ``_mean`` and ``_sd`` as expressions of the parameters ``p`` (a dict) that work
    both on PyMC random variables (the PyMC program) and on numpy arrays of shape ``(n_sets, 1)``
    (the simulator), so the two describe the same process by construction.
    """

    def data_shapes(self, design=None):
        return {"y": (self.design(design)["n_obs"],)}

    def _mean(self, p, design):
        raise NotImplementedError

    def _sd(self, p, design):
        return design["sigma"]

    def _build(self, data, design, priors):
        with pm.Model(coords={"obs": np.arange(design["n_obs"])}) as m:
            r = self._prior_rvs(priors)
            pm.Normal("y", self._mean(r, design), self._sd(r, design), observed=data["y"], dims="obs")
        return m

    def _simulate(self, theta, design, rng):
        p = {k: v[:, None] for k, v in theta.items()}
        n = next(iter(theta.values())).shape[0]
        return {"y": self._mean(p, design) + self._sd(p, design) * rng.standard_normal((n, design["n_obs"]))}


class Additive(_GaussianObs):
    name = "toy.additive"
    description = "y ~ Normal(a + b, σ): the likelihood sees only the sum a + b."
    parameters = (
        Parameter("a", Prior("normal", {"mu": 0.0, "sigma": 1.0}), 0.7, description="first summand"),
        Parameter("b", Prior("normal", {"mu": 0.0, "sigma": 1.0}), -0.2, description="second summand"),
    )
    designs = {
        "default": Design("default", "50 observations, σ = 0.5", {"n_obs": 50, "sigma": 0.5}),
        "small": Design("small", "5 observations, σ = 0.5", {"n_obs": 5, "sigma": 0.5}),
    }
    default_design = "default"
    _ka = KnownAnswer(
        not_identified=(),
        in_combination=("a", "b"),
        combinations=("a + b",),
        ridges=({"a": 1.0, "b": -1.0},),
        derivation="p(y | a, b) depends on (a, b) only through a + b, so a − b is constant along the "
        "likelihood; with equal N(0,1) priors the posterior of a − b equals its prior.",
    )
    known_answers = {"default": _ka, "small": _ka}

    def _mean(self, p, design):
        return p["a"] + p["b"]


class Product(_GaussianObs):
    name = "toy.product"
    description = "y ~ Normal(a·b, σ) with a, b > 0: the likelihood sees only the product a·b."
    parameters = (
        Parameter("a", Prior("lognormal", {"mu": 0.0, "sigma": 0.5}), 1.3, description="first factor"),
        Parameter("b", Prior("lognormal", {"mu": 0.0, "sigma": 0.5}), 0.8, description="second factor"),
    )
    designs = {"default": Design("default", "50 observations, σ = 0.1", {"n_obs": 50, "sigma": 0.1})}
    default_design = "default"
    known_answers = {
        "default": KnownAnswer(
            in_combination=("a", "b"),
            combinations=("a·b",),
            ridges=({"a_log__": 1.0, "b_log__": -1.0},),
            derivation="p(y | a, b) depends only on a·b = exp(log a + log b); in the unconstrained "
            "(log) coordinates the curve a·b = const is the straight line log a − log b free.",
        )
    }

    def _mean(self, p, design):
        return p["a"] * p["b"]


class Scale(_GaussianObs):
    name = "toy.scale"
    description = "y ~ Normal(0, s1·s2): only the product of the two scales is seen."
    parameters = (
        Parameter("s1", Prior("lognormal", {"mu": 0.0, "sigma": 0.5}), 1.5, description="first scale"),
        Parameter("s2", Prior("lognormal", {"mu": 0.0, "sigma": 0.5}), 0.7, description="second scale"),
    )
    designs = {"default": Design("default", "100 observations", {"n_obs": 100})}
    default_design = "default"
    known_answers = {
        "default": KnownAnswer(
            in_combination=("s1", "s2"),
            combinations=("s1·s2",),
            ridges=({"s1_log__": 1.0, "s2_log__": -1.0},),
            derivation="The density of y depends on the scales only through s1·s2.",
        )
    }

    def _mean(self, p, design):
        return 0.0

    def _sd(self, p, design):
        return p["s1"] * p["s2"]


def _covariates(design):
    n = design["n_obs"]
    x1 = np.linspace(-1.0, 1.0, n)
    if design["collinear"]:
        x2 = x1.copy()
    else:  # a fixed, reproducible, nearly orthogonal second covariate
        x2 = np.cos(np.pi * np.arange(n) * 7.0 / n)
        x2 = x2 - x2.mean()
    return x1, x2


def _linear(p, design):
    x1, x2 = _covariates(design)
    return p["alpha"] + p["beta1"] * x1 + p["beta2"] * x2


class Collinear(_GaussianObs):
    name = "toy.collinear"
    description = "Regression with two covariates; under design 'collinear' they are identical."
    parameters = (
        Parameter("alpha", Prior("normal", {"mu": 0.0, "sigma": 2.0}), 0.5, description="intercept"),
        Parameter("beta1", Prior("normal", {"mu": 0.0, "sigma": 1.0}), 1.0, description="slope on x1"),
        Parameter("beta2", Prior("normal", {"mu": 0.0, "sigma": 1.0}), -0.5, description="slope on x2"),
    )
    designs = {
        "collinear": Design("collinear", "x2 = x1 (identical covariates), 60 obs, σ = 0.3",
                            {"n_obs": 60, "sigma": 0.3, "collinear": True}),
        "distinct": Design("distinct", "x2 independent of x1, 60 obs, σ = 0.3",
                           {"n_obs": 60, "sigma": 0.3, "collinear": False}),
    }
    default_design = "collinear"
    known_answers = {
        "collinear": KnownAnswer(
            identified=("alpha",),
            in_combination=("beta1", "beta2"),
            combinations=("beta1 + beta2",),
            ridges=({"beta1": 1.0, "beta2": -1.0},),
            derivation="With x2 = x1 the mean is α + (β1 + β2)·x1: β1 − β2 never enters.",
        ),
        "distinct": KnownAnswer(
            identified=("alpha", "beta1", "beta2"),
            derivation="Orthogonal covariates give a full-rank design matrix.",
        ),
    }

    def _mean(self, p, design):
        return _linear(p, design)


class Identified(_GaussianObs):
    name = "toy.identified"
    description = "Linear regression with unknown noise and plenty of data: every parameter identified."
    parameters = (
        Parameter("alpha", Prior("normal", {"mu": 0.0, "sigma": 2.0}), 0.3, description="intercept"),
        Parameter("beta", Prior("normal", {"mu": 0.0, "sigma": 2.0}), 1.2, description="slope"),
        Parameter("sigma", Prior("halfnormal", {"sigma": 1.0}), 0.5, description="noise sd"),
    )
    designs = {"default": Design("default", "100 observations, x on [-1, 1]", {"n_obs": 100})}
    default_design = "default"
    known_answers = {
        "default": KnownAnswer(
            identified=("alpha", "beta", "sigma"),
            derivation="Full-rank design matrix and 100 observations: the Fisher information is "
            "n·diag-dominant and far larger than the prior precision in every direction.",
        )
    }

    def _mean(self, p, design):
        return p["alpha"] + p["beta"] * np.linspace(-1.0, 1.0, design["n_obs"])

    def _sd(self, p, design):
        return p["sigma"]


class Weak(_GaussianObs):
    name = "toy.weak"
    description = "y ~ Normal(μ, σ = 2) with 2 observations and a N(0, 1) prior: weakly identified."
    parameters = (
        Parameter("mu", Prior("normal", {"mu": 0.0, "sigma": 1.0}), 0.5, description="location"),
    )
    designs = {
        "few": Design("few", "2 observations, σ = 2", {"n_obs": 2, "sigma": 2.0}),
        "many": Design("many", "200 observations, σ = 2", {"n_obs": 200, "sigma": 2.0}),
    }
    default_design = "few"
    known_answers = {
        "few": KnownAnswer(
            weakly_identified=("mu",),
            derivation="Conjugate normal: posterior variance 1/(1/τ² + n/σ²) = 2/3 of the prior's, "
            "so the contraction is exactly 1/3 — weakly identified; the prior matters.",
        ),
        "many": KnownAnswer(identified=("mu",), derivation="Contraction 50/51 ≈ 0.98."),
    }

    @staticmethod
    def exact_contraction(design, prior_sd=1.0):
        """Analytic contraction 1 − Var_post/Var_prior of the conjugate normal model."""
        prec_data = design["n_obs"] / design["sigma"] ** 2
        return prec_data / (prec_data + 1.0 / prior_sd**2)

    def _mean(self, p, design):
        return p["mu"]


def exact_line_posterior(y, x, n_draws, rng, prior_sd=2.0, sigma_sd=1.0):
    """Exact posterior draws ``(α, β, log σ)`` of ``y ~ N(α + β x, σ)``, ``α, β ~ N(0, prior_sd²)``,
    ``σ ~ HalfNormal(sigma_sd)`` (toy.identified): ``log σ`` from its marginal on a fine grid
    (``p(y | σ) = N(y; 0, σ² I + prior_sd² X Xᵀ)``, by Woodbury), then ``(α, β) | σ`` Gaussian."""
    y = np.asarray(y, float).ravel()
    X = np.stack([np.ones_like(x), x], 1)
    G, Xy, yy, n = X.T @ X, X.T @ y, y @ y, y.size
    ps2 = prior_sd ** 2
    ls = np.linspace(-9.0, 3.0, 120001)
    s2 = np.exp(2 * ls)
    A = s2[:, None, None] / ps2 * np.eye(2) + G
    quad = (yy - np.einsum("i,kij,j->k", Xy, np.linalg.inv(A), Xy)) / s2
    logdet = n * np.log(s2) + np.linalg.slogdet(np.eye(2) + ps2 * G / s2[:, None, None])[1]
    lp = -0.5 * (logdet + quad) - s2 / (2 * sigma_sd ** 2) + ls  # + log σ: density of log σ
    cdf = np.cumsum(np.exp(lp - lp.max()))
    lsig = np.interp(rng.uniform(size=n_draws), cdf / cdf[-1], ls)
    s2d = np.exp(2 * lsig)
    V = np.linalg.inv(G / s2d[:, None, None] + np.eye(2) / ps2)
    m = np.einsum("kij,j->ki", V, Xy) / s2d[:, None]
    ab = m + np.einsum("kij,kj->ki", np.linalg.cholesky(V), rng.standard_normal((n_draws, 2)))
    return np.column_stack([ab, lsig])
