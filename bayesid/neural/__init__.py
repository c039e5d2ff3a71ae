"""Amortized neural estimators trained on a model's simulator (``pip install bayesid[neural]``).

A network trained on simulations converges whether or not the data identify the parameters; this
package trains such networks and measures, against the MCMC diagnostics, where they cannot work:

* :func:`simulate_training_set` — prior draws → ``spec.simulate`` (batched), parameters in the
  unconstrained coordinates PyMC samples in (``log`` for positive priors, ``logit`` for intervals);
* :class:`PointEstimator` — regression of the parameters with a mean-squared-error loss;
* :class:`NPE` — neural posterior estimation with a conditional normalizing flow (zuko);
* :class:`Ensemble` — the same estimator trained under several random seeds;
* :func:`sbc`, :func:`coverage`, :func:`c2st`, :func:`calibrate` — calibration checks;
* :func:`saliency`, :func:`intervention_study` — explanations versus predictions.

The comparison with the MCMC answer is :func:`bayesid.compare.compare`.

Examples
--------
>>> import bayesid, bayesid.compare                                    # doctest: +SKIP
>>> from bayesid.neural import Ensemble, PointEstimator, NPE, calibrate
>>> ens = Ensemble(PointEstimator(epochs=15), n_members=3, random_seed=0).fit("toy.additive",
...                                                                        n_simulations=10_000)
>>> cmp = bayesid.compare(diagnosis, ens, n_test=500, random_seed=1)    # or diagnosis=None: known answer
>>> cmp.directions[["label", "mcmc_verdict", "error_ratio", "neural_verdict"]]
>>> npe = NPE(epochs=20, random_seed=0).fit("toy.identified", n_simulations=10_000)
>>> calibrate(npe, "toy.identified", n_datasets=300, random_seed=2)     # SBC + coverage
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
    import zuko  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "bayesid.neural needs PyTorch and zuko, which are not installed "
        f"({err}). Install the optional extra: pip install 'bayesid[neural]'."
    ) from err

from .calibration import C2STResult, CalibrationReport, SBCResult, c2st, calibrate, coverage, sbc
from .estimators import NPE, Ensemble, NeuralEstimator, PointEstimator, load
from .explain import InterventionStudy, intervention_study, saliency
from .simulation import ParameterTransform, TrainingSet, simulate_training_set

__all__ = [
    "simulate_training_set", "TrainingSet", "ParameterTransform",
    "NeuralEstimator", "PointEstimator", "NPE", "Ensemble", "load",
    "sbc", "coverage", "c2st", "calibrate", "SBCResult", "C2STResult", "CalibrationReport",
    "saliency", "intervention_study", "InterventionStudy",
]
