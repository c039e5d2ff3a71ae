"""The presentation layer: every HTML page, figure and table bayesid shows.

``diagnostics/``, ``bayesid.designs`` and ``bayesid.comparison`` compute; this package renders, with
Jinja templates (``templates/``), one stylesheet (``templates/style.css``), one figure helper
(:mod:`.figures`) and one table formatter (:mod:`.tables`). Pages are self-contained (figures embedded
as base64 PNG at 2× resolution, no external resource), so a report can be mailed or archived alone.

``write(obj, path)`` accepts a :class:`~bayesid.diagnostics.Diagnosis` or anything with a
``to_html()`` method (neural comparisons, design comparisons), or a list of them.
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import re
from functools import lru_cache
from pathlib import Path

import jinja2

from .figures import figure_to_img, figure_to_uri
from .output import OutputError, check_output, written_by_bayesid

__all__ = ["write", "page", "render", "diagnosis_html", "figure_to_uri", "figure_to_img", "OutputError",
           "check_output", "written_by_bayesid", "Fragment"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def render(template: str, **context) -> str:
    """Render one of the package's templates (autoescaped)."""
    return _env().get_template(template).render(**context).strip()


def stylesheet() -> str:
    return (_TEMPLATES / "style.css").read_text(encoding="utf-8")


def _generator() -> str:
    import bayesid

    return f"bayesid {bayesid.__version__}"


_H2 = re.compile(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', re.S)


def page(title: str, *sections: str, subtitle: str = "") -> str:
    """Wrap HTML fragments into one self-contained page with a table of contents (from the fragments'
    ``<h2 id=...>`` headings)."""
    body = "\n".join(sections)
    toc = [(m.group(1), re.sub(r"<[^>]+>", "", _html.unescape(m.group(2))).strip()) for m in _H2.finditer(body)]
    return render("page.html", title=title, subtitle=subtitle, toc=toc, body=_markup(body), css=_markup(stylesheet()),
                  generator=_generator(), date=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _markup(s):
    from markupsafe import Markup

    return Markup(s)


def diagnosis_html(diag, figures: bool = True, prefix: str = "", show_title: bool = False, levels=None,
                   model=None) -> str:
    """HTML fragment for a Diagnosis, verdict first (see :mod:`.diagnosis`).

    ``levels`` (a :class:`~bayesid.diagnostics.hierarchy.Levels`), or ``model`` (the pymc.Model of the
    draws: its levels are computed when it is hierarchical), adds the levels section.
    """
    from .diagnosis import diagnosis_context
    from .levels import resolve_levels

    lv = resolve_levels(diag, levels, model)
    return render("diagnosis.html", **diagnosis_context(diag, figures=figures, prefix=prefix,
                                                        show_title=show_title, levels=lv))


class Fragment:
    """Ready HTML that :func:`write` puts on a page as it is."""

    def __init__(self, html: str, title: str = ""):
        self.html, self.title = html, title

    def to_html(self) -> str:
        return self.html


def write(obj, path, title: str | None = None, subtitle: str = "", force: bool = False, levels=None,
          model=None) -> Path:
    """Write ``obj`` (a Diagnosis, anything with ``to_html()``, or a list of them) as one HTML file.

    Parameters
    ----------
    obj : object or list of objects
    path : str or Path
    title : str, optional
        Page title (default: the first object's ``title``).
    force : bool
        Replace an existing file that bayesid did not write (otherwise :class:`OutputError`).
    levels : Levels, optional
        ``diag.levels(model)`` of a hierarchical model: the first Diagnosis gets a levels section
        (population / fixed / cluster verdicts, fixed-vs-random confounding, funnels).
    model : pymc.Model, optional
        Instead of ``levels``: the model of the first Diagnosis; its levels are computed and shown when
        the model is hierarchical.

    Returns
    -------
    Path
        The file written.
    """
    objs = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    if not objs:
        raise ValueError("report.write got an empty list: pass a Diagnosis (or objects with to_html()), "
                         "or a list of at least one")
    for o in objs:
        if not hasattr(o, "to_html"):
            raise TypeError(f"Cannot write a report of {type(o).__name__}: it has no to_html(). Pass a Diagnosis, "
                            "DesignComparison or NeuralComparison.")
    path = check_output(path, force=force)
    from bayesid.diagnostics import Diagnosis

    first = next((i for i, o in enumerate(objs) if isinstance(o, Diagnosis)), None)
    if (levels is not None or model is not None) and first is None:
        raise TypeError("levels= / model= add a levels section to a Diagnosis, and no Diagnosis was passed")
    with_levels = levels is not None or model is not None
    sections = [diagnosis_html(o, levels=levels, model=model) if i == first and with_levels else o.to_html()
                for i, o in enumerate(objs)]
    text = page(title or getattr(objs[0], "title", "") or "bayesid report", *sections, subtitle=subtitle)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def register_renderers() -> None:
    """Register this layer's renderers with :mod:`bayesid.diagnostics.display` (done at import), so a
    Diagnosis shows, plots and draws progress bars without ``diagnostics`` importing this package."""
    from bayesid.diagnostics import display

    from . import plots

    def _progress(iterable, description="", total=None):
        from rich.progress import track

        return track(iterable, description=description, total=total, transient=True)

    display.register("diagnosis_html", diagnosis_html)
    for name in ("plot_contraction", "plot_marginals", "plot_pair", "plot_spectrum"):
        display.register(name, getattr(plots, name))
    display.register("progress", _progress)


register_renderers()
