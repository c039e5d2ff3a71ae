"""Population- versus cluster-level identifiability of hierarchical (mixed-effects) models.

A hierarchical model has three kinds of parameters, read from its PyMC graph by :func:`structure`:

* **cluster-level quantities** — vectors indexed by the cluster dimension (subjects, sites, groups):
  free RVs whose prior depends on other free RVs (``b ~ N(mu, tau)``, the centred form) or
  Deterministics built from a standardised per-cluster RV and population parameters
  (``b = mu + tau·z``, the non-centred form; ``z`` is then listed as *standardised*). Per-cluster free
  RVs with a fixed prior (per-record nuisances) are *unpooled*;
* **population hyperparameters** — cluster-free RVs the cluster-level quantities depend on;
* **fixed effects** — the other cluster-free RVs.

On the draws of one diagnosis, :func:`levels` then gives (numpy cores below, each testable alone):

1. :func:`block_directions` — the population block and the fixed block: the prior-whitened
   posterior directions of that block's *marginal* posterior (the same rule as
   :func:`~bayesid.diagnostics.ridges.posterior_directions`), grouped by verdict and put in sparse
   (row-echelon) form, named (``mu_log_k + mu_log_m``) and re-measured on the draws;
2. :func:`cluster_directions` — per cluster, the directions of its quantities (log-coordinates for
   positive ones, so ``k/m`` is one direction), pooled over clusters (common eigenbasis of the
   averaged per-cluster whitened covariance; exchangeable clusters share one prior), with the
   ratio and verdict of every cluster: "k/m per subject: identified in 20/20 subjects";
3. :func:`confounding` — per fixed effect f, the share ``R²`` of its posterior variance explained
   by the cluster-level quantities (linear regression over the posterior draws) and the weights of
   that explanation: ``R² ≥ ridge`` (0.8) means the data fix only ``f + cᵀb`` and the split between
   the fixed effect and the random effects rests on the random-effect distribution — the classic
   confounding of a cluster-level covariate with a random intercept. The weights ``c`` are named
   ("the mean of b" when parallel to the constant, "the w-weighted mean of b" when parallel to a
   given cluster covariate w, within cosine 0.9);
4. :func:`funnel_slope` — for every centred pair (``x ~ D(loc, scale)``) and non-centred pair
   (``x = loc + scale·z``), the slope of ``log |x − E(x | log scale)|`` on ``log scale`` in the
   posterior, in the coordinates the sampler moves in (``x`` for the centred form, ``z`` for the
   non-centred one). Known limits: 1 when the cluster's data are weak (centred: the conditional scale
   of ``x`` is the prior's ``scale`` — Neal's funnel), 0 when they dominate, −1 for the non-centred
   ``z = x/scale`` with dominant data (an inverted funnel). A funnel is a property of the
   parametrization: the same posterior, sampled in the other form, has none; it is a *sampling*
   problem, never a ridge, and is reported apart from the verdicts. Flagged when ``|slope| ≥ 0.5``
   (half-way between the limits) and the conditional scale changes by a factor ≥ 3 across the
   central 95 % of the scale's posterior (one NUTS step size cannot serve both ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesid.errors import BadInputError

from .combinations import _rref, name_combination
from .verdicts import VERDICTS, Thresholds, Verdict, direction_verdict

__all__ = ["Structure", "structure", "is_hierarchical", "LevelQuantity", "block_directions", "cluster_directions",
           "Confounding", "confounding", "Funnel", "funnel_slope", "Levels", "levels"]

_LOCATION_SCALE = {"normal", "studentt", "laplace", "cauchy", "lognormal", "halfnormal", "halfcauchy",
                   "halfstudentt", "skewnormal", "logistic", "gumbel"}
FUNNEL_SLOPE = 0.5
FUNNEL_RANGE = 3.0
SNAP = 0.2  # entries below this share of the largest are dropped from a named direction
_ALONE = (Verdict.IDENTIFIED, Verdict.RELABELLING)  # verdicts that pin a parameter down on its own
_THROUGH = "{f} is identified through the random-effect distribution"
_COMBO = (" — on its own; in the joint posterior only in combination with other parameters (the table's verdict; "
          "see its ridges)")
_PROVISIONAL = ("Sampling did not converge: the level verdicts below are provisional, like the table's, until it "
                "does.")


# --------------------------------------------------------------------------- structure from the graph
@dataclass
class Structure:
    """Roles of a hierarchical model's variables (see the module docstring).

    Attributes
    ----------
    cluster_dim : str
    n_clusters : int
    population, fixed : list of str
        Cluster-free free RVs: hyperparameters of the cluster-level quantities, and the others.
    cluster : list of str
        Natural cluster-level quantities (free centred RVs or non-centred Deterministics).
    standardised : list of str
        Free per-cluster RVs behind a non-centred Deterministic (``z``).
    unpooled : list of str
        Free per-cluster RVs with a fixed prior.
    centred : list of (scale, variable)
        ``variable ~ D(loc, scale·…)`` sampled as it is.
    noncentred : list of (scale, standardised, variable)
        ``variable = f(scale · standardised, …)``.
    """

    cluster_dim: str
    n_clusters: int
    population: list = field(default_factory=list)
    fixed: list = field(default_factory=list)
    cluster: list = field(default_factory=list)
    standardised: list = field(default_factory=list)
    unpooled: list = field(default_factory=list)
    centred: list = field(default_factory=list)
    noncentred: list = field(default_factory=list)

    def role(self, var) -> str:
        for r in ("population", "fixed", "cluster", "standardised", "unpooled"):
            if var in getattr(self, r):
                return r
        return ""


def is_hierarchical(model) -> bool:
    """Whether :func:`structure` finds a hierarchy in the model (a dimension indexing cluster-level RVs
    with free parents, or per-cluster Deterministics of standardised RVs and population parameters)."""
    try:
        structure(model)
    except BadInputError:
        return False
    return True


def _free_ancestors(graphs, free):
    from pytensor.graph.traversal import ancestors

    return [a for a in ancestors(graphs, blockers=free) if a in free]


def structure(model, cluster_dim=None) -> Structure:
    """Read the roles of a PyMC model's variables from its graph.

    Parameters
    ----------
    model : pymc.Model
    cluster_dim : str, optional
        The dimension that indexes clusters; default the dimension carried by most free RVs among those
        that belong to a hierarchy (a per-cluster RV with a free parent, or a per-cluster Deterministic
        of per-cluster and cluster-free RVs).

    Returns
    -------
    Structure

    Raises
    ------
    BadInputError
        No dimension indexes a hierarchy, or ``cluster_dim`` is not one of the model's dimensions.
    """
    dims = {k: tuple(v or ()) for k, v in model.named_vars_to_dims.items()}
    free = list(model.free_RVs)
    fset = set(free)
    names = {v: v.name for v in free}
    parents = {v.name: [names[a] for a in _free_ancestors(v.owner.inputs, fset)] for v in free}
    det_parents = {d.name: [names[a] for a in _free_ancestors([d], fset)] for d in model.deterministics}
    all_dims = sorted({d for v in free for d in dims.get(v.name, ()) if d is not None})
    if cluster_dim is None:
        votes = {}
        for v in free:
            for d in dims.get(v.name, ()):
                if d is None:
                    continue
                hier = bool(parents[v.name]) or any(
                    v.name in ps and any(d not in dims.get(p, ()) for p in ps) and d in dims.get(dn, ())
                    for dn, ps in det_parents.items())
                votes[d] = votes.get(d, 0) + (2 if hier else 0) + 1
        hier_dims = [d for d, c in votes.items() if c >= 3]
        if not hier_dims:
            raise BadInputError(
                f"no dimension of the model indexes a hierarchy (dims of the free RVs: {all_dims}): pass "
                "cluster_dim= naming the dimension of the clusters, and give the cluster-level RVs dims=.")
        cluster_dim = max(hier_dims, key=lambda d: (votes[d], -all_dims.index(d)))
    elif cluster_dim not in model.coords:
        raise BadInputError(f"cluster_dim {cluster_dim!r} is not a dimension of the model; dims: "
                            f"{sorted(model.coords)}")
    n = len(model.coords[cluster_dim])

    def has(v):
        return cluster_dim in dims.get(v, ())

    st = Structure(cluster_dim, n)
    pop = set()
    for v in free:
        if not has(v.name) or not parents[v.name]:
            continue
        st.cluster.append(v.name)
        pop |= {p for p in parents[v.name] if not has(p)}
        op = type(v.owner.op).__name__.lower().removesuffix("rv")
        if op in _LOCATION_SCALE:
            scale_par = [names[a] for a in _free_ancestors([v.owner.inputs[-1]], fset)]
            for s in scale_par:
                if not has(s):
                    st.centred.append((s, v.name))
    for dn, ps in det_parents.items():
        if not has(dn):
            continue
        z = [p for p in ps if has(p) and not parents[p]]
        hyper = [p for p in ps if not has(p)]
        if not z or not hyper:
            continue
        st.cluster.append(dn)
        pop |= set(hyper)
        for zz in z:
            if zz not in st.standardised:
                st.standardised.append(zz)
            for h in hyper:
                st.noncentred.append((h, zz, dn))
    for v in free:
        nm = v.name
        if has(nm):
            if nm not in st.cluster and nm not in st.standardised:
                st.unpooled.append(nm)
        elif nm in pop:
            st.population.append(nm)
        else:
            st.fixed.append(nm)
    return st


# --------------------------------------------------------------------------- numpy cores
@dataclass
class LevelQuantity:
    """A named direction of one level and how much the data narrow it.

    Attributes
    ----------
    level : str
        ``"population"``, ``"fixed"`` or ``"cluster"``.
    name : str
        ``"mu_log_k + mu_log_m"``; for the cluster level the name of one cluster's quantity without
        its index (``"k/m"``).
    coefficients : dict of str -> float
        On the block's (unconstrained) coordinate names.
    ratio, ratio_se : float
        Posterior/prior variance ratio (for the cluster level: the mean over clusters) and its MCSE.
    verdict : Verdict
    ratios : ndarray or None
        Cluster level: the ratio of every cluster.
    verdicts : list or None
        Cluster level: the verdict of every cluster.
    parameter_verdict : Verdict or None
        Population / fixed quantity that is one parameter: that parameter's verdict in the diagnosis
        table (it also weighs the joint ridges with the cluster level), set by :func:`levels`.
    parameter_verdicts : list or None
        Cluster quantity that is one free per-cluster variable: the table's verdict of every cluster's
        component (the summary says where the table has it only in combination).
    """

    level: str
    name: str
    coefficients: dict
    ratio: float
    ratio_se: float
    verdict: Verdict
    ratios: np.ndarray | None = None
    verdicts: list | None = None
    parameter_verdict: Verdict | None = None
    parameter_verdicts: list | None = None

    def on_ridge_in_table(self) -> bool:
        """Cluster level: identified on its own in some cluster that the table has only in combination."""
        return any(v == Verdict.IDENTIFIED and t == Verdict.COMBINATION
                   for v, t in zip(self.verdicts or [], self.parameter_verdicts or []))

    @property
    def shown_verdict(self) -> Verdict:
        """The verdict the summary and the report state: the table's for one parameter, else ``verdict``."""
        return self.parameter_verdict if self.parameter_verdict is not None else self.verdict

    def count(self, verdict=Verdict.IDENTIFIED) -> int:
        return int(sum(v == verdict for v in (self.verdicts or [])))

    def __repr__(self):
        extra = f", {self.count()}/{len(self.verdicts)} identified" if self.verdicts is not None else ""
        return f"LevelQuantity({self.level}: {self.name!r}, ratio={self.ratio:.3f}, {self.verdict}{extra})"


