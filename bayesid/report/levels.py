"""The levels section of the diagnosis page: population-, fixed- and cluster-level verdicts of a
hierarchical model, the fixed-vs-random confounding and the funnel note
(:class:`~bayesid.diagnostics.hierarchy.Levels`, presentation only).

Its sentences are the lines of :meth:`Levels.summary`, the one text of the levels, whose agreement with
the diagnosis table, ridges and summary :meth:`Levels.consistency_problems` checks; its tables show the
same numbers. The per-variable counts come from the diagnosis table itself.
"""

from __future__ import annotations

from .tables import Column, make_table

__all__ = ["levels_context", "levels_html", "resolve_levels"]

_LEVEL_WORDS = {"population": "population", "fixed": "fixed effect", "cluster": "per {cl}"}


def resolve_levels(diag, levels=None, model=None, **kwargs):
    """The Levels to show with ``diag``: ``levels`` as given, else computed from ``model`` when the model is
    hierarchical (:func:`~bayesid.diagnostics.hierarchy.is_hierarchical`), else None (no section)."""
    if levels is not None or model is None:
        return levels
    from bayesid.diagnostics.hierarchy import is_hierarchical

    if not is_hierarchical(model):
        return None
    return diag.levels(model=model, **kwargs)


def _clusters(q, cl):
    if q.verdicts is None:
        return ""
    from bayesid.diagnostics.verdicts import Verdict

    parts = [f"{q.count()}/{len(q.verdicts)} {cl}s"]
    for v, w in ((Verdict.WEAK, "weakly"), (Verdict.NOT_IDENTIFIED, "prior-determined")):
        if q.count(v):
            parts.append(f"{w} in {q.count(v)}")
    return ", ".join(parts)


def _quantity_table(lv, p):
    cl = lv.structure.cluster_dim
    cols = [Column("level", "Level", "text"), Column("quantity", "Quantity", "text"),
            Column("verdict", "Verdict", "text", "one parameter: its verdict in the table above"),
            Column("ratio", "Posterior / prior variance", "fraction",
                   "cluster level: the mean over clusters; 1: as wide as the prior; 0: pinned down"),
            Column("se", "± MCSE", "fraction"),
            Column("clusters", "Identified in", "text", f"per-{cl} verdicts")]
    rows = [{"level": _LEVEL_WORDS[q.level].format(cl=cl), "quantity": q.name,
             "verdict": (str(q.shown_verdict), "verdict"), "ratio": q.ratio, "se": q.ratio_se,
             "clusters": _clusters(q, cl)}
            for q in lv.population + lv.fixed + lv.cluster]
    return make_table(rows, cols, table_id=f"{p}levels-table")


def _confounding_table(lv, p):
    if not lv.confounding:
        return None
    cl = lv.structure.cluster_dim
    cols = [Column("fixed", "Fixed effect", "text"), Column("against", "Against", "text"),
            Column("share", f"Posterior variance shared with the {cl} effects", "fraction", "R² of the fixed effect on "
                   f"the {cl}-level quantities over the posterior draws"),
            Column("se", "± se", "fraction"), Column("prior", "Prior share", "fraction"),
            Column("reading", "Read as", "text")]
    rows = [{"fixed": c.fixed, "against": c.against, "share": c.share, "se": c.share_se, "prior": c.share_prior,
             "reading": ("confounded: the data fix only their sum", "fail") if c.confounded else "separated"}
            for c in lv.confounding]
    return make_table(rows, cols, table_id=f"{p}confounding-table")


def _funnel_table(lv, p):
    if not lv.funnels:
        return None
    cols = [Column("pair", "Scale and variable", "text"), Column("form", "Sampled as", "text"),
            Column("slope", "Slope of log spread on log scale", "z",
                   "1: Neal's funnel; 0: data dominate; −1: inverted"),
            Column("se", "± se", "fraction"), Column("range", "Spread changes ×", "value",
                                                     "across the central 95 % of the scale's posterior"),
            Column("reading", "Read as", "text")]
    rows = [{"pair": f"{f.scale} and {f.variable}", "form": f.form, "slope": f.slope, "se": f.slope_se,
             "range": f.scale_range,
             "reading": (f"{f.kind}: a sampling difficulty, in itself not a ridge", "fail") if f.kind else "no funnel"}
            for f in lv.funnels]
    return make_table(rows, cols, table_id=f"{p}funnel-table")


def _parameter_table(lv, p):
    df = lv.parameters
    cl = lv.structure.cluster_dim
    verdict_cols = [c for c in df.columns if c not in ("variable", "level", "components")]
    cols = [Column("variable", "Variable", "text"), Column("level", "Role", "text"),
            Column("components", "Components", "int")] + [Column(c, c.capitalize(), "int") for c in verdict_cols]
    roles = {"population": "population", "fixed": "fixed effect", "cluster": f"per {cl}",
             "standardised": f"per {cl} (standardised)", "unpooled": f"per {cl} (own prior)", "other": "other"}
    rows = [{**{c: r[c] for c in verdict_cols}, "variable": r["variable"], "level": roles.get(r["level"], r["level"]),
             "components": r["components"]} for _, r in df.iterrows()]
    return make_table(rows, cols, table_id=f"{p}levels-parameters",
                      caption="The table's verdicts, counted per variable")


def levels_context(lv, prefix: str = "") -> dict:
    """Everything the levels section shows (nothing recomputed: the sentences are the summary's lines)."""
    lines = lv.summary().splitlines()
    st = lv.structure
    return dict(p=prefix, cluster_dim=st.cluster_dim, structure_sentence=lines[0], sentences=lines[1:],
                quantity_table=_quantity_table(lv, prefix), confounding_table=_confounding_table(lv, prefix),
                funnel_table=_funnel_table(lv, prefix), parameter_table=_parameter_table(lv, prefix),
                n_confounded=len(lv.confounded()), n_funnels=sum(bool(f.kind) for f in lv.funnels))


def levels_html(lv, prefix: str = "") -> str:
    """The levels section alone (the diagnosis page includes it when given ``levels=``)."""
    from . import render

    return render("levels.html", **levels_context(lv, prefix))
