"""Mixed-effects (multilevel) regression: fixed effects, random intercepts and slopes, a cluster covariate.

``J`` clusters (subjects, sites, batches) of ``n`` observations each:

    y_ij = α + β x_ij + γ w_ij + b_j + u_j x_ij + ε_ij,   b_j ~ N(0, τ²), u_j ~ N(0, τ_u²), ε_ij ~ N(0, σ²)

with an observation-level covariate ``x`` (the same grid ``x_i = linspace(−1, 1, n)`` in every cluster),
a covariate ``w`` whose effect ``γ`` is of interest, random intercepts ``b`` and random slopes ``u``.
The noise sd ``σ`` is a design setting (known measurement error), so that given the scales ``(τ, τ_u)``
the model is linear-Gaussian and its exact posterior is a two-dimensional quadrature away
(:func:`linear_mixed_posterior`).

Forms
-----
``mixed.regression`` (:class:`MixedRegression`)
    Centred: ``b ~ N(0, τ)``, ``u ~ N(0, τ_u)`` are the sampled variables (the funnel between τ and b
    is a sampling difficulty, not a ridge).
``mixed.noncentred`` (:class:`MixedRegressionNonCentred`)
    Non-centred: ``z_b, z_u ~ N(0, 1)`` are sampled, ``b = τ z_b`` and ``u = τ_u z_u`` are deterministics.

Designs
-------
``between`` — the confounded case: ``w_ij = w_j`` is constant within a cluster (a cluster-level covariate,
``w_j = linspace(−0.5, 0.5, J)``) and there are few clusters.
``within`` — negative control: ``w_ij = w_j + d_i`` also varies within clusters (``d_i = ±0.5``,
alternating, nearly orthogonal to ``x``).

Known answer (exact for the Normal model)
-----------------------------------------
Because the grid ``x`` is centred (``x̄ = 0``), the cluster means ``ȳ_j = α + γ w_j + b_j + ε̄_j`` and the
within-cluster deviations ``y_ij − ȳ_j = (β + u_j) x_i (+ γ d_i) + (ε_ij − ε̄_j)`` are independent. Under
``between`` the likelihood ``p(y | α, β, γ, b, u)`` is constant along the two directions
``(Δα, Δb_j) = (1, −1)`` and ``(Δγ, Δb_j) = (1, −w_j)``: only ``α + γ w_j + b_j`` enters. What separates
γ from the random intercepts is the random-effect distribution alone: with ``b`` integrated out,
``ȳ_j | α, γ, τ ~ N(α + γ w_j, τ² + σ²/n)`` — a regression on ``J`` points — so, given τ, exactly

    Cov_post(α, γ | τ) = [diag(1/s_α², 1/s_γ²) + Wᵀ W / (τ² + σ²/n)]⁻¹,   W = [1, w_j],

which stays bounded away from zero however many observations a cluster has (``n → ∞`` leaves
``Wᵀ W / τ²``), and the identified combination is ``γ + b_w`` with ``b_w = Σ w_j b_j / Σ w_j²``
(posterior variance ≈ σ² / (n Σ w_j²)): γ and the w-weighted mean of the random intercepts trade off
(posterior correlation → −1 as ``σ²/n ≪ τ²``), and likewise α and the mean of the random intercepts.
Under ``within`` the deviations carry ``γ d_i``: the information about γ grows like ``n J Σ d_i² / σ²``
and γ is identified whatever the number of clusters.

The slope on ``x`` has the same structure one level down, in both designs: the within-cluster deviations
carry only ``β + u_j``, so the likelihood is also flat along ``(Δβ, Δu_j) = (1, −1)`` and β trades off
against the mean of the random slopes. With ``S_xx = Σ_i x_i²`` and the per-cluster least-squares slopes
``s_j ~ N(β + u_j, σ²/S_xx)`` (design ``between``, where the deviations hold nothing else), exactly

    Var(β | τ_u, y) = [1/s_β² + J / (τ_u² + σ²/S_xx)]⁻¹,   Var(β | u, τ_u, y) = [1/s_β² + J S_xx/σ²]⁻¹,

so the share of β's posterior variance (given τ_u) explained by the random slopes is
``R²(τ_u) = 1 − Var(β | u, τ_u, y) / Var(β | τ_u, y)`` (:meth:`MixedRegression.beta_share`): it grows
with ``τ_u² S_xx / σ²`` and does not vanish as J grows. With the defaults (J = 4, n = 10, σ = 0.5)
``R² ≥ 0.8`` — read by :func:`bayesid.diagnostics.hierarchy.levels` as confounded — once
``τ_u ≳ 0.52``; at the true ``τ_u = 0.3`` it is 0.59. Integrated over the posterior of ``τ_u`` the share
is the exact posterior's ``Cov(β, u) Cov(u)⁻¹ Cov(u, β) / Var(β)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import BadDataError, Design, KnownAnswer, ModelSpec, Parameter
from .priors import Prior

__all__ = ["MixedRegression", "MixedRegressionNonCentred", "ExactPosterior", "linear_mixed_posterior",
           "design_matrix"]

_LINEAR = ("alpha", "beta", "gamma")


# --------------------------------------------------------------------------- exact posterior
@dataclass
class ExactPosterior:
    """Exact posterior moments of the linear-Gaussian mixed model, integrated over the scales.

    Attributes
    ----------
    names : list of str
        ``alpha, beta, gamma, b[0..J-1], u[0..J-1]``.
    mean, cov : ndarray
        Posterior mean ``(p,)`` and covariance ``(p, p)`` of those coefficients.
    scale_mean, scale_var : dict
        Posterior mean and variance of ``tau``, ``tau_u`` (and of their logs, ``log_tau``...).
    grid_points : int
        Quadrature nodes used in the final (refined) pass.
    """

    names: list
    mean: np.ndarray
    cov: np.ndarray
    scale_mean: dict
    scale_var: dict
    grid_points: int
    grid: dict | None = None  # log_tau, log_tau_u, weight, means, covs of the refined pass (for sample)

    def index(self, name) -> int:
        return self.names.index(name)

    def var(self, name) -> float:
        i = self.index(name)
        return float(self.cov[i, i])

    def combination(self, coef: dict) -> tuple[float, float]:
        """Posterior mean and variance of ``Σ coef[name] · name``."""
        v = np.zeros(len(self.names))
        for k, c in coef.items():
            v[self.index(k)] = c
        return float(v @ self.mean), float(v @ self.cov @ v)

    def sample(self, n, random_seed=None) -> dict:
        """Independent draws from the exact posterior: a quadrature node per draw (by its weight), then
        the Gaussian conditional of the coefficients at that node.

        Returns
        -------
        dict
            ``alpha, beta, gamma, tau, tau_u`` (n,), ``b, u`` (n, J). The scales are the nodes of the
            refined grid (a discrete approximation of their posterior, as fine as the quadrature).
        """
        if self.grid is None:
            raise ValueError("this ExactPosterior keeps no quadrature grid to sample from")
        rng = np.random.default_rng(random_seed)
        g = self.grid
        node = rng.choice(g["weight"].size, size=int(n), p=g["weight"])
        out = np.empty((int(n), len(self.names)))
        for k in np.unique(node):
            sel = np.flatnonzero(node == k)
            L = np.linalg.cholesky(g["covs"][k] + 1e-14 * np.eye(len(self.names)))
            out[sel] = g["means"][k] + rng.standard_normal((sel.size, len(self.names))) @ L.T
        J = (len(self.names) - 3) // 2
        res = {k: out[:, i] for i, k in enumerate(_LINEAR)}
        res["b"], res["u"] = out[:, 3:3 + J], out[:, 3 + J:]
        res["tau"], res["tau_u"] = np.exp(g["log_tau"][node]), np.exp(g["log_tau_u"][node])
        return res


def design_matrix(x, w, cluster, n_clusters) -> np.ndarray:
    """Columns ``[1, x, w, onehot(cluster), onehot(cluster)·x]`` of the linear mixed model."""
    x, w = np.asarray(x, float).ravel(), np.asarray(w, float).ravel()
    cluster = np.asarray(cluster, int).ravel()
    if not (x.shape == w.shape == cluster.shape):
        raise BadDataError(f"x, w and cluster must have the same length, got {x.shape}, {w.shape}, {cluster.shape}")
    if cluster.min() < 0 or cluster.max() >= n_clusters:
        raise BadDataError(f"cluster labels must lie in 0..{n_clusters - 1}")
    oh = np.zeros((x.size, n_clusters))
    oh[np.arange(x.size), cluster] = 1.0
    return np.column_stack([np.ones_like(x), x, w, oh, oh * x[:, None]])


def _normal_params(prior, name):
    if prior.dist != "normal":
        raise ValueError(f"the exact posterior needs a Normal prior for {name}, got {prior!r}")
    return prior.params["mu"], prior.params["sigma"]


def _log_grid(prior, n):
    """Uniform grid in log scale covering the prior's mass (0.01 % … 99.9999 %)."""
    d = prior.scipy()
    lo, hi = float(d.ppf(1e-4)), float(d.ppf(1 - 1e-6))
    return np.linspace(np.log(lo), np.log(hi), n)


