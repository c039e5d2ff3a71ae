"""Small helpers around PyMC models: free parameters, transforms and unconstrained coordinates."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["FreeParameter", "free_parameters", "to_unconstrained", "check_continuous", "graph_digest",
           "model_fingerprint", "model_fingerprints", "imputed_variables", "has_random", "interval_bounds"]


@dataclass(frozen=True)
class FreeParameter:
    """A free random variable of a PyMC model and its unconstrained counterpart."""

    name: str  # constrained name, e.g. "b"
    value_name: str  # unconstrained (value variable) name, e.g. "b_log__"
    transform: str | None  # e.g. "log", "logodds", "interval"; None for real-valued


def check_continuous(model) -> None:
    """Raise a clear error if ``model`` has discrete free parameters."""
    discrete = [rv.name for rv in model.free_RVs if rv.dtype.startswith(("int", "uint", "bool"))]
    if discrete:
        raise TypeError(
            f"Discrete parameter(s) {discrete}: bayesid's diagnostics work in the unconstrained continuous "
            "space NUTS samples. Marginalize them out (e.g. pymc_extras.marginalize) or make them "
            "continuous, then fit again."
        )


def _transform_name(tr) -> str | None:
    if tr is None:
        return None
    name = getattr(tr, "name", None) or type(tr).__name__
    return str(name).lower().removesuffix("transform")


def free_parameters(model) -> list[FreeParameter]:
    """The model's free random variables with their value-variable names and transforms."""
    out = []
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms.get(rv)
        out.append(FreeParameter(rv.name, model.rvs_to_values[rv].name, _transform_name(tr)))
    return out


