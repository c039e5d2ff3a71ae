"""Local and curved ridges from the model: prior-whitened Fisher information of the likelihood.

For a posterior draw θ_s (unconstrained coordinates), the expected Fisher information of the
likelihood is ``F(θ_s) = E_{y ~ p(y|θ_s)}[∇ log p(y|θ_s) ∇ log p(y|θ_s)ᵀ]``. It is estimated by Monte
Carlo: ``K`` replicate datasets are drawn from the model's own likelihood at θ_s and the scores
(pytensor gradients) are averaged as outer products — positive semi-definite by construction and,
for Gaussian likelihoods, an unbiased estimate of the Gauss–Newton matrix ``Jᵀ Σ⁻¹ J``. Along an
exact non-identified direction every score is exactly orthogonal, so the estimate has an exact zero
there regardless of ``K``.

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
                       lambda_tol: float = 0.25, random_seed=None, progressbar: bool = False) -> FisherResult:
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
    """
    import time

    import pymc as pm
    import xarray as xr

    from bayesid.pymc_utils import free_parameters, to_unconstrained

    fn, values, obs = _score_function(model)
    d = len(names)
    k = n_replicates or max(20, 10 * d)
    rng = np.random.default_rng(random_seed)
    post = tree["posterior"].to_dataset()
    n_total = post.sizes["chain"] * post.sizes["draw"]
    idx = np.sort(rng.choice(n_total, size=min(n_draws, n_total), replace=False))
    params = free_parameters(model)
    stacked = {p.name: post[p.name].stack(sample=("chain", "draw")).transpose("sample", ...).values[idx]
               for p in params}
    # replicate datasets from the model's own likelihood at each draw
    rep = {name: np.repeat(v, k, axis=0) for name, v in stacked.items()}
    sub = xr.Dataset({name: (("chain", "draw", *[f"{name}_d{i}" for i in range(v.ndim - 1)]), v[None])
                      for name, v in rep.items()})
    with model:
        pp = pm.sample_posterior_predictive(xr.DataTree.from_dict({"posterior": sub}),
                                            var_names=[o.name for o in obs], random_seed=rng,
                                            freeze_vars=[p.name for p in params],
                                            progressbar=False)
    ppd = pp["posterior_predictive"].to_dataset()
    unc = to_unconstrained(model, {n: v[:, None] for n, v in stacked.items()}, sample_ndim=2)
    value_by_name = {p.value_name: p for p in params}
    vals_in = [unc[v.name][:, 0] for v in values]
    L = white.chol
    # gradient components (model.value_vars, flattened) -> `names`; a subset of the free parameters
    # gives the conditional information of the subset, the others held at their draws
    sel = _value_order(values, value_by_name, names, unc)
    local = np.empty((len(idx), d, d))
    t0 = time.perf_counter()
    steps = range(len(idx))
    if progressbar:
        from rich.progress import track

        steps = track(steps, description=f"Fisher information ({len(idx)} draws x {k} replicates)",
                      transient=True)
    for s in steps:
        acc = np.zeros((d, d))
        for r in range(k):
            ys = [ppd[o.name].values[0, s * k + r] for o in obs]
            g = fn(*[np.asarray(v[s], dtype=val.dtype) for v, val in zip(vals_in, values)], *ys)[sel]
            acc += np.outer(g, g)
        local[s] = L.T @ (acc / k) @ L
    secs = (time.perf_counter() - t0) / len(idx)
    mean_w = local.mean(axis=0)
    lam, vec = np.linalg.eigh(mean_w)
    lam = np.clip(lam, 0.0, None)
    loc = np.clip(np.linalg.eigvalsh(local), 0.0, None)
    return FisherResult(
        names=list(names), mean_whitened=mean_w, eigenvalues=lam, vectors=vec,
        predicted_ratios=1.0 / (1.0 + lam), local_eigenvalues=loc,
        local_null_dim=(loc < lambda_tol).sum(axis=1), global_null_dim=int((lam < lambda_tol).sum()),
        lambda_tol=lambda_tol, seconds_per_draw=secs, local_whitened=local,
        draw_points=np.concatenate([unc[v.name][:, 0].reshape(len(idx), -1) for v in values], axis=1)[:, sel],
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
