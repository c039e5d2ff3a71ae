"""Summary networks: a 1-D CNN for time series, a permutation-invariant network for i.i.d. samples,
and an MLP for small vectors. Each standardises its input with buffers fitted on the training set, so
gradients (saliency) are taken with respect to the raw data."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["Standardize", "MLP", "MLPSummary", "Conv1dSummary", "IIDSummary", "build_summary", "SUMMARIES"]

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
    input, which a small MLP otherwise learns slowly.
    """

    def __init__(self, n_features, out, width=64, depth=2, mean=None, sd=None, channels=0):
        super().__init__()
        self.norm = Standardize(np.zeros(n_features) if mean is None else mean,
                                np.ones(n_features) if sd is None else sd)
        self.channels = int(channels)
        self.net = MLP(2 * n_features + 3 * self.channels, out, width, depth)

    def forward(self, x):
        z = self.norm(x.flatten(1))
        feats = [z, z * z]
        if self.channels:
            feats.append(moment_features(z.reshape(z.shape[0], self.channels, -1)))
        return self.net(torch.cat(feats, dim=1))


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

    def forward(self, x):
        z = self.norm(x.flatten(1))
        h = self.phi(z.unsqueeze(-1))
        feats = [h.mean(1), h.std(1), z.mean(1, keepdim=True), z.std(1, keepdim=True)]
        return self.rho(torch.cat(feats, dim=1))


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
