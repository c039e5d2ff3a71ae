"""Fit a PyMC model with NUTS (nutpie) and collect everything the diagnostics need in one DataTree."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import CacheError
from .vectorize import VectorizeFallbackWarning, forget
from .pymc_utils import (check_continuous, free_parameters, has_random, imputed_variables,
                         model_fingerprint, model_fingerprints, to_unconstrained)

__all__ = ["fit", "add_unconstrained_groups", "choose_adaptation", "posterior_seed", "LOW_RANK_MAX_DIM"]

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
    shapes = [v.type.shape for v in model.value_vars]
    if all(None not in sh for sh in shapes):  # static shapes: no need to compile the initial point
        d = int(sum(np.prod(sh, dtype=int) for sh in shapes))
    else:
        point = model.initial_point()
        d = int(sum(np.size(point[v.name]) for v in model.value_vars))
    return "low_rank" if d <= LOW_RANK_MAX_DIM else "diag"


def _seed_ints(random_seed, n):
    ss = np.random.SeedSequence(random_seed)
    return [int(s.generate_state(1)[0]) for s in ss.spawn(n)], ss.entropy


def posterior_seed(random_seed) -> int:
    """The seed :func:`fit` passes to ``pm.sample`` for ``random_seed`` (the prior draws get another one
    from the same ``SeedSequence``). ``pm.sample(..., random_seed=posterior_seed(s))`` with fit's sampler
    settings gives fit's posterior draws (``benchmarks/fit.py`` uses this for a paired comparison)."""
    return _seed_ints(random_seed, 2)[0][0]


def _fingerprint(model, draws, tune, chains, prior_draws, seed, extra, model_fp=None) -> str:
    """The cache key: the model's graph with its constants, data and ``pm.Data`` values
    (:func:`~bayesid.pymc_utils.model_fingerprint`, or ``model_fp`` if already computed), sampler
    settings, seed and library versions."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    vers = {"bayesid": __version__}
    for pkg in ("pymc", "pytensor", "nutpie", "numpy"):
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = None
    h = hashlib.sha256()
    h.update((model_fp or model_fingerprint(model, observed=True)).encode())
    h.update(json.dumps([draws, tune, chains, prior_draws, str(seed), extra, vers], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


def _unreadable(path, why) -> CacheError:
    return CacheError(f"the cache at {path} is unreadable ({why}); delete it or pass another path")


def _read_cache(path: Path):
    """The cached DataTree at ``path``; None if there is no file. Raises :class:`CacheError` for a path
    that is not a readable bayesid cache (which is then never overwritten)."""
    if not path.exists():
        return None
    if path.is_dir():
        raise _unreadable(path, "it is a directory")
    try:
        size = path.stat().st_size
        if size == 0:
            raise _unreadable(path, "the file is empty")
        with xr.open_datatree(path) as src:
            tree = src.load()
    except CacheError:
        raise
    except Exception as err:  # xarray/h5py/netCDF raise many types for garbage and truncated files
        msg = (str(err).splitlines() or [""])[0]
        msg = msg[:msg.index(". ") + 1] if ". " in msg else msg
        raise _unreadable(path, f"{type(err).__name__}: {msg[:160]}") from err
    if "bayesid_fingerprint" not in tree.attrs:
        raise CacheError(f"the file at {path} is a netCDF file but not a bayesid cache (no "
                         "bayesid_fingerprint); bayesid will not overwrite it: pass another path")
    return tree


def _check_writable(path: Path) -> None:
    """Raise :class:`CacheError` now, before sampling, if ``path`` cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is read-only")
    except OSError as err:
        raise CacheError(f"the cache at {path} cannot be written ({type(err).__name__}: {err}); pass a "
                         "writable path (checked before sampling, nothing was lost)") from err


