"""Turn a DataTree's prior and posterior groups into aligned draw matrices.

The numerical diagnostics work on plain arrays: ``prior`` of shape ``(n_prior, d)`` and ``posterior``
of shape ``(chains, draws, d)``, in natural and in unconstrained coordinates, with one column per
scalar parameter component. This module is the thin layer between ``xarray.DataTree`` and them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from bayesid.errors import BadInputError, BayesidError

__all__ = ["ParameterDraws", "extract_draws", "check_truth", "fisher_precheck", "MissingGroupError", "BadDrawsError",
           "UnknownVariableError", "MIN_DRAWS", "CONSTANT_RTOL"]

MIN_DRAWS = 100  # fewest posterior draws (all chains) for a variance ratio with ~14 % relative error

#: A prior component whose standard deviation is below ``CONSTANT_RTOL · max(|mean|, tiny)`` is a
#: constant up to rounding (e.g. ``Normal(1, 1e-16)``): its variance ratios are rounding noise divided by
#: rounding noise, so it is left out with a note. 1e-9 is ten million ulps of float64 and far below
#: any real prior's relative spread.
CONSTANT_RTOL = 1e-9


class MissingGroupError(BayesidError):
    """The DataTree lacks a group the diagnostics need."""


class BadDrawsError(BayesidError):
    """Draws that cannot be diagnosed (NaN, discrete, too few...)."""


class UnknownVariableError(BadInputError):
    """A variable name (``var_names``, ``truth``) that the DataTree does not have."""


@dataclass
class ParameterDraws:
    """Aligned prior and posterior draws, one column per scalar parameter component.

    Attributes
    ----------
    names : list of str
        Natural (constrained) component names, e.g. ``"a"``, ``"theta[2]"``.
    unconstrained_names : list of str
        The same components in unconstrained coordinates, e.g. ``"a"``, ``"b_log__"``.
    transforms : list of str or None
        Per component: ``None`` (identity), ``"log"``, ``"logodds"``, ``"interval"``...
    variables : list of str
        The variable each component belongs to.
    prior, prior_unc : ndarray, shape (n_prior, d)
    posterior, posterior_unc : ndarray, shape (chains, draws, d)
    """

    names: list
    unconstrained_names: list
    transforms: list
    variables: list
    prior: np.ndarray
    posterior: np.ndarray
    prior_unc: np.ndarray
    posterior_unc: np.ndarray
    index: dict = field(default_factory=dict)  # component name -> (variable, flat position in it)
    notes: list = field(default_factory=list)  # what was left out or dropped, and why
    n_prior_dropped: int = 0  # prior draws dropped for non-finite unconstrained coordinates

    @property
    def d(self) -> int:
        return len(self.names)

    @property
    def posterior_flat(self) -> np.ndarray:
        return self.posterior.reshape(-1, self.d)

    @property
    def posterior_unc_flat(self) -> np.ndarray:
        return self.posterior_unc.reshape(-1, self.d)


_HOW_TO_PRIOR = (
    "bayesid.fit(model) adds it; with your own PyMC run add "
    "`tree['prior'] = pm.sample_prior_predictive(draws=4000, model=model).prior` "
    "(and for a hand-built tree, a 'prior' group of draws with the same variables as 'posterior')."
)


def _group(tree, name):
    if name not in tree.children:
        if name == "prior":
            raise MissingGroupError(f"The DataTree has no 'prior' group, which contraction, overlap and "
                                    f"ridge detection compare against. {_HOW_TO_PRIOR}")
        raise MissingGroupError(f"The DataTree has no {name!r} group; groups present: {list(tree.children)}.")
    return tree[name].to_dataset()


def _stack(ds: xr.Dataset, var: str, sample_dims) -> tuple[np.ndarray, list]:
    da = ds[var]
    other = [d for d in da.dims if d not in sample_dims]
    da = da.transpose(*sample_dims, *other)
    vals = np.asarray(da.values)
    lead = vals.shape[: len(sample_dims)]
    if not other:
        return vals.reshape(*lead, 1), [()]
    labels = [da[d].values if d in da.coords else np.arange(da.sizes[d]) for d in other]
    idx = list(np.ndindex(*[da.sizes[d] for d in other]))
    return vals.reshape(*lead, len(idx)), [tuple(labels[k][i[k]] for k in range(len(i))) for i in idx]


def _component_name(var, ix):
    if ix == ():
        return var
    return f"{var}[{','.join(str(v) for v in ix)}]"


def _check_values(arr, var, group):
    if arr.dtype.kind in "iub":
        raise BadDrawsError(
            f"{var!r} in the {group} group is discrete ({arr.dtype}). bayesid's diagnostics are for "
            "continuous parameters: marginalize discrete ones (pymc_extras.marginalize) or pass "
            "var_names= without them."
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        raise BadDrawsError(
            f"{int(bad.sum())} NaN/inf draw(s) of {var!r} in the {group} group. Non-finite draws usually "
            "mean a failed sampler or a bad transform; refit (check divergences) or drop those draws "
            "explicitly before diagnosing."
        )


def _sample_dims(ds):
    dims = ds.attrs.get("sample_dims")
    if dims:
        return list(dims)
    return [d for d in ("chain", "draw") if d in ds.dims]


def _candidates(tree, post, prior, model):
    """Default parameters: free RVs (recorded by bayesid.fit, from ``model``, or the tree's ``log_prior``
    group), else every variable in both groups; without Deterministics and PyMC-imputed observations.
    Returns ``(names, notes)``."""
    notes = []
    both = [v for v in post.data_vars if v in prior.data_vars]
    recorded = json.loads(tree.attrs.get("bayesid_parameters", "null") or "null")
    imputed = set(json.loads(tree.attrs.get("bayesid_imputed", "null") or "null") or {})
    observed = set(tree["observed_data"].data_vars) if "observed_data" in tree.children else set()
    imputed |= {v for v in both if v.endswith("_unobserved") and v.removesuffix("_unobserved") + "_observed"
                in observed}
    deterministic, heuristic = set(), set()
    if model is not None:
        imputed |= {v for v in both if v.endswith("_unobserved")
                    and v.removesuffix("_unobserved") + "_observed" in {o.name for o in model.observed_RVs}}
        deterministic = {d.name for d in model.deterministics}
        names = [rv.name for rv in model.free_RVs if rv.name in post.data_vars]
    elif recorded:
        names = [p["name"] for p in recorded]
    elif "log_prior" in tree.children and tree["log_prior"].data_vars:
        lp = set(tree["log_prior"].data_vars)  # pymc.compute_log_prior: exactly the free RVs
        names = [v for v in both if v in lp]
        deterministic = {v for v in both if v not in lp}
    else:
        names = both
        looks = _looks_deterministic(prior, both)
        if looks:
            deterministic = heuristic = set(looks)
            notes.append(f"{', '.join(looks)} left out: an exact (log-)linear function of the other variables "
                         "in the prior draws, i.e. a Deterministic (which of a dependent set is the Deterministic "
                         "cannot be told from draws: pass model= to tell parameters exactly, or var_names=)")
    if recorded and model is None:
        deterministic = set(both) - set(names)
    det = sorted(v for v in both if v in deterministic and v not in heuristic)
    if det:
        notes.append(f"Deterministic(s) {', '.join(det)} left out: functions of the parameters, not "
                     "parameters (pass var_names= to diagnose them)")
    names = [v for v in names if v not in deterministic]
    imp = [v for v in names if v in imputed]
    if imp:
        notes.append(f"{', '.join(imp)} left out: missing observations PyMC imputed (data, not parameters; "
                     "pass var_names= to include them)")
    names = [v for v in names if v not in imputed]
    return names, notes


def _looks_deterministic(prior, names) -> list:
    """Variables whose prior draws are an exact linear function of the others' draws, in natural or
    (for positive variables) log coordinates: Deterministics such as ``a + b`` or ``a·b`` in a tree
    without a record of which variables are free. Needs many more draws than columns."""
    cols = {}
    for v in names:
        x = np.asarray(prior[v].values, float).reshape(-1, int(np.prod(prior[v].shape[2:], dtype=int)))
        if x.dtype.kind != "f" or not np.isfinite(x).all():
            return []
        cols[v] = x
    out = []
    for v in reversed(names):  # Deterministics usually come after their inputs: flag the later ones
        y = cols[v]
        others = [cols[o] for o in names if o != v and o not in out]
        if not others:
            continue
        X = np.column_stack(others)
        with np.errstate(divide="ignore", invalid="ignore"):
            designs = [X] + ([np.log(X)] if (X > 0).all() else [])
            targets = [y] + ([np.log(y)] if (y > 0).all() else [])
        for A in designs:
            A = np.column_stack([np.ones(len(A)), A])
            if len(A) < 5 * A.shape[1] + 50:
                continue
            for t in targets:
                if (t.std(axis=0) <= CONSTANT_RTOL * np.maximum(np.abs(t.mean(axis=0)), 1e-300)).any():
                    continue  # a constant: reported as such, not as a Deterministic
                with _one_blas_thread():  # 4000×11 least squares: 48 ms on oversubscribed threads, ~1 ms on one
                    res = t - A @ np.linalg.lstsq(A, t, rcond=None)[0]
                if (res.var(axis=0) <= 1e-12 * np.maximum(t.var(axis=0), np.finfo(float).tiny)).all():
                    out.append(v)
                    break
            if v in out:
                break
    return sorted(out)


def _one_blas_thread():
    from .preposterior import _one_blas_thread as one

    return one()


def _check_names(var_names, post, prior):
    valid = [v for v in post.data_vars if v in prior.data_vars]
    unknown = [v for v in var_names if v not in post.data_vars and v not in prior.data_vars]
    if unknown:
        raise UnknownVariableError(
            f"Unknown variable(s) {unknown} in var_names; valid names (in both the prior and the posterior "
            f"group): {valid}.")


def check_truth(truth, tree, draws: ParameterDraws) -> list:
    """Refuse ``truth`` keys that name no variable of ``tree``; return notes for diagnosed variables
    ``truth`` lacks (their z-scores are NaN)."""
    if truth is None:
        return []
    if not hasattr(truth, "keys"):
        raise BadInputError(f"truth must be a dict {{variable: value}}, got {type(truth).__name__}")
    known = set(draws.variables)
    for g in ("posterior", "prior"):
        if g in tree.children:
            known |= set(tree[g].data_vars)
    unknown = [k for k in truth if k not in known]
    if unknown:
        raise UnknownVariableError(
            f"truth has unknown key(s) {unknown}; the diagnosed variables are {sorted(set(draws.variables))}.")
    missing = [v for v in dict.fromkeys(draws.variables) if v not in truth]
    return [f"truth lacks {', '.join(missing)}: their z-scores are NaN"] if missing else []


def fisher_precheck(model, draws: ParameterDraws) -> bool:
    """Whether the Fisher analysis can run on ``model``; appends to ``draws.notes`` what it does.

    It needs replicate data from the likelihood, so a ``pm.CustomDist`` without ``random`` skips it
    (False). When ``draws`` hold a subset of the free parameters, the analysis is the conditional
    information of that subset with the others held at their posterior draws (the sub-block of the
    full Fisher matrix): it says so.
    """
    from bayesid.pymc_utils import free_parameters, has_random

    no_random = [k for k, ok in has_random(model).items() if not ok]
    if no_random:
        draws.notes.append(f"Fisher information skipped: {', '.join(no_random)} cannot be simulated (a "
                           "pm.CustomDist without random=), and the expected information needs replicate "
                           "data; the draw-based diagnosis above is complete")
        return False
    others = [p.name for p in free_parameters(model) if p.name not in set(draws.variables)
              and p.value_name not in {n.split("[")[0] for n in draws.unconstrained_names}]
    if others:
        draws.notes.append(f"Fisher information of {', '.join(dict.fromkeys(draws.variables))} only, with "
                           f"{', '.join(others)} held at their posterior draws (the conditional information, "
                           "not marginalised over them)")
    return True


def _constant_columns(p):
    sd = p.std(axis=0)
    scale = np.maximum(np.abs(p.mean(axis=0)), np.finfo(float).tiny)
    return sd <= CONSTANT_RTOL * scale


def extract_draws(tree: xr.DataTree, var_names=None, transforms="auto", model=None) -> ParameterDraws:
    """Aligned prior/posterior draws of the model's parameters, natural and unconstrained.

    Parameters
    ----------
    tree : xarray.DataTree
        Needs ``prior`` and ``posterior`` groups. Unconstrained coordinates come from the
        ``unconstrained_prior`` / ``unconstrained_posterior`` groups when present (``bayesid.fit``
        writes them); otherwise from ``transforms``.
    var_names : list of str, optional
        Parameters to diagnose. Default: the free parameters (recorded by ``bayesid.fit``, from
        ``model``, or the tree's ``log_prior`` group), else every variable present in both the prior and
        the posterior group. Deterministics and missing observations PyMC imputed (``y_unobserved``)
        are left out of the default, with a note.
    transforms : "auto", dict or None
        Used only when the tree has no unconstrained groups. ``"auto"`` logs a variable whose prior
        and posterior draws are all strictly positive (so product and ratio ridges become linear)
        and leaves the rest untouched; a dict ``{var: "log" | None}`` sets them explicitly.
    model : pymc.Model, optional
        Tells free parameters from Deterministics and imputed values in trees bayesid.fit did not write.

    Returns
    -------
    ParameterDraws
        ``notes`` says what was left out or dropped: Deterministics, imputed observations, parameters
        constant in the prior up to :data:`CONSTANT_RTOL`, prior draws whose unconstrained
        coordinates are infinite (e.g. Beta(0.1, 0.1) draws that round to exactly 0 or 1).

    Raises
    ------
    UnknownVariableError
        ``var_names`` names a variable the tree does not have (the message lists the valid ones).
    MissingGroupError, BadDrawsError
        No prior/posterior group; NaN, discrete or too few draws.
    """
    if not isinstance(tree, xr.DataTree):
        raise TypeError(f"Expected an xarray.DataTree (e.g. from bayesid.fit), got {type(tree).__name__}.")
    post = _group(tree, "posterior")
    prior = _group(tree, "prior")
    recorded = json.loads(tree.attrs.get("bayesid_parameters", "null") or "null")
    notes = [n for n in json.loads(tree.attrs.get("bayesid_notes", "[]") or "[]")
             if "imputed by PyMC" not in n]  # fit's notes; imputation is reported below
    if var_names is None:
        var_names, more = _candidates(tree, post, prior, model)
        notes += more
    else:
        if isinstance(var_names, str):
            var_names = [var_names]
        var_names = list(var_names)
        _check_names(var_names, post, prior)
    if not var_names:
        raise MissingGroupError(
            "No parameter appears in both the prior and the posterior group "
            f"(posterior: {list(post.data_vars)}, prior: {list(prior.data_vars)})."
        )
    for v in var_names:
        for grp, ds in (("posterior", post), ("prior", prior)):
            if v not in ds.data_vars:
                raise MissingGroupError(f"Parameter {v!r} is missing from the {grp} group. {_HOW_TO_PRIOR}")
            _check_values(np.asarray(ds[v].values), v, grp)
    has_unc = recorded and "unconstrained_prior" in tree.children and "unconstrained_posterior" in tree.children
    value_of = {p["name"]: (p["value_name"], p["transform"]) for p in (recorded or [])}
    if has_unc:
        uprior = tree["unconstrained_prior"].to_dataset()
        upost = tree["unconstrained_posterior"].to_dataset()

    pdims, qdims = _sample_dims(post), _sample_dims(prior)
    names, unames, trs, variables, index = [], [], [], [], {}
    cols = {"post": [], "prior": [], "upost": [], "uprior": []}
    constant = []
    for v in var_names:
        q, labels = _stack(post, v, pdims)
        p, _ = _stack(prior, v, qdims)
        p = p.reshape(-1, p.shape[-1])
        if q.ndim == 2:  # no chain dimension
            q = q[None]
        if has_unc and v in value_of:
            uname, tr = value_of[v]
            uq, _ = _stack(upost, uname, _sample_dims(upost))
            up, _ = _stack(uprior, uname, _sample_dims(uprior))
            up = up.reshape(-1, up.shape[-1])
            if uq.shape[-1] != q.shape[-1]:
                # A dimension-changing transform (zero-sum, simplex): the free coordinates are the
                # unconstrained ones, so the variable is diagnosed in those (rows named after them).
                q, p = uq, up
                labels = [(i,) for i in range(uq.shape[-1])]
                v_rows = uname
            else:
                v_rows = v
        else:
            if isinstance(transforms, dict):
                tr = transforms.get(v)
            elif transforms == "auto" and (p > 0).all() and (q > 0).all():
                tr = "log"
            else:
                tr = None
            if tr not in (None, "log"):
                raise ValueError(f"transform {tr!r} for {v!r}: only None and 'log' can be applied to a "
                                 "hand-built tree")
            uname = f"{v}_log__" if tr == "log" else v
            with np.errstate(divide="ignore", invalid="ignore"):
                uq, up = (np.log(q), np.log(p)) if tr == "log" else (q, p)
            v_rows = v
        fin = np.isfinite(p).all(axis=1) & np.isfinite(up).all(axis=1)
        const = _constant_columns(p[fin]) | _constant_columns(up[fin]) if fin.any() else np.zeros(p.shape[1], bool)
        if const.all():
            constant.append(v)
            continue
        if const.any():
            bad = [_component_name(v_rows, ix) for ix, c in zip(labels, const) if c]
            raise BadDrawsError(
                f"{bad} are constant in the prior (relative spread < {CONSTANT_RTOL:g}) while other components "
                f"of {v!r} vary: make them constants of the model, or pass var_names= without {v!r}.")
        for k, ix in enumerate(labels):
            n = _component_name(v_rows, ix)
            names.append(n)
            unames.append(_component_name(uname, ix))
            trs.append(tr)
            variables.append(v)
            index[n] = (v_rows, k)  # truth / natural values are looked up by this name
        cols["post"].append(q)
        cols["prior"].append(p)
        cols["upost"].append(uq)
        cols["uprior"].append(up)
    if constant:
        notes.append(f"{', '.join(constant)} left out: constant in the prior up to rounding (relative spread "
                     f"< {CONSTANT_RTOL:g}), so there is nothing for the data to identify")
    if not names:
        raise BadDrawsError(f"Every parameter ({', '.join(constant)}) is constant in the prior: nothing to diagnose.")

    q = np.concatenate(cols["post"], axis=-1)
    n_post = q.shape[0] * q.shape[1]
    if n_post < MIN_DRAWS:
        raise BadDrawsError(
            f"Only {n_post} posterior draws: variance ratios need at least {MIN_DRAWS} (relative error "
            "≈ sqrt(2/n)). Sample more draws (e.g. bayesid.fit(model, draws=1000))."
        )
    uq = np.concatenate(cols["upost"], axis=-1)
    if not np.isfinite(uq).all():
        bad = [n for n, ok in zip(unames, np.isfinite(uq).reshape(-1, len(unames)).all(axis=0)) if not ok]
        raise BadDrawsError(
            f"{int((~np.isfinite(uq)).sum())} posterior draw(s) of {bad} are infinite in unconstrained "
            "coordinates (a value exactly on the boundary of its support): the sampler failed there; refit "
            "(check divergences, a tighter prior) before diagnosing.")
    p = np.concatenate(cols["prior"], axis=-1)
    up = np.concatenate(cols["uprior"], axis=-1)
    keep = np.isfinite(up).all(axis=1)
    n_drop = int((~keep).sum())
    if n_drop:
        bad = [n for n, ok in zip(unames, np.isfinite(up).all(axis=0)) if not ok]
        notes.append(f"{n_drop} of {len(keep)} prior draws dropped: infinite in unconstrained coordinates "
                     f"({', '.join(bad)}; prior draws that round to the boundary of the support, e.g. a "
                     "Beta(0.1, 0.1) draw of exactly 0 or 1)")
        p, up = p[keep], up[keep]
    if p.shape[0] < max(MIN_DRAWS, 2 * len(names)):
        raise BadDrawsError(
            f"Only {p.shape[0]} prior draws for {len(names)} parameter components; need at least "
            f"{max(MIN_DRAWS, 2 * len(names))} to estimate the prior covariance."
            + (f" ({n_drop} were dropped as non-finite in unconstrained coordinates.)" if n_drop else "")
        )
    return ParameterDraws(
        names=names, unconstrained_names=unames, transforms=trs, variables=variables,
        prior=p, posterior=q, prior_unc=up, posterior_unc=uq,
        index=index, notes=notes, n_prior_dropped=n_drop,
    )
