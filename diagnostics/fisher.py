"""Local and curved ridges from the model: prior-whitened Fisher information of the likelihood.

For a posterior draw θ_s (unconstrained coordinates), the expected Fisher information of the
likelihood is ``F(θ_s) = E_{y ~ p(y|θ_s)}[∇ log p(y|θ_s) ∇ log p(y|θ_s)ᵀ]``, computed by the shared
core :func:`bayesid.diagnostics.preposterior.fisher_at_draws`: exactly (the Gauss–Newton matrix
``Jᵀ I(φ) J``) for the common likelihoods, with a compressed sparse Jacobian for larger models (a
hierarchical model costs a few forward products per draw whatever its number of groups), and by
Monte Carlo elsewhere (``K`` replicate datasets from the model's own likelihood at θ_s, scores
averaged as outer products — positive semi-definite, and exactly zero along an exact
non-identified direction regardless of ``K``). Information reaching hyperparameters through Normal
latent levels is added (see that module).

Whitened with the prior covariance (``W = Lᵀ F L``), its eigenvalues λ compare data information with
prior precision; in the linear-Gaussian case the posterior/prior variance ratio along the
eigenvector is ``1/(1 + λ)``, the same scale as :mod:`bayesid.diagnostics.ridges`.

* **Global (likelihood-informed subspace, Cui et al. 2014)**: eigen-decompose the posterior average
  ``W̄ = mean_s W(θ_s)``; eigenvalues near zero are directions the data inform nowhere on the posterior.
* **Local / curved**: eigen-decompose each ``W(θ_s)``. When most draws have a locally uninformed
  direction but ``W̄`` has none, the ridge is curved (its direction turns across the posterior, e.g.
  ``a·b = c`` with real-valued a, b): reported as ``curved_ridge``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FisherResult", "fisher_information"]


@dataclass
class FisherResult:
    """Prior-whitened Fisher information, averaged and per draw.

    Attributes
    ----------
    names : list of str
        Unconstrained component names (columns).
    mean_whitened : ndarray (d, d)
        Posterior average of the prior-whitened Fisher information.
    eigenvalues : ndarray (d,)
        Eigenvalues of ``mean_whitened``, ascending.
    vectors : ndarray (d, d)
        Its eigenvectors (whitened coordinates, columns).
    predicted_ratios : ndarray (d,)
        ``1/(1 + λ)``: the posterior/prior variance ratio a linear-Gaussian model would have.
    local_eigenvalues : ndarray (S, d)
        Eigenvalues of each draw's whitened Fisher matrix, ascending.
    local_null_dim : ndarray (S,) of int
        Per draw, the number of locally uninformed directions (λ < ``lambda_tol``).
    global_null_dim : int
        Number of uninformed directions of the averaged matrix.
    lambda_tol : float
    seconds_per_draw : float
        Wall time per posterior draw (all replicates).
    """

    names: list
    mean_whitened: np.ndarray
    eigenvalues: np.ndarray
    vectors: np.ndarray
    predicted_ratios: np.ndarray
    local_eigenvalues: np.ndarray
    local_null_dim: np.ndarray
    global_null_dim: int
    lambda_tol: float
    seconds_per_draw: float
    draw_points: np.ndarray = field(default=None, repr=False)  # (S, d) unconstrained points used
    local_whitened: np.ndarray = field(default=None, repr=False)  # (S, d, d) per-draw whitened matrices
    draws: object = field(default=None, repr=False)  # the DrawFisher (per-draw vectors, null weights)

    @property
    def curved_ridge(self) -> bool:
        """Locally uninformed directions at most draws that the averaged information does not show."""
        return bool(np.median(self.local_null_dim) > self.global_null_dim)

    @property
    def local_null_fraction(self) -> float:
        """Fraction of draws with at least one locally uninformed direction."""
        return float(np.mean(self.local_null_dim > 0))


def _score_function(model):
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import graph_replace

    obs = list(model.observed_RVs)
    if not obs:
        raise ValueError("The model has no observed variables: there is no likelihood to analyse.")
    loglik = model.logp(vars=obs, jacobian=False, sum=True)
    data_in = {}
    for rv in obs:
        val = model.rvs_to_values[rv]
        data_in[val] = pt.tensor(name=f"{rv.name}_rep", shape=(None,) * val.ndim, dtype=val.dtype)
    loglik = graph_replace(loglik, data_in, strict=False)
    values = list(model.value_vars)
    grads = pt.grad(loglik, values, disconnected_inputs="ignore")
    flat = pt.concatenate([pt.atleast_1d(g).ravel() for g in grads])
    fn = pytensor.function(values + list(data_in.values()), flat, on_unused_input="ignore")
    return fn, values, obs


def fisher_information(model, tree, white, names, n_draws: int = 64, n_replicates: int | None = None,
                       lambda_tol: float = 0.25, random_seed=None, progressbar: bool = False,
                       method: str = "auto", latent: bool = True) -> FisherResult:
    """Monte Carlo expected Fisher information of the likelihood over posterior draws.

    Parameters
    ----------
    model : pymc.Model
        The model that produced ``tree``.
    tree : xarray.DataTree
        Must have a ``posterior`` group (and ideally ``unconstrained_posterior`` from bayesid.fit).
    white : Whitening
        Prior whitening (from :func:`bayesid.diagnostics.ridges.whitening`) in the same component
        order as ``names``.
    names : list of str
        Unconstrained component names, in the order of ``white``.
    n_draws : int
        Posterior draws to average over (a random subsample).
    n_replicates : int, optional
        Replicate datasets per draw; default ``max(20, 10·d)`` keeps the smallest eigenvalue of a
        Wishart-like estimate in informed directions well away from zero.
    lambda_tol : float
        Whitened information below which a direction counts as uninformed: ``1/(1+0.25) = 0.8``, the
        same posterior/prior variance ratio as the draw-based ridge threshold.
    random_seed : int, optional
    progressbar : bool
        Show progress over the posterior draws.
    method : {"auto", "exact", "replicates"}
        Closed-form Gauss–Newton information where the likelihood allows it (``"auto"``), see
        :func:`bayesid.diagnostics.preposterior.fisher_at_draws`.
    latent : bool
        Add the information reaching hyperparameters through Normal latent levels (hierarchical
        models), so that a population mean the draws identify is not reported as uninformed.
    """
    from bayesid.pymc_utils import free_parameters, to_unconstrained

    from .preposterior import fisher_at_draws, whiten_result

    rng = np.random.default_rng(random_seed)
    post = tree["posterior"].to_dataset()
    n_total = post.sizes["chain"] * post.sizes["draw"]
    idx = np.sort(rng.choice(n_total, size=min(n_draws, n_total), replace=False))
    params = free_parameters(model)
    stacked = {p.name: post[p.name].stack(sample=("chain", "draw")).transpose("sample", ...).values[idx]
               for p in params}
    unc = to_unconstrained(model, {n: v[:, None] for n, v in stacked.items()}, sample_ndim=2)
    values = list(model.value_vars)
    points = {v.name: unc[v.name][:, 0] for v in values}
    # one core for check, diagnose and designs: exact Gauss-Newton where the likelihood allows it,
    # replicate scores elsewhere, plus the information reaching hyperparameters through latent levels
    res = fisher_at_draws(model, points, None, n_replicates=n_replicates, method=method, latent=latent,
                          lambda_tol=lambda_tol, random_seed=rng.integers(2**31), progressbar=progressbar)
    order = _value_order(values, None, names, unc)
    whiten_result(res, white, order=order, progressbar=progressbar)
    res.names = list(names)
    return FisherResult(
        names=list(names), mean_whitened=res.mean_whitened, eigenvalues=res.eigenvalues,
        vectors=res.vectors, predicted_ratios=res.predicted_ratios, local_eigenvalues=res.local_eigenvalues,
        local_null_dim=res.local_null_dim, global_null_dim=res.global_null_dim, lambda_tol=lambda_tol,
        seconds_per_draw=(res.seconds + res.compile_seconds) / max(len(res.local_null_dim), 1),
        draw_points=res.points, local_whitened=res.whitened, draws=res,
    )


def _value_order(values, value_by_name, names, unc):
    """Indices into the gradient's components (``model.value_vars``, each flattened in C order) of
    ``names`` (whose components are also flattened in C order per variable), in ``names`` order.
    ``names`` may be a subset of the free parameters."""
    comp = []
    for v in values:
        size = int(np.prod(unc[v.name].shape[2:]))
        comp += [(v.name, i) for i in range(size)]
    counters = {}
    target = []
    for n in names:
        var = n.split("[")[0]
        target.append((var, counters.get(var, 0)))
        counters[var] = counters.get(var, 0) + 1
    pos = {c: i for i, c in enumerate(comp)}
    missing = [t for t in target if t not in pos]
    if missing:
        raise KeyError(f"The Fisher analysis cannot place the diagnosed components "
                       f"{sorted({m[0] for m in missing})} among the model's free parameters "
                       f"{[v.name for v in values]}.")
    return np.array([pos[t] for t in target], dtype=int)