def _ratio_se(proj_post, var_prior, n_prior):
    """MCSE of var(post projection)/var_prior (ESS of the squares, chains kept) and the prior's 2/n."""
    from .contraction import relative_variance_se

    q = np.asarray(proj_post, float)
    rel = float(relative_variance_se(q[..., None])[0]) if q.ndim == 2 else float(
        relative_variance_se(q.reshape(-1, 1))[0])
    r = float(np.var(q.reshape(-1), ddof=1) / var_prior)
    return r, r * np.sqrt(rel**2 + 2.0 / n_prior)


def _sparse_groups(vectors, ratios, th, scale=None):
    """Split coefficient vectors (columns) by verdict and give each group a sparse basis.

    ``scale``: the prior sds of the coordinates. The pivot and snap thresholds are shares of a row's
    largest entry, so they are applied to the coefficients in prior-standardised units (coefficient ×
    prior sd) and the rows mapped back: in raw units a coordinate with a narrow prior (log α0, sd 0.013)
    gets coefficients 16× those of one with a wide prior (log k, sd 0.2) for the same weight, and the
    k/m direction mixed with α0 lost its k and m columns as "noise" (NUTS draws of gait.hierarchical).
    """
    scale = np.ones(vectors.shape[0]) if scale is None else np.asarray(scale, float)
    vectors = vectors * scale[:, None]
    groups = {}
    for j, r in enumerate(ratios):
        groups.setdefault(direction_verdict(float(r), th), []).append(vectors[:, j])
    out = []
    for vd in (Verdict.IDENTIFIED, Verdict.WEAK, Verdict.NOT_IDENTIFIED):
        if vd not in groups:
            continue
        rows = np.array(groups[vd])
        rows = rows / np.abs(rows).max(axis=1, keepdims=True)
        m, _ = _rref(rows, tol=0.3)  # a pivot below 0.3 of a row's largest entry is noise, not a new axis
        for row in m:
            row = row / np.max(np.abs(row))
            row[np.abs(row) < SNAP] = 0.0
            if not np.any(row):
                continue
            row = row / scale
            row = row / np.max(np.abs(row))
            if not any(np.array_equal(row != 0, o != 0) and np.allclose(row, o) for o in out):
                out.append(row)
    return out


