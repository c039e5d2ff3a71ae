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
>>> from bayesid.neural.pairwise import make_items
>>> X, theta = make_items(6, random_seed=0)
>>> X.shape, theta.shape
((6, 3), (6,))
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
    "beta_pair_multistart",
    "canonical_pair",
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
    """MLPs from item features to one latent parameter per item (θ_i or λ_i), with an optional scale.

    Holds ``n_members`` independent networks as one batched module (weights of shape
    ``(n_members, fan_in, fan_out)``): since the training loss is the sum of the members' losses
    and Adam acts elementwise, training the batch is exactly training each member on its own.

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
    n_members : int
        Number of independent networks.
    seeds : sequence of int, optional
        One seed per member for its initial weights (PyTorch's default ``nn.Linear`` initialisation).
    """

    def __init__(self, n_features, hidden=16, centre=False, link="logit", fixed_scale=False, n_members=1,
                 seeds=None):
        super().__init__()
        if link not in _LINKS:
            raise ValueError(f"link must be one of {_LINKS}, got {link!r}")
        seeds = list(range(n_members)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != n_members:
            raise ValueError(f"need {n_members} seeds, got {len(seeds)}")
        self.link = link
        self.centre = bool(centre)
        self.fixed_scale = bool(fixed_scale) or link == "logit"
        self.n_members = n_members
        sizes = [(n_features, hidden), (hidden, hidden), (hidden, 1)]
        ws = [[] for _ in sizes]
        bs = [[] for _ in sizes]
        with torch.random.fork_rng(devices=[]):
            for seed in seeds:
                torch.manual_seed(seed)
                for k, (a, b) in enumerate(sizes):
                    lin = nn.Linear(a, b)
                    ws[k].append(lin.weight.detach().T.clone())
                    bs[k].append(lin.bias.detach().clone())
        self.weights = nn.ParameterList([nn.Parameter(torch.stack(w)) for w in ws])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack(b)[:, None, :]) for b in bs])
        self.log_sigma = None if self.fixed_scale else nn.Parameter(torch.zeros(n_members))

    def _body(self, X):
        h = X.expand(self.n_members, *X.shape)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if k < len(self.weights) - 1:
                h = torch.tanh(h)
        return h.squeeze(-1)

    def forward(self, X, reference=None):
        """Outputs on the items ``X`` (n_items, n_features): shape (n_members, n_items).

        With ``centre=True`` the outputs are centred on the mean over the ``reference`` items (the
        catalogue the network was trained on; default: ``X`` itself), so that new items can be scored
        on the same identified scale: θ_new = f(x_new) − mean_ref f(x_ref).
        """
        out = self._body(X)
        if self.centre:
            ref = out if reference is None else self._body(reference)
            out = out - ref.mean(dim=1, keepdim=True)
        return out

    def sigma(self):
        """The comparison scale σ per member (1 when fixed), shape (n_members,)."""
        if self.log_sigma is None:
            return torch.ones(self.n_members, dtype=self.weights[0].dtype)
        return self.log_sigma.exp()


def _nll(net, X, first, second, y):
    """Mean negative log-likelihood per member, (n_members,), and the outputs (n_members, n_items)."""
    out = net(X)
    d = torch.gather(out, 1, first) - torch.gather(out, 1, second)
    if net.link == "logit":
        nll = nn.functional.binary_cross_entropy_with_logits(d, y, reduction="none").mean(dim=1)
        return nll, out
    z = d / net.sigma()[:, None]
    return -(y * torch.special.log_ndtr(z) + (1 - y) * torch.special.log_ndtr(-z)).mean(dim=1), out


@dataclass
class MemberFit:
    """One trained network: its outputs on the item catalogue and its training history."""

    outputs: np.ndarray  # (n_items,)
    sigma: float
    nll: float
    history: dict = field(default_factory=dict)  # step, nll, offset, scale, sigma (arrays)


def _resample(first, second, rng):
    """Bootstrap indices resampled within each compared pair (the design fixes how often each pair
    is compared, so the resample keeps those counts)."""
    keys = np.minimum(first, second) * (max(first.max(), second.max()) + 1) + np.maximum(first, second)
    idx = np.empty(first.size, int)
    for k in np.unique(keys):
        where = np.flatnonzero(keys == k)
        idx[where] = rng.choice(where, where.size, replace=True)
    return idx


