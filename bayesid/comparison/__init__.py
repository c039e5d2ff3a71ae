"""Neural estimators against the MCMC answer (``bayesid.compare``), one module per concept.

* :mod:`.reference` — reference directions from a model's known answer, as diagnostics
  :class:`~bayesid.diagnostics.Direction` / :class:`~bayesid.diagnostics.Combination` objects;
* :mod:`.metrics` — array-level metrics (error ratios with bootstrap intervals, ridge share, neural
  verdicts with cut-offs from :class:`~bayesid.diagnostics.Thresholds`);
* :mod:`.result` — :class:`NeuralComparison`;
* :mod:`.compare` — :func:`compare`;
* :mod:`.explain` — explanations along the directions.

Its plots and HTML are in the presentation layer, :mod:`bayesid.report.neural`.
``bayesid.compare(diagnosis, estimator, ...)`` is :func:`compare`.
"""

from .compare import compare
from .explain import direction_functionals, explanation_study, noncentred_quantity
from .metrics import PRIOR_RATIO, RECOVERED_RATIO, neural_verdict, ratio_ci, ridge_share
from .reference import ReferenceDirections, reference_from_known_answer
from .result import NeuralComparison

__all__ = ["compare", "NeuralComparison", "ReferenceDirections", "reference_from_known_answer",
           "direction_functionals", "explanation_study", "noncentred_quantity", "neural_verdict", "ratio_ci",
           "ridge_share", "RECOVERED_RATIO", "PRIOR_RATIO"]
