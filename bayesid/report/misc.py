"""Small fragments: a ModelSpec's notebook display and the explanation study (presentation only)."""

from __future__ import annotations

import numpy as np

from .figures import render_figure
from .tables import Column, frame_table, make_table

__all__ = ["spec_html", "explanation_html"]


def spec_html(spec) -> str:
    """A ModelSpec as a small table: parameters, priors, true values, units, meanings; its designs."""
    from . import render

    cols = [Column("name", "Parameter", "text"), Column("prior", "Prior", "text"),
            Column("truth", "True value", "text"), Column("unit", "Unit", "text"),
            Column("description", "Meaning", "text")]
    rows = [{"name": p.name, "prior": repr(p.prior), "truth": str(np.asarray(p.true_value)), "unit": p.unit,
             "description": (p.description, "wrap")} for p in spec.parameters]
    return render("spec.html", name=spec.name, description=spec.description, table=make_table(rows, cols),
                  designs=", ".join(spec.designs), default=spec.default_design)


def explanation_html(study, figures: bool = True) -> str:
    """The explanation study: ATE table and bar chart."""
    from . import render

    figs = []
    if figures:
        import matplotlib.pyplot as plt

        def make():
            study.plot()
            return plt.gcf()

        figs = [f for f in [render_figure(make, "average treatment effects",
                                          "Average treatment effect of each training intervention on predictions "
                                          "and on explanations, Student-t 95 % intervals over repeats.",
                                          "xp-fig", wide=True)] if f]
    table = frame_table(study.effects, index=False, kinds={"n": "int"},
                        labels={"ate": "ATE", "lower": "95 % lower", "upper": "95 % upper"})
    return render("explain.html", figures=figs, table=table)


def check_html(result) -> str:
    """A :class:`bayesid.structural.CheckResult` (``bayesid.check``) as a table and its summary."""
    from . import render
    from .tables import frame_table

    return render("check.html", table=frame_table(result.table), summary=result.summary(),
                  n_draws=getattr(result, "n_draws", ""), seconds=f"{getattr(result, 'seconds', float('nan')):.1f}")
