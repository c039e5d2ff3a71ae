"""Posterior contraction and z-scores (numpy core).

contraction  c_i = 1 − Var_post(θ_i) / Var_prior(θ_i)    (Schad, Betancourt & Vasishth 2021;
                                                           Betancourt 2018, "Calibrating model-based inferences")
z-score      z_i = (E_post θ_i − θ*_i) / SD_post θ_i       where a true value θ* is known.
"""

from __future__ import annotations

import numpy as np

__all__ = ["contraction", "contraction_se", "relative_variance_se", "zscore", "bimodality"]


def contraction(prior: np.ndarray, posterior: np.ndarray) -> np.ndarray:
    """Per-column contraction ``1 − Var_post / Var_prior``.

    Parameters
    ----------
    prior : ndarray, shape (n_prior, d)
    posterior : ndarray, shape (..., d)
        Any leading sample dimensions (e.g. chains, draws).

    Returns
    -------
    ndarray, shape (d,)
        1 means the data pin the parameter down, 0 that the posterior is as wide as the prior;
        negative values mean the posterior is wider than the prior (prior–data conflict or a
        heavy-tailed likelihood).
    """
    prior = np.asarray(prior, float)
    posterior = np.asarray(posterior, float).reshape(-1, prior.shape[-1])
    vprior = prior.var(axis=0, ddof=1)
    if np.any(vprior <= 0):
        raise ValueError("A prior variance is zero: a parameter is fixed in the prior draws.")
    return 1.0 - posterior.var(axis=0, ddof=1) / vprior


def relative_variance_se(draws: np.ndarray) -> np.ndarray:
    """Relative Monte Carlo standard error of the variance of each column.

    The variance is the mean of the squared deviations ``s = (x − x̄)²``; its MCSE is
    ``sd(s) / sqrt(ESS(s))``, with the ESS of the squares themselves (arviz-stats, chains kept apart):
    this holds for any distribution of x (no Gaussian ``2/n``) and for autocorrelated or antithetic
    NUTS draws, whose ESS for the mean can far exceed the ESS for the variance.

    Parameters
    ----------
    draws : ndarray, shape (chains, draws, d) or (n, d)
        MCMC draws (chain structure kept) or independent draws.
    """
    import arviz_stats as azs

    x = np.asarray(draws, float)
    if x.ndim == 2:
        x = x[None]
    sq = (x - x.reshape(-1, x.shape[-1]).mean(axis=0)) ** 2
    ess = np.atleast_1d(azs.ess(sq, chain_axis=0, draw_axis=1, method="bulk")) if x.shape[1] > 3 else \
        np.full(x.shape[-1], float(x.shape[0] * x.shape[1]))
    flat = sq.reshape(-1, sq.shape[-1])
    return flat.std(axis=0, ddof=1) / (flat.mean(axis=0) * np.sqrt(ess))


def contraction_se(prior, posterior) -> np.ndarray:
    """Monte Carlo standard error of :func:`contraction`: ``se(1 − r) = r·sqrt(ρ_post² + ρ_prior²)``
    with ``ρ`` the relative MCSEs of the two variances (:func:`relative_variance_se`; prior draws are
    independent)."""
    prior = np.asarray(prior, float)
    r = 1.0 - contraction(prior, posterior)
    return np.abs(r) * np.hypot(relative_variance_se(posterior), relative_variance_se(prior))


def zscore(posterior: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Posterior z-score ``(E_post θ − θ*) / SD_post θ`` per column."""
    q = np.asarray(posterior, float)
    q = q.reshape(-1, q.shape[-1])
    return (q.mean(axis=0) - np.asarray(truth, float)) / q.std(axis=0, ddof=1)


def bimodality(posterior: np.ndarray) -> np.ndarray:
    """Sarle's bimodality coefficient per column, ``(g² + 1) / (κ + 3(n−1)²/((n−2)(n−3)))`` with
    sample skewness g and excess kurtosis κ (Pfister et al. 2013). A Gaussian gives 1/3, a uniform
    5/9; values above ``BIMODAL = 0.6`` suggest several modes — e.g. a discrete symmetry such as a
    label swap — which a unimodal variance summary would hide."""
    from scipy import stats

    q = np.asarray(posterior, float)
    q = q.reshape(-1, q.shape[-1])
    n = q.shape[0]
    g = stats.skew(q, axis=0, bias=False)
    k = stats.kurtosis(q, axis=0, bias=False)
    return (g**2 + 1.0) / (k + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


BIMODAL = 0.6
