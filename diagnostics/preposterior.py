"""Fisher information of a PyMC model at a set of parameter draws (numpy core shared by
:func:`bayesid.check`, :func:`bayesid.diagnose` and :func:`bayesid.designs.compare`).

One function, :func:`fisher_at_draws`, answers: *at each of these points of the unconstrained
parameter space, how much would the model's data inform each direction?* The points may be prior
draws (a structural check before sampling, or a design comparison: the preposterior information)
or posterior draws (the model-based part of a diagnosis).

Information of the likelihood
-----------------------------
For each observed variable ``y ~ D(φ(θ))`` the expected Fisher information in unconstrained
coordinates θ is ``F = Jᵀ I(φ) J`` with ``J = ∂φ/∂θ`` (pytensor, one vectorised Jacobian per
draw) and ``I(φ)`` the Fisher information of the distribution in its own parameters. Where ``I(φ)``
has a closed form it is used exactly (the Gauss–Newton matrix; no replicate data, no Monte Carlo
error):

=============  ==============================  ============================================
distribution   parameters φ                    I(φ) per observation
=============  ==============================  ============================================
Normal         μ, σ                            1/σ², 2/σ²
LogNormal      μ, σ (of log y)                 1/σ², 2/σ²
StudentT       μ, σ (ν fixed)                  (ν+1)/((ν+3)σ²), 2ν/((ν+3)σ²)
HalfNormal     σ                               2/σ²
Binomial       p (n fixed)                     n/(p(1−p))
Bernoulli      p                               1/(p(1−p))
Poisson        μ                               1/μ
Exponential    scale β                         1/β²
=============  ==============================  ============================================

Any other observed distribution (or one whose "fixed" parameter depends on θ) falls back to the
Monte Carlo estimator ``F ≈ (1/K) Σ_k s_k s_kᵀ`` with scores ``s_k = ∇_θ log p(y_k | θ)`` of K
replicate data sets ``y_k`` drawn from the model's own forward sampler at θ (scores batched over the
replicates in one vectorised call). That estimator is positive semi-definite and exactly zero along
an exact non-identified direction. The observed variables are independent given θ, so the exact and
Monte Carlo parts add.

Information through a latent level (hierarchical models)
--------------------------------------------------------
A hyperparameter η (a population mean μ, a scale τ) enters only through the conditional prior of
latent parameters, ``θ_j ~ Normal(m_j(η), s_j(η))`` (in θ_j's unconstrained coordinate: Normal, or
LogNormal with its log transform). The likelihood's score w.r.t. η is zero, so the likelihood alone
calls every hyperparameter uninformed even when the data pin it down. With ``latent=True`` the
information that flows to η through the latent level is added, in the Normal–Normal
(missing-information) form: if the data carry ``A_j`` units of information about θ_j (the diagonal
of the information accumulated so far), θ_j is effectively measured with reliability
``r_j = A_j / (A_j + 1/s_j²)`` and the marginal information of ``θ̂_j ~ Normal(m_j, s_j² + 1/A_j)``
about η is

``Σ_j  (r_j / s_j²) ∇m_j ∇m_jᵀ  +  2 r_j² ∇log s_j ∇log s_jᵀ``,

exact for a Normal–Normal hierarchy with independent group data. Without data (``A = 0``) it is
zero, so a hierarchy alone never looks informed. Levels are processed from the bottom up (children
before parents), so a three-level hierarchy passes information upwards. Other latent conditionals
contribute nothing (conservative: they can only make hyperparameters look less informed).

Whitening and null spaces
-------------------------
With a prior whitening ``L`` (``L Lᵀ`` = prior covariance of the unconstrained parameters), the
per-draw matrices ``W_s = Lᵀ F_s L`` compare data information with prior precision: along an
eigenvector with eigenvalue λ, a linear-Gaussian posterior has posterior/prior variance ratio
``1/(1+λ)``. Eigenvalues below ``lambda_tol`` (default 0.25 ⇔ ratio ≥ 0.8, the diagnostics' ridge
cut-off) are *locally uninformed* directions; their per-draw count and, per parameter, the share of
its prior variance along them (``null_weight``) are returned with the averaged matrix ``W̄``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DrawFisher", "fisher_at_draws", "value_layout", "prior_points", "EXACT_DISTRIBUTIONS"]

#: ``jacobian="auto"`` uses the compressed (sparse) Jacobian above this many coordinates.
SPARSE_MIN_DIM = 12

#: PyTensor mode of the Fisher functions: no C/numba compilation (numba took 5 s on a 200-group
#: Jacobian graph, 0.3 s on a two-parameter one); the sparse path's few batched forward products are
#: whole-array NumPy operations.
FISHER_MODE = "FAST_COMPILE"

#: Observed distributions whose Fisher information is used in closed form (pytensor op names).
EXACT_DISTRIBUTIONS = ("normal", "lognormal", "t", "halfnormal", "binomial", "bernoulli", "poisson",
                       "exponential")


@dataclass
class DrawFisher:
    """Fisher information at a set of draws, raw and prior-whitened.

    Attributes
    ----------
    names : list of str
        Unconstrained component names in ``model.value_vars`` order, each variable flattened in C
        order (``"b_log__"`` for a scalar, ``"theta[3]"`` for a vector's 4th entry).
    points : ndarray (S, d)
        The unconstrained points the information was evaluated at (rows of ``ok`` draws only).
    fisher : ndarray (S, d, d)
        Expected Fisher information per draw, unconstrained coordinates (likelihood plus, with
        ``latent=True``, the information flowing to hyperparameters through latent levels).
    whitened : ndarray (S, d, d) or None
        ``Lᵀ F L`` per draw (None when no whitening was given).
    mean_whitened : ndarray (d, d) or None
        Average of ``whitened`` over the draws (the preposterior / posterior-averaged information).
    eigenvalues, vectors : ndarray
        Ascending eigen-decomposition of ``mean_whitened`` (eigenvalues clipped at 0).
    local_eigenvalues : ndarray (S, d)
        Per-draw eigenvalues (ascending, clipped at 0).
    local_vectors : ndarray (S, d, d)
        Per-draw eigenvectors (whitened coordinates, columns).
    local_null_dim : ndarray (S,) of int
        Number of locally uninformed directions (eigenvalue < ``lambda_tol``) per draw.
    null_weight : ndarray (S, d)
        Per draw, the share of each parameter's prior variance that lies along locally uninformed
        directions, ``Σ_k (l_i·v_k)² / ‖l_i‖²`` over null eigenvectors ``v_k`` (``l_i`` row i of L).
        1 = the parameter moves freely at that draw, 0 = it is locally pinned down.
    ok : ndarray (S_in,) of bool
        Which input draws gave a finite information matrix (the others are dropped).
    lambda_tol : float
    methods : dict
        Per observed variable, ``"exact"`` or ``"replicates"``; plus ``"latent"``: the latent
        variables whose conditional level added information.
    seconds : float
        Wall time of the evaluation (compilation excluded: see ``compile_seconds``).
    compile_seconds : float
    jacobian : str
        How the closed-form part's Jacobian was computed (``"dense"``, or ``"sparse (…)"`` with the
        number of forward products per draw and of draws that needed the full Jacobian).
    """

    names: list
    points: np.ndarray
    fisher: np.ndarray
    whitened: np.ndarray | None
    mean_whitened: np.ndarray | None
    eigenvalues: np.ndarray | None
    vectors: np.ndarray | None
    local_eigenvalues: np.ndarray | None
    local_vectors: np.ndarray | None = field(default=None, repr=False)
    local_null_dim: np.ndarray | None = None
    null_weight: np.ndarray | None = None
    ok: np.ndarray | None = None
    lambda_tol: float = 0.25
    methods: dict = field(default_factory=dict)
    seconds: float = 0.0
    compile_seconds: float = 0.0
    jacobian: str = ""

    @property
    def n_failed(self) -> int:
        """Input draws dropped because their information was not finite (non-viable parameters)."""
        return int((~self.ok).sum()) if self.ok is not None else 0

    @property
    def null_fraction(self) -> float:
        """Fraction of draws with at least one locally uninformed direction."""
        return float(np.mean(self.local_null_dim > 0))

    @property
    def null_fraction_se(self) -> float:
        """Binomial standard error of :attr:`null_fraction` (draws are independent)."""
        f, n = self.null_fraction, len(self.local_null_dim)
        return float(np.sqrt(max(f * (1 - f), 0.25 / n) / n))

    @property
    def global_null_dim(self) -> int:
        """Number of uninformed directions of the averaged matrix."""
        return int((self.eigenvalues < self.lambda_tol).sum())

    @property
    def predicted_ratios(self) -> np.ndarray:
        """``1/(1 + λ)`` of the averaged matrix: predicted posterior/prior variance ratios."""
        return 1.0 / (1.0 + self.eigenvalues)


# --------------------------------------------------------------------------------------------- layout
def value_layout(model):
    """Names, shapes and flat slices of the model's value variables.

    Returns
    -------
    names : list of str
        Component names (see :class:`DrawFisher`).
    layout : list of (value_var, shape, slice)
    """
    static = [tuple(v.type.shape) for v in model.value_vars]
    # static shapes where PyTensor knows them (no compilation); the initial point otherwise
    ip = None if all(None not in sh for sh in static) else model.initial_point()
    names, layout, start = [], [], 0
    for v, sh in zip(model.value_vars, static):
        shape = sh if ip is None else tuple(np.shape(ip[v.name]))
        size = int(np.prod(shape, dtype=int))
        layout.append((v, shape, slice(start, start + size)))
        names += [v.name] if shape == () else [f"{v.name}[{i}]" for i in range(size)]
        start += size
    return names, layout


def flatten_points(points, layout) -> np.ndarray:
    """``{value name: (S, *shape)}`` or an (S, d) array -> (S, d) array in layout order."""
    if isinstance(points, dict):
        missing = [v.name for v, _, _ in layout if v.name not in points]
        if missing:
            raise KeyError(f"points lack the value variables {missing}; pass every free parameter in "
                           "unconstrained coordinates (bayesid.pymc_utils.to_unconstrained)")
        cols = []
        for v, _shape, sl in layout:
            a = np.asarray(points[v.name], float)
            cols.append(a.reshape(a.shape[0], sl.stop - sl.start))
        return np.concatenate(cols, axis=1)
    a = np.atleast_2d(np.asarray(points, float))
    d = layout[-1][2].stop if layout else 0
    if a.shape[1] != d:
        raise ValueError(f"points has {a.shape[1]} columns; the model has {d} unconstrained coordinates")
    return a


def prior_points(model, n_draws: int, random_seed=None, natural: bool = False):
    """Draws from the model's prior in unconstrained coordinates (the model's forward-sampling graph,
    vectorised over the draws by :func:`bayesid.vectorize.sample_prior`; PyMC's per-draw sampler if that
    fails).

    Returns
    -------
    ndarray (n_draws, d)
        In :func:`value_layout` order; with ``natural=True`` also the same draws in natural
        coordinates, ``{free RV name: (n_draws, *shape)}``.
    """
    import warnings

    import pymc as pm

    from bayesid.vectorize import sample_prior

    names = [rv.name for rv in model.free_RVs]
    try:  # one vectorised forward-sampling call (bayesid.vectorize) instead of one call per draw
        ds = sample_prior(model, n_draws, random_seed=random_seed, var_names=names)["prior"].to_dataset()
    except Exception as err:  # an Op without a batched form: PyMC's per-draw sampler, same distribution
        from bayesid.vectorize import VectorizeFallbackWarning

        warnings.warn(f"prior_points: vectorised prior sampling failed ({type(err).__name__}: {err}); "
                      "using pymc.sample_prior_predictive", VectorizeFallbackWarning, stacklevel=2)
        with model:
            ds = pm.sample_prior_predictive(draws=n_draws, random_seed=random_seed, var_names=names,
                                            progressbar=False)["prior"].to_dataset()
    draws = {n: ds[n].values[0] for n in names}
    pts = constrained_to_points(model, draws)
    return (pts, draws) if natural else pts


def constrained_to_points(model, draws: dict) -> np.ndarray:
    """Constrained draws ``{free RV name: (S, *shape)}`` -> (S, d) unconstrained points in
    :func:`value_layout` order, by one vectorised call of the model's forward transforms."""
    from bayesid.pymc_utils import forward_transform_graph
    from bayesid.vectorize import compile_vectorized

    names, layout = value_layout(model)
    fn = compile_vectorized(*forward_transform_graph(model), mode="FAST_COMPILE")  # one call: no JIT needed
    arrays = [np.asarray(draws[rv.name]).astype(rv.dtype) for rv in model.free_RVs]
    vals = fn(*arrays)
    S = arrays[0].shape[0]
    by_value = {model.rvs_to_values[rv].name: np.asarray(v).reshape(S, -1)
                for rv, v in zip(model.free_RVs, vals)}
    return flatten_points(by_value, layout)


