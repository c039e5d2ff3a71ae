"""Prior specifications usable both by PyMC programs and by numpy simulators.

A :class:`Prior` is a small, hashable description of a univariate distribution. The same object
builds the PyMC random variable (``to_pymc``) and draws numpy samples (``sample``), so that the
PyMC program and the fast simulator of a model share one definition of the prior, and so that
prior designs can be swapped without touching model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

__all__ = ["Prior"]

# name -> (required parameter names, domain of the support)
_DISTS = {
    "normal": (("mu", "sigma"), "real"),
    "halfnormal": (("sigma",), "positive"),
    "lognormal": (("mu", "sigma"), "positive"),
    "uniform": (("lower", "upper"), "interval"),
    "gamma": (("alpha", "beta"), "positive"),
    "exponential": (("lam",), "positive"),
    "beta": (("alpha", "beta"), "interval"),
    "truncnormal": (("mu", "sigma", "lower", "upper"), "interval"),
}


@dataclass(frozen=True)
class Prior:
    """A univariate prior, applied elementwise to a parameter of any shape.

    Parameters
    ----------
    dist : str
        One of ``normal, halfnormal, lognormal, uniform, gamma, exponential, beta, truncnormal``.
    params : dict
        The distribution's parameters, named as in PyMC (``mu``, ``sigma``, ``lower``...).

    Examples
    --------
    >>> Prior("lognormal", {"mu": 0.0, "sigma": 0.5}).sample(3, random_seed=1).shape
    (3,)
    """

    dist: str
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.dist not in _DISTS:
            raise ValueError(f"Unknown prior distribution {self.dist!r}; choose one of {sorted(_DISTS)}.")
        need, _ = _DISTS[self.dist]
        missing = [p for p in need if p not in self.params]
        extra = [p for p in self.params if p not in need]
        if missing or extra:
            raise ValueError(
                f"Prior {self.dist!r} takes parameters {need}; missing {missing}, unexpected {extra}."
            )

    def __hash__(self):
        return hash((self.dist, tuple(sorted(self.params.items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.dist}({args})"

    @property
    def domain(self) -> str:
        """``"real"``, ``"positive"`` or ``"interval"``: the support, which fixes PyMC's transform."""
        return _DISTS[self.dist][1]

    @property
    def bounds(self) -> tuple[float, float]:
        """Lower and upper end of the support."""
        if self.domain == "real":
            return (-np.inf, np.inf)
        if self.domain == "positive":
            return (0.0, np.inf)
        if self.dist == "beta":
            return (0.0, 1.0)
        return (float(self.params["lower"]), float(self.params["upper"]))

    def to_pymc(self, name, **kwargs):
        """Create the PyMC random variable (inside a model context)."""
        import pymc as pm

        p = self.params
        match self.dist:
            case "normal":
                return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], **kwargs)
            case "halfnormal":
                return pm.HalfNormal(name, sigma=p["sigma"], **kwargs)
            case "lognormal":
                return pm.LogNormal(name, mu=p["mu"], sigma=p["sigma"], **kwargs)
            case "uniform":
                return pm.Uniform(name, lower=p["lower"], upper=p["upper"], **kwargs)
            case "gamma":
                return pm.Gamma(name, alpha=p["alpha"], beta=p["beta"], **kwargs)
            case "exponential":
                return pm.Exponential(name, lam=p["lam"], **kwargs)
            case "beta":
                return pm.Beta(name, alpha=p["alpha"], beta=p["beta"], **kwargs)
            case "truncnormal":
                return pm.TruncatedNormal(
                    name, mu=p["mu"], sigma=p["sigma"], lower=p["lower"], upper=p["upper"], **kwargs
                )

    def scipy(self):
        """The equivalent frozen ``scipy.stats`` distribution."""
        p = self.params
        match self.dist:
            case "normal":
                return stats.norm(p["mu"], p["sigma"])
            case "halfnormal":
                return stats.halfnorm(scale=p["sigma"])
            case "lognormal":
                return stats.lognorm(s=p["sigma"], scale=np.exp(p["mu"]))
            case "uniform":
                return stats.uniform(p["lower"], p["upper"] - p["lower"])
            case "gamma":
                return stats.gamma(p["alpha"], scale=1.0 / p["beta"])
            case "exponential":
                return stats.expon(scale=1.0 / p["lam"])
            case "beta":
                return stats.beta(p["alpha"], p["beta"])
            case "truncnormal":
                a = (p["lower"] - p["mu"]) / p["sigma"]
                b = (p["upper"] - p["mu"]) / p["sigma"]
                return stats.truncnorm(a, b, loc=p["mu"], scale=p["sigma"])

    def sample(self, size, random_seed=None) -> np.ndarray:
        """Draw ``size`` samples (an int or a shape) with numpy."""
        rng = np.random.default_rng(random_seed)
        return np.asarray(self.scipy().rvs(size=size, random_state=rng), dtype=float)

    def logpdf(self, x):
        """Log density at ``x`` (elementwise)."""
        return self.scipy().logpdf(x)

    def mean(self) -> float:
        return float(self.scipy().mean())

    def std(self) -> float:
        return float(self.scipy().std())
