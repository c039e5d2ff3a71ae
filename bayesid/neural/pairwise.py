"""Neural ensembles for latent rates seen only through pairs: arbitrary offsets and how to remove them.

A small network maps item features to the log-rate θ_i of each item's latent exponential waiting
time; it is trained by maximum likelihood on race outcomes between pairs (the model
``rates.pairwise``: P(i first) = logistic(θ_i − θ_j)), or on Thurstone comparisons (``rates.affine``:
P(i beats j) = Φ((λ_i − λ_j)/σ)). The likelihood sees only differences, so

* ensemble members trained from different seeds agree on the differences but carry arbitrary
  offsets along the all-ones direction: averaging raw outputs (or taking their standard deviation)
  mixes a meaningless quantity into the answer — average the identified quantity instead
  (centred outputs, or differences);
* with an unknown scale σ (affine invariance), an L2 penalty meant to fix the offset also pulls
  the scale towards zero: (λ, σ) → (cλ, cσ) costs nothing in likelihood and c → 0 lowers the penalty;
* an identifiable parametrisation of the output layer — centring over the item catalogue and a
  fixed scale — removes both problems without any penalty.

Everything here is plain PyTorch (CPU is enough); every random step takes ``random_seed``.

Examples
--------
>>> from bayesid.neural.pairwise import make_items, train_ensemble   # doctest: +SKIP
>>> X, theta = make_items(6, random_seed=0)                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"bayesid.neural.pairwise needs PyTorch ({err}). Install the extra: pip install 'bayesid[neural]'."
    ) from err

__all__ = [
    "make_items",
    "RateNet",
    "MemberFit",
    "EnsembleFit",
    "fit_member",
    "train_ensemble",
    "posterior_summary",
]

_LINKS = ("logit", "probit")


def make_items(n_items=6, n_features=3, random_seed=None, offset=0.0):
    """Item features and their true log-rates, θ = g(x) a fixed smooth function of the features.

    Parameters
    ----------
    n_items, n_features : int
    random_seed : int, optional
        Seeds the features and the (random) weights of g.
    offset : float
        A constant added to every θ (the quantity the data can never recover).

    Returns
    -------
    features : ndarray, shape (n_items, n_features)
    theta : ndarray, shape (n_items,)
    """
    if n_items < 2:
        raise ValueError("need at least two items to compare")
    rng = np.random.default_rng(random_seed)
    X = rng.standard_normal((n_items, n_features))
    w1 = rng.standard_normal(n_features) / np.sqrt(n_features)
    w2 = rng.standard_normal(n_features) / np.sqrt(n_features)
    theta = np.tanh(X @ w1) + 0.4 * (X @ w2)
    return X, theta - theta.mean() + offset


class RateNet(nn.Module):
    """MLP from item features to one latent parameter per item (θ_i or λ_i), with an optional scale.

    Parameters
    ----------
    n_features : int
    hidden : int
        Width of the two hidden tanh layers.
    centre : bool
        Identifiable output layer: subtract the mean output over the items passed to :meth:`forward`
        (the item catalogue), so the shift is fixed at Σ θ_i = 0 by construction.
    link : {"logit", "probit"}
        ``"logit"``: exponential races, P = logistic(θ_i − θ_j). ``"probit"``: Thurstone,
        P = Φ((λ_i − λ_j)/σ).
    fixed_scale : bool
        For ``"probit"``: fix σ = 1 (identifiable) instead of learning log σ. Ignored for ``"logit"``
        (its scale is fixed by the exponential races).
    """

    def __init__(self, n_features, hidden=16, centre=False, link="logit", fixed_scale=False):
        super().__init__()
        if link not in _LINKS:
            raise ValueError(f"link must be one of {_LINKS}, got {link!r}")
        self.link = link
        self.centre = bool(centre)
        self.fixed_scale = bool(fixed_scale) or link == "logit"
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        self.log_sigma = None if self.fixed_scale else nn.Parameter(torch.zeros(()))

    def forward(self, X):
        out = self.body(X).squeeze(-1)
        if self.centre:
            out = out - out.mean()
        return out

    def sigma(self):
        """The comparison scale σ (1 when fixed)."""
        return torch.ones(()) if self.log_sigma is None else self.log_sigma.exp()


def _nll(net, X, first, second, y):
    out = net(X)
    d = out[first] - out[second]
    if net.link == "logit":
        return nn.functional.binary_cross_entropy_with_logits(d, y), out
    z = d / net.sigma()
    return -(y * torch.special.log_ndtr(z) + (1 - y) * torch.special.log_ndtr(-z)).mean(), out


@dataclass
class MemberFit:
    """One trained network: its outputs on the item catalogue and its training history."""

    outputs: np.ndarray  # (n_items,)
    sigma: float
    nll: float
    history: dict = field(default_factory=dict)  # step, nll, offset, scale, sigma (arrays)
    net: object = None


def fit_member(features, first, second, y, *, link="logit", centre=False, fixed_scale=False, l2=0.0,
               hidden=16, steps=1500, lr=0.02, record_every=25, random_seed=None, bootstrap=False):
    """Train one network by (penalised) maximum likelihood on pair outcomes.

    Parameters
    ----------
    features : array (n_items, n_features)
    first, second : int arrays (n_comparisons,)
        Items of each comparison (see :func:`bayesid.models.rates.comparison_pairs`).
    y : array (n_comparisons,)
        1 where ``first`` won.
    link, centre, fixed_scale, hidden
        See :class:`RateNet`.
    l2 : float
        Weight α of the penalty α · mean_i(out_i²) on the emitted parameters (the "small
        regularisation loss" of the reference question).
    steps, lr : int, float
        Full-batch Adam steps and learning rate.
    record_every : int
        History resolution (steps).
    random_seed : int, optional
        Seeds the initial weights and the bootstrap resample.
    bootstrap : bool
        Train on a resample (with replacement) of the comparisons — the bagged ensemble, whose
        spread estimates sampling variability.

    Returns
    -------
    MemberFit
    """
    X = torch.as_tensor(np.asarray(features, float), dtype=torch.float64)
    first = np.asarray(first, int)
    second = np.asarray(second, int)
    y = np.asarray(y, float)
    if not (first.shape == second.shape == y.shape):
        raise ValueError(f"first, second and y must have the same shape; got {first.shape}, "
                         f"{second.shape}, {y.shape}")
    if X.ndim != 2 or max(first.max(), second.max()) >= X.shape[0]:
        raise ValueError("features must be (n_items, n_features) and cover every compared item")
    rng = np.random.default_rng(random_seed)
    if bootstrap:
        ix = rng.integers(0, y.size, y.size)
        first, second, y = first[ix], second[ix], y[ix]
    gen_seed = int(rng.integers(0, 2**31 - 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(gen_seed)
        net = RateNet(X.shape[1], hidden=hidden, centre=centre, link=link, fixed_scale=fixed_scale).double()
    f_t = torch.as_tensor(first)
    s_t = torch.as_tensor(second)
    y_t = torch.as_tensor(y, dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    hist = {k: [] for k in ("step", "nll", "offset", "scale", "sigma")}
    for step in range(steps + 1):
        opt.zero_grad()
        nll, out = _nll(net, X, f_t, s_t, y_t)
        loss = nll + l2 * (out**2).mean() if l2 else nll
        if step % record_every == 0 or step == steps:
            o = out.detach().numpy()
            hist["step"].append(step)
            hist["nll"].append(float(nll.detach()))
            hist["offset"].append(float(o.mean()))
            hist["scale"].append(float(o.std()))
            hist["sigma"].append(float(net.sigma()))
        if step == steps:
            break
        loss.backward()
        opt.step()
    with torch.no_grad():
        nll, out = _nll(net, X, f_t, s_t, y_t)
    return MemberFit(out.numpy().copy(), float(net.sigma()), float(nll),
                     {k: np.asarray(v) for k, v in hist.items()}, net)


@dataclass
class EnsembleFit:
    """N members trained on the same data from different seeds (optionally bootstrapped).

    Attributes
    ----------
    outputs : ndarray (n_members, n_items)
        Raw outputs on the item catalogue.
    sigmas : ndarray (n_members,)
    members : list of MemberFit
    settings : dict
    """

    outputs: np.ndarray
    sigmas: np.ndarray
    members: list
    settings: dict

    @property
    def n_members(self) -> int:
        return self.outputs.shape[0]

    def offsets(self) -> np.ndarray:
        """Each member's mean output over items: its position along the non-identified shift."""
        return self.outputs.mean(axis=1)

    def centred(self) -> np.ndarray:
        """Outputs minus each member's mean: the identified contrasts (n_members, n_items)."""
        return self.outputs - self.offsets()[:, None]

    def standardised(self) -> np.ndarray:
        """Centred outputs divided by each member's σ: identified under shift *and* scale."""
        return self.centred() / self.sigmas[:, None]

    def differences(self, pairs) -> np.ndarray:
        """Member outputs of θ_i − θ_j for the given pairs, (n_members, n_pairs)."""
        p = np.asarray(pairs, int).reshape(-1, 2)
        return self.outputs[:, p[:, 0]] - self.outputs[:, p[:, 1]]

    def spread(self) -> dict:
        """Disagreement between members along the shift and within the identified contrasts.

        Returns
        -------
        dict
            ``offset_sd`` (SD over members of the mean output), ``raw_sd`` and ``centred_sd``
            (per-item SD over members of raw and centred outputs, averaged over items) and
            ``variance_ratio`` = offset_sd² / centred_sd².

        Notes
        -----
        The offset is the coordinate along the non-identified direction, the centred outputs are the
        identified contrasts. ``variance_ratio`` ≫ 1 means that members disagree mostly where the data
        say nothing; compare it with an F quantile with (n_members − 1, n_members − 1) degrees of
        freedom to judge it against chance.
        """
        off_sd = float(self.offsets().std(ddof=1))
        raw_sd = float(self.outputs.std(axis=0, ddof=1).mean())
        cen_sd = float(self.centred().std(axis=0, ddof=1).mean())
        return {"offset_sd": off_sd, "raw_sd": raw_sd, "centred_sd": cen_sd,
                "variance_ratio": off_sd**2 / max(cen_sd**2, np.finfo(float).tiny)}

    def average(self, kind="centred") -> np.ndarray:
        """Ensemble average of the raw, centred or standardised outputs, (n_items,)."""
        match kind:
            case "raw":
                return self.outputs.mean(axis=0)
            case "centred":
                return self.centred().mean(axis=0)
            case "standardised":
                return self.standardised().mean(axis=0)
        raise ValueError(f"kind must be 'raw', 'centred' or 'standardised', got {kind!r}")


def train_ensemble(features, first, second, y, n_members=8, random_seed=None, bootstrap=False,
                   progress=False, **member_kwargs) -> EnsembleFit:
    """Train ``n_members`` networks (seeds spawned from ``random_seed``) with :func:`fit_member`.

    Parameters
    ----------
    features, first, second, y
        As for :func:`fit_member`.
    n_members : int
    random_seed : int, optional
    bootstrap : bool
        Resample the comparisons per member (bagging).
    progress : bool
        Print one line per member.
    **member_kwargs
        Passed to :func:`fit_member` (``link``, ``centre``, ``fixed_scale``, ``l2``, ``steps``, ...).
    """
    if n_members < 2:
        raise ValueError("an ensemble needs at least two members to measure disagreement")
    seeds = np.random.SeedSequence(random_seed).spawn(n_members)
    members = []
    for k, ss in enumerate(seeds):
        m = fit_member(features, first, second, y, random_seed=int(ss.generate_state(1)[0]),
                       bootstrap=bootstrap, **member_kwargs)
        members.append(m)
        if progress:
            print(f"member {k + 1}/{n_members}: nll {m.nll:.4f}, offset {m.outputs.mean():+.3f}, "
                  f"sigma {m.sigma:.3g}")
    return EnsembleFit(np.stack([m.outputs for m in members]), np.array([m.sigma for m in members]),
                       members, dict(member_kwargs, n_members=n_members, bootstrap=bootstrap,
                                     random_seed=random_seed))


def posterior_summary(draws) -> dict:
    """Shift and centred contrasts of posterior draws of θ, to set beside :meth:`EnsembleFit.spread`.

    Parameters
    ----------
    draws : array (..., n_items)
        Posterior (or prior) draws of the item parameters, any leading sample dimensions.

    Returns
    -------
    dict
        ``offset_sd`` (SD of the mean of θ), ``centred_sd`` (per-item SD of centred θ averaged over
        items), ``centred_mean`` (n_items,) and ``centred_sd_items`` (n_items,).
    """
    d = np.asarray(draws, float)
    d = d.reshape(-1, d.shape[-1])
    c = d - d.mean(axis=1, keepdims=True)
    return {"offset_sd": float(d.mean(axis=1).std(ddof=1)),
            "centred_sd": float(c.std(axis=0, ddof=1).mean()),
            "centred_mean": c.mean(axis=0), "centred_sd_items": c.std(axis=0, ddof=1)}
