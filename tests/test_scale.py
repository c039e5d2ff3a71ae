"""diagnose at scale: the fast paths (directions and combinations named on first read, the complement's
echelon form in O(d k²), blocks by connected components, combinations measured in one product) give
exactly what the eager reference gives — the same table, verdicts, labels, loadings, combinations and
summary — on a small hierarchical model and on the ridge toy y ~ N(a + b, 1) (with its control).

The reference below is the construction before the speed work, kept as the oracle: every direction
built and named at once, the complement from a full SVD put in echelon form by ``_rref``, the blocks
by the pairwise search, each combination measured on its own (``variance_ratio``), names from the
scalar ``_snap``. Strings, verdicts and table values must be equal exactly; combination coefficients
and ratios to 1e-9 (one matrix product instead of many vector products reorders the sums).

Known answer of the ridge toy (a, b ~ N(0, 1), n observations y_i ~ N(a + b, 1)): the likelihood
depends on a + b only, so a − b keeps its prior variance (ratio 1) and a + b, prior variance 2,
has posterior variance 1/(n + 1/2): ratio 1/(2n + 1). Control: n more observations of a − b identify
both parameters (no ridge, no combination).
"""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import bayesid
from bayesid.diagnostics import combinations as cmb
from bayesid.diagnostics import diagnosis as dgn
from bayesid.diagnostics.ridges import DirectionSet
from bayesid.diagnostics.verdicts import Verdict, direction_verdict

# ------------------------------------------------------------------ the eager reference (the oracle)


def _ref_name(coefficients, transforms, snap_tol=0.08, drop_tol=1e-6):
    items = [(k, float(v)) for k, v in coefficients.items() if abs(v) > drop_tol]
    if not items:
        return "0"
    big = max(abs(v) for _, v in items)
    sgn = 1.0 if items[0][1] > 0 else -1.0
    items = [(k, sgn * v / big) for k, v in items]
    snapped = [(k, cmb._snap(v, snap_tol)) for k, v in items]
    if all(s is not None for _, s in snapped):
        den = int(np.lcm.reduce([s.denominator for _, s in snapped]))
        terms = [(k, s * den) for k, s in snapped]
    else:
        terms = items
    if all(transforms.get(k) == "log" for k, _ in terms):
        num = [(k, c) for k, c in terms if c > 0]
        den = [(k, -c) for k, c in terms if c < 0]

        def prod(ts):
            return "·".join(cmb._strip_log(k, "log") if c == 1 else f"{cmb._strip_log(k, 'log')}^{cmb._fmt_num(c)}"
                            for k, c in ts)

        if not num:
            return f"1/({prod(den)})" if len(den) > 1 else f"1/{prod(den)}"
        if not den:
            return prod(num)
        return f"{prod(num)}/{prod(den)}" if len(den) == 1 else f"{prod(num)}/({prod(den)})"
    out = ""
    for i, (k, c) in enumerate(terms):
        tr = transforms.get(k)
        nm = f"log({cmb._strip_log(k, tr)})" if tr == "log" else (k if tr is None else f"{tr}({cmb._strip_log(k, tr)})")
        mag = abs(c)
        coef = "" if abs(float(mag) - 1.0) < 1e-9 else \
            f"{cmb._fmt_num(mag if isinstance(mag, Fraction) else float(mag))}·"
        out += (("-" if c < 0 else "") if i == 0 else (" - " if c < 0 else " + ")) + coef + nm
    return out


def _ref_blocks(norm, involved, coupling_tol):
    q, _ = np.linalg.qr(norm[involved])
    P = q @ q.T
    dg = np.sqrt(np.clip(np.diag(P), 1e-300, None))
    C = np.abs(P) / np.outer(dg, dg)
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


def _ref_combinations(ridges, names, transforms, loading_tol=0.15, coupling_tol=0.1, drop_tol=0.05):
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
    for block in _ref_blocks(norm, involved, coupling_tol):
        u, s, _ = np.linalg.svd(norm[block], full_matrices=True)
        rank = int(np.sum(s > 1e-8 * max(1.0, s.max(initial=0.0))))
        null = u[:, rank:]
        if null.shape[1] == 0:
            continue
        for row in cmb._rref(null.T)[0]:
            big = np.abs(row).max()
            coefs = {names[block[i]]: float(row[i]) for i in range(len(block)) if abs(row[i]) > drop_tol * big}
            if len(coefs) >= 2:
                out.append(cmb.Combination(_ref_name(coefs, trmap), coefs))
    return out


def _ref_direction(j, ds, names, trmap, th, source="draws"):
    disp = {n: float(ds.displacements[i, j]) for i, n in enumerate(names) if abs(ds.displacements[i, j]) > 1e-3}
    coef = {n: float(ds.coefficients[i, j]) for i, n in enumerate(names) if abs(ds.coefficients[i, j]) > 1e-3}
    ratio = float(ds.ratios[j])
    verdict = direction_verdict(ratio, th)
    big = {k: v for k, v in (disp if verdict == Verdict.NOT_IDENTIFIED else coef).items() if abs(v) >= 0.15}
    return dgn.Direction(ds.vectors[:, j], disp, coef, ratio, float(ds.ratio_se[j]), verdict,
                         _ref_name(big, trmap), source)


