"""Latent-rate models: parameters of latent random variables seen only through pairs.

The family answers the situation of the reference question (Cross Validated 596068): a model emits
parameters of latent random variables (rates λ of exponential waiting times) that are never
observed; only a process acting on *pairs* is. The likelihood then depends on differences, and
a common shift (or an affine map a·λ + b) of all parameters leaves it unchanged.

Models
------
``rates.pairwise`` (:class:`Pairwise`)
    n items with latent log-rates θ_i = log λ_i. For each compared pair (i, j) two independent
    exponential waiting times T_i ~ Exp(λ_i), T_j ~ Exp(λ_j) race; only which ends first is seen:
    P(T_i < T_j) = λ_i / (λ_i + λ_j) = logistic(θ_i − θ_j). A common shift θ → θ + b (a common
    *scale* of the rates, λ → e^b λ) leaves every outcome probability unchanged: the all-ones
    direction of θ is a ridge (one per connected component of the comparison graph).
``rates.anchored`` (:class:`PairwiseAnchored`)
    Fix: θ_0 = 0; the free parameters are δ_i = θ_i − θ_0, i = 1..n−1. Identified.
``rates.zerosum`` (:class:`PairwiseZeroSum`)
    Fix: θ ~ ZeroSumNormal (Σ θ_i = 0). Identified in the n − 1 unconstrained coordinates.
``rates.l2`` (:class:`PairwiseL2`)
    "Fix": a weak L2 penalty α Σ θ_i², i.e. θ_i ~ Normal(0, 1/√(2α)). The penalised optimum has
    mean(θ) = 0, but the posterior along the shift is *exactly* the prior's: the shift stays
    prior-determined, it is only given a default.
``rates.affine`` (:class:`Affine`)
    Thurstone pairs: P(i beats j) = Φ((λ_i − λ_j)/σ), σ > 0 unknown. Shift (linear ridge) and
    scale (curved ridge (λ, σ) → (cλ, cσ)) are both free.
``rates.beta_pair`` (:class:`BetaPair`)
    The question's complex case: y ~ Beta(u, v), u = (λ1 + λ2)/(λ1 λ2), v = λ1 λ2^p. The Jacobian
    determinant of (λ1, λ2) → (u, v) is λ2^(p−2) (1 − p λ2/λ1): local identifiability is lost on the
    curve λ1 = p λ2 (p > 0); for p = 1 the pair is identified only up to swapping λ1 ↔ λ2; for
    p ≤ 0 the map is one-to-one (negative control).
"""

from __future__ import annotations

from itertools import combinations as _pairs_of

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

from .base import BadDataError, Design, KnownAnswer, ModelSpec, Parameter
from .priors import Prior

__all__ = [
    "Pairwise",
    "PairwiseAnchored",
    "PairwiseZeroSum",
    "PairwiseL2",
    "Affine",
    "BetaPair",
    "comparison_pairs",
    "pair_design_matrix",
    "connected_components",
]

N_ITEMS = 6


# --------------------------------------------------------------------------- comparison designs
def comparison_pairs(design) -> tuple[np.ndarray, np.ndarray]:
    """Item indices ``(first, second)`` of every comparison of a pairwise design.

    Each pair in ``design["pairs"]`` is compared ``design["n_rep"]`` times; comparisons are ordered
    pair by pair. ``y[k] = 1`` means item ``first[k]`` ended first (won).

    Parameters
    ----------
    design : Design
        Settings ``n_items``, ``pairs`` (tuple of (i, j)) and ``n_rep``.

    Returns
    -------
    first, second : ndarray of int, shape (n_comparisons,)
    """
    pairs = np.asarray(design["pairs"], dtype=int).reshape(-1, 2)
    rep = int(design["n_rep"])
    return np.repeat(pairs[:, 0], rep), np.repeat(pairs[:, 1], rep)


def pair_design_matrix(design) -> np.ndarray:
    """The matrix X with rows e_i − e_j, one per comparison: the logits are X θ.

    Its null space is the set of non-identified directions of θ in the pairwise model: the all-ones
    vector on each connected component of the comparison graph.
    """
    first, second = comparison_pairs(design)
    X = np.zeros((first.size, int(design["n_items"])))
    X[np.arange(first.size), first] = 1.0
    X[np.arange(first.size), second] = -1.0
    return X


def connected_components(n_items, pairs) -> list[list[int]]:
    """Connected components of the comparison graph (items as nodes, compared pairs as edges)."""
    parent = list(range(n_items))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in pairs:
        parent[find(int(i))] = find(int(j))
    comps: dict[int, list[int]] = {}
    for i in range(n_items):
        comps.setdefault(find(i), []).append(i)
    return sorted(comps.values())


