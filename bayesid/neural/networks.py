"""Summary networks: a 1-D CNN for time series, a permutation-invariant network for i.i.d. samples,
and an MLP for small vectors. Each standardises its input with buffers fitted on the training set, so
gradients (saliency) are taken with respect to the raw data."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["Standardize", "MLP", "MLPSummary", "Conv1dSummary", "IIDSummary", "LinearAdjustment", "EnergyFeatures",
           "CycleFeatures", "CycleSummary", "cycle_options", "build_summary", "SUMMARIES"]

SUMMARIES = ("auto", "mlp", "conv1d", "iid", "cycles")
MLP_MAX_FEATURES = 512  # "auto" uses an MLP up to this many input numbers, a CNN for longer sequences


class Standardize(nn.Module):
    """``(x - mean) / sd`` with fixed buffers (per feature, or per channel for sequences)."""

    def __init__(self, mean, sd):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("sd", torch.as_tensor(np.asarray(sd), dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.sd


def MLP(n_in, n_out, width=64, depth=2, act=nn.GELU):
    """A plain multilayer perceptron with ``depth`` hidden layers of ``width`` units."""
    layers, d = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), act()]
        d = width
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


class MLPSummary(nn.Module):
    """Flattened data → standardise → MLP on ``[z, z²]`` → summary of size ``out``.

    The squared standardised inputs make second moments (noise scales) linear in the first layer's
    input, which a small MLP otherwise learns slowly. For a sequence (``channels > 0``) the MLP also
    gets :func:`moment_features` of each channel standardised *as a whole* (one mean and sd per
    channel, derived exactly from the per-feature moments): per-feature standardisation divides each
    time step by its own prior-predictive sd, which mixes the trend into the first differences and
    blurs the noise-scale feature they are meant to give.
    """

    def __init__(self, n_features, out, width=64, depth=2, mean=None, sd=None, channels=0):
        super().__init__()
        mean = np.zeros(n_features) if mean is None else np.asarray(mean, float)
        sd = np.ones(n_features) if sd is None else np.asarray(sd, float)
        self.norm = Standardize(mean, sd)
        self.channels = int(channels)
        if self.channels:
            m = mean.reshape(self.channels, -1)
            v = sd.reshape(self.channels, -1) ** 2
            cm = m.mean(1)
            # law of total variance over the time steps of a channel
            csd = np.sqrt((v + (m - cm[:, None]) ** 2).mean(1))
            self.channel_norm = Standardize(cm[:, None], np.where(csd > 1e-8, csd, 1.0)[:, None])
        self.energy = EnergyFeatures(self._energy_input(torch.zeros(1, n_features)).shape[1])
        self.net = MLP(2 * n_features + 3 * self.channels + self.energy.n_out, out, width, depth)

    def _energy_input(self, x):
        """What :class:`EnergyFeatures` reads: the whole-channel standardised sequence (per-feature
        standardised vector), pooled to at most :data:`ENERGY_MAX_INPUTS` numbers."""
        x = x.flatten(1)
        if self.channels:
            return _pool_flat(self.channel_norm(x.reshape(x.shape[0], self.channels, -1)))
        return _pool_flat(self.norm(x)[:, None, :])

    @torch.no_grad()
    def fit_features(self, x):
        """Fit the data-dependent fixed features (:meth:`EnergyFeatures.fit`) on training inputs ``x``."""
        self.energy.fit(torch.cat([self._energy_input(x[i:i + 4096]) for i in range(0, len(x), 4096)]).numpy())
        return self

    @property
    def n_scale_features(self) -> int:
        """The trailing columns of :meth:`linear_features` that are log noise levels (moments, energies)."""
        return 3 * self.channels + self.energy.n_out

    def linear_features(self, x):
        """The fixed (parameter-free) features the MLP reads: ``[z, z², moment features, energy features]``."""
        x = x.flatten(1)
        z = self.norm(x)
        feats = [z, z * z]
        if self.channels:
            feats.append(moment_features(self.channel_norm(x.reshape(x.shape[0], self.channels, -1))))
        feats.append(self.energy(self._energy_input(x)))
        return torch.cat(feats, dim=1)

    def forward(self, x):
        return self.net(self.linear_features(x))


def energy_orders(p: int) -> list[int]:
    """The subspace sizes ``k`` of :class:`EnergyFeatures` for ``p`` inputs: 0, 1, 2, 4, … up to ``p / 2``."""
    ks, k = [0], 1
    while k <= p // 2:
        ks.append(k)
        k *= 2
    return ks


class EnergyFeatures(nn.Module):
    """Log mean energy of an input vector outside its ``k`` leading principal directions, for each ``k``
    of :func:`energy_orders` (``log(‖(I − P_k)(z − μ)‖² / (p − k))``).

    Where the data are a signal that lives in a few directions plus noise, the energy outside the
    signal's subspace is the noise level (for ``y = Xβ + σε`` with ``k`` = rank ``X`` it is the residual
    sum of squares, sufficient for ``σ``); its logarithm is then linear in ``log σ`` and the linear
    adjustment gets the noise scale exactly. The directions come from :meth:`fit`: a principal component
    analysis of training inputs in which each row is weighted by the inverse of its own energy outside
    the leading ``p / 2`` directions, iterated — unweighted, rows with large noise dominate the
    covariance and tilt the estimated signal subspace (by ~0.005 rad on toy.identified at 2·10⁴ rows),
    which leaks signal into the energy of the low-noise rows. The energy beyond ``k`` is summed over the
    complement's own coordinates (a full orthonormal basis is kept), never as a difference of totals,
    so it keeps its precision in float32 when the noise is 10⁻⁶ of the signal.
    """

    def __init__(self, p: int):
        super().__init__()
        self.p = int(p)
        self.ks = energy_orders(self.p)
        self.register_buffer("mean", torch.zeros(self.p))
        self.register_buffer("basis", torch.eye(self.p))

    @property
    def n_out(self) -> int:
        return len(self.ks)

    @torch.no_grad()
    def fit(self, z: np.ndarray, n_iter: int = 3):
        """Estimate the mean and principal directions from training inputs ``z`` (n, p)."""
        z = np.asarray(z, np.float64).reshape(len(z), -1)
        w = np.ones(len(z))
        k_ref = self.ks[-1]
        for _ in range(n_iter + 1):
            w = w / w.sum()
            mu = w @ z
            zc = z - mu
            cov = (zc * w[:, None]).T @ zc
            _, vec = np.linalg.eigh(cov)
            vec = vec[:, ::-1].copy()
            tail = ((zc @ vec[:, k_ref:]) ** 2).sum(1) / max(self.p - k_ref, 1)
            w = 1.0 / np.maximum(tail, 1e-9 * max(float(np.median(tail)), 1e-30))
        self.mean.copy_(torch.as_tensor(mu, dtype=torch.float32))
        self.basis.copy_(torch.as_tensor(vec, dtype=torch.float32))
        return self

    def forward(self, z):
        e = ((z.flatten(1) - self.mean) @ self.basis) ** 2
        tail = torch.flip(torch.cumsum(torch.flip(e, [1]), 1), [1])  # tail[:, k] = Σ_{j ≥ k} e_j
        ks = torch.as_tensor(self.ks)
        return torch.log(tail[:, ks] / (self.p - ks).to(z.dtype) + 1e-12)


ENERGY_MAX_INPUTS = 1024  # EnergyFeatures read at most this many numbers (longer records are average-pooled)


def _pool_flat(z):
    """A sequence ``(n, C, T)`` average-pooled in time to at most :data:`ENERGY_MAX_INPUTS` numbers, flattened."""
    c, t = z.shape[1], z.shape[2]
    k = max(1, -(-c * t // ENERGY_MAX_INPUTS))
    if k > 1:
        z = nn.functional.avg_pool1d(z, k, ceil_mode=True)
    return z.flatten(1)


def moment_features(z):
    """Per channel of a sequence ``(n, C, T)``: mean, log sd and log rms of first differences.

    Log scales make noise levels spanning orders of magnitude (a half-normal σ near 0) easy to regress
    in the log coordinates parameters are learnt in; the differences remove slow trends.
    """
    eps = 1e-6
    m = z.mean(-1)
    lsd = torch.log(z.std(-1) + eps)
    ldiff = torch.log(torch.sqrt((z.diff(dim=-1) ** 2).mean(-1)) + eps) if z.shape[-1] > 1 else torch.zeros_like(m)
    return torch.cat([m, lsd, ldiff], dim=1)


class Conv1dSummary(nn.Module):
    """Sequences ``(n, C, T)`` → strided 1-D convolutions → global average and max pooling (plus
    :func:`moment_features`) → MLP.

    The first convolution has stride 4 and the others stride 2, so the cost grows like ``T / 4``: long
    records (500 samples × 2 axes) train on a CPU.
    """

    def __init__(self, channels, length, out, width=32, depth=3, mean=None, sd=None):
        super().__init__()
        shape = (channels, 1)
        self.norm = Standardize(np.zeros(shape) if mean is None else np.reshape(mean, shape),
                                np.ones(shape) if sd is None else np.reshape(sd, shape))
        layers, c, t = [], channels, length
        for i in range(depth):
            stride = 4 if i == 0 and length >= 64 else (2 if t >= 16 else 1)
            k = 2 * stride + 1
            layers += [nn.Conv1d(c, width, kernel_size=k, stride=stride, padding=k // 2), nn.GELU()]
            c, t = width, (t + stride - 1) // stride
        self.conv = nn.Sequential(*layers)
        self.energy = EnergyFeatures(_pool_flat(torch.zeros(1, channels, length)).shape[1])
        self.head = MLP(2 * width + 3 * channels + self.energy.n_out, out, width=max(width, out), depth=1)

    @torch.no_grad()
    def fit_features(self, x):
        """Fit the data-dependent fixed features (:meth:`EnergyFeatures.fit`) on training inputs ``x``."""
        self.energy.fit(torch.cat([_pool_flat(self.norm(x[i:i + 4096])) for i in range(0, len(x), 4096)]).numpy())
        return self

    @property
    def n_scale_features(self) -> int:
        """The trailing columns of :meth:`linear_features` that are log noise levels (moments, energies)."""
        return 3 * self.norm.mean.shape[0] + self.energy.n_out

    def linear_features(self, x):
        """Fixed features: the standardised record, average-pooled to at most 256 steps per channel,
        its :func:`moment_features` and :class:`EnergyFeatures`."""
        z = self.norm(x)
        k = max(1, -(-z.shape[-1] // 256))
        zp = nn.functional.avg_pool1d(z, k, ceil_mode=True) if k > 1 else z
        return torch.cat([zp.flatten(1), moment_features(z), self.energy(_pool_flat(z))], dim=1)

    def forward(self, x):
        z = self.norm(x)
        h = self.conv(z)
        return self.head(torch.cat([h.mean(-1), h.amax(-1), moment_features(z), self.energy(_pool_flat(z))], dim=1))


def _level_crossings(s, level, hyst, n_events, after=None):
    """The first ``n_events`` up- and down-crossings of ``level`` by each row of ``s`` (n, T), as
    fractional sample indices (linear interpolation between the two samples either side, so they are
    differentiable in those samples), with hysteresis: a crossing counts once the signal has gone
    beyond ``level ± hyst``, so noise near the level does not make extra events. Down-crossings are
    those after the first up-crossing. Missing events (a record with fewer) are False in ``found``.

    Returns ``(ups, downs, found_up, found_down)``, each (n, n_events)."""
    n, t_len = s.shape
    idx = torch.arange(t_len).expand(n, t_len)
    neg = torch.full_like(idx, -1)
    last_hi = torch.cummax(torch.where(s > level + hyst, idx, neg), 1).values
    last_lo = torch.cummax(torch.where(s < level - hyst, idx, neg), 1).values
    above = last_hi > last_lo
    up = torch.zeros_like(above)
    dn = torch.zeros_like(above)
    up[:, 1:] = above[:, 1:] & ~above[:, :-1]
    dn[:, 1:] = ~above[:, 1:] & above[:, :-1]
    last_le = torch.cummax(torch.where(s <= level, idx, neg), 1).values
    last_ge = torch.cummax(torch.where(s >= level, idx, neg), 1).values
    up &= last_le >= 0  # the level was crossed inside the record, not before it began
    dn &= last_ge >= 0
    first_up = torch.where(up.any(1), up.int().argmax(1), torch.full((n,), t_len))
    dn &= idx > first_up[:, None]
    last_le, last_ge = last_le.clamp(0, t_len - 2), last_ge.clamp(0, t_len - 2)
    out = []
    for ev, last, sign in ((up, last_le, 1.0), (dn, last_ge, -1.0)):
        order = torch.argsort((~ev).int(), dim=1, stable=True)[:, :n_events]  # event positions first, in time order
        found = torch.arange(n_events)[None, :] < ev.sum(1, keepdim=True)
        k = torch.gather(last, 1, order)
        a, b = torch.gather(s, 1, k), torch.gather(s, 1, k + 1)
        den = b - a
        frac = ((level - a) / torch.where(sign * den > 1e-12, den, torch.full_like(den, sign))).clamp(0.0, 1.0)
        out.append((k.to(s.dtype) + frac, found))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def _fill_missing(times, found, period):
    """Missing event times continued from the last one found, one ``period`` (samples) apart."""
    n, m = times.shape
    j = torch.arange(m, dtype=times.dtype).expand(n, m)
    n_found = found.sum(1)
    last = (n_found - 1).clamp(min=0)
    t_last = torch.gather(times, 1, last[:, None])
    t_last = torch.where(n_found[:, None] > 0, t_last, torch.full_like(t_last, -period))
    fill = t_last + (j - last[:, None].to(times.dtype)) * period
    return torch.where(found, times, fill)


def _interp(x, tq):
    """Linear interpolation of every channel of ``x`` (n, C, T) at fractional sample times ``tq`` (n, Q),
    clamped to the record: (n, C, Q)."""
    t_len = x.shape[-1]
    tq = tq.clamp(0.0, t_len - 1.0 - 1e-4)
    i = torch.floor(tq).long()
    f = (tq - i.to(tq.dtype))[:, None, :]
    ii = i[:, None, :].expand(-1, x.shape[1], -1)
    return torch.gather(x, 2, ii) * (1 - f) + torch.gather(x, 2, ii + 1) * f


CYCLE_PHASES = 12  # samples per cycle of the phase-resampled waveforms of :class:`CycleFeatures`
CYCLE_MAX = 16  # cycles used at most


def cycle_options(x, max_rows: int = 4000):
    """Decide whether sequences ``x`` (n, C, T) (raw training inputs) are periodic records, and on which
    channel to time their cycles: the configuration of :class:`CycleFeatures`, or None.

    A channel qualifies when, crossing the level ``mean + sd/2`` of its training values (hysteresis
    ``sd/5``), at least 99 % of the records show 4 or more cycles whose lengths vary by less than 25 %
    (coefficient of variation, median over records); among those the most regular channel is used.
    The number of cycles ``K`` is what 99 % of the records have (at most :data:`CYCLE_MAX`); ``period``
    is the median cycle length in samples.
    """
    x = torch.as_tensor(x[:max_rows]).float()
    best = None
    for c in range(x.shape[1]):
        s = x[:, c]
        mu, sd = float(s.mean()), float(s.std())
        if not sd > 0:
            continue
        level, hyst = mu + 0.5 * sd, 0.2 * sd
        ups, _, found, _ = _level_crossings(s, level, hyst, CYCLE_MAX + 1)
        count = found.sum(1).numpy()
        q01 = int(np.quantile(count, 0.01))
        if q01 < 4:
            continue
        iv = torch.diff(ups, dim=1).numpy()
        ok = found[:, 1:].numpy()
        cv = [iv[i, ok[i]].std() / iv[i, ok[i]].mean() for i in range(len(iv)) if ok[i].sum() >= 2]
        cv = float(np.median(cv))
        if cv >= 0.25:
            continue
        period = float(np.median(iv[ok]))
        if best is None or cv < best["cv"]:
            best = dict(channel=c, mean=mu, level=level, hyst=hyst, n_cycles=min(q01, CYCLE_MAX + 1) - 1, period=period,
                        cv=cv)
    if best is None:
        return None
    best.pop("cv")
    return best


class CycleFeatures(nn.Module):
    """Timing-invariant features of a periodic record (a walk, a heartbeat): cycles are timed by the
    level crossings of one channel, then every channel is read in the cycles' own time.

    For ``K`` cycles (from :func:`cycle_options`): the up- and down-crossing times of the levels ``mean``
    and ``mean + sd/2`` of the timing channel; the cycle lengths and the times spent above the level;
    windows of every channel around each up- and down-crossing at one-sample spacing (spanning
    −0.27 … +0.1 cycle and −0.1 … +0.27 cycle), averaged over the cycles and for the first cycle; each
    cycle resampled at :data:`CYCLE_PHASES` phases; and the part of the record before the first cycle
    resampled likewise.

    Why: in a periodic record whose step length depends on the parameters, the value at a fixed time
    late in the record is an oscillating function of those parameters (the phase drifts), which a
    regression does not invert; times of events and waveforms in the cycle's own time are smooth
    functions of the parameters. In a hybrid system (a spring-mass walker) the parameters that set
    contact geometry (leg length) show mostly as slope breaks at touchdown and lift-off; the
    one-sample windows around the crossings keep those. Everything is differentiable in the record
    (interpolated crossing times and values), so saliency maps still work; only which sample pair
    a crossing falls between is discrete.
    """

    def __init__(self, channels: int, length: int, options: dict):
        super().__init__()
        self.options = dict(options)
        self.channels, self.length = int(channels), int(length)
        self.c = int(options["channel"])
        self.K = int(options["n_cycles"])
        p = float(options["period"])
        self.period = p
        self.levels = (float(options["level"]), float(options["mean"]))
        self.hyst = float(options["hyst"])
        self.register_buffer("offs_up", torch.arange(-round(0.27 * p), round(0.1 * p) + 1, dtype=torch.float32))
        self.register_buffer("offs_down", torch.arange(-round(0.1 * p), round(0.27 * p) + 1, dtype=torch.float32))
        self.register_buffer("phases", torch.arange(CYCLE_PHASES, dtype=torch.float32) / CYCLE_PHASES)

    @property
    def n_out(self) -> int:
        return self(torch.zeros(1, self.channels, self.length)).shape[1]

    def forward(self, x):
        n, K = x.shape[0], self.K
        s = x[:, self.c]
        feats, ups0, dns0 = [], None, None
        for level in self.levels:
            ups, dns, fu, fd = _level_crossings(s, level, self.hyst, K + 1)
            ups, dns = _fill_missing(ups, fu, self.period), _fill_missing(dns, fd, self.period)
            feats += [ups, dns, torch.diff(ups, dim=1), dns - ups]
            if ups0 is None:
                ups0, dns0 = ups, dns
        q = self.offs_up.shape[0]
        wu = _interp(x, (ups0[:, :K, None] + self.offs_up).reshape(n, -1)).reshape(n, -1, K, q)
        q = self.offs_down.shape[0]
        wd = _interp(x, (dns0[:, :K, None] + self.offs_down).reshape(n, -1)).reshape(n, -1, K, q)
        feats += [wu.mean(2).flatten(1), wu[:, :, 0].flatten(1), wd.mean(2).flatten(1), wd[:, :, 0].flatten(1)]
        span = (ups0[:, 1:K + 1] - ups0[:, :K])[:, :, None]
        cyc = _interp(x, (ups0[:, :K, None] + self.phases * span).reshape(n, -1))
        feats.append(cyc.flatten(1))
        feats.append(_interp(x, self.phases[None, :] * ups0[:, :1]).flatten(1))
        return torch.cat(feats, dim=1)


class CycleSummary(nn.Module):
    """Periodic sequences ``(n, C, T)`` → :class:`CycleFeatures` and :func:`moment_features` (fixed) →
    standardised → MLP.

    Its learnt part reads only the fixed features (``forward_features``), so training computes them once
    per dataset and then trains an MLP: at 10⁵ records of 500 × 2 samples an epoch costs seconds on a
    CPU, where a convolutional network costs minutes.
    """

    features_cacheable = True

    def __init__(self, channels, length, out, width=64, depth=2, mean=None, sd=None, options=None):
        super().__init__()
        if options is None:
            raise ValueError("CycleSummary needs the options of cycle_options(x) (the records are not periodic?)")
        shape = (channels, 1)
        self.norm = Standardize(np.zeros(shape) if mean is None else np.reshape(mean, shape),
                                np.ones(shape) if sd is None else np.reshape(sd, shape))
        self.cycles = CycleFeatures(channels, length, options)
        n_feat = self.cycles.n_out + 3 * channels
        self.n_scale_features = 3 * channels
        self.feat_norm = Standardize(np.zeros(n_feat), np.ones(n_feat))
        self.net = MLP(n_feat, out, width=width, depth=depth)

    def linear_features(self, x):
        """Fixed features: :class:`CycleFeatures` of the raw record, then the :func:`moment_features` of
        the standardised record (the scale-type features, last)."""
        return torch.cat([self.cycles(x), moment_features(self.norm(x))], dim=1)

    @torch.no_grad()
    def fit_features(self, x=None, features=None):
        """Standardisation of the fixed features, from training inputs ``x`` or their ``features``."""
        f = features if features is not None else torch.cat(
            [self.linear_features(x[i:i + 4096]) for i in range(0, len(x), 4096)])
        f = f.double()
        sd = f.std(0)
        self.feat_norm.mean.copy_(f.mean(0).float())
        self.feat_norm.sd.copy_(torch.where(sd > 1e-8, sd, torch.ones_like(sd)).float())
        return self

    def forward_features(self, f):
        return self.net(self.feat_norm(f))

    def forward(self, x):
        return self.forward_features(self.linear_features(x))


class IIDSummary(nn.Module):
    """Exchangeable observations ``(n, F)`` (F scalars): per-observation embedding, pooled by mean and
    standard deviation (a Deep Set), together with the sample mean and sd of the raw values."""

    def __init__(self, n_features, out, width=32, depth=2, mean=None, sd=None):
        super().__init__()
        m = 0.0 if mean is None else float(np.mean(mean))
        s = 1.0 if sd is None else float(np.sqrt(np.mean(np.square(sd))))
        self.norm = Standardize(np.array(m), np.array(s))
        self.phi = MLP(1, width, width, depth - 1 if depth > 1 else 1)
        self.rho = MLP(2 * width + 2, out, width, depth)

    n_scale_features = 2  # sd and log sd of linear_features

    def linear_features(self, x):
        """Fixed features: sample mean, sd and log sd of the standardised observations."""
        z = self.norm(x.flatten(1))
        sd = z.std(1, keepdim=True)
        return torch.cat([z.mean(1, keepdim=True), sd, torch.log(sd + 1e-6)], dim=1)

    def forward(self, x):
        z = self.norm(x.flatten(1))
        h = self.phi(z.unsqueeze(-1))
        feats = [h.mean(1), h.std(1), z.mean(1, keepdim=True), z.std(1, keepdim=True)]
        return self.rho(torch.cat(feats, dim=1))


class LinearAdjustment(nn.Module):
    """A least-squares linear regression of the (standardised) parameters on the summary network's fixed
    features, fitted once on the training rows: ``θ = W f(x) + b + g(x) ⊙ r``.

    The networks then learn the residual ``r`` (unit variance), not ``θ`` itself. Where the posterior is
    much narrower than the prior, a network asked for ``θ`` must place its output to a small fraction
    of the prior's range — a relative precision that stochastic training on a few 10⁴ simulations does
    not reach; a location that is (close to) linear in the features is exact in ``W f(x) + b``, and the
    network corrects what is not (ABC's regression adjustment, Beaumont et al. 2002, used here as a fixed
    affine preconditioner).

    The scale ``g(x)`` is heteroscedastic where the data say so: ``log g(x)² = f Vₛ + cₛ`` is a least-squares
    fit of ``log r²`` (the scale model of Blum & François 2010's heteroscedastic ABC adjustment), on
    either the summary's scale-type features (log noise levels: :func:`moment_features`,
    :class:`EnergyFeatures`) or all features, or constant — chosen per parameter by the Gaussian
    likelihood of the residuals on held-out rows (2-fold), so that a scale the data cannot resolve costs
    nothing. Where the posterior width varies by orders of magnitude over the prior (an intercept whose
    posterior sd is σ/√n with σ ~ HalfNormal), a constant ``s`` leaves the flow to stretch its unit
    residual by that factor; with ``g(x)`` the residual it learns has unit scale everywhere.
    """

    def __init__(self, n_features, d):
        super().__init__()
        self.register_buffer("W", torch.zeros(n_features, d))
        self.register_buffer("b", torch.zeros(d))
        self.register_buffer("s", torch.ones(d))
        self.register_buffer("Vs", torch.zeros(n_features, d))
        self.register_buffer("cs", torch.zeros(d))
        self.scale_model = ["constant"] * d

    LOG_SCALE_RANGE = (np.log(1e-6), np.log(10.0))  # of g(x), in units of the parameter's prior sd

    @staticmethod
    def _ridge_ls(F, Y, ridge, w=None):
        """Ridge least squares on standardised columns (weighted by ``w``, a weight per row, when given);
        returns ``(W, b)`` in the original units."""
        fm, fs = F.mean(0), F.std(0)
        fs = np.where(fs > 1e-8, fs, np.inf)
        Fz = (F - fm) / fs
        if w is None:
            A = Fz.T @ Fz + ridge * len(F) * np.eye(F.shape[1])
            Wz = np.linalg.solve(A, Fz.T @ (Y - Y.mean(0)))
            W = Wz / fs[:, None]
            return W, Y.mean(0) - fm @ W
        w = w / w.mean()
        F1 = np.column_stack([Fz, np.ones(len(F))])
        A = (F1 * w[:, None]).T @ F1 + ridge * len(F) * np.diag(np.r_[np.ones(F.shape[1]), 0.0])
        sol = np.linalg.solve(A, (F1 * w[:, None]).T @ Y)
        W = sol[:-1] / fs[:, None]
        return W, sol[-1] - fm @ W

    def _log_scale_fit(self, F, r, ridge):
        """``(V, c)`` with ``log g² = F V + c`` fitted to ``log r²`` and recentred so that mean ``r² / g²`` = 1."""
        t = np.log(r ** 2 + 1e-6 * np.mean(r ** 2, 0))
        V, c = self._ridge_ls(F, t, ridge) if F.shape[1] else (np.zeros((0, r.shape[1])), t.mean(0))
        u = np.clip(F @ V + c, *(2 * np.asarray(self.LOG_SCALE_RANGE)))
        return V, c + np.log(np.mean(r ** 2 / np.exp(u), 0))

    @torch.no_grad()
    def fit(self, F: np.ndarray, Y: np.ndarray, ridge: float = 1e-4, n_scale_features: int = 0):
        """Ridge-regularised least squares of ``Y`` (n, d) on ``F`` (n, p), on standardised features;
        ``s`` is the residual sd per parameter (floored at 10⁻³ of the standardised prior sd) and
        ``g(x)`` the heteroscedastic scale (see the class); the last ``n_scale_features`` columns of
        ``F`` are the scale-type features."""
        F = np.asarray(F, np.float64)
        Y = np.asarray(Y, np.float64)
        d = Y.shape[1]
        W, b = self._ridge_ls(F, Y, ridge)
        res = Y - F @ W - b
        s = np.maximum(res.std(0), 1e-3)
        if n_scale_features:  # feasible weighted least squares: the noisiest rows no longer set W alone
            cols = np.arange(F.shape[1] - n_scale_features, F.shape[1])
            for _ in range(2):
                for j in range(d):
                    V, c = self._log_scale_fit(F[:, cols], res[:, j:j + 1], ridge)
                    g2 = np.exp(np.clip(F[:, cols] @ V[:, 0] + c[0], *(2 * np.asarray(self.LOG_SCALE_RANGE))))
                    Wj, bj = self._ridge_ls(F, Y[:, j:j + 1], ridge, w=1.0 / g2)
                    W[:, j], b[j] = Wj[:, 0], bj[0]
                res = Y - F @ W - b
            s = np.maximum(res.std(0), 1e-3)
        candidates = {"constant": np.zeros(0, int), "all": np.arange(F.shape[1])}
        if 0 < n_scale_features < F.shape[1]:
            candidates["scale features"] = np.arange(F.shape[1] - n_scale_features, F.shape[1])
        folds = [np.arange(len(F)) % 2 == 0, np.arange(len(F)) % 2 == 1]
        nll = {}
        lo, hi = 2 * np.asarray(self.LOG_SCALE_RANGE)
        for name, cols in candidates.items():
            tot = np.zeros(d)
            for a, bb in (folds, folds[::-1]):
                V, c = self._log_scale_fit(F[a][:, cols], res[a], ridge)
                u = np.clip(F[bb][:, cols] @ V + c, lo, hi)
                tot += 0.5 * (u + res[bb] ** 2 / np.exp(u)).sum(0)
            nll[name] = tot
        names = list(candidates)
        best = np.argmin(np.stack([nll[n] for n in names]), 0)
        Vs, cs = np.zeros_like(W), np.zeros(d)
        for j in range(d):
            cols = candidates[names[best[j]]]
            V, c = self._log_scale_fit(F[:, cols], res[:, j:j + 1], ridge)
            Vs[cols, j], cs[j] = V[:, 0], c[0]
        self.scale_model = [names[k] for k in best]
        self.W.copy_(torch.as_tensor(W, dtype=torch.float32))
        self.b.copy_(torch.as_tensor(b, dtype=torch.float32))
        self.s.copy_(torch.as_tensor(s, dtype=torch.float32))
        self.Vs.copy_(torch.as_tensor(Vs, dtype=torch.float32))
        self.cs.copy_(torch.as_tensor(cs, dtype=torch.float32))
        return self

    def shift(self, f):
        return f @ self.W + self.b

    def scale(self, f):
        """``g(x)`` for features ``f`` (n, p): ``(n, d)``."""
        lo, hi = self.LOG_SCALE_RANGE
        return torch.exp(torch.clamp(0.5 * (f @ self.Vs + self.cs), lo, hi))


def choose_summary(layout, summary="auto") -> str:
    """Resolve ``summary="auto"``: an MLP up to :data:`MLP_MAX_FEATURES` numbers, a CNN for longer
    sequences, an MLP otherwise."""
    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {SUMMARIES}, got {summary!r}")
    if summary != "auto":
        if summary in ("conv1d", "cycles") and not layout["sequence"]:
            raise ValueError(f"summary={summary!r} needs sequence data (arrays of shape (T,) or (T, C)); "
                             f"this design produces {layout['shapes']}")
        return summary
    if layout["n_features"] <= MLP_MAX_FEATURES or not layout["sequence"]:
        return "mlp"
    return "conv1d"


def input_moments(x: np.ndarray, kind: str):
    """Standardisation constants of the network input ``x`` for summary ``kind``."""
    if kind in ("conv1d", "cycles"):
        mean = x.mean(axis=(0, 2))
        sd = x.std(axis=(0, 2))
    else:
        x = x.reshape(x.shape[0], -1)
        mean, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    return mean.astype(np.float32), sd.astype(np.float32)


def build_summary(kind, layout, out, width, depth, mean=None, sd=None, options=None) -> nn.Module:
    """Instantiate the summary network ``kind`` for data of ``layout`` (``options``: those of
    :func:`cycle_options` for ``"cycles"``)."""
    if kind == "mlp":
        return MLPSummary(layout["n_features"], out, width, depth, mean, sd,
                          channels=layout["channels"] if layout["sequence"] else 0)
    if kind == "conv1d":
        return Conv1dSummary(layout["channels"], layout["length"], out, width=max(16, width // 2),
                             depth=max(2, depth + 1), mean=mean, sd=sd)
    if kind == "iid":
        return IIDSummary(layout["n_features"], out, max(16, width // 2), depth, mean, sd)
    if kind == "cycles":
        return CycleSummary(layout["channels"], layout["length"], out, width=4 * width, depth=depth + 1, mean=mean,
                            sd=sd, options=options)
    raise ValueError(kind)
