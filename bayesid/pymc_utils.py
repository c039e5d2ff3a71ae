"""Small helpers around PyMC models: free parameters, transforms and unconstrained coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FreeParameter", "free_parameters", "to_unconstrained", "check_continuous"]


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


def _compile_forward(model):
    import pytensor
    from pytensor.graph.replace import graph_replace

    inputs = {rv: rv.type(name=f"{rv.name}_in") for rv in model.free_RVs}
    outs = []
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms.get(rv)
        x = inputs[rv]
        outs.append(x if tr is None else tr.forward(x, *rv.owner.inputs))
    outs = graph_replace(outs, dict(inputs), strict=False)
    return pytensor.function(list(inputs.values()), outs, on_unused_input="ignore", mode="FAST_COMPILE")


def to_unconstrained(model, draws: dict[str, np.ndarray], sample_ndim: int = 2) -> dict[str, np.ndarray]:
    """Map constrained draws of every free RV to the unconstrained space NUTS works in.

    Parameters
    ----------
    model : pymc.Model
    draws : dict of str -> ndarray
        Constrained draws keyed by RV name, each with ``sample_ndim`` leading sample dimensions.
    sample_ndim : int
        Number of leading sample dimensions (2 for ``(chain, draw)``).

    Returns
    -------
    dict of str -> ndarray
        Keyed by value-variable name (``"b_log__"``), same leading dimensions.
    """
    params = free_parameters(model)
    missing = [p.name for p in params if p.name not in draws]
    if missing:
        raise KeyError(f"draws lack the free parameters {missing}")
    if all(p.transform is None for p in params):
        return {p.value_name: np.asarray(draws[p.name]) for p in params}
    fn = _compile_forward(model)
    arrays = [np.asarray(draws[p.name]) for p in params]
    lead = arrays[0].shape[:sample_ndim]
    flat = [a.reshape(-1, *a.shape[sample_ndim:]) for a in arrays]
    n = flat[0].shape[0]
    results = [[] for _ in params]
    for i in range(n):
        vals = fn(*[f[i].astype(model.free_RVs[j].dtype) for j, f in enumerate(flat)])
        for j, v in enumerate(vals):
            results[j].append(v)
    return {p.value_name: np.stack(r).reshape(*lead, *np.shape(r[0])) for p, r in zip(params, results)}