def _check_pairs(n_items, pairs, model_items=None):
    if model_items is not None and n_items != model_items:
        raise ValueError(f"the design compares {n_items} items but the model has {model_items}; build a "
                         "design with n_items matching the model's parameters")
    for i, j in pairs:
        if not (0 <= i < n_items and 0 <= j < n_items) or i == j:
            raise ValueError(f"invalid pair ({i}, {j}) for {n_items} items: need 0 <= i != j < {n_items}")


def _pair_designs(n_items=N_ITEMS, n_rep=20):
    all_pairs = tuple(_pairs_of(range(n_items), 2))
    chain = tuple((i, i + 1) for i in range(n_items - 1))
    half = n_items // 2
    split = tuple(p for p in all_pairs if (p[0] < half) == (p[1] < half))
    return {
        "all_pairs": Design("all_pairs", f"all {len(all_pairs)} pairs of {n_items} items, {n_rep} races each",
                            {"n_items": n_items, "pairs": all_pairs, "n_rep": n_rep}),
        "chain": Design("chain", f"only neighbours (i, i+1) compared, {n_rep} races each (connected graph)",
                        {"n_items": n_items, "pairs": chain, "n_rep": n_rep}),
        "disconnected": Design(
            "disconnected",
            f"items {{0..{half - 1}}} and {{{half}..{n_items - 1}}} are never compared with each other",
            {"n_items": n_items, "pairs": split, "n_rep": n_rep}),
    }


def _vec_names(name, idx):
    return [f"{name}[{i}]" for i in idx]


def _ones(name, idx):
    return {f"{name}[{i}]": 1.0 for i in idx}


def _zerosum_forward(v):
    """PyMC's ZeroSumNormal unconstrained coordinates of a vector ``v`` with Σ v = 0 (linear map)."""
    from pymc.distributions.transforms import ZeroSumTransform

    return np.asarray(ZeroSumTransform(zerosum_axes=(-1,)).forward(pt.as_tensor(np.asarray(v, float))).eval())


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


# --------------------------------------------------------------------------- Pairwise
class Pairwise(ModelSpec):
    """Exponential races between pairs of items; only the winner of each race is observed.

    Parameters are the log-rates ``theta`` (shape ``(n_items,)``). The likelihood depends on them
    only through the differences θ_i − θ_j, so the all-ones direction of θ (a common rate scale)
    is not identified. See the module docstring for the derivation.

    Data: ``y`` of shape ``(len(pairs) * n_rep,)``, 1 where the first item of the comparison won
    (see :func:`comparison_pairs`).
    """

    name = "rates.pairwise"
    description = ("Exponential races between pairs: P(i first) = λ_i/(λ_i+λ_j) = logistic(θ_i − θ_j), "
                   "θ = log λ. Only differences are identified; the common shift is prior-determined.")
    theta_name = "theta"
    prior_sd = 1.0
    parameters = (
        Parameter("theta", Prior("normal", {"mu": 0.0, "sigma": 1.0}),
                  (0.8, 0.3, 0.0, -0.2, -0.5, 1.1), unit="log(1/time)", shape=(N_ITEMS,),
                  description="latent log-rates θ_i = log λ_i of the items' exponential waiting times"),
    )
    designs = _pair_designs()
    default_design = "all_pairs"

    @classmethod
    def _known(cls, design):
        comps = connected_components(design["n_items"], design["pairs"])
        names = _vec_names(cls.theta_name, range(design["n_items"]))
        ridges = tuple(_ones(cls.theta_name, c) for c in comps)
        diffs = tuple(f"{cls.theta_name}[{c[0]}] - {cls.theta_name}[{k}]" for c in comps for k in c[1:])
        return KnownAnswer(
            in_combination=tuple(names),
            combinations=diffs,
            ridges=ridges,
            derivation=(
                "log p(y | θ) = Σ_k y_k log σ(θ_i − θ_j) + (1 − y_k) log σ(θ_j − θ_i) with σ the logistic "
                "function, i.e. a function of Xθ with X the rows e_i − e_j. The null space of X is spanned by "
                f"the all-ones vector of each connected component of the comparison graph ({len(comps)} "
                "here), so those directions leave the likelihood exactly constant (θ → θ + b is λ → e^b λ, "
                "a common time unit). With the isotropic N(0, τ²) prior the posterior factorises into the "
                "component means and the contrasts; the posterior of each component mean equals its prior "
                "N(0, τ²/n_c) exactly. All contrasts within a component are identified."
            ),
        )

    @property
    def known_answers(self):  # noqa: D401  (computed from the designs)
        return {k: self._known(d) for k, d in self.designs.items()}

    def known_answer(self, design=None):
        """Known answer of a named design or of any custom :class:`Design` with the same settings."""
        return self._known(self.design(design))

    # -- contract
    def data_shapes(self, design=None):
        d = self.design(design)
        return {"y": (len(d["pairs"]) * int(d["n_rep"]),)}

    def validate_data(self, data, design=None):
        out = super().validate_data(data, design)
        y = out["y"]
        if not np.all((y == 0) | (y == 1)):
            raise BadDataError("data['y'] must be 0/1 race outcomes (1: the first item of the pair won).")
        return out

    @property
    def n_items(self) -> int:
        """Number of items the model's parameters describe."""
        return int(self.parameters[0].shape[0]) + (1 if self.theta_name == "delta" else 0)

    def full_theta(self, theta) -> np.ndarray:
        """Log-rates of all items, shape ``(batch, n_items)``, from a batched parameter dict."""
        return np.asarray(theta[self.theta_name], float)

    def logits(self, theta, design=None) -> np.ndarray:
        """Logits θ_i − θ_j of every comparison; ``theta`` an array ``(..., n_items)`` of log-rates."""
        first, second = comparison_pairs(self.design(design))
        theta = np.asarray(theta, float)
        return theta[..., first] - theta[..., second]

    def loglik(self, theta, data, design=None) -> np.ndarray:
        """Numpy log-likelihood of one dataset at log-rates ``theta`` (``(..., n_items)``)."""
        z = self.logits(theta, design)
        y = np.asarray(data["y"], float)
        return np.sum(y * _log_sigmoid(z) + (1 - y) * _log_sigmoid(-z), axis=-1)

    def _theta_tensor(self, r):
        return r[self.theta_name]

    def _build(self, data, design, priors):
        _check_pairs(design["n_items"], design["pairs"], self.n_items)
        first, second = comparison_pairs(design)
        coords = {"item": np.arange(design["n_items"]), "race": np.arange(first.size)}
        with pm.Model(coords=coords) as m:
            r = self._prior_rvs(priors)
            theta = self._theta_tensor(r)
            pm.Bernoulli("y", logit_p=theta[first] - theta[second], observed=data["y"], dims="race")
        return m

    def _simulate(self, theta, design, rng):
        _check_pairs(design["n_items"], design["pairs"], self.n_items)
        th = self.full_theta(theta)
        first, second = comparison_pairs(design)
        lam = np.exp(th)
        n = th.shape[0]
        # the latent waiting times: never part of the data
        t_first = rng.standard_exponential((n, first.size)) / lam[:, first]
        t_second = rng.standard_exponential((n, first.size)) / lam[:, second]
        return {"y": (t_first < t_second).astype(float)}