# ------------------------------------------------------------------------------------------- graphs
def _depends_on(var, x) -> bool:
    from pytensor.graph.traversal import ancestors

    return x in set(ancestors([var]))


def _exact_terms(op_name, params, value):
    """(parameter tensor, Fisher weight tensor) pairs for a closed-form distribution, else None."""
    import pytensor.tensor as pt

    if op_name in ("normal", "lognormal"):
        mu, sigma = params
        return [(mu, 1.0 / sigma**2), (sigma, 2.0 / sigma**2)], []
    if op_name == "t":
        nu, mu, sigma = params
        return [(mu, (nu + 1) / ((nu + 3) * sigma**2)), (sigma, 2 * nu / ((nu + 3) * sigma**2))], [nu]
    if op_name == "halfnormal":
        loc, sigma = params
        return [(sigma, 2.0 / sigma**2)], [loc]
    if op_name == "binomial":
        n, p = params
        return [(p, n / (p * (1 - p)))], [n]
    if op_name == "bernoulli":
        (p,) = params
        return [(p, 1.0 / (p * (1 - p)))], []
    if op_name == "poisson":
        (mu,) = params
        return [(mu, 1.0 / mu)], []
    if op_name == "exponential":
        (scale,) = params
        return [(scale, 1.0 / scale**2)], []
    del pt
    return None