def _ref_ratios(coefficients, names, prior_unc, posterior_unc):
    return np.array([cmb.variance_ratio(c, names, prior_unc, posterior_unc) for c in coefficients])


def _eager(monkeypatch, tree, **kw):
    with monkeypatch.context() as m:
        m.setattr(dgn, "_make_direction", _ref_direction)
        m.setattr(dgn, "combinations_orthogonal_to", _ref_combinations)
        m.setattr(dgn, "variance_ratios", _ref_ratios)
        return bayesid.diagnose(tree, **kw)


def _same_combinations(xs, ys):
    assert [c.name for c in xs] == [c.name for c in ys]
    for x, y in zip(xs, ys):
        assert list(x.coefficients) == list(y.coefficients) and x.source == y.source
        np.testing.assert_allclose(list(y.coefficients.values()), list(x.coefficients.values()), rtol=0, atol=1e-9)
        assert abs(x.ratio - y.ratio) <= 1e-9 * abs(x.ratio) or np.isnan(x.ratio) and np.isnan(y.ratio)
        assert x.parameters == y.parameters


def _same_directions(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        assert (x.label, x.verdict, x.source, x.parameters) == (y.label, y.verdict, y.source, y.parameters)
        assert x.loadings == y.loadings and x.coefficients == y.coefficients
        assert x.ratio == y.ratio and (x.ratio_se == y.ratio_se or np.isnan(x.ratio_se) and np.isnan(y.ratio_se))
        np.testing.assert_array_equal(x.vector, y.vector)


def assert_same_diagnosis(ref, fast):
    assert {type(d) for d in ref.directions} == {dgn.Direction}  # the reference really ran
    assert {type(d) for d in fast.directions} == {dgn._DeferredDirection}
    pd.testing.assert_frame_equal(ref.table, fast.table, check_exact=True)
    _same_directions(ref.directions, fast.directions)
    _same_directions(ref.fisher_directions, fast.fisher_directions)
    _same_directions(ref.ridges, fast.ridges)
    _same_combinations(ref.combinations, fast.combinations)
    _same_combinations(ref.fisher_combinations, fast.fisher_combinations)
    assert ref.summary() == fast.summary()
    assert fast.consistency_problems() == [] == ref.consistency_problems()


# ------------------------------------------------------------------------------------------ models


def _ridge_toy(control: bool, n: int = 20, seed: int = 3):
    rng = np.random.default_rng(seed)
    with pm.Model() as m:
        a = pm.Normal("a", 0, 1)
        b = pm.Normal("b", 0, 1)
        pm.Normal("y", a + b, 1.0, observed=0.4 + rng.normal(size=n))
        if control:
            pm.Normal("y2", a - b, 1.0, observed=-0.2 + rng.normal(size=n))
    return m


def _hierarchical(groups: int = 12, per_group: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.arange(groups), per_group)
    y = 0.5 + 0.8 * rng.normal(size=groups)[idx] + rng.normal(size=groups * per_group)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfNormal("tau", 2.5)
        sigma = pm.HalfNormal("sigma", 2.5)
        z = pm.Normal("z", 0, 1, shape=groups)
        pm.Normal("y", mu + tau * z[idx], sigma, observed=y)
    return m


def _fit(m, seed=0, draws=500):
    return bayesid.fit(m, draws=draws, tune=500, chains=2, random_seed=seed, progressbar=False, prior_draws=2000)


@pytest.mark.parametrize("control", [False, True], ids=["ridge", "control"])
def test_ridge_toy_fast_equals_reference_and_known_answer(monkeypatch, control):
    m = _ridge_toy(control)
    tree = _fit(m)
    fast = bayesid.diagnose(tree, model=m, fisher_draws=8)
    ref = _eager(monkeypatch, tree, model=m, fisher_draws=8)
    assert_same_diagnosis(ref, fast)
    assert fast.convergence.ok, fast.convergence.problems
    if control:  # negative control: both identified, nothing named
        assert set(fast.verdicts.values()) == {"identified"}
        assert fast.ridges == [] and fast.combinations == []
        return
    assert set(fast.verdicts.values()) == {"identified only in combination"}
    assert [r.label for r in fast.ridges] == ["a - b"]
    r = fast.ridges[0]
    assert abs(r.ratio - 1.0) < 4 * r.ratio_se, (r.ratio, r.ratio_se)
    (c,) = fast.combinations
    assert c.name == "a + b"
    exact = 1.0 / (2 * 20 + 1)
    rel = np.sqrt(2.0 / fast.table["ess_bulk"].min() + 2.0 / fast.draws.prior.shape[0])  # Gaussian variance MCSE
    assert abs(c.ratio - exact) < 4 * exact * rel, (c.ratio, exact)


def test_hierarchical_fast_equals_reference(monkeypatch):
    m = _hierarchical()
    tree = _fit(m, draws=300)
    fast = bayesid.diagnose(tree, model=m, fisher_draws=8)
    ref = _eager(monkeypatch, tree, model=m, fisher_draws=8)
    assert_same_diagnosis(ref, fast)
    assert len(fast.directions) == 15


# ---------------------------------------------------- the combination search on its own (numpy only)


def _ridge_sets():
    rng = np.random.default_rng(0)
    names = [f"t{i}" for i in range(40)]
    yield rng.normal(size=(40, 6)), names  # one dense block, fast echelon route
    blocks = np.zeros((40, 5))  # five separate ridges on disjoint groups: several blocks
    for j in range(5):
        blocks[8 * j: 8 * j + 3, j] = rng.normal(size=3)
    yield blocks, names
    lead0 = rng.normal(size=(40, 3))
    lead0[-3:, 1:] = 0.0  # the last rows move along one ridge only: the echelon pivots are not the
    yield lead0, names   # leading columns (reference route)
    dep = rng.normal(size=(40, 2))
    yield np.column_stack([dep, dep @ [1.0, -2.0]]), names  # rank-deficient ridge set (reference route)
    yield np.array([[1.0], [-1.0], [0.0]]), ["a", "b", "c"]  # a − b
    yield np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 2.0]]), ["a_log__", "b_log__", "c", "d"]


