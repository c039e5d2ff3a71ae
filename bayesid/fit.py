"""Fit a PyMC model with NUTS (nutpie) and collect everything the diagnostics need in one DataTree."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .pymc_utils import check_continuous, free_parameters, to_unconstrained

__all__ = ["fit", "add_unconstrained_groups", "choose_adaptation", "LOW_RANK_MAX_DIM"]

#: Largest number of unconstrained coordinates for which ``adaptation="auto"`` picks nutpie's low-rank
#: mass matrix. Below it the low-rank update is cheap and pays on ridges (toys, gait: 5–10
#: coordinates); far above it (a 203-coordinate hierarchical model) it cost 10× in ESS per second
#: against nutpie's diagonal default. ``benchmarks/fit.py`` prints the ratio on both sides.
LOW_RANK_MAX_DIM = 50

_ADAPTATIONS = ("auto", "low_rank", "diag", "draw_diag", "flow")


def choose_adaptation(model, adaptation: str = "auto") -> str:
    """The nutpie mass-matrix adaptation :func:`fit` uses for ``model``.

    Parameters
    ----------
    model : pymc.Model
    adaptation : str
        ``"auto"`` or one of nutpie's adaptations (returned unchanged).

    Returns
    -------
    str
        ``"low_rank"`` when the model has at most :data:`LOW_RANK_MAX_DIM` unconstrained coordinates,
        else ``"diag"`` (nutpie's default).
    """
    if adaptation not in _ADAPTATIONS:
        raise ValueError(f"adaptation={adaptation!r} is not one of {_ADAPTATIONS}")
    if adaptation != "auto":
        return adaptation
    d = int(sum(np.prod(model.initial_point()[v.name].shape, dtype=int) for v in model.value_vars))
    return "low_rank" if d <= LOW_RANK_MAX_DIM else "diag"


def _seed_ints(random_seed, n):
    ss = np.random.SeedSequence(random_seed)
    return [int(s.generate_state(1)[0]) for s in ss.spawn(n)], ss.entropy


def _fingerprint(model, draws, tune, chains, prior_draws, seed, extra) -> str:
    h = hashlib.sha256()
    h.update(model.str_repr().encode())
    for rv in model.observed_RVs:
        h.update(np.asarray(model.rvs_to_values[rv].data if hasattr(model.rvs_to_values[rv], "data")
                            else model.rvs_to_values[rv].eval()).tobytes())
    h.update(json.dumps([draws, tune, chains, prior_draws, str(seed), extra], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


def _writable(tree: xr.DataTree) -> xr.DataTree:
    """A copy without object-dtype variables (nutpie's divergence messages), which netCDF cannot hold."""
    out = tree.copy()
    for node in out.subtree:
        drop = [k for k, v in node.data_vars.items() if v.dtype == object]
        if drop:
            out[node.path] = xr.DataTree(node.to_dataset().drop_vars(drop))
    return out


def _draws_dict(ds: xr.Dataset, names) -> dict:
    return {n: ds[n].values for n in names}


def add_unconstrained_groups(tree: xr.DataTree, model) -> xr.DataTree:
    """Add ``unconstrained_prior`` / ``unconstrained_posterior`` groups holding every free parameter
    in the unconstrained coordinates NUTS samples in (value-variable names such as ``b_log__``).

    Works for any DataTree with ``prior`` and/or ``posterior`` groups of ``model``'s free RVs.
    """
    params = free_parameters(model)
    names = [p.name for p in params]
    for group in ("prior", "posterior"):
        if group not in tree.children:
            continue
        ds = tree[group].to_dataset()
        u = to_unconstrained(model, _draws_dict(ds, names), sample_ndim=2)
        out = xr.Dataset()
        for p in params:
            val = u[p.value_name]
            dims = list(ds[p.name].dims)
            if val.shape != ds[p.name].shape:  # dimension-changing transform (e.g. zero-sum: n -> n-1)
                dims = dims[:2] + [f"{p.value_name}_dim_{i}" for i in range(val.ndim - 2)]
            coords = {d: ds[p.name][d].values for d in dims if d in ds[p.name].coords}
            out[p.value_name] = xr.DataArray(val, dims=dims, coords=coords)
        out.attrs["sample_dims"] = ["chain", "draw"]
        tree[f"unconstrained_{group}"] = xr.DataTree(out)
    tree.attrs["bayesid_parameters"] = json.dumps(
        [{"name": p.name, "value_name": p.value_name, "transform": p.transform} for p in params]
    )
    return tree


def fit(
    model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed=None,
    prior_draws: int | None = None,
    target_accept: float = 0.8,
    cores: int | None = None,
    progressbar: bool = True,
    cache: str | os.PathLike | None = None,
    sampler: str = "nutpie",
    adaptation: str = "auto",
    **sample_kwargs,
) -> xr.DataTree:
    """Sample prior and posterior of a PyMC model and return one DataTree for the diagnostics.

    Parameters
    ----------
    model : pymc.Model
        The model, e.g. from ``bayesid.models.get(name).build(data)``. Its free parameters must be
        continuous.
    draws, tune, chains : int
        NUTS settings (per chain).
    random_seed : int, optional
        Seed of everything random (posterior and prior draws). If None a seed is drawn and recorded
        in ``tree.attrs["random_seed"]`` so the run can be repeated.
    prior_draws : int, optional
        Number of prior draws; defaults to ``draws * chains`` (at least 1000).
    target_accept : float
        NUTS target acceptance rate.
    cores : int, optional
        Parallel chains; defaults to ``min(chains, os.cpu_count())``.
    progressbar : bool
        Show sampling progress.
    cache : path, optional
        A ``.nc`` file. If it exists and was written by the same model, data and settings, it is
        loaded instead of sampling again (resumable expensive runs); otherwise it is written.
    sampler : str
        ``"nutpie"`` (default) or any ``nuts_sampler`` PyMC accepts (``"pymc"``...).
    adaptation : {"auto", "low_rank", "diag", "draw_diag", "flow"}
        nutpie mass-matrix adaptation. ``"auto"`` (default, :func:`choose_adaptation`) uses
        ``"low_rank"`` for models with at most ``LOW_RANK_MAX_DIM`` unconstrained coordinates — where it
        adapts to the strong correlations that ridges create (on ``toy.additive`` bulk ESS rose from 50
        to 960 per 1000 draws against ``"diag"``) at little cost — and nutpie's default ``"diag"`` above
        it, where a low-rank update costs more per gradient than it gains (a 203-parameter hierarchical
        model ran 10× slower per ESS with it). ``benchmarks/fit.py`` measures both sides. An
        ``nuts={"adaptation": ...}`` keyword (e.g. from a model's ``sampler_kwargs``) overrides it.
        Ignored by other samplers.
    **sample_kwargs
        Passed to :func:`pymc.sample`.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior, sample_stats, log_likelihood, log_prior, observed_data, prior,
        prior_predictive, unconstrained_prior, unconstrained_posterior``.
    """
    import pymc as pm
    from pymc.stats import compute_log_likelihood, compute_log_prior

    if not isinstance(model, pm.Model):
        raise TypeError(
            f"fit() takes a pymc.Model, got {type(model).__name__}. For a registered model use "
            "bayesid.models.get(name).build(data)."
        )
    check_continuous(model)
    if not model.free_RVs:
        raise ValueError("The model has no free parameters: there is nothing to identify.")
    if draws < 1 or chains < 1:
        raise ValueError("draws and chains must be positive")
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().generate_state(1)[0])
    prior_draws = prior_draws or max(draws * chains, 1000)
    (s_post, s_prior), _ = _seed_ints(random_seed, 2)

    adaptation = choose_adaptation(model, adaptation)
    fp = _fingerprint(model, draws, tune, chains, prior_draws, random_seed,
                      [target_accept, sampler, adaptation, sorted(sample_kwargs.items())])
    if cache is not None and Path(cache).exists():
        with xr.open_datatree(cache) as src:
            tree = src.load()
        if tree.attrs.get("bayesid_fingerprint") == fp:
            return tree
        warnings.warn(f"cache {cache} was written by another model/data/settings; sampling again and "
                      "overwriting it", stacklevel=2)

    cores = cores or min(chains, os.cpu_count() or 1)
    timings = {}
    t0 = time.perf_counter()
    with model:
        kw = dict(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=s_post,
                  progressbar=progressbar, nuts_sampler=sampler, target_accept=target_accept)
        if sampler == "nutpie":
            kw["idata_kwargs"] = {"include_transformed": False}
            kw["nuts"] = {"adaptation": adaptation, **sample_kwargs.pop("nuts", {})}
        kw.update(sample_kwargs)
        tree = pm.sample(**kw)
        t1 = time.perf_counter()
        timings["sample"] = t1 - t0
        st = tree.posterior.attrs.get("sampling_time")
        if st is not None:  # nutpie: the sampling proper; the rest of pm.sample is compilation
            timings["sampling"] = float(st)
        compute_log_likelihood(tree, extend_inferencedata=True, progressbar=False)
        t2 = time.perf_counter()
        timings["log_likelihood"] = t2 - t1
        compute_log_prior(tree, extend_inferencedata=True, progressbar=False)
        t3 = time.perf_counter()
        timings["log_prior"] = t3 - t2
        prior = pm.sample_prior_predictive(draws=prior_draws, random_seed=s_prior)
        t4 = time.perf_counter()
        timings["prior"] = t4 - t3
    for g in list(tree.children):
        if g.startswith("warmup") or g == "unconstrained_posterior":
            del tree[g]
    for g in ("prior", "prior_predictive"):
        if g in prior.children:
            tree[g] = prior[g]
    add_unconstrained_groups(tree, model)
    timings["unconstrained"] = time.perf_counter() - t4
    tree.attrs.update(
        bayesid_timings=json.dumps(timings),
        random_seed=str(random_seed),
        bayesid_fingerprint=fp,
        bayesid_settings=json.dumps({"draws": draws, "tune": tune, "chains": chains,
                                     "prior_draws": prior_draws, "sampler": sampler,
                                     "adaptation": kw.get("nuts", {}).get("adaptation")}),
    )
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        _writable(tree).to_netcdf(cache)
    return tree