def _unbroadcast(phi, w, value):
    """Sum the Fisher weights over the axes along which ``phi`` is broadcast against the data, so the
    Jacobian has one row per distinct parameter entry (not per observation)."""
    import pytensor.tensor as pt

    full = pt.broadcast_arrays(phi, w, value)[1]
    nd = full.ndim
    phi = pt.shape_padleft(phi, nd - phi.ndim) if phi.ndim < nd else phi
    axes = [i for i, b in enumerate(phi.type.broadcastable) if b]
    w_u = pt.sum(full, axis=axes, keepdims=True) if axes else full
    return phi, pt.broadcast_to(w_u, phi.shape)


def _build(model, x, layout, method, jac="dense"):
    """Graph pieces: exact Gauss–Newton matrix (``jac="dense"``) or its weights and the parameter
    vector φ(x) whose Jacobian the sparse path compresses (``jac="sparse"``), latent-level Jacobians,
    replicate-based observed RVs. Returns ``outputs, latent, mc, methods, phi`` (phi None without
    closed-form rows)."""
    import pytensor.tensor as pt
    from pytensor.gradient import jacobian
    from pytensor.graph.replace import graph_replace

    to_x = {v: x[sl].reshape(shape).astype(v.dtype) for v, shape, sl in layout}

    def in_x(tensors):
        return graph_replace(model.replace_rvs_by_values(tensors), to_x, strict=False)

    methods = {}
    rows, weights, mc = [], [], []
    for rv in model.observed_RVs:
        op_name = getattr(rv.owner.op, "name", type(rv.owner.op).__name__)
        params = list(rv.owner.op.dist_params(rv.owner))
        terms = _exact_terms(op_name, in_x(params), None) if method != "replicates" else None
        if terms is not None and not any(_depends_on(f, x) for f in terms[1]):
            value = model.rvs_to_values[rv]
            for phi, w in terms[0]:
                if not _depends_on(phi, x):
                    continue
                phi_u, w_u = _unbroadcast(phi, w, value)
                rows.append(phi_u.ravel())
                weights.append(w_u.ravel())
            methods[rv.name] = "exact"
        else:
            mc.append(rv)
            methods[rv.name] = "replicates"
    outputs = []
    phi = None
    if rows:
        phi = pt.concatenate(rows)
        w = pt.concatenate(weights)
        if jac == "dense":
            J = jacobian(phi, x, vectorize=True, disconnected_inputs="ignore")
            outputs.append(pt.dot(J.T, w[:, None] * J))
        else:
            outputs.append(pt.broadcast_to(w, phi.shape))
    else:
        outputs.append(pt.zeros((x.shape[0], x.shape[0])) if jac == "dense" else pt.zeros((0,)))
    latent = []
    slices = {v: sl for v, _, sl in layout}
    for rv in model.free_RVs:
        op_name = getattr(rv.owner.op, "name", "")
        tr = model.rvs_to_transforms.get(rv)
        trn = None if tr is None else type(tr).__name__.lower().removesuffix("transform")
        if not ((op_name == "normal" and tr is None) or (op_name == "lognormal" and trn == "log")):
            continue
        mu, sigma = in_x(list(rv.owner.op.dist_params(rv.owner)))
        if not (_depends_on(mu, x) or _depends_on(sigma, x)):
            continue  # a root parameter: its prior is in the whitening, not in the information
        value = to_x[model.rvs_to_values[rv]]
        nd = value.ndim
        mu = pt.shape_padleft(mu, nd - mu.ndim) if mu.ndim < nd else mu
        ls = pt.log(sigma)
        ls = pt.shape_padleft(ls, nd - ls.ndim) if ls.ndim < nd else ls
        # un-broadcast Jacobians (rows of distinct parameter entries) and the full shapes
        outputs += [pt.broadcast_to(sigma, value.shape).ravel(), mu, ls,
                    jacobian(mu.ravel(), x, vectorize=True, disconnected_inputs="ignore"),
                    jacobian(ls.ravel(), x, vectorize=True, disconnected_inputs="ignore")]
        latent.append((rv.name, slices[model.rvs_to_values[rv]], tuple(value.type.shape)))
    methods["latent"] = [lt[0] for lt in latent]
    return outputs, latent, mc, methods, phi


