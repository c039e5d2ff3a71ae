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

__all__ = ["Whitening", "whitening", "DirectionSet", "posterior_directions", "parameter_weights",
           "Coordinate", "coordinate_candidates", "LocalNullSpaces", "local_null_spaces", "null_components",
           "straighten", "LocalRidge", "local_ridges", "predicted_ratio", "linked_groups"]


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
    from .preposterior import _one_blas_thread

    prior_unc = np.asarray(prior_unc, float)
    mu = prior_unc.mean(axis=0)
    with _one_blas_thread():  # speed only (oversubscribed BLAS threads: ~10x slower at d = 1000)
        cov = np.atleast_2d(np.cov(prior_unc, rowvar=False))
    scale = np.sqrt(np.diag(cov))
    if np.any(scale <= 0):
        raise ValueError("A parameter does not vary in the prior draws; its prior variance is zero.")
    corr = cov / np.outer(scale, scale)
    with _one_blas_thread():
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
    from .preposterior import _one_blas_thread

    d = white.mean.size
    q = np.asarray(posterior_unc, float)
    lead = q.shape[:-1] if q.ndim == 3 else (1, q.shape[0])
    with _one_blas_thread():  # speed only: oversubscribed BLAS threads made these 2-4x slower
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


# ---------------------------------------------------------------------------------------------------
# Local (curved) ridges from the per-draw Fisher information, straightened by a choice of coordinates
# ---------------------------------------------------------------------------------------------------
#
# At a posterior draw θ_s the locally uninformed directions are the eigenvectors of the whitened
# Fisher matrix W_s with eigenvalue below ``lambda_tol`` (the same 0.8 variance-ratio edge as the
# draw-based ridges). A ridge is *curved* when these directions turn from draw to draw. Changing the
# coordinate of parameter i from its unconstrained value θ_i to φ_i = g(x_i) (x_i natural) maps a
# displacement u by the diagonal Jacobian dφ/dθ evaluated at the draw, so the search below tries,
# per parameter, the natural value, its log (positive support), logit, log(x − a), log(b − x)
# (bounded support) and the unconstrained coordinate itself, and keeps the choice in which the null
# space is most nearly the same at every draw (``straightness`` = 1 − mean overlap of the per-draw
# null projectors with their average). In those coordinates the ridge is a straight line (or plane)
# and the combinations orthogonal to it are the invariants the data determine (p1·p2, k/m, b − c).


@dataclass
class Coordinate:
    """A candidate coordinate φ = g(x) for one parameter component."""

    kind: str  # "unconstrained", "natural", "log", "log1m" (log(b − x)), "logit", "abslog"
    lower: float = 0.0
    upper: float = 1.0

    def values(self, x, theta):
        x = np.asarray(x, float)
        if self.kind == "unconstrained":
            return np.asarray(theta, float)
        if self.kind == "natural":
            return x
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "log":
                return np.log(x - self.lower)
            if self.kind == "abslog":
                return np.log(np.abs(x))
            if self.kind == "log1m":
                return np.log(self.upper - x)
            if self.kind == "logit":
                return np.log(x - self.lower) - np.log(self.upper - x)
        raise ValueError(self.kind)

    def jacobian(self, x, dxdtheta):
        """dφ/dθ at natural value ``x`` given dx/dθ of the unconstrained coordinate."""
        if self.kind == "unconstrained":
            return np.ones_like(np.asarray(x, float))
        if self.kind == "natural":
            return dxdtheta
        if self.kind in ("log", "abslog"):
            return dxdtheta / (x - (self.lower if self.kind == "log" else 0.0))
        if self.kind == "log1m":
            return -dxdtheta / (self.upper - x)
        if self.kind == "logit":
            return dxdtheta * (self.upper - self.lower) / ((x - self.lower) * (self.upper - x))
        raise ValueError(self.kind)

    def name(self, natural_name: str, unconstrained_name: str) -> tuple[str, str | None]:
        """(component name, transform label) understood by :func:`.combinations.name_combination`."""
        lo = f"{self.lower:g}"
        hi = f"{self.upper:g}"
        if self.kind == "unconstrained":
            return unconstrained_name, None
        if self.kind == "natural":
            return natural_name, None
        if self.kind == "abslog" or (self.kind == "log" and self.lower == 0):
            return f"{natural_name}_log__", "log"
        if self.kind == "log":
            return f"({natural_name} - {lo})_log__", "log"
        if self.kind == "log1m":
            return f"({hi} - {natural_name})_log__", "log"
        if self.kind == "logit":
            return f"{natural_name}_logit__", "logit"
        raise ValueError(self.kind)


