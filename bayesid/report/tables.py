"""The one table formatter of the presentation layer.

Numbers are formatted by *quantity* (a contraction gets two decimals, an ESS a whole number with
thin-space thousands, an R-hat three decimals, a posterior mean three significant digits), never by a
generic ``%.3g``; the template renders every table the same way (``templates/_macros.html``), in a
box that scrolls horizontally on narrow screens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Column", "format_number", "make_table", "frame_table", "KINDS"]

_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

#: Quantity kinds and how they are written.
KINDS = {
    "value": "3 significant digits (posterior mean, sd, true value)",
    "fraction": "2 decimals, '<0.01' for smaller positive values (contraction, overlap, variance ratio, share)",
    "z": "2 decimals with sign",
    "rhat": "3 decimals",
    "ess": "whole number",
    "int": "whole number",
    "psense": "3 decimals",
    "seconds": "2 significant digits, s",
    "text": "as is",
}


def _sig(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits; scientific as ``1.2×10⁻⁵`` outside [1e-3, 1e6)."""
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e6:
        dec = max(digits - 1 - int(math.floor(math.log10(a))), 0)
        s = f"{v:,.{dec}f}".replace(",", "\u2009")
        return s
    m, e = f"{v:.{digits - 1}e}".split("e")
    return f"{m}×10{str(int(e)).translate(_SUP)}"


def format_number(v, kind: str = "value") -> str:
    """Format one value by its quantity kind (see :data:`KINDS`); NaN and None give ``""``."""
    if v is None:
        return ""
    if kind == "text" or isinstance(v, str):
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    if kind == "fraction":
        if 0 < abs(x) < 0.005:
            return "<0.01" if x > 0 else "−<0.01"
        return f"{x:.2f}".replace("-", "−")
    if kind == "z":
        return f"{x:+.2f}".replace("-", "−")
    if kind in ("rhat", "psense"):
        return f"{x:.3f}"
    if kind in ("ess", "int"):
        return f"{round(x):,d}".replace(",", "\u2009")
    if kind == "seconds":
        return _sig(x, 2) + " s"
    return _sig(x, 3).replace("-", "−")


@dataclass
class Column:
    """One table column: ``key`` in the row dicts, header ``label``, quantity ``kind``, a ``help``
    tooltip (the glossary entry), and whether it is numeric (right-aligned, tabular figures)."""

    key: str
    label: str
    kind: str = "value"
    help: str = ""

    @property
    def numeric(self) -> bool:
        return self.kind != "text"


def make_table(rows: list[dict], columns: list[Column], caption: str = "", table_id: str = "",
               row_class=None) -> dict:
    """A table for the ``table`` macro: formatted cells, header tooltips, per-row CSS classes.

    Parameters
    ----------
    rows : list of dict
        Raw values by column key; a value may be a ``(value, css_class)`` pair to colour a cell.
    columns : list of Column
    row_class : callable, optional
        ``row -> css class`` (e.g. the verdict).
    """
    out_rows = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c.key)
            cls = ""
            if isinstance(v, tuple):
                v, cls = v
            cells.append({"text": format_number(v, c.kind), "num": c.numeric, "cls": cls})
        out_rows.append({"cells": cells, "cls": row_class(r) if row_class else ""})
    return {"columns": [{"label": c.label, "num": c.numeric, "help": c.help} for c in columns],
            "rows": out_rows, "caption": caption, "id": table_id}


def frame_table(df, kinds: dict | None = None, labels: dict | None = None, index: bool = True,
                caption: str = "", table_id: str = "", helps: dict | None = None) -> dict:
    """A pandas DataFrame as a :func:`make_table` table.

    ``kinds`` maps column name -> quantity kind (default: ``value`` for numbers, ``text`` otherwise);
    ``labels`` maps column name -> header (default: the name with underscores as spaces).
    """
    import pandas as pd

    kinds, labels, helps = dict(kinds or {}), dict(labels or {}), dict(helps or {})
    d = df.reset_index() if index else df
    cols = []
    for name in d.columns:
        key = name if isinstance(name, str) else " / ".join(map(str, name))
        kind = kinds.get(key)
        if kind is None:
            kind = "value" if pd.api.types.is_numeric_dtype(d[name]) and not pd.api.types.is_bool_dtype(
                d[name]) else "text"
        cols.append(Column(key, labels.get(key, key.replace("_", " ")), kind, helps.get(key, "")))
    rows = [{c.key: v for c, v in zip(cols, rec)} for rec in d.itertuples(index=False, name=None)]
    return make_table(rows, cols, caption=caption, table_id=table_id)
