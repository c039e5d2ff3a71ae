"""Summary networks: a 1-D CNN for time series, a permutation-invariant network for i.i.d. samples,
and an MLP for small vectors. Each standardises its input with buffers fitted on the training set, so
gradients (saliency) are taken with respect to the raw data."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["Standardize", "MLP", "MLPSummary", "Conv1dSummary", "IIDSummary", "LinearAdjustment", "build_summary",
           "SUMMARIES"]

SUMMARIES = ("auto", "mlp", "conv1d", "iid")
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
        self.net = MLP(2 * n_features + 3 * self.channels, out, width, depth)

    def linear_features(self, x):
        """The fixed (parameter-free) features the MLP reads: ``[z, z², moment features]``."""
        x = x.flatten(1)
        z = self.norm(x)
        feats = [z, z * z]
        if self.channels:
            feats.append(moment_features(self.channel_norm(x.reshape(x.shape[0], self.channels, -1))))
        return torch.cat(feats, dim=1)

    def forward(self, x):
        return self.net(self.linear_features(x))


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
        self.head = MLP(2 * width + 3 * channels, out, width=max(width, out), depth=1)

    def linear_features(self, x):
        """Fixed features: the standardised record, average-pooled to at most 256 steps per channel,
        and its :func:`moment_features`."""
        z = self.norm(x)
        k = max(1, -(-z.shape[-1] // 256))
        zp = nn.functional.avg_pool1d(z, k, ceil_mode=True) if k > 1 else z
        return torch.cat([zp.flatten(1), moment_features(z)], dim=1)

    def forward(self, x):
        z = self.norm(x)
        h = self.conv(z)
        return self.head(torch.cat([h.mean(-1), h.amax(-1), moment_features(z)], dim=1))


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
    features, fitted once on the training rows: ``θ = W f(x) + b + s ⊙ r``.

    The networks then learn the residual ``r`` (unit variance), not ``θ`` itself. Where the posterior is
    much narrower than the prior, a network asked for ``θ`` must place its output to a small fraction
    of the prior's range — a relative precision that stochastic training on a few 10⁴ simulations does
    not reach; a location that is (close to) linear in the features is exact in ``W f(x) + b``, and the
    network corrects what is not (ABC's regression adjustment, Beaumont et al. 2002, used here as a fixed
    affine preconditioner with unit Jacobian up to the constant ``Σ log s``).
    """

    def __init__(self, n_features, d):
        super().__init__()
        self.register_buffer("W", torch.zeros(n_features, d))
        self.register_buffer("b", torch.zeros(d))
        self.register_buffer("s", torch.ones(d))

    @torch.no_grad()
    def fit(self, F: np.ndarray, Y: np.ndarray, ridge: float = 1e-4):
        """Ridge-regularised least squares of ``Y`` (n, d) on ``F`` (n, p), on standardised features;
        ``s`` is the residual sd per parameter (floored at 10⁻³ of the standardised prior sd)."""
        F = np.asarray(F, np.float64)
        Y = np.asarray(Y, np.float64)
        fm, fs = F.mean(0), F.std(0)
        fs = np.where(fs > 1e-8, fs, np.inf)
        Fz = (F - fm) / fs
        A = Fz.T @ Fz + ridge * len(F) * np.eye(F.shape[1])
        Wz = np.linalg.solve(A, Fz.T @ (Y - Y.mean(0)))
        W = Wz / fs[:, None]
        b = Y.mean(0) - fm @ W
        res = Y - F @ W - b
        self.W.copy_(torch.as_tensor(W, dtype=torch.float32))
        self.b.copy_(torch.as_tensor(b, dtype=torch.float32))
        self.s.copy_(torch.as_tensor(np.maximum(res.std(0), 1e-3), dtype=torch.float32))
        return self

    def shift(self, f):
        return f @ self.W + self.b


def choose_summary(layout, summary="auto") -> str:
    """Resolve ``summary="auto"``: an MLP up to :data:`MLP_MAX_FEATURES` numbers, a CNN for longer
    sequences, an MLP otherwise."""
    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {SUMMARIES}, got {summary!r}")
    if summary != "auto":
        if summary == "conv1d" and not layout["sequence"]:
            raise ValueError("summary='conv1d' needs sequence data (arrays of shape (T,) or (T, C)); "
                             f"this design produces {layout['shapes']}")
        return summary
    if layout["n_features"] <= MLP_MAX_FEATURES or not layout["sequence"]:
        return "mlp"
    return "conv1d"


def input_moments(x: np.ndarray, kind: str):
    """Standardisation constants of the network input ``x`` for summary ``kind``."""
    if kind == "conv1d":
        mean = x.mean(axis=(0, 2))
        sd = x.std(axis=(0, 2))
    else:
        x = x.reshape(x.shape[0], -1)
        mean, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    return mean.astype(np.float32), sd.astype(np.float32)


def build_summary(kind, layout, out, width, depth, mean=None, sd=None) -> nn.Module:
    """Instantiate the summary network ``kind`` for data of ``layout``."""
    if kind == "mlp":
        return MLPSummary(layout["n_features"], out, width, depth, mean, sd,
                          channels=layout["channels"] if layout["sequence"] else 0)
    if kind == "conv1d":
        return Conv1dSummary(layout["channels"], layout["length"], out, width=max(16, width // 2),
                             depth=max(2, depth + 1), mean=mean, sd=sd)
    if kind == "iid":
        return IIDSummary(layout["n_features"], out, max(16, width // 2), depth, mean, sd)
    raise ValueError(kind)
