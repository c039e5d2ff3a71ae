"""Names a reader knows: one naming scheme for directions and combinations, in natural parameter names.

Unconstrained coordinates are written as ``log(k)`` / ``logit(p)`` (never ``k_log__``); a direction is
written from *one* vector with the same rounding everywhere it appears (label and loadings agree); a
vector whose terms are all logs with simple coefficients is also read as a product or ratio
(``log(k) − log(m)`` ⇒ ``k/m``), and unit powers are never written (no ``k^1``, no ``1·log(m)``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["coordinate_name", "NameMap", "linear_label", "product_label", "terms"]

_SIMPLE = sorted({Fraction(p, q) for p in range(1, 4) for q in range(1, 4)})
_FUNC = {"log": "log", "logodds": "logit"}


def coordinate_name(name: str, transform) -> str:
    """Natural-name form of one unconstrained coordinate: ``log(k)``, ``logit(p)``, ``a``."""
    if transform is None:
        return name
    return f"{_FUNC.get(transform, transform)}({name})"


class NameMap:
    """Unconstrained component name -> (natural name, transform), built from a diagnosis' draws."""

    def __init__(self, unconstrained_names, names, transforms):
        self.unc = list(unconstrained_names)
        self.nat = dict(zip(unconstrained_names, names))
        self.tr = dict(zip(unconstrained_names, transforms))

    @classmethod
    def of(cls, diag):
        dr = diag.draws
        return cls(dr.unconstrained_names, dr.names, dr.transforms)

    def coord(self, u: str) -> str:
        return coordinate_name(self.nat.get(u, u), self.tr.get(u))


def _snap(x: float, tol: float = 0.08):
    for f in _SIMPLE:
        if abs(abs(x) - float(f)) <= tol * float(f):
            return f if x > 0 else -f
    return None


def terms(vector: dict, tol: float = 0.15) -> list[tuple[str, float]]:
    """The terms of ``vector`` that matter: normalised to max |.| = 1, first term positive, terms
    below ``tol`` dropped, in the vector's own (model) order."""
    items = [(k, float(v)) for k, v in vector.items() if np.isfinite(v)]
    if not items:
        return []
    big = max(abs(v) for _, v in items)
    if big == 0:
        return []
    items = [(k, v / big) for k, v in items if abs(v) / big >= tol]
    if items and items[0][1] < 0:
        items = [(k, -v) for k, v in items]
    return items


def _num(c: float) -> str:
    f = _snap(c)
    if f is not None and f.denominator == 1:
        return str(abs(f.numerator))
    if f is not None:
        return f"{abs(f.numerator)}/{f.denominator}"
    return f"{abs(c):.2g}"


def linear_label(vector: dict, names: NameMap, tol: float = 0.15) -> str:
    """``log(k) + log(m)``, ``a − 0.5·b``: the vector in natural coordinate names."""
    ts = terms(vector, tol)
    if not ts:
        return "0"
    out = ""
    for i, (k, c) in enumerate(ts):
        mag = _num(c)
        coef = "" if mag == "1" else f"{mag}·"
        nm = names.coord(k)
        if i == 0:
            out = ("−" if c < 0 else "") + coef + nm
        else:
            out += (" − " if c < 0 else " + ") + coef + nm
    return out


def product_label(vector: dict, names: NameMap, tol: float = 0.15) -> str | None:
    """The product/ratio a log-linear vector stands for (``k·m``, ``k/m``, ``a·b²``), or None when a
    term is not a log or a coefficient is not a simple ratio; additive vectors of untransformed
    parameters are returned as sums (``a + b``) when their coefficients are simple."""
    ts = terms(vector, tol)
    if not ts:
        return None
    snapped = [(k, _snap(c)) for k, c in ts]
    if any(f is None for _, f in snapped):
        return None
    den = int(np.lcm.reduce([f.denominator for _, f in snapped]))
    ints = [(k, int(f * den)) for k, f in snapped]
    trs = {names.tr.get(k) for k, _ in ints}
    if trs == {"log"}:
        def power(k, p):
            nm = names.nat.get(k, k)
            return nm if p == 1 else f"{nm}^{p}"

        num = [power(k, p) for k, p in ints if p > 0]
        dn = [power(k, -p) for k, p in ints if p < 0]
        top = "·".join(num) if num else "1"
        if not dn:
            return top
        bottom = dn[0] if len(dn) == 1 else "(" + "·".join(dn) + ")"
        return f"{top}/{bottom}"
    if trs == {None}:
        return linear_label(dict(ints), names, tol)
    return None


def readable(vector: dict, names: NameMap, tol: float = 0.15) -> str:
    """The product form when there is one, else the linear form."""
    return product_label(vector, names, tol) or linear_label(vector, names, tol)


def involved(vector: dict, names: NameMap, tol: float = 0.15) -> list[str]:
    """Natural names of the parameters with a term in ``vector`` (order of magnitude)."""
    return [names.nat.get(k, k) for k, _ in terms(vector, tol)]


def join_names(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