def coordinate_candidates(transform, prior, posterior, bounds=None):
    """Candidate coordinates for one component, most conventional first.

    Parameters
    ----------
    transform : str or None
        The component's unconstrained transform (``None``, ``"log"``, ``"logodds"``, ``"interval"``…).
    prior, posterior : ndarray (n,)
        Natural-scale draws.
    bounds : (float, float), optional
        The constant bounds of an ``"interval"`` component, read from the model's transform
        (:func:`bayesid.pymc_utils.interval_bounds`; ``±inf`` on an open side). Without them (bounds
        that are parameters themselves, or no model) the component keeps its unconstrained coordinate.

    Returns
    -------
    list of Coordinate, and a function ``dxdtheta(x)``.
    """
    prior = np.asarray(prior, float)
    posterior = np.asarray(posterior, float)
    if transform is None:
        out = [Coordinate("natural")]
        if (posterior > 0).all() and np.isfinite(np.log(np.abs(prior))).all():
            out.append(Coordinate("abslog"))
        return out, lambda x: np.ones_like(x)
    if transform == "log":
        return [Coordinate("log"), Coordinate("natural")], lambda x: np.asarray(x, float)
    if transform == "interval" and bounds is not None:
        lo, hi = (float(v) for v in bounds)
        if np.isfinite(lo) and not np.isfinite(hi):  # x = a + exp(θ)
            return [Coordinate("log", lo), Coordinate("natural", lo)], lambda x: np.asarray(x, float) - lo
        if np.isfinite(hi) and not np.isfinite(lo):  # x = b − exp(θ)
            return [Coordinate("log1m", upper=hi), Coordinate("natural", upper=hi)], lambda x: np.asarray(x, float) - hi
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return [Coordinate("natural")], lambda x: np.ones_like(np.asarray(x, float))
        transform = "logodds-like"
    if transform in ("logodds", "logodds-like"):  # x = a + (b − a)·σ(θ), (0, 1) for logodds
        lo, hi = (0.0, 1.0) if transform == "logodds" else (lo, hi)
        cands = [Coordinate("logit", lo, hi), Coordinate("natural", lo, hi), Coordinate("log", lo, hi),
                 Coordinate("log1m", lo, hi)]
        return cands, lambda x: (np.asarray(x, float) - lo) * (hi - np.asarray(x, float)) / (hi - lo)
    # a transform without a natural alternative (zero-sum coordinates, an interval whose bounds are
    # parameters): keep it
    return [Coordinate("unconstrained")], lambda x: np.ones_like(np.asarray(x, float))


@dataclass
class LocalNullSpaces:
    """Per-draw locally uninformed subspaces of the whitened Fisher information.

    Attributes
    ----------
    null_share : ndarray (S, d)
        Share of each parameter's prior variance lying in the draw's uninformed subspace (the
        :func:`parameter_weights` of the null eigenvectors).
    informed_share : ndarray (S, d)
        Share along directions the draw's information identifies (λ ≥ ``lambda_identified``).
    displacements : list of ndarray (d, k_s)
        Null directions at each draw as displacements in unconstrained coordinates.
    """

    null_share: np.ndarray
    informed_share: np.ndarray
    displacements: list

    def fraction(self, weight_tol: float):
        """Per parameter: fraction of draws where it loads (share ≥ ``weight_tol``) on an uninformed
        direction, and its binomial Monte Carlo standard error (draws subsampled at random)."""
        hit = self.null_share >= weight_tol
        f = hit.mean(axis=0)
        return f, np.sqrt(f * (1.0 - f) / hit.shape[0])