def block_directions(prior_unc, posterior_unc, names, transforms, level="population", thresholds=None):
    """Named directions of one block's marginal posterior relative to its prior.

    Parameters
    ----------
    prior_unc : ndarray (n_prior, p)
        Unconstrained prior draws of the block.
    posterior_unc : ndarray (chains, draws, p) or (n, p)
    names : list of str
        Unconstrained coordinate names (``mu``, ``tau_log__``).
    transforms : list of str or None
    level : str
    thresholds : Thresholds, optional

    Returns
    -------
    list of LevelQuantity
        One per sparse direction, most identified first; single coordinates are included (a
        parameter the block's other parameters do not mix with).
    """
    th = thresholds or Thresholds()
    P = np.asarray(prior_unc, float)
    Q = np.asarray(posterior_unc, float)
    Q = Q if Q.ndim == 3 else Q[None]
    p = P.shape[1]
    if Q.shape[-1] != p or len(names) != p:
        raise BadInputError(f"block has {len(names)} names, prior {P.shape[1]} and posterior {Q.shape[-1]} columns")
    cp = np.atleast_2d(np.cov(P, rowvar=False))
    sd = np.sqrt(np.diag(cp))
    L = np.linalg.cholesky(cp / np.outer(sd, sd) + 1e-10 * np.eye(p)) * sd[:, None]
    z = np.linalg.solve(L, (Q.reshape(-1, p) - P.mean(0)).T).T
    r, v = np.linalg.eigh(np.atleast_2d(np.cov(z, rowvar=False)))
    coef = np.linalg.solve(L.T, v)  # combinations c·θ whose variance ratio is r
    coef = coef / np.abs(coef).max(axis=0)
    trs = dict(zip(names, transforms))
    out = []
    for row in _sparse_groups(coef, r, th, sd):
        c = {n: float(x) for n, x in zip(names, row) if x != 0}
        proj = Q @ row
        ratio, se = _ratio_se(proj, float(np.var(P @ row, ddof=1)), P.shape[0])
        out.append(LevelQuantity(level, name_combination(c, trs), c, ratio, se, direction_verdict(ratio, th)))
    return sorted(out, key=lambda q: q.ratio)


