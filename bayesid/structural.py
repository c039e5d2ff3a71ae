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
leaves no null direction in ``W̄``). Ridges are split, straightened and named by the diagnosis' own
:func:`bayesid.diagnostics.ridges.local_ridges` on the prior draws: independent ridges apart, per
parameter the coordinate (natural, log, logit, log(b − x), unconstrained; interval bounds read from the
model's transforms) in which the null space is most nearly constant, and a name only where the ridge is
straight there and the named invariant's *predicted* contraction (local linear-Gaussian,
:func:`bayesid.diagnostics.ridges.predicted_ratio`) minus 2 MCSE reaches the ``identified`` threshold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["CheckResult", "check"]


@dataclass
class CheckResult:
    """Result of :func:`check`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per parameter: predicted contraction, local ridge fraction (± binomial SE), verdict.
    directions : list of str
        One sentence per local ridge (what moves freely, and whether it is straight in the chosen
        coordinates).
    combinations : list of Combination
        Named invariants of the straight ridges, with their predicted ratio and MCSE.
    local_ridges : list of LocalRidge
        The ridges themselves (:func:`bayesid.diagnostics.ridges.local_ridges`).
    whitening : Whitening
        The prior whitening the information was whitened with (prior covariance of the
        unconstrained coordinates).
    """

    table: pd.DataFrame
    directions: list
    combinations: list
    fisher: object = field(repr=False, default=None)
    seconds: float = 0.0
    n_draws: int = 0
    local_ridges: list = field(default_factory=list)
    whitening: object = field(repr=False, default=None)

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


def _prior_draws(model, pts, natural, n_draws):
    """The check's prior draws as :class:`~bayesid.diagnostics.draws.ParameterDraws` in
    :func:`~bayesid.diagnostics.preposterior.value_layout` order (``natural``: the same draws by free RV
    name); the first ``n_draws`` (where the information is evaluated) serve as the "posterior" rows that
    :func:`~bayesid.diagnostics.ridges.local_ridges` reads natural values from. A variable whose
    transform changes its size (simplex, zero-sum) is kept in its unconstrained coordinates, named after
    them, as in a diagnosis."""
    from bayesid.diagnostics.draws import ParameterDraws
    from bayesid.diagnostics.preposterior import value_layout
    from bayesid.pymc_utils import free_parameters

    names, layout = value_layout(model)
    n = pts.shape[0]
    rv_of = {model.rvs_to_values[rv].name: rv.name for rv in model.free_RVs}
    tr_of = {p.value_name: p.transform for p in free_parameters(model)}
    cols, comp, variables, trs, index = [], [], [], [], {}
    for v, shape, sl in layout:
        x = np.asarray(natural[rv_of[v.name]], float).reshape(n, -1)
        size = sl.stop - sl.start
        same = x.shape[1] == size
        cols.append(x if same else pts[:, sl])
        var = rv_of[v.name] if same else v.name
        for k in range(size):
            comp.append(var if tuple(shape) == () else f"{var}[{k}]")
            variables.append(var)
            trs.append(tr_of.get(v.name) if same else None)
            index[comp[-1]] = (var, k)
    nat = np.concatenate(cols, axis=1)
    return ParameterDraws(names=comp, unconstrained_names=names, transforms=trs, variables=variables,
                          prior=nat, posterior=nat[None, :n_draws], prior_unc=pts,
                          posterior_unc=pts[None, :n_draws], index=index)


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
    from bayesid.diagnostics.convergence import ConvergenceReport
    from bayesid.diagnostics.preposterior import fisher_at_draws, prior_points
    from bayesid.diagnostics.ridges import local_ridges, parameter_weights, whitening
    from bayesid.diagnostics.verdicts import Thresholds, Verdict, parameter_verdicts

    th = thresholds or Thresholds()
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(random_seed)
    s_pts, s_fis = ss.spawn(2)
    pts, natural = prior_points(model, max(n_whitening, n_draws), random_seed=int(s_pts.generate_state(1)[0]),
                                natural=True)
    white = whitening(pts)
    res = fisher_at_draws(model, pts[:n_draws], white, lambda_tol=lambda_tol,
                          random_seed=int(s_fis.generate_state(1)[0]))
    draws = _prior_draws(model, pts, natural, n_draws)
    names, natural, d = draws.unconstrained_names, draws.names, draws.d
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

    # the diagnosis' local ridges on the prior draws: split, straightened, named, each name's contraction
    # predicted from the per-draw information (there is no posterior to measure it on)
    _, ridges = local_ridges(res, white, draws, weight_tol=th.weight_tol, identified=th.identified,
                             majority=majority, model=model, measure="fisher")
    directions, combos = [], []
    for r in ridges:
        coords = ", ".join(f"{c} {n}" if c != "unconstrained" else f"unconstrained {n}"
                           for n, c in r.coordinates.items())
        shape = "straight" if r.straight else "curved"
        directions.append(f"{r.label} moves freely ({shape} in {coords}: residual turning "
                          f"{max(r.deviation, 0.0):.3f}; at {r.draw_fraction:.0%} of draws)")
        combos += [c for c in r.combinations if c.name not in {x.name for x in combos}]
    return CheckResult(table, directions, combos, res, time.perf_counter() - t0, S, ridges, white)
