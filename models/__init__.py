"""Model families (``bayesid.models``): PyMC programs with fast simulators and known answers.

>>> from bayesid import models
>>> "toy.additive" in models.list()
True
>>> spec = models.get("toy.additive")
"""

from __future__ import annotations

import importlib

from .base import BadDataError, Design, KnownAnswer, ModelSpec, Parameter, UnknownDesignError
from .priors import Prior

__all__ = ["get", "list", "list_models", "register", "ModelSpec", "Parameter", "Design", "KnownAnswer",
           "Prior", "BadDataError", "UnknownModelError", "UnknownDesignError"]

# name -> "module:Class" (imported lazily, so that importing bayesid does not compile numba code)
_REGISTRY: dict[str, str | type] = {
    "toy.additive": "toys:Additive",
    "toy.product": "toys:Product",
    "toy.scale": "toys:Scale",
    "toy.collinear": "toys:Collinear",
    "toy.identified": "toys:Identified",
    "toy.weak": "toys:Weak",
    # gait family (models/gait/)
    "gait.bslip": "gait:BSLIP",
    "gait.hierarchical": "gait.hierarchical:HierarchicalBSLIP",
    # mixed-effects family (models/mixed.py)
    "mixed.regression": "mixed:MixedRegression",
    "mixed.noncentred": "mixed:MixedRegressionNonCentred",
    # latent-rate family (models/rates.py)
    "rates.pairwise": "rates:Pairwise",
    "rates.anchored": "rates:PairwiseAnchored",
    "rates.zerosum": "rates:PairwiseZeroSum",
    "rates.l2": "rates:PairwiseL2",
    "rates.affine": "rates:Affine",
    "rates.beta_pair": "rates:BetaPair",
}


class UnknownModelError(KeyError):
    """No model of that name is registered."""

    def __str__(self):
        return str(self.args[0])


def register(name: str, cls) -> None:
    """Register a :class:`ModelSpec` subclass (or ``"module:Class"`` inside bayesid.models)."""
    _REGISTRY[name] = cls


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


list = list_models  # noqa: A001  (the documented API is bayesid.models.list())


def get(name: str) -> ModelSpec:
    """Return an instance of the registered model ``name``.

    Raises
    ------
    UnknownModelError
        With the list of valid names.
    """
    if isinstance(name, ModelSpec):
        return name
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownModelError(
            f"Unknown model {name!r}.{hint} Registered models: {', '.join(sorted(_REGISTRY))}. "
            "See `bayesid models` or bayesid.models.list()."
        )
    target = _REGISTRY[name]
    if isinstance(target, str):
        mod, cls = target.split(":")
        try:
            target = getattr(importlib.import_module(f"{__name__}.{mod}"), cls)
        except (ImportError, AttributeError) as err:
            raise UnknownModelError(
                f"Model {name!r} is registered but its implementation ({mod}.{cls}) cannot be loaded: {err}"
            ) from err
    return target()
