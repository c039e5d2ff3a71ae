"""Prior and likelihood sensitivity: a thin wrapper over ArviZ's power-scaling ``psense``.

Kallioinen, Paananen, Bürkner & Vehtari (2023). psense needs ``log_prior`` and ``log_likelihood``
groups (``bayesid.fit`` adds both). It answers a per-parameter question — does the marginal move when
the prior or the likelihood is power-scaled? — and says nothing about directions; bayesid shows it
next to its own verdicts.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd

__all__ = ["prior_sensitivity"]


def prior_sensitivity(tree, var_names, names=None) -> tuple[pd.DataFrame | None, str]:
    """Run ``arviz_stats.psense_summary`` on ``var_names``.

    Returns
    -------
    (DataFrame or None, str)
        Columns ``prior``, ``likelihood``, ``diagnosis`` indexed like ``names`` (component names),
        or None and the reason it could not be computed.
    """
    missing = [g for g in ("log_prior", "log_likelihood") if g not in tree.children]
    if missing:
        return None, (f"prior sensitivity skipped: the tree has no {' / '.join(missing)} group "
                      "(bayesid.fit adds them; otherwise pymc.stats.compute_log_prior / compute_log_likelihood)")
    import arviz_stats as azs

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                df = psense_table(tree, list(var_names))
            except (ImportError, AttributeError, TypeError):  # arviz-stats internals moved: its own loop
                df = azs.psense_summary(tree, var_names=list(var_names))
    except Exception as err:  # psense can fail on exotic trees; the rest of the diagnosis still stands
        return None, f"prior sensitivity failed: {type(err).__name__}: {err}"
    df = pd.DataFrame(df)
    if names is not None and len(df) == len(names):
        df.index = list(names)
    return df, ""


def _sorted_columns(x):
    """Every column of ``x`` (n, k) sorted, and the sorting permutation — shared by all the
    reweightings of one psense call (8 of them: 2 groups × 2 alphas × ±x)."""
    order = np.argsort(x, axis=0)
    return np.take_along_axis(x, order, axis=0), order


def _cjs(xs, order, w, flip=False):
    """Cumulative Jensen–Shannon distance between the draws and their reweighting by ``w`` (n,),
    every column at once — ArviZ's ``_cjs_dist`` step for step (Kallioinen et al. 2023).

    ``xs``, ``order``: the columns sorted and their permutation (:func:`_sorted_columns`). With
    ``flip`` the distance is that of ``-x``, whose sorted columns are those of ``x`` reversed and
    negated (ties only change the order within runs of equal values, whose bin widths are zero)."""
    n = xs.shape[0]
    ws = w[order].T  # (k, n): rows summed like ArviZ's 1-d arrays
    if flip:
        xs, ws = -xs[::-1], ws[:, ::-1]
    ws = np.ascontiguousarray(ws)
    binwidth = np.diff(xs, axis=0).T
    cdf_p = np.linspace(1 / n, 1 - 1 / n, n - 1)[None, :]
    cdf_q = np.cumsum(ws / ws.sum(axis=1, keepdims=True), axis=1)[:, :-1]
    p_int = np.einsum("j,kj->k", cdf_p[0], binwidth)
    q_int = np.einsum("kj,kj->k", cdf_q, binwidth)
    with np.errstate(divide="ignore", invalid="ignore"):
        pq = np.where(cdf_p != 0, np.log2(cdf_p), 0.0)
        qp = np.where(cdf_q != 0, np.log2(cdf_q), 0.0)
        den = 0.5 * (cdf_p + cdf_q)
        den = np.where(den != 0, np.log2(den), 0.0)
    cjs_pq = np.maximum(0, np.sum(binwidth * (cdf_p * (pq - den)), axis=1) + 0.5 / np.log(2) * (q_int - p_int))
    cjs_qp = np.maximum(0, np.sum(binwidth * (cdf_q * (qp - den)), axis=1) + 0.5 / np.log(2) * (p_int - q_int))
    return np.sqrt((cjs_pq + cjs_qp) / (p_int + q_int))


def psense_table(tree, var_names, alphas=(0.99, 1.01), threshold: float = 0.05, round_to: int = 3):
    """``arviz_stats.psense_summary`` with the per-parameter distances computed for all columns at once.

    The power-scaling importance weights come from ArviZ itself (its Pareto-smoothed
    ``_get_power_scale_weights``; they are shared by every parameter); the sensitivity of each
    parameter — the finite-difference derivative of the cumulative Jensen–Shannon distance between
    the posterior and its reweightings — is ArviZ's formula evaluated on the whole (draws, d) matrix
    instead of one Python call per parameter, alpha, sign and component (1600 calls at d = 200).
    A test compares it with ``psense_summary``.

    Returns
    -------
    DataFrame
        Columns ``prior``, ``likelihood``, ``diagnosis``; one row per scalar component, variables in
        ``var_names`` order, each flattened in C order.
    """
    from arviz_stats.psense import _get_power_scale_weights

    post = tree["posterior"].to_dataset()
    x = np.concatenate([post[v].transpose("chain", "draw", ...).values.reshape(
        post.sizes["chain"] * post.sizes["draw"], -1) for v in var_names], axis=1).astype(float)
    xs, order = _sorted_columns(x)
    out = {}
    for group in ("prior", "likelihood"):
        lw, uw = _get_power_scale_weights(tree, alphas=alphas, group=group, sample_dims=["chain", "draw"])
        lw = lw.transpose("chain", "draw").values.ravel()
        uw = uw.transpose("chain", "draw").values.ravel()
        lower = np.maximum(_cjs(xs, order, lw), _cjs(xs, order, lw, flip=True))
        upper = np.maximum(_cjs(xs, order, uw), _cjs(xs, order, uw, flip=True))
        out[group] = (-lower / np.log2(alphas[0]) + upper / np.log2(alphas[1])) / 2
    df = pd.DataFrame(out)
    df["diagnosis"] = ["potential prior-data conflict" if p >= threshold and lk >= threshold else
                       "potential strong prior / weak likelihood" if p > threshold > lk else "✓"
                       for p, lk in zip(df["prior"], df["likelihood"])]
    return df.round(round_to)
