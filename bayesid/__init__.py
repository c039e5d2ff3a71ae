"""bayesid: which parameters — and which directions in parameter space — can your data determine?"""

from __future__ import annotations

__version__ = "0.1.0"

from . import models  # noqa: E402
from .fit import fit  # noqa: E402

__all__ = ["models", "fit", "check", "diagnose", "diagnostics", "designs", "report", "compare", "comparison",
           "neural", "errors", "__version__"]


def _load_presentation():
    """Import the presentation layer (it registers its renderers with ``diagnostics.display``); called by
    ``bayesid.diagnostics.display`` the first time something is shown and nothing is registered."""
    from .report import register_renderers

    register_renderers()


def __getattr__(name):  # lazy: keep `import bayesid` light
    if name == "check":
        from .structural import check

        return check
    if name == "diagnose":
        from .diagnostics import diagnose

        return diagnose
    if name == "compare":  # the function bayesid.compare(diagnosis, estimator, ...)
        from .comparison import compare

        return compare
    if name in ("diagnostics", "report", "designs", "workflow", "comparison", "neural", "errors", "vectorize"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'bayesid' has no attribute {name!r}")