def cluster_directions(prior, posterior, names, transforms, cluster_label="cluster", thresholds=None):
    """Directions of each cluster's quantities, in one basis pooled over exchangeable clusters.

    Parameters
    ----------
    prior : ndarray (n_prior, J, p)
        Prior draws of the p quantities of every cluster (unconstrained: logs of positive ones).
    posterior : ndarray (chains, draws, J, p) or (n, J, p)
    names : list of str
        Names of the p quantities without the cluster index (``k_log__``).
    transforms : list of str or None
    thresholds : Thresholds, optional

    Returns
    -------
    list of LevelQuantity
        ``ratios`` / ``verdicts`` per cluster; ``ratio`` their mean, ``ratio_se`` the spread of the
        per-cluster ratios over √J combined with their mean MCSE.
    """
    th = thresholds or Thresholds()
    P = np.asarray(prior, float)
    Q = np.asarray(posterior, float)
    Q = Q if Q.ndim == 4 else Q[None]
    n, J, p = P.shape
    if Q.shape[-2:] != (J, p):
        raise BadInputError(f"prior has (clusters, quantities) = {(J, p)}, posterior {Q.shape[-2:]}")
    flat = P.reshape(-1, p)  # exchangeable clusters share the marginal prior
    cp = np.atleast_2d(np.cov(flat, rowvar=False))
    sd = np.sqrt(np.diag(cp))
    L = np.linalg.cholesky(cp / np.outer(sd, sd) + 1e-10 * np.eye(p)) * sd[:, None]
    mu = flat.mean(0)
    Cs = []
    for j in range(J):
        z = np.linalg.solve(L, (Q[..., j, :].reshape(-1, p) - mu).T).T
        Cs.append(np.atleast_2d(np.cov(z, rowvar=False)))
    r, v = np.linalg.eigh(np.mean(Cs, axis=0))
    coef = np.linalg.solve(L.T, v)
    coef = coef / np.abs(coef).max(axis=0)
    trs = dict(zip(names, transforms))
    out = []
    for row in _sparse_groups(coef, r, th, sd):
        c = {nm: float(x) for nm, x in zip(names, row) if x != 0}
        vp = float(np.var(flat @ row, ddof=1))
        per, ses = [], []
        for j in range(J):
            rj, sej = _ratio_se(Q[..., j, :] @ row, vp, n * J)
            per.append(rj)
            ses.append(sej)
        per = np.array(per)
        se = float(np.sqrt(np.mean(np.square(ses)) / J + (per.var(ddof=1) / J if J > 1 else 0.0)))
        out.append(LevelQuantity("cluster", name_combination(c, trs), c, float(per.mean()), se,
                                 direction_verdict(float(np.median(per)), th), per,
                                 [direction_verdict(float(x), th) for x in per]))
    return sorted(out, key=lambda q: q.ratio)


@dataclass
class Confounding:
    """A fixed effect traded off against the cluster-level quantities.

    Attributes
    ----------
    fixed : str
    share, share_prior : float
        ``R²`` of the fixed effect on the cluster-level quantities, over the posterior / prior draws.
    share_se : float
        Its standard error (``2 R (1 − R²) / √n_eff``).
    weights : dict of str -> ndarray (J,)
        Regression weights per cluster-level variable (the fixed effect ≈ const − Σ weights·b).
    against : str
        Name of what it trades off against (``"the w-weighted mean of b"``).
    confounded : bool
        ``share ≥ ridge`` threshold.
    against_vars : list of str
        The cluster-level variables named in ``against``.
    verdict : str
        The fixed effect's verdict in the diagnosis table (set by :func:`levels`; empty otherwise).
    """

    fixed: str
    share: float
    share_se: float
    share_prior: float
    weights: dict
    against: str
    confounded: bool
    against_vars: list = field(default_factory=list)
    verdict: str = ""

    @property
    def label(self) -> str:
        return f"{self.fixed} against {self.against}"

    def __repr__(self):
        return f"Confounding({self.label!r}, share={self.share:.3f}, confounded={self.confounded})"


def _r2(y, X):
    X = np.column_stack([np.ones(len(y)), X])
    beta = np.linalg.solve(X.T @ X + 1e-12 * np.eye(X.shape[1]), X.T @ y)
    res = y - X @ beta
    return 1.0 - res.var() / y.var(), beta[1:]


def _name_weights(var, w, covariates, cos_tol=0.9):
    J = w.size
    one = np.ones(J) / np.sqrt(J)
    wn = w / np.linalg.norm(w)
    if abs(wn @ one) >= cos_tol:
        return f"the mean of {var}"
    best = None
    for cname, cv in (covariates or {}).items():
        cv = np.asarray(cv, float).ravel()
        if cv.size != J:
            raise BadInputError(f"cluster covariate {cname!r} has {cv.size} entries, not one per cluster ({J})")
        for vec in (cv, cv - cv.mean()):
            nv = np.linalg.norm(vec)
            if nv > 0 and abs(wn @ vec / nv) >= cos_tol and (best is None or abs(wn @ vec / nv) > best[1]):
                best = (cname, abs(wn @ vec / nv))
    if best:
        return f"the {best[0]}-weighted mean of {var}"
    return f"a weighted mean of {var} (weights {np.array2string(w / np.abs(w).max(), precision=2)})"


def confounding(fixed_post, effects_post, fixed_names, effect_names, fixed_prior=None, effects_prior=None,
                covariates=None, n_eff=None, thresholds=None) -> list:
    """Share of each fixed effect's posterior variance explained by the cluster-level quantities.

    Parameters
    ----------
    fixed_post : ndarray (n, F)
    effects_post : ndarray (n, J, R)
        Posterior draws of the R cluster-level variables of every cluster.
    fixed_names, effect_names : list of str
    fixed_prior, effects_prior : ndarray, optional
        The same over prior draws (for ``share_prior``; a fixed effect a priori independent of the
        random effects has share ≈ J·R/n there).
    covariates : dict of str -> ndarray (J,), optional
        Cluster-level covariates to name weighted means by.
    n_eff : ndarray (F,), optional
        Effective sample sizes of the fixed effects (default n).
    thresholds : Thresholds, optional

    Returns
    -------
    list of Confounding
    """
    th = thresholds or Thresholds()
    F = np.asarray(fixed_post, float)
    E = np.asarray(effects_post, float)
    n, J, R = E.shape
    X = E.reshape(n, J * R)
    Xs = (X - X.mean(0)) / (X.std(0) + 1e-300)
    out = []
    for i, f in enumerate(fixed_names):
        y = F[:, i]
        share, beta = _r2(y, Xs)
        beta = beta / (X.std(0) + 1e-300)
        share_prior = float("nan")
        if fixed_prior is not None and effects_prior is not None:
            Ep = np.asarray(effects_prior, float)
            share_prior, _ = _r2(np.asarray(fixed_prior, float)[:, i], Ep.reshape(len(Ep), J * R))
        ne = float(n_eff[i]) if n_eff is not None else float(n)
        se = 2 * np.sqrt(max(share, 0.0)) * (1 - share) / np.sqrt(ne)
        weights = {nm: beta.reshape(J, R)[:, k] for k, nm in enumerate(effect_names)}
        contrib = {nm: float(np.var(E[:, :, k] @ w)) for k, (nm, w) in enumerate(weights.items())}
        top = max(contrib, key=contrib.get)
        total = sum(contrib.values()) or 1.0
        main = [nm for nm in contrib if contrib[nm] >= 0.2 * total or nm == top]
        against = " and ".join(_name_weights(nm, weights[nm], covariates) for nm in main)
        out.append(Confounding(f, float(share), float(se), float(share_prior), weights, against,
                               bool(share >= th.ridge), main))
    return out


