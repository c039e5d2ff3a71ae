"""Identifiability diagnostics (``bayesid.diagnostics``).

Each concept has its own module with a plain-numpy core; :func:`diagnose` is the thin DataTree layer
that runs them all and returns a :class:`Diagnosis`.
"""

from .combinations import Combination, combinations_orthogonal_to, name_combination
from .contraction import contraction, zscore
from .convergence import convergence
from .diagnosis import Diagnosis, Direction, diagnose
from .draws import BadDrawsError, MissingGroupError, extract_draws
from .overlap import overlap
from .ridges import posterior_directions, whitening
from .verdicts import Thresholds, Verdict

__all__ = ["diagnose", "Diagnosis", "Direction", "Combination", "Thresholds", "Verdict", "contraction", "zscore",
           "overlap", "convergence", "whitening", "posterior_directions", "name_combination",
           "combinations_orthogonal_to", "extract_draws", "MissingGroupError", "BadDrawsError"]
