"""Plots of a :class:`~bayesid.diagnostics.Diagnosis` (matplotlib), the ones users know.

* :func:`plot_marginals` — prior vs posterior per parameter in natural units, true value as a line;
* :func:`plot_pair` — one panel per ridge, in natural units (log axes for positive parameters), with
  the level curve of the identified combination through the posterior mean (the ridge itself);
* :func:`plot_spectrum` — posterior/prior variance of every direction on a log axis;
* :func:`plot_z_contraction` — z-score against contraction (the BayesFlow / Schad et al. picture);
* :func:`plot_contraction` — contraction per parameter with ± 2 MCSE.

Colours separate the verdicts (:data:`VERDICT_COLORS`): green identified, blue only in combination,
orange weakly identified, red not identified, purple prior–data conflict, grey not converged.
"""

from __future__ import annotations

import numpy as np

from .naming import NameMap, involved, linear_label, readable

__all__ = ["plot_contraction", "plot_marginals", "plot_pair", "plot_spectrum", "plot_z_contraction",
           "VERDICT_COLORS", "verdict_color", "parameter_units"]

VERDICT_COLORS = {
    "identified": "#1b7837",
    "identified up to relabelling": "#5aae61",
    "identified only in combination": "#2166ac",
    "weakly identified": "#e08214",
    "not identified": "#b2182b",
    "prior-data conflict": "#762a83",
    "not converged": "#6b6b6b",
}
PRIOR_COLOR = "#9e9e9e"


def verdict_color(v) -> str:
    return VERDICT_COLORS.get(str(v), "#333333")