@dataclass
class Funnel:
    """Geometry of one (scale, cluster-level variable) pair in the coordinates the sampler moves in.

    Attributes
    ----------
    scale, variable : str
        The hyperparameter and the sampled per-cluster variable (``b`` centred, ``z_b`` non-centred).
    form : str
        ``"centred"`` or ``"non-centred"``.
    slope, slope_se : float
        Mean over clusters of d log|x − E(x | log scale)| / d log scale, and its standard error.
    scale_range : float
        Factor by which the conditional scale of x changes over the central 95 % of log scale.
    kind : str
        ``"funnel"``, ``"inverted funnel"`` or ``""`` (none).
    divergent_low, divergent : float
        Divergent fraction among draws with the scale in its lowest quartile, and overall (NaN
        without sample stats).
    """

    scale: str
    variable: str
    form: str
    slope: float
    slope_se: float
    scale_range: float
    kind: str
    divergent_low: float = float("nan")
    divergent: float = float("nan")

    def text(self) -> str:
        if not self.kind:
            return ""
        fix = ("sample it non-centred (x = loc + scale·z)" if self.kind == "funnel" else
               "sample it centred (the cluster data dominate)")
        div = (f"; divergent draws {self.divergent:.1%} overall, {self.divergent_low:.1%} in the lowest quarter "
               f"of {self.scale}" if np.isfinite(self.divergent) else "")
        return (f"{self.kind.capitalize()} between {self.scale} and {self.variable} ({self.form}; slope "
                f"{self.slope:.2f} ± {self.slope_se:.2f}, conditional scale ×{self.scale_range:.1f} across the "
                f"posterior{div}): a sampling difficulty of the parametrization, in itself not a ridge (a ridge is "
                f"what the data leave uninformed, the same in either form) — {fix}.")


def funnel_slope(log_scale, x, n_eff=None, others=None):
    """Slope of ``log|x − E(x | log s, others)|`` on ``log s`` per cluster (numpy core of the funnel check).

    The conditional mean is fitted by least squares on ``[1, t, e^{−t}, e^{t}]`` (t the centred log
    scale), each also times every standardised ``others`` column: the non-centred ``z = (b − loc)/s`` of a
    cluster pinned by its data is linear in ``e^{−t}`` and the shifts ``loc``.

    Parameters
    ----------
    log_scale : ndarray (n,)
    x : ndarray (n, J)
    n_eff : float, optional
        Effective sample size (default n) for the standard error.
    others : ndarray (n, k), optional
        The other cluster-free coordinates (fixed effects, other hyperparameters): the conditional
        mean of x is taken linear in them too, so that a shift shared by all clusters (α against the
        mean of b) is not mistaken for the scale of x.

    Returns
    -------
    slope, slope_se, scale_range : float
        Mean slope over clusters, its standard error, and ``exp(|slope| · (q97.5 − q2.5))`` of log s.
    """
    t = np.asarray(log_scale, float).ravel()
    X = np.asarray(x, float).reshape(t.size, -1)
    A = np.column_stack([np.ones_like(t), t])
    tc = t - t.mean()
    B = np.column_stack([np.ones_like(t), tc, np.exp(-tc), np.exp(tc)])  # x ∝ scale, 1/scale are in its span
    M = B
    if others is not None:
        o = np.asarray(others, float).reshape(t.size, -1)
        o = (o - o.mean(0)) / (o.std(0) + 1e-300)
        M = np.column_stack([B] + [B * o[:, [k]] for k in range(o.shape[1])])
    Qm, _ = np.linalg.qr(M)
    res = X - Qm @ (Qm.T @ X)  # residuals of every cluster at once
    Y = np.log(np.abs(res) + 1e-300)
    beta = np.linalg.lstsq(A, Y, rcond=None)[0]
    E = Y - A @ beta
    ne = n_eff if n_eff is not None else t.size
    slopes = beta[1]
    ses = np.sqrt(E.var(axis=0) / (t.var() * ne))
    s = float(np.mean(slopes))
    se = float(np.sqrt(np.mean(np.square(ses)) / len(slopes)))
    lo, hi = np.quantile(t, [0.025, 0.975])
    return s, se, float(np.exp(abs(s) * (hi - lo)))


def _funnel_kind(slope, rng, form):
    if rng < FUNNEL_RANGE or abs(slope) < FUNNEL_SLOPE:
        return ""
    return "funnel" if slope > 0 else "inverted funnel"


