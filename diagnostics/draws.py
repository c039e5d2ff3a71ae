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

__all__ = ["ParameterDraws", "extract_draws", "MissingGroupError", "BadDrawsError", "MIN_DRAWS"]

MIN_DRAWS = 100  # fewest posterior draws (all chains) for a variance ratio with ~14 % relative error


class MissingGroupError(ValueError):
    """The DataTree lacks a group the diagnostics need."""


class BadDrawsError(ValueError):
    """Draws that cannot be diagnosed (NaN, discrete, too few...)."""


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


def extract_draws(tree: xr.DataTree, var_names=None, transforms="auto") -> ParameterDraws:
    """Aligned prior/posterior draws of the model's parameters, natural and unconstrained.

    Parameters
    ----------
    tree : xarray.DataTree
        Needs ``prior`` and ``posterior`` groups. Unconstrained coordinates come from the
        ``unconstrained_prior`` / ``unconstrained_posterior`` groups when present (``bayesid.fit``
        writes them); otherwise from ``transforms``.
    var_names : list of str, optional
        Parameters to diagnose. Default: the free parameters recorded by ``bayesid.fit``, else every
        variable present in both the prior and the posterior group.
    transforms : "auto", dict or None
        Used only when the tree has no unconstrained groups. ``"auto"`` logs a variable whose prior
        and posterior draws are all strictly positive (so product and ratio ridges become linear)
        and leaves the rest untouched; a dict ``{var: "log" | None}`` sets them explicitly.

    Returns
    -------
    ParameterDraws
    """
    if not isinstance(tree, xr.DataTree):
        raise TypeError(f"Expected an xarray.DataTree (e.g. from bayesid.fit), got {type(tree).__name__}.")
    post = _group(tree, "posterior")
    prior = _group(tree, "prior")
    recorded = json.loads(tree.attrs.get("bayesid_parameters", "null") or "null")
    if var_names is None:
        if recorded:
            var_names = [p["name"] for p in recorded]
        else:
            var_names = [v for v in post.data_vars if v in prior.data_vars]
    var_names = list(var_names)
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
            uq, up = (np.log(q), np.log(p)) if tr == "log" else (q, p)
            v_rows = v
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

    q = np.concatenate(cols["post"], axis=-1)
    n_post = q.shape[0] * q.shape[1]
    if n_post < MIN_DRAWS:
        raise BadDrawsError(
            f"Only {n_post} posterior draws: variance ratios need at least {MIN_DRAWS} (relative error "
            "≈ sqrt(2/n)). Sample more draws (e.g. bayesid.fit(model, draws=1000))."
        )
    p = np.concatenate(cols["prior"], axis=-1)
    if p.shape[0] < max(MIN_DRAWS, 2 * len(names)):
        raise BadDrawsError(
            f"Only {p.shape[0]} prior draws for {len(names)} parameter components; need at least "
            f"{max(MIN_DRAWS, 2 * len(names))} to estimate the prior covariance."
        )
    return ParameterDraws(
        names=names, unconstrained_names=unames, transforms=trs, variables=variables,
        prior=p, posterior=q,
        prior_unc=np.concatenate(cols["uprior"], axis=-1),
        posterior_unc=np.concatenate(cols["upost"], axis=-1),
        index=index,
    )
