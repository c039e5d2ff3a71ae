"""A check shared by the gait tests: the PyMC program's log-likelihood against the simulator's."""

from __future__ import annotations

import numpy as np
from scipy import stats


def assert_loglik_matches_simulator(model, data, points, mean_of, sd):
    """The model's observed log-likelihood equals the Gaussian density of ``data`` around the simulator's
    noise-free output, at each parameter point.

    Parameters
    ----------
    model : pymc.Model
        Built on ``data``.
    data : dict
        Observed arrays by observed-variable name.
    points : iterable of dict
        Natural parameter values (a value variable ``x_log__`` is set to ``log x``).
    mean_of : callable
        ``point -> {observed name: noise-free mean}`` from the simulator.
    sd : dict
        Noise standard deviation per observed name.

    Notes
    -----
    Tolerance 1e-7 relative: pytensor's numba backend compiles with fastmath ('afn': approximate log),
    which moves log σ by ~1e-8 relative per element; a wrong mean would move the sum by orders more.
    """
    loglik = model.compile_fn(model.logp(vars=model.observed_RVs, sum=True), point_fn=True)
    obs = [v.name for v in model.observed_RVs]
    for t in points:
        mean = mean_of(t)
        direct = sum(stats.norm.logpdf(data[k], mean[k], sd[k]).sum() for k in obs)
        point = {}
        for v in model.value_vars:
            base = v.name.removesuffix("_log__")
            point[v.name] = np.log(t[base]) if v.name.endswith("_log__") else t[base]
        np.testing.assert_allclose(loglik(point), direct, rtol=1e-7)
