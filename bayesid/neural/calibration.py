"""Calibration of amortized posteriors: simulation-based calibration (SBC), coverage, and a
classifier two-sample test (C2ST) against reference (MCMC or exact) posterior draws.

Tests and their null distributions
----------------------------------
* **SBC** (Talts et al. 2018): for datasets simulated from the prior, the rank of the true value among
  ``L`` posterior draws is uniform on ``{0, …, L}`` iff the posterior is calibrated. Ranks are binned
  and compared with the exact bin probabilities by Pearson's chi-square test (``bins - 1`` degrees
  of freedom); one p-value per parameter, flagged below ``alpha / d`` (Bonferroni over the ``d``
  parameters).
* **Coverage**: fraction of datasets whose true value falls in the central ``level`` credible
  interval; flagged when outside the two-sided ``1 - alpha`` Clopper–Pearson interval of a
  Binomial(n, level) proportion (Bonferroni over levels and parameters).
* **C2ST** (Lopez-Paz & Oquab 2017): a small MLP classifier is trained to tell the two samples apart
  with ``k``-fold cross-validation; under the null (same distribution, balanced classes) every held-out
  prediction is right with probability 1/2, so the number of right predictions is Binomial(n, 1/2):
  the one-sided p-value is ``P(Bin(n, 1/2) >= correct)``. Accuracy 0.5 means indistinguishable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .simulation import seed_sequence

__all__ = ["SBCResult", "sbc", "sbc_ranks", "rank_uniformity", "coverage", "C2STResult", "c2st",
           "CalibrationReport", "calibrate"]


def sbc_ranks(theta_true, draws) -> np.ndarray:
    """Ranks ``#{l: draws[i, l, j] < theta_true[i, j]}`` in ``0..L``; shape ``(n, d)``."""
    theta_true = np.asarray(theta_true)
    draws = np.asarray(draws)
    return (draws < theta_true[:, None, :]).sum(axis=1)


def rank_uniformity(ranks, n_draws, bins=None):
    """Pearson chi-square test that ranks in ``0..n_draws`` are uniform.

    Parameters
    ----------
    ranks : ndarray, shape (n, d)
    n_draws : int
        Number of posterior draws ``L`` per dataset (ranks take ``L + 1`` values).
    bins : int, optional
        Number of bins (default: the largest of 20, 10, 5 leaving an expected count ≥ 5 per bin).

    Returns
    -------
    chi2, pvalue : ndarray of shape (d,)
    bins : int
    """
    ranks = np.asarray(ranks)
    n = ranks.shape[0]
    if bins is None:
        bins = next((b for b in (20, 10, 5, 2) if n / b >= 5), 2)
    bins = min(bins, n_draws + 1)
    edges_of_value = np.floor(np.arange(n_draws + 1) * bins / (n_draws + 1)).astype(int)
    p = np.bincount(edges_of_value, minlength=bins) / (n_draws + 1)
    chi2, pval = [], []
    for j in range(ranks.shape[1]):
        counts = np.bincount(edges_of_value[ranks[:, j]], minlength=bins)
        c = float(((counts - n * p) ** 2 / (n * p)).sum())
        chi2.append(c)
        pval.append(float(stats.chi2.sf(c, bins - 1)))
    return np.asarray(chi2), np.asarray(pval), int(bins)


@dataclass
class SBCResult:
    """Simulation-based calibration ranks and their chi-square uniformity test.

    Attributes
    ----------
    names : list of str
        Unconstrained parameter names.
    ranks : ndarray (n_datasets, d)
    n_draws : int
    bins : int
    chi2, pvalue : ndarray (d,)
    alpha : float
        Family-wise level; parameter ``j`` is flagged when ``pvalue[j] < alpha / d``.
    """

    names: list
    ranks: np.ndarray
    n_draws: int
    bins: int
    chi2: np.ndarray
    pvalue: np.ndarray
    alpha: float = 0.01

    @property
    def flagged(self) -> np.ndarray:
        return self.pvalue < self.alpha / len(self.names)

    @property
    def calibrated(self) -> bool:
        return not bool(self.flagged.any())

    def table(self):
        import pandas as pd

        return pd.DataFrame({"chi2": self.chi2, "df": self.bins - 1, "pvalue": self.pvalue,
                             "flagged": self.flagged}, index=pd.Index(self.names, name="parameter"))

    def plot(self, ax=None):
        """Rank histograms with the 99 % band of a uniform bin count."""
        import matplotlib.pyplot as plt

        d = len(self.names)
        if ax is None:
            fig, ax = plt.subplots(1, d, figsize=(2.6 * d, 2.3), squeeze=False)
            ax = ax[0]
        n = self.ranks.shape[0]
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / self.bins)
        for j, a in enumerate(np.atleast_1d(ax)):
            a.hist(self.ranks[:, j], bins=self.bins, range=(0, self.n_draws + 1), color="C0")
            a.axhspan(lo, hi, color="0.85", zorder=0)
            a.set_title(f"{self.names[j]}\np = {self.pvalue[j]:.2g}", fontsize=8)
            a.set_yticks([])
        return ax