def _grid_pass(A, Phi_r, rr, mu0, s_fixed, J, sigma, n_obs, lt, ltu, chunk=512):
    """Log weights, conditional means and covariances on the grid (log τ, log τ_u)."""
    T, TU = np.meshgrid(lt, ltu, indexing="ij")
    T, TU = T.ravel(), TU.ravel()
    p = A.shape[0]
    G = T.size
    logw = np.empty(G)
    means = np.empty((G, p))
    covs = np.empty((G, p, p))
    idx = np.arange(p)
    for s in range(0, G, chunk):
        t, tu = np.exp(T[s:s + chunk]), np.exp(TU[s:s + chunk])
        g = t.size
        lam = np.empty((g, p))
        lam[:, :3] = 1.0 / s_fixed**2
        lam[:, 3:3 + J] = (1.0 / t**2)[:, None]
        lam[:, 3 + J:] = (1.0 / tu**2)[:, None]
        P = np.broadcast_to(A, (g, p, p)).copy()
        P[:, idx, idx] += lam
        L = np.linalg.cholesky(P)
        Pinv = np.linalg.inv(P)
        # posterior mean of the deviation from the prior mean: P^{-1} Φᵀ r / σ²
        m = Pinv @ Phi_r
        logdetP = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
        logdetS = -np.log(lam).sum(1)
        quad = rr / sigma**2 - np.einsum("i,gi->g", Phi_r, m)
        logw[s:s + g] = -0.5 * (n_obs * np.log(2 * np.pi * sigma**2) + logdetS + logdetP + quad)
        means[s:s + g] = mu0 + m
        covs[s:s + g] = Pinv
    return T, TU, logw, means, covs