class PairwiseAnchored(Pairwise):
    """Pairwise races with item 0 as the anchor: θ_0 = 0, free δ_i = θ_i − θ_0 for i = 1..n−1."""

    name = "rates.anchored"
    description = "Pairwise races with θ_0 = 0 fixed (anchor item): every parameter identified."
    theta_name = "delta"
    parameters = (
        Parameter("delta", Prior("normal", {"mu": 0.0, "sigma": 1.0}),
                  (-0.5, -0.8, -1.0, -1.3, 0.3), unit="log(1/time)", shape=(N_ITEMS - 1,),
                  description="log-rate of item i relative to item 0, δ_i = θ_i − θ_0, i = 1..n−1"),
    )
    designs = _pair_designs()

    @classmethod
    def _known(cls, design):
        n = design["n_items"]
        comps = connected_components(n, design["pairs"])
        free = [c for c in comps if 0 not in c]  # components the anchor does not reach
        ridges = tuple(_ones("delta", [i - 1 for i in c]) for c in free)
        loose = {f"delta[{i - 1}]" for c in free for i in c}
        names = _vec_names("delta", range(n - 1))
        return KnownAnswer(
            identified=tuple(nm for nm in names if nm not in loose),
            in_combination=tuple(nm for nm in names if nm in loose),
            ridges=ridges,
            derivation=(
                "The logits are X θ with θ = (0, δ). Within the anchor's connected component the columns of X "
                "are linearly independent, so those δ are identified: no ridge there (negative control of "
                "rates.pairwise). Anchoring fixes only the anchor's component: every other component of the "
                f"comparison graph keeps its own all-ones ridge ({len(free)} here)."
            ),
        )

    def full_theta(self, theta):
        d = np.asarray(theta["delta"], float)
        return np.concatenate([np.zeros(d.shape[:-1] + (1,)), d], axis=-1)

    def _theta_tensor(self, r):
        return pt.concatenate([pt.zeros((1,)), r["delta"]])