def _jvp_graph(phi, x):
    """``J V`` for a batch of seed directions ``V`` (k, d): forward-mode products of φ's Jacobian,
    shape (k, rows), each as cheap as about two gradient evaluations."""
    import pytensor.tensor as pt
    import pytensor.gradient as grad
    from pytensor.graph.replace import vectorize_graph

    v = pt.dvector("seed")
    V = pt.dmatrix("seeds")
    push = getattr(grad, "pushforward", None)  # PyTensor ≥ 2.32; Rop before
    jv = push(phi, x, v, disconnected_outputs="ignore") if push else grad.Rop(phi, x, v)
    return V, vectorize_graph(jv, replace={v: V})


def _dense_jacobian(fn, x0, d, n_out, chunk=256):
    """The full Jacobian (rows, d) from ``d`` forward products (identity seeds, in chunks)."""
    cols = []
    eye = np.eye(d)
    for a in range(0, d, chunk):
        with np.errstate(all="ignore"):
            cols.append(np.asarray(fn(x0, eye[a:a + chunk])[n_out], float))
    return np.concatenate(cols, axis=0).T


def _color_columns(P):
    """Greedy (largest degree first) colouring of the column-intersection graph of a sparsity pattern:
    columns that share no row get the same colour, so one forward product per colour recovers them
    all (Curtis, Powell & Reid 1974). Returns ``(colour per column, number of colours)``."""
    import scipy.sparse as sp

    Ps = sp.csc_matrix(P.astype(np.int8))
    C = (Ps.T @ Ps).tocsr()
    d = P.shape[1]
    colour = np.full(d, -1)
    for j in np.argsort(-np.diff(C.indptr), kind="stable"):
        used = set(colour[C.indices[C.indptr[j]:C.indptr[j + 1]]].tolist())
        c = 0
        while c in used:
            c += 1
        colour[j] = c
    return colour, int(colour.max()) + 1 if d else 0