# --------------------------------------------------------------------------- thin layer
@dataclass
class Levels:
    """Result of :func:`levels`: verdicts per level of a hierarchical model.

    Attributes
    ----------
    structure : Structure
    population, fixed, cluster : list of LevelQuantity
    confounding : list of Confounding
    funnels : list of Funnel
        Every (scale, variable) pair checked; ``kind`` is empty where there is no funnel.
    parameters : pandas.DataFrame
        The diagnosis' per-parameter verdicts grouped by variable and level (counts per verdict).
    converged : bool
        Whether the diagnosis' sampling converged; if not, the summary calls these verdicts provisional
        (as the diagnosis does its own).
    """

    structure: Structure
    population: list
    fixed: list
    cluster: list
    confounding: list
    funnels: list
    parameters: pd.DataFrame
    converged: bool = True

    @property
    def table(self) -> pd.DataFrame:
        """One row per named quantity: level, quantity, verdict, ratio, ratio_se, clusters identified."""
        rows = []
        for q in self.population + self.fixed + self.cluster:
            rows.append({"level": q.level, "quantity": q.name, "verdict": str(q.shown_verdict), "ratio": q.ratio,
                         "ratio_se": q.ratio_se,
                         "clusters_identified": (f"{q.count()}/{len(q.verdicts)}" if q.verdicts is not None else "")})
        for c in self.confounding:
            rows.append({"level": "fixed vs cluster", "quantity": c.label,
                         "verdict": "confounded" if c.confounded else "separated", "ratio": 1.0 - c.share,
                         "ratio_se": c.share_se, "clusters_identified": ""})
        return pd.DataFrame(rows)

    def confounded(self) -> list:
        return [c for c in self.confounding if c.confounded]

    def consistency_problems(self, diagnosis) -> list:
        """Contradictions between these level verdicts and the diagnosis they were read from (empty when
        they agree; the tests and the report assert that).

        Checked: (1) a quantity that is one parameter has that parameter's table verdict; (2) a combination
        called prior-determined involves a parameter the table does not call identified, and an identified
        combination one the table does not call not identified; (3) per cluster, a single-variable
        quantity called identified (not identified) is not *weakly* / *not identified* (*identified*) in the
        table, and where the table has it only in combination the summary names the fixed effects it
        trades off against; (4) every confounded fixed effect is in the summary, and one the table calls
        *identified* although the data fix only its sum with the cluster effects is said there to be
        identified through the random-effect distribution; (5) when sampling did not converge the summary
        calls the level verdicts provisional; (6) the per-variable counts match the table. A funnel and a
        ridge of the same variables do not contradict each other: the funnel sentence says the funnel is
        *in itself* not a ridge, and weak cluster data can leave a ridge there in either form.
        """
        dr = diagnosis.draws
        verdict = {k: Verdict(v) for k, v in diagnosis.verdicts.items()}
        unc = dict(zip(dr.unconstrained_names, dr.names))
        out = []
        s = self.summary()
        for q in self.population + self.fixed:
            names = [unc[c] for c in q.coefficients if c in unc]
            vs = [verdict[n] for n in names if n in verdict]
            if len(q.coefficients) == 1 and vs and q.shown_verdict != vs[0]:
                out.append(f"{q.level} quantity {q.name!r} is {str(q.shown_verdict)!r} but the table says "
                           f"{str(vs[0])!r}")
            if len(q.coefficients) > 1 and vs:
                if q.verdict == Verdict.NOT_IDENTIFIED and all(v in _ALONE for v in vs):
                    out.append(f"{q.level} combination {q.name!r} is prior-determined but the table identifies "
                               f"each of {', '.join(names)} on its own")
                if q.verdict == Verdict.IDENTIFIED and all(v == Verdict.NOT_IDENTIFIED for v in vs):
                    out.append(f"{q.level} combination {q.name!r} is identified but the table calls each of "
                               f"{', '.join(names)} not identified (not even in combination)")
        cl = self.structure.cluster_dim
        lines = s.splitlines()
        for q in self.cluster:
            rows = _cluster_rows(q, dr)
            if rows is None:
                continue  # not a free RV with one component per cluster (a Deterministic, or more dims)
            for j, (n, lv) in enumerate(zip(rows, q.verdicts)):
                tv = verdict.get(n)
                if lv == Verdict.IDENTIFIED and tv in (Verdict.WEAK, Verdict.NOT_IDENTIFIED):
                    out.append(f"{q.name} in {cl} {j} is identified but the table calls {n} {str(tv)!r}")
                if lv == Verdict.NOT_IDENTIFIED and tv in _ALONE:
                    out.append(f"{q.name} in {cl} {j} is prior-determined but the table calls {n} {str(tv)!r}")
            combo = any(lv == Verdict.IDENTIFIED and verdict.get(n) == Verdict.COMBINATION
                        for n, lv in zip(rows, q.verdicts))
            line = next((x for x in lines if x.startswith(f"{q.name} per {cl}:")), "")
            if combo and "in the joint posterior" not in line:
                out.append(f"{q.name} per {cl} is identified on its own while the table has it only in combination, "
                           "and the summary does not say so")
        for c in self.confounded():
            if c.label not in s:
                out.append(f"confounding {c.label!r} missing from the summary")
            elif verdict.get(c.fixed) in _ALONE and _THROUGH.format(f=c.fixed) not in s:
                out.append(f"{c.fixed} is identified in the table, confounded in the levels, and the summary does not "
                           "say that the random-effect distribution identifies it")
        if not diagnosis.convergence.ok and _PROVISIONAL not in s:
            out.append("sampling did not converge but the level summary does not call its verdicts provisional")
        t = diagnosis.table
        for _, row in self.parameters.iterrows():
            sub = t[t["variable"] == row["variable"]]
            for v in VERDICTS:
                want = int((sub["verdict"].astype(str) == str(v)).sum())
                if int(row.get(str(v), 0)) != want:
                    out.append(f"{row['variable']}: {int(row.get(str(v), 0))} components {str(v)!r} in the levels, "
                               f"{want} in the table")
        return out

    def confounded_with(self, quantity) -> list:
        """Fixed effects confounded with a cluster-level quantity (a variable it involves)."""
        involved = {k.split("[")[0].removesuffix("_log__") for k in quantity.coefficients}
        return [c.fixed for c in self.confounded() if any(v.split("[")[0] in involved for v in c.against_vars)]

    def summary(self) -> str:
        st = self.structure
        cl = st.cluster_dim
        lines = [f"Hierarchy over {st.n_clusters} {cl}s: population {', '.join(st.population) or '—'}; "
                 f"per {cl} {', '.join(st.cluster) or '—'}" + (f" (sampled as {', '.join(st.standardised)})"
                                                              if st.standardised else "")
                 + (f"; fixed {', '.join(st.fixed)}" if st.fixed else "") + "."]
        if not self.converged:
            lines.append(_PROVISIONAL)
        for q in self.population + self.fixed:
            if len(q.coefficients) < 2 and q.shown_verdict == Verdict.IDENTIFIED:
                continue
            what = "population" if q.level == "population" else "fixed effect"
            lines.append(f"{what.capitalize()} {q.name}: {_words(q.shown_verdict)} (posterior/prior variance ratio "
                         f"{q.ratio:.2f} ± {q.ratio_se:.2f}).")
        for q in self.cluster:
            more = "".join(f", {w} in {q.count(v)}" for v, w in ((Verdict.WEAK, "weakly"),
                                                                  (Verdict.NOT_IDENTIFIED, "prior-determined"))
                           if q.count(v))
            conf = self.confounded_with(q)
            tail = (f" — on its own; in the joint posterior it trades off against {', '.join(conf)} (confounding "
                    "below)" if conf else _COMBO if q.on_ridge_in_table() else "")
            lines.append(f"{q.name} per {cl}: identified in {q.count()}/{len(q.verdicts)} {cl}s{more} (mean "
                         f"posterior/prior variance ratio {q.ratio:.2f} ± {q.ratio_se:.2f}){tail}.")
        for c in self.confounded():
            via = (f" ({_THROUGH.format(f=c.fixed)}: the table's 'identified' counts that information)"
                   if c.verdict in _ALONE else "")
            lines.append(f"Fixed-vs-random confounding: {c.label} — {c.share:.0%} ± {c.share_se:.0%} of "
                         f"{c.fixed}'s posterior variance is shared with the {cl}-level effects (prior "
                         f"{c.share_prior:.0%}): the data fix only their sum; the split rests on the "
                         f"random-effect distribution{via}.")
        for f in self.funnels:
            if f.kind:
                lines.append(f.text())
        return "\n".join(lines)

    def __repr__(self):
        return f"<Levels>\n{self.summary()}"


