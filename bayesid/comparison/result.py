"""The result of :func:`bayesid.compare`: what an amortized estimator recovers, set beside what MCMC
says the data identify. Plots and HTML live in the presentation layer (:mod:`bayesid.report.neural`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesid.diagnostics.verdicts import Verdict

__all__ = ["NeuralComparison"]


@dataclass
class NeuralComparison:
    """What an amortized estimator recovers, set beside what MCMC says the data identify.

    Attributes
    ----------
    parameters : pandas.DataFrame
        Per unconstrained parameter: ``rmse`` (unconstrained), ``rmse_natural``, ``error_ratio``
        (MSE / prior variance) with ``ratio_lower/upper`` (bootstrap 95 %), ``neural_contraction``
        (``1 − error_ratio``), ``npe_contraction`` (NPE only), ``mcmc_contraction`` and ``mcmc_verdict``
        (from the diagnosis), ``ensemble_spread`` (sd across members / prior sd), ``neural_verdict``,
        and ``ridge_share``: the fraction of the error variance explained (least squares) by the true
        coordinates along the non-identified directions — ≈ 1 for a parameter that is only identified in
        combination (its error *is* the ridge), ≈ 0 (``χ²_r / n``) for an identified one.
    directions : pandas.DataFrame
        The same per diagnosis direction (errors projected on it), with ``mcmc_ratio``.
    combinations : pandas.DataFrame
        The same for each identified combination (``a + b``, ``a·b``).
    held_out : pandas.DataFrame
        Per held-out dataset refitted with MCMC (``n_mcmc``): seconds, C2ST accuracy/p of the NPE
        against the MCMC draws, distance of the neural estimate from the MCMC mean.
    history : list of dict
        Training-loss curves (one per ensemble member).
    converged : bool
        Whether training converged (validation loss flat, see ``NeuralEstimator.converged``).
    truth_w, estimate_w : ndarray (n_test, k)
        True and estimated whitened coordinates along each direction (for the scatter plots).
    thresholds : Thresholds
        The cut-offs the neural verdicts used (the diagnosis' own).
    """

    parameters: pd.DataFrame
    directions: pd.DataFrame
    combinations: pd.DataFrame
    held_out: pd.DataFrame
    history: list
    converged: bool
    truth_w: np.ndarray
    estimate_w: np.ndarray
    model: str = ""
    design: str = ""
    estimator: str = ""
    n_test: int = 0
    source: str = "diagnosis"
    timings: dict = field(default_factory=dict)
    thresholds: object = None

    @property
    def title(self) -> str:
        return f"Neural estimator vs MCMC: {self.model} / {self.design}"

    # -------------------------------------------------------------- text
    def summary(self) -> str:
        """Plain-language summary: converged vs identified, direction by direction."""
        lines = [f"{self.estimator} on {self.model} / {self.design}, {self.n_test} held-out datasets: "
                 + ("training converged (validation loss flat)." if self.converged
                    else "training has NOT converged (validation loss still falling).")]
        for _, r in self.directions.iterrows():
            lines.append(f"  direction {r['label']!s} (MCMC: {r['mcmc_verdict']}): error variance = "
                         f"{r['error_ratio']:.2f} × prior [{r['ratio_lower']:.2f}, {r['ratio_upper']:.2f}] → "
                         f"{r['neural_verdict']}")
        for _, r in self.combinations.iterrows():
            lines.append(f"  combination {r['name']}: error variance = {r['error_ratio']:.3f} × prior → "
                         f"{r['neural_verdict']}")
        ridge = self.directions[self.directions["mcmc_verdict"] == Verdict.NOT_IDENTIFIED]
        if len(ridge) and self.converged:
            lines.append("  The network converged, yet along the non-identified direction(s) its error is as "
                         "large as the prior spread: it returns the prior mean there, whatever the truth.")
        return "\n".join(lines)

    def __repr__(self):
        return f"<NeuralComparison>\n{self.summary()}"

    # -------------------------------------------------------------- plots (presentation layer)
    def plot_loss(self, ax=None):
        """Training and validation loss per epoch (every ensemble member)."""
        from bayesid.report.neural import plot_loss

        return plot_loss(self, ax=ax)

    def plot_directions(self, ax=None):
        """Neural error ratio per direction (with bootstrap CI) beside MCMC's posterior/prior ratio."""
        from bayesid.report.neural import plot_directions

        return plot_directions(self, ax=ax)

    def plot_parameters(self, ax=None):
        """Neural contraction vs MCMC contraction per parameter."""
        from bayesid.report.neural import plot_parameters

        return plot_parameters(self, ax=ax)

    def plot_errors(self, axes=None):
        """Estimate against truth along each direction."""
        from bayesid.report.neural import plot_errors

        return plot_errors(self, axes=axes)

    def plot(self):
        """All panels in one figure."""
        from bayesid.report.neural import plot_all

        return plot_all(self)

    # -------------------------------------------------------------- HTML
    def to_html(self, figures: bool = True) -> str:
        """An HTML fragment (one section of a page): verdict sentences, tables and figures."""
        from bayesid.report.neural import neural_html

        return neural_html(self, figures=figures)

    def _repr_html_(self):
        return self.to_html(figures=False)
