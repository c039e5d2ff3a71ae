"""``bayesid.diagnose``: one call from a DataTree to a :class:`Diagnosis` — table, directions,
identifiable combinations, verdicts, plots and HTML."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .combinations import Combination, combinations_orthogonal_to, name_combination, variance_ratio
from .contraction import BIMODAL, bimodality, contraction, contraction_se, zscore
from .convergence import ConvergenceReport, convergence
from .draws import ParameterDraws, extract_draws
from .overlap import overlap
from .ridges import Whitening, posterior_directions, parameter_weights, whitening
from .sensitivity import prior_sensitivity
from .verdicts import Thresholds, Verdict, direction_verdict, parameter_verdicts

__all__ = ["Direction", "Diagnosis", "diagnose"]


@dataclass
class Direction:
    """A direction in unconstrained parameter space and how much the data narrow it.

    Attributes
    ----------
    vector : ndarray
        Unit vector in prior-whitened unconstrained coordinates.
    loadings : dict of str -> float
        Displacement in unconstrained coordinates (max |.| = 1): how parameters move along it.
    coefficients : dict of str -> float
        The combination ``cᵀθ`` whose variance ``ratio`` describes (max |.| = 1).
    ratio : float
        Posterior/prior variance ratio along the direction.
    ratio_se : float
        Its Monte Carlo standard error.
    verdict : str
    label : str
        Human name: of the displacement for ridges ("a - b" moves freely), of the combination otherwise.
    source : str
        ``"draws"`` or ``"fisher"``.
    """

    vector: np.ndarray
    loadings: dict
    coefficients: dict
    ratio: float
    ratio_se: float
    verdict: str
    label: str
    source: str = "draws"

    @property
    def contraction(self) -> float:
        return 1.0 - self.ratio

    def __repr__(self):
        return f"Direction({self.label!r}, ratio={self.ratio:.3f}, {self.verdict}, {self.source})"


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`. See ``table``, ``directions``, ``ridges``, ``combinations``."""

    table: pd.DataFrame
    directions: list
    combinations: list
    convergence: ConvergenceReport
    thresholds: Thresholds
    draws: ParameterDraws = field(repr=False)
    white: Whitening = field(repr=False)
    psense: pd.DataFrame | None = None
    psense_note: str = ""
    fisher: object = None
    fisher_directions: list = field(default_factory=list)
    fisher_combinations: list = field(default_factory=list)
    title: str = ""
    timings: dict = field(default_factory=dict)
    tree: object = field(default=None, repr=False)

    # ------------------------------------------------------------ accessors
    @property
    def ridges(self) -> list:
        """Non-identified directions (from draws; plus Fisher ones the draws did not show)."""
        out = [d for d in self.directions if d.verdict == Verdict.NOT_IDENTIFIED]
        return out + [d for d in self.fisher_directions if d.verdict == Verdict.NOT_IDENTIFIED and not out]

    @property
    def unconstrained_names(self) -> list:
        return list(self.draws.unconstrained_names)

    @property
    def names(self) -> list:
        return list(self.draws.names)

    @property
    def prior_mean(self) -> np.ndarray:
        return self.white.mean

    @property
    def prior_cov(self) -> np.ndarray:
        return self.white.cov

    @property
    def verdicts(self) -> dict:
        return dict(self.table["verdict"])

    def whiten(self, x_unc) -> np.ndarray:
        """Map (n, d) unconstrained points to prior-whitened coordinates."""
        return self.white.whiten(x_unc)

    def to_unconstrained(self, values: dict) -> np.ndarray:
        """Natural-scale values ``{variable: array (n, *shape)}`` -> (n, d) unconstrained array."""
        cols = []
        for name, tr, v in zip(self.draws.names, self.draws.transforms,
                               _component_values(values, self.draws)):
            if v is None:
                raise KeyError(f"values lack the variable of {name!r}")
            if tr == "log":
                v = np.log(v)
            elif tr == "logodds":
                v = np.log(v) - np.log1p(-v)
            elif tr is not None:
                raise ValueError(f"to_unconstrained does not know transform {tr!r} of {name!r}")
            cols.append(v)
        return np.column_stack(cols)

    def combination(self, name) -> Combination:
        for c in self.combinations + self.fisher_combinations:
            if c.name == name:
                return c
        raise KeyError(f"No identified combination {name!r}; found {[c.name for c in self.combinations]}")

    # ------------------------------------------------------------ text
    def summary(self) -> str:
        """A plain-language summary, most important first."""
        lines = []
        if not self.convergence.ok:
            lines.append("Sampling did not converge, so no identifiability verdict is trustworthy yet: "
                         + "; ".join(self.convergence.problems
                                     + [f"{k}: {', '.join(v)}" for k, v in self.convergence.parameter_problems.items()])
                         + ". Fix the sampling first (more draws, reparametrization, higher target_accept).")
        groups = {}
        for n, v in self.table["verdict"].items():
            groups.setdefault(v, []).append(n)
        for v in (Verdict.IDENTIFIED, Verdict.COMBINATION, Verdict.WEAK, Verdict.NOT_IDENTIFIED,
                  Verdict.CONFLICT):
            if v in groups:
                lines.append(f"{v.capitalize()}: {', '.join(groups[v])}.")
        multi = [n for n, b in self.table["bimodality"].items() if b > BIMODAL]
        if multi:
            lines.append(f"The posterior of {', '.join(multi)} looks multimodal (bimodality coefficient > "
                         f"{BIMODAL}): the data may allow several separate solutions (a label swap or a "
                         "second branch), which variance-based verdicts cannot see. Inspect the marginals.")
        for r in self.ridges[:5]:
            lines.append(f"Ridge ({r.source}): the data cannot tell points apart along {r.label} "
                         f"(posterior/prior variance ratio {r.ratio:.2f}).")
        if len(self.ridges) > 5:
            lines.append(f"... and {len(self.ridges) - 5} more ridges (see .ridges).")
        if self.combinations:
            lines.append("Identified combinations: " + ", ".join(
                f"{c.name} (contraction {c.contraction:.2f})" for c in self.combinations) + ".")
        f = self.fisher
        if f is not None:
            lines.append(
                f"Fisher information (model-based, {len(f.local_null_dim)} draws): {f.global_null_dim} "
                f"uninformed direction(s) on average; {f.local_null_fraction:.0%} of draws have a locally "
                "uninformed direction" + (" — a curved ridge: the direction turns across the posterior."
                                          if f.curved_ridge else "."))
        if not self.ridges and all(v == Verdict.IDENTIFIED for v in self.table["verdict"]):
            lines.append("No ridge: every parameter is identified by these data.")
        return "\n".join(lines)

    def __repr__(self):
        cols = [c for c in ("contraction", "z", "overlap", "verdict") if c in self.table]
        return f"<Diagnosis {self.title}>\n{self.table[cols].to_string()}\n\n{self.summary()}"

    # ------------------------------------------------------------ plots / html
    def plot_contraction(self, ax=None):
        from .plots import plot_contraction

        return plot_contraction(self, ax=ax)

    def plot_marginals(self):
        from .plots import plot_marginals

        return plot_marginals(self)

    def plot_pair(self, ax=None):
        from .plots import plot_pair

        return plot_pair(self, ax=ax)

    def plot_spectrum(self, ax=None):
        from .plots import plot_spectrum

        return plot_spectrum(self, ax=ax)

    def _repr_html_(self):
        from bayesid.report import diagnosis_html

        return diagnosis_html(self, figures=False)

    def to_html(self, figures: bool = True) -> str:
        """A self-contained HTML fragment (verdict table, summary, plots)."""
        from bayesid.report import diagnosis_html

        return diagnosis_html(self, figures=figures)


