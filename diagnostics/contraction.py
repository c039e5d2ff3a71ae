"""Posterior contraction and z-scores (numpy core).

contraction  c_i = 1 − Var_post(θ_i) / Var_prior(θ_i)    (Schad, Betancourt & Vasishth 2021;
                                                           Betancourt 2018, "Calibrating model-based inferences")
z-score      z_i = (E_post θ_i − θ*_i) / SD_post θ_i       where a true value θ* is known.
"""

from __future__ import annotations

import numpy as np

__all__ = ["contraction", "contraction_se", "relative_variance_se", "ess_bulk", "zscore", "bimodality"]


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
    x = np.asarray(draws, float)
    if x.ndim == 2:
        x = x[None]
    sq = (x - x.reshape(-1, x.shape[-1]).mean(axis=0)) ** 2
    ess = ess_bulk(sq) if x.shape[1] > 3 else np.full(x.shape[-1], float(x.shape[0] * x.shape[1]))
    flat = sq.reshape(-1, sq.shape[-1])
    return flat.std(axis=0, ddof=1) / (flat.mean(axis=0) * np.sqrt(ess))


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties given their average rank (every row at once)."""
    a = np.ascontiguousarray(a)
    rows, n = a.shape
    order = np.argsort(a, axis=1)  # order within ties is irrelevant: they share the average
    srt = np.take_along_axis(a, order, axis=1)
    new = np.ones((rows, n), bool)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]
    if new.all():  # no ties (continuous draws): the average rank of each value is its position + 1
        ranks = np.empty((rows, n))
        ranks[np.arange(rows)[:, None], order] = np.arange(1.0, n + 1.0)
        return ranks
    flat = new.ravel()
    starts = np.flatnonzero(flat)
    ends = np.append(starts[1:], flat.size)
    base = (starts // n) * n
    avg = (starts - base + ends - 1 - base) / 2.0 + 1.0
    ranks = np.empty((rows, n))
    np.put_along_axis(ranks, order, avg[np.cumsum(flat) - 1].reshape(rows, n), axis=1)
    return ranks


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk effective sample size of every column at once (rank-normalised split chains, Geyer's
    initial monotone sequence; Vehtari et al. 2021).

    The same estimator, step for step, as ``arviz_stats.ess(x, chain_axis=0, draw_axis=1,
    method="bulk")`` — which loops over columns in Python — vectorised over the columns (a test
    compares the two; they agree to rounding). At 200 columns × 4000 draws it is ~10× faster.

    Parameters
    ----------
    x : ndarray, shape (chains, draws, d)
        Finite values, at least 4 draws per chain.
    """
    from scipy.fft import next_fast_len
    from scipy.special import ndtri

    x = np.asarray(x, float)
    _, n0, d = x.shape
    half = n0 // 2
    sp = np.concatenate([x[:, :half], x[:, n0 - half:]], axis=0)  # split chains
    m, n, _ = sp.shape
    flat = sp.reshape(-1, d)
    size = flat.shape[0]
    rank = _average_ranks(flat.T).T  # = scipy.stats.rankdata(flat, method="average", axis=0), exactly
    z = ndtri((rank - 3 / 8) / (size - 2 * 3 / 8 + 1)).reshape(sp.shape)  # = scipy.stats.norm.ppf
    const = (z.max(axis=(0, 1)) - z.min(axis=(0, 1))) < np.finfo(float).resolution
    # autocovariance of every chain and column by FFT
    nf = next_fast_len(2 * n)
    zc = z - z.mean(axis=1, keepdims=True)
    f = np.fft.rfft(zc, n=nf, axis=1)
    f *= np.conjugate(f)
    acov = np.fft.irfft(f, n=nf, axis=1)[:, :n] / n  # (m, n, d)
    mac = acov.mean(axis=0)  # (n, d): mean over chains per lag
    mean_var = mac[0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + np.var(z.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.zeros((n, d))
        rho[0] = 1.0
        even = np.ones(d)
        odd = 1.0 - (mean_var - mac[1]) / var_plus
        rho[1] = odd
        # Geyer's initial positive sequence, every column advancing while its pair sum stays positive
        t, t_end, act = 1, np.full(d, 1), np.ones(d, bool)
        while True:
            cond = act & (t < n - 3) & (even + odd > 0.0)
            t_end[act & ~cond] = t
            act = cond
            if not act.any():
                break
            re = 1.0 - (mean_var - mac[t + 1]) / var_plus
            ro = 1.0 - (mean_var - mac[t + 2]) / var_plus
            even, odd = np.where(act, re, even), np.where(act, ro, odd)
            keep = act & (re + ro >= 0)
            rho[t + 1, keep], rho[t + 2, keep] = re[keep], ro[keep]
            t += 2
        max_t = t_end - 2
        cols = np.arange(d)
        pos = even > 0
        rho[max_t[pos] + 1, cols[pos]] = even[pos]
        # Geyer's initial monotone sequence
        t = 1
        while t <= max_t.max() - 2:
            sel = (t <= max_t - 2) & ((rho[t + 1] + rho[t + 2]) > (rho[t - 1] + rho[t]))
            rho[t + 1, sel] = (rho[t - 1, sel] + rho[t, sel]) / 2.0
            rho[t + 2, sel] = rho[t + 1, sel]
            t += 2
        lag = np.arange(n)[:, None]
        tail = np.where(max_t + 1 < n, rho[np.minimum(max_t + 1, n - 1), cols], 0.0)
        tau = -1.0 + 2.0 * np.where(lag <= max_t, rho, 0.0).sum(axis=0) + tail
        tot = m * n
        tau = np.maximum(tau, 1.0 / np.log10(tot))
        ess = tot / tau
    ess[np.isnan(rho).any(axis=0)] = np.nan
    ess[const] = size
    return ess


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
