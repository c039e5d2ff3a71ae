"""Array-level metrics of a neural comparison (plain numpy, no model, no estimator).

* :func:`ratio_ci` — error variance ratio ``mean(err²) / var(truth)`` with a percentile-bootstrap 95 %
  interval over datasets;
* :func:`ridge_share` — the share of an error's variance explained (least squares) by the true
  coordinates along the ridges;
* :func:`neural_verdict` — "recovered" / "partly recovered" / "regresses to the prior", with cut-offs
  taken from the diagnosis' :class:`~bayesid.diagnostics.Thresholds`, so that "recovered" and
  "identified" mean the same thing.
"""

from __future__ import annotations

import numpy as np

from bayesid.diagnostics.verdicts import Thresholds

__all__ = ["ratio_ci", "ridge_share", "neural_verdict", "cutoffs", "RECOVERED_RATIO", "PRIOR_RATIO",
           "RECOVERED", "PARTLY", "PRIOR"]

RECOVERED, PARTLY, PRIOR = "recovered", "partly recovered", "regresses to the prior"


def cutoffs(thresholds: Thresholds | None = None) -> tuple[float, float]:
    """``(recovered_ratio, prior_ratio)``: an error ratio at most ``1 − identified`` is "recovered", at
    least ``ridge`` "regresses to the prior" (the diagnosis' own direction cut-offs)."""
    th = thresholds or Thresholds()
    return 1.0 - th.identified, th.ridge


#: Default cut-offs, derived from :class:`Thresholds` (0.5 and 0.8).
RECOVERED_RATIO, PRIOR_RATIO = cutoffs()


def neural_verdict(ratio: float, thresholds: Thresholds | None = None) -> str:
    """Neural verdict of an error variance ratio (``""`` when it is not finite)."""
    if not np.isfinite(ratio):
        return ""
    rec, pri = cutoffs(thresholds)
    if ratio <= rec:
        return RECOVERED
    if ratio >= pri:
        return PRIOR
    return PARTLY


def ratio_ci(err, truth, n_boot: int, rng) -> tuple[float, float, float]:
    """``MSE(err) / var(truth)`` and its percentile-bootstrap 95 % interval over datasets.

    Parameters
    ----------
    err, truth : ndarray (n,)
        Estimation errors and true values of one quantity over ``n`` held-out datasets.
    n_boot : int
        Bootstrap resamples.
    rng : numpy.random.Generator
    """
    err, truth = np.asarray(err, float), np.asarray(truth, float)
    r = float(np.mean(err ** 2) / np.var(truth))
    n = len(err)
    idx = rng.integers(0, n, (n_boot, n))
    rb = np.mean(err[idx] ** 2, axis=1) / np.var(truth[idx], axis=1)
    lo, hi = np.quantile(rb, [0.025, 0.975])
    return r, float(lo), float(hi)


def ridge_share(err, ridge_truth) -> float:
    """Fraction of ``var(err)`` explained by an affine fit on the ridge coordinates ``ridge_truth``
    (n, k): ≈ 1 when the error *is* the ridge, ≈ k/n (χ²_k / n) when it is unrelated."""
    err = np.asarray(err, float)
    ridge_truth = np.asarray(ridge_truth, float).reshape(len(err), -1)
    if ridge_truth.shape[1] == 0:
        return 0.0
    X = np.column_stack([np.ones(len(err)), ridge_truth])
    res = err - X @ np.linalg.lstsq(X, err, rcond=None)[0]
    return float(1.0 - res.var() / max(err.var(), 1e-300))