def _component_values(values: dict, draws) -> list:
    """Per component of ``draws``, the matching entries of ``{variable: array (n, *shape) or shape}``."""
    out = []
    for name in draws.names:
        var, k = draws.index[name]
        if var not in values:
            out.append(None)
            continue
        v = np.asarray(values[var], float)
        size = sum(1 for vv, _ in draws.index.values() if vv == var)
        if v.size % size:
            raise ValueError(f"values[{var!r}] has {v.size} entries, not a multiple of its {size} components")
        out.append(v.reshape(-1, size)[:, k])
    return out


def _truth_vector(truth, draws):
    if truth is None:
        return None
    return np.array([np.nan if v is None else float(v[0]) for v in _component_values(truth, draws)])


def _make_direction(j, ds, names, trmap, th, source="draws"):
    disp = {n: float(ds.displacements[i, j]) for i, n in enumerate(names) if abs(ds.displacements[i, j]) > 1e-3}
    coef = {n: float(ds.coefficients[i, j]) for i, n in enumerate(names) if abs(ds.coefficients[i, j]) > 1e-3}
    ratio = float(ds.ratios[j])
    verdict = direction_verdict(ratio, th)
    big = {k: v for k, v in (disp if verdict == Verdict.NOT_IDENTIFIED else coef).items() if abs(v) >= 0.15}
    return Direction(ds.vectors[:, j], disp, coef, ratio, float(ds.ratio_se[j]), verdict,
                     name_combination(big, trmap), source)


