"""``bayesid.diagnose``: one call from a DataTree to a :class:`Diagnosis` — table, directions,
identifiable combinations, verdicts, plots and HTML."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .combinations import Combination, combinations_orthogonal_to, name_combination, variance_ratios
from .contraction import BIMODAL, bimodality, contraction, contraction_se, zscore
from .convergence import ConvergenceReport, convergence
from .display import renderer
from .draws import ParameterDraws, check_truth, extract_draws, fisher_precheck
from .overlap import overlap
from .ridges import Whitening, posterior_directions, parameter_weights, whitening
from .sensitivity import prior_sensitivity
from .verdicts import (Explanation, Thresholds, Verdict, combine_local_evidence, direction_verdict,
                       parameter_verdicts)

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
        ``"draws"``, ``"fisher"`` (averaged information) or ``"fisher-local"`` (a local ridge from the
        per-draw Fisher null spaces; ``ratio`` is then NaN and ``local`` holds the
        :class:`~bayesid.diagnostics.ridges.LocalRidge` with its coordinates and draw fraction).
    parameters : list of str
        Natural names of the parameters that move along it (share of prior variance ≥ ``weight_tol``).
    """

    vector: np.ndarray
    loadings: dict
    coefficients: dict
    ratio: float
    ratio_se: float
    verdict: str
    label: str
    source: str = "draws"
    parameters: list = field(default_factory=list)
    local: object = field(default=None, repr=False)

    @property
    def contraction(self) -> float:
        return 1.0 - self.ratio

    def __repr__(self):
        return f"Direction({self.label!r}, ratio={self.ratio:.3f}, {self.verdict}, {self.source})"


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`. See ``table``, ``directions``, ``ridges``, ``combinations``.

    ``explained`` maps each parameter whose *not converged* a structural cause replaced to its
    :class:`~bayesid.diagnostics.verdicts.Explanation` (``sampler_struggles`` is the flag the summary and the
    report read). ``symmetry`` is the :class:`~bayesid.diagnostics.symmetry.SymmetryResult` when the
    chains sat in mirror solutions of a discrete symmetry: the draws were relabelled to one labelling,
    ``convergence`` describes the relabelled chains and ``raw_convergence`` the chains as sampled."""

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
    local_ridges: list = field(default_factory=list)
    local_evidence_used: bool = False
    trouble: object = None
    explained: dict = field(default_factory=dict)
    symmetry: object = None
    raw_convergence: ConvergenceReport | None = None
    _ridges: list = field(default=None, repr=False)

    # ------------------------------------------------------------ accessors
    @property
    def ridges(self) -> list:
        """The ridges the verdicts rest on — the one list the table, the summary and the report use.

        Draw-based non-identified directions, then local (Fisher) ridges the draws did not show
        (curved or bounded ones), each kept only when none of its parameters is *not converged* or in
        *prior–data conflict* (then no ridge claim is made; see :meth:`summary`)."""
        return list(self._ridges or [])

    def consistency_problems(self) -> list:
        """Contradictions between the table, :attr:`ridges`, the combinations and the summary (empty
        when they agree; a test asserts that)."""
        v = self.verdicts
        out = []
        in_ridge = {p for r in self.ridges for p in r.parameters}
        for r in self.ridges:
            for p in r.parameters:
                if v.get(p) in (Verdict.NOT_CONVERGED, Verdict.CONFLICT, Verdict.IDENTIFIED):
                    out.append(f"ridge {r.label!r} moves {p}, whose verdict is {v.get(p)!r}")
        explained = set(self.explained)
        for p, vv in v.items():
            if vv in (Verdict.NOT_IDENTIFIED, Verdict.COMBINATION) and p not in in_ridge | explained:
                out.append(f"{p} is {vv!r} but lies on no reported ridge")
        s = self.summary()
        if "No ridge" in s and (self.ridges or any(x not in (Verdict.IDENTIFIED, Verdict.RELABELLING)
                                                   for x in v.values())):
            out.append("the summary says 'No ridge' but the table or .ridges disagree")
        sym = self.symmetry
        moved = set(sym.moved) if sym is not None else set()
        for p, vv in v.items():
            if vv == Verdict.RELABELLING and p not in moved:
                out.append(f"{p} is {vv!r} but no reported symmetry moves it")
            if vv == Verdict.IDENTIFIED and p in moved:
                out.append(f"{p} is 'identified' although the symmetry {sym.label} relabels it")
        if sym is not None and sym.symmetries and sym.label not in s:
            out.append(f"symmetry {sym.label!r} missing from the summary")
        for r in self.ridges:
            if r.label not in s and len(self.ridges) <= 5:
                out.append(f"ridge {r.label!r} missing from the summary")
        if not self.convergence.ok and "Ridge" in s and not self.ridges:
            out.append("the summary claims a ridge while sampling has not converged")
        return out

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
    def notes(self) -> list:
        """What was left out, dropped or skipped, and why (Deterministics, imputed values, constant
        parameters, non-finite prior draws, a skipped Fisher analysis...)."""
        return list(getattr(self.draws, "notes", []))

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

    def levels(self, model=None, **kwargs):
        """Population-, fixed- and cluster-level verdicts of a hierarchical model
        (:func:`bayesid.diagnostics.hierarchy.levels`; ``model`` is the pymc.Model of the draws)."""
        from .hierarchy import levels

        return levels(self, model=model, **kwargs)

    # ------------------------------------------------------------ text
    def summary(self) -> str:
        """A plain-language summary, most important first."""
        lines = []
        sym = self.symmetry
        if sym is not None and sym.symmetries:
            lines.append(_symmetry_sentence(self))
        explained = {n: e for n, e in self.explained.items()
                     if self.table["verdict"][n] != Verdict.NOT_CONVERGED and getattr(e, "sampler_struggles", False)}
        if explained and not (self.table["verdict"] == Verdict.NOT_CONVERGED).any():
            what = "; ".join(dict.fromkeys(getattr(e, "summary", "") or str(e.reason) for e in explained.values()))
            lines.append(f"The sampler did not converge because of non-identification: {', '.join(explained)} — "
                         f"{what}.")
        elif not self.convergence.ok:
            lines.append("Sampling did not converge, so no identifiability verdict is trustworthy yet: "
                         + "; ".join(self.convergence.problems
                                     + [f"{k}: {', '.join(v)}" for k, v in self.convergence.parameter_problems.items()])
                         + ". Fix the sampling first (more draws, reparametrization, higher target_accept).")
        groups = {}
        for n, v in self.table["verdict"].items():
            groups.setdefault(v, []).append(n)
        for v in (Verdict.IDENTIFIED, Verdict.RELABELLING, Verdict.COMBINATION, Verdict.WEAK,
                  Verdict.NOT_IDENTIFIED, Verdict.CONFLICT):
            if v in groups:
                lines.append(f"{v.capitalize()}: {', '.join(groups[v])}.")
        multi = [n for n, b in self.table["bimodality"].items() if b > BIMODAL]
        if multi:
            lines.append(f"The posterior of {', '.join(multi)} looks multimodal (bimodality coefficient > "
                         f"{BIMODAL}): the data may allow several separate solutions (a label swap or a "
                         "second branch), which variance-based verdicts cannot see. Inspect the marginals.")
        for r in self.ridges[:5]:
            if r.source == "fisher-local":
                lr = r.local
                txt = (f"Ridge (local Fisher information, {lr.draw_fraction:.0%} ± {lr.draw_fraction_se:.0%} of "
                       f"draws): {r.label} moves freely"
                       + (" while " + " and ".join(c.name for c in lr.combinations) + " stay"
                          + ("s" if len(lr.combinations) == 1 else "") + " fixed" if lr.combinations else ""))
                if lr.curved and lr.straight:
                    txt += (" — curved in the sampler's coordinates, a straight line in "
                            f"{_coord_words(lr.coordinates)}")
                elif not lr.straight:
                    txt += " — curved in every coordinate tried (natural, log, logit)"
                txt += "."
                if lr.combinations:
                    txt += " Identified: " + ", ".join(
                        f"{c.name} (contraction {c.contraction:.2f} ± {c.contraction_se:.2f})"
                        for c in lr.combinations) + "."
                lines.append(txt)
            else:
                lines.append(f"Ridge ({r.source}): the data cannot tell points apart along {r.label} "
                             f"(posterior/prior variance ratio {r.ratio:.2f}).")
        if len(self.ridges) > 5:
            lines.append(f"... and {len(self.ridges) - 5} more ridges (see .ridges).")
        v = self.verdicts
        sure = [c for c in self.combinations if not any(v.get(p) in _BLOCKING for p in c.parameters)]
        unsure = [c for c in self.combinations if c not in sure]
        if sure:
            lines.append("Identified combinations: " + ", ".join(
                f"{c.name} (contraction {c.contraction:.2f})" for c in sure) + ".")
        if unsure:
            lines.append("Measured on draws that have not converged (not a verdict until they do): " + ", ".join(
                f"{c.name} (contraction {c.contraction:.2f})" for c in unsure) + ".")
        f = self.fisher
        if f is not None:
            msg = (f"Fisher information (model-based, {len(f.local_null_dim)} draws): {f.global_null_dim} "
                   f"uninformed direction(s) on average; {f.local_null_fraction:.0%} of draws have a locally "
                   "uninformed direction")
            if not self.local_evidence_used and not self.convergence.ok:
                msg += (" (not used in the verdicts: the draws it was evaluated at are not trustworthy "
                        "until sampling converges).")
            elif f.curved_ridge and any(r.source == "fisher-local" and r.local.curved for r in self.ridges):
                msg += " — a curved ridge: the direction turns across the posterior."
            else:
                msg += "."
            lines.append(msg)
        if not self.ridges and all(v == Verdict.IDENTIFIED for v in self.table["verdict"]):
            lines.append("No ridge: every parameter is identified by these data.")
        elif (not self.ridges and sym is not None and sym.symmetries
              and all(v in (Verdict.IDENTIFIED, Verdict.RELABELLING) for v in self.table["verdict"])):
            lines.append(f"No ridge: every parameter is identified by these data, up to the relabelling {sym.label}.")
        lines += [f"Note: {n}." for n in self.notes]
        return "\n".join(lines)

    def __repr__(self):
        cols = [c for c in ("contraction", "z", "overlap", "verdict") if c in self.table]
        return f"<Diagnosis {self.title}>\n{self.table[cols].to_string()}\n\n{self.summary()}"

    # ------------------------------------------------------------ plots / html
    # Rendered by the presentation layer through diagnostics.display (never imported from here).
    def plot_contraction(self, ax=None):
        return renderer("plot_contraction")(self, ax=ax)

    def plot_marginals(self):
        return renderer("plot_marginals")(self)

    def plot_pair(self, ax=None):
        return renderer("plot_pair")(self, ax=ax)

    def plot_spectrum(self, ax=None):
        return renderer("plot_spectrum")(self, ax=ax)

    def _repr_html_(self):
        return renderer("diagnosis_html")(self, figures=False)

    def to_html(self, figures: bool = True) -> str:
        """A self-contained HTML fragment (verdict table, summary, plots)."""
        return renderer("diagnosis_html")(self, figures=figures)


def _symmetry_sentence(diag) -> str:
    """The summary's account of a discrete symmetry: what was checked, what relabelling did, the fix."""
    sym = diag.symmetry
    raw = diag.raw_convergence
    idx = {n: i for i, n in enumerate(sym.names)}
    moved = sym.moved
    before = max(float(sym.rhat_before[idx[n]]) for n in moved)
    after = max(float(sym.rhat_after[idx[n]]) for n in moved)
    parts = []
    for s in sym.symmetries:
        prior = ("the prior too" if s.prior_invariant else
                 f"the prior differs by up to {s.logprior_delta:.2g}, so the labellings differ in prior weight only")
        parts.append(f"{s.label} (largest |Δ log-likelihood| {s.loglik_delta:.1g} over {s.n_checked} swapped draws; "
                     f"{prior}; the mirror solutions lie {s.separation:.0f} SD apart from their midpoint)")
    chains = raw.chains if raw is not None else len(sym.chain_labels)
    txt = (f"The {chains} chains sat in {sym.n_modes} mirror solutions of a symmetry of the likelihood: "
           + "; ".join(parts) + ". The data cannot tell these labellings apart, so R-hat failed (largest "
           f"{before:.2f}) although each solution is pinned down; relabelled into one labelling the chains agree "
           f"(largest R-hat {after:.3f}), and the table describes that solution. Fix: "
           + "; ".join(dict.fromkeys(s.advice for s in sym.symmetries)) + ".")
    return txt


def _coord_words(coords: dict) -> str:
    words = {"log": "log {}", "abslog": "log {}", "natural": "{}", "logit": "logit {}",
             "log1m": "log(1 − {})", "unconstrained": "{} (unconstrained)"}
    return ", ".join(words.get(c, "{}").format(n) for n, c in coords.items())


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


def _nonzero_entries(col, names, tol=1e-3) -> dict:
    """``{names[i]: float(col[i]) for i with |col[i]| > tol}``, in index order (one array comparison)."""
    idx = np.flatnonzero(np.abs(col) > tol)
    return dict(zip([names[i] for i in idx], col[idx].tolist()))


def _direction_label(loadings: dict, coefficients: dict, verdict, trmap) -> str:
    """A direction's name: of the displacement for a ridge, of the measured combination otherwise
    (terms with |.| ≥ 0.15 of the largest)."""
    vec = loadings if verdict == Verdict.NOT_IDENTIFIED else coefficients
    return name_combination({k: v for k, v in vec.items() if abs(v) >= 0.15}, trmap)


_UNSET = object()


def _deferred(attr, build):
    """A property that builds ``attr`` on first read (``build(self)``) and can be assigned as usual."""

    def get(self):
        try:
            return self.__dict__[attr]
        except KeyError:
            v = self.__dict__[attr] = build(self)
            return v

    def put(self, value):  # _UNSET (from __init__) stores nothing, so copies and pickles never hold it
        if value is _UNSET:
            self.__dict__.pop(attr, None)
        else:
            self.__dict__[attr] = value

    return property(get, put)


class _DeferredDirection(Direction):
    """A :class:`Direction` of a :class:`~.ridges.DirectionSet` column whose ``loadings``,
    ``coefficients`` and ``label`` are built on first read — the same values, dicts and names as
    building them at once (a test compares the two), but only for the directions someone looks at:
    at d = 1000 naming every one of the d directions took ~40 % of :func:`diagnose`."""

    def __init__(self, ds, j, names, trmap, verdict, source):
        self.__dict__["_column"] = (ds, j, names, trmap, verdict)  # the verdict the name is built for
        super().__init__(ds.vectors[:, j], _UNSET, _UNSET, float(ds.ratios[j]), float(ds.ratio_se[j]),
                         verdict, _UNSET, source)

    loadings = _deferred("loadings", lambda s: _nonzero_entries(s._column[0].displacements[:, s._column[1]],
                                                                s._column[2]))
    coefficients = _deferred("coefficients", lambda s: _nonzero_entries(
        s._column[0].coefficients[:, s._column[1]], s._column[2]))
    label = _deferred("label", lambda s: _direction_label(s.loadings, s.coefficients, s._column[4], s._column[3]))


def _measured_combinations(ridges, dr, th, source=None) -> list:
    """The simple combinations orthogonal to ``ridges`` (d, k) whose posterior/prior variance ratio
    on the draws shows them identified (≤ 1 − ``th.identified``)."""
    cands = combinations_orthogonal_to(ridges, dr.unconstrained_names, dr.transforms)
    ratios = variance_ratios([c.coefficients for c in cands], dr.unconstrained_names, dr.prior_unc,
                             dr.posterior_unc)
    out = []
    for c, r in zip(cands, ratios.tolist()):
        c.ratio = r
        if source is not None:
            c.source = source
        if c.ratio <= 1.0 - th.identified:
            out.append(c)
    return out


def _make_direction(j, ds, names, trmap, th, source="draws"):
    """Direction ``j`` of ``ds`` with its verdict; loadings, coefficients and name built when read."""
    return _DeferredDirection(ds, j, names, trmap, direction_verdict(float(ds.ratios[j]), th), source)


def diagnose(tree, model=None, truth=None, var_names=None, fisher="auto", thresholds: Thresholds | None = None,
             transforms="auto", fisher_draws: int = 64, random_seed=0, title: str = "",
             progressbar: bool = False, symmetry: bool = True) -> Diagnosis:
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
    symmetry : bool
        When R-hat fails and ``model`` is given, test whether the chains sit in mirror solutions of a
        discrete symmetry of the likelihood (:mod:`.symmetry`); if so, diagnose the relabelled draws.

    Returns
    -------
    Diagnosis
    """
    th = thresholds or Thresholds()
    timings = {}
    t0 = time.perf_counter()
    dr = extract_draws(tree, var_names=var_names, transforms=transforms, model=model)
    dr.notes += check_truth(truth, tree, dr)  # unknown truth keys raise
    conv = convergence(tree, dr, rhat_max=th.rhat_max, ess_min_per_chain=th.ess_min_per_chain,
                       bfmi_min=th.bfmi_min, max_divergences=th.max_divergences)
    if symmetry and model is not None and any(p.startswith("R-hat") for v in conv.parameter_problems.values()
                                              for p in v):
        from .symmetry import model_symmetry, relabel_tree

        ts = time.perf_counter()
        sym = model_symmetry(tree, dr, model, rhat_max=th.rhat_max, target=_unconstrained_truth(truth, dr),
                             random_seed=random_seed)
        t_detect = time.perf_counter() - ts
        if sym is not None and sym.explains:
            inner = diagnose(relabel_tree(tree, dr, sym), model=model, truth=truth, var_names=var_names,
                             fisher=fisher, thresholds=th, transforms=transforms, fisher_draws=fisher_draws,
                             random_seed=random_seed, title=title, progressbar=progressbar, symmetry=False)
            inner.timings["symmetry"] = t_detect
            _mark_symmetry(inner, sym, conv)
            return inner
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
        combos = _measured_combinations(ds.displacements[:, ridge_cols], dr, th)
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
    diag = Diagnosis(table=table, directions=directions, combinations=combos, convergence=conv,
                     thresholds=th, draws=dr, white=white, psense=psense, psense_note=note,
                     title=title, timings=timings, tree=tree)
    # draw-based ridges: each parameter with ridge weight ≥ weight_tol is assigned to the ridge that
    # carries most of its prior variance
    rw = np.array([v[2] for v in verdicts])
    if ridge_cols:
        best = np.array(ridge_cols)[np.argmax(w[:, ridge_cols], axis=1)]
        for i, n in enumerate(dr.names):
            if rw[i] >= th.weight_tol:
                directions[best[i]].parameters.append(n)

    local_cols = {}
    if fisher == "auto":
        fisher = model is not None
    if fisher and model is not None and not model.observed_RVs:
        dr.notes.append("Fisher information skipped: the model has no observed variables, so there is no "
                        "likelihood whose information could be computed (the posterior is the prior)")
        fisher = False
    if fisher and model is not None:
        fisher = fisher_precheck(model, dr)  # False (with a note) when the data cannot be simulated
    if fisher:
        if model is None:
            raise ValueError("fisher=True needs the PyMC model: diagnose(tree, model=model)")
        from .fisher import fisher_information

        t1 = time.perf_counter()
        fr = fisher_information(model, tree, white, dr.unconstrained_names, n_draws=fisher_draws,
                                random_seed=random_seed, progressbar=progressbar)
        timings["fisher"] = time.perf_counter() - t1
        diag.fisher = fr
        from .ridges import DirectionSet, _normalise_columns, local_ridges

        fds = DirectionSet(fr.predicted_ratios, fr.vectors,
                           _normalise_columns(white.chol @ fr.vectors),
                           _normalise_columns(np.linalg.solve(white.chol.T, fr.vectors)),
                           np.full(dr.d, np.nan))
        diag.fisher_directions = [_make_direction(j, fds, dr.unconstrained_names, trmap, th, source="fisher")
                                  for j in range(dr.d)]
        fr_cols = [j for j, d in enumerate(diag.fisher_directions) if d.verdict == Verdict.NOT_IDENTIFIED]
        if fr_cols:  # checked against the draws like every name
            diag.fisher_combinations = _measured_combinations(fds.displacements[:, fr_cols], dr, th,
                                                              source="fisher")
        pts = getattr(fr, "draw_points", None)
        if getattr(fr, "local_whitened", None) is not None and pts is not None and np.shape(pts)[-1] == dr.d:
            t2 = time.perf_counter()
            nulls, lrs = local_ridges(fr, white, dr, weight_tol=th.weight_tol, identified=th.identified,
                                      model=model)
            diag.local_ridges = lrs
            frac, frac_se = nulls.fraction(th.weight_tol)
            local_cols = {"local_null_fraction": frac, "local_null_fraction_se": frac_se}
            timings["local_ridges"] = time.perf_counter() - t2

    diag.trouble = _sampler_trouble(tree, dr, conv, diag, model=model)
    if diag.trouble is not None:
        resolved = list(getattr(diag.trouble, "resolved", None) or [])
        if resolved:  # fit-level problems the ridges explain (scattered divergences): verdicts without them
            import dataclasses

            conv_v = dataclasses.replace(conv, problems=[p for p in conv.problems if p not in resolved])
            verdicts = parameter_verdicts(dr.names, c_unc, w, ds.ratios, cdf, conv_v, th)
        verdicts, diag.explained = _apply_trouble(verdicts, dr.names, diag.trouble)
    unexplained = [n for n, v in zip(dr.names, verdicts) if v[0] == Verdict.NOT_CONVERGED]
    if local_cols and not unexplained:
        # the model-based evidence enters only where the draws it was evaluated at are trustworthy
        ridge_of = {p: r for r in diag.local_ridges for p in r.parameters}
        verdicts = combine_local_evidence(verdicts, dr.names, local_cols["local_null_fraction"],
                                          local_cols["local_null_fraction_se"], nulls.null_share.mean(axis=0),
                                          nulls.informed_share.mean(axis=0), ridge_of, th)
        diag.local_evidence_used = True
    if unexplained:
        verdicts = _propagate_not_converged(verdicts, dr.names, directions)

    table["ridge_weight"] = rw
    for k, v in local_cols.items():
        table[k] = v
    notes = dict(getattr(diag.trouble, "notes", None) or {})
    for i, n in enumerate(dr.names):
        e = notes.get(n)
        if e is not None and n not in diag.explained:
            v = verdicts[i]
            verdicts[i] = (v[0], f"{v[1]}; {e.reason}", v[2], (v[3] if len(v) > 3 else "draws") + "+sampler")
            diag.explained[n] = Explanation(v[0], e.reason, e.kind, e.combination, e.summary, e.sampler_struggles)
    table["verdict"] = [v[0] for v in verdicts]
    table["reason"] = [v[1] for v in verdicts]
    table["evidence"] = [v[3] if len(v) > 3 else "draws" for v in verdicts]
    _settle_ridges(diag)
    return diag


_BLOCKING = (Verdict.NOT_CONVERGED, Verdict.CONFLICT)


def _settle_ridges(diag: Diagnosis) -> None:
    """Fix :attr:`Diagnosis.ridges` and the reported combinations from the final verdicts (the one
    source of truth): a ridge through a parameter that is not converged (with no structural
    explanation) or in conflict is not claimed; a local ridge already shown by the draws is not
    repeated; a local ridge's checked combinations join :attr:`Diagnosis.combinations`."""
    v = diag.verdicts
    unc = dict(zip(diag.unconstrained_names, diag.names))
    blocked = any(x in _BLOCKING for x in v.values())

    def moves(d):  # a ridge no parameter is assigned to still moves those that load on it
        if d.parameters or not blocked:
            return d.parameters
        return [unc[k] for k, x in d.loadings.items() if abs(x) >= 0.15 and k in unc]

    keep = [d for d in diag.directions if d.verdict == Verdict.NOT_IDENTIFIED
            and not any(v.get(p) in _BLOCKING for p in moves(d))]
    # parameters a draw-based ridge already covers
    covered = {p for d in keep for p in d.parameters}
    for lr in (diag.local_ridges if diag.local_evidence_used else []):
        if any(v.get(p) in _BLOCKING for p in lr.parameters):
            continue
        if any(v.get(p) == Verdict.IDENTIFIED for p in lr.parameters):
            continue  # only possible for a parameter the majority rule did not flag
        if set(lr.parameters) <= covered and len(lr.parameters) > 1:
            # shown by the draws already: keep their (measured) ridge, add only new names
            pass
        else:
            vec = np.array([lr.loadings.get(n, 0.0) for n in diag.unconstrained_names])
            keep.append(Direction(vec, dict(lr.loadings), {}, float("nan"), float("nan"),
                                  Verdict.NOT_IDENTIFIED, lr.label, source="fisher-local",
                                  parameters=list(lr.parameters), local=lr))
        names = {c.name for c in diag.combinations}
        for c in lr.combinations:
            if c.name not in names:
                diag.combinations.append(c)
    unc = dict(zip(diag.unconstrained_names, diag.names))
    for c in diag.combinations:
        if not c.parameters:
            c.parameters = _combo_parameters(c, diag, unc)
    diag._ridges = keep
    diag.table["ridge"] = ["; ".join(d.label for d in keep if n in d.parameters) for n in diag.names]


def _combo_parameters(c, diag, unc=None) -> list:
    if c.parameters:
        return list(c.parameters)
    if unc is None:
        unc = dict(zip(diag.unconstrained_names, diag.names))
    return [unc[k] for k in c.coefficients if k in unc]


def _propagate_not_converged(verdicts, names, directions) -> list:
    """A parameter on a draw-based ridge with a parameter that did not converge is not converged
    either: the ridge, and so its verdict, rests on draws that are not trustworthy."""
    v = {n: x for n, x in zip(names, verdicts)}
    for d in directions:
        if d.verdict != Verdict.NOT_IDENTIFIED:
            continue
        bad = [p for p in d.parameters if v[p][0] == Verdict.NOT_CONVERGED]
        if not bad:
            continue
        for p in d.parameters:
            if v[p][0] != Verdict.NOT_CONVERGED:
                x = v[p]
                v[p] = (Verdict.NOT_CONVERGED, f"shares the ridge {d.label} with {', '.join(bad)}, which did "
                        f"not converge (own draws: {x[0]}, {x[1]})", x[2], "draws")
    return [v[n] for n in names]


def _sampler_trouble(tree, draws, conv, diag, model=None):
    """Hook for ``diagnostics.trouble.sampler_trouble`` (helper A2's module: structural explanations
    of a convergence failure — divergences concentrated along a Fisher null direction, chains in
    swap-symmetric modes). Called only when convergence failed; returns None when the module is
    absent. Arguments are passed by name from what the diagnosis has: ``tree``, ``draws``
    (ParameterDraws), ``draws_unc`` (chains, draws, d unconstrained), ``sample_stats`` (Dataset or
    None), ``names`` / ``unconstrained_names``, ``null_directions`` (per-draw local null
    displacements, list of (d, k_s) arrays, or None), ``fisher`` (FisherResult or None), ``white``,
    ``convergence``, ``diagnosis``, ``model``."""
    if conv.ok:
        return None
    import importlib

    try:  # through sys.modules, so a replaced module (tests, plug-ins) is the one called
        trouble = importlib.import_module(".trouble", __package__)
    except ImportError:
        return None
    fn = getattr(trouble, "sampler_trouble", None)
    if fn is None:
        return None
    import inspect

    nulls = None
    if diag.fisher is not None and getattr(diag.fisher, "local_whitened", None) is not None:
        from .ridges import local_null_spaces

        nulls = local_null_spaces(diag.fisher.local_whitened, diag.white.chol, diag.fisher.lambda_tol).displacements
    have = {"tree": tree, "draws": draws, "draws_unc": draws.posterior_unc, "posterior_unc": draws.posterior_unc,
            "sample_stats": tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None,
            "names": list(draws.names), "unconstrained_names": list(draws.unconstrained_names),
            "null_directions": nulls, "fisher": diag.fisher, "white": diag.white, "convergence": conv,
            "diagnosis": diag, "model": model}
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kwargs = have
    else:
        kwargs = {k: v for k, v in have.items() if k in params}
    return fn(**kwargs)


def _apply_trouble(verdicts, names, trouble) -> list:
    """Replace *not converged* by a structural verdict where the trouble module explains it.

    Accepted shapes: a dict ``{parameter: (verdict, reason)}`` or ``{parameter: obj}`` with
    ``obj.verdict`` / ``obj.reason`` (e.g. :class:`~bayesid.diagnostics.verdicts.Explanation`), or an object
    holding such a dict as ``explanations`` or ``per_parameter``. Parameters absent from it stay *not
    converged*.

    Returns
    -------
    verdicts : list
    explained : dict of str -> Explanation
        The explanations applied (tuples become an ``Explanation`` with ``sampler_struggles=False``).
    """
    from .verdicts import Explanation

    expl = trouble
    for attr in ("explanations", "per_parameter"):
        if hasattr(trouble, attr):
            expl = getattr(trouble, attr)
            break
    if not isinstance(expl, dict):
        return verdicts, {}
    out, used = [], {}
    for n, v in zip(names, verdicts):
        e = expl.get(n)
        if isinstance(e, tuple):
            e = Explanation(e[0], str(e[1]) if len(e) > 1 else "")
        if e is not None and getattr(e, "verdict", None) is not None and v[0] == Verdict.NOT_CONVERGED:
            out.append((Verdict(e.verdict), f"{e.reason} ({v[1]})", v[2], "draws+model+sampler"))
            used[n] = e
        else:
            out.append(v)
    return out, used


def _unconstrained_truth(truth, draws):
    """The truth in unconstrained coordinates (NaN where the transform is not log / logodds / identity)."""
    tv = _truth_vector(truth, draws)
    if tv is None:
        return None
    out = np.full(tv.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, tr in enumerate(draws.transforms):
            if tr is None:
                out[i] = tv[i]
            elif tr == "log":
                out[i] = np.log(tv[i])
            elif tr == "logodds":
                out[i] = np.log(tv[i]) - np.log1p(-tv[i])
    return np.where(np.isfinite(out), out, np.nan)


def _mark_symmetry(diag, sym, raw_conv) -> None:
    """Record a discrete symmetry found in the raw chains on the diagnosis of the relabelled draws:
    moved parameters the relabelled draws identify become *identified up to relabelling*; the others
    keep their verdict with the symmetry in the reason."""
    diag.symmetry = sym
    diag.raw_convergence = raw_conv
    idx = {n: i for i, n in enumerate(sym.names)}
    t = diag.table
    verdicts, reasons, evidence = list(t["verdict"]), list(t["reason"]), list(t["evidence"])
    for k, n in enumerate(t.index):
        if n not in sym.moved:
            continue
        s = next(x for x in sym.symmetries if n in x.moved)
        i = idx[n]
        how = (f"the chains sat in {sym.n_modes} mirror solutions (R-hat {sym.rhat_before[i]:.2f}) with the same "
               f"likelihood (|Δ| ≤ {s.loglik_delta:.1g} at {s.n_checked} swapped draws); relabelled, R-hat "
               f"{sym.rhat_after[i]:.3f}")
        if verdicts[k] == Verdict.IDENTIFIED:
            verdicts[k] = Verdict.RELABELLING
            order = f"; fix: order {' < '.join(s.order_by)}" if s.order_by else ""
            reasons[k] = f"identified up to relabelling {s.label}: {how}; {reasons[k]}{order}"
        else:
            reasons[k] = f"draws relabelled by the symmetry {s.label} ({how}); {reasons[k]}"
        evidence[k] = f"{evidence[k]}+symmetry"
    t["verdict"], t["reason"], t["evidence"] = verdicts, reasons, evidence
    chains = [c for c, lab in enumerate(sym.chain_labels) if lab]
    diag.draws.notes.append(f"posterior draws relabelled into one labelling of the symmetry {sym.label} "
                            f"(chain(s) {', '.join(map(str, chains))} sat in a mirror solution): the table and plots "
                            "describe one of the mirror solutions")
