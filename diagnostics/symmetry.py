"""Discrete symmetries: chains that sit in mirror solutions related by a relabelling (numpy core + thin
PyMC layer).

A model whose likelihood is unchanged when parameters (or blocks of them) swap labels — the two
components of ``y = A1·exp(−k1 t) + A2·exp(−k2 t)``, mixture components, exchangeable factors — has
one posterior mode per labelling. NUTS chains settle in different ones, so R-hat fails and every
verdict reads "not converged", although each parameter is pinned down *up to the relabelling*.

:func:`find_symmetry` (numpy) decides whether that is what happened, from two kinds of evidence:

1. **Draws** — per chain, the permutation within classes of exchangeable components (same
   transform) that maps its mean onto the reference chain's is found by a linear assignment on
   standardized distances; a cycle of it is kept only where the chains' means differ by at least
   ``min_shift`` within-chain SDs and the permutation removes most of that difference
   (``gap_ratio``). The draws are then relabelled one by one to the nearest labelling of the group
   the kept permutations generate (an iterated nearest-mean rule, as in Stephens 2000), and R-hat is
   recomputed: the chains must agree afterwards (every moved component ≤ ``rhat_max``), having
   disagreed before. The mirror solutions must also be **separate**: along the line joining the
   relabelled mean to its mirror image, the relabelled draws lie ``separation_min`` SDs or more
   from the midpoint. Otherwise the "modes" are one connected ridge through the fixed points of
   the permutation (p1·p2 = q passes through p1 = p2): no symmetry is claimed and the ridge
   analysis speaks instead.
2. **Model** — a ``check(permutation)`` callable evaluates the model's log-likelihood (and log
   prior) at posterior draws and at the same draws permuted; the permutation is a symmetry of the
   data only if the log-likelihood is unchanged up to rounding (``|Δ| ≤ rtol·(1 + |ℓ|)``).
   :func:`model_check` builds it from a PyMC model. Without a model no symmetry is claimed.

The verdict layer (:func:`bayesid.diagnose`) then diagnoses the relabelled draws and reports the
parameters as *identified up to relabelling*, names the symmetry ("(A1, k1) ↔ (A2, k2)") and the fix:
an ordering constraint (``k2 = k1 + Δ`` with ``Δ > 0``, or ``transform=pm.distributions.transforms.ordered``
on a vector).

Chains that switch labels *within* a chain (no between-chain disagreement) are not detected here;
the bimodality coefficient in the table flags them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Symmetry", "SymmetryResult", "find_symmetry", "model_check", "model_symmetry", "relabel_tree",
           "symmetry_label", "exchange_classes"]


@dataclass
class Symmetry:
    """One permutation of parameter components under which the likelihood is invariant.

    Attributes
    ----------
    permutation : ndarray of int (d,)
        Relabelled draw ``x'[..., j] = x[..., permutation[j]]``.
    moved : list of str
        Component names the permutation moves.
    blocks : list of tuple of str
        The blocks it exchanges, e.g. ``[("A1", "k1"), ("A2", "k2")]`` (for a longer cycle, in the order
        each block is sent to the next).
    label : str
        ``"(A1, k1) ↔ (A2, k2)"``.
    loglik_delta, logprior_delta : float
        Largest ``|Δ log-likelihood|`` and ``|Δ log prior|`` between the checked draws and their
        permuted copies (NaN when unchecked).
    n_checked : int
        Number of draws checked.
    prior_invariant : bool
        The prior is also invariant (the two labellings carry equal posterior mass).
    separation : float
        Distance of the relabelled draws from the midpoint to their mirror image, in SDs along the line
        joining the two (≥ ``separation_min``: separate mirror solutions).
    order_by : tuple of str
        The exchanged pair best separated in the relabelled draws, smaller value first (``("k1", "k2")``):
        the components to order.
    advice : str
    """

    permutation: np.ndarray
    moved: list
    blocks: list
    label: str
    loglik_delta: float = float("nan")
    logprior_delta: float = float("nan")
    n_checked: int = 0
    prior_invariant: bool = False
    separation: float = float("nan")
    order_by: tuple = ()
    advice: str = ""

    def __repr__(self):
        return f"Symmetry({self.label!r}, separation={self.separation:.1f})"


@dataclass
class SymmetryResult:
    """Outcome of :func:`find_symmetry`.

    Attributes
    ----------
    symmetries : list of Symmetry
        Accepted generators (model-checked, separated).
    explains : bool
        The chains disagreed (R-hat) and, relabelled, agree on every moved component.
    relabelled_unc, relabelled : ndarray (chains, draws, d) or None
        The draws relabelled to one labelling (natural ones only when given).
    labels : ndarray (chains, draws) of int
        Index into ``group`` of the relabelling applied to each draw.
    group : list of ndarray
        The permutations generated by ``symmetries`` (identity first).
    rhat_before, rhat_after : ndarray (d,)
    chain_labels : list of int
        Per chain, the group element applied to most of its draws (0: the reference labelling).
    rejected : list of (str, str)
        Candidate permutations and why they were rejected (likelihood changed, not separated…).
    names : list of str
    """

    symmetries: list = field(default_factory=list)
    explains: bool = False
    relabelled_unc: np.ndarray | None = field(default=None, repr=False)
    relabelled: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    group: list = field(default_factory=list, repr=False)
    rhat_before: np.ndarray | None = field(default=None, repr=False)
    rhat_after: np.ndarray | None = field(default=None, repr=False)
    chain_labels: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    names: list = field(default_factory=list, repr=False)

    @property
    def moved(self) -> list:
        """Components moved by any accepted symmetry, in component order."""
        m = {n for s in self.symmetries for n in s.moved}
        return [n for n in self.names if n in m]

    @property
    def label(self) -> str:
        return "; ".join(s.label for s in self.symmetries)

    @property
    def n_modes(self) -> int:
        """Number of distinct labellings the chains sat in."""
        return len(set(self.chain_labels)) if self.chain_labels else 0


def _rhat(q):
    import arviz_stats as azs

    q = np.asarray(q, float)
    if q.shape[0] < 2:
        return np.full(q.shape[-1], np.nan)
    return np.atleast_1d(azs.rhat(q, chain_axis=0, draw_axis=1))


def exchange_classes(transforms, exchangeable=None) -> list:
    """Class key per component (None: never exchanged): components with equal keys may swap labels.

    Parameters
    ----------
    transforms : list of str or None
        Unconstrained transform per component; only components with the same transform are compared
        (so the permutation acts the same on natural and unconstrained draws).
    exchangeable : list of bool, optional
        False for components that cannot be relabelled (e.g. coordinates of a dimension-changing
        transform).
    """
    out = []
    for i, tr in enumerate(transforms):
        ok = True if exchangeable is None else bool(exchangeable[i])
        out.append(("t", str(tr)) if ok else None)
    return out


def _cycles(perm):
    seen, out = set(), []
    for j in range(len(perm)):
        if j in seen or perm[j] == j:
            continue
        c, k = [], j
        while k not in seen:
            seen.add(k)
            c.append(k)
            k = int(perm[k])
        out.append(c)
    return out


def _chain_permutation(m_c, m_0, s, classes, min_shift, gap_ratio):
    """Permutation (within classes) taking chain mean ``m_c`` nearest to ``m_0``; cycles that do not move a
    clearly different component onto its mirror are reset to the identity."""
    from scipy.optimize import linear_sum_assignment

    d = len(m_0)
    perm = np.arange(d)
    keys = {}
    for i, k in enumerate(classes):
        if k is not None:
            keys.setdefault(k, []).append(i)
    for idx in keys.values():
        if len(idx) < 2:
            continue
        idx = np.array(idx)
        sc = np.sqrt(0.5 * (s[idx][:, None] ** 2 + s[idx][None, :] ** 2))
        cost = ((m_c[idx][None, :] - m_0[idx][:, None]) / sc) ** 2  # [target j, source i]
        rows, cols = linear_sum_assignment(cost)
        perm[idx[rows]] = idx[cols]

    def c2(j, i):
        return ((m_c[i] - m_0[j]) / np.sqrt(0.5 * (s[i] ** 2 + s[j] ** 2))) ** 2

    for cyc in _cycles(perm):
        ident = np.array([c2(j, j) for j in cyc])
        new = np.array([c2(j, perm[j]) for j in cyc])
        if ident.max() < min_shift**2 or new.sum() > gap_ratio * ident.sum():
            perm[cyc] = cyc
    return perm


def _closure(gens, d, cap=120):
    ident = tuple(range(d))
    group = [ident]
    seen = {ident}
    frontier = [ident]
    while frontier and len(group) < cap:
        nxt = []
        for g in frontier:
            for h in gens:
                k = tuple(np.asarray(g)[np.asarray(h)])
                if k not in seen:
                    seen.add(k)
                    group.append(k)
                    nxt.append(k)
        frontier = nxt
    return [np.array(g) for g in group]


def _relabel(q, group, mu, s):
    """Index of the group element bringing each draw nearest (standardized) to ``mu``."""
    C, N, d = q.shape
    flat = q.reshape(-1, d)
    cost = np.stack([(((flat[:, g] - mu) / s) ** 2).sum(axis=1) for g in group], axis=1)
    return np.argmin(cost, axis=1).reshape(C, N)


def _apply(q, group, labels):
    out = np.empty_like(q)
    for k, g in enumerate(group):
        sel = labels == k
        out[sel] = q[sel][:, g]
    return out


def symmetry_label(perm, names) -> tuple[list, str]:
    """Blocks and a name for a permutation: ``"(A1, k1) ↔ (A2, k2)"``, ``"a ↔ b"``,
    ``"(w[0], m[0]) → (w[1], m[1]) → (w[2], m[2]) → (w[0], m[0])"``."""
    cycles = _cycles(perm)
    by_len = {}
    for c in cycles:
        start = int(np.argmin(c))
        c = c[start:] + c[:start]
        by_len.setdefault(len(c), []).append(c)
    parts, blocks_all = [], []
    for L in sorted(by_len):
        cs = sorted(by_len[L], key=lambda c: c[0])
        # block t collects the t-th element of every parallel cycle (the labels swap together)
        blocks = [tuple(names[c[t]] for c in cs) for t in range(L)]
        blocks_all += blocks
        fmt = [b[0] if len(b) == 1 else "(" + ", ".join(b) + ")" for b in blocks]
        parts.append(f"{fmt[0]} ↔ {fmt[1]}" if L == 2 else " → ".join(fmt + [fmt[0]]))
    return blocks_all, "; ".join(parts)


def find_symmetry(posterior_unc, names, classes, check=None, posterior=None, rhat_max: float = 1.01,
                  min_shift: float = 3.0, gap_ratio: float = 0.1, separation_min: float = 3.0,
                  target=None, iterations: int = 10, barrier_min: float = 5.0) -> SymmetryResult:
    """Do the chains sit in mirror solutions related by a relabelling of parameters?

    Parameters
    ----------
    posterior_unc : ndarray (chains, draws, d)
        Unconstrained posterior draws.
    names : list of str
        Component names.
    classes : list
        Per component, a hashable class key or None (:func:`exchange_classes`).
    check : callable, optional
        ``check(perm) -> dict`` with ``loglik_delta``, ``logprior_delta`` (largest absolute changes at
        the checked draws), ``loglik_scale`` (largest ``|ℓ|``), ``n`` and optionally ``barrier`` (median
        drop of the log-likelihood from a draw to the midpoint, in unconstrained coordinates, between it
        and its mirror image); e.g. :func:`model_check`. Without it nothing is accepted (a symmetry is
        never claimed from draws alone).
    posterior : ndarray (chains, draws, d), optional
        Natural-scale draws, relabelled alongside.
    rhat_max : float
    min_shift : float
        Chain means of a moved component must differ by this many within-chain SDs.
    gap_ratio : float
        The permutation must leave at most this fraction of the squared standardized mean difference.
    separation_min : float
        The mirror solutions must lie this many SDs from their midpoint (separate modes, not a ridge).
    target : ndarray (d,), optional
        Unconstrained values (e.g. the truth) the relabelled draws should be closest to; default: the
        labelling of chain 0.
    iterations : int
        Rounds of the per-draw nearest-mean relabelling.
    barrier_min : float
        A symmetry whose mirror solutions are joined by a path along which the log-likelihood drops by less
        than this (at the midpoint) is a connected ridge, not separate modes: rejected. ``e^{-5}``: the
        midpoint is as plausible as a draw two to three SDs out.

    Returns
    -------
    SymmetryResult
    """
    q = np.asarray(posterior_unc, float)
    C, N, d = q.shape
    res = SymmetryResult(names=list(names))
    res.rhat_before = _rhat(q)
    if C < 2 or check is None:
        return res
    m = q.mean(axis=1)
    s = np.sqrt(q.var(axis=1, ddof=1).mean(axis=0))
    s = np.where(s > 0, s, 1.0)
    cand = {}
    for c in range(1, C):
        g = _chain_permutation(m[c], m[0], s, classes, min_shift, gap_ratio)
        if (g != np.arange(d)).any():
            cand.setdefault(tuple(g), []).append(c)
    gens = []
    rtol = 1e-8
    for g in cand:
        g_arr = np.array(g)
        # a permutation and its inverse are the same symmetry
        if any(tuple(np.argsort(h.permutation)) == g or tuple(h.permutation) == g for h in gens):
            continue
        blocks, label = symmetry_label(g_arr, names)
        ev = check(g_arr)
        tol = rtol * (1.0 + ev.get("loglik_scale", 0.0))
        if not ev["loglik_delta"] <= tol:
            res.rejected.append((label, f"the log-likelihood changes by up to {ev['loglik_delta']:.3g} at "
                                        f"permuted draws: not a symmetry of the model"))
            continue
        barrier = ev.get("barrier", np.nan)
        if np.isfinite(barrier) and barrier < barrier_min:
            res.rejected.append((label, f"the log-likelihood drops by only {barrier:.2g} (median) at the midpoint "
                                        "between a draw and its mirror image: the two solutions are connected "
                                        "(one ridge through the swap's fixed points), not separate modes"))
            continue
        sym = Symmetry(g_arr, [names[j] for j in range(d) if g_arr[j] != j], blocks, label,
                       loglik_delta=float(ev["loglik_delta"]),
                       logprior_delta=float(ev.get("logprior_delta", np.nan)), n_checked=int(ev.get("n", 0)))
        sym.prior_invariant = bool(ev.get("logprior_delta", np.inf) <= rtol * (1.0 + ev.get("logprior_scale", 0.0)))
        gens.append(sym)
    if not gens:
        return res
    group = _closure([x.permutation for x in gens], d)
    # start from the chain-level labelling, then refine draw by draw
    labels = np.zeros((C, N), int)
    for g, chains in cand.items():
        k = next((i for i, h in enumerate(group) if tuple(h) == g), None)
        if k is not None:
            labels[chains] = k
    for _ in range(iterations):
        r = _apply(q, group, labels)
        mu = r.reshape(-1, d).mean(axis=0)
        sd = r.reshape(-1, d).std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        new = _relabel(q, group, mu, sd)
        if (new == labels).all():
            break
        labels = new
    r = _apply(q, group, labels)
    mu = r.reshape(-1, d).mean(axis=0)
    sd = r.reshape(-1, d).std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    best = 0
    if target is not None:
        t = np.asarray(target, float)
        best = int(np.argmin([(((mu[g] - t) / sd) ** 2)[np.isfinite(t)].sum() for g in group]))
    elif len(group) == 2:
        # one swap: the labelling in which its best-separated pair increases in component order (k1 < k2),
        # so that the advice reads as the modeller would write it
        g = group[1]
        pairs = [c for c in _cycles(g) if len(c) == 2]
        if pairs:
            a, b = max(pairs, key=lambda c: abs(mu[c[0]] - mu[c[1]]) / np.hypot(sd[c[0]], sd[c[1]]))
            a, b = min(a, b), max(a, b)
            best = int(mu[a] > mu[b])
    if best:
        # compose: every draw gets one more relabelling by group[best]
        comp = {tuple(g): k for k, g in enumerate(group)}
        labels = np.vectorize(lambda k: comp.get(tuple(group[k][group[best]]), k))(labels)
        r = _apply(q, group, labels)
    res.labels = labels
    res.group = group
    res.relabelled_unc = r
    if posterior is not None:
        res.relabelled = _apply(np.asarray(posterior, float), group, labels)
    res.rhat_after = _rhat(r)
    res.chain_labels = [int(np.bincount(labels[c], minlength=len(group)).argmax()) for c in range(C)]
    flat = r.reshape(-1, d)
    mu = flat.mean(axis=0)
    sd = flat.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    nat = res.relabelled.reshape(-1, d) if res.relabelled is not None else flat
    for sym in gens:
        g = sym.permutation
        u = (mu - mu[g]) / sd
        if np.linalg.norm(u) == 0:
            sym.separation = 0.0
            continue
        u = u / np.linalg.norm(u)
        p = ((flat - 0.5 * (mu + mu[g])) / sd) @ u
        sym.separation = float(p.mean() / p.std()) if p.std() > 0 else float("inf")
        sym.order_by = _order_pair(sym, nat, names)
        sym.advice = _advice(sym)
    for sym in list(gens):
        if not sym.separation >= separation_min:
            res.rejected.append((sym.label, f"the mirror solutions are not separate (the draws lie "
                                            f"{sym.separation:.1f} SD from the midpoint, < {separation_min:g}): "
                                            "one connected ridge, not two modes"))
            gens.remove(sym)
    res.symmetries = gens
    if not gens:
        res.group, res.labels, res.relabelled_unc, res.relabelled = [], None, None, None
        return res
    moved = [j for j in range(d) if any(x.permutation[j] != j for x in gens)]
    before_bad = np.array([not res.rhat_before[j] <= rhat_max for j in moved])
    after_ok = np.array([res.rhat_after[j] <= rhat_max for j in moved])
    res.explains = bool(before_bad.any() and after_ok.all())
    return res


def _order_pair(sym, nat, names):
    """The exchanged pair (one position of a 2-cycle) best separated in the relabelled natural draws."""
    best, pair = -1.0, ()
    g = sym.permutation
    for c in _cycles(g):
        if len(c) != 2:
            continue
        a, b = c
        diff = nat[:, a] - nat[:, b]
        sep = abs(diff.mean()) / (diff.std() + 1e-300)
        if sep > best:
            best = sep
            lo, hi = (a, b) if diff.mean() < 0 else (b, a)
            pair = (names[lo], names[hi])
    return pair


def _base(name):
    return name.split("[")[0]


def _advice(sym) -> str:
    if not sym.order_by:
        return ("keep one labelling: constrain the blocks to an order (e.g. an ordering transform), or add "
                "information that tells them apart")
    lo, hi = sym.order_by
    if _base(lo) == _base(hi) and "[" in lo:
        return (f"keep one labelling by ordering {_base(lo)}: give it transform=pm.distributions.transforms.ordered "
                f"(with an initval in increasing order), so that {lo} < {hi}; or add information that tells the "
                "blocks apart")
    return (f"keep one labelling by ordering them: write {hi} = {lo} + Δ with Δ > 0 (e.g. Δ ~ HalfNormal), or put "
            f"{lo} and {hi} in one vector with transform=pm.distributions.transforms.ordered; or add information "
            "that tells the blocks apart")


# ---------------------------------------------------------------------------------------------------
# Thin PyMC / DataTree layer
# ---------------------------------------------------------------------------------------------------


def model_check(model, tree, draws, n_points: int = 32, random_seed=0):
    """``check(perm)`` for :func:`find_symmetry`: the model's log-likelihood and log prior (natural scale,
    no Jacobian) at ``n_points`` posterior draws and at the same draws with the diagnosed components
    permuted. Other free parameters keep their drawn values.

    Parameters
    ----------
    model : pymc.Model
    tree : xarray.DataTree
        With a ``posterior`` group holding every free RV.
    draws : ParameterDraws
        The diagnosed components (``index`` maps each to its variable and flat position).
    """
    from pymc.model.transform.conditioning import remove_value_transforms

    from bayesid.vectorize import compile_vectorized, evaluate_at_draws

    post = tree["posterior"].to_dataset()
    umodel = remove_value_transforms(model)
    values = list(umodel.value_vars)
    rv_names = [umodel.values_to_rvs[v].name for v in values]
    missing = [n for n in rv_names if n not in post.data_vars]
    if missing:
        return None
    lik = umodel.logp(vars=list(umodel.observed_RVs), sum=True) if umodel.observed_RVs else None
    pri = umodel.logp(vars=list(umodel.free_RVs), sum=True)
    if lik is None:
        return None
    fn = compile_vectorized(values, [lik, pri], mode="FAST_COMPILE")
    C, N = draws.posterior.shape[:2]
    rng = np.random.default_rng(random_seed)
    rows = np.sort(rng.choice(C * N, size=min(n_points, C * N), replace=False))
    base = {}
    for n, v in zip(rv_names, values):
        da = post[n].transpose("chain", "draw", ...)
        base[n] = np.asarray(da.values).reshape(C * N, *da.shape[2:])[rows].astype(v.dtype)
    x = draws.posterior_flat[rows]
    xu = draws.posterior_unc_flat[rows]
    inverse = {None: lambda u: u, "log": np.exp, "logodds": lambda u: 1.0 / (1.0 + np.exp(-u))}

    def evaluate(arrs):
        out = evaluate_at_draws(fn, [arrs[n] for n in rv_names])
        return np.asarray(out[0], float).reshape(-1), np.asarray(out[1], float).reshape(-1)

    l0, p0 = evaluate(base)

    def put(values, perm):
        arrs = {n: a.copy() for n, a in base.items()}
        for j, name in enumerate(draws.names):
            var, k = draws.index[name]
            if perm[j] == j:
                continue
            if var not in arrs:
                return None
            flat = arrs[var].reshape(len(rows), -1)
            flat[:, k] = values[:, j]
            arrs[var] = flat.reshape(arrs[var].shape)
        return arrs

    def check(perm):
        arrs = put(x[:, perm], perm)
        if arrs is None:
            return {"loglik_delta": np.inf, "logprior_delta": np.inf, "n": 0}
        l1, p1 = evaluate(arrs)
        barrier = np.nan
        moved = [j for j in range(len(perm)) if perm[j] != j]
        if all(draws.transforms[j] in inverse for j in moved):
            mid = x.copy()
            for j in moved:
                mid[:, j] = inverse[draws.transforms[j]](0.5 * (xu[:, j] + xu[:, perm[j]]))
            lm, _ = evaluate(put(mid, perm))
            with np.errstate(invalid="ignore"):
                drop = np.where(np.isfinite(lm), l0 - lm, np.inf)
            barrier = float(np.median(drop))
        with np.errstate(invalid="ignore"):
            dl = np.abs(l1 - l0)
            dp = np.abs(p1 - p0)
        dl = np.where(np.isfinite(dl), dl, np.inf)
        dp = np.where(np.isfinite(dp), dp, np.inf)
        return {"loglik_delta": float(dl.max()), "logprior_delta": float(dp.max()), "barrier": barrier,
                "loglik_scale": float(np.abs(l0[np.isfinite(l0)]).max(initial=0.0)),
                "logprior_scale": float(np.abs(p0[np.isfinite(p0)]).max(initial=0.0)), "n": int(len(rows))}

    return check


def model_symmetry(tree, draws, model, rhat_max: float = 1.01, target=None, random_seed=0) -> SymmetryResult | None:
    """:func:`find_symmetry` on a DataTree's draws with the model's likelihood as the check.

    Returns None when the model's log density cannot be evaluated at the draws (then no symmetry is
    claimed)."""
    exch = [draws.index[n][0] == v for n, v in zip(draws.names, draws.variables)]
    classes = exchange_classes(draws.transforms, exch)
    keys = [k for k in classes if k is not None]
    if len(keys) == len(set(keys)):
        return SymmetryResult(names=list(draws.names))  # nothing that could be exchanged
    try:
        check = model_check(model, tree, draws, random_seed=random_seed)
    except Exception:  # noqa: BLE001 - a graph that cannot be vectorised: no model evidence, no claim
        check = None
    if check is None:
        return None
    return find_symmetry(draws.posterior_unc, list(draws.names), classes, check=check, posterior=draws.posterior,
                         rhat_max=rhat_max, target=target)


def relabel_tree(tree, draws, result: SymmetryResult):
    """A copy of ``tree`` with the posterior (and ``unconstrained_posterior``, ``log_prior``) draws of the
    diagnosed components relabelled as in ``result``. ``log_likelihood`` is kept: it was checked to be
    invariant. ``tree.attrs["bayesid_relabelled"]`` names the symmetry."""
    import json

    import xarray as xr

    out = tree.copy()
    C, N, d = draws.posterior.shape
    recorded = json.loads(tree.attrs.get("bayesid_parameters", "null") or "null") or []
    value_of = {p["name"]: p["value_name"] for p in recorded}
    labels, group = result.labels, result.group

    def permuted(ds, var_of, new_values):
        ds = ds.copy()
        for var in dict.fromkeys(var_of.values()):
            if var not in ds.data_vars:
                continue
            da = ds[var]
            other = [x for x in da.dims if x not in ("chain", "draw")]
            da_t = da.transpose("chain", "draw", *other)
            vals = np.array(da_t.values, dtype=float).reshape(C, N, -1)
            for j, n in enumerate(draws.names):
                if var_of.get(n) == var:
                    vals[..., draws.index[n][1]] = new_values[..., j]
            ds[var] = da_t.copy(data=vals.reshape(da_t.shape).astype(da.dtype)).transpose(*da.dims)
        return ds

    nat_var = {n: draws.index[n][0] for n in draws.names}
    post = permuted(tree["posterior"].to_dataset(), nat_var, result.relabelled)
    out["posterior"] = xr.DataTree(post)
    if "unconstrained_posterior" in tree.children:
        unc_var = {n: value_of.get(draws.index[n][0], draws.index[n][0]) for n in draws.names}
        upost = permuted(tree["unconstrained_posterior"].to_dataset(), unc_var, result.relabelled_unc)
        out["unconstrained_posterior"] = xr.DataTree(upost)
    if "log_prior" in tree.children:
        lp = tree["log_prior"].to_dataset()
        ok = all(s.prior_invariant for s in result.symmetries) and all(
            nat_var[n] in lp.data_vars and lp[nat_var[n]].shape == tree["posterior"][nat_var[n]].shape
            for n in draws.names)
        if ok:
            vals = np.stack([np.asarray(lp[nat_var[n]].transpose("chain", "draw", ...).values).reshape(C, N, -1)
                             [..., draws.index[n][1]] for n in draws.names], axis=-1)
            out["log_prior"] = xr.DataTree(permuted(lp, nat_var, _apply(vals, group, labels)))
        else:
            del out["log_prior"]
    out.attrs["bayesid_relabelled"] = result.label
    return out
