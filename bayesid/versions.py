"""Print the versions of the stack bayesid runs on (``python -m bayesid.versions``; CI prints it)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "bayesid", "pymc", "pytensor", "nutpie", "arviz", "arviz-base", "arviz-stats", "arviz-plots",
    "numpy", "numba", "scipy", "xarray", "pandas", "matplotlib", "jinja2", "torch", "zuko", "dask", "distributed",
)


def versions() -> dict[str, str]:
    """Installed versions of Python and of bayesid's main dependencies.

    Returns
    -------
    dict
        Package name to version string; ``"not installed"`` for optional packages that are absent.
    """
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def main() -> None:
    print("bayesid stack: " + ", ".join(f"{k} {v}" for k, v in versions().items()))


if __name__ == "__main__":
    main()
