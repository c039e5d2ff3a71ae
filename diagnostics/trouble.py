"""Is a sampling failure caused by non-identification? (numpy core; partial: ridge test only).

:func:`ridge_trouble` projects the sampler's trouble onto the model's uninformed directions (Fisher
null space, prior-whitened coordinates) and onto their complement (the identified directions):

* between-chain disagreement: R-hat of the draws projected on each basis vector;
* divergences: standardized shift of the divergent draws' mean from the mean of all draws along
  each basis vector, ``t = (mean_div − mean_all) / (sd_all / sqrt(n_div))``.

The trouble is a **ridge** when some null projection fails (R-hat > ``rhat_max`` or ``|t| > t_max``)
and the failure along the identified projections is ``concentration`` times smaller; otherwise ``kind`` is None and the verdict stays
"not converged". Not yet implemented: the swap test (chains in modes related by a permutation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Trouble", "ridge_trouble"]


@dataclass
class Trouble:
    """Structural cause of a sampling failure.

    Attributes
    ----------
    kind : {"ridge", "swap", None}
        None: no structural cause found ("not converged" stands).
    parameters : list of str
        Parameters loading on the troubled direction(s).
    combination : str or None
        Name of the identified combination, when known (filled by the caller).
    evidence : dict
        ``rhat_null``, ``rhat_identified`` (max per-projection R-hat), ``t_null``, ``t_identified``
        (max |t| of divergent draws), ``n_divergent``.
    advice : str
    """

    kind: str | None
    parameters: list = field(default_factory=list)
    combination: str | None = None
    evidence: dict = field(default_factory=dict)
    advice: str = ""


def _rhat(x):
    import arviz_stats as azs

    return float(azs.rhat(x, chain_axis=0, draw_axis=1))


def ridge_trouble(posterior_unc, white, null_vectors, names, divergent=None, rhat_max: float = 1.01,
                  t_max: float = 4.0, loading_tol: float = 0.15, concentration: float = 5.0) -> Trouble:
    """Is the sampler's trouble concentrated along uninformed directions?

    Parameters
    ----------
    posterior_unc : ndarray (chains, draws, d)
        Unconstrained posterior draws.
    white : Whitening
        Prior whitening (same component order as ``names``).
    null_vectors : ndarray (d, k)
        Uninformed directions in whitened coordinates (e.g. Fisher eigenvectors with λ < tol).
    names : list of str
    divergent : ndarray (chains, draws) of bool, optional
    rhat_max, t_max : float
        Failure cut-offs for a projection (R-hat as in :mod:`.convergence`; ``t_max`` standard errors).
    concentration : float
        How many times larger the failure along the null directions must be than along the identified
        ones (R-hat excess over 1, or divergence shift) for the trouble to count as concentrated.
    loading_tol : float
        Displacement loading (max-normalised) for a parameter to count as on the ridge.
    """
    q = np.asarray(posterior_unc, float)
    C, N, d = q.shape
    null = np.atleast_2d(np.asarray(null_vectors, float).reshape(d, -1))
    if null.shape[1] == 0:
        return Trouble(None, evidence={"reason": "no uninformed direction"})
    qn, _ = np.linalg.qr(null)
    full, _ = np.linalg.qr(np.concatenate([qn, np.eye(d)], axis=1))
    basis = full[:, :d]
    k = qn.shape[1]
    z = white.whiten(q.reshape(-1, d)) @ basis
    zc = z.reshape(C, N, d)
    rh = np.array([_rhat(zc[:, :, j]) for j in range(d)]) if C > 1 else np.full(d, np.nan)
    t = np.zeros(d)
    nd = 0
    if divergent is not None:
        div = np.asarray(divergent, bool).reshape(-1)
        nd = int(div.sum())
        if nd:
            t = (z[div].mean(0) - z.mean(0)) / (z.std(0, ddof=1) / np.sqrt(nd))
    bad = (rh > rhat_max) | (np.abs(t) > t_max)
    ev = {"rhat_null": float(np.nanmax(rh[:k])) if C > 1 else np.nan,
          "rhat_identified": float(np.nanmax(rh[k:])) if C > 1 and k < d else np.nan,
          "t_null": float(np.abs(t[:k]).max()), "t_identified": float(np.abs(t[k:]).max()) if k < d else 0.0,
          "n_divergent": nd}
    # concentrated: the null projections fail and the identified ones' excess is `concentration`
    # times smaller (identified projections of converged chains fluctuate around R-hat 1.005-1.01)
    ex_null = np.nanmax(np.r_[rh[:k] - 1.0, 0.0]) if C > 1 else 0.0
    ex_id = np.nanmax(np.r_[rh[k:] - 1.0, 0.0]) if C > 1 else 0.0
    rh_ok = ex_null <= rhat_max - 1.0 or ex_id * concentration <= ex_null
    t_ok = not (np.abs(t[k:]) > t_max).any() or np.abs(t[:k]).max() >= concentration * np.abs(t[k:]).max()
    if bad[:k].any() and rh_ok and t_ok:
        disp = white.chol @ qn
        disp = disp / np.abs(disp).max(axis=0, keepdims=True)
        params = [names[i] for i in range(d) if np.abs(disp[i]).max() >= loading_tol]
        return Trouble("ridge", params, None, ev,
                       f"The sampler struggles along a direction the data do not inform (moving "
                       f"{', '.join(params)} together); more draws will not help. Reparametrize into "
                       "the identified combination, or add data or prior information that fixes the ridge.")
    return Trouble(None, evidence=ev)