def _words(v):
    return {Verdict.NOT_IDENTIFIED: "prior-determined (not identified)"}.get(v, str(v))


def _adopt_table_verdicts(quantities, diagnosis):
    """A block quantity that is one parameter carries that parameter's verdict from the diagnosis table.

    Its ratio is the parameter's marginal ratio (1 − unconstrained contraction) and its own ``verdict``
    reads that ratio (the same in every parametrization of one posterior), but the table's verdict also
    weighs the joint ridges with the cluster-level quantities (``alpha`` with contraction 0.78 lying along
    the ``alpha − Σ b_j`` ridge is *identified only in combination*). One parameter has one verdict in
    words: the summary and the report say the table's (:attr:`LevelQuantity.shown_verdict`).
    """
    dr = diagnosis.draws
    unc = dict(zip(dr.unconstrained_names, dr.names))
    verdict = diagnosis.verdicts
    for q in quantities:
        if len(q.coefficients) == 1:
            name = unc.get(next(iter(q.coefficients)))
            if name in verdict:
                q.parameter_verdict = Verdict(verdict[name])
    return quantities


def _cluster_rows(q, dr):
    """Table rows of a single-variable cluster quantity (one per cluster), or None."""
    if len(q.coefficients) != 1 or q.verdicts is None:
        return None
    var = next(iter(q.coefficients)).split("[")[0].removesuffix("_log__")
    rows = [n for n, v in zip(dr.names, dr.variables) if v == var]
    return rows if len(rows) == len(q.verdicts) else None


def _stack_var(ds, var, cluster_dim, sample_dims):
    """(n_sample_dims..., J, extra) array of a per-cluster variable, cluster axis second to last."""
    da = ds[var]
    extra = [d for d in da.dims if d not in sample_dims and d != cluster_dim]
    da = da.transpose(*sample_dims, cluster_dim, *extra)
    a = np.asarray(da.values, float)
    lead = a.shape[:len(sample_dims) + 1]
    return a.reshape(*lead, -1), extra, da


def _components(var, extra, da):
    if not extra:
        return [var]
    import itertools

    idx = itertools.product(*[range(da.sizes[d]) for d in extra])
    return [f"{var}[{','.join(map(str, i))}]" for i in idx]


def _log_name(c):
    base, sep, rest = c.partition("[")
    return f"{base}_log__{sep}{rest}"


def _sample_dims(ds):
    return [d for d in ("chain", "draw") if d in ds.dims]


