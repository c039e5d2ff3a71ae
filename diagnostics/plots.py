"""Plots of a :class:`~bayesid.diagnostics.Diagnosis` (matplotlib; marginals through arviz-plots)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_contraction", "plot_marginals", "plot_pair", "plot_spectrum", "VERDICT_COLORS"]

VERDICT_COLORS = {
    "identified": "#1b7837",
    "identified only in combination": "#5aae61",
    "weakly identified": "#f1a340",
    "not identified": "#b2182b",
    "prior-data conflict": "#762a83",
    "not converged": "#4d4d4d",
}


def _ax(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax


def plot_contraction(diag, ax=None):
    """Horizontal bars of posterior contraction per parameter, coloured by verdict, ± 2 MCSE."""
    t = diag.table
    ax = _ax(ax, (6, 0.45 * len(t) + 1.2))
    y = np.arange(len(t))[::-1]
    colors = [VERDICT_COLORS.get(v, "grey") for v in t["verdict"]]
    ax.barh(y, t["contraction"], xerr=2 * t["contraction_se"], color=colors, alpha=0.9)
    ax.set_yticks(y, t.index)
    th = diag.thresholds
    ax.axvline(th.identified, ls="--", c="k", lw=0.8)
    ax.axvline(1 - th.ridge, ls=":", c="k", lw=0.8)
    ax.set_xlim(min(-0.05, float(t["contraction"].min()) - 0.05), 1.05)
    ax.set_xlabel("contraction 1 − Var_post/Var_prior (natural scale)")
    for v, c in VERDICT_COLORS.items():
        if v in set(t["verdict"]):
            ax.barh([np.nan], [np.nan], color=c, label=v)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Posterior contraction")
    ax.figure.tight_layout()
    return ax


def plot_marginals(diag):
    """Prior vs posterior marginal densities (arviz-plots ``plot_prior_posterior``)."""
    import arviz_plots as azp

    if diag.tree is None:
        raise ValueError("plot_marginals needs the DataTree; diagnose() keeps it in diag.tree")
    pc = azp.plot_prior_posterior(diag.tree, var_names=sorted(set(diag.draws.variables),
                                                              key=diag.draws.variables.index),
                                  backend="matplotlib")
    fig = pc.viz["figure"].item()
    fig.suptitle("Prior (blue) vs posterior marginals")
    return fig


def _pair_indices(diag):
    ridges = diag.ridges
    names = diag.unconstrained_names
    if ridges:
        load = np.array([abs(ridges[0].loadings.get(n, 0.0)) for n in names])
        idx = list(np.argsort(load)[::-1][:2])
    else:
        idx = list(np.argsort(diag.table["contraction"].values)[:2])
    if len(idx) < 2:
        idx = [idx[0], idx[0]]
    return idx


def plot_pair(diag, ax=None):
    """Prior and posterior draws of the two parameters most involved in the first ridge
    (unconstrained coordinates), with every ridge direction drawn through the posterior mean."""
    i, j = _pair_indices(diag)
    names = diag.unconstrained_names
    ax = _ax(ax, (5, 5))
    pr, po = diag.draws.prior_unc, diag.draws.posterior_unc_flat
    rng = np.random.default_rng(0)
    sp = rng.choice(len(pr), min(1500, len(pr)), replace=False)
    sq = rng.choice(len(po), min(1500, len(po)), replace=False)
    ax.scatter(pr[sp, i], pr[sp, j], s=3, alpha=0.25, c="#67a9cf", label="prior")
    ax.scatter(po[sq, i], po[sq, j], s=3, alpha=0.35, c="#ef8a62", label="posterior")
    m = po.mean(axis=0)
    span = 2.5 * np.sqrt(np.diag(diag.prior_cov))
    for k, r in enumerate(diag.ridges):
        dvec = np.array([r.loadings.get(names[i], 0.0), r.loadings.get(names[j], 0.0)])
        if np.allclose(dvec, 0):
            continue
        dvec = dvec / np.linalg.norm(dvec) * max(span[i], span[j])
        ax.plot([m[i] - dvec[0], m[i] + dvec[0]], [m[j] - dvec[1], m[j] + dvec[1]], "k--", lw=1.5,
                label=f"ridge: {r.label} ({r.source})" if k < 3 else None)
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.legend(fontsize=7, markerscale=3)
    ax.set_title("Pair plot with ridge directions (unconstrained)")
    ax.figure.tight_layout()
    return ax


def plot_spectrum(diag, ax=None):
    """Posterior/prior variance ratio of every direction (draws), with the Fisher prediction 1/(1+λ)."""
    ax = _ax(ax, (6, 3.2))
    r = np.array([d.ratio for d in diag.directions])
    se = np.array([d.ratio_se for d in diag.directions])
    x = np.arange(len(r))
    ax.bar(x - 0.2, r, 0.4, yerr=2 * se, color=[VERDICT_COLORS[d.verdict] for d in diag.directions],
           label="draws (± 2 MCSE)")
    if diag.fisher_directions:
        fr = np.sort([d.ratio for d in diag.fisher_directions])
        ax.bar(x + 0.2, fr, 0.4, color="none", edgecolor="k", hatch="//", label="Fisher 1/(1+λ)")
    ax.set_xticks(x, [d.label for d in diag.directions], rotation=30, ha="right", fontsize=8)
    ax.axhline(diag.thresholds.ridge, ls=":", c="k", lw=0.8)
    ax.axhline(1 - diag.thresholds.identified, ls="--", c="k", lw=0.8)
    ax.set_ylabel("posterior / prior variance")
    ax.set_title("Direction spectrum (prior-whitened)")
    ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax
