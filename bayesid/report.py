"""Self-contained HTML reports: verdict table first, then plots, then a plain-language summary.

``write(obj, path)`` accepts a :class:`~bayesid.diagnostics.Diagnosis` or anything with a
``to_html()`` method (neural comparisons, design comparisons); figures are embedded as base64 PNG so
the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import jinja2
import numpy as np

__all__ = ["write", "diagnosis_html", "figure_to_img", "page"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table.bid{border-collapse:collapse;font-size:13px;margin:0.5em 0}
table.bid th,table.bid td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}
table.bid th:first-child,table.bid td:first-child{text-align:left}
td.v{font-weight:600;text-align:left!important}
.summary{background:#f6f6f6;border-left:4px solid #888;padding:0.6em 1em;white-space:pre-line}
.warn{background:#fff3f3;border-left:4px solid #b2182b;padding:0.6em 1em}
img{max-width:100%}
small{color:#666}
"""

_DIAG = jinja2.Environment(autoescape=True).from_string("""
<section class="bayesid-diagnosis">
<h2>{{ title or "Identifiability diagnosis" }}</h2>
{% if not conv_ok %}<div class="warn"><b>Not converged.</b> {{ conv_text }}</div>{% endif %}
<table class="bid"><tr><th>parameter</th>{% for c in cols %}<th>{{ c }}</th>{% endfor %}<th>verdict</th></tr>
{% for row in rows %}<tr><td>{{ row.name }}</td>{% for v in row.vals %}<td>{{ v }}</td>{% endfor %}
<td class="v" style="color:{{ row.color }}">{{ row.verdict }}</td></tr>{% endfor %}</table>
<h3>Directions (prior-whitened, unconstrained)</h3>
<table class="bid"><tr><th>direction</th><th>posterior/prior variance</th><th>± MCSE</th><th>verdict</th><th>source</th><th>loadings</th></tr>
{% for d in directions %}<tr><td>{{ d.label }}</td><td>{{ "%.3f"|format(d.ratio) }}</td><td>{{ d.se }}</td>
<td class="v" style="color:{{ d.color }}">{{ d.verdict }}</td><td>{{ d.source }}</td><td>{{ d.loadings }}</td></tr>{% endfor %}
</table>
{% if combinations %}<h3>Identified combinations</h3><ul>{% for c in combinations %}
<li><b>{{ c.name }}</b>: contraction {{ "%.3f"|format(c.contraction) }} <small>({{ c.source }})</small></li>{% endfor %}</ul>{% endif %}
{% for f in figures %}<figure><img src="{{ f }}"></figure>{% endfor %}
<h3>Summary</h3><div class="summary">{{ summary }}</div>
<p><small>Thresholds: {{ thresholds }}. Prior sensitivity: ArviZ psense (power-scaling); {{ psense_note }}</small></p>
</section>
""")


def figure_to_img(fig) -> str:
    """A matplotlib figure as a ``data:image/png;base64`` URI (and close it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.3g}"
    return str(v)


def diagnosis_html(diag, figures: bool = True) -> str:
    """HTML fragment for a Diagnosis."""
    import matplotlib

    from bayesid.diagnostics.plots import VERDICT_COLORS

    t = diag.table
    cols = [c for c in ("mean", "sd", "truth", "z", "contraction", "contraction_unc", "overlap", "bimodality",
                        "psense_prior", "psense_likelihood", "rhat", "ess_bulk") if c in t]
    rows = [dict(name=n, vals=[_fmt(t.loc[n, c]) for c in cols], verdict=t.loc[n, "verdict"],
                 color=VERDICT_COLORS.get(t.loc[n, "verdict"], "#000")) for n in t.index]
    dirs = []
    for d in list(diag.directions) + [d for d in diag.fisher_directions]:
        dirs.append(dict(label=d.label, ratio=d.ratio, se="" if np.isnan(d.ratio_se) else f"{d.ratio_se:.3f}",
                         verdict=d.verdict, color=VERDICT_COLORS.get(d.verdict, "#000"), source=d.source,
                         loadings=", ".join(f"{k}: {v:+.2f}" for k, v in d.loadings.items())))
    figs = []
    if figures:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        for fn in (diag.plot_contraction, diag.plot_spectrum, diag.plot_pair):
            try:
                figs.append(figure_to_img(fn().figure))
            except Exception as err:  # a plot failing must not lose the report
                plt.close("all")
                figs.append("")
                print(f"bayesid.report: {fn.__name__} failed: {err}")
        if diag.tree is not None:
            try:
                figs.append(figure_to_img(diag.plot_marginals()))
            except Exception as err:
                plt.close("all")
                print(f"bayesid.report: plot_marginals failed: {err}")
        figs = [f for f in figs if f]
    conv = diag.convergence
    conv_text = "; ".join(conv.problems + [f"{k}: {', '.join(v)}" for k, v in conv.parameter_problems.items()])
    return _DIAG.render(title=diag.title, conv_ok=conv.ok, conv_text=conv_text, cols=cols, rows=rows,
                        directions=dirs, combinations=diag.combinations + diag.fisher_combinations,
                        figures=figs, summary=diag.summary(), psense_note=diag.psense_note or "computed",
                        thresholds=", ".join(f"{k}={v}" for k, v in diag.thresholds.as_dict().items()))


def page(title: str, *sections: str) -> str:
    """Wrap HTML fragments into one self-contained page."""
    body = "\n".join(sections)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}"
            "<hr><small>Generated by bayesid.</small></body></html>")


def write(obj, path, title: str | None = None) -> Path:
    """Write ``obj`` (a Diagnosis, or anything with ``to_html()``, or a list of them) as one HTML file."""
    objs = obj if isinstance(obj, (list, tuple)) else [obj]
    sections = []
    for o in objs:
        if not hasattr(o, "to_html"):
            raise TypeError(f"Cannot write a report of {type(o).__name__}: it has no to_html().")
        sections.append(o.to_html())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(title or getattr(objs[0], "title", "") or "bayesid report", *sections),
                    encoding="utf-8")
    return path