def levels(diagnosis, model=None, cluster_dim=None, cluster_covariates=None, thresholds=None) -> Levels:
    """Population-, fixed- and cluster-level verdicts of a hierarchical model's diagnosis.

    Parameters
    ----------
    diagnosis : Diagnosis
        From :func:`bayesid.diagnose`; its tree needs the cluster-level quantities (Deterministics
        included) in both the prior and the posterior group (``bayesid.fit`` writes them).
    model : pymc.Model
        The model the draws come from (its graph gives the roles of the variables).
    cluster_dim : str, optional
        See :func:`structure`.
    cluster_covariates : dict of str -> ndarray (J,), optional
        Cluster-level covariates, to name what a fixed effect is confounded with.
    thresholds : Thresholds, optional
        Default: the diagnosis' thresholds.

    Returns
    -------
    Levels
    """
    if model is None:
        raise BadInputError("levels() reads the roles of the variables from the model graph: pass "
                            "model= (the pymc.Model the draws come from).")
    th = thresholds or diagnosis.thresholds
    st = structure(model, cluster_dim)
    tree = diagnosis.tree
    if tree is None or "prior" not in tree.children or "posterior" not in tree.children:
        raise BadInputError("the diagnosis has no tree with prior and posterior groups; diagnose a tree from "
                            "bayesid.fit")
    post, prior = tree["posterior"].to_dataset(), tree["prior"].to_dataset()
    pdims, qdims = _sample_dims(post), _sample_dims(prior)
    dr = diagnosis.draws
    col = {v: [i for i, x in enumerate(dr.variables) if x == v] for v in set(dr.variables)}

    def block(vars_, level):
        idx = [i for v in vars_ for i in col.get(v, [])]
        if not idx:
            return []
        return block_directions(dr.prior_unc[:, idx], dr.posterior_unc[..., idx],
                                [dr.unconstrained_names[i] for i in idx], [dr.transforms[i] for i in idx],
                                level, th)

    population = _adopt_table_verdicts(block(st.population, "population"), diagnosis)
    fixed = _adopt_table_verdicts(block(st.fixed, "fixed"), diagnosis)
    # cluster-level natural quantities, logs of positive ones
    missing = [v for v in st.cluster if v not in post.data_vars or v not in prior.data_vars]
    if missing:
        raise BadInputError(f"cluster-level quantities {missing} are not in both the prior and the posterior group "
                            "of the tree; bayesid.fit records Deterministics in both — for a hand-built tree add "
                            "them (e.g. b = tau·z_b) to both groups.")
    P_parts, Q_parts, names, trs, nat_post, nat_prior, nat_names = [], [], [], [], [], [], []
    for v in st.cluster:
        q, extra, da = _stack_var(post, v, st.cluster_dim, pdims)
        p, _, _ = _stack_var(prior, v, st.cluster_dim, qdims)
        p = p.reshape(-1, *p.shape[-2:])
        q = q if q.ndim == 4 else q[None]
        comps = _components(v, extra, da)
        nat_post.append(q.reshape(-1, *q.shape[-2:]))
        nat_prior.append(p)
        nat_names += comps
        if (p > 0).all() and (q > 0).all():
            p, q = np.log(p), np.log(q)
            comps = [_log_name(c) for c in comps]
            trs += ["log"] * len(comps)
        else:
            trs += [None] * len(comps)
        P_parts.append(p)
        Q_parts.append(q)
        names += comps
    cluster = []
    if names:
        cluster = cluster_directions(np.concatenate(P_parts, -1), np.concatenate(Q_parts, -1), names, trs,
                                     st.cluster_dim, th)
        table_verdicts = diagnosis.verdicts
        for q in cluster:
            rows = _cluster_rows(q, dr)
            if rows is not None:
                q.parameter_verdicts = [Verdict(table_verdicts[n]) for n in rows]
    # fixed-vs-random confounding (natural cluster quantities, unconstrained fixed effects)
    conf = []
    fidx = [i for v in st.fixed for i in col.get(v, [])]
    if fidx and names:
        ess = np.array([diagnosis.convergence.ess_bulk.get(dr.names[i], np.nan) for i in fidx], float)
        ess = np.where(np.isfinite(ess), ess, dr.posterior_unc_flat.shape[0])
        conf = confounding(dr.posterior_unc_flat[:, fidx], np.concatenate(nat_post, -1),
                           [dr.names[i] for i in fidx], nat_names, dr.prior_unc[:, fidx],
                           np.concatenate(nat_prior, -1), cluster_covariates, ess, th)
        for c in conf:
            c.verdict = str(diagnosis.verdicts.get(c.fixed, ""))
    # funnels, in the sampler's coordinates
    funnels = []
    div = None
    if "sample_stats" in tree.children and "diverging" in tree["sample_stats"].to_dataset().data_vars:
        div = np.asarray(tree["sample_stats"].to_dataset()["diverging"].values, bool).reshape(-1)
    pairs = [(s, v, "centred") for s, v in st.centred] + [(s, z, "non-centred") for s, z, _ in st.noncentred]
    seen = set()
    for s, v, form in pairs:
        if (s, v) in seen or s not in col or v not in col:
            continue
        seen.add((s, v))
        i_s = col[s][0]
        if dr.transforms[i_s] != "log":
            continue  # only positive scale parameters make funnels
        ls = dr.posterior_unc_flat[:, i_s]
        x = dr.posterior_unc_flat[:, col[v]]
        ne = float(np.nanmin([diagnosis.convergence.ess_bulk.get(dr.names[i_s], np.nan), ls.size]))
        others = dr.posterior_unc_flat[:, [i for u in st.population + st.fixed for i in col.get(u, []) if i != i_s]]
        slope, se, rng = funnel_slope(ls, x, ne, others)
        f = Funnel(s, v, form, slope, se, rng, _funnel_kind(slope, rng, form))
        if div is not None and div.size == ls.size:
            low = ls <= np.quantile(ls, 0.25)
            f.divergent, f.divergent_low = float(div.mean()), float(div[low].mean())
        funnels.append(f)
    # per-parameter verdicts grouped by variable
    t = diagnosis.table
    rows = []
    for v in dict.fromkeys(t["variable"]):
        sub = t[t["variable"] == v]
        counts = sub["verdict"].astype(str).value_counts()
        rows.append({"variable": v, "level": st.role(v) or "other", "components": len(sub),
                     **{str(k): int(n) for k, n in counts.items()}})
    params = pd.DataFrame(rows).fillna(0)
    return Levels(st, population, fixed, cluster, conf, funnels, params, bool(diagnosis.convergence.ok))