class PairwiseZeroSum(Pairwise):
    """Pairwise races with a sum-to-zero constraint: θ ~ ZeroSumNormal(τ) over the items."""

    name = "rates.zerosum"
    description = "Pairwise races with Σ θ_i = 0 (pm.ZeroSumNormal): every contrast identified, no ridge."
    parameters = (
        Parameter("theta", Prior("normal", {"mu": 0.0, "sigma": 1.0}),
                  (0.55, 0.05, -0.25, -0.45, -0.75, 0.85), unit="log(1/time)", shape=(N_ITEMS,),
                  description="centred log-rates (Σ θ_i = 0); prior: iid N(0, τ²) projected on Σ θ = 0"),
    )
    designs = _pair_designs()

    @classmethod
    def _known(cls, design):
        n = design["n_items"]
        comps = connected_components(n, design["pairs"])
        # the relative shifts between components, projected on Σθ = 0, in ZeroSumNormal's coordinates
        vecs = [np.isin(np.arange(n), c) / len(c) - 1.0 / n for c in comps[1:]]
        ridges = tuple({f"theta_zerosum__[{k}]": float(x) for k, x in enumerate(_zerosum_forward(v))
                        if abs(x) > 1e-12} for v in vecs)
        names = _vec_names("theta_zerosum__", range(n - 1))
        return KnownAnswer(
            identified=tuple(names) if len(comps) == 1 else (),
            in_combination=() if len(comps) == 1 else tuple(names),
            ridges=ridges,
            derivation=(
                "ZeroSumNormal samples the n − 1 coordinates of θ in an orthonormal basis of {Σ θ = 0}. The "
                "null space of X is spanned by the component indicators; Σ θ = 0 removes only their sum, so a "
                "connected comparison graph leaves no ridge (negative control of rates.pairwise), while "
                f"k components leave k − 1 relative shifts free ({len(comps) - 1} here)."
            ),
        )

    def priors(self, priors=None):
        out = super().priors(priors)
        p = out["theta"]
        if p.dist != "normal" or p.params["mu"] != 0.0:
            raise ValueError(f"rates.zerosum takes a Prior('normal', {{'mu': 0.0, 'sigma': τ}}) for theta "
                             f"(the ZeroSumNormal scale); got {p!r}.")
        return out

    def _prior_rvs(self, priors, coords=None):
        sd = priors["theta"].params["sigma"]
        return {"theta": pm.ZeroSumNormal("theta", sigma=sd, shape=(self.parameters[0].shape[0],))}

    def sample_prior(self, n, priors=None, random_seed=None):
        sd = self.priors(priors)["theta"].params["sigma"]
        x = np.random.default_rng(random_seed).normal(0.0, sd, (n, self.parameters[0].shape[0]))
        return {"theta": x - x.mean(axis=1, keepdims=True)}


class PairwiseL2(Pairwise):
    """Pairwise races with a weak L2 penalty α Σ θ_i² written as its prior θ_i ~ N(0, 1/√(2α))."""

    name = "rates.l2"
    description = ("Pairwise races with a weak L2 penalty α Σθ² (α = 0.02 ⇔ θ_i ~ N(0, 5)): the penalised "
                   "optimum picks mean θ = 0, but the shift stays prior-determined.")
    parameters = (
        Parameter("theta", Prior("normal", {"mu": 0.0, "sigma": float(1 / np.sqrt(2 * 0.02))}),
                  Pairwise.parameters[0].true_value, unit="log(1/time)", shape=(N_ITEMS,),
                  description="latent log-rates with a weak L2 penalty (wide Gaussian prior)"),
    )

    def l2_weight(self, priors=None) -> float:
        """The penalty weight α of α Σ θ_i² that the prior N(0, τ²) encodes: α = 1/(2τ²)."""
        return 1.0 / (2.0 * self.priors(priors)["theta"].params["sigma"] ** 2)

    @classmethod
    def _known(cls, design):
        ka = Pairwise._known(design)
        return KnownAnswer(
            in_combination=ka.in_combination,
            combinations=ka.combinations,
            ridges=ka.ridges,
            derivation=(
                "An L2 penalty α Σ θ_i² is the log density of θ_i ~ N(0, 1/(2α)). It does not enter the "
                "likelihood, so the all-ones direction remains a ridge of the likelihood; the penalised "
                "optimum sets mean(θ) = 0 only because the prior does. The posterior of the mean of θ is "
                "exactly its prior N(0, 1/(2α n)): the shift is identified by the prior alone. " + ka.derivation
            ),
        )