def diagnose(tree, model=None, truth=None, var_names=None, fisher="auto", thresholds: Thresholds | None = None,
             transforms="auto", fisher_draws: int = 64, random_seed=0, title: str = "",
             progressbar: bool = False) -> Diagnosis:
    """Which parameters, directions and combinations do the data identify?

    Parameters
    ----------
    tree : xarray.DataTree
        Needs ``prior`` and ``posterior`` groups (``bayesid.fit`` writes everything). A hand-built
        tree of numpy draws works for the draw-based parts.
    model : pymc.Model, optional
        Enables the Fisher-information analysis (local and curved ridges).
    truth : dict, optional
        True values ``{variable: value}`` for z-scores (e.g. ``spec.true_values()``).
    var_names : list of str, optional
        Parameters to diagnose (default: all free parameters).
    fisher : "auto", bool
        Run the Fisher analysis ("auto": when ``model`` is given).
    thresholds : Thresholds, optional
        Cut-offs for the verdicts (see :mod:`bayesid.diagnostics.verdicts`).
    transforms : "auto" or dict
        Unconstrained coordinates for trees without ``unconstrained_*`` groups (see
        :func:`~bayesid.diagnostics.draws.extract_draws`).
    fisher_draws : int
        Posterior draws averaged by the Fisher analysis.
    random_seed : int
        Seed for the Fisher subsample and replicate data.
    title : str
    progressbar : bool
        Show progress of the Fisher analysis.

    Returns
    -------
    Diagnosis
    """
    th = thresholds or Thresholds()
    timings = {}
    t0 = time.perf_counter()
    dr = extract_draws(tree, var_names=var_names, transforms=transforms)
    conv = convergence(tree, dr, rhat_max=th.rhat_max, ess_min_per_chain=th.ess_min_per_chain,
                       bfmi_min=th.bfmi_min, max_divergences=th.max_divergences)
    ess = np.array([conv.ess_bulk[n] for n in dr.names])
    c_nat = contraction(dr.prior, dr.posterior)
    c_unc = contraction(dr.prior_unc, dr.posterior_unc)
    c_se = contraction_se(dr.prior, dr.posterior)
    ov = overlap(dr.prior, dr.posterior)
    med = np.median(dr.posterior_flat, axis=0)
    cdf = (dr.prior < med).mean(axis=0)
    white = whitening(dr.prior_unc)
    ds = posterior_directions(white, dr.posterior_unc, n_prior=dr.prior.shape[0])
    w = parameter_weights(white, ds.vectors)
    verdicts = parameter_verdicts(dr.names, c_unc, w, ds.ratios, cdf, conv, th)
    trmap = dict(zip(dr.unconstrained_names, dr.transforms))
    directions = [_make_direction(j, ds, dr.unconstrained_names, trmap, th) for j in range(dr.d)]
    ridge_cols = [j for j in range(dr.d) if directions[j].verdict == Verdict.NOT_IDENTIFIED]
    combos = []
    if ridge_cols:
        for c in combinations_orthogonal_to(ds.displacements[:, ridge_cols], dr.unconstrained_names,
                                            dr.transforms):
            c.ratio = variance_ratio(c.coefficients, dr.unconstrained_names, dr.prior_unc, dr.posterior_unc)
            if c.ratio <= 1.0 - th.identified:
                combos.append(c)
    timings["draws"] = time.perf_counter() - t0

    psense, note = prior_sensitivity(tree, sorted(set(dr.variables), key=dr.variables.index), dr.names)
    timings["psense"] = time.perf_counter() - t0 - timings["draws"]

    tv = _truth_vector(truth, dr)
    q = dr.posterior_flat
    table = pd.DataFrame({
        "variable": dr.variables,
        "unconstrained": dr.unconstrained_names,
        "mean": q.mean(axis=0),
        "sd": q.std(axis=0, ddof=1),
        "contraction": c_nat,
        "contraction_se": c_se,
        "contraction_unc": c_unc,
        "overlap": ov,
        "bimodality": bimodality(dr.posterior_unc),
    }, index=pd.Index(dr.names, name="parameter"))
    if tv is not None:
        table["truth"] = tv
        table["z"] = zscore(q, tv)
    if psense is not None and len(psense) == dr.d:
        table["psense_prior"] = psense["prior"].values
        table["psense_likelihood"] = psense["likelihood"].values
    elif psense is not None:
        note = ("psense rows are natural-scale components, which do not map one-to-one onto the "
                "diagnosed (unconstrained, dimension-reduced) coordinates; see diag.psense")
    table["rhat"] = [conv.rhat[n] for n in dr.names]
    table["ess_bulk"] = ess
    table["ess_tail"] = [conv.ess_tail[n] for n in dr.names]
    table["ridge_weight"] = [v[2] for v in verdicts]
    table["verdict"] = [v[0] for v in verdicts]
    table["reason"] = [v[1] for v in verdicts]

    diag = Diagnosis(table=table, directions=directions, combinations=combos, convergence=conv,
                     thresholds=th, draws=dr, white=white, psense=psense, psense_note=note,
                     title=title, timings=timings, tree=tree)

    if fisher == "auto":
        fisher = model is not None
    if fisher:
        if model is None:
            raise ValueError("fisher=True needs the PyMC model: diagnose(tree, model=model)")
        from .fisher import fisher_information

        t1 = time.perf_counter()
        fr = fisher_information(model, tree, white, dr.unconstrained_names, n_draws=fisher_draws,
                                random_seed=random_seed, progressbar=progressbar)
        timings["fisher"] = time.perf_counter() - t1
        diag.fisher = fr
        from .ridges import DirectionSet, _normalise_columns

        fds = DirectionSet(fr.predicted_ratios, fr.vectors,
                           _normalise_columns(white.chol @ fr.vectors),
                           _normalise_columns(np.linalg.solve(white.chol.T, fr.vectors)),
                           np.full(dr.d, np.nan))
        diag.fisher_directions = [_make_direction(j, fds, dr.unconstrained_names, trmap, th, source="fisher")
                                  for j in range(dr.d)]
        fr_cols = [j for j, d in enumerate(diag.fisher_directions) if d.verdict == Verdict.NOT_IDENTIFIED]
        if fr_cols:
            for c in combinations_orthogonal_to(fds.displacements[:, fr_cols], dr.unconstrained_names,
                                                dr.transforms):
                c.ratio = variance_ratio(c.coefficients, dr.unconstrained_names, dr.prior_unc,
                                         dr.posterior_unc)
                c.source = "fisher"
                diag.fisher_combinations.append(c)
    return diag