def local_null_spaces(local_whitened, chol, lambda_tol: float = 0.25, lambda_identified: float = 1.0):
    """Locally uninformed subspaces at each Fisher draw (numpy core).

    Parameters
    ----------
    local_whitened : ndarray (S, d, d)
        Per-draw prior-whitened Fisher matrices.
    chol : ndarray (d, d)
        Prior Cholesky factor ``L``.
    lambda_tol : float
        Below it a direction is uninformed (variance ratio ≥ 1/(1 + λ) = 0.8).
    lambda_identified : float
        From it a direction is identified (ratio ≤ 0.5, the ``identified`` threshold).
    """
    from .preposterior import _map_blocks, _n_threads, cached_eigh

    W = np.asarray(local_whitened, float)
    lam, vec = cached_eigh(W)  # the Fisher module's decomposition of these very matrices, if it has one
    S = W.shape[0]
    proj = np.empty_like(vec)  # (S, d, d): parameter i, direction k

    def _project(a, b):  # batched small products, one BLAS thread per core
        proj[a:b] = (chol[None] @ vec[a:b]) ** 2

    nt = _n_threads(S, min_items=4)
    _map_blocks(_project, S, -(-S // nt) if S else 1, nt)
    proj /= proj.sum(axis=2, keepdims=True)
    null = lam < lambda_tol
    ident = lam >= lambda_identified
    null_share = np.einsum("sik,sk->si", proj, null)
    inf_share = np.einsum("sik,sk->si", proj, ident)
    disp = [chol @ vec[s][:, null[s]] for s in range(W.shape[0])]
    return LocalNullSpaces(null_share, inf_share, disp)


def _orth(m, k):
    u, _, _ = np.linalg.svd(m, full_matrices=False)
    return u[:, :k]


def null_components(nulls: LocalNullSpaces, involved, scale, coupling_tol: float = 0.05):
    """Group the involved parameters into independent ridges: i and j belong together when their
    rows of the per-draw null projector (in prior-SD units) overlap at some draws on average."""
    involved = list(involved)
    S = len(nulls.displacements)
    C = np.zeros((len(scale), len(scale)))
    for u in nulls.displacements:
        if u.shape[1] == 0:
            continue
        b = _orth(u / scale[:, None], u.shape[1])
        P = b @ b.T
        dg = np.sqrt(np.clip(np.diag(P), 1e-300, None))
        C += np.abs(P) / np.outer(dg, dg)
    C /= max(S, 1)
    sub = C[np.ix_(involved, involved)] > coupling_tol
    return linked_groups(sub | sub.T, involved)


def linked_groups(linked, members) -> list:
    """Connected components of a symmetric boolean coupling matrix.

    Parameters
    ----------
    linked : ndarray (k, k) of bool
        ``linked[a, b]``: members ``a`` and ``b`` belong to one group.
    members : sequence of int
        The index each row stands for.

    Returns
    -------
    list of list of int
        Each group sorted, groups ordered by their first member.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    _, lab = connected_components(csr_matrix(np.asarray(linked, bool)), directed=False)
    first = {}
    for a, g in enumerate(lab.tolist()):
        first.setdefault(g, []).append(int(members[a]))
    return [sorted(g) for g in first.values()]


def straighten(disp_list, comp, xs, candidates, dxdtheta, phi_scale, theta_scale, max_combos: int = 729):
    """Coordinates (one candidate per parameter of ``comp``) in which the local null space is most
    nearly constant across draws.

    Parameters
    ----------
    disp_list : list of ndarray (d, k_s)
        Per-draw null displacements (unconstrained coordinates).
    comp : list of int
        The parameters of one ridge.
    xs : ndarray (S, d)
        Natural values at the Fisher draws.
    candidates : list (per parameter of comp) of list of Coordinate
    dxdtheta : list (per parameter of comp) of callables
    phi_scale : list (per parameter of comp) of ndarray (n_candidates,)
        Prior SD of each candidate coordinate (so the comparison is in prior units).
    theta_scale : ndarray (|comp|,)
        Prior SD of the unconstrained coordinates.

    Returns
    -------
    choice : tuple of int
        Index of the chosen candidate per parameter.
    deviation : float
        ``1 − (sum of the k largest eigenvalues of the mean projector)/k``: 0 for a straight ridge.
    basis : ndarray (|comp|, k)
        The averaged null directions in the chosen coordinates (prior-SD units).
    k : int
        Dimension of the ridge (the most common rank at the draws).
    fraction : float
        Fraction of draws whose null space restricted to ``comp`` has that rank.
    deviation_unconstrained : float
        The same deviation in the unconstrained coordinates (curvature there).
    """
    import itertools

    comp = list(comp)
    blocks, ranks = [], []
    for u in disp_list:
        if u.shape[1] == 0:
            blocks.append(None)
            ranks.append(0)
            continue
        sub = u[comp]
        # rank of the null space seen through these parameters
        b = _orth(u, u.shape[1])
        P = (b @ b.T)[np.ix_(comp, comp)]
        r = int(np.sum(np.linalg.eigvalsh(P) > 0.5))
        blocks.append(sub)
        ranks.append(r)
    ranks = np.array(ranks)
    k = int(np.bincount(ranks[ranks > 0]).argmax()) if (ranks > 0).any() else 0
    use = [s for s in range(len(disp_list)) if ranks[s] == k and k > 0]
    frac = len(use) / max(len(disp_list), 1)
    if k == 0 or not use:
        return None, np.nan, None, 0, 0.0, np.nan
    # Jacobian tables: jac[p][c] -> (S,) dφ_c/dθ for parameter p
    jac = [[c.jacobian(xs[:, i], dxdtheta[p](xs[:, i])) for c in candidates[p]] for p, i in enumerate(comp)]

    # the span each draw's null space cuts out of these parameters: k orthonormal columns per draw
    span = np.stack([_orth(blocks[s], k) for s in use])  # (S', |C|, k)
    use_arr = np.array(use)

    def deviation(choice):
        d = np.stack([jac[p][c][use_arr] / phi_scale[p][c] for p, c in enumerate(choice)], axis=1)
        m = d[:, :, None] * span
        if not np.isfinite(m).all():
            return np.inf, None
        b = np.linalg.svd(m, full_matrices=False)[0][:, :, :k]
        acc = np.einsum("sik,sjk->ij", b, b) / len(use)
        lam, vec = np.linalg.eigh(acc)
        return 1.0 - lam[-k:].sum() / k, vec[:, -k:]

    sizes = [len(c) for c in candidates]
    choices = itertools.product(*[range(n) for n in sizes])
    if np.prod(sizes) > max_combos:  # coordinate-wise search from the conventional choice
        cur = [0] * len(comp)
        best = deviation(tuple(cur))[0]
        for _ in range(3):
            for p in range(len(comp)):
                for c in range(sizes[p]):
                    trial = list(cur)
                    trial[p] = c
                    dv = deviation(tuple(trial))[0]
                    if dv < best - 1e-4:
                        best, cur = dv, trial
        choices = [tuple(cur)]
    best, best_choice, best_basis = np.inf, None, None
    for ch in choices:
        dv, basis = deviation(ch)
        if dv < best - 1e-4:  # ties go to the earlier (more conventional) choice
            best, best_choice, best_basis = dv, ch, basis
    # the same in unconstrained coordinates (for the "curved" flag)
    acc = np.zeros((len(comp), len(comp)))
    for s in use:
        b = _orth(blocks[s] / np.asarray(theta_scale, float)[:, None], k)
        acc += b @ b.T
    lam = np.linalg.eigvalsh(acc / len(use))
    dev_unc = 1.0 - lam[-k:].sum() / k
    return best_choice, float(best), best_basis, k, frac, float(dev_unc)


@dataclass
class LocalRidge:
    """One independent set of locally uninformed directions (from the per-draw Fisher information).

    Attributes
    ----------
    parameters : list of str
        Natural component names that move along it.
    dim : int
        Its dimension (the most common rank of the null space at the draws).
    draw_fraction, draw_fraction_se : float
        Fraction of the Fisher draws with a null space of that dimension through these parameters,
        and its binomial Monte Carlo standard error.
    coordinates : dict of str -> str
        Per parameter, the coordinate in which the ridge is straight (``"log"``, ``"natural"``…).
    deviation : float
        Residual turning of the null space in those coordinates (0: exactly straight).
    deviation_unconstrained : float
        The same in the sampler's unconstrained coordinates (large: the ridge is curved there).
    straight : bool
        ``deviation ≤ straight_tol``: a straight line in ``coordinates``, so it can be named.
    displacement : dict of str -> float
        The averaged null direction in the chosen coordinates (first one if ``dim > 1``), by
        coordinate name (``p1_log__``, ``c``…), max |.| = 1.
    combinations : list of Combination
        Named invariants that passed the check against the draws.
    rejected : list of str
        Names proposed but rejected by the check (not shown in the summary).
    label : str
        Name of the displacement ("p1/p2" moves freely).
    loadings : dict of str -> float
        The averaged null direction in unconstrained coordinates (max |.| = 1), for comparison with
        the draw-based directions.
    """

    parameters: list
    dim: int
    draw_fraction: float
    draw_fraction_se: float
    coordinates: dict
    deviation: float
    deviation_unconstrained: float
    straight: bool
    displacement: dict
    combinations: list
    rejected: list
    label: str
    loadings: dict = None

    @property
    def curved(self) -> bool:
        """Curved in the unconstrained coordinates the sampler uses."""
        return bool(self.deviation_unconstrained > max(0.02, 5 * self.deviation))


def local_ridges(fisher, white, draws, weight_tol: float = 0.1, identified: float = 0.5,
                 straight_tol: float = 0.02, majority: float = 0.5, *, model=None, measure: str = "draws"):
    """Independent local ridges, each straightened and named, with its invariants checked.

    One function for the diagnosis (posterior draws) and the structural check (prior draws, no
    posterior: ``measure="fisher"``).

    Parameters
    ----------
    fisher : FisherResult or DrawFisher
        Per-draw whitened information and the points it was evaluated at (``local_whitened`` and
        ``draw_points`` of a :class:`~bayesid.diagnostics.fisher.FisherResult`, or ``whitened`` and
        ``points`` of a :class:`~bayesid.diagnostics.preposterior.DrawFisher`), in ``draws``' order.
    white : Whitening
    draws : ParameterDraws
        Prior and posterior draws; their posterior rows must contain the Fisher points (for the
        structural check: the prior draws the information was evaluated at).
    weight_tol : float
        Share of a parameter's prior variance on the null space from which it counts as loading.
    identified : float
        Contraction a named combination must reach (minus 2 MCSE) to be reported.
    straight_tol : float
        Largest residual turning (see :func:`straighten`) for a ridge to be called straight.
    majority : float
        A parameter is locally uninformed when it loads on a null direction at more than this
        fraction of the draws.
    model : pymc.Model, optional
        Where given, the bounds of interval-transformed parameters are read from their transforms
        (:func:`bayesid.pymc_utils.interval_bounds`), so that ``Uniform(0, b)`` parameters are
        straightened in log/logit coordinates like ``logodds`` ones. Without it (or for bounds that are
        parameters themselves) such a parameter keeps its unconstrained coordinate.
    measure : {"draws", "fisher"}
        How a named combination's contraction is checked. ``"draws"``: its posterior/prior variance
        ratio on the draws (:func:`.combinations.check_combination`). ``"fisher"``: the local
        linear-Gaussian prediction at the Fisher draws (:func:`predicted_ratio`), for a check before
        any sampling.

    Returns
    -------
    nulls : LocalNullSpaces
    ridges : list of LocalRidge
    """
    from .combinations import check_combination, combinations_orthogonal_to, name_combination

    if measure not in ("draws", "fisher"):
        raise ValueError(f"measure={measure!r}: use 'draws' (posterior draws) or 'fisher' (prediction)")
    W = getattr(fisher, "local_whitened", None)
    W = fisher.whitened if W is None else W
    pts = getattr(fisher, "draw_points", None)
    pts = np.asarray(fisher.points if pts is None else pts, float)
    lam_id = 1.0 / (1.0 - identified) - 1.0
    nulls = local_null_spaces(W, white.chol, fisher.lambda_tol, lam_id)
    frac, _ = nulls.fraction(weight_tol)
    involved = [i for i in range(draws.d) if frac[i] > majority]
    if not involved:
        return nulls, []
    bounds = _component_bounds(model, draws) if model is not None else {}
    theta_sd = np.sqrt(np.diag(white.cov))
    comps = null_components(nulls, involved, theta_sd)
    # natural values at the Fisher draws: match each draw point to its posterior row (the Fisher
    # module lists components in the model's order, so match permutation-invariantly)
    q_unc = draws.posterior_unc_flat
    key_q = np.sort(q_unc, axis=1)
    key_p = np.sort(pts, axis=1)
    rows = np.array([int(np.argmin(((key_q - kp) ** 2).sum(axis=1))) for kp in key_p])
    xs = draws.posterior_flat[rows]
    out = []
    for comp in comps:
        cands, dxdt, phi_sd = [], [], []
        for i in comp:
            c, f = coordinate_candidates(draws.transforms[i], draws.prior[:, i], draws.posterior_flat[:, i],
                                         bounds.get(i))
            sds = []
            for cc in c:
                v = cc.values(draws.prior[:, i], draws.prior_unc[:, i])
                v = v[np.isfinite(v)]
                sds.append(float(np.std(v)) if v.size > 2 and np.std(v) > 0 else np.inf)
            cands.append(c)
            dxdt.append(f)
            phi_sd.append(np.array(sds))
        choice, dev, basis, k, dfrac, dev_unc = straighten(nulls.displacements, comp, xs, cands, dxdt, phi_sd,
                                                           theta_sd[comp])
        names = [draws.names[i] for i in comp]
        se = float(np.sqrt(dfrac * (1 - dfrac) / len(nulls.displacements)))
        if choice is None:
            continue
        coords = [cands[p][c] for p, c in enumerate(choice)]
        labels = [coords[p].name(draws.names[i], draws.unconstrained_names[i]) for p, i in enumerate(comp)]
        phi_names = [lb[0] for lb in labels]
        trmap = {lb[0]: lb[1] for lb in labels}
        disp = basis * np.array([phi_sd[p][c] for p, c in enumerate(choice)])[:, None]
        d0 = disp[:, -1] / disp[np.argmax(np.abs(disp[:, -1])), -1]
        displacement = {phi_names[p]: float(d0[p]) for p in range(len(comp)) if abs(d0[p]) > 1e-3}
        big = {kk: v for kk, v in displacement.items() if abs(v) >= 0.15}
        straight = bool(dev <= straight_tol)
        combos, rejected = [], []
        if straight and len(comp) > 1:
            if measure == "draws":
                phi_prior = np.column_stack([coords[p].values(draws.prior[:, i], draws.prior_unc[:, i])
                                             for p, i in enumerate(comp)])
                phi_post = np.stack([coords[p].values(draws.posterior[..., i], draws.posterior_unc[..., i])
                                     for p, i in enumerate(comp)], axis=-1)
            else:  # dφ/dθ at the Fisher draws, for the predicted ratio
                jac = np.column_stack([coords[p].jacobian(xs[:, i], dxdt[p](xs[:, i])) for p, i in enumerate(comp)])
            for cb in combinations_orthogonal_to(disp, phi_names, [trmap[n] for n in phi_names]):
                if not _simple(cb.coefficients):
                    rejected.append(cb.name)  # e.g. a^0.43·b: no invariant a modeller would recognise
                    continue
                if measure == "draws":
                    check_combination(cb, phi_names, phi_prior, phi_post)
                else:
                    c_phi = np.array([cb.coefficients.get(n, 0.0) for n in phi_names])
                    grad = np.zeros((len(xs), draws.d))
                    grad[:, comp] = jac * c_phi
                    cb.ratio, cb.ratio_se = predicted_ratio(W, white.chol, grad)
                cb.source = "fisher-local"
                cb.parameters = [names[p] for p in range(len(comp)) if phi_names[p] in cb.coefficients]
                if np.isfinite(cb.ratio) and cb.contraction - 2 * cb.ratio_se >= identified:
                    combos.append(cb)
                else:
                    rejected.append(cb.name)
        acc = np.zeros((len(comp), len(comp)))
        for u in nulls.displacements:
            if u.shape[1]:
                bb = _orth(u[comp] / theta_sd[comp][:, None], min(k, u.shape[1]))
                acc += bb @ bb.T
        top = np.linalg.eigh(acc)[1][:, -1] * theta_sd[comp]
        top /= top[np.argmax(np.abs(top))]
        loadings = {draws.unconstrained_names[i]: float(top[p]) for p, i in enumerate(comp)}
        out.append(LocalRidge(
            loadings=loadings, parameters=names, dim=k, draw_fraction=dfrac, draw_fraction_se=se,
            coordinates={n: c.kind if c.kind != "unconstrained" else "unconstrained"
                         for n, c in zip(names, coords)},
            deviation=dev, deviation_unconstrained=dev_unc, straight=straight, displacement=displacement,
            combinations=combos, rejected=rejected,
            label=name_combination(big, trmap) if straight and len(comp) > 1 else " and ".join(names)))
    return nulls, out


def _component_bounds(model, draws) -> dict:
    """Component index -> (lower, upper) of the interval-transformed components of ``draws``, from the
    model's transforms."""
    from bayesid.pymc_utils import interval_bounds

    by_var = interval_bounds(model)
    out = {}
    for i, (n, v, tr) in enumerate(zip(draws.names, draws.variables, draws.transforms)):
        if tr == "interval" and v in by_var:
            lo, hi = by_var[v]
            pos = draws.index.get(n, (v, 0))[1]
            out[i] = (float(lo[pos]), float(hi[pos]))
    return out


def predicted_ratio(local_whitened, chol, grad):
    """Local linear-Gaussian posterior/prior variance ratio of a function ``g(θ)``, averaged over draws.

    At draw ``s`` with whitened information ``W_s`` and ``h_s = Lᵀ ∇g(θ_s)``, the ratio is
    ``h_sᵀ (I + W_s)⁻¹ h_s / h_sᵀ h_s`` (``1/(1 + λ)`` for ``h_s`` along an eigenvector): what a
    posterior at that point would leave of the prior variance of ``g``.

    Parameters
    ----------
    local_whitened : ndarray (S, d, d)
    chol : ndarray (d, d)
        Prior Cholesky factor ``L``.
    grad : ndarray (S, d)
        ``∇g`` in unconstrained coordinates at each draw.

    Returns
    -------
    ratio, ratio_se : float
        Mean over the draws and its Monte Carlo standard error (independent draws); NaN where no draw
        has a finite, non-zero gradient.
    """
    from .preposterior import cached_eigh

    lam, vec = cached_eigh(local_whitened)
    h = np.asarray(grad, float) @ chol  # rows: Lᵀ ∇g
    proj = np.einsum("sk,skj->sj", h, vec) ** 2
    norm = proj.sum(axis=1)
    ok = np.isfinite(norm) & (norm > 0)
    if not ok.any():
        return float("nan"), float("nan")
    r = (proj[ok] / (1.0 + np.clip(lam[ok], 0.0, None))).sum(axis=1) / norm[ok]
    se = float(np.std(r, ddof=1) / np.sqrt(r.size)) if r.size > 1 else float("nan")
    return float(r.mean()), se


def _simple(coefficients: dict, snap_tol: float = 0.08) -> bool:
    """Every coefficient (relative to the largest) is a simple ratio (1, 2, 3, 1/2, 1/3, 2/3, 3/2…)."""
    from .combinations import _snap

    v = np.array(list(coefficients.values()), float)
    if v.size == 0:
        return False
    v = v / np.abs(v).max()
    return all(_snap(x, snap_tol) is not None for x in v)