def interval_bounds(model) -> dict:
    """Constant bounds of the interval-transformed free parameters, read from their PyMC transform.

    Parameters
    ----------
    model : pymc.Model

    Returns
    -------
    dict of str -> (ndarray, ndarray)
        Per free RV name, the lower and upper bound of every component (flattened in C order);
        ``-inf``/``inf`` on an open side (``x = a + exp(θ)`` or ``b − exp(θ)``). A parameter whose
        bounds depend on another random variable (``Uniform("x", 0, s)`` with ``s`` a parameter) has
        no constant bounds and is left out: its coordinate changes from draw to draw.
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.random.op import RandomVariable

    found = {}
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms.get(rv)
        if tr is None or not hasattr(tr, "get_a_and_b"):
            continue
        a, b, lower, upper = tr.get_a_and_b(rv.owner.inputs)
        graphs = [pt.as_tensor_variable(x) for x in (a, b)]
        if any(v.owner is not None and isinstance(v.owner.op, RandomVariable) for v in ancestors(graphs)):
            continue  # bounds that are parameters themselves: no constant coordinate
        shape = tuple(rv.type.shape) if None not in rv.type.shape else rv.shape
        found[rv.name] = (shape, graphs, lower, upper)
    # constants are read directly; anything else (pm.Data, arithmetic, unknown shapes) in one evaluation
    todo = [g for shape, gs, _, _ in found.values() for g in gs + [shape]
            if not isinstance(g, (Constant, tuple))]
    try:
        vals = dict(zip(todo, pytensor.function([], todo, mode="FAST_COMPILE")() if todo else []))
    except Exception:  # bounds that cannot be evaluated without the model's inputs: none constant
        return {}
    out = {}
    for name, (shape, (a, b), lower, upper) in found.items():
        value = lambda g: g.data if isinstance(g, Constant) else vals[g]  # noqa: E731
        shape = shape if isinstance(shape, tuple) else tuple(int(n) for n in vals[shape])
        try:
            lo, hi = (np.broadcast_to(np.asarray(value(g), float), shape).ravel() for g in (a, b))
        except ValueError:  # bounds that do not broadcast to the variable's shape
            continue
        out[name] = (lo if lower else np.full(lo.shape, -np.inf), hi if upper else np.full(hi.shape, np.inf))
    return out


def forward_transform_graph(model):
    """The graph from constrained values of every free RV to the unconstrained coordinates NUTS uses.

    Returns
    -------
    inputs : list of TensorVariable
        One core input per free RV, in ``model.free_RVs`` order.
    outputs : list of TensorVariable
        Its unconstrained value (the transform's forward map, or the input itself), same order.
    """
    from pytensor.graph.replace import graph_replace

    inputs = {rv: rv.type(name=f"{rv.name}_in") for rv in model.free_RVs}
    outs = []
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms.get(rv)
        outs.append(inputs[rv] if tr is None else tr.forward(inputs[rv], *rv.owner.inputs))
    return list(inputs.values()), graph_replace(outs, dict(inputs), strict=False)


def _compile_forward(model):
    import pytensor

    inputs, outs = forward_transform_graph(model)
    return pytensor.function(inputs, outs, on_unused_input="ignore", mode="FAST_COMPILE")


def to_unconstrained(model, draws: dict[str, np.ndarray], sample_ndim: int = 2, *,
                     cache_key=None) -> dict[str, np.ndarray]:
    """Map constrained draws of every free RV to the unconstrained space NUTS works in.

    Parameters
    ----------
    model : pymc.Model
    draws : dict of str -> ndarray
        Constrained draws keyed by RV name, each with ``sample_ndim`` leading sample dimensions.
    sample_ndim : int
        Number of leading sample dimensions (2 for ``(chain, draw)``).
    cache_key : str, optional
        Keep the compiled transform for the next call with the same model object and key
        (:func:`bayesid.vectorize.cached`).

    Returns
    -------
    dict of str -> ndarray
        Keyed by value-variable name (``"b_log__"``), same leading dimensions.

    Warns
    -----
    bayesid.vectorize.VectorizeFallbackWarning
        The vectorised transform failed (the reason is named) and one call per draw was used instead.
    """
    params = free_parameters(model)
    missing = [p.name for p in params if p.name not in draws]
    if missing:
        raise KeyError(f"draws lack the free parameters {missing}")
    if all(p.transform is None for p in params):
        return {p.value_name: np.asarray(draws[p.name]) for p in params}
    arrays = [np.asarray(draws[p.name]) for p in params]
    lead = arrays[0].shape[:sample_ndim]
    flat = [a.reshape(-1, *a.shape[sample_ndim:]).astype(model.free_RVs[j].dtype)
            for j, a in enumerate(arrays)]
    try:  # one vectorised call per block of draws (bayesid.vectorize)
        results = _forward_vectorized(model, flat, cache_key)
    except Exception as err:  # an Op without a batched form: one call per draw, and say so
        import warnings

        from .vectorize import VectorizeFallbackWarning

        warnings.warn(f"to_unconstrained: the vectorised transform failed ({type(err).__name__}: "
                      f"{str(err)[:200]}); transforming one draw at a time (same values, slower)",
                      VectorizeFallbackWarning, stacklevel=2)
        fn = _compile_forward(model)
        per_draw = [fn(*[f[i] for f in flat]) for i in range(flat[0].shape[0])]
        results = [np.stack([v[j] for v in per_draw]) for j in range(len(params))]
    return {p.value_name: r.reshape(*lead, *r.shape[1:]) for p, r in zip(params, results)}


def _forward_vectorized(model, flat, cache_key=None):
    from .vectorize import cached, compile_vectorized, evaluate_at_draws, no_traces

    def build():
        with no_traces():
            return compile_vectorized(*forward_transform_graph(model), mode="FAST_COMPILE")

    fn = cached(model, cache_key, "forward_transform", build)
    return evaluate_at_draws(fn, flat)


# ---------------------------------------------------------------------------------------------------
# Fingerprints of PyMC models: a digest of the pytensor graph *with* the values of its constants and
# shared variables (``model.str_repr()`` prints ``<constant>`` for arrays and rounds numbers, so two
# models that differ in a covariate or in a prior's σ = 2.0 vs 2.004 print the same).

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")


def _stable(v, depth=0) -> str:
    """A process-independent description of an op property (no memory addresses)."""
    if depth > 4:
        return type(v).__name__
    if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
        return repr(v)
    if isinstance(v, np.ndarray):
        return f"array{v.shape}{v.dtype}:{hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()}"
    if isinstance(v, np.generic):
        return repr(v.item())
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_stable(x, depth + 1) for x in v) + ")"
    if isinstance(v, dict):
        return "{" + ",".join(f"{_stable(k, depth + 1)}:{_stable(x, depth + 1)}"
                              for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))) + "}"
    if hasattr(v, "__props__") or hasattr(v, "perform") or hasattr(v, "impl"):
        return _op_key(v, depth + 1)
    return f"{type(v).__module__}.{type(v).__qualname__}:{_ADDRESS.sub('', str(v))}"


def _op_key(op, depth=0) -> str:
    name = f"{type(op).__module__}.{type(op).__qualname__}"
    props = getattr(op, "__props__", None)
    if props:
        return name + "{" + ",".join(f"{k}={_stable(getattr(op, k, None), depth + 1)}" for k in props) + "}"
    simple = {k: v for k, v in sorted(vars(op).items()) if not k.startswith("_")
              and isinstance(v, (bool, int, float, str, tuple, type(None), np.ndarray, np.generic))}
    return name + ":" + _ADDRESS.sub("", str(op)) + _stable(simple, depth + 1)


def graph_digest(outputs, h=None, shape_only=()):
    """Feed a pytensor graph into a hash: ops with their properties, constants' and shared variables'
    values, and the graph's wiring (topological order, not object identity).

    Parameters
    ----------
    outputs : list of pytensor variables
    h : hashlib hash, optional
        Updated in place; a new sha256 if None.
    shape_only : collection of variables
        Leaves of which only the type and shape are hashed (e.g. observed values, for a fingerprint of
        the model "before the data").

    Returns
    -------
    hashlib hash
    """
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import graph_inputs, io_toposort

    h = h or hashlib.sha256()
    outputs = [o for o in outputs if o is not None]
    shape_only = {id(v) for v in shape_only}
    ids = {}

    def leaf(v):
        k = len(ids)
        ids[v] = k
        h.update(f"|leaf{k}:{v.type}".encode())
        if isinstance(v, (Constant, SharedVariable)):
            val = v.data if isinstance(v, Constant) else v.get_value(borrow=True)
            if isinstance(val, (np.ndarray, np.generic, int, float, bool)):
                a = np.asarray(val)
                h.update(f"{a.dtype}{a.shape}".encode())
                if id(v) not in shape_only:
                    h.update(np.ascontiguousarray(a).tobytes())
            else:  # random generators and other opaque values: their type only
                h.update(type(val).__name__.encode())
        else:
            h.update(str(v.name).encode())

    inputs = list(graph_inputs(outputs))
    for v in inputs:
        leaf(v)
    for node in io_toposort(inputs, outputs):
        for i in node.inputs:
            if i not in ids:
                leaf(i)
        op = node.op
        h.update(("|" + _op_key(op) + str([ids[i] for i in node.inputs])).encode())
        inner = getattr(op, "inner_outputs", None)
        if inner and not isinstance(inner, property):
            try:
                graph_digest(list(inner), h)
            except Exception:  # an inner graph we cannot walk: its op key stands for it
                pass
        for o in node.outputs:
            ids[o] = len(ids)
    h.update(("|out" + str([ids.get(o, -1) for o in outputs])).encode())
    return h


def model_fingerprint(model, observed: bool = True) -> str:
    """A digest of everything in a PyMC model that determines its prior and posterior.

    Parameters
    ----------
    model : pymc.Model
    observed : bool
        Include the observed values (the cache key of a fit). ``False`` gives the fingerprint of the
        model, its priors and its design *before* the data (their shapes still count): equal for two
        datasets of the same registered model and design, different for another model.

    Returns
    -------
    str
        A sha256 hex digest.
    """
    return model_fingerprints(model, (observed,))[0]


def model_fingerprints(model, observed=(True, False)) -> list[str]:
    """:func:`model_fingerprint` for each flag in ``observed``, building the model's log-density graph
    once (the same digests as separate calls)."""
    obs_values = [model.rvs_to_values[rv] for rv in model.observed_RVs]
    generative = (list(model.free_RVs) + list(model.observed_RVs) + list(model.deterministics)
                  + list(model.potentials))
    from .vectorize import no_traces

    with no_traces():
        logp = [model.logp()]
    names = [(rv.name, str(model.rvs_to_values[rv].name), _transform_name(model.rvs_to_transforms.get(rv)))
             for rv in model.free_RVs]
    out = []
    for with_obs in observed:
        h = hashlib.sha256()
        shape_only = () if with_obs else obs_values
        # The generative graph (prior and prior-predictive sampling) ...
        graph_digest(generative, h, shape_only=shape_only)
        # ... and the log density NUTS samples (transforms, observed values, potentials).
        graph_digest(logp, h, shape_only=shape_only)
        h.update(repr(names).encode())
        h.update(repr(sorted(v.name for v in model.observed_RVs)).encode())
        h.update(repr(sorted(v.name for v in model.deterministics)).encode())
        for k, v in sorted(model.coords.items()):
            h.update(f"|coord {k}:{_stable(np.asarray(v) if v is not None else None)}".encode())
        out.append(h.hexdigest())
    return out


def imputed_variables(model) -> dict[str, str]:
    """Free RVs PyMC created to impute missing (NaN / masked) observations: ``{name: observed_name}``.

    PyMC splits ``pm.Normal("y", ..., observed=[1, nan])`` into an observed ``y_observed`` and a free
    ``y_unobserved``; the latter are data, not parameters.
    """
    free = {rv.name for rv in model.free_RVs}
    out = {}
    for rv in model.observed_RVs:
        if rv.name.endswith("_observed"):
            base = rv.name.removesuffix("_observed")
            if f"{base}_unobserved" in free:
                out[f"{base}_unobserved"] = base
    return out


def has_random(model) -> dict[str, bool]:
    """Per observed variable, whether PyMC can draw from it (``pm.CustomDist`` without ``random``
    cannot: prior predictive and replicate data are unavailable, the log-likelihood still is)."""
    out = {}
    for rv in model.observed_RVs:
        op = rv.owner.op if rv.owner is not None else None
        ok = True
        if op is not None and type(op).__name__.startswith(("CustomDist", "DensityDist")):
            ok = False
            try:
                import pymc as pm

                pm.draw(rv, random_seed=0)
                ok = True
            except NotImplementedError:
                ok = False
            except Exception:  # it draws but fails for other reasons: leave it to the sampler
                ok = True
        out[rv.name] = ok
    return out