def sbc(estimator, spec, n_datasets=300, n_draws=199, design=None, priors=None, random_seed=None,
        alpha=0.01, bins=None) -> SBCResult:
    """Simulation-based calibration of a posterior estimator on fresh prior-predictive datasets.

    Parameters
    ----------
    estimator : NPE or Ensemble of NPE
        Must provide ``sample(data, n, random_seed)`` in unconstrained coordinates.
    spec : ModelSpec or str
    n_datasets : int
        Datasets simulated from the prior (the test's sample size).
    n_draws : int
        Posterior draws per dataset ``L``.
    design, priors : optional
        Must match the estimator's training design and priors.
    random_seed : int, optional
    alpha : float
        Family-wise level of the chi-square test.
    bins : int, optional
        See :func:`rank_uniformity`.

    Returns
    -------
    SBCResult
    """
    from .simulation import simulate_training_set

    if getattr(estimator, "kind", "") != "npe":
        raise TypeError("SBC needs a posterior estimator (NPE or an Ensemble of NPE); a point estimator "
                        "has no posterior draws.")
    s1, s2 = seed_sequence(random_seed).spawn(2)
    ts = simulate_training_set(spec, n_datasets, design=design, priors=priors, random_seed=s1)
    draws = estimator.sample(ts, n_draws, random_seed=s2)
    ranks = sbc_ranks(ts.theta_unc, draws)
    chi2, p, b = rank_uniformity(ranks, n_draws, bins)
    return SBCResult(list(ts.transform.unconstrained_names), ranks, n_draws, b, chi2, p, alpha)


def coverage(theta_true, draws, levels=(0.5, 0.8, 0.9, 0.95), names=None, alpha=0.01):
    """Empirical coverage of central credible intervals.

    Parameters
    ----------
    theta_true : ndarray (n, d)
    draws : ndarray (n, L, d)
        Posterior draws per dataset.
    levels : sequence of float
        Nominal credibilities.
    names : list of str, optional
    alpha : float
        Family-wise level of the Clopper–Pearson check (Bonferroni over levels × parameters).

    Returns
    -------
    pandas.DataFrame
        One row per (parameter, level): ``nominal, empirical, lower, upper, flagged``.
    """
    import pandas as pd

    theta_true = np.asarray(theta_true)
    draws = np.asarray(draws)
    n, d = theta_true.shape
    names = names or [f"theta[{j}]" for j in range(d)]
    a = alpha / (len(levels) * d)
    rows = []
    for j in range(d):
        for lev in levels:
            lo_q, hi_q = np.quantile(draws[:, :, j], [(1 - lev) / 2, (1 + lev) / 2], axis=1)
            inside = int(((theta_true[:, j] >= lo_q) & (theta_true[:, j] <= hi_q)).sum())
            lo = stats.binom.ppf(a / 2, n, lev) / n
            hi = stats.binom.isf(a / 2, n, lev) / n
            emp = inside / n
            rows.append({"parameter": names[j], "nominal": lev, "empirical": emp, "lower": lo, "upper": hi,
                         "flagged": not (lo <= emp <= hi)})
    return pd.DataFrame(rows)


@dataclass
class C2STResult:
    """Classifier two-sample test.

    Attributes
    ----------
    accuracy : float
        Cross-validated accuracy (0.5 = indistinguishable, 1 = disjoint).
    pvalue : float
        One-sided binomial p-value of the number of right held-out predictions under Bin(n, 1/2).
    n : int
        Held-out predictions (2 × samples per class after balancing).
    fold_accuracy : list of float
    """

    accuracy: float
    pvalue: float
    n: int
    fold_accuracy: list = field(default_factory=list)

    def __repr__(self):
        return f"C2STResult(accuracy={self.accuracy:.3f}, pvalue={self.pvalue:.3g}, n={self.n})"