def _ax(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def parameter_units(diag) -> dict:
    """``{component name: unit}`` where the diagnosis knows its ModelSpec (``diag.spec``)."""
    spec = getattr(diag, "spec", None)
    out = {}
    if spec is None:
        return out
    for name, var in zip(diag.draws.names, diag.draws.variables):
        try:
            out[name] = spec.parameter(var).unit
        except Exception:  # noqa: BLE001 - a parameter the spec does not describe has no unit
            out[name] = ""
    return out


def _with_unit(name, units):
    u = units.get(name, "")
    return f"{name} ({u})" if u else name


def _verdict_legend(ax, verdicts, **kw):
    from matplotlib.patches import Patch

    seen = [v for v in VERDICT_COLORS if v in {str(x) for x in verdicts}]
    return [Patch(color=VERDICT_COLORS[v], label=v) for v in seen]


def plot_contraction(diag, ax=None):
    """Horizontal bars of posterior contraction per parameter, coloured by verdict, ± 2 MCSE."""
    t = diag.table
    ax = _ax(ax, (6.4, 0.42 * len(t) + 1.4))
    y = np.arange(len(t))[::-1]
    colors = [verdict_color(v) for v in t["verdict"]]
    ax.barh(y, t["contraction"], xerr=2 * t["contraction_se"], color=colors, alpha=0.95, capsize=2)
    ax.set_yticks(y, t.index)
    th = diag.thresholds
    l1 = ax.axvline(th.identified, ls="--", c="k", lw=0.9, label=f"identified from {th.identified:g}")
    l2 = ax.axvline(1 - th.ridge, ls=":", c="k", lw=0.9, label=f"ridge below {1 - th.ridge:g}")
    ax.set_xlim(min(-0.05, float(np.nanmin(t["contraction"])) - 0.05), 1.05)
    ax.set_xlabel("contraction = 1 − posterior variance / prior variance")
    ax.legend(handles=_verdict_legend(ax, t["verdict"]) + [l1, l2], fontsize=7, loc="lower right",
              framealpha=0.9)
    ax.set_title("How much the data narrow each parameter", fontsize=10)
    return ax


def plot_marginals(diag, max_panels: int = 12):
    """Prior (grey) and posterior (verdict colour) marginal densities in natural units, with the true
    value (when known) as a black line."""
    import matplotlib.pyplot as plt

    dr = diag.draws
    t = diag.table
    units = parameter_units(diag)
    names = dr.names[:max_panels]
    n = len(names)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.2 * nrow), layout="constrained",
                             squeeze=False)
    post = dr.posterior_flat
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_visible(False)
            continue
        name = names[k]
        j = dr.names.index(name)
        pr, po = dr.prior[:, j], post[:, j]
        lo, hi = np.nanquantile(np.r_[pr, po], [0.005, 0.995])
        bins = np.linspace(lo, hi, 50)
        ax.hist(pr, bins=bins, density=True, histtype="stepfilled", color=PRIOR_COLOR, alpha=0.45,
                label="prior")
        v = t.loc[name, "verdict"] if name in t.index else ""
        ax.hist(po, bins=bins, density=True, histtype="stepfilled", color=verdict_color(v), alpha=0.7,
                label="posterior")
        if "truth" in t and np.isfinite(t.loc[name, "truth"]):
            ax.axvline(t.loc[name, "truth"], color="k", lw=1.4, label="true value")
        ax.set_yticks([])
        ax.set_xlabel(_with_unit(name, units), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_title(str(v), fontsize=8, color=verdict_color(v), loc="left")
    axes.flat[0].legend(fontsize=7, frameon=False)
    if len(dr.names) > max_panels:
        fig.suptitle(f"first {max_panels} of {len(dr.names)} parameters", fontsize=8)
    return fig


def _inverse(tr):
    if tr == "log":
        return np.exp
    if tr == "logodds":
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    return lambda x: x


def _pairs(diag):
    """One (ridge, i, j) per ridge: the two unconstrained coordinates moving most along it."""
    names = diag.unconstrained_names
    out = []
    for r in diag.ridges:
        load = np.array([abs(r.loadings.get(n, 0.0)) for n in names])
        idx = list(np.argsort(load)[::-1][:2])
        if len(idx) == 2 and load[idx[1]] > 0:
            out.append((r, int(idx[0]), int(idx[1])))
    return out


def plot_pair(diag, ax=None, max_ridges: int = 3):
    """Prior and posterior draws of the two parameters moving most along each ridge, in natural units
    (log axes for log-transformed parameters), with the identified combination's level curve through
    the posterior mean: the ridge is that curve. Without a ridge: the two least-contracted parameters."""
    import matplotlib.pyplot as plt

    nm = NameMap.of(diag)
    dr = diag.draws
    units = parameter_units(diag)
    pairs = _pairs(diag)[:max_ridges]
    if not pairs:
        idx = list(np.argsort(diag.table["contraction"].values)[:2])
        if len(idx) < 2:
            idx = idx * 2
        pairs = [(None, int(idx[0]), int(idx[1]))]
    if ax is None:
        fig, axes = plt.subplots(1, len(pairs), figsize=(4.4 * len(pairs), 4.0), layout="constrained",
                                 squeeze=False)
        axes = list(axes[0])
    else:
        axes = [ax]
        pairs = pairs[:1]
    pr, po = dr.prior_unc, dr.posterior_unc_flat
    rng = np.random.default_rng(0)
    sp = rng.choice(len(pr), min(1500, len(pr)), replace=False)
    sq = rng.choice(len(po), min(1500, len(po)), replace=False)
    combos = list(diag.combinations) + list(diag.fisher_combinations)
    for a, (r, i, j) in zip(axes, pairs):
        ui, uj = dr.unconstrained_names[i], dr.unconstrained_names[j]
        ti, tj = dr.transforms[i], dr.transforms[j]
        fi, fj = _inverse(ti), _inverse(tj)
        a.scatter(fi(pr[sp, i]), fj(pr[sp, j]), s=3, alpha=0.25, c=PRIOR_COLOR, label="prior", rasterized=True)
        a.scatter(fi(po[sq, i]), fj(po[sq, j]), s=3, alpha=0.35, c="#d6604d", label="posterior",
                  rasterized=True)
        m = po.mean(axis=0)
        xs = np.linspace(np.quantile(pr[:, i], 0.005), np.quantile(pr[:, i], 0.995), 200)
        combo = next((c for c in combos if abs(c.coefficients.get(ui, 0)) > 0 and abs(c.coefficients.get(uj, 0)) > 0),
                     None)
        if r is not None and combo is not None:
            c = np.array([combo.coefficients.get(n, 0.0) for n in dr.unconstrained_names])
            level = float(c @ m)
            rest = level - c @ m + c[i] * m[i] + c[j] * m[j]
            ys = (rest - c[i] * xs) / c[j]
            a.plot(fi(xs), fj(ys), "k-", lw=1.6,
                   label=f"{combo.name} = posterior mean\n(identified; the ridge runs along it)")
        elif r is not None:
            dvec = np.array([r.loadings.get(ui, 0.0), r.loadings.get(uj, 0.0)])
            s = np.linspace(-3, 3, 50) * np.sqrt(np.diag(diag.prior_cov))[[i, j]].max() / np.abs(dvec).max()
            a.plot(fi(m[i] + s * dvec[0]), fj(m[j] + s * dvec[1]), "k--", lw=1.4,
                   label=f"ridge: {readable(r.loadings, nm)} moves freely")
        if ti == "log":
            a.set_xscale("log")
        if tj == "log":
            a.set_yscale("log")
        t = diag.table
        if "truth" in t:
            xi, yj = t.loc[dr.names[i], "truth"], t.loc[dr.names[j], "truth"]
            if np.isfinite(xi) and np.isfinite(yj):
                a.plot([xi], [yj], marker="x", color="k", ms=8, mew=2, ls="none", label="true value")
        a.set_xlabel(_with_unit(dr.names[i], units))
        a.set_ylabel(_with_unit(dr.names[j], units))
        title = (f"ridge: {readable(r.loadings, nm)} moves freely ({r.source})" if r is not None
                 else "no ridge: the two least-narrowed parameters")
        a.set_title(title, fontsize=9)
        _log_ticks(a, ti == "log", tj == "log")
        leg = a.legend(fontsize=7, framealpha=0.9)
        for h in getattr(leg, "legend_handles", []):
            if hasattr(h, "set_sizes"):
                h.set_sizes([16])
    return axes[0] if len(axes) == 1 else axes[0].figure


def _log_ticks(ax, x: bool, y: bool):
    """Plain numbers (12000, 80) on log axes instead of 1.2×10⁴."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            axis.set_major_formatter(fmt)
            axis.set_minor_formatter(fmt)
    if x:
        ax.tick_params(axis="x", which="both", labelsize=7, labelrotation=30)


def direction_order(directions):
    """Indices sorted for reading: ridges first, then weakly identified, then identified; larger ratio
    first within a group."""
    rank = {"not identified": 0, "weakly identified": 1, "identified": 2}
    return sorted(range(len(directions)), key=lambda k: (rank.get(str(directions[k].verdict), 3),
                                                         -float(directions[k].ratio)))


def plot_spectrum(diag, ax=None):
    """Posterior/prior variance ratio of every direction (draws, ± 2 MCSE) on a log axis, ridges first;
    the model-based Fisher prediction 1/(1+λ) as black ticks."""
    nm = NameMap.of(diag)
    dirs = list(diag.directions)
    order = direction_order(dirs)
    ax = _ax(ax, (max(7.0, 0.9 * len(dirs) + 3.0), 3.4))
    floor = 1e-4
    r = np.array([max(float(dirs[k].ratio), floor) for k in order])
    se = np.array([dirs[k].ratio_se for k in order])
    x = np.arange(len(r))
    lower = np.clip(r - 2 * np.nan_to_num(se), floor, None)
    ax.bar(x, r, 0.6, color=[verdict_color(dirs[k].verdict) for k in order])
    ax.errorbar(x, r, yerr=[r - lower, 2 * np.nan_to_num(se)], fmt="none", ecolor="k", lw=0.8, capsize=2)
    if diag.fisher_directions:
        fr = np.sort([max(float(d.ratio), floor) for d in diag.fisher_directions])[::-1]
        ax.scatter(x[: len(fr)], fr[: len(x)], marker="_", s=300, color="k", zorder=3,
                   label="Fisher prediction 1/(1+λ)")
    ax.set_yscale("log")
    ax.set_ylim(floor * 0.8, 2.0)
    th = diag.thresholds
    ax.axhline(th.ridge, ls=":", c="k", lw=0.9, label=f"ridge from {th.ridge:g}")
    ax.axhline(1 - th.identified, ls="--", c="k", lw=0.9, label=f"identified up to {1 - th.identified:g}")
    labels = []
    for k in order:
        d = dirs[k]
        vec = d.loadings if str(d.verdict) == "not identified" else d.coefficients
        lab = readable(vec, nm)
        labels.append(lab if len(lab) <= 28 else lab[:26] + "…")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("posterior / prior variance")
    handles = _verdict_legend(ax, [dirs[k].verdict for k in order])
    h2, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + h2, fontsize=7, loc="lower left", framealpha=0.9)
    ax.set_title("Every direction, ridges first (1 = as wide as the prior)", fontsize=10)
    return ax


def plot_z_contraction(diag, ax=None):
    """z-score of the posterior mean against contraction, one point per parameter (needs the truth):
    identified and well-calibrated parameters sit right, inside |z| < 2."""
    t = diag.table
    if "z" not in t or not np.isfinite(t["z"]).any():
        raise ValueError("plot_z_contraction needs true values: diagnose(..., truth=...)")
    ax = _ax(ax, (5.0, 3.6))
    ax.axhspan(-2, 2, color="#f0f0f0", zorder=0, label="|z| < 2")
    for name, row in t.iterrows():
        ax.scatter(row["contraction"], row["z"], s=40, color=verdict_color(row["verdict"]), zorder=2)
        ax.annotate(name, (row["contraction"], row["z"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlim(min(-0.05, float(np.nanmin(t["contraction"])) - 0.05), 1.05)
    zmax = max(3.0, float(np.nanmax(np.abs(t["z"]))) * 1.15)
    ax.set_ylim(-zmax, zmax)
    ax.axvline(diag.thresholds.identified, ls="--", c="k", lw=0.9)
    ax.set_xlabel("contraction")
    ax.set_ylabel("z = (posterior mean − truth) / posterior sd")
    ax.legend(handles=_verdict_legend(ax, t["verdict"]), fontsize=7, loc="lower left", framealpha=0.9)
    ax.set_title("z-score vs contraction", fontsize=10)
    return ax


def direction_text(d, nm: NameMap) -> str:
    """The vector a direction is read by, in natural names (ridges: how parameters move; otherwise: the
    combination that is measured)."""
    vec = d.loadings if str(d.verdict) == "not identified" else d.coefficients
    return linear_label(vec, nm)


def direction_params(d, nm: NameMap) -> list[str]:
    vec = d.loadings if str(d.verdict) == "not identified" else d.coefficients
    return involved(vec, nm)
