"""BSLIP walking model family (``gait.bslip``).

* :mod:`.simulator` — event-accurate numba simulator with exact forward sensitivities;
* :mod:`.op` — the pytensor Op (with a numba implementation) used by the PyMC program;
* :mod:`.model` — the :class:`BSLIP` model spec: designs, priors, known answers.
"""

from .model import BSLIP, NonViableGaitError
from .simulator import STATUS_MESSAGES, simulate_walks

__all__ = ["BSLIP", "NonViableGaitError", "simulate_walks", "STATUS_MESSAGES"]
