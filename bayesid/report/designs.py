"""The designs page (presentation of :class:`bayesid.designs.DesignComparison`): a recommendation
sentence first, then the ranking with each design's description and Monte Carlo errors, the predicted
verdicts, the predicted-contraction heat map, and what the quantities mean."""

from __future__ import annotations

import numpy as np

from .figures import render_figure
from .naming import join_names
from .tables import Column, format_number, make_table

__all__ = ["designs_html", "designs_context", "plot_designs"]


def plot_designs(dc, ax=None):
    """Predicted contraction per parameter (columns) and design (rows, best first)."""
    import matplotlib.pyplot as plt

    t = dc.table
    cols = [c for c in t.columns if c.startswith("contraction[")]
    if ax is None:
        _, ax = plt.subplots(figsize=(2.0 + 0.9 * len(cols), 0.45 * len(t) + 1.6), layout="constrained")
    im = ax.imshow(t[cols].values, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(cols)), [c[12:-1] for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(t)), [f"{d}" if p == "default" else f"{d} / {p}" for d, p in t.index])
    for i in range(len(t)):
        for j in range(len(cols)):
            ax.text(j, i, f"{t[cols].values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.figure.colorbar(im, ax=ax, label="predicted contraction")
    ax.set_title("Predicted contraction per parameter (best design on top)", fontsize=10)
    return ax


def _spec(dc):
    try:
        from bayesid import models

        return models.get(dc.model)
    except Exception:  # noqa: BLE001 - a comparison of an unregistered model still renders
        return None


def _describe(spec, name):
    if spec is None:
        return ""
    try:
        return spec.design(name).description
    except Exception:  # noqa: BLE001
        return ""


def recommendation(dc) -> list[str]:
    """The recommendation sentence(s): which design, what it identifies, what the others leave open."""
    res = {(r.design, r.prior): r for r in dc.results}
    order = list(dc.table.index)
    best = res[order[0]]
    d = len(best.verdicts)
    label = best.design if best.prior == "default" else f"{best.design} with prior {best.prior}"
    eig_se = getattr(best, "eig_se", float("nan"))
    gain = format_number(best.eig, "value") + (f" ± {format_number(eig_se, 'value')}" if np.isfinite(eig_se) else "")
    s = [f"Recommended: {label} — expected to identify {best.n_identified} of {d} parameters individually, "
         f"expected information gain {gain} nats"
         + (f", identified combinations {', '.join(best.combinations)}" if best.combinations else "") + "."]
    if best.uninformed_labels:
        s.append(f"Even this design leaves {join_names(best.uninformed_labels)} uninformed.")
    others = [res[k] for k in order[1:]]
    for r in others:
        if r.uninformed_labels:
            nm = r.design if r.prior == "default" else f"{r.design} / {r.prior}"
            s.append(f"{nm}: {r.n_identified} of {d} identified; leaves {join_names(r.uninformed_labels)} uninformed.")
    return s


def designs_context(dc, figures=True, prefix="des-") -> dict:
    p = prefix
    spec = _spec(dc)
    res = {(r.design, r.prior): r for r in dc.results}
    n_prior = getattr(dc, "n_prior", None)
    rows = []
    for rank, key in enumerate(dc.table.index, start=1):
        r = res[key]
        eig_se = getattr(r, "eig_se", float("nan"))
        rows.append({"rank": rank, "design": r.design, "prior": r.prior,
                     "description": (_describe(spec, r.design), "wrap"),
                     "identified": f"{r.n_identified} of {len(r.verdicts)}",
                     "eig": r.eig, "eig_se": eig_se,
                     "uninformed": ("; ".join(r.uninformed_labels) or "none", "wrap"),
                     "combinations": "; ".join(r.combinations) or "—",
                     "failed": r.n_failed})
    cols = [Column("rank", "Rank", "int"), Column("design", "Design", "text"), Column("prior", "Prior", "text"),
            Column("description", "What is measured", "text"),
            Column("identified", "Identified", "value", "parameters predicted identified individually"),
            Column("eig", "Information gain (nats)", "value", "expected information gain, Gaussian approximation"),
            Column("eig_se", "± MC error", "value", "Monte Carlo standard error over the prior draws"),
            Column("uninformed", "Uninformed directions", "text"),
            Column("combinations", "Identified combinations", "text"),
            Column("failed", "Non-viable prior draws", "int",
                   "prior draws for which the simulator failed (e.g. the walker falls); skipped")]
    if len({r.prior for r in dc.results}) == 1:
        cols = [c for c in cols if c.key != "prior"]
    rank_t = make_table(rows, cols, table_id=f"{p}ranking")
    v = dc.verdicts()
    vcols = [Column("design", "Design", "text")] + [Column(c, c, "text") for c in v.columns]
    vrows = []
    for key, row in v.iterrows():
        dname = key[0] if isinstance(key, tuple) else key
        pr = key[1] if isinstance(key, tuple) and len(key) > 1 else "default"
        rec = {"design": dname if pr == "default" else f"{dname} / {pr}"}
        rec.update({c: (str(row[c]), "verdict") for c in v.columns})
        vrows.append(rec)
    verd_t = make_table(vrows, vcols, table_id=f"{p}verdicts")
    figs = []
    if figures:
        figs = [render_figure(lambda: plot_designs(dc), "predicted contraction per design",
                              "Predicted contraction 1 − posterior/prior variance of each parameter (Laplace "
                              "approximation, averaged over prior draws).", f"{p}fig-heatmap", wide=True)]
        figs = [f for f in figs if f]
    failed = sum(r.n_failed for r in dc.results)
    crn = getattr(dc, "common_random_numbers", None)
    notes = [("expected information gain", "½ Σ log(1 + λ_j) of the prior-whitened expected Fisher information "
                                           "averaged over prior draws, in nats (Bayesian D-optimality; Chaloner & "
                                           "Verdinelli 1995). Higher: the data are expected to say more."),
             ("predicted contraction", "1 − predicted posterior/prior variance of a parameter, (I + W̄)⁻¹ in whitened "
                                       "coordinates; the same verdict rules as a fitted diagnosis."),
             ("uninformed direction", "a whitened direction with expected information below the cut-off (posterior as "
                                      "wide as ≥ 0.8 of the prior): a ridge before any data are collected."),
             ("non-viable prior draws", "prior draws at which the simulator fails (for the gait model: the walker "
                                        "falls or takes off); they are skipped and counted."),
             ("± MC error", "Monte Carlo standard error of the information gain over the prior draws; differences "
                            "between designs smaller than about twice it are noise.")]
    meta = [("model", f"{dc.model}" + (f": {spec.description}" if spec is not None else ""))]
    if n_prior:
        meta.append(("prior draws per design", str(n_prior)))
    meta.append(("common random numbers", "yes: every design sees the same prior draws" if crn else
                 ("no" if crn is False else "not recorded")))
    meta.append(("non-viable prior draws (all designs)", str(failed)))
    method = getattr(dc, "method", "fisher")
    meta.insert(1, ("method", _METHOD_TEXT.get(method, method)
                    + (f", {dc.n_datasets} simulated datasets per design" if method != "fisher" else "")))
    sim_t = _simulation_table(dc, p) if method != "fisher" else None
    if method != "fisher":
        notes += [("p identified", "share of the simulated datasets whose posterior contracts the parameter by at "
                                   "least the 'identified' threshold"),
                  ("z sd", "standard deviation of (posterior mean − truth)/posterior sd over the datasets: ≈ 1 for "
                           "a calibrated posterior, < 1 too wide, > 1 overconfident")]
    for key, tr in sorted(getattr(dc, "training", {}).items()):
        meta.append((f"NPE training {key[0]}" + ("" if key[1] == "default" else f" / {key[1]}"),
                     f"{tr['n_simulations']} simulations, {tr['seconds']:.0f} s, "
                     + ("converged" if tr["converged"] else "validation loss still falling (not converged)")))
    return dict(p=p, title=f"Design comparison: {dc.model}", recommendation=recommendation(dc), rank_table=rank_t,
                verdict_table=verd_t, figures=figs, glossary=notes, meta=meta, method=method, sim_table=sim_t)


_METHOD_TEXT = {"fisher": "fisher: prior-averaged Fisher information (no sampling)",
                "mcmc": "mcmc: NUTS fits (bayesid.fit) of prior-predictive datasets",
                "npe": "npe: one amortized posterior (NPE) per design, evaluated on prior-predictive datasets"}


def _simulation_table(dc, p):
    """Per design and parameter over the simulated datasets: contraction ± se, p identified, z sd."""
    t = dc.table
    params = [c[len("contraction["):-1] for c in t.columns if c.startswith("contraction[")]
    rows = []
    for key in t.index:
        for n in params:
            rows.append({"design": key[0] if key[1] == "default" else f"{key[0]} / {key[1]}", "parameter": n,
                         "c": t.loc[key, f"contraction[{n}]"], "se": t.loc[key, f"contraction_se[{n}]"],
                         "pid": t.loc[key, f"p_identified[{n}]"], "z": t.loc[key, f"z_sd[{n}]"]})
    cols = [Column("design", "Design", "text"), Column("parameter", "Parameter", "text"),
            Column("c", "Contraction", "value", "expected contraction over the datasets"),
            Column("se", "± se", "value", "standard error over the datasets"),
            Column("pid", "p identified", "value", "share of datasets with contraction ≥ the identified threshold"),
            Column("z", "z sd", "value", "spread of the z-scores (≈ 1 when calibrated)")]
    return make_table(rows, cols, table_id=f"{p}datasets")


def designs_html(dc, figures=True, prefix="des-") -> str:
    from . import render

    return render("designs.html", **designs_context(dc, figures=figures, prefix=prefix))
