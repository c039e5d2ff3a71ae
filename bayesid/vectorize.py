"""Evaluate a PyTensor graph at many parameter draws with one compiled, vectorised function.

PyMC's ``compute_log_likelihood`` / ``compute_log_prior`` and a per-draw transform loop call a compiled
function once per draw; for 4000 draws that Python overhead dominated the non-sampling part of
:func:`bayesid.fit` (on the gait model: 8.8 s of log-likelihood against 0.8 s of actual work). Here
the graph is rewritten once with a leading batch dimension (PyTensor's ``vectorize_graph``; Ops
without a batched form are wrapped in ``Blockwise``) and called on blocks of draws.

Compiled functions can be kept between calls (``cache_key``): :func:`bayesid.fit` passes its cache key
(the model's fingerprint with every constant, data and ``pm.Data`` value), and a function is reused
only for the *same* model object with the same key, so a changed model, dataset or ``pm.Data`` value
is compiled afresh.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np

__all__ = ["compile_vectorized", "evaluate_at_draws", "log_density", "log_densities", "sample_prior",
           "VectorizeFallbackWarning", "clear_cache"]


class VectorizeFallbackWarning(UserWarning):
    """A vectorised evaluation failed and bayesid fell back to a per-draw evaluation (same values,
    slower); the message names the reason. :func:`bayesid.fit` also records it in
    ``tree.attrs["bayesid_fallbacks"]``."""


# ------------------------------------------------------------------ compiled-function cache
_CACHE_SIZE = 16
_cache: OrderedDict = OrderedDict()


def cached(model, cache_key, purpose, build):
    """``build()``, or the value built before for the same model object, ``cache_key`` and ``purpose``.

    ``cache_key=None`` builds every time. At most ``_CACHE_SIZE`` entries are kept (least recently
    used dropped); an entry is used only while its model is alive and is that very object.
    """
    if cache_key is None:
        return build()
    key = (id(model), cache_key, purpose)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is model:
        _cache.move_to_end(key)
        return hit[1]
    value = build()
    _cache[key] = (weakref.ref(model), value)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def forget(model, cache_key) -> None:
    """Drop the entries :func:`cached` keeps for ``model`` and ``cache_key``."""
    for key in [k for k in _cache if k[0] == id(model) and k[1] == cache_key]:
        del _cache[key]


def no_traces():
    """A context in which pytensor records no creation traceback on new graph nodes.

    PyTensor walks the Python stack (``linecache`` included) for every node it creates, for error
    messages that point at user code; for bayesid's internal graphs (log densities, forward sampling,
    transforms) that was ~10 % of the post-processing time, and their errors are reported by bayesid.
    """
    from pytensor import config

    return config.change_flags(traceback__limit=0)


def clear_cache() -> None:
    """Forget every compiled function kept by ``cache_key`` calls."""
    _cache.clear()


# ------------------------------------------------------------------ vectorised functions
def compile_vectorized(inputs, outputs, mode=None):
    """Compile ``outputs(inputs)`` with one extra leading (batch) dimension on every input.

    Parameters
    ----------
    inputs : list of TensorVariable
        Core (unbatched) inputs of the graph.
    outputs : list of TensorVariable
    mode : str, optional
        PyTensor compilation mode.

    Returns
    -------
    callable
        ``fn(*batched_arrays) -> list of ndarray``, each output with the batch dimension first (outputs
        that do not depend on the inputs are broadcast to it).
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import vectorize_graph

    batched = [pt.tensor(name=f"{x.name or 'x'}_batch", dtype=x.dtype, shape=(None,) + tuple(x.type.shape))
               for x in inputs]
    outs = vectorize_graph(list(outputs), replace=dict(zip(inputs, batched)))
    outs = [pt.broadcast_to(o, (batched[0].shape[0],) + tuple(c.shape)) if o.ndim == c.ndim else o
            for o, c in zip(outs, outputs)]
    fn = pytensor.function(batched, outs, on_unused_input="ignore", mode=mode)
    return fn


