"""Prior and likelihood sensitivity: a thin wrapper over ArviZ's power-scaling ``psense``.

Kallioinen, Paananen, Bürkner & Vehtari (2023). psense needs ``log_prior`` and ``log_likelihood``
groups (``bayesid.fit`` adds both). It answers a per-parameter question — does the marginal move when
the prior or the likelihood is power-scaled? — and says nothing about directions; bayesid shows it
next to its own verdicts.
"""

from __future__ import annotations

import contextlib
import io

import pandas as pd

__all__ = ["prior_sensitivity"]


def prior_sensitivity(tree, var_names, names=None) -> tuple[pd.DataFrame | None, str]:
    """Run ``arviz_stats.psense_summary`` on ``var_names``.

    Returns
    -------
    (DataFrame or None, str)
        Columns ``prior``, ``likelihood``, ``diagnosis`` indexed like ``names`` (component names),
        or None and the reason it could not be computed.
    """
    missing = [g for g in ("log_prior", "log_likelihood") if g not in tree.children]
    if missing:
        return None, (f"prior sensitivity skipped: the tree has no {' / '.join(missing)} group "
                      "(bayesid.fit adds them; otherwise pymc.stats.compute_log_prior / compute_log_likelihood)")
    import arviz_stats as azs

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            df = azs.psense_summary(tree, var_names=list(var_names))
    except Exception as err:  # psense can fail on exotic trees; the rest of the diagnosis still stands
        return None, f"prior sensitivity failed: {type(err).__name__}: {err}"
    df = pd.DataFrame(df)
    if names is not None and len(df) == len(names):
        df.index = list(names)
    return df, ""