def _train(features, first, second, y, seeds, *, link="logit", centre=False, fixed_scale=False, l2=0.0,
           hidden=16, steps=1500, lr=0.02, record_every=25, bootstrap=False):
    X = torch.as_tensor(np.asarray(features, float), dtype=torch.float64)
    first = np.asarray(first, int)
    second = np.asarray(second, int)
    y = np.asarray(y, float)
    if not (first.shape == second.shape == y.shape) or first.ndim != 1:
        raise ValueError(f"first, second and y must be 1-d of equal length; got shapes {first.shape}, "
                         f"{second.shape}, {y.shape}")
    if X.ndim != 2 or max(first.max(), second.max()) >= X.shape[0] or min(first.min(), second.min()) < 0:
        raise ValueError("features must be (n_items, n_features) and cover every compared item")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must hold 0/1 outcomes (1: the first item of the comparison won)")
    if l2 < 0 or steps < 1 or lr <= 0:
        raise ValueError("need l2 >= 0, steps >= 1 and lr > 0")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead (restored below)
    try:
        return _train_loop(X, first, second, y, seeds, link, centre, fixed_scale, l2, hidden, steps, lr,
                           record_every, bootstrap)
    finally:
        torch.set_num_threads(n_threads)


def _train_loop(X, first, second, y, seeds, link, centre, fixed_scale, l2, hidden, steps, lr, record_every,
                bootstrap):
    M = len(seeds)
    rngs = [np.random.default_rng(s) for s in seeds]
    idx = np.stack([_resample(first, second, r) if bootstrap else np.arange(y.size) for r in rngs])
    init = [int(r.integers(0, 2**31 - 1)) for r in rngs]
    net = RateNet(X.shape[1], hidden=hidden, centre=centre, link=link, fixed_scale=fixed_scale,
                  n_members=M, seeds=init).double()
    f_t = torch.as_tensor(first[idx])
    s_t = torch.as_tensor(second[idx])
    y_t = torch.as_tensor(y[idx], dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    hist = {k: [] for k in ("step", "nll", "offset", "scale", "sigma")}
    for step in range(steps + 1):
        opt.zero_grad()
        nll, out = _nll(net, X, f_t, s_t, y_t)
        loss = nll + l2 * (out**2).mean(dim=1) if l2 else nll
        if step % record_every == 0 or step == steps:
            o = out.detach().numpy()
            hist["step"].append(np.full(M, step))
            hist["nll"].append(nll.detach().numpy().copy())
            hist["offset"].append(o.mean(axis=1))
            hist["scale"].append(o.std(axis=1))
            hist["sigma"].append(net.sigma().detach().numpy().copy())
        if step == steps:
            break
        loss.sum().backward()  # members are independent: sum of losses, elementwise Adam
        opt.step()
    with torch.no_grad():
        nll, out = _nll(net, X, f_t, s_t, y_t)
        sig = net.sigma().numpy().copy()
    hist = {k: np.stack(v, axis=1) for k, v in hist.items()}  # (M, n_records)
    members = [MemberFit(out[m].numpy().copy(), float(sig[m]), float(nll[m]),
                         {k: v[m] for k, v in hist.items()}) for m in range(M)]
    return members, net


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
        Seeds the initial weights and the bootstrap resample. Member ``k`` of :func:`train_ensemble`
        is ``fit_member(..., random_seed=ens.settings["member_seeds"][k])``.
    bootstrap : bool
        Train on a resample (with replacement) of the comparisons, stratified by pair so that each
        pair keeps its number of comparisons — the bagged ensemble, whose spread estimates sampling
        variability.

    Returns
    -------
    MemberFit
    """
    if isinstance(random_seed, (int, np.integer)) and random_seed >= 0:
        seed = int(random_seed)
    else:
        seed = int(np.random.SeedSequence(random_seed).generate_state(1)[0])
    members, _ = _train(features, first, second, y, [seed], link=link, centre=centre,
                        fixed_scale=fixed_scale, l2=l2, hidden=hidden, steps=steps, lr=lr,
                        record_every=record_every, bootstrap=bootstrap)
    return members[0]


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
                   **member_kwargs) -> EnsembleFit:
    """Train ``n_members`` networks (seeds spawned from ``random_seed``), all at once.

    Member ``k`` is exactly what :func:`fit_member` gives with the ``k``-th spawned seed (the
    members are trained as one batched module; see :class:`RateNet`).

    Parameters
    ----------
    features, first, second, y
        As for :func:`fit_member`.
    n_members : int
    random_seed : int, optional
    bootstrap : bool
        Resample the comparisons per member (bagging).
    **member_kwargs
        Passed on as for :func:`fit_member` (``link``, ``centre``, ``fixed_scale``, ``l2``, ``steps``...).
    """
    if n_members < 2:
        raise ValueError("an ensemble needs at least two members to measure disagreement")
    seeds = [int(ss.generate_state(1)[0]) for ss in np.random.SeedSequence(random_seed).spawn(n_members)]
    members, _ = _train(features, first, second, y, seeds, bootstrap=bootstrap, **member_kwargs)
    return EnsembleFit(np.stack([m.outputs for m in members]), np.array([m.sigma for m in members]),
                       members, dict(member_kwargs, n_members=n_members, bootstrap=bootstrap,
                                     random_seed=random_seed, member_seeds=seeds))


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


def beta_pair_multistart(y, p, n_members=8, random_seed=None, steps=1500, lr=0.05, init_sd=0.7):
    """Maximum-likelihood fits of ``rates.beta_pair`` from random starts (an ensemble of seeds).

    Each member fits (log λ1, log λ2) to ``y ~ Beta((λ1+λ2)/(λ1λ2), λ1 λ2^p)`` by full-batch Adam from
    a start drawn from N(0, ``init_sd``²) per coordinate. For p = 1 the likelihood is symmetric under
    λ1 ↔ λ2, so members land in either of two mirror-image maxima and their raw average falls
    between them, towards the fold λ1 = λ2 — where neither maximum is. Average
    :func:`canonical_pair` outputs instead.

    Parameters
    ----------
    y : array (n_obs,)
        Observations in (0, 1).
    p : float
        Design exponent.
    n_members : int
    random_seed : int, optional
    steps, lr : int, float
        Adam settings.
    init_sd : float
        Spread of the random starts (log scale).

    Returns
    -------
    lam : ndarray (n_members, 2)
        Fitted (λ1, λ2) per member.
    loglik : ndarray (n_members,)
        Their log-likelihoods.
    """
    y = np.asarray(y, float)
    if y.ndim != 1 or np.any((y <= 0) | (y >= 1)):
        raise ValueError("y must be a 1-d array of Beta observations strictly inside (0, 1)")
    if n_members < 1:
        raise ValueError("n_members must be positive")
    rng = np.random.default_rng(random_seed)
    par = nn.Parameter(torch.as_tensor(rng.normal(0.0, init_sd, (n_members, 2)), dtype=torch.float64))
    y_t = torch.as_tensor(y, dtype=torch.float64)

    def loglik():
        l1, l2 = par[:, 0].exp(), par[:, 1].exp()
        u = (l1 + l2) / (l1 * l2)
        v = l1 * l2**p
        return torch.distributions.Beta(u[:, None], v[:, None]).log_prob(y_t).sum(dim=1)

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt = torch.optim.Adam([par], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            (-loglik().sum() / y.size).backward()
            opt.step()
        with torch.no_grad():
            ll = loglik().numpy()
            lam = par.exp().numpy().copy()
    finally:
        torch.set_num_threads(n_threads)
    return lam, ll


def canonical_pair(lam):
    """The identified representative of a swap-symmetric pair: (max, min) per row of ``lam`` (…, 2).

    For p = 1 the likelihood of ``rates.beta_pair`` depends on (λ1, λ2) only through the unordered pair
    {λ1, λ2}; sorting picks one point of each mirror pair, so members can be averaged.
    """
    lam = np.asarray(lam, float)
    if lam.shape[-1] != 2:
        raise ValueError(f"lam must have a last dimension of 2, got shape {lam.shape}")
    return np.sort(lam, axis=-1)[..., ::-1]