#: Bytes of output per call that :func:`evaluate_at_draws` aims at when ``block`` is None: small enough
#: that the intermediate arrays of one call are reused from the heap instead of being freshly mapped
#: (page-faulted) for every operation — on the 200-group hierarchy (4000 draws × 2203 values) the
#: first evaluation took 0.16 s in 4 MiB blocks against 0.25–0.44 s in one call.
BLOCK_BYTES = 4 * 2**20


def evaluate_at_draws(fn, arrays, block: int | None = None) -> list[np.ndarray]:
    """Call a :func:`compile_vectorized` function on ``n`` draws in blocks of ``block``.

    Parameters
    ----------
    fn : callable
    arrays : list of ndarray
        Each of shape ``(n, *core_shape)``.
    block : int, optional
        Draws per call (bounds the memory of intermediate results). None: as many as give about
        :data:`BLOCK_BYTES` of outputs (measured on one draw).

    Returns
    -------
    list of ndarray
        One per output, shape ``(n, *core_shape)``. One call's outputs are returned as they are; more
        calls write into arrays allocated once (no concatenation).
    """
    n = arrays[0].shape[0]
    if block is None:
        per_draw = sum(np.asarray(r).nbytes for r in fn(*[a[:1] for a in arrays]))
        block = max(1, int(BLOCK_BYTES // max(per_draw, 1)))
    first = fn(*[a[:block] for a in arrays])
    if n <= block:
        return [np.asarray(r) for r in first]
    out = [np.empty((n,) + np.shape(r)[1:], dtype=np.asarray(r).dtype) for r in first]
    for o, r in zip(out, first):
        o[:block] = r
    for i in range(block, n, block):
        for o, r in zip(out, fn(*[a[i:i + block] for a in arrays])):
            o[i:i + block] = r
    return out


def _log_density_function(model, kinds):
    """The compiled pointwise log densities of ``kinds`` and what is needed to label their outputs."""
    from pymc.backends.arviz import coords_and_dims_for_inferencedata
    from pymc.model.transform.conditioning import remove_value_transforms

    with no_traces():
        umodel = remove_value_transforms(model)
        rvs = {"likelihood": list(umodel.observed_RVs), "prior": list(umodel.free_RVs)}
        wanted = [(k, rv) for k in kinds for rv in rvs[k]]
        values = umodel.value_vars
        outs = umodel.logp(vars=[rv for _, rv in wanted], sum=False) if wanted else []
        # Python-mode ops on whole blocks: no C/numba compilation, each op runs once per block of draws.
        fn = compile_vectorized(values, outs, mode="FAST_COMPILE") if wanted else None
    names = [umodel.values_to_rvs[v].name for v in values]
    coords, dims = coords_and_dims_for_inferencedata(umodel)
    return {"fn": fn, "values": values, "names": names, "wanted": [(k, rv.name) for k, rv in wanted],
            "coords": coords, "dims": dims}


def log_densities(model, posterior, kinds=("likelihood", "prior"), block: int | None = None, cache_key=None):
    """Pointwise log-likelihood and/or log-prior at posterior draws, from one compiled function.

    Same values as ``pymc.stats.compute_log_likelihood`` / ``compute_log_prior`` (a test checks it):
    one vectorised graph holding every requested term, compiled once and evaluated in one pass over the
    draws.

    Parameters
    ----------
    model : pymc.Model
    posterior : xarray.Dataset
        Constrained draws of every free variable, dimensions ``(chain, draw, ...)``.
    kinds : sequence of {"likelihood", "prior"}
        ``"likelihood"``: one variable per observed random variable; ``"prior"``: one per free one.
    block : int, optional
        Draws per vectorised call (None: see :func:`evaluate_at_draws`).
    cache_key : str, optional
        Keep the compiled function for the next call with the same model object and key (see the module
        docstring); None compiles every time.

    Returns
    -------
    dict of str -> xarray.Dataset
        Keyed by kind, variables with dimensions ``(chain, draw, ...)``.
    """
    import xarray as xr

    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in ("likelihood", "prior")]
    if bad:
        raise ValueError(f"kinds must be 'likelihood' and/or 'prior', got {bad}")
    c = cached(model, cache_key, ("log_densities", kinds), lambda: _log_density_function(model, kinds))
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    res = []
    if c["fn"] is not None:
        arrays = [posterior[n].values.reshape(chains * draws, *posterior[n].shape[2:]).astype(v.dtype, copy=False)
                  for n, v in zip(c["names"], c["values"])]
        res = evaluate_at_draws(c["fn"], arrays, block)
    out = {k: xr.Dataset() for k in kinds}
    base = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    for (kind, name), r in zip(c["wanted"], res):
        r = r.reshape(chains, draws, *r.shape[1:])
        vdims = list(c["dims"].get(name, [])) or [f"{name}_dim_{i}" for i in range(r.ndim - 2)]
        vcoords = {d: c["coords"][d] for d in vdims if d in c["coords"]}
        out[kind][name] = xr.DataArray(r, dims=["chain", "draw", *vdims], coords={**base, **vcoords})
    return out


def log_density(model, posterior, kind: str = "likelihood", block: int | None = None, cache_key=None):
    """Pointwise log-likelihood (observed variables) or log-prior (free variables) at posterior draws.

    Same result as ``pymc.stats.compute_log_likelihood`` / ``compute_log_prior`` (a test checks it),
    computed with one vectorised function instead of one call per draw. :func:`log_densities` computes
    both in one pass.

    Parameters
    ----------
    model : pymc.Model
    posterior : xarray.Dataset
        Constrained draws of every free variable, dimensions ``(chain, draw, ...)``.
    kind : {"likelihood", "prior"}
    block : int, optional
        Draws per vectorised call (None: see :func:`evaluate_at_draws`).
    cache_key : str, optional
        See :func:`log_densities`.

    Returns
    -------
    xarray.Dataset
        One variable per observed (or free) random variable, dimensions ``(chain, draw, ...)``.
    """
    if kind not in ("likelihood", "prior"):
        raise ValueError("kind must be 'likelihood' or 'prior'")
    return log_densities(model, posterior, (kind,), block, cache_key)[kind]


def _batched_forward(outs, n):
    """The forward graph of ``outs`` with a leading batch dimension ``n``: every random variable with no
    random ancestor is resized to ``(n, ...)`` and the rest of the graph vectorised over it.

    A random variable with an explicit size (``pm.Normal("b", 0, tau, shape=8)``) is vectorised here, in
    graph order: PyTensor's own rule extends its size by the new batch dimensions of its *first*
    parameter only, so a batched later parameter (``tau``) raised "Size length is incompatible" and the
    prior fell back to one call per draw. Here the size is extended by the batch dimensions any of its
    parameters gained (the same rule, over all parameters)."""
    import pytensor.tensor as pt
    from pymc.distributions.shape_utils import change_dist_size
    from pymc.pytensorf import rvs_in_graph
    from pytensor.graph.replace import vectorize_graph
    from pytensor.graph.traversal import ancestors, toposort
    from pytensor.tensor.random.op import RandomVariable
    from pytensor.tensor.random.utils import compute_batch_shape
    from pytensor.tensor.type_other import NoneTypeT

    all_rvs = rvs_in_graph(outs)
    roots = [rv for rv in all_rvs
             if not (set(ancestors(rv.owner.inputs, blockers=list(all_rvs))) & set(all_rvs))]
    replace = {rv: change_dist_size(rv, new_size=(n,), expand=True) for rv in roots}
    for node in toposort(outs):
        if not isinstance(node.op, RandomVariable):
            continue
        rv = node.default_output()
        size = node.op.size_param(node)
        if rv in replace or isinstance(size.type, NoneTypeT):
            continue
        old = list(node.op.dist_params(node))
        new = list(vectorize_graph(old, replace=replace))
        k = max((b.type.ndim - a.type.ndim for a, b in zip(old, new)), default=0)
        if k > 0:
            batch = compute_batch_shape(new, ndims_params=node.op.ndims_params)[:k]
            out = node.op.make_node(node.op.rng_param(node), pt.concatenate([batch, size]), *new)
            replace[rv] = out.default_output()
    return list(vectorize_graph(list(outs), replace=replace))


def _prior_function(model, names, n):
    import pymc as pm
    from pytensor.tensor.random.type import RandomGeneratorType

    with no_traces():
        fn = pm.pytensorf.compile(inputs=[], outputs=_batched_forward([model[v] for v in names], n),
                                  mode="FAST_COMPILE")
    return fn, [v for v in fn.get_shared() if isinstance(v.type, RandomGeneratorType)]


def sample_prior(model, draws: int, random_seed=None, var_names=None, block: int = 1000, cache_key=None):
    """Prior (and prior predictive) draws of a PyMC model from one vectorised forward-sampling graph.

    Equivalent in distribution to :func:`pymc.sample_prior_predictive` (tests compare moments with the
    exact prior), which calls a compiled function once per draw; here every root random variable gets a
    leading batch dimension (PyMC's ``vectorize_over_posterior`` with no conditioning variables) and
    ``block`` draws come out of each call.

    Parameters
    ----------
    model : pymc.Model
    draws : int
    random_seed : int or numpy.random.SeedSequence, optional
    var_names : list of str, optional
        Variables to draw; default every free, observed and deterministic variable.
    block : int
        Draws per call.
    cache_key : str, optional
        Keep the compiled sampling function for the next call with the same model object, key and
        variables (the random streams are reseeded from ``random_seed`` every call, so the draws do not
        depend on whether it was cached).

    Returns
    -------
    xarray.DataTree
        Groups ``prior`` (free and deterministic variables) and ``prior_predictive`` (observed ones),
        dimensions ``(chain=1, draw, ...)`` with the model's named dimensions.
    """
    import xarray as xr
    from pymc.backends.arviz import coords_and_dims_for_inferencedata
    from pymc.pytensorf import reseed_rngs

    names = list(var_names) if var_names is not None else [
        v.name for v in model.free_RVs + model.deterministics + model.observed_RVs]
    block_seeds = np.random.SeedSequence(random_seed).generate_state(-(-draws // block))
    vals = None
    compiled = {}
    for b, start in enumerate(range(0, draws, block)):
        n = min(block, draws - start)
        if n not in compiled:  # one compilation per block size (at most two), or none if cached
            compiled[n] = cached(model, cache_key, ("prior", tuple(names), n),
                                 lambda n=n: _prior_function(model, names, n))
        fn, rngs = compiled[n]
        reseed_rngs(rngs, int(block_seeds[b]))  # a fresh, reproducible stream per block
        part = [np.asarray(v) for v in fn()]
        if vals is None:
            vals = [np.empty((1, draws) + p.shape[1:], dtype=p.dtype) for p in part]
        for v, p in zip(vals, part):
            v[0, start:start + n] = p
    coords, dims = coords_and_dims_for_inferencedata(model)
    observed = {v.name for v in model.observed_RVs}
    groups = {"prior": xr.Dataset(), "prior_predictive": xr.Dataset()}
    for name, val in zip(names, vals or []):
        vdims = list(dims.get(name, [])) or [f"{name}_dim_{i}" for i in range(val.ndim - 2)]
        vcoords = {d: coords[d] for d in vdims if d in coords}
        da = xr.DataArray(val, dims=["chain", "draw", *vdims],
                          coords={"chain": [0], "draw": np.arange(draws), **vcoords})
        groups["prior_predictive" if name in observed else "prior"][name] = da
    return xr.DataTree.from_dict({g: ds for g, ds in groups.items() if ds.data_vars})