def c2st(x, y, n_folds=5, random_seed=None, hidden=64, epochs=200, lr=3e-3, max_per_class=2000) -> C2STResult:
    """Classifier two-sample test between samples ``x`` (n, d) and ``y`` (m, d).

    A two-hidden-layer torch MLP (``hidden`` units, full-batch Adam for ``epochs`` steps) is trained on
    ``n_folds - 1`` folds and scored on the held-out fold. Classes are balanced by subsampling to
    ``min(n, m, max_per_class)`` points each; features are standardised with the pooled moments.

    Returns
    -------
    C2STResult
    """
    import torch
    from torch import nn

    rng = np.random.default_rng(random_seed)
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    y = np.asarray(y, np.float32).reshape(len(y), -1)
    k = min(len(x), len(y), max_per_class)
    if k < 2 * n_folds:
        raise ValueError(f"c2st needs at least {2 * n_folds} points per sample, got {len(x)} and {len(y)}")
    x = x[rng.choice(len(x), k, replace=False)]
    y = y[rng.choice(len(y), k, replace=False)]
    z = np.concatenate([x, y])
    lab = np.concatenate([np.zeros(k), np.ones(k)]).astype(np.float32)
    mu, sd = z.mean(0), z.std(0)
    z = (z - mu) / np.where(sd > 0, sd, 1)
    perm = rng.permutation(2 * k)
    folds = np.array_split(perm, n_folds)
    correct, accs = 0, []
    torch_seed = int(rng.integers(2**31))
    for f in range(n_folds):
        test = folds[f]
        train = np.concatenate([folds[g] for g in range(n_folds) if g != f])
        torch.manual_seed(torch_seed + f)
        net = nn.Sequential(nn.Linear(z.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, 1))
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        zt, lt = torch.as_tensor(z[train]), torch.as_tensor(lab[train])
        for _ in range(epochs):
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(net(zt).squeeze(-1), lt)
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = (net(torch.as_tensor(z[test])).squeeze(-1) > 0).numpy()
        c = int((pred == (lab[test] > 0.5)).sum())
        correct += c
        accs.append(c / len(test))
    n = 2 * k
    p = float(stats.binom.sf(correct - 1, n, 0.5))
    return C2STResult(correct / n, p, n, accs)


@dataclass
class CalibrationReport:
    """SBC and coverage of a posterior estimator; ``flagged`` if any test rejects at level ``alpha``."""

    sbc: SBCResult
    coverage: object
    alpha: float

    @property
    def flagged(self) -> bool:
        return (not self.sbc.calibrated) or bool(self.coverage["flagged"].any())

    @property
    def reasons(self) -> list[str]:
        out = [f"SBC ranks of {n} not uniform (chi-square p = {p:.2g} < {self.alpha / len(self.sbc.names):.2g})"
               for n, p, f in zip(self.sbc.names, self.sbc.pvalue, self.sbc.flagged) if f]
        for _, r in self.coverage[self.coverage["flagged"]].iterrows():
            out.append(f"coverage of {r['parameter']} at {r['nominal']:.0%}: {r['empirical']:.1%} "
                       f"outside [{r['lower']:.1%}, {r['upper']:.1%}]")
        return out

    def __repr__(self):
        status = "FLAGGED: " + "; ".join(self.reasons) if self.flagged else "calibrated (no test rejects)"
        return f"<CalibrationReport {status}>"


def calibrate(estimator, spec, n_datasets=300, n_draws=199, design=None, priors=None, random_seed=None,
              alpha=0.01, levels=(0.5, 0.8, 0.9, 0.95)) -> CalibrationReport:
    """SBC (chi-square on ranks) and coverage on the same ``n_datasets`` prior-predictive datasets.

    SBC and coverage are tested at family-wise level ``alpha`` each (see the module docstring).
    """
    from .simulation import simulate_training_set

    if getattr(estimator, "kind", "") != "npe":
        raise TypeError("calibrate needs a posterior estimator (NPE or an Ensemble of NPE).")
    s1, s2 = seed_sequence(random_seed).spawn(2)
    ts = simulate_training_set(spec, n_datasets, design=design, priors=priors, random_seed=s1)
    draws = estimator.sample(ts, n_draws, random_seed=s2)
    ranks = sbc_ranks(ts.theta_unc, draws)
    chi2, p, b = rank_uniformity(ranks, n_draws)
    names = list(ts.transform.unconstrained_names)
    res = SBCResult(names, ranks, n_draws, b, chi2, p, alpha)
    cov = coverage(ts.theta_unc, draws, levels, names, alpha)
    return CalibrationReport(res, cov, alpha)