class _SparseGaussNewton:
    """Exact Gauss–Newton ``Jᵀ diag(w) J`` from a compressed Jacobian.

    The sparsity pattern of ``J = ∂φ/∂x`` is read off the full Jacobian at two draws (union of the
    non-zeros); columns are coloured so that ``c`` forward products give every entry (a hierarchical
    model: μ, τ, σ and one colour for all group effects, whatever the number of groups). Each draw
    also evaluates ``J v`` for a fixed random ``v`` and compares it with the recovered Jacobian: an
    entry outside the pattern (a branch the two draws did not take) makes that draw use the full
    Jacobian instead (counted in ``fallbacks``), so the result never depends on the pattern guess.
    """

    def __init__(self, fn, n_out, pts, d, n_rows):
        import scipy.sparse as sp

        self.fn, self.n_out, self.d, self.sp = fn, n_out, d, sp
        P = np.zeros((n_rows, d), bool)
        for x0 in pts[:2]:
            J = _dense_jacobian(fn, x0, d, n_out)
            P |= (J != 0) | ~np.isfinite(J)
        self.colour, self.n_colours = _color_columns(P)
        self.r, self.c = np.nonzero(P)  # row-major order: the CSR layout of the pattern
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(self.r, minlength=n_rows))])
        self.take = self.colour[self.c]
        v = np.random.default_rng(20250101).standard_normal(d)
        seeds = np.zeros((self.n_colours + 1, d))
        seeds[self.colour, np.arange(d)] = 1.0
        seeds[-1] = v
        self.seeds, self.v = seeds, v
        self.shape = (n_rows, d)
        self.fallbacks = 0

    def __call__(self, x0):
        """(fn outputs, J as a sparse matrix) at ``x0``."""
        with np.errstate(all="ignore"):
            out = self.fn(x0, self.seeds)
        B = np.asarray(out[self.n_out], float)  # (colours + 1, rows)
        J = self.sp.csr_matrix((B[self.take, self.r], self.c, self.indptr), shape=self.shape)
        jv = B[-1]
        with np.errstate(all="ignore"):
            err = np.abs(J @ self.v - jv)
            tol = 1e-9 * (abs(J) @ np.abs(self.v) + np.abs(jv)) + 1e-300
        if not (np.all(err <= tol) or not np.all(np.isfinite(jv))):
            self.fallbacks += 1
            J = self.sp.csr_matrix(_dense_jacobian(self.fn, x0, self.d, self.n_out))
        return out, J

    def fisher(self, J, w):
        Jw = J.multiply(np.asarray(w, float)[:, None]).tocsr()
        return np.asarray((J.T @ Jw).todense())


def _replicate_machinery(model, x, layout, mc_rvs, random_seed):
    """Forward sampler of the replicate-based observed RVs at x, and their batched score."""
    import pytensor
    import pytensor.tensor as pt
    import pymc as pm
    from pytensor.graph.replace import graph_replace, vectorize_graph

    to_x = {v: x[sl].reshape(shape).astype(v.dtype) for v, shape, sl in layout}
    # forward: each replicate-based observed RV as a random graph of the (constrained) free RVs
    free_const = model.replace_rvs_by_values(list(model.free_RVs))
    sub = {rv: graph_replace(c, to_x, strict=False) for rv, c in zip(model.free_RVs, free_const)}
    draws = graph_replace(list(mc_rvs), sub, strict=False)
    forward = pm.compile([x], draws, random_seed=random_seed, on_unused_input="ignore")
    # score of their log-likelihood, with the data as inputs, batched over replicates
    ys = {model.rvs_to_values[rv]: pt.tensor(name=f"{rv.name}_rep", shape=(None,) * rv.ndim,
                                             dtype=model.rvs_to_values[rv].dtype) for rv in mc_rvs}
    loglik = model.logp(vars=list(mc_rvs), jacobian=False, sum=True)
    loglik = graph_replace(loglik, {**ys, **to_x}, strict=False)
    score = pytensor.gradient.grad(loglik, x, disconnected_inputs="ignore")
    batched = {y: pt.tensor(name=f"{y.name}_b", shape=(None,) * (y.ndim + 1), dtype=y.dtype)
               for y in ys.values()}
    score_b = vectorize_graph(score, replace=batched)
    fn = pytensor.function([x, *batched.values()], score_b, on_unused_input="ignore")
    return forward, fn, [model.rvs_to_values[rv].name for rv in mc_rvs]


