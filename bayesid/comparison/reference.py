"""Reference directions from a model's known answer, built on the diagnostics' own
:class:`~bayesid.diagnostics.Direction` and :class:`~bayesid.diagnostics.Combination`, so that
:func:`bayesid.compare` reads a known answer exactly as it reads an MCMC diagnosis."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesid.diagnostics import Combination, Direction, Thresholds
from bayesid.diagnostics.combinations import name_combination
from bayesid.diagnostics.verdicts import Verdict

__all__ = ["ReferenceDirections", "reference_from_known_answer", "parse_combination"]


@dataclass
class ReferenceDirections:
    """The subset of the :class:`~bayesid.diagnostics.Diagnosis` API that :func:`bayesid.compare` reads,
    built from a model's :class:`~bayesid.models.KnownAnswer` instead of MCMC (for tests, and for models
    with no diagnosis yet). Whitening is by the Cholesky factor of the prior covariance, as in the
    diagnosis.
    """

    unconstrained_names: list
    names: list
    prior_mean: np.ndarray
    prior_cov: np.ndarray
    directions: list
    combinations: list
    table: pd.DataFrame
    chol: np.ndarray = field(repr=False, default=None)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def ridges(self):
        return [d for d in self.directions if d.verdict == Verdict.NOT_IDENTIFIED]

    def whiten(self, x_unc):
        x = np.atleast_2d(np.asarray(x_unc, float))
        return np.linalg.solve(self.chol, (x - self.prior_mean).T).T


def parse_combination(text, names, unconstrained_names):
    """'a + b' → {a: 1, b: 1}; 'a·b' → {a_log__: 1, b_log__: 1}; 'k/m' → {k_log__: 1, m_log__: -1};
    None when a name is unknown (or a product involves a parameter that is not log-transformed)."""
    unc = dict(zip(names, unconstrained_names))
    s = text.replace(" ", "")
    if re.search(r"[·*/]", s):
        coef, sign = {}, 1.0
        for t in re.split(r"([·*/])", s):
            if t in "·*":
                sign = 1.0
            elif t == "/":
                sign = -1.0
            else:
                if t not in unc or not unc[t].endswith("_log__"):
                    return None
                coef[unc[t]] = sign
        return coef
    coef, sign = {}, 1.0
    for t in re.split(r"([+-])", s):
        if t == "+":
            sign = 1.0
        elif t == "-":
            sign = -1.0
        elif t:
            if t not in unc:
                return None
            coef[unc[t]] = sign
    return coef


def _complement(R, d):
    """Identified directions: Gram-Schmidt of the coordinate axes against the ridges ``R`` (k, d),
    skipping axes that become dependent, so independent parameters keep their own axis."""
    basis = list(R)
    comp = []
    for e in np.eye(d):
        w = e - sum(np.dot(e, b) * b for b in basis) if basis else e.copy()
        if np.linalg.norm(w) > 1e-6:
            w = w / np.linalg.norm(w)
            basis.append(w)
            comp.append(w)
    return np.array(comp).reshape(len(comp), d)


def reference_from_known_answer(spec, design=None, priors=None, n_prior=20000, random_seed=None,
                                ) -> ReferenceDirections:
    """Directions and combinations from ``spec.known_answer(design)``, in the diagnosis' layout.

    Ridges are the known answer's ``ridges`` (loadings on unconstrained names; a constrained name of a
    positive parameter is read as its log); the identified directions are their orthogonal complement
    in prior-whitened coordinates (Gram-Schmidt of the coordinate axes). Prior means and variances come
    from ``n_prior`` prior draws; the covariance is diagonal because ModelSpec priors are independent.
    """
    from bayesid import models
    from bayesid.neural.simulation import ParameterTransform, seed_int

    spec = models.get(spec)
    ka = spec.known_answer(spec.design(design))
    tr = ParameterTransform(spec, priors)
    th = spec.sample_prior(n_prior, priors=priors, random_seed=seed_int(random_seed))
    flat, _ = spec.flatten_theta(th)
    u = tr.forward(flat)
    mu = u.mean(0)
    # independent priors: a diagonal covariance (zeroing the sampling noise off the diagonal keeps the
    # known directions exact)
    cov = np.diag(u.var(axis=0, ddof=1))
    L = np.sqrt(cov)
    d = len(mu)
    unc_names = list(tr.unconstrained_names)
    to_unc = dict(zip(tr.names, unc_names))
    trmap = {n: ("log" if n.endswith("_log__") or "_log__[" in n else None) for n in unc_names}
    ridge_vecs = []
    for r in ka.ridges:
        delta = np.zeros(d)
        for k, v in r.items():
            key = k if k in unc_names else to_unc.get(k)
            if key is None:
                raise KeyError(f"known-answer ridge names {k!r}, not a parameter of {spec.name}")
            delta[unc_names.index(key)] = v
        z = np.linalg.solve(L, delta)
        ridge_vecs.append(z / np.linalg.norm(z))
    R = np.array(ridge_vecs).reshape(len(ridge_vecs), d)

    def make(v, verdict):
        disp = L @ v
        disp = disp / np.abs(disp).max()
        coef = np.linalg.solve(L.T, v)
        coef = coef / np.abs(coef).max()
        ridge = verdict == Verdict.NOT_IDENTIFIED
        shown = disp if ridge else coef
        label = name_combination({n: c for n, c in zip(unc_names, shown) if abs(c) >= 0.15}, trmap)
        return Direction(v, dict(zip(unc_names, disp)), dict(zip(unc_names, coef)),
                         1.0 if ridge else float("nan"), float("nan"), verdict, label, source="known answer")

    dirs = [make(v, Verdict.NOT_IDENTIFIED) for v in R] + [make(v, Verdict.IDENTIFIED) for v in _complement(R, d)]
    combos = []
    for c in ka.combinations:
        coef = parse_combination(c, tr.names, unc_names)
        if coef:
            combos.append(Combination(c, coef, source="known answer"))
    verdict = {}
    for n in tr.names:
        verdict[n] = (Verdict.IDENTIFIED if n in ka.identified else Verdict.WEAK if n in ka.weakly_identified
                      else Verdict.NOT_IDENTIFIED if n in ka.not_identified
                      else Verdict.COMBINATION if n in ka.in_combination else "")
    table = pd.DataFrame({"unconstrained": unc_names, "verdict": [str(verdict[n]) for n in tr.names],
                          "contraction": np.nan}, index=pd.Index(tr.names, name="parameter"))
    return ReferenceDirections(unc_names, list(tr.names), mu, cov, dirs, combos, table, L)