@pytest.mark.parametrize("case,fast_route", [(0, True), (1, False), (2, False), (3, False), (4, True), (5, False)])
def test_orthogonal_combinations_equal_reference(monkeypatch, case, fast_route):
    ridges, names = list(_ridge_sets())[case]
    trs = [("log" if n.endswith("_log__") else None) for n in names]
    ref = _ref_combinations(ridges, names, trs)
    calls, rref = [], cmb._rref
    monkeypatch.setattr(cmb, "_rref", lambda m, tol=1e-9: (calls.append(1), rref(m, tol))[1])
    fast = cmb.combinations_orthogonal_to(ridges, names, trs)
    assert len(fast) > 0 and (not calls) == fast_route
    _same_combinations(ref, fast)
    prior = np.random.default_rng(1).normal(size=(500, len(names)))
    post = np.random.default_rng(2).normal(0, 0.3, size=(2, 200, len(names)))
    np.testing.assert_allclose(cmb.variance_ratios([c.coefficients for c in fast], names, prior, post),
                               _ref_ratios([c.coefficients for c in ref], names, prior, post), rtol=1e-12)


def test_names_match_reference_on_random_coefficients():
    rng = np.random.default_rng(0)
    pool = ["a", "b", "c_log__", "d_log__[2]", "e_logodds__", "f"]
    simple = [1, -1, 2, -2, 0.5, -0.5, 1 / 3, 2 / 3, 3, 1.5, -1.04]
    for _ in range(3000):
        ks = list(rng.choice(pool, size=rng.integers(1, 6), replace=False))
        trs = {k: "log" if "_log__" in k else "logodds" if "logodds" in k else None for k in ks}
        if rng.random() < 0.3:
            trs = dict.fromkeys(ks, "log")
        if rng.random() < 0.6:
            v = rng.choice(simple, size=len(ks)) * rng.choice([1, 0.37, 5])
        else:
            v = rng.normal(size=len(ks))
        coefs = dict(zip(ks, v.tolist()))
        assert cmb.name_combination(coefs, trs) == _ref_name(coefs, trs), coefs


def test_deferred_direction_reads_and_writes_like_a_direction():
    disp = np.array([[1.0, 1.0], [-1.0, 1.0]])
    ds = DirectionSet(np.array([0.98, 0.01]), np.eye(2), disp, disp.copy(), np.array([0.03, 0.001]))
    th = dgn.Thresholds()
    tr = {"a": None, "b": None}
    d0, d1 = (dgn._make_direction(j, ds, ["a", "b"], tr, th) for j in range(2))
    assert isinstance(d0, dgn.Direction)
    assert (d0.label, d0.loadings, d1.label) == ("a - b", {"a": 1.0, "b": -1.0}, "a + b")
    assert repr(d1) == "Direction('a + b', ratio=0.010, identified, draws)"
    d0.label = "renamed"
    assert d0.label == "renamed"
    c = cmb.combinations_orthogonal_to(ds.displacements[:, :1], ["a", "b"], [None, None])[0]
    assert isinstance(c, cmb.Combination) and repr(c).startswith("Combination('a + b'")
    c.name = "s"
    assert c.name == "s"
    # copies and pickles (the executor ships results with cloudpickle) name the same, built or not
    d2 = dgn._make_direction(1, ds, ["a", "b"], tr, th)
    c2 = cmb.combinations_orthogonal_to(ds.displacements[:, :1], ["a", "b"], [None, None])[0]
    for x in (d2, c2, d0):
        y = pickle.loads(pickle.dumps(x))
        assert (y.label, y.loadings) == (x.label, x.loadings) if x is not c2 else y.name == x.name == "a + b"
