"""Verdicts per direction and per parameter, with documented, overridable thresholds.

Order of precedence (per parameter):

1. **not converged** — R-hat, ESS or divergences fail (:mod:`.convergence`). Reported first, so
   sampling trouble is never read as non-identifiability.
2. **prior-data conflict** — the posterior median lies in the prior's outer ``conflict_tail``
   tails (prior CDF < 0.005 or > 0.995 by default); a simple version of Evans & Moshonov (2006).
3. From the directions (prior-whitened eigen-decomposition, :mod:`.ridges`): with ``w_ij`` the
   share of parameter i's prior variance along direction j and ``r_j`` its variance ratio,
   ``ridge weight = Σ w_ij over ridge directions (r_j ≥ ridge)``:

   * **identified** — contraction ≥ ``identified`` and ridge weight < ``weight_tol``;
   * **not identified** (prior-determined) — ridge weight ≥ 1 − ``weight_tol``;
   * **identified only in combination** — ridge weight ≥ ``weight_tol`` and the weight on
     identified directions (r_j ≤ 1 − ``identified``) ≥ ``weight_tol``;
   * **weakly identified** — everything else (the data inform it, the prior still shapes it).

4. **Model-based evidence** (when ``diagnose`` has the model): the per-draw Fisher null spaces
   (:func:`combine_local_evidence`). A parameter that loads on a locally uninformed direction at more
   than half of the Fisher draws (fraction reported with its binomial MCSE) is not individually
   identified, whatever the linear covariance of the draws says — this catches curved ridges
   (p1·p2 on the probability scale) and bounded ones (a piece of a hyperbola cut off by 0 < p < 1,
   whose marginal contraction can exceed 0.5). Its verdict becomes *not identified*, *identified only
   in combination* (naming the checked invariant, e.g. ``p1·p2``) or *weakly identified*. This
   evidence is used only when no parameter is left *not converged* without a structural explanation
   (the Fisher draws are posterior draws; until they are trustworthy the summary says it is unused).
5. **Not converged spreads along ridges**: a parameter on a draw-based ridge with a non-converged
   one is not converged either. A structural explanation of the failure from
   ``diagnostics.trouble`` (divergences along a null direction, swap-symmetric modes) replaces
   *not converged* by the structural verdict it names.

6. **Identified up to relabelling** — when the chains disagree because they sit in mirror solutions
   of a discrete symmetry of the likelihood (a swap of parameter blocks, checked on the model:
   :mod:`.symmetry`), the draws are relabelled to one labelling and diagnosed again; a parameter the
   symmetry moves that is then *identified* gets this verdict, with the symmetry named
   ("(A1, k1) ↔ (A2, k2)") and the fix (an ordering constraint). Other verdicts of moved parameters
   are those of the relabelled draws, with the symmetry in their reason.

Table, :attr:`Diagnosis.ridges` and the summary are all built from these final verdicts
(``Diagnosis.consistency_problems()`` lists any disagreement; tests assert it is empty).

Direction verdicts: ratio ≥ ``ridge`` → not identified; ratio ≤ 1 − ``identified`` → identified;
otherwise weakly identified. The defaults read a contraction of 0.5 (half the prior variance
removed) as identified and 0.2 as the edge of a ridge. Contraction has no universal cut-off
(Schad, Betancourt & Vasishth 2021 read it on a continuous scale); these are conventions, stated in
every report and overridable through :class:`Thresholds`. With the default 4000 draws the standard
error of a variance ratio near 1 is about sqrt(2/ESS) ≈ 0.03, so a true ridge (r = 1) sits far above
0.8 and the weakly identified control (r = 2/3) far from both cut-offs.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


__all__ = ["Verdict", "Explanation", "Thresholds", "direction_verdict", "parameter_verdicts", "combine_local_evidence",
           "VERDICTS"]


class Verdict(enum.StrEnum):
    """The verdicts, in order of precedence. ``str``-valued: ``Verdict.IDENTIFIED == "identified"``,
    so tables, CSV files and comparisons with plain strings keep working."""

    NOT_CONVERGED = "not converged"
    CONFLICT = "prior-data conflict"
    IDENTIFIED = "identified"
    RELABELLING = "identified up to relabelling"
    COMBINATION = "identified only in combination"
    WEAK = "weakly identified"
    NOT_IDENTIFIED = "not identified"


VERDICTS = tuple(Verdict)


@dataclass
class Explanation:
    """A structural cause that replaces a parameter's *not converged* (from :mod:`.trouble`).

    Attributes
    ----------
    verdict : Verdict
        The verdict it implies.
    reason : str
        Full reason, shown in the table.
    kind : str or None
        ``"curved-ridge"`` (a named invariant converged while its parameters did not), ``"ridge"`` (R-hat
        failures and divergences concentrated along a Fisher null direction), or None (a plug-in's).
    combination : str or None
        The identified combination, when named (``"p1·p2"``).
    summary : str
        A short clause for :meth:`Diagnosis.summary` (``"only p1·p2 is identified; the sampler struggles
        along the ridge of constant p1·p2"``).
    sampler_struggles : bool
        The failure is the sampler struggling along a ridge of non-identification (more draws will not
        help): the flag the summary and the report read, instead of matching words in ``reason``.
    """

    verdict: Verdict
    reason: str = ""
    kind: str | None = None
    combination: str | None = None
    summary: str = ""
    sampler_struggles: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Every cut-off the verdicts use (see module docstring for sources)."""

    identified: float = 0.5
    ridge: float = 0.8
    weight_tol: float = 0.1
    conflict_tail: float = 0.005
    overlap_weak: float = 0.35  # Garrett & Zeger 2000; shown, not used in verdicts
    rhat_max: float = 1.01
    ess_min_per_chain: float = 100.0
    bfmi_min: float = 0.3
    max_divergences: int = 0

    def as_dict(self):
        return asdict(self)


def direction_verdict(ratio: float, th: Thresholds) -> Verdict:
    if ratio >= th.ridge:
        return Verdict.NOT_IDENTIFIED
    if ratio <= 1.0 - th.identified:
        return Verdict.IDENTIFIED
    return Verdict.WEAK


def parameter_verdicts(names, contraction_unc, weights, ratios, prior_cdf_at_median, conv, th: Thresholds):
    """Verdict and a one-line reason per parameter component.

    Parameters
    ----------
    names : list of str
    contraction_unc : ndarray (d,)
        Contraction in unconstrained coordinates.
    weights : ndarray (d, d)
        ``w_ij`` from :func:`bayesid.diagnostics.ridges.parameter_weights`.
    ratios : ndarray (d,)
        Direction variance ratios.
    prior_cdf_at_median : ndarray (d,)
        Prior CDF evaluated at the posterior median.
    conv : ConvergenceReport
    th : Thresholds
    """
    ridge = ratios >= th.ridge
    ident = ratios <= 1.0 - th.identified
    out = []
    for i, n in enumerate(names):
        rw = float(weights[i, ridge].sum())
        iw = float(weights[i, ident].sum())
        c = float(contraction_unc[i])
        if conv.problems or n in conv.parameter_problems:
            why = "; ".join(conv.problems + conv.parameter_problems.get(n, []))
            out.append((Verdict.NOT_CONVERGED, why, rw))
        elif not th.conflict_tail <= prior_cdf_at_median[i] <= 1.0 - th.conflict_tail:
            out.append((Verdict.CONFLICT,
                        f"posterior median at prior quantile {prior_cdf_at_median[i]:.4f}", rw))
        elif c >= th.identified and rw < th.weight_tol:
            out.append((Verdict.IDENTIFIED, f"contraction {c:.2f}, no ridge", rw))
        elif rw >= 1.0 - th.weight_tol:
            out.append((Verdict.NOT_IDENTIFIED, f"{rw:.0%} of its prior variance lies along ridges", rw))
        elif rw >= th.weight_tol and iw >= th.weight_tol:
            out.append((Verdict.COMBINATION,
                        f"{rw:.0%} of its prior variance along ridges, {iw:.0%} along identified directions",
                        rw))
        else:
            out.append((Verdict.WEAK, f"contraction {c:.2f}", rw))
    return out


def combine_local_evidence(verdicts, names, fraction, fraction_se, null_share, informed_share, ridge_of,
                           th: Thresholds, majority: float = 0.5):
    """Let the model's local evidence (per-draw Fisher null spaces) enter the parameter verdicts.

    The rule (one for every parameter, applied after the draw-based rule of
    :func:`parameter_verdicts`):

    * ``fraction`` is the share of the Fisher draws at which the parameter loads (share of its prior
      variance ≥ ``weight_tol``) on a locally uninformed direction (whitened information below the
      ``lambda_tol`` of :func:`~bayesid.diagnostics.fisher.fisher_information`, i.e. a predicted
      variance ratio ≥ 0.8); ``fraction_se = sqrt(f(1 − f)/S)`` its binomial MCSE.
    * When ``fraction > majority`` (at most draws) the parameter is **not individually
      identified**, whatever the linear posterior covariance of the draws says (a curved or bounded
      ridge keeps the draws' linear variance small): a draw-based *identified* or *weakly identified*
      becomes

      - **not identified** when on average ≥ 1 − ``weight_tol`` of its prior variance lies in the
        null space (nothing in the data touches it);
      - **identified only in combination** when a named combination through it passed the check
        against the draws, or ≥ ``weight_tol`` of its prior variance lies along locally identified
        directions (whitened information ≥ 1, ratio ≤ 0.5);
      - **weakly identified** otherwise.
    * Not converged, prior–data conflict, and the draw-based *not identified* / *only in
      combination* (the draws see the ridge themselves) are kept.

    Parameters
    ----------
    verdicts : list of (verdict, reason, ridge_weight)
        From :func:`parameter_verdicts`.
    names : list of str
    fraction, fraction_se, null_share, informed_share : ndarray (d,)
        Per parameter; ``null_share`` / ``informed_share`` averaged over the Fisher draws.
    ridge_of : dict of str -> LocalRidge
        The local ridge each locally uninformed parameter belongs to.
    th : Thresholds
    majority : float

    Returns
    -------
    list of (verdict, reason, ridge_weight, evidence)
        ``evidence`` is ``"draws"`` or ``"draws+model"`` (the local rule changed or confirmed it).
    """
    out = []
    for i, n in enumerate(names):
        v, why, rw = verdicts[i][:3]
        f, se = float(fraction[i]), float(fraction_se[i])
        if len(verdicts[i]) > 3 and verdicts[i][3] != "draws":  # already settled (e.g. by the sampler-trouble test)
            out.append(verdicts[i])
            continue
        if not f > majority or v in (Verdict.NOT_CONVERGED, Verdict.CONFLICT):
            out.append((v, why, rw, "draws"))
            continue
        r = ridge_of.get(n)
        where = f"locally uninformed at {f:.0%} ± {se:.0%} of draws"
        if r is not None and len(r.parameters) > 1:
            shape = "curved " if r.curved else ""
            where += f" ({shape}ridge: {r.label} moves freely"
            if r.curved and r.straight:
                where += f", straight in {_coords(r.coordinates)}"
            where += ")"
        combos = [c for c in (r.combinations if r is not None else []) if _involves(c, n)]
        if v in (Verdict.NOT_IDENTIFIED, Verdict.COMBINATION):
            out.append((v, f"{why}; {where}", rw, "draws+model"))
        elif float(null_share[i]) >= 1.0 - th.weight_tol:
            out.append((Verdict.NOT_IDENTIFIED, f"not individually identified: {where}; "
                        f"the data do not inform it (draw contraction {why})", rw, "draws+model"))
        elif combos:
            out.append((Verdict.COMBINATION, f"not individually identified: {where}; identified only as "
                        + ", ".join(f"{c.name} (contraction {c.contraction:.2f} ± {c.contraction_se:.2f})"
                                    for c in combos), rw, "draws+model"))
        elif float(informed_share[i]) >= th.weight_tol:
            out.append((Verdict.COMBINATION, f"not individually identified: {where}; the data inform a "
                        "combination of it, but no simple name passed the check against the draws",
                        rw, "draws+model"))
        else:
            out.append((Verdict.WEAK, f"not individually identified: {where}", rw, "draws+model"))
    return out


def _coords(coords: dict) -> str:
    words = {"log": "log", "natural": "natural", "logit": "logit", "log1m": "log(1 − ·)",
             "abslog": "log", "unconstrained": "unconstrained"}
    return ", ".join(f"{words.get(c, c)} {n}" for n, c in coords.items())


def _involves(comb, name: str) -> bool:
    return name in (getattr(comb, "parameters", None) or [])