def _full_shape(par_shape, size, static):
    """The latent variable's own shape (static where known, else inferred from its size)."""
    if all(d is not None for d in static):
        return static
    shape = [d if d is not None else -1 for d in static]
    known = int(np.prod([d for d in shape if d != -1], dtype=int))
    return tuple(size // known if d == -1 else d for d in shape)


def fisher_at_draws(model, points, white=None, *, n_replicates: int | None = None, replicates=None,
                    method: str = "auto", latent: bool = True, lambda_tol: float = 0.25,
                    random_seed=None, progressbar: bool = False, jacobian: str = "auto",
                    cache_key=None) -> DrawFisher:
    """Expected Fisher information of a PyMC model at a set of parameter draws.

    Parameters
    ----------
    model : pymc.Model
        Any model with observed variables and continuous free parameters.
    points : dict or ndarray
        S points in unconstrained coordinates: ``{value-variable name: array (S, *shape)}`` or an
        (S, d) array in :func:`value_layout` order (``model.value_vars``, each flattened in C order).
        Prior draws (:func:`prior_points`) for a structural check or design comparison; posterior
        draws for a diagnosis.
    white : Whitening, optional
        Prior whitening (:func:`bayesid.diagnostics.ridges.whitening`) in the same component order.
        Without it only the raw matrices ``fisher`` are returned.
    n_replicates : int, optional
        Replicate data sets per draw for observed variables without a closed-form information
        (default ``max(20, 10·d)``).
    replicates : dict, optional
        Caller-supplied replicate data ``{observed name: array (S, K, *obs_shape)}`` (e.g. from a
        fast simulator); used instead of PyMC's forward sampler for the replicate-based part.
    method : {"auto", "exact", "replicates"}
        ``"auto"``: closed form where available (table in the module docstring), replicates
        elsewhere. ``"exact"``: raise if some observed variable has no closed form. ``"replicates"``:
        Monte Carlo scores for every observed variable (the estimator of earlier versions).
    latent : bool
        Add the information that reaches hyperparameters through Normal latent levels (module
        docstring). False gives the likelihood's information only.
    lambda_tol : float
        Whitened eigenvalue below which a direction counts as locally uninformed (0.25 ⇔
        posterior/prior variance ratio ≥ 0.8).
    random_seed : int or SeedSequence, optional
        Seeds the replicate data sets (the exact part is deterministic).
    progressbar : bool
        Show progress over the draws (and over the per-draw eigen-decompositions of large models).
    cache_key : hashable, optional
        Keep the graph and compiled function for later calls with the same model object and key
        (:func:`bayesid.vectorize.cached`; the function reads ``pm.Data`` values when called, so one
        compilation serves every design of a model). The caller must change the key if the model changes.
    jacobian : {"auto", "dense", "sparse"}
        How the closed-form part gets ``J = ∂φ/∂θ``. ``"dense"``: PyTensor's full Jacobian (one
        backward pass per row of φ, then a dense ``Jᵀ diag(w) J``: cost ∝ rows·d²). ``"sparse"``: a
        compressed Jacobian — the sparsity pattern from two draws, columns coloured so that one
        forward product per colour recovers every entry, a random-direction check per draw (full
        Jacobian where it fails), and a sparse product; the same matrix up to rounding, at a cost
        that grows with the number of non-zeros (a hierarchical model needs 4 forward products
        whatever its number of groups). ``"auto"``: sparse above ``SPARSE_MIN_DIM`` coordinates.

    Returns
    -------
    DrawFisher
        Draws whose information is not finite (e.g. a simulator failure, p = 0) are dropped and
        counted in ``n_failed``.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> with pm.Model() as m:
    ...     a = pm.Normal("a"); b = pm.Normal("b")
    ...     _ = pm.Normal("y", a + b, 1.0, observed=np.zeros(10))
    >>> from bayesid.diagnostics.ridges import whitening
    >>> pts = prior_points(m, 200, random_seed=0)
    >>> r = fisher_at_draws(m, pts[:8], whitening(pts))
    >>> r.methods["y"], int(r.local_null_dim[0])
    ('exact', 1)
    """
    import pytensor
    import pytensor.tensor as pt

    if method not in ("auto", "exact", "replicates"):
        raise ValueError(f"method={method!r}; use 'auto', 'exact' or 'replicates'")
    if not model.observed_RVs:
        raise ValueError("The model has no observed variables: there is no likelihood whose information "
                         "could be computed. Add the data (observed=...) first.")
    from bayesid.pymc_utils import check_continuous

    check_continuous(model)
    names, layout = value_layout(model)
    d = len(names)
    pts = flatten_points(points, layout)
    S = pts.shape[0]
    t_c = time.perf_counter()
    x = pt.dvector("x_flat")
    if jacobian not in ("auto", "dense", "sparse"):
        raise ValueError(f"jacobian={jacobian!r}; use 'auto', 'dense' or 'sparse'")
    jac = jacobian if jacobian != "auto" else ("sparse" if d > SPARSE_MIN_DIM else "dense")
    from bayesid.vectorize import cached  # cache_key: graph and compiled function kept for this model

    x, (outputs, latent_rvs, mc_rvs, methods, phi) = cached(
        model, cache_key, ("fisher graph", method, jac), lambda: (x, _build(model, x, layout, method, jac)))
    methods = dict(methods)
    if method == "exact" and mc_rvs:
        raise ValueError(f"No closed-form Fisher information for {[rv.name for rv in mc_rvs]} "
                         f"(supported: {', '.join(EXACT_DISTRIBUTIONS)}); use method='auto'.")
    if not latent:
        outputs, latent_rvs = outputs[:1], []
        methods["latent"] = []
    gn = None
    if jac == "sparse" and phi is not None:
        V, jv = cached(model, cache_key, ("fisher jvp", method, jac), lambda: _jvp_graph(phi, x))
        fn = cached(model, cache_key, ("fisher fn", method, jac, latent), lambda: pytensor.function(
            [x, V], [*outputs, jv], on_unused_input="ignore", mode=FISHER_MODE))
        n_rows = int(np.asarray(fn(pts[0], np.zeros((1, d)))[0]).size)
        gn = _SparseGaussNewton(fn, len(outputs), pts, d, n_rows)
        jac_info = f"sparse ({gn.n_colours} forward products per draw, pattern {len(gn.r)} of " \
                              f"{n_rows}×{d})"
    else:
        fn = cached(model, cache_key, ("fisher fn", method, jac, latent), lambda: pytensor.function(
            [x], outputs, on_unused_input="ignore", mode=FISHER_MODE))
        jac_info = "dense"
    ss = np.random.SeedSequence(random_seed if not isinstance(random_seed, np.random.SeedSequence)
                                else random_seed.entropy)
    k = n_replicates or max(20, 10 * d)
    if mc_rvs:
        if replicates is not None:
            missing = [rv.name for rv in mc_rvs if rv.name not in replicates]
            if missing:
                raise KeyError(f"replicates lack the observed variables {missing}")
            forward = None
            _, score_b, _ = _replicate_machinery(model, x, layout, mc_rvs, 0)
        else:
            forward, score_b, _ = _replicate_machinery(model, x, layout, mc_rvs,
                                                       int(ss.generate_state(1)[0]))
    compile_s = time.perf_counter() - t_c

    t0 = time.perf_counter()
    F = np.zeros((S, d, d))
    ok = np.ones(S, bool)
    steps = range(S)
    if progressbar:
        from .display import progress

        steps = progress(steps, description=f"Fisher information at {S} draws", total=S)
    with _one_blas_thread():
        for s in steps:
            xs = pts[s]
            if gn is not None:
                out, J = gn(xs)
                f = gn.fisher(J, out[0])
            else:
                with np.errstate(all="ignore"):
                    out = fn(xs)
                f = np.array(out[0], float)
                if jac == "sparse":  # no closed-form rows: out[0] is an empty weight vector
                    f = np.zeros((d, d))
            if mc_rvs:
                if replicates is not None:
                    ys = [np.asarray(replicates[rv.name][s]) for rv in mc_rvs]
                else:
                    reps = [forward(xs) for _ in range(k)]
                    ys = [np.stack([r[i] for r in reps]) for i in range(len(mc_rvs))]
                with np.errstate(all="ignore"):
                    g = np.asarray(score_b(xs, *ys), float).reshape(-1, d)
                f = f + g.T @ g / g.shape[0]
            # information reaching hyperparameters through latent Normal levels, bottom level first
            for j in reversed(range(len(latent_rvs))):
                _, sl, _ = latent_rvs[j]
                sd, mu_v, ls_v, jm, jl = (np.asarray(a, float) for a in out[1 + 5 * j: 6 + 5 * j])
                a = np.clip(np.diag(f)[sl], 0.0, None)
                r = a / (a + 1.0 / sd**2)
                for par, jpar, c in ((mu_v, jm, r / sd**2), (ls_v, jl, 2.0 * r**2)):
                    shape = _full_shape(par.shape, sl.stop - sl.start, latent_rvs[j][2])
                    idx = np.broadcast_to(np.arange(par.size).reshape(par.shape), shape).ravel()
                    cu = np.bincount(idx, weights=c, minlength=par.size)
                    f = f + jpar.T @ (cu[:, None] * jpar)
            if not np.all(np.isfinite(f)):
                ok[s] = False
                continue
            F[s] = 0.5 * (f + f.T)
    secs = time.perf_counter() - t0
    if gn is not None and gn.fallbacks:
        jac_info += f"; full Jacobian at {gn.fallbacks} draw(s) whose check failed"
    if not ok.any():
        raise RuntimeError("The Fisher information is not finite at any of the draws (non-viable "
                           "parameters, or probabilities at exactly 0 or 1?); check the model at these points.")
    F, pts_ok = F[ok], pts[ok]
    res = DrawFisher(names=names, points=pts_ok, fisher=F, whitened=None, mean_whitened=None,
                     eigenvalues=None, vectors=None, local_eigenvalues=None, ok=ok,
                     lambda_tol=lambda_tol, methods=methods, seconds=secs, compile_seconds=compile_s,
                     jacobian=jac_info)
    if white is not None:
        whiten_result(res, white, progressbar=progressbar)
    return res


def whiten_result(res: DrawFisher, white, order=None, progressbar: bool = False) -> DrawFisher:
    """Fill the whitened fields of ``res`` in place.

    Parameters
    ----------
    white : Whitening
        Prior whitening whose components are ``res.names`` (or ``res.names[order]``).
    order : ndarray of int, optional
        Permutation applied to the components first (``F[:, order][:, :, order]``), when the
        whitening uses another component order (e.g. a diagnosis' names); ``res.names`` and
        ``res.points`` are permuted with it.
    """
    if order is not None:
        res.fisher = res.fisher[:, order][:, :, order]
        res.points = res.points[:, order]
        res.names = [res.names[i] for i in order]
    L = white.chol
    if L.shape[0] != res.fisher.shape[1]:
        raise ValueError(f"whitening has {L.shape[0]} components, the information {res.fisher.shape[1]}")
    with _one_blas_thread():
        _whiten(res, L, progressbar)
    return res


def _one_blas_thread():
    """Batched small eigen-decompositions run ~10x faster on one BLAS thread than on oversubscribed
    cores (measured: 64 x 202² eigh 12.4 s -> 0.9 s on a loaded 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()


_EIGH: dict = {}


def cached_eigh(W):
    """``numpy.linalg.eigh(W)`` of a stack of whitened matrices, reusing the decomposition
    :func:`whiten_result` computed when ``W`` is the very array it stored (``DrawFisher.whitened``,
    ``FisherResult.local_whitened``), so the diagnosis' later passes over the same per-draw matrices
    (local ridges, sampler trouble) do not repeat it. Otherwise computed on one BLAS thread."""
    ref = _EIGH.get("ref")
    if ref is not None and ref() is W:
        return _EIGH["value"]
    with _one_blas_thread():
        return np.linalg.eigh(W)


def _remember_eigh(W, value):
    import weakref

    _EIGH.clear()
    _EIGH["ref"], _EIGH["value"] = weakref.ref(W), value
    weakref.finalize(W, _EIGH.clear)  # forget it (and its vectors) with the matrices


def _n_threads(n_items: int, min_items: int = 8) -> int:
    """Worker threads for a batch of independent small LAPACK/BLAS calls: one per available core,
    none beyond one per ``min_items`` items (threads cost more than they give on tiny batches)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_items // min_items))


def _map_blocks(fn, n_items: int, block: int, n_threads: int, done=None):
    """Call ``fn(a, b)`` on consecutive blocks ``[a, b)`` of ``range(n_items)``, on ``n_threads``
    threads each limited to one BLAS thread (numpy's LAPACK calls release the GIL, so the threads run
    on separate cores without the oversubscription that many BLAS threads per small call give).
    ``done()`` is called once per finished block (progress)."""
    starts = [(a, min(a + block, n_items)) for a in range(0, n_items, block)]
    with _one_blas_thread():
        if n_threads <= 1 or len(starts) == 1:
            for a, b in starts:
                fn(a, b)
                if done is not None:
                    done()
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_threads) as pool:
            for fut in [pool.submit(fn, a, b) for a, b in starts]:
                fut.result()
                if done is not None:
                    done()


