"""bayesid's own documented errors.

Every error bayesid raises on purpose for bad input derives from :class:`BayesidError` (itself a
``ValueError``, so ``except ValueError`` keeps working). The message says what was wrong and what to
do about it. Anything else escaping bayesid is a bug worth reporting.

========================  =====================================================================
class                     raised when
========================  =====================================================================
``BayesidError``          base class
``CacheError``            a ``fit(cache=...)`` path is unreadable, unwritable or not a bayesid cache
``EstimatorFileError``    a neural estimator file is not a bayesid estimator file or is corrupt
``ModelMismatchError``    an estimator is used with a diagnosis / data of another model, prior or design
``BadInputError``         an argument has the wrong shape, keys or values (names listed in the message)
========================  =====================================================================

``bayesid.diagnostics.MissingGroupError`` and ``BadDrawsError`` (DataTrees that cannot be
diagnosed) and ``bayesid.models.BadDataError`` are documented errors too; the first two derive from
:class:`BayesidError`.
"""

from __future__ import annotations

__all__ = ["BayesidError", "CacheError", "EstimatorFileError", "ModelMismatchError", "BadInputError"]


class BayesidError(ValueError):
    """Base class of bayesid's documented errors (bad input, with a message saying what to do)."""


class CacheError(BayesidError):
    """A ``bayesid.fit`` cache path that cannot be read, written, or is not a bayesid cache."""


class EstimatorFileError(BayesidError):
    """Not a bayesid estimator file, or a corrupt / truncated one."""


class ModelMismatchError(BayesidError):
    """An estimator is applied to another model, prior or design than it was trained on."""


class BadInputError(BayesidError):
    """An argument with wrong names, shape or values."""
