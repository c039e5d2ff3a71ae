"""The one figure helper of the presentation layer: a matplotlib figure as a self-contained data URI.

Every page (diagnosis, designs, neural comparison, explanation study) embeds its figures through
:func:`figure_to_uri`, so the encoding (format, resolution, base64) exists once.
"""

from __future__ import annotations

import base64
import io

__all__ = ["figure_to_uri", "figure_to_img", "DPI", "render_figure"]

#: Resolution of embedded PNGs: twice the CSS pixel density (96 px per inch), so figures stay sharp on
#: high-density screens and when zoomed.
DPI = 192


def figure_to_uri(fig, fmt: str = "png", dpi: int = DPI, close: bool = True) -> str:
    """Encode a matplotlib figure as a ``data:`` URI (PNG at ``dpi`` or SVG) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure or matplotlib.axes.Axes
        An Axes is replaced by its figure.
    fmt : {"png", "svg"}
    dpi : int
        PNG resolution (default 2× CSS pixels).
    close : bool
        Close the figure afterwards (frees memory in long report runs).

    Returns
    -------
    str
        ``data:image/png;base64,...`` or ``data:image/svg+xml;base64,...``.
    """
    import matplotlib.pyplot as plt

    fig = getattr(fig, "figure", fig)
    if fmt not in ("png", "svg"):
        raise ValueError(f"figure format must be 'png' or 'svg', not {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", facecolor="white")
    if close:
        plt.close(fig)
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# the name older code used
figure_to_img = figure_to_uri


def render_figure(make, alt: str, caption: str = "", anchor: str = "", wide: bool = False) -> dict | None:
    """Call ``make()`` (returns a figure or axes) and package it for a template.

    A plot that fails must not lose the report: the error is printed and ``None`` is returned, and the
    page leaves the figure out.

    Returns
    -------
    dict or None
        ``{"src": data URI, "alt": ..., "caption": ..., "id": anchor, "wide": spans the full width}``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    try:
        fig = make()
        fig = getattr(fig, "figure", fig)
        w, h = fig.get_size_inches()
        src = figure_to_uri(fig)
    except Exception as err:  # noqa: BLE001 - a plot failing must not lose the report
        plt.close("all")
        print(f"bayesid.report: figure {alt!r} failed: {type(err).__name__}: {err}")
        return None
    # CSS size = the figure's size at 96 px per inch (the PNG has twice as many pixels: sharp, not doubled)
    return {"src": src, "alt": alt, "caption": caption, "id": anchor, "wide": wide,
            "width": int(round(w * 96)), "height": int(round(h * 96))}