def linear_mixed_posterior(y, x, w, cluster, n_clusters, sigma, priors, n_grid=60) -> ExactPosterior:
    """Exact posterior of the linear mixed model with known noise sd, by quadrature over the scales.

    Given ``(τ, τ_u)`` the coefficients ``(α, β, γ, b, u)`` have a Gaussian posterior with precision
    ``P = ΦᵀΦ/σ² + Λ`` (Λ the prior precision), and the marginal likelihood ``p(y | τ, τ_u)`` is
    Gaussian in closed form (matrix determinant lemma and Woodbury). The scales are integrated on a
    uniform grid in ``(log τ, log τ_u)`` (prior density × Jacobian), first over the prior's range, then
    on an ``n_grid × n_grid`` grid refined to where the posterior weight is above e⁻²⁵ of its maximum.

    Parameters
    ----------
    y, x, w : array_like
        Responses and covariates, one entry per observation (any shape; flattened).
    cluster : array_like of int
        Cluster label of each observation, in ``0 .. n_clusters − 1``.
    n_clusters : int
    sigma : float
        Known noise sd.
    priors : dict of str -> Prior
        ``alpha``, ``beta``, ``gamma`` (Normal) and ``tau``, ``tau_u`` (any positive prior).
    n_grid : int
        Nodes per scale in the refined pass.

    Returns
    -------
    ExactPosterior
    """
    y = np.asarray(y, float).ravel()
    Phi = design_matrix(x, w, cluster, n_clusters)
    if Phi.shape[0] != y.size:
        raise BadDataError(f"y has {y.size} entries but the covariates {Phi.shape[0]}")
    J = int(n_clusters)
    mu_s = [_normal_params(priors[k], k) for k in _LINEAR]
    mu0 = np.zeros(Phi.shape[1])
    mu0[:3] = [m for m, _ in mu_s]
    s_fixed = np.array([s for _, s in mu_s])
    r = y - Phi @ mu0
    A = Phi.T @ Phi / sigma**2
    Phi_r = Phi.T @ r / sigma**2
    rr = float(r @ r)
    pt_, pu_ = priors["tau"], priors["tau_u"]
    for k in ("tau", "tau_u"):
        if priors[k].domain != "positive":
            raise ValueError(f"{k} needs a prior on (0, ∞), got {priors[k]!r}")

    def weights(lt, ltu):
        T, TU, logw, means, covs = _grid_pass(A, Phi_r, rr, mu0, s_fixed, J, sigma, y.size, lt, ltu)
        logw = logw + pt_.logpdf(np.exp(T)) + T + pu_.logpdf(np.exp(TU)) + TU
        return T, TU, logw, means, covs

    lt, ltu = _log_grid(pt_, 40), _log_grid(pu_, 40)
    T, TU, logw, _, _ = weights(lt, ltu)
    keep = logw > logw.max() - 25.0
    dt, dtu = lt[1] - lt[0], ltu[1] - ltu[0]
    lt = np.linspace(T[keep].min() - dt, T[keep].max() + dt, n_grid)
    ltu = np.linspace(TU[keep].min() - dtu, TU[keep].max() + dtu, n_grid)
    T, TU, logw, means, covs = weights(lt, ltu)
    wgt = np.exp(logw - logw.max())
    wgt /= wgt.sum()
    mean = wgt @ means
    second = np.einsum("g,gij->ij", wgt, covs) + np.einsum("g,gi,gj->ij", wgt, means, means)
    cov = second - np.outer(mean, mean)
    cov = 0.5 * (cov + cov.T)
    sm, sv = {}, {}
    for k, v in (("tau", np.exp(T)), ("tau_u", np.exp(TU)), ("log_tau", T), ("log_tau_u", TU)):
        sm[k] = float(wgt @ v)
        sv[k] = float(wgt @ (v - sm[k]) ** 2)
    names = list(_LINEAR) + [f"b[{j}]" for j in range(J)] + [f"u[{j}]" for j in range(J)]
    grid = {"log_tau": T, "log_tau_u": TU, "weight": wgt, "means": means, "covs": covs}
    return ExactPosterior(names, mean, cov, sm, sv, int(T.size), grid)


