"""Plain-PyMC models that more than one test file uses, written once."""

from __future__ import annotations

import numpy as np
import pymc as pm

#: Eight schools (Rubin 1981): estimated coaching effects and their standard errors.
EIGHT_SCHOOLS_Y = np.array([28., 8, -3, 7, -1, 1, 18, 12])
EIGHT_SCHOOLS_SIGMA = np.array([15., 10, 16, 11, 9, 11, 10, 18])


def eight_schools(centered: bool = True) -> pm.Model:
    """The eight-schools model, mu ~ N(0, 5), tau ~ HalfNormal(5): centred (``theta ~ N(mu, tau)``, the
    funnel NUTS struggles with) or non-centred (``theta = mu + tau·z``, ``z ~ N(0, 1)``)."""
    with pm.Model(coords={"school": np.arange(8)}) as m:
        mu, tau = pm.Normal("mu", 0, 5), pm.HalfNormal("tau", 5)
        if centered:
            theta = pm.Normal("theta", mu, tau, dims="school")
        else:
            theta = mu + tau * pm.Normal("z", 0, 1, dims="school")
        pm.Normal("y", theta, EIGHT_SCHOOLS_SIGMA, observed=EIGHT_SCHOOLS_Y, dims="school")
    return m
