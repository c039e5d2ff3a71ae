"""One call from a registered model name to a diagnosis: simulate → build → fit → diagnose."""

from __future__ import annotations

from pathlib import Path

from . import models
from .fit import fit

__all__ = ["diagnose_model"]


def diagnose_model(name, design=None, priors=None, truth=None, draws: int = 1000, tune: int = 1000,
                   chains: int = 4, random_seed: int = 0, data=None, cache_dir=None, progressbar=True,
                   fisher=True, **fit_kwargs):
    """Simulate a dataset from a registered model (or use ``data``), fit it and diagnose it.

    Parameters
    ----------
    name : str or ModelSpec
        Registered model name (see ``bayesid.models.list()``).
    design : str, optional
        Design name (default: the model's default design).
    priors : dict, optional
        Prior overrides ``{parameter: Prior}``.
    truth : dict, optional
        True parameter values for the simulation (default: the model's defaults).
    draws, tune, chains : int
        NUTS settings.
    random_seed : int
        Seeds the simulated data, the sampler and the diagnostics.
    data : dict, optional
        Observed data; if given, nothing is simulated and z-scores use ``truth`` only if given.
    cache_dir : path, optional
        Where the fitted DataTree is cached (resumable; see :func:`bayesid.fit`).

    Returns
    -------
    (Diagnosis, DataTree, pymc.Model)
    """
    import numpy as np

    from .diagnostics import diagnose

    spec = models.get(name)
    d = spec.design(design)
    seeds = np.random.SeedSequence(random_seed).spawn(2)
    if data is None:
        truth = truth or spec.true_values()
        data = spec.simulate(truth, design=d, random_seed=seeds[0])
    model = spec.build(data, design=d, priors=priors)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{spec.name}-{d.name}-{random_seed}.nc"
    kw = {**spec.sampler_kwargs(model), **fit_kwargs}
    tree = fit(model, draws=draws, tune=tune, chains=chains,
               random_seed=int(seeds[1].generate_state(1)[0]), cache=cache, progressbar=progressbar, **kw)
    diag = diagnose(tree, model=model if fisher else None, truth=truth, random_seed=random_seed,
                    title=f"{spec.name} — design {d.name}", progressbar=progressbar)
    diag.spec, diag.design = spec, d
    return diag, tree, model