# --------------------------------------------------------------------------- the model spec
def _true_effects(n_clusters):
    """Fixed standard-normal draws (seeded) that define the default true random effects."""
    rng = np.random.default_rng(20240614)
    return rng.standard_normal(n_clusters), rng.standard_normal(n_clusters)


class MixedRegression(ModelSpec):
    """Linear mixed model, centred form (see the module docstring).

    Parameters
    ----------
    n_clusters : int
        Number of clusters ``J`` (the shape of ``b`` and ``u``).
    n_per : int
        Observations per cluster ``n`` (even, so that the within-cluster pattern is centred).
    sigma : float
        Known noise sd of every design.
    """

    name = "mixed.regression"
    description = ("Mixed-effects regression y = α + βx + γw + b_j + u_j x + ε (centred random effects): "
                   "a cluster-level covariate γ confounded with the random intercepts (design 'between').")
    centred = True

    def __init__(self, n_clusters=4, n_per=10, sigma=0.5):
        if n_clusters < 2 or n_per < 2 or n_per % 2:
            raise ValueError("need n_clusters ≥ 2 and an even n_per ≥ 2")
        self.n_clusters, self.n_per = int(n_clusters), int(n_per)
        J = self.n_clusters
        zb, zu = _true_effects(J)
        tau, tau_u = 1.0, 0.3
        fixed = (
            Parameter("alpha", Prior("normal", {"mu": 0.0, "sigma": 1.0}), 0.5, description="intercept"),
            Parameter("beta", Prior("normal", {"mu": 0.0, "sigma": 1.0}), 1.0,
                      description="slope on the observation-level covariate x"),
            Parameter("gamma", Prior("normal", {"mu": 0.0, "sigma": 1.0}), 0.8,
                      description="effect of the covariate w (cluster-level under design 'between')"),
            Parameter("tau", Prior("halfnormal", {"sigma": 1.0}), tau, description="sd of the random intercepts"),
            Parameter("tau_u", Prior("halfnormal", {"sigma": 0.5}), tau_u, description="sd of the random slopes"),
        )
        std = Prior("normal", {"mu": 0.0, "sigma": 1.0})
        if self.centred:
            re = (Parameter("b", std, tau * zb, shape=(J,),
                            description="random intercepts, b_j ~ N(0, tau²) (the Prior shown is only its support)"),
                  Parameter("u", std, tau_u * zu, shape=(J,),
                            description="random slopes, u_j ~ N(0, tau_u²) (the Prior shown is only its support)"))
        else:
            re = (Parameter("z_b", std, zb, shape=(J,), description="standardised random intercepts, b = tau·z_b"),
                  Parameter("z_u", std, zu, shape=(J,), description="standardised random slopes, u = tau_u·z_u"))
        self.parameters = fixed + re
        common = {"n_clusters": J, "n_per": self.n_per, "sigma": float(sigma)}
        self.designs = {
            "between": Design("between", f"cluster-level covariate w_j (constant within clusters), {J} clusters × "
                              f"{self.n_per} obs, σ = {sigma}", {**common, "covariate": "between"}),
            "within": Design("within", f"covariate varies within clusters (w_j ± 0.5), {J} clusters × {self.n_per} "
                             f"obs, σ = {sigma}", {**common, "covariate": "within"}),
        }
        self.default_design = "between"
        self.known_answers = self._known_answers()

    # ------------------------------------------------------------------ structure
    @property
    def random_effect_names(self) -> tuple[str, str]:
        return ("b", "u") if self.centred else ("z_b", "z_u")

    def cluster_covariate(self) -> np.ndarray:
        """The cluster-level part ``w_j = linspace(−0.5, 0.5, J)`` of the covariate."""
        return np.linspace(-0.5, 0.5, self.n_clusters)

    def covariates(self, design=None) -> tuple[np.ndarray, np.ndarray]:
        """``x`` and ``w``, each of shape ``(J, n)``."""
        d = self.design(design)
        J, n = self.n_clusters, self.n_per
        x = np.broadcast_to(np.linspace(-1.0, 1.0, n), (J, n)).copy()
        wj = self.cluster_covariate()
        w = np.broadcast_to(wj[:, None], (J, n)).copy()
        if d["covariate"] == "within":
            w = w + 0.5 * (-1.0) ** np.arange(n)
        elif d["covariate"] != "between":
            raise ValueError(f"design setting covariate must be 'between' or 'within', got {d['covariate']!r}")
        return x, w

    def _known_answers(self):
        J = self.n_clusters
        b, u = self.random_effect_names
        re_names = tuple(f"{b}[{j}]" for j in range(J)) + tuple(f"{u}[{j}]" for j in range(J))
        wj = self.cluster_covariate()
        ridge_alpha = {"alpha": 1.0, **{f"b[{j}]": -1.0 for j in range(J)}}
        ridge_gamma = {"gamma": 1.0, **{f"b[{j}]": -float(wj[j]) for j in range(J) if wj[j] != 0}}
        ridge_beta = {"beta": 1.0, **{f"u[{j}]": -1.0 for j in range(J)}}
        slopes = tuple(f"beta + u[{j}]" for j in range(J))
        beta_words = (" Likewise only β + u_j enters the within-cluster slopes: the likelihood is flat along "
                      "(Δβ, Δu_j) = (1, −1), and β trades off against the mean of the random slopes u, with the "
                      "share of its posterior variance explained by u, given τ_u, R²(τ_u) = 1 − "
                      "[1/s_β² + J S_xx/σ²]⁻¹ / [1/s_β² + J/(τ_u² + σ²/S_xx)]⁻¹ (beta_share) — β stays "
                      "identified through the random-slope distribution (its contraction comes from the J "
                      "clusters' spread of slopes).")
        between = KnownAnswer(
            identified=("beta",),
            weakly_identified=("alpha", "gamma", "tau", "tau_u"),
            in_combination=re_names,
            combinations=tuple(f"alpha + gamma·w[{j}] + b[{j}]" for j in range(J)) + slopes,
            # likelihood ridges of the centred form (curved in the non-centred coordinates, b = tau·z_b)
            ridges=(ridge_alpha, ridge_gamma, ridge_beta) if self.centred else (),
            derivation=("Only α + γ w_j + b_j enters p(y | θ): the likelihood is flat along (Δα, Δb) = (1, −1) and "
                        "(Δγ, Δb_j) = (1, −w_j). Integrating b, ȳ_j | α, γ, τ ~ N(α + γ w_j, τ² + σ²/n), so "
                        "Cov(α, γ | τ, y) = [diag(1/s_α², 1/s_γ²) + WᵀW/(τ² + σ²/n)]⁻¹ exactly, W = [1, w_j]: "
                        f"with {J} clusters the random-effect distribution alone (not the data within clusters) "
                        "separates γ from the w-weighted mean of the random intercepts, and α from their mean."
                        + beta_words),
        )
        within = KnownAnswer(
            identified=("beta", "gamma"),
            weakly_identified=("alpha", "tau", "tau_u"),
            in_combination=re_names,
            combinations=tuple(f"alpha + b[{j}]" for j in range(J)) + slopes,
            ridges=(ridge_alpha, ridge_beta) if self.centred else (),
            derivation=("The within-cluster deviations y_ij − ȳ_j carry γ d_i (d_i = ±0.5): the information about γ "
                        "grows like n J Σ d_i² / σ², so γ is identified even with few clusters. α still trades off "
                        "against the mean of the random intercepts (only α + b_j enters)." + beta_words
                        + " (Under 'within' the alternating d_i is not exactly orthogonal to x, so the closed form of "
                        "R²(τ_u) holds for 'between' only.)"),
        )
        return {"between": between, "within": within}

    def known_confounding(self, design=None) -> dict:
        """``{fixed effect: what it trades off against}`` from the algebra (module docstring), named as
        :func:`bayesid.diagnostics.hierarchy.levels` names it: α and the mean of b, β and the mean of u,
        and (design ``between``) γ and the w-weighted mean of b. Whether ``levels`` reads a pair as
        *confounded* depends on the share (``R² ≥ 0.8``): for β, :meth:`beta_share`."""
        d = self.design(design)
        out = {"alpha": "the mean of b", "beta": "the mean of u"}
        if d["covariate"] == "between":
            out["gamma"] = "the w-weighted mean of b"
        return out

    # ------------------------------------------------------------------ priors
    def priors(self, priors=None):
        out = super().priors(priors)
        if self.centred:
            for k in ("b", "u"):
                if priors and k in priors:
                    raise ValueError(f"the prior of {k} is N(0, tau{'_u' if k == 'u' else ''}²) by construction; "
                                     "change the prior of the scale instead.")
        return out

    def sample_prior(self, n, priors=None, random_seed=None):
        th = super().sample_prior(n, priors=priors, random_seed=random_seed)
        if self.centred:  # the drawn standard normals are scaled by the drawn scales
            th["b"] = th["tau"][:, None] * th["b"]
            th["u"] = th["tau_u"][:, None] * th["u"]
        return th

    def effects(self, theta) -> tuple:
        """Random intercepts and slopes ``(b, u)`` from a parameter dict (either form)."""
        if self.centred:
            return theta["b"], theta["u"]
        tau = np.asarray(theta["tau"], float)[..., None]
        tau_u = np.asarray(theta["tau_u"], float)[..., None]
        return tau * np.asarray(theta["z_b"], float), tau_u * np.asarray(theta["z_u"], float)

    # ------------------------------------------------------------------ contract
    def data_shapes(self, design=None):
        self.design(design)
        return {"y": (self.n_clusters, self.n_per)}

    def _mean(self, p, b, u, x, w):
        """Mean of y; works on PyMC variables (scalars, b (J,)) and on numpy batches (n,1,1), (n,J)."""
        return p["alpha"] + p["beta"] * x + p["gamma"] * w + b[..., None] + u[..., None] * x

    def _build(self, data, design, priors):
        import pymc as pm

        x, w = self.covariates(design)
        coords = {"cluster": np.arange(self.n_clusters), "obs": np.arange(self.n_per)}
        with pm.Model(coords=coords) as model:
            r = {k: priors[k].to_pymc(k) for k in ("alpha", "beta", "gamma", "tau", "tau_u")}
            if self.centred:
                b = pm.Normal("b", 0.0, r["tau"], dims="cluster")
                u = pm.Normal("u", 0.0, r["tau_u"], dims="cluster")
            else:
                zb = priors["z_b"].to_pymc("z_b", dims="cluster")
                zu = priors["z_u"].to_pymc("z_u", dims="cluster")
                b = pm.Deterministic("b", r["tau"] * zb, dims="cluster")
                u = pm.Deterministic("u", r["tau_u"] * zu, dims="cluster")
            pm.Normal("y", self._mean(r, b, u, x, w), design["sigma"], observed=data["y"], dims=("cluster", "obs"))
        return model

    def _simulate(self, theta, design, rng):
        x, w = self.covariates(design)
        n = theta["alpha"].shape[0]
        p = {k: theta[k][:, None, None] for k in ("alpha", "beta", "gamma")}
        b, u = self.effects(theta)
        mu = self._mean(p, b, u, x, w)
        return {"y": mu + design["sigma"] * rng.standard_normal((n, self.n_clusters, self.n_per))}

    # ------------------------------------------------------------------ exact answer
    def exact_posterior(self, data, design=None, priors=None, n_grid=60) -> ExactPosterior:
        """Exact posterior moments of ``alpha, beta, gamma, b, u`` (and of the scales) for one dataset,
        by :func:`linear_mixed_posterior`. The same for both forms (they are one model)."""
        d = self.design(design)
        data = self.validate_data(data, d)
        x, w = self.covariates(d)
        cl = np.repeat(np.arange(self.n_clusters), self.n_per)
        pri = self.priors(priors)
        return linear_mixed_posterior(data["y"], x, w, cl, self.n_clusters, d["sigma"], pri, n_grid=n_grid)

    def exact_tree(self, data, design=None, draws=1000, chains=2, prior_draws=4000, priors=None,
                   random_seed=None, n_grid=60):
        """A DataTree of exact posterior draws (no MCMC) and prior draws, for :func:`bayesid.diagnose`.

        The groups hold this form's free variables and the random effects ``b, u`` (a Deterministic in
        the non-centred form) with dims ``cluster``; the "chains" are independent blocks of iid draws.
        """
        import xarray as xr

        ss = np.random.SeedSequence(random_seed)
        s_post, s_prior = ss.spawn(2)
        ep = self.exact_posterior(data, design, priors, n_grid=n_grid)
        th = ep.sample(draws * chains, random_seed=s_post)
        pr = self.sample_prior(prior_draws, priors=priors, random_seed=s_prior)
        b_pr, u_pr = self.effects(pr)
        pr = {**pr, "b": b_pr, "u": u_pr}
        if not self.centred:
            th["z_b"], th["z_u"] = th["b"] / th["tau"][:, None], th["u"] / th["tau_u"][:, None]
        keep = list(_LINEAR) + ["tau", "tau_u", *self.random_effect_names] + ([] if self.centred else ["b", "u"])
        coords = {"cluster": np.arange(self.n_clusters)}

        def group(vals, c, n):
            dv = {}
            for k in keep:
                a = np.asarray(vals[k], float).reshape(c, n, *np.shape(vals[k])[1:])
                dv[k] = (("chain", "draw") + (("cluster",) if a.ndim == 3 else ()), a)
            return xr.Dataset(dv, coords=coords)

        return xr.DataTree.from_dict({"posterior": group(th, chains, draws), "prior": group(pr, 1, prior_draws)})

    def conditional_var_beta(self, tau_u, given_u=False, design=None, priors=None) -> float:
        """The closed form ``Var(β | τ_u, y)`` (or, ``given_u``, ``Var(β | u, τ_u, y)``) of the module
        docstring (design 'between')."""
        d = self.design(design)
        if d["covariate"] != "between":
            raise ValueError("the closed form holds when the within-cluster deviations carry only the slope "
                             "(design 'between')")
        pri = self.priors(priors)
        x, _ = self.covariates(d)
        sxx = float(np.sum(x[0] ** 2))
        J, s2 = self.n_clusters, d["sigma"] ** 2
        info = J * sxx / s2 if given_u else J / (tau_u**2 + s2 / sxx)
        return 1.0 / (1.0 / pri["beta"].params["sigma"] ** 2 + info)

    def beta_share(self, tau_u, design=None, priors=None) -> float:
        """``R²(τ_u) = 1 − Var(β | u, τ_u, y) / Var(β | τ_u, y)``: the share of β's posterior variance that
        the random slopes explain, given τ_u (design 'between')."""
        return 1.0 - (self.conditional_var_beta(tau_u, True, design, priors)
                      / self.conditional_var_beta(tau_u, False, design, priors))

    def conditional_cov_alpha_gamma(self, tau, design=None, priors=None) -> np.ndarray:
        """The closed form ``Cov(α, γ | τ, y)`` of the module docstring (design 'between')."""
        d = self.design(design)
        if d["covariate"] != "between":
            raise ValueError("the closed form holds for the cluster-level covariate (design 'between')")
        pri = self.priors(priors)
        wj = self.cluster_covariate()
        W = np.column_stack([np.ones_like(wj), wj])
        prec = np.diag([1 / pri["alpha"].params["sigma"] ** 2, 1 / pri["gamma"].params["sigma"] ** 2])
        prec = prec + W.T @ W / (tau**2 + d["sigma"] ** 2 / self.n_per)
        return np.linalg.inv(prec)


class MixedRegressionNonCentred(MixedRegression):
    """The same linear mixed model in non-centred form: ``b = tau·z_b``, ``u = tau_u·z_u``."""

    name = "mixed.noncentred"
    description = ("Mixed-effects regression, non-centred random effects (b = τ z_b, u = τ_u z_u): the same "
                   "model as mixed.regression without the τ–b funnel.")
    centred = False