def _save(tree, path: Path, fallback: bool = False):
    """Write ``tree`` to ``path`` atomically (a temporary file renamed into place), so a failure never
    leaves a truncated cache. Returns the path, or None when ``fallback`` and writing failed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _writable(tree).to_netcdf(tmp)
        os.replace(tmp, path)
        return path
    except Exception:
        if tmp.exists():
            tmp.unlink()
        if fallback:
            return None
        raise


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


def _fallback(fallbacks, what, err, instead):
    """Say (a :class:`~bayesid.vectorize.VectorizeFallbackWarning`) and record that a vectorised step failed."""
    msg = f"{what}: the vectorised evaluation failed ({type(err).__name__}: {str(err)[:200]}); {instead}"
    fallbacks.append(msg)
    warnings.warn(msg + " (same values, slower)", VectorizeFallbackWarning, stacklevel=3)


def _prior_draws(model, draws, seed, var_names, fallbacks, cache_key=None):
    """Prior (and prior predictive, if in ``var_names``): one vectorised forward graph
    (:func:`bayesid.vectorize.sample_prior`); PyMC's per-draw ``sample_prior_predictive`` where the graph
    cannot be vectorised (warned and recorded in ``fallbacks``)."""
    import pymc as pm

    from .vectorize import sample_prior

    try:
        return sample_prior(model, draws, random_seed=seed, var_names=var_names, cache_key=cache_key)
    except Exception as err:
        _fallback(fallbacks, "prior draws", err, "used pymc.sample_prior_predictive (one call per draw)")
        return pm.sample_prior_predictive(draws=draws, random_seed=seed, var_names=var_names)


def _add_log_densities(tree, model, fallbacks, cache_key=None):
    """``log_likelihood`` and ``log_prior`` groups from one vectorised function
    (:func:`bayesid.vectorize.log_densities`); PyMC's per-draw loops where the graph has an Op that cannot
    be vectorised (warned and recorded in ``fallbacks``)."""
    from pymc.stats import compute_log_likelihood, compute_log_prior

    from .vectorize import log_densities

    try:
        res = log_densities(model, tree["posterior"].to_dataset(), ("likelihood", "prior"), cache_key=cache_key)
    except Exception as err:
        _fallback(fallbacks, "log_likelihood / log_prior", err,
                  "used pymc.stats.compute_log_likelihood / compute_log_prior (one call per draw)")
        compute_log_likelihood(tree, extend_inferencedata=True, progressbar=False)
        compute_log_prior(tree, extend_inferencedata=True, progressbar=False)
        return
    for kind, ds in res.items():
        tree[f"log_{kind}"] = xr.DataTree(ds)


def add_unconstrained_groups(tree: xr.DataTree, model, *, cache_key=None) -> xr.DataTree:
    """Add ``unconstrained_prior`` / ``unconstrained_posterior`` groups holding every free parameter
    in the unconstrained coordinates NUTS samples in (value-variable names such as ``b_log__``).

    Works for any DataTree with ``prior`` and/or ``posterior`` groups of ``model``'s free RVs. The
    transform is compiled once for both groups (and kept for later calls with the same model and
    ``cache_key``, see :mod:`bayesid.vectorize`).
    """
    params = free_parameters(model)
    names = [p.name for p in params]
    key = cache_key if cache_key is not None else ("add_unconstrained_groups", id(tree))  # one compilation
    for group in ("prior", "posterior"):
        if group not in tree.children:
            continue
        ds = tree[group].to_dataset()
        u = to_unconstrained(model, _draws_dict(ds, names), sample_ndim=2, cache_key=key)
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
    if cache_key is None:  # kept only for the two groups of this call
        forget(model, key)
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
    prior_predictive: bool = False,
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
        loaded instead of sampling again (resumable expensive runs); otherwise it is written. The key
        covers everything that determines the result: the model's graph with every constant
        (covariates, prior parameters to the last digit), observed and ``pm.Data`` values, the
        sampler settings, the seed and the versions of bayesid, PyMC, pytensor, nutpie and numpy.
        The path's writability is checked before sampling, and the posterior draws are written
        there as soon as sampling ends (a failure afterwards resumes from them). A path that holds
        anything but a bayesid cache raises :class:`~bayesid.errors.CacheError` and is never
        overwritten.
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
    prior_predictive : bool
        Also draw the prior predictive (simulated observations, group ``prior_predictive``). Off by
        default: nothing in bayesid's diagnostics reads it (``diagnose`` uses the prior of the
        parameters; Fisher information simulates its own replicates), and for large datasets it is the
        most expensive prior draw (4000 × 2000 values on a 200-group hierarchy). When it is not drawn,
        ``tree.attrs["bayesid_not_computed"]`` says so and why.
    **sample_kwargs
        Passed to :func:`pymc.sample`.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior, sample_stats, log_likelihood, log_prior, observed_data, prior,
        unconstrained_prior, unconstrained_posterior`` (and ``prior_predictive`` if asked for).
        ``tree.attrs`` records the seed, settings, cache key (``bayesid_fingerprint``), the model's
        fingerprint before the data (``bayesid_model_fingerprint``, checked by :func:`bayesid.compare`),
        ``bayesid_timings`` (seconds per part), ``bayesid_not_computed`` (JSON: group -> why it is
        absent), ``bayesid_fallbacks`` (JSON list: vectorised steps that failed and were redone per draw
        by PyMC, each also warned as :class:`~bayesid.vectorize.VectorizeFallbackWarning`) and
        ``bayesid_notes``: what was done differently and why (e.g. no ``prior_predictive`` for a
        ``pm.CustomDist`` likelihood without ``random``; PyMC-imputed missing observations, which
        :func:`diagnose` leaves out).

    Raises
    ------
    CacheError
        ``cache`` is unreadable, not a bayesid cache, or cannot be written.
    """
    import pymc as pm

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
    timings = {}
    t_pre = time.perf_counter()
    model_fp, model_fp_before_data = model_fingerprints(model, (True, False))
    extra = [target_accept, sampler, adaptation, sorted(sample_kwargs.items())]
    if prior_predictive:  # keys of fits without the option stay what they were
        extra.append("prior_predictive")
    fp = _fingerprint(model, draws, tune, chains, prior_draws, random_seed, extra, model_fp=model_fp)
    resumed = None
    if cache is not None:
        cache = Path(cache)
        cached = _read_cache(cache)
        if cached is not None and cached.attrs.get("bayesid_fingerprint") == fp:
            if cached.attrs.get("bayesid_complete", "true") == "true":
                return cached
            resumed = cached  # sampled before, but the post-processing did not finish: redo only that
        elif cached is not None:
            warnings.warn(f"cache {cache} was written by another model/data/settings; sampling again and "
                          "overwriting it", stacklevel=2)
        _check_writable(cache)  # before sampling, so an unwritable path cannot cost the fit

    cores = cores or min(chains, os.cpu_count() or 1)
    notes, fallbacks, not_computed = [], [], {}
    no_random = [k for k, ok in has_random(model).items() if not ok]
    imputed = imputed_variables(model)
    t0 = time.perf_counter()
    timings["fingerprint"] = t0 - t_pre
    kw = dict(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=s_post,
              progressbar=progressbar, nuts_sampler=sampler, target_accept=target_accept)
    if sampler == "nutpie":
        kw["idata_kwargs"] = {"include_transformed": False}
        kw["nuts"] = {"adaptation": adaptation, **sample_kwargs.pop("nuts", {})}
    kw.update(sample_kwargs)
    settings = json.dumps({"draws": draws, "tune": tune, "chains": chains, "prior_draws": prior_draws,
                           "sampler": sampler, "adaptation": kw.get("nuts", {}).get("adaptation")})
    if resumed is None:
        with model:
            tree = pm.sample(**kw)
        for g in list(tree.children):
            if g.startswith("warmup") or g == "unconstrained_posterior":
                del tree[g]
        tree.attrs.update(random_seed=str(random_seed), bayesid_fingerprint=fp, bayesid_settings=settings,
                          bayesid_complete="false")
        saved = None
        if cache is not None:  # the expensive part is done: keep it before anything else can fail
            saved = _save(tree, cache)
    else:
        tree, saved = resumed, cache
        notes.append(f"posterior draws resumed from the partial cache {cache}")
    t1 = time.perf_counter()
    timings["sample"] = t1 - t0
    st = tree.posterior.attrs.get("sampling_time")
    if st is not None:  # nutpie: the sampling proper; the rest of pm.sample is compilation
        timings["sampling"] = float(st)
    try:
        with model:
            _add_log_densities(tree, model, fallbacks, cache_key=model_fp)
            t2 = time.perf_counter()
            timings["log_likelihood_and_prior"] = t2 - t1
            var_names = [v.name for v in model.free_RVs + model.deterministics]
            if no_random:
                # pm.CustomDist without `random`: the parameters' prior can be drawn, the data cannot
                notes.append(f"{', '.join(no_random)} cannot be simulated (a pm.CustomDist without random=): "
                             "no prior_predictive group; the log-likelihood is computed as usual")
                not_computed["prior_predictive"] = (f"{', '.join(no_random)} cannot be simulated (a "
                                                    "pm.CustomDist without random=)")
            elif prior_predictive:
                var_names += [v.name for v in model.observed_RVs]
            else:
                not_computed["prior_predictive"] = ("not drawn: fit(prior_predictive=False), the default; "
                                                    "bayesid's diagnostics do not use it")
            prior = _prior_draws(model, prior_draws, s_prior, var_names, fallbacks, cache_key=model_fp)
            t3 = time.perf_counter()
            timings["prior"] = t3 - t2
        for g in ("prior", "prior_predictive"):
            if g in prior.children and prior[g].data_vars:
                tree[g] = prior[g]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VectorizeFallbackWarning)
            add_unconstrained_groups(tree, model, cache_key=model_fp)
        for w in caught:  # recorded, and shown to the user as they would have been
            if issubclass(w.category, VectorizeFallbackWarning):
                fallbacks.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        timings["unconstrained"] = time.perf_counter() - t3
    except Exception as err:
        if saved is None:
            saved = _save(tree, Path(tempfile.gettempdir()) / f"bayesid-fit-{fp[:16]}.nc", fallback=True)
        if saved is not None:
            err.add_note(f"bayesid.fit: sampling finished and the posterior draws are saved at {saved}; fix the "
                         f"cause and call fit(..., cache={str(saved)!r}) with the same arguments to finish "
                         "without sampling again.")
        raise
    if imputed:
        notes.append(f"{', '.join(imputed)}: missing observations of {', '.join(sorted(set(imputed.values())))} "
                     "imputed by PyMC; they are data, not parameters, and diagnose() leaves them out")
    tree.attrs.update(
        bayesid_timings=json.dumps(timings),
        random_seed=str(random_seed),
        bayesid_fingerprint=fp,
        bayesid_model_fingerprint=model_fp_before_data,
        bayesid_settings=settings,
        bayesid_complete="true",
        bayesid_notes=json.dumps(notes),
        bayesid_imputed=json.dumps(imputed),
        bayesid_no_random=json.dumps(no_random),
        bayesid_not_computed=json.dumps(not_computed),
        bayesid_fallbacks=json.dumps(fallbacks),
    )
    if cache is not None:
        try:
            _save(tree, cache)
        except OSError as err:  # checked writable before sampling; if it fails now, keep the result
            warnings.warn(f"could not write the finished fit to {cache} ({err}); returning it unsaved "
                          f"(the posterior draws were saved there before post-processing)", stacklevel=2)
    return tree