# --------------------------------------------------------------------------- Affine (Thurstone)
class Affine(Pairwise):
    """Thurstone comparisons: P(i beats j) = Φ((λ_i − λ_j)/σ) with an unknown noise scale σ.

    Latent performances Z_i = λ_i + (σ/√2) ε_i, ε_i ~ N(0, 1), are never observed; only which of
    the two is larger. The likelihood is invariant under λ → cλ + b, σ → cσ (c > 0): a linear ridge
    (shift b) and a curved one (scale c). In the unconstrained coordinates (λ, log σ) the scale
    ridge's tangent at (λ, σ) is (λ_1, …, λ_n, 1) — see :meth:`local_ridges`.
    """

    name = "rates.affine"
    description = ("Thurstone pairs P(i beats j) = Φ((λ_i − λ_j)/σ), σ unknown: shift (linear ridge) and "
                   "scale (curved ridge (λ, σ) → (cλ, cσ)) are both free.")
    theta_name = "lam"
    parameters = (
        Parameter("lam", Prior("normal", {"mu": 0.0, "sigma": 1.0}),
                  (0.8, 0.3, 0.0, -0.2, -0.5, 1.1), unit="", shape=(N_ITEMS,),
                  description="latent mean performances λ_i"),
        Parameter("sigma", Prior("lognormal", {"mu": 0.0, "sigma": 0.5}), 1.0, unit="",
                  description="scale of the comparison noise"),
    )
    designs = {k: d for k, d in _pair_designs().items() if k != "disconnected"}

    @classmethod
    def _known(cls, design):
        n = design["n_items"]
        comps = connected_components(n, design["pairs"])
        names = tuple(_vec_names("lam", range(n))) + ("sigma",)
        return KnownAnswer(
            in_combination=names,
            combinations=tuple(f"(lam[{c[0]}] - lam[{k}])/sigma" for c in comps for k in c[1:]),
            ridges=tuple(_ones("lam", c) for c in comps),
            derivation=(
                "The outcome probabilities are Φ(Xλ/σ). For c > 0, b real: X(cλ + b·1)/(cσ) = Xλ/σ because "
                "X1 = 0, so the two-parameter family (λ, σ) → (cλ + b·1, cσ) leaves the likelihood "
                "constant. In (λ, log σ) the shift is the straight line along (1, …, 1, 0) (listed in "
                "`ridges`); the scale is the curve (cλ, log σ + log c), whose tangent (λ, 1) depends on the "
                "point (curved ridge, found by the local Fisher information, Affine.local_ridges). Only the "
                "n − 1 standardised contrasts (λ_i − λ_j)/σ are identified: rank n − 1 of n + 1. Along the "
                "scale orbit the posterior is exactly the prior conditional given those contrasts "
                "(Affine.scale_given_contrasts); it can still be narrower than the prior marginal of σ, "
                "because the prior on λ couples scale and spread — contraction that is not information."
            ),
        )

    def full_theta(self, theta):
        return np.asarray(theta["lam"], float)

    def logits(self, theta, design=None):
        """Standardised differences (λ_i − λ_j)/σ (probit scale); ``theta`` a dict with lam, sigma."""
        return self.zscores(theta["lam"], theta["sigma"], design)

    def zscores(self, lam, sigma, design=None) -> np.ndarray:
        """Standardised differences (λ_i − λ_j)/σ of every comparison."""
        first, second = comparison_pairs(self.design(design))
        lam = np.asarray(lam, float)
        return (lam[..., first] - lam[..., second]) / np.asarray(sigma, float)[..., None]

    def loglik(self, theta, data, design=None):
        """Numpy log-likelihood; ``theta`` a dict with ``lam`` ``(..., n)`` and ``sigma`` ``(...)``."""
        z = self.zscores(theta["lam"], theta["sigma"], design)
        y = np.asarray(data["y"], float)
        return np.sum(y * special.log_ndtr(z) + (1 - y) * special.log_ndtr(-z), axis=-1)

    def scale_given_contrasts(self, zsq, priors=None, n_grid=4001):
        """Prior conditional moments of log σ given the identified standardised contrasts.

        Write λ = m·1 + σ z with Σ z = 0 (z = (λ − λ̄)/σ, the identified quantity). The likelihood
        depends on z only, and (m, log σ, z) has Jacobian ∝ σ^(n−1); with λ_i ~ N(μ, τ²) the shift m
        integrates out analytically (Σ z = 0), leaving

            p(log σ = s | z) ∝ exp(−e^{2s} |z|² / (2τ²)) · p_σ(e^s) e^s · e^{(n−1)s}.

        Because the data see only z, the *posterior* of log σ given z is exactly this prior conditional:
        the curved scale ridge is prior-determined. Consequently
        E_post[log σ] = E_post[E(log σ | z)] and likewise for the second moment (tested against NUTS).

        Parameters
        ----------
        zsq : array
            |z|² = Σ_i ((λ_i − λ̄)/σ)², e.g. per posterior draw.
        priors : dict, optional
            Prior overrides (``lam`` must be normal).
        n_grid : int
            Quadrature points on log σ ∈ [−10, 6].

        Returns
        -------
        mean, second_moment : ndarray
            E(log σ | z) and E((log σ)² | z), shaped like ``zsq``.
        """
        pri = self.priors(priors)
        if pri["lam"].dist != "normal":
            raise ValueError(f"scale_given_contrasts needs a normal prior on lam, got {pri['lam']!r}")
        tau = pri["lam"].params["sigma"]
        n = self.n_items
        grid = np.linspace(-10.0, 6.0, n_grid)
        zsq = np.asarray(zsq, float)
        with np.errstate(divide="ignore"):
            log_ps = pri["sigma"].logpdf(np.exp(grid)) + grid
        logw = (-np.exp(2 * grid) * zsq[..., None] / (2 * tau**2) + log_ps + (n - 1) * grid)
        logw -= logw.max(axis=-1, keepdims=True)
        w = np.exp(logw)
        w /= w.sum(axis=-1, keepdims=True)
        return (w * grid).sum(-1), (w * grid**2).sum(-1)

    @staticmethod
    def local_ridges(lam, sigma) -> np.ndarray:
        """Tangent directions of the two ridges at (λ, σ) in unconstrained coordinates (λ, log σ).

        Returns
        -------
        ndarray, shape (2, n + 1)
            Row 0: the shift (1, …, 1, 0); row 1: the scale (λ_1, …, λ_n, 1). Both normalised to max |.| = 1.
        """
        lam = np.asarray(lam, float)
        shift = np.append(np.ones_like(lam), 0.0)
        scale = np.append(lam, 1.0)
        return np.stack([shift / np.abs(shift).max(), scale / np.abs(scale).max()])

    def jacobian(self, lam, sigma, design=None) -> np.ndarray:
        """Jacobian of the z-scores w.r.t. the unconstrained coordinates (λ, log σ): (n_comp, n + 1)."""
        X = pair_design_matrix(self.design(design))
        z = X @ np.asarray(lam, float) / sigma
        return np.column_stack([X / sigma, -z])

    def _build(self, data, design, priors):
        _check_pairs(design["n_items"], design["pairs"], self.n_items)
        first, second = comparison_pairs(design)
        coords = {"item": np.arange(design["n_items"]), "race": np.arange(first.size)}
        with pm.Model(coords=coords) as m:
            r = self._prior_rvs(priors)
            z = (r["lam"][first] - r["lam"][second]) / r["sigma"]
            # Φ(z) in float64 throughout (pm.math.invprobit rounds √2 to float32: ~1e-7 relative error)
            p = 0.5 * pt.erfc(-z / np.float64(np.sqrt(2.0)))
            pm.Bernoulli("y", p=pt.clip(p, 1e-12, 1 - 1e-12), observed=data["y"], dims="race")
        return m

    def _simulate(self, theta, design, rng):
        _check_pairs(design["n_items"], design["pairs"], self.n_items)
        lam = np.asarray(theta["lam"], float)
        sig = np.asarray(theta["sigma"], float)[:, None]
        first, second = comparison_pairs(design)
        n = lam.shape[0]
        # latent performances Z_i = λ_i + (σ/√2) ε_i, never part of the data
        z1 = lam[:, first] + sig / np.sqrt(2) * rng.standard_normal((n, first.size))
        z2 = lam[:, second] + sig / np.sqrt(2) * rng.standard_normal((n, first.size))
        return {"y": (z1 > z2).astype(float)}


