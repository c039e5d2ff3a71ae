"""Linear ridge directions from draws alone (numpy core).

Whiten the unconstrained posterior draws with the prior: ``z = L⁻¹(θ − μ_prior)`` with
``L Lᵀ = Σ_prior``. In whitened coordinates the prior has identity covariance, so each eigenvalue
``r_j`` of the posterior covariance of ``z`` is the posterior/prior variance ratio along its
eigenvector ``v_j``: ``r ≈ 1`` means the data leave that direction as uncertain as the prior did (a
ridge, not identified), ``r ≈ 0`` means the data pin it down. In the linear-Gaussian case
``r_j = 1 / (1 + λ_j)`` with ``λ_j`` the eigenvalues of the prior-whitened Fisher information,
which ties this module to :mod:`bayesid.diagnostics.fisher`.

Each direction is reported two ways, in unconstrained coordinates:

* ``displacement = L v`` — how the parameters move along the direction (the ridge itself);
* ``coefficients = L⁻ᵀ v`` — the linear combination ``cᵀθ`` whose variance the ratio describes
  (for an identified direction, the quantity the data determine).

For an isotropic prior the two coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Whitening", "whitening", "DirectionSet", "posterior_directions", "parameter_weights"]


@dataclass
class Whitening:
    """Affine map to prior-whitened unconstrained coordinates."""

    mean: np.ndarray
    cov: np.ndarray
    chol: np.ndarray  # L with L Lᵀ = cov

    def whiten(self, x):
        """(n, d) unconstrained points -> whitened coordinates."""
        x = np.atleast_2d(np.asarray(x, float))
        return np.linalg.solve(self.chol, (x - self.mean).T).T

    def unwhiten(self, z):
        z = np.atleast_2d(np.asarray(z, float))
        return z @ self.chol.T + self.mean


def whitening(prior_unc: np.ndarray, jitter: float = 1e-10) -> Whitening:
    """Prior mean, covariance and Cholesky factor of unconstrained prior draws ``(n, d)``."""
    prior_unc = np.asarray(prior_unc, float)
    mu = prior_unc.mean(axis=0)
    cov = np.atleast_2d(np.cov(prior_unc, rowvar=False))
    scale = np.sqrt(np.diag(cov))
    if np.any(scale <= 0):
        raise ValueError("A parameter does not vary in the prior draws; its prior variance is zero.")
    corr = cov / np.outer(scale, scale)
    L = np.linalg.cholesky(corr + jitter * np.eye(len(mu))) * scale[:, None]
    return Whitening(mu, cov, L)


@dataclass
class DirectionSet:
    """Eigen-decomposition of the prior-whitened posterior covariance, ascending ratios.

    Attributes
    ----------
    ratios : ndarray, shape (d,)
        Posterior/prior variance ratio along each direction (ascending).
    vectors : ndarray, shape (d, d)
        Unit eigenvectors in whitened coordinates (columns).
    displacements, coefficients : ndarray, shape (d, d)
        Columns, each normalised to max |.| = 1 and a positive largest entry.
    ratio_se : ndarray, shape (d,)
        Monte Carlo standard error of each ratio, from the ESS of the squared projections
        (:func:`bayesid.diagnostics.contraction.relative_variance_se`) and the prior sample size.
    """

    ratios: np.ndarray
    vectors: np.ndarray
    displacements: np.ndarray
    coefficients: np.ndarray
    ratio_se: np.ndarray


def _normalise_columns(m):
    m = np.array(m, float)
    for j in range(m.shape[1]):
        k = np.argmax(np.abs(m[:, j]))
        m[:, j] /= m[k, j]
    return m


def posterior_directions(white: Whitening, posterior_unc: np.ndarray, n_prior: int | None = None) -> DirectionSet:
    """Directions of the posterior relative to the prior.

    Parameters
    ----------
    white : Whitening
        From :func:`whitening` of the prior draws.
    posterior_unc : ndarray, shape (chains, draws, d) or (n, d)
        Unconstrained posterior draws (keep the chain structure for honest standard errors).
    n_prior : int, optional
        Number of prior draws (for the standard errors; Gaussian ``2/n`` relative variance).
    """
    from .contraction import relative_variance_se

    d = white.mean.size
    q = np.asarray(posterior_unc, float)
    lead = q.shape[:-1] if q.ndim == 3 else (1, q.shape[0])
    z = white.whiten(q.reshape(-1, d))
    cz = np.atleast_2d(np.cov(z, rowvar=False))
    r, v = np.linalg.eigh(cz)
    disp = _normalise_columns(white.chol @ v)
    coef = _normalise_columns(np.linalg.solve(white.chol.T, v))
    rel = relative_variance_se((z @ v).reshape(*lead, d))
    se = np.abs(r) * np.sqrt(rel**2 + (2.0 / n_prior if n_prior else 0.0))
    return DirectionSet(r, v, disp, coef, se)


def parameter_weights(white: Whitening, vectors: np.ndarray) -> np.ndarray:
    """Share of each parameter's prior variance that lies along each direction.

    ``w[i, j] = (l_i · v_j)² / ‖l_i‖²`` with ``l_i`` row ``i`` of the prior Cholesky factor. Rows sum
    to one, and the parameter's unconstrained contraction is exactly ``1 − Σ_j w[i, j]·r_j`` when the
    posterior covariance is diagonal in the basis ``v`` (as it is for :func:`posterior_directions`).
    """
    proj = (white.chol @ vectors) ** 2
    return proj / proj.sum(axis=1, keepdims=True)
