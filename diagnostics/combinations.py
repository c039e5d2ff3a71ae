"""Name the identifiable combinations ("a + b", "a·b", "k/m") from ridge directions (numpy core).

Rule (documented, deterministic):

1. The ridges are the non-identified directions, as displacement vectors ``d_k`` in unconstrained
   coordinates. A linear combination ``cᵀθ`` is unaffected by moving along every ridge iff
   ``c ⊥ d_k`` for all k: those are the combinations the data can determine.
2. Only parameters that move along some ridge (``|d_ik| ≥ loading_tol`` after normalising each
   ridge to max |.| = 1) are involved; the others are identified on their own.
3. The involved parameters are split into independent groups (the ridges' projector couples no
   two groups), and per group a basis of the combinations orthogonal to the ridges
   is put in reduced row-echelon form, which makes it sparse and readable (``θ0 − θ5``,
   ``θ1 − θ5``, ...), and each coefficient is snapped to a simple ratio (1, 2, 3, 1/2, 1/3 and
   their negatives) when within ``snap_tol``.
4. Names: real-valued parameters combine additively (``beta1 + beta2``); log-transformed
   (positive) parameters combine multiplicatively, since ``log a + log b = log(a·b)``: positive
   coefficients go to the numerator, negative ones to the denominator, non-unit magnitudes
   become powers (``k/m``, ``a·b^2``). Mixed cases use ``log(x)`` explicitly.
5. Every named combination is checked against the draws: its posterior/prior variance ratio
   is reported, and :func:`bayesid.diagnose` keeps it only if that ratio shows it identified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

__all__ = ["Combination", "name_combination", "combinations_orthogonal_to", "variance_ratio",
           "variance_ratios", "check_combination"]

_SIMPLE = sorted({Fraction(p, q) for p in range(1, 4) for q in range(1, 4)})


@dataclass
class Combination:
    """A linear combination of unconstrained parameters and its human name.

    Attributes
    ----------
    name : str
        E.g. ``"a + b"``, ``"a·b"``, ``"k/m"``.
    coefficients : dict of str -> float
        Coefficients on unconstrained component names.
    ratio : float
        Posterior/prior variance ratio of the combination (NaN until measured).
    contraction : float
        ``1 − ratio``.
    source : str
        ``"draws"`` (orthogonal to the draw-based ridges), ``"fisher"`` (averaged information) or
        ``"fisher-local"`` (a local ridge straightened by a change of coordinates; the coefficients
        are then on those coordinates, e.g. ``p1_log__`` for log p1).
    ratio_se : float
        Monte Carlo standard error of ``ratio`` (NaN when not computed).
    parameters : list of str
        Natural names of the parameters it involves (filled for local-ridge combinations).
    """

    name: str
    coefficients: dict = field(default_factory=dict)
    ratio: float = float("nan")
    source: str = "draws"
    ratio_se: float = float("nan")
    parameters: list = field(default_factory=list)

    @property
    def contraction(self) -> float:
        return 1.0 - self.ratio

    @property
    def contraction_se(self) -> float:
        return self.ratio_se

    def __repr__(self):
        return f"Combination({self.name!r}, contraction={self.contraction:.3f})"


_SIMPLE_FLOAT = [(f, float(f)) for f in _SIMPLE]  # float(Fraction) once, not per call (speed only)
_SIMPLE_FF = np.array([v for _, v in _SIMPLE_FLOAT])


def _snap(x, tol):
    ax = abs(x)
    for f, ff in _SIMPLE_FLOAT:
        if abs(ax - ff) <= tol * ff:
            return f if x > 0 else -f
    return None


def _fmt_num(f):
    if isinstance(f, Fraction):
        return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
    return f"{f:.2g}"


def _strip_log(uname, tr):
    """Unconstrained component name -> natural name (``b_log__[2]`` -> ``b[2]``)."""
    if tr is None:
        return uname
    base, sep, rest = uname.partition("[")
    for suffix in (f"_{tr}__", "_log__", "_logodds__", "_interval__"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base + (sep + rest if sep else "")


def name_combination(coefficients: dict, transforms: dict, snap_tol: float = 0.08,
                     drop_tol: float = 1e-6) -> str:
    """Human-readable name of a linear combination of unconstrained parameters.

    Parameters
    ----------
    coefficients : dict of str -> float
        Unconstrained component name -> coefficient (any scale; normalised here so the largest
        magnitude is 1 and the first nonzero coefficient is positive).
    transforms : dict of str -> str or None
        Unconstrained component name -> transform (``"log"`` or None).

    Examples
    --------
    >>> name_combination({"a": 1, "b": 1}, {"a": None, "b": None})
    'a + b'
    >>> name_combination({"k_log__": 1, "m_log__": -1}, {"k_log__": "log", "m_log__": "log"})
    'k/m'
    """
    items = [(k, float(v)) for k, v in coefficients.items() if abs(v) > drop_tol]
    if not items:
        return "0"
    big = max(abs(v) for _, v in items)
    first = items[0][1]
    sgn = 1.0 if first > 0 else -1.0
    items = [(k, sgn * v / big) for k, v in items]
    x = np.array([v for _, v in items])
    hit = np.abs(np.abs(x)[:, None] - _SIMPLE_FF[None, :]) <= snap_tol * _SIMPLE_FF[None, :]
    if hit.any(axis=1).all():
        # every coefficient a simple fraction: rescale so the smallest magnitude is an integer
        snapped = [f if xi > 0 else -f for xi, f in zip(x.tolist(), (_SIMPLE_FLOAT[j][0] for j in
                                                                      np.argmax(hit, axis=1).tolist()))]
        den = int(np.lcm.reduce([s.denominator for s in snapped]))
        terms = [(k, s * den) for (k, _), s in zip(items, snapped)]
    else:
        terms = items
    all_log = all(transforms.get(k) == "log" for k, _ in terms)
    if all_log:
        num = [(k, c) for k, c in terms if c > 0]
        den = [(k, -c) for k, c in terms if c < 0]

        def prod(ts):
            parts = []
            for k, c in ts:
                nm = _strip_log(k, "log")
                parts.append(nm if c == 1 else f"{nm}^{_fmt_num(c)}")
            return "·".join(parts)

        if not num:
            return f"1/({prod(den)})" if len(den) > 1 else f"1/{prod(den)}"
        if not den:
            return prod(num)
        d = prod(den)
        return f"{prod(num)}/{d}" if len(den) == 1 else f"{prod(num)}/({d})"
    parts = []
    for i, (k, c) in enumerate(terms):
        tr = transforms.get(k)
        nm = f"log({_strip_log(k, tr)})" if tr == "log" else (k if tr is None else f"{tr}({_strip_log(k, tr)})")
        mag = abs(c)
        exact = type(mag) is Fraction  # (type, not isinstance: the ABC check was a third of the time)
        coef = "" if abs(float(mag) - 1.0) < 1e-9 else f"{_fmt_num(mag) if exact else f'{float(mag):.2g}'}·"
        if i == 0:
            parts.append(("-" if c < 0 else "") + coef + nm)
        else:
            parts.append((" - " if c < 0 else " + ") + coef + nm)
    return "".join(parts)


def _rref(m, tol=1e-9):
    m = np.array(m, float)
    rows, cols = m.shape
    r = 0
    pivots = []
    for c in range(cols):
        if r >= rows:
            break
        p = r + np.argmax(np.abs(m[r:, c]))
        if abs(m[p, c]) < tol:
            continue
        m[[r, p]] = m[[p, r]]
        m[r] /= m[r, c]
        f = m[:, c].copy()  # every other row at once: the same products and differences (speed only)
        f[r] = 0.0
        lo = int(np.flatnonzero(m[r])[0])  # columns before the pivot row's first non-zero do not change
        m[:, lo:] -= np.outer(f, m[r, lo:])
        pivots.append(c)
        r += 1
    m[np.abs(m) < tol] = 0.0
    return m[:r], pivots


def _orthogonal_rref(sub, gap_tol: float = 1e-6):
    """Reduced row-echelon basis of the combinations orthogonal to the columns of ``sub`` (|B|, k),
    or None when there are none.

    Reference route: a full SVD gives an orthonormal basis of the orthogonal complement, put in
    reduced row-echelon form by :func:`_rref` (O(|B|³): 3 s at |B| = 1000). The echelon form depends
    only on the subspace, so where its pivots are the leading ``|B| − k`` columns — exactly when the
    last k rows of an orthonormal basis Q of the columns are non-singular (the complementary blocks
    of an orthogonal matrix share their singular values) — it is ``[I | −Q_P Q_F⁻¹]`` directly, in
    O(|B| k²). That route is taken only when ``sub`` has full column rank (the reference's rank rule)
    and ``σ_min(Q_F) ≥ gap_tol`` (far from the reference's 1e-9 pivot tolerance); otherwise the
    reference runs. The two agree to rounding (a test compares them)."""
    from .preposterior import _one_blas_thread

    n, k = sub.shape
    with _one_blas_thread():  # speed only (oversubscribed BLAS threads: 9 s for one SVD at d = 1000)
        s = np.linalg.svd(sub, compute_uv=False)
        rank = int(np.sum(s > 1e-8 * max(1.0, s.max(initial=0.0))))
        if rank == n:
            return None
        if rank == k and k > 0:
            q, _ = np.linalg.qr(sub)
            qf = q[n - k:]
            if np.linalg.svd(qf, compute_uv=False).min() >= gap_tol:
                out = np.zeros((n - k, n))
                out[:, : n - k] = np.eye(n - k)
                out[:, n - k:] = -np.linalg.solve(qf.T, q[: n - k].T).T
                out[np.abs(out) < 1e-9] = 0.0  # as _rref does
                return out
        u, _, _ = np.linalg.svd(sub, full_matrices=True)
    return _rref(u[:, rank:].T)[0]


def combinations_orthogonal_to(ridges: np.ndarray, names: list, transforms: list,
                               loading_tol: float = 0.15, coupling_tol: float = 0.1,
                               drop_tol: float = 0.05) -> list[Combination]:
    """Simple combinations left unchanged by moving along every ridge.

    Parameters
    ----------
    ridges : ndarray, shape (d, k)
        Ridge displacement vectors (columns) in unconstrained coordinates.
    names : list of str
        Unconstrained component names (length d).
    transforms : list of str or None
        Transform of each component.
    loading_tol : float
        Minimum |loading| (each ridge normalised to max 1) for a parameter to count as moving.
    coupling_tol : float
        Parameters are split into independent groups (separate ridges, e.g. a·b and c − d in one
        model) where the projector onto the ridges' span couples them less than this; each group's
        combinations are named on their own, so no name mixes unrelated parameters.
    drop_tol : float
        Coefficients below this fraction of the largest are dropped before naming (the named
        combination is then measured on the draws, so a dropped term that mattered shows there).

    Returns
    -------
    list of Combination
        Unmeasured (``ratio`` NaN); see :func:`variance_ratio`.
    """
    ridges = np.atleast_2d(np.asarray(ridges, float))
    if ridges.shape[0] != len(names):
        ridges = ridges.T
    if ridges.size == 0 or ridges.shape[1] == 0:
        return []
    norm = ridges / np.abs(ridges).max(axis=0, keepdims=True)
    involved = np.where(np.abs(norm).max(axis=1) >= loading_tol)[0]
    if involved.size == 0:
        return []
    trmap = dict(zip(names, transforms))
    out = []
    for block in _blocks(norm, involved, coupling_tol):
        basis = _orthogonal_rref(norm[block])
        if basis is None:
            continue
        for row in basis:
            mag = np.abs(row)
            keep = np.flatnonzero(mag > drop_tol * mag.max())  # one comparison per row (speed only)
            coefs = dict(zip([names[block[i]] for i in keep], row[keep].tolist()))
            if len(coefs) < 2:
                continue  # a single parameter orthogonal to all ridges: identified on its own
            out.append(_NamedOnRead(coefs, trmap))
    return out


class _NamedOnRead(Combination):
    """A :class:`Combination` whose ``name`` is ``name_combination(coefficients, transforms)`` built on
    first read (the same string as naming it at once; a test compares the two): at d = 1000 the
    ~850 combinations orthogonal to the ridges are measured on the draws, but few are ever shown."""

    def __init__(self, coefficients: dict, transforms: dict):
        self.__dict__["_naming"] = (dict(coefficients), transforms)  # what the name is built from
        super().__init__(_UNNAMED, coefficients)

    @property
    def name(self) -> str:
        try:
            return self.__dict__["name"]
        except KeyError:
            v = self.__dict__["name"] = name_combination(*self._naming)
            return v

    @name.setter
    def name(self, value):  # _UNNAMED (from __init__) stores nothing, so copies and pickles never hold it
        if value is _UNNAMED:
            self.__dict__.pop("name", None)
        else:
            self.__dict__["name"] = value


_UNNAMED = object()


def _blocks(norm, involved, coupling_tol):
    """Split the involved parameters into independent groups: i and j belong together when the
    projector onto the span of the ridges couples them (``|P_ij| / sqrt(P_ii P_jj) > coupling_tol``).
    The projector does not depend on how the ridges are mixed within their span (near-equal ratios)."""
    from .preposterior import _one_blas_thread

    with _one_blas_thread():  # speed only: a 1000 x 144 QR took 5 s on oversubscribed BLAS threads
        q, _ = np.linalg.qr(norm[involved])
        P = q @ q.T
    dg = np.sqrt(np.clip(np.diag(P), 1e-300, None))
    C = np.abs(P) / np.outer(dg, dg)
    linked = C > coupling_tol
    if np.array_equal(linked, linked.T):
        # the search below is then plain connected components: the same groups (each sorted, ordered
        # by their first member) without the O(n²) Python loop (speed only)
        from .ridges import linked_groups

        return linked_groups(linked, involved)
    groups, seen = [], set()
    for a in range(len(involved)):
        if a in seen:
            continue
        stack, g = [a], []
        seen.add(a)
        while stack:
            x = stack.pop()
            g.append(x)
            for y in range(len(involved)):
                if y not in seen and C[x, y] > coupling_tol:
                    seen.add(y)
                    stack.append(y)
        groups.append(sorted(int(involved[x]) for x in g))
    return groups


def variance_ratio(coefficients: dict, names: list, prior_unc: np.ndarray, posterior_unc: np.ndarray) -> float:
    """Posterior/prior variance ratio of ``cᵀθ`` from unconstrained draws."""
    c = np.array([coefficients.get(n, 0.0) for n in names], float)
    d = len(names)
    nz = np.flatnonzero(c)  # only the columns the combination uses (a d-column product was 36 ms at d=200)
    vp = np.var(np.asarray(prior_unc, float).reshape(-1, d)[:, nz] @ c[nz], ddof=1)
    vq = np.var(np.asarray(posterior_unc, float).reshape(-1, d)[:, nz] @ c[nz], ddof=1)
    return float(vq / vp)


def variance_ratios(coefficients: list, names: list, prior_unc: np.ndarray, posterior_unc: np.ndarray) -> np.ndarray:
    """:func:`variance_ratio` of many combinations at once (one matrix product instead of a copy of
    the draws per combination; the same ratios to rounding)."""
    from .preposterior import _one_blas_thread

    d = len(names)
    if not coefficients:
        return np.zeros(0)
    col = {n: i for i, n in enumerate(names)}
    C = np.zeros((d, len(coefficients)))
    for j, c in enumerate(coefficients):
        for n, v in c.items():
            if n in col:
                C[col[n], j] = v
    nz = np.flatnonzero(np.abs(C).sum(axis=1))
    with _one_blas_thread():
        vp = np.var(np.asarray(prior_unc, float).reshape(-1, d)[:, nz] @ C[nz], axis=0, ddof=1)
        vq = np.var(np.asarray(posterior_unc, float).reshape(-1, d)[:, nz] @ C[nz], axis=0, ddof=1)
    return vq / vp


def check_combination(comb: Combination, names: list, prior: np.ndarray, posterior: np.ndarray) -> Combination:
    """Measure a combination on the draws: its posterior/prior variance ratio and MCSE, in place.

    Parameters
    ----------
    comb : Combination
        Coefficients on ``names``.
    names : list of str
        Coordinate names, the columns of ``prior`` and ``posterior``.
    prior : ndarray (n, k)
        Prior draws in those coordinates (non-finite rows, e.g. log 0, are dropped).
    posterior : ndarray (chains, draws, k)
        Posterior draws in those coordinates (chain structure kept for the MCSE).

    Notes
    -----
    ``se(r) = r·sqrt(ρ_post² + ρ_prior²)`` with ``ρ`` the relative MCSE of each variance (ESS of the
    squared deviations, :func:`bayesid.diagnostics.contraction.relative_variance_se`).
    """
    from .contraction import relative_variance_se

    c = np.array([comb.coefficients.get(n, 0.0) for n in names], float)
    p = np.asarray(prior, float) @ c
    p = p[np.isfinite(p)]
    q = np.asarray(posterior, float) @ c
    if q.ndim == 1:
        q = q[None]
    if p.size < 10 or not np.isfinite(q).all():
        comb.ratio, comb.ratio_se = float("nan"), float("nan")
        return comb
    vp = np.var(p, ddof=1)
    r = float(np.var(q.reshape(-1), ddof=1) / vp) if vp > 0 else float("nan")
    rel = np.hypot(relative_variance_se(q[..., None])[0], relative_variance_se(p[:, None])[0])
    comb.ratio, comb.ratio_se = r, float(abs(r) * rel)
    return comb