# --------------------------------------------------------------------------- BetaPair
class BetaPair(ModelSpec):
    """y ~ Beta(u, v) with u = (λ1 + λ2)/(λ1 λ2) = 1/λ1 + 1/λ2 and v = λ1 λ2^p.

    Derivation of the local identifiability: the Jacobian of (λ1, λ2) → (u, v) is

    .. math::

        J = \\begin{pmatrix} -1/λ_1^2 & -1/λ_2^2 \\\\ λ_2^p & p λ_1 λ_2^{p-1} \\end{pmatrix},\\qquad
        \\det J = λ_2^{p-2}\\,(1 - p λ_2/λ_1).

    Since Beta(u, v) is a regular two-parameter family, the Fisher information of (λ1, λ2) is
    Jᵀ I_Beta(u, v) J, singular exactly where det J = 0, i.e. on λ1 = p λ2 (only for p > 0).
    Globally: for fixed v, λ1 = v λ2^(−p) and u = λ2^p/v + 1/λ2, which for p > 0 tends to ∞ at both
    ends, so each (u, v) off the fold has **two** preimages (for p = 1: the swap λ1 ↔ λ2); for p ≤ 0
    it is monotone and the map is one-to-one.
    """

    name = "rates.beta_pair"
    description = ("y ~ Beta((λ1+λ2)/(λ1λ2), λ1·λ2^p): for p = 1 identified only up to λ1 ↔ λ2, and "
                   "locally singular on λ1 = p·λ2; p ≤ 0 is one-to-one.")
    parameters = (
        Parameter("lam1", Prior("lognormal", {"mu": 0.0, "sigma": 0.7}), 2.0, unit="1/time",
                  description="rate of the first latent exponential"),
        Parameter("lam2", Prior("lognormal", {"mu": 0.0, "sigma": 0.7}), 0.5, unit="1/time",
                  description="rate of the second latent exponential"),
    )
    designs = {
        "p1": Design("p1", "p = 1, 200 observations (swap symmetry, fold on λ1 = λ2)", {"p": 1.0, "n_obs": 200}),
        "p2": Design("p2", "p = 2, 200 observations (two branches, fold on λ1 = 2 λ2)", {"p": 2.0, "n_obs": 200}),
        "pneg": Design("pneg", "p = −1, 200 observations (one-to-one: negative control)",
                       {"p": -1.0, "n_obs": 200}),
    }
    default_design = "p1"
    known_answers = {
        "p1": KnownAnswer(
            in_combination=("lam1", "lam2"),
            combinations=("lam1·lam2", "lam1 + lam2"),
            derivation=(
                "For p = 1, u = 1/λ1 + 1/λ2 and v = λ1 λ2 are symmetric in (λ1, λ2): the likelihood is "
                "invariant under the swap, a discrete non-identifiability (two modes, reflected across the "
                "diagonal in (log λ1, log λ2)); λ1 λ2 = v and λ1 + λ2 = u v are identified. det J = "
                "λ2^(−1)(1 − λ2/λ1) = (λ1 − λ2)/(λ1 λ2) vanishes on λ1 = λ2, where the two modes merge."
            ),
        ),
        "p2": KnownAnswer(
            in_combination=("lam1", "lam2"),
            combinations=("lam1·lam2^2", "1/lam1 + 1/lam2"),
            derivation=(
                "For p = 2 each (u, v) off the fold λ1 = 2 λ2 has two preimages (roots of λ2³/v − u λ2 + 1 = 0 "
                "with λ1 = v/λ2²); at the default truth (2, 0.5) the other is ≈ (0.820, 0.781)."
            ),
        ),
        "pneg": KnownAnswer(
            identified=("lam1", "lam2"),
            derivation=(
                "For p = −1, det J = λ2^(−3)(1 + λ2/λ1) > 0 everywhere and u(λ2) = 1/(v λ2) + 1/λ2 is "
                "monotone for fixed v: the map is one-to-one, both rates identified (negative control)."
            ),
        ),
    }

    def data_shapes(self, design=None):
        return {"y": (int(self.design(design)["n_obs"]),)}

    def validate_data(self, data, design=None):
        out = super().validate_data(data, design)
        if np.any((out["y"] <= 0) | (out["y"] >= 1)):
            raise BadDataError("data['y'] must lie strictly inside (0, 1) (Beta observations).")
        return out

    # -- algebra
    @staticmethod
    def beta_params(lam1, lam2, p):
        """(u, v) = ((λ1 + λ2)/(λ1 λ2), λ1 λ2^p), elementwise."""
        lam1 = np.asarray(lam1, float)
        lam2 = np.asarray(lam2, float)
        return (lam1 + lam2) / (lam1 * lam2), lam1 * lam2**p

    @staticmethod
    def jacobian(lam1, lam2, p) -> np.ndarray:
        """Jacobian ∂(u, v)/∂(λ1, λ2), shape ``(..., 2, 2)``."""
        lam1 = np.asarray(lam1, float)
        lam2 = np.asarray(lam2, float)
        J = np.empty(np.broadcast(lam1, lam2).shape + (2, 2))
        J[..., 0, 0] = -1.0 / lam1**2
        J[..., 0, 1] = -1.0 / lam2**2
        J[..., 1, 0] = lam2**p
        J[..., 1, 1] = p * lam1 * lam2 ** (p - 1)
        return J

    @staticmethod
    def jacobian_det(lam1, lam2, p) -> np.ndarray:
        """det ∂(u, v)/∂(λ1, λ2) = λ2^(p−2) (1 − p λ2/λ1); zero on the fold λ1 = p λ2."""
        lam1 = np.asarray(lam1, float)
        lam2 = np.asarray(lam2, float)
        return lam2 ** (p - 2) * (1.0 - p * lam2 / lam1)

    @staticmethod
    def beta_fisher(u, v) -> np.ndarray:
        """Fisher information of one Beta(u, v) observation w.r.t. (u, v), shape ``(..., 2, 2)``."""
        u = np.asarray(u, float)
        v = np.asarray(v, float)
        tuv = special.polygamma(1, u + v)
        info = np.empty(np.broadcast(u, v).shape + (2, 2))
        info[..., 0, 0] = special.polygamma(1, u) - tuv
        info[..., 1, 1] = special.polygamma(1, v) - tuv
        info[..., 0, 1] = info[..., 1, 0] = -tuv
        return info

    def fisher_log(self, lam1, lam2, design=None) -> np.ndarray:
        """Fisher information of the whole dataset w.r.t. the unconstrained (log λ1, log λ2).

        ``n_obs · J_logᵀ I_Beta(u, v) J_log`` with ``J_log = J · diag(λ1, λ2)``; shape ``(..., 2, 2)``.
        """
        d = self.design(design)
        lam1 = np.asarray(lam1, float)
        lam2 = np.asarray(lam2, float)
        u, v = self.beta_params(lam1, lam2, d["p"])
        J = self.jacobian(lam1, lam2, d["p"]) * np.stack([lam1, lam2], axis=-1)[..., None, :]
        return d["n_obs"] * np.einsum("...ki,...kl,...lj->...ij", J, self.beta_fisher(u, v), J)

    def singularity_map(self, design=None, lam1=None, lam2=None, n_grid=80):
        """Where the local Fisher information is near-singular, over a grid of (λ1, λ2).

        Parameters
        ----------
        design : str or Design, optional
        lam1, lam2 : 1-d arrays, optional
            Grid axes; default 80 log-spaced points on [0.1, 10].
        n_grid : int
            Grid size when the axes are not given.

        Returns
        -------
        dict
            ``lam1``, ``lam2`` (axes), ``det_jacobian`` (grid ``(len(lam2), len(lam1))``),
            ``min_eig`` (smallest eigenvalue of the Fisher information in log coordinates),
            ``cond`` (its condition number) and ``fold`` (λ1 on the singular curve, p·λ2; NaN for p ≤ 0).
        """
        d = self.design(design)
        lam1 = np.geomspace(0.1, 10, n_grid) if lam1 is None else np.asarray(lam1, float)
        lam2 = np.geomspace(0.1, 10, n_grid) if lam2 is None else np.asarray(lam2, float)
        L1, L2 = np.meshgrid(lam1, lam2)
        F = self.fisher_log(L1, L2, d)
        ev = np.linalg.eigvalsh(F)
        with np.errstate(divide="ignore", over="ignore"):  # exactly singular points: cond = inf
            cond = np.where(ev[..., 0] > 0, ev[..., -1] / np.where(ev[..., 0] > 0, ev[..., 0], 1.0), np.inf)
        return {
            "lam1": lam1, "lam2": lam2,
            "det_jacobian": self.jacobian_det(L1, L2, d["p"]),
            "min_eig": ev[..., 0],
            "cond": cond,
            "fold": d["p"] * lam2 if d["p"] > 0 else np.full_like(lam2, np.nan),
        }

    def preimages(self, u, v, p) -> np.ndarray:
        """All (λ1, λ2) > 0 with ((λ1+λ2)/(λ1λ2), λ1 λ2^p) = (u, v); shape ``(k, 2)``, k ∈ {0, 1, 2}.

        Solves u = λ2^p / v + 1/λ2 for λ2 (λ1 = v λ2^(−p)) by bracketing the sign changes on a fine
        log grid and refining with Brent's method.
        """
        from scipy.optimize import brentq

        def h(x):
            return x**p / v + 1.0 / x - u

        grid = np.geomspace(1e-6, 1e6, 4001)
        vals = h(grid)
        roots = []
        for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:]):
            if fa == 0:
                roots.append(a)
            elif fa * fb < 0:
                roots.append(brentq(h, a, b, xtol=1e-14, rtol=1e-12))
        return np.array([(v * r ** (-p), r) for r in roots]).reshape(-1, 2)

    def loglik(self, lam1, lam2, data, design=None):
        """Numpy log-likelihood of one dataset (broadcast over λ arrays)."""
        d = self.design(design)
        u, v = self.beta_params(lam1, lam2, d["p"])
        y = np.asarray(data["y"], float)
        return np.sum(stats.beta.logpdf(y, np.asarray(u)[..., None], np.asarray(v)[..., None]), axis=-1)

    # -- PyMC and simulator
    def _build(self, data, design, priors):
        with pm.Model(coords={"obs": np.arange(design["n_obs"])}) as m:
            r = self._prior_rvs(priors)
            u = (r["lam1"] + r["lam2"]) / (r["lam1"] * r["lam2"])
            v = r["lam1"] * r["lam2"] ** design["p"]
            pm.Beta("y", alpha=u, beta=v, observed=data["y"], dims="obs")
        return m

    def _simulate(self, theta, design, rng):
        u, v = self.beta_params(theta["lam1"], theta["lam2"], design["p"])
        n = u.shape[0]
        y = rng.beta(u[:, None], v[:, None], size=(n, int(design["n_obs"])))
        # Beta draws with small shape parameters can round to exactly 0 or 1 in float64
        eps = np.finfo(float).eps
        return {"y": np.clip(y, eps, 1 - eps)}
