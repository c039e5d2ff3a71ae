"""Convergence diagnostics through arviz-stats: R-hat, bulk/tail ESS, divergences, E-BFMI.

Thresholds follow Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021): R-hat ≤ 1.01 and a bulk and
tail ESS of at least 100 per chain; any divergent transition signals biased exploration (Betancourt
2017); E-BFMI below 0.3 signals poor energy exploration (Betancourt 2016).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ConvergenceReport", "convergence"]


@dataclass
class ConvergenceReport:
    """Per-parameter R-hat and ESS, fit-level divergences and E-BFMI, and what failed."""

    rhat: dict = field(default_factory=dict)
    ess_bulk: dict = field(default_factory=dict)
    ess_tail: dict = field(default_factory=dict)
    divergences: int = 0
    n_draws: int = 0
    chains: int = 0
    bfmi: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    parameter_problems: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.parameter_problems


def convergence(tree, draws, rhat_max: float = 1.01, ess_min_per_chain: float = 100.0,
                bfmi_min: float = 0.3, max_divergences: int = 0) -> ConvergenceReport:
    """Compute convergence diagnostics for the parameters in ``draws`` (a ParameterDraws).

    Parameters
    ----------
    rhat_max, ess_min_per_chain, bfmi_min, max_divergences
        Thresholds (see module docstring for their sources).
    """
    import arviz_stats as azs

    q = draws.posterior  # (chains, draws, d)
    chains, n, d = q.shape
    rep = ConvergenceReport(n_draws=chains * n, chains=chains)
    # arviz-stats' array interface: sample dims first
    rhat = np.atleast_1d(azs.rhat(q, chain_axis=0, draw_axis=1)) if chains > 1 else np.full(d, np.nan)
    eb = np.atleast_1d(azs.ess(q, chain_axis=0, draw_axis=1, method="bulk"))
    et = np.atleast_1d(azs.ess(q, chain_axis=0, draw_axis=1, method="tail", prob=(0.05, 0.95)))
    ess_min = ess_min_per_chain * chains
    for j, name in enumerate(draws.names):
        rep.rhat[name], rep.ess_bulk[name], rep.ess_tail[name] = float(rhat[j]), float(eb[j]), float(et[j])
        probs = []
        if chains > 1 and not rhat[j] <= rhat_max:
            probs.append(f"R-hat {rhat[j]:.3f} > {rhat_max}")
        if eb[j] < ess_min:
            probs.append(f"bulk ESS {eb[j]:.0f} < {ess_min:.0f}")
        if et[j] < ess_min:
            probs.append(f"tail ESS {et[j]:.0f} < {ess_min:.0f}")
        if probs:
            rep.parameter_problems[name] = probs
    if chains == 1:
        rep.problems.append("a single chain: R-hat cannot be computed; run ≥ 4 chains")
    ss = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    if ss is not None:
        div = ss.get("diverging")
        if div is not None:
            rep.divergences = int(np.asarray(div.values).sum())
            if rep.divergences > max_divergences:
                rep.problems.append(
                    f"{rep.divergences} divergent transition(s): the sampler could not explore part of the "
                    "posterior; reparametrize (e.g. non-centered) or raise target_accept"
                )
        if "energy" in ss:
            e = np.asarray(ss["energy"].transpose("chain", "draw").values)
            bf = np.sum(np.diff(e, axis=1) ** 2, axis=1) / np.sum((e - e.mean(axis=1, keepdims=True)) ** 2, axis=1)
            rep.bfmi = [float(b) for b in bf]
            low = [i for i, b in enumerate(bf) if b < bfmi_min]
            if low:
                rep.problems.append(f"E-BFMI below {bfmi_min} in chain(s) {low}")
    return rep
