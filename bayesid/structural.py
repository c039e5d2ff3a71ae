"""``bayesid.check(model)`` (module ``bayesid.structural``): structural identifiability before any sampling.

Prior draws from the model's forward-sampling graph (vectorised: bayesid.vectorize.sample_prior); at
each, the prior-whitened Fisher information
(:func:`bayesid.diagnostics.preposterior.fisher_at_draws`, the same core as the design comparison and
the diagnosis). Per parameter two pieces of model-based evidence:

* **averaged** (linear-Gaussian) prediction: contraction ``1 − l_iᵀ (I + W̄)⁻¹ l_i / ‖l_i‖²`` and the
  diagnostics' verdict rule on the eigen-directions of ``W̄``;
* **local**: the share ``w_i(θ_s)`` of the parameter's prior variance along locally uninformed
  directions at each draw. Rule: if at a fraction ≥ ``majority`` (default ½) of the draws
  ``w_i ≥ 1 − weight_tol`` the parameter is *not identified*; else if at ≥ ``majority`` of the draws
  ``w_i ≥ weight_tol`` it is *identified only in combination* (it moves along a — possibly curved —
  ridge). The fractions and their binomial standard errors are in the table.

The local rule overrides the averaged one (a curved ridge, ``p1·p2 = c``, turns across the prior and
leaves no null direction in ``W̄``). Ridges are named in log coordinates for positive parameters
(``log``/``logodds`` transforms; where the per-draw null vectors are constant, the ridge is straight
there) with :func:`bayesid.diagnostics.combinations.combinations_orthogonal_to`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["CheckResult", "check"]


@dataclass
class CheckResult:
    """Result of :func:`check`: ``table`` (one row per parameter), ``directions`` (uninformed
    directions of the averaged information), ``combinations`` (named identified combinations)."""

    table: pd.DataFrame
    directions: list
    combinations: list
    fisher: object = field(repr=False, default=None)
    seconds: float = 0.0
    n_draws: int = 0

    @property
    def verdicts(self) -> dict:
        return dict(self.table["verdict"])

    def summary(self) -> str:
        lines = [f"Structural check (no sampling; Fisher information at {self.n_draws} prior draws, "
                 f"{self.seconds:.1f} s)."]
        groups = {}
        for n, v in self.table["verdict"].items():
            groups.setdefault(str(v), []).append(n)
        for v, ns in groups.items():
            lines.append(f"Predicted {v}: {', '.join(ns)}.")
        for d in self.directions:
            lines.append(f"Uninformed direction: {d}.")
        if self.combinations:
            lines.append("Identified combinations: " + ", ".join(c.name for c in self.combinations) + ".")
        return "\n".join(lines)

    def __repr__(self):
        return f"<CheckResult>\n{self.table.to_string()}\n\n{self.summary()}"

    def _repr_html_(self):
        from .report.misc import check_html

        return check_html(self)


def _interval_from_zero(model) -> set:
    """Value-variable names of interval-transformed parameters whose constant bounds are (0, b), b finite:
    their ridges are named in log coordinates, like logodds ones."""
    out = set()
    for rv, tr in model.rvs_to_transforms.items():
        if tr is None or not hasattr(tr, "get_a_and_b"):
            continue
        try:
            a, b, lower, upper = tr.get_a_and_b(rv.owner.inputs)
            a = float(np.asarray(a.eval() if hasattr(a, "eval") else a))
            b = float(np.asarray(b.eval() if hasattr(b, "eval") else b))
        except Exception:  # bounds that are not constants (or not scalars): keep the sampler's coordinates
            continue
        if lower and upper and a == 0.0 and np.isfinite(b):
            out.add(model.rvs_to_values[rv].name)
    return out


def check(model, n_draws: int = 64, n_whitening: int = 1000, random_seed=0, lambda_tol: float = 0.25,
          thresholds=None, majority: float = 0.5) -> CheckResult:
    """Predicted identifiability of any ``pm.Model`` before sampling.

    Parameters
    ----------
    model : pymc.Model
        With observed data (their values are not used, only the likelihood's form and sizes).
    n_draws : int
        Prior draws at which the Fisher information is evaluated.
    n_whitening : int
        Prior draws for the prior covariance (whitening).
    random_seed : int
    lambda_tol : float
        Whitened information below which a direction is uninformed (ratio ≥ 0.8).
    thresholds : Thresholds, optional
        The diagnostics' verdict thresholds (``weight_tol``, ``identified``, ``ridge``).
    majority : float
        Fraction of draws at which the local rule must hold.

    Returns
    -------
    CheckResult
    """
    from bayesid.diagnostics.combinations import combinations_orthogonal_to, name_combination
    from bayesid.diagnostics.convergence import ConvergenceReport
    from bayesid.diagnostics.preposterior import fisher_at_draws, prior_points, value_layout
    from bayesid.diagnostics.ridges import _normalise_columns, parameter_weights, whitening
    from bayesid.diagnostics.verdicts import Thresholds, Verdict, parameter_verdicts
    from bayesid.pymc_utils import free_parameters

    th = thresholds or Thresholds()
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(random_seed)
    s_pts, s_fis = ss.spawn(2)
    pts = prior_points(model, max(n_whitening, n_draws), random_seed=int(s_pts.generate_state(1)[0]))
    white = whitening(pts)
    res = fisher_at_draws(model, pts[:n_draws], white, lambda_tol=lambda_tol,
                          random_seed=int(s_fis.generate_state(1)[0]))
    names, layout = value_layout(model)
    d = len(names)
    tr_of = {p.value_name: p.transform for p in free_parameters(model)}
    trs = [tr_of.get(n.split("[")[0]) for n in names]
    nat = {p.value_name: p.name for p in free_parameters(model)}
    natural = [nat.get(n.split("[")[0], n) + (n[n.index("["):] if "[" in n else "") for n in names]
    L = white.chol
    lam, vec = res.eigenvalues, res.vectors
    ratio = np.einsum("ij,jk,ik->i", L, np.linalg.inv(np.eye(d) + res.mean_whitened), L) / np.sum(L**2, 1)
    avg = parameter_verdicts(natural, 1.0 - ratio, parameter_weights(white, vec), 1.0 / (1.0 + lam),
                             np.full(d, 0.5), ConvergenceReport(), th)
    S = res.null_weight.shape[0]
    f_free = (res.null_weight >= 1.0 - th.weight_tol).mean(axis=0)
    f_moves = (res.null_weight >= th.weight_tol).mean(axis=0)
    verdicts, reasons = [], []
    for i in range(d):
        if f_free[i] >= majority:
            verdicts.append(Verdict.NOT_IDENTIFIED)
            reasons.append(f"moves freely along a locally uninformed direction at {f_free[i]:.0%} of draws")
        elif f_moves[i] >= majority:
            verdicts.append(Verdict.COMBINATION)
            reasons.append(f"loads on a locally uninformed direction at {f_moves[i]:.0%} of draws")
        else:
            verdicts.append(avg[i][0])
            reasons.append(avg[i][1])
    table = pd.DataFrame({
        "unconstrained": names,
        "predicted_contraction": 1.0 - ratio,
        "local_ridge_fraction": f_moves,
        "local_ridge_fraction_se": np.sqrt(np.maximum(f_moves * (1 - f_moves), 0.25 / S) / S),
        "verdict": verdicts,
        "reason": reasons,
    }, index=pd.Index(natural, name="parameter"))

    # name the ridges: per-draw null displacements, in log coordinates for positive parameters
    x = res.points
    scale = np.ones_like(x)  # d(log x)/du for log / logodds coordinates
    name_tr = list(trs)
    zero_lower = _interval_from_zero(model)
    for i, tr in enumerate(trs):
        # logodds, and interval on (0, b) (x = b·σ(u)): dlog x / du = 1 − σ(u)
        if tr == "logodds" or (tr == "interval" and names[i].split("[")[0] in zero_lower):
            scale[:, i] = 1.0 / (1.0 + np.exp(x[:, i]))
            name_tr[i] = "log"
    disp = []
    # a ridge is named only where the local rule sees one: at a majority of the draws (a minority of
    # draws near the prior's edges, p ≈ 0, can lose a direction without the model having a ridge)
    with_ridge = float(np.mean(res.local_null_dim > 0)) >= majority
    for s in range(S if with_ridge else 0):
        null = res.local_eigenvalues[s] < lambda_tol
        if null.any():
            disp.append((L @ res.local_vectors[s][:, null]) * scale[s][:, None])
    combos, directions = [], []
    if disp:
        k = int(np.median([dd.shape[1] for dd in disp]))
        # the common null space across draws: leading left singular vectors of all displacements
        stack = np.concatenate([dd / np.linalg.norm(dd, axis=0, keepdims=True) for dd in disp], axis=1)
        u, sv, _ = np.linalg.svd(stack, full_matrices=False)
        straight = sv[:k] ** 2 / stack.shape[1] * k  # ≈ 1 where the ridge is straight in these coordinates
        ridge = _normalise_columns(u[:, :k])
        lognames = [n.replace("_logodds__", "_log__").replace("_interval__", "_log__")
                    if name_tr[i] == "log" else n for i, n in enumerate(names)]
        trmap = dict(zip(lognames, name_tr))
        for j in range(k):
            big = {lognames[i]: ridge[i, j] for i in range(d) if abs(ridge[i, j]) >= 0.15}
            directions.append(f"{name_combination(big, trmap)} moves freely "
                              f"(straightness {straight[j]:.2f} in these coordinates)")
        if np.all(straight > 0.9):
            combos = combinations_orthogonal_to(ridge, lognames, name_tr)
    return CheckResult(table, directions, combos, res, time.perf_counter() - t0, S)