def _eigh_stack(W, progressbar=False, block=None):
    """Per-draw eigen-decompositions in blocks, on one thread per core (a progress bar for large
    models). The same numbers as ``numpy.linalg.eigh(W)``: each matrix is decomposed by the same
    LAPACK call, only on another thread."""
    S, d, _ = W.shape
    nt = _n_threads(S)
    block = block or max(1, min(int(4e6 // max(d, 1) ** 2), -(-S // nt)))
    lam, vec = np.empty((S, d)), np.empty((S, d, d))

    def run(a, b):
        lam[a:b], vec[a:b] = np.linalg.eigh(W[a:b])

    n_blocks = -(-S // block)
    if not progressbar or n_blocks <= 1:
        _map_blocks(run, S, block, nt)
        return lam, vec
    from .display import progress

    bar = iter(progress(range(n_blocks), description=f"eigen-decompositions of {S} {d}×{d} matrices",
                        total=n_blocks))
    _map_blocks(run, S, block, nt, done=lambda: next(bar, None))
    for _ in bar:  # close the bar
        pass
    return lam, vec


def _whitened_stack(F, L):
    """``W_s = Lᵀ F_s L`` for every draw, as two products over the whole stack: ``Y = F L`` (rows of
    all draws at once; sparse where the information is, e.g. a hierarchical model's arrowhead) and
    ``W_s = Y_sᵀ L`` (``F_s`` is symmetric), in blocks on one thread per core."""
    S, d, _ = F.shape
    if S == 0:
        return np.empty_like(F)
    sparse = d >= 100 and np.count_nonzero(F) <= 0.1 * F.size
    if not sparse and d < 100:  # small dense matrices: one batched matmul beats the blocks' overhead
        return L.T[None] @ F @ L[None]
    W = np.empty_like(F)
    nt = _n_threads(S, min_items=4)
    block = -(-S // nt)

    def run(a, b):
        if sparse:
            import scipy.sparse as sp

            Y = sp.csr_matrix(F[a:b].reshape(-1, d)) @ L
        else:
            Y = F[a:b].reshape(-1, d) @ L
        Yt = np.ascontiguousarray(Y.reshape(b - a, d, d).transpose(0, 2, 1))
        W[a:b] = (Yt.reshape(-1, d) @ L).reshape(b - a, d, d)

    _map_blocks(run, S, block, nt)
    return W


def _whiten(res, L, progressbar=False):
    W = _whitened_stack(res.fisher, L)
    lam_s, vec_s = _eigh_stack(W, progressbar)
    _remember_eigh(W, (lam_s, vec_s))
    lam_s = np.clip(lam_s, 0.0, None)
    mean_w = W.mean(axis=0)
    lam, vec = np.linalg.eigh(mean_w)
    null = lam_s < res.lambda_tol  # (S, d)
    # share of each parameter's prior variance along the null eigenvectors: only those columns
    norm = np.sum(L**2, axis=1)
    null_weight = np.zeros(null.shape)
    for s in np.flatnonzero(null.any(axis=1)):
        null_weight[s] = np.sum((L @ vec_s[s][:, null[s]]) ** 2, axis=1) / norm
    res.whitened, res.mean_whitened = W, mean_w
    res.eigenvalues, res.vectors = np.clip(lam, 0.0, None), vec
    res.local_eigenvalues, res.local_vectors = lam_s, vec_s
    res.local_null_dim = null.sum(axis=1)
    res.null_weight = null_weight
    return res
