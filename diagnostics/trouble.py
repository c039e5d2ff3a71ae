"""Is a sampling failure caused by non-identification? (numpy core; partial: ridge test only).

:func:`ridge_trouble` projects the sampler's trouble onto the model's uninformed directions (Fisher
null space, prior-whitened coordinates) and onto their complement (the identified directions):

* between-chain disagreement: R-hat of the draws projected on each basis vector;
* divergences: standardized shift of the divergent draws' mean from the mean of all draws along
  each basis vector, ``t = (mean_div − mean_all) / (sd_all / sqrt(n_div))``.

The trouble is a **ridge** when some null projection fails (R-hat > ``rhat_max`` or ``|t| > t_max``)
and the failure along the identified projections is ``concentration`` times smaller; otherwise ``kind``
is None and the verdict stays "not converged". Curved ridges are tested through their named invariant
(:func:`sampler_trouble`). Chains in mirror modes of a discrete symmetry are :mod:`.symmetry`'s
question (asked by :func:`bayesid.diagnose` before this module's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Trouble", "TroubleReport", "ridge_trouble", "divergence_scatter", "sampler_trouble"]


@dataclass
class Trouble:
    """Structural cause of a sampling failure.

    Attributes
    ----------
    kind : {"ridge", "swap", None}
        None: no structural cause found ("not converged" stands).
    parameters : list of str
        Parameters loading on the troubled direction(s).
    combination : str or None
        Name of the identified combination, when known (filled by the caller).
    evidence : dict
        ``rhat_null``, ``rhat_identified`` (max per-projection R-hat), ``t_null``, ``t_identified``
        (max |t| of divergent draws), ``n_divergent``.
    advice : str
    """

    kind: str | None
    parameters: list = field(default_factory=list)
    combination: str | None = None
    evidence: dict = field(default_factory=dict)
    advice: str = ""


@dataclass
class TroubleReport:
    """What :func:`sampler_trouble` explains.

    Attributes
    ----------
    explanations : dict of str -> Explanation
        Per parameter whose *not converged* a structural cause replaces (verdict and reason).
    resolved : list of str
        Fit-level convergence problems (the divergence message of :mod:`.convergence`) that the ridges
        explain: :func:`bayesid.diagnose` recomputes the verdicts without them.
    notes : dict of str -> Explanation
        Per parameter on a ridge the resolved problem concerns: the clause added to its reason (its verdict
        is the diagnosis' own, ``Explanation.verdict`` is None).
    evidence : dict
    """

    explanations: dict = field(default_factory=dict)
    resolved: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)


def divergence_scatter(posterior_unc, white, divergent, t_max: float = 4.0, tail: float = 5e-4) -> dict:
    """Are the divergent transitions scattered through the posterior, or concentrated in one place?

    In prior-whitened coordinates, along each principal axis of the posterior and each coordinate axis:

    * the mean shift ``t = (mean_div − mean_all) / (sd_all / sqrt(n_div))`` must stay within ``t_max``
      (four standard errors: with 2d tests a chance exceedance has probability ≤ 2d·6e-5);
    * every divergent draw must lie inside the central ``1 − 2·tail`` of the draws along every principal
      axis (a single divergence deep in a funnel's neck is caught even when there are too few for the mean
      test; a scattered divergence fails this by chance with probability ≤ 2·tail·d).

    A funnel's divergences sit in its neck (small scale parameter: far out along it); those of a sampler
    crossing a long, narrow ridge fall anywhere along it.

    Returns
    -------
    dict
        ``n_divergent``, ``t_max`` (largest |t|), ``outside`` (divergent draws outside the central range),
        ``scattered`` (bool; False when there are none).
    """
    q = np.asarray(posterior_unc, float)
    d = q.shape[-1]
    div = np.asarray(divergent, bool).reshape(-1)
    nd = int(div.sum())
    if nd == 0:
        return {"n_divergent": 0, "t_max": 0.0, "scattered": False}
    z = white.whiten(q.reshape(-1, d))
    _, axes = np.linalg.eigh(np.atleast_2d(np.cov(z, rowvar=False)))
    proj = np.concatenate([z @ axes, z], axis=1)
    sd = proj.std(axis=0, ddof=1)
    t = (proj[div].mean(axis=0) - proj.mean(axis=0)) / (np.where(sd > 0, sd, 1.0) / np.sqrt(nd))
    tm = float(np.abs(t).max())
    pa = proj[:, :d]
    lo, hi = np.quantile(pa, tail, axis=0), np.quantile(pa, 1.0 - tail, axis=0)
    outside = int(((pa[div] < lo) | (pa[div] > hi)).any(axis=1).sum())
    return {"n_divergent": nd, "t_max": tm, "outside": outside, "scattered": bool(tm <= t_max and outside == 0)}


def _rhat(x):
    import arviz_stats as azs

    return float(azs.rhat(x, chain_axis=0, draw_axis=1))


def ridge_trouble(posterior_unc, white, null_vectors, names, divergent=None, rhat_max: float = 1.01,
                  t_max: float = 4.0, loading_tol: float = 0.15, concentration: float = 5.0) -> Trouble:
    """Is the sampler's trouble concentrated along uninformed directions?

    Parameters
    ----------
    posterior_unc : ndarray (chains, draws, d)
        Unconstrained posterior draws.
    white : Whitening
        Prior whitening (same component order as ``names``).
    null_vectors : ndarray (d, k)
        Uninformed directions in whitened coordinates (e.g. Fisher eigenvectors with λ < tol).
    names : list of str
    divergent : ndarray (chains, draws) of bool, optional
    rhat_max, t_max : float
        Failure cut-offs for a projection (R-hat as in :mod:`.convergence`; ``t_max`` standard errors).
    concentration : float
        How many times larger the failure along the null directions must be than along the identified
        ones (R-hat excess over 1, or divergence shift) for the trouble to count as concentrated.
    loading_tol : float
        Displacement loading (max-normalised) for a parameter to count as on the ridge.
    """
    q = np.asarray(posterior_unc, float)
    C, N, d = q.shape
    null = np.atleast_2d(np.asarray(null_vectors, float).reshape(d, -1))
    if null.shape[1] == 0:
        return Trouble(None, evidence={"reason": "no uninformed direction"})
    qn, _ = np.linalg.qr(null)
    full, _ = np.linalg.qr(np.concatenate([qn, np.eye(d)], axis=1))
    basis = full[:, :d]
    k = qn.shape[1]
    z = white.whiten(q.reshape(-1, d)) @ basis
    zc = z.reshape(C, N, d)
    rh = np.array([_rhat(zc[:, :, j]) for j in range(d)]) if C > 1 else np.full(d, np.nan)
    t = np.zeros(d)
    nd = 0
    if divergent is not None:
        div = np.asarray(divergent, bool).reshape(-1)
        nd = int(div.sum())
        if nd:
            t = (z[div].mean(0) - z.mean(0)) / (z.std(0, ddof=1) / np.sqrt(nd))
    bad = (rh > rhat_max) | (np.abs(t) > t_max)
    ev = {"rhat_null": float(np.nanmax(rh[:k])) if C > 1 else np.nan,
          "rhat_identified": float(np.nanmax(rh[k:])) if C > 1 and k < d else np.nan,
          "t_null": float(np.abs(t[:k]).max()), "t_identified": float(np.abs(t[k:]).max()) if k < d else 0.0,
          "n_divergent": nd}
    # concentrated: the null projections fail and the identified ones' excess is `concentration`
    # times smaller (identified projections of converged chains fluctuate around R-hat 1.005-1.01)
    ex_null = np.nanmax(np.r_[rh[:k] - 1.0, 0.0]) if C > 1 else 0.0
    ex_id = np.nanmax(np.r_[rh[k:] - 1.0, 0.0]) if C > 1 else 0.0
    rh_ok = ex_null <= rhat_max - 1.0 or ex_id * concentration <= ex_null
    t_ok = not (np.abs(t[k:]) > t_max).any() or np.abs(t[:k]).max() >= concentration * np.abs(t[k:]).max()
    if bad[:k].any() and rh_ok and t_ok:
        disp = white.chol @ qn
        disp = disp / np.abs(disp).max(axis=0, keepdims=True)
        params = [names[i] for i in range(d) if np.abs(disp[i]).max() >= loading_tol]
        return Trouble("ridge", params, None, ev,
                       f"The sampler struggles along a direction the data do not inform (moving "
                       f"{', '.join(params)} together); more draws will not help. Reparametrize into "
                       "the identified combination, or add data or prior information that fixes the ridge.")
    return Trouble(None, evidence=ev)


def _dominant_null(local_whitened, lambda_tol, min_fraction=0.5):
    """Whitened directions uninformed at most draws: the top eigenvectors of the average projector onto
    the per-draw null spaces (sign-free), kept while they carry ≥ ``min_fraction`` of a null vector."""
    F = np.asarray(local_whitened, float)
    S, d, _ = F.shape
    P = np.zeros((d, d))
    for s in range(S):
        w, V = np.linalg.eigh(0.5 * (F[s] + F[s].T))
        N = V[:, w < lambda_tol]
        P += N @ N.T
    P /= S
    w, V = np.linalg.eigh(P)
    keep = w >= min_fraction
    return V[:, keep]


def _coordinate_values(key, draws):
    """Per-draw values (chains, draws) of a combination coordinate: a natural name, its ``_log__``, or an
    unconstrained component name; None for coordinates this test does not reconstruct."""
    if key in draws.unconstrained_names:
        return draws.posterior_unc[..., draws.unconstrained_names.index(key)]
    if key in draws.names:
        return draws.posterior[..., draws.names.index(key)]
    if key.endswith("_log__") and key[:-6] in draws.names:
        x = draws.posterior[..., draws.names.index(key[:-6])]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.abs(x))
    return None


def _invariant_trouble(diagnosis, rhat_max):
    """Curved ridges: the chains disagree about the parameters on a local ridge, but agree about its named
    invariant (e.g. p1·p2 converged while p1 and p2 wander along the hyperbola)."""
    from .verdicts import Explanation, Verdict

    conv = diagnosis.convergence
    failing = set(conv.parameter_problems) if conv is not None else set()
    out = {}
    for ridge in diagnosis.local_ridges:
        if ridge.draw_fraction < 0.5 or not (set(ridge.parameters) & failing):
            continue
        for c in ridge.combinations:
            vals = [(_coordinate_values(k, diagnosis.draws), w) for k, w in c.coefficients.items()]
            if not vals or any(v is None for v, _ in vals):
                continue
            inv = sum(w * v for v, w in vals)
            if inv.shape[0] < 2 or not np.all(np.isfinite(inv)):
                continue
            r = _rhat(inv)
            if r > rhat_max:
                continue
            why = (f"only {c.name} is identified (it converged: R-hat {r:.3f}); the chains wander along the ridge "
                   f"of constant {c.name} at {ridge.draw_fraction:.0%} of the Fisher draws — the sampler struggles "
                   f"along this ridge, and more draws will not help: reparametrize into {c.name}, or add data "
                   "that fix the ridge")
            short = (f"only {c.name} is identified; the sampler struggles along the ridge of constant {c.name}, and "
                     f"more draws will not help: reparametrize into {c.name}, or add data that fix the ridge")
            for p in ridge.parameters:
                out[p] = Explanation(Verdict.COMBINATION, why, "curved-ridge", c.name, short, True)
            break
    return out or None


def sampler_trouble(posterior_unc, white, names, fisher=None, sample_stats=None, diagnosis=None,
                    rhat_max: float = 1.01):
    """Structural explanation of a convergence failure, per parameter, for :func:`bayesid.diagnose`.

    Uninformed directions come from the Fisher part of the diagnosis: the averaged matrix's null space
    when it has one (straight ridges), else the directions that are locally uninformed at more than half
    of the Fisher draws (curved ridges, e.g. p1·p2). :func:`ridge_trouble` then tests whether R-hat
    failures and divergences concentrate there. When divergent transitions are the only fit-level problem,
    the model has ridges (uninformed at most Fisher draws) and :func:`divergence_scatter` finds the
    divergences scattered through the posterior rather than concentrated (a funnel's neck), they are put
    down to the sampler crossing those ridges: ``resolved`` lists the divergence message, and the
    verdicts are recomputed without it (a·b and c − d under NUTS stay "identified only in combination").

    Parameters
    ----------
    posterior_unc : ndarray (chains, draws, d)
    white : Whitening
    names : list of str
        Component names (``draws.names``), in the order of ``posterior_unc``'s last axis.
    fisher : FisherResult, optional
        Without it no structural cause can be found (returns None).
    sample_stats : xarray.Dataset, optional
        For the ``diverging`` flags.
    diagnosis : Diagnosis, optional
        Used to name the identified combination of the troubled parameters.
    rhat_max : float

    Returns
    -------
    TroubleReport or None
        ``explanations``: ``{parameter: Explanation}`` for the parameters on the troubled ridge (verdict,
        reason, the named combination and ``sampler_struggles=True``); ``resolved`` / ``notes`` for
        scattered divergences. None when no structural cause is found, so "not converged" stands
        (centred eight schools, Neal's funnel).
    """
    from .verdicts import Explanation

    if fisher is None:
        return None
    per = _parameter_trouble(posterior_unc, white, names, fisher, sample_stats, diagnosis, rhat_max)
    rep = TroubleReport(explanations=per or {})
    conv = getattr(diagnosis, "convergence", None)
    div = None
    if sample_stats is not None and "diverging" in sample_stats:
        div = np.asarray(sample_stats["diverging"].values, bool)
    div_msgs = [p for p in (conv.problems if conv is not None else []) if "divergent transition" in p]
    ridges = _ridge_parameters(diagnosis, fisher)
    if div is not None and div_msgs and len(div_msgs) == len(conv.problems) and ridges:
        sc = divergence_scatter(posterior_unc, white, div)
        rep.evidence["divergences"] = sc
        if sc["scattered"]:
            rep.resolved = div_msgs
            labels = ", ".join(lb for lb, _, _ in ridges)
            combos = [c for _, _, c in ridges if c]
            short = (f"{sc['n_divergent']} divergent transition(s) scattered through the posterior (not concentrated "
                     f"as in a funnel's neck), put down to the sampler crossing the ridge(s) {labels}"
                     + (f" (identified: {', '.join(combos)})" if combos else "") + "; more draws will not help")
            for _, params, combo in ridges:
                why = (f"{sc['n_divergent']} divergent transition(s), scattered through the posterior (no shift "
                       f"beyond {sc['t_max']:.1f} SE along any axis, unlike a funnel's neck), put down to the sampler "
                       f"crossing the ridge(s) the data do not inform ({labels}); more draws will not help"
                       + (f": reparametrize into {combo}" if combo else "") + " or add data that fix the ridge")
                for p in params:
                    if p not in rep.explanations:
                        rep.notes[p] = Explanation(None, why, "divergent-ridge", combo, short, True)
    if not rep.explanations and not rep.resolved:
        return None
    return rep


def _ridge_parameters(diagnosis, fisher):
    """(label, parameters, identified combination) of each ridge the Fisher analysis found at most draws."""
    out = []
    for r in getattr(diagnosis, "local_ridges", None) or []:
        if r.draw_fraction > 0.5 and r.parameters:
            out.append((r.label, list(r.parameters), r.combinations[0].name if r.combinations else None))
    return out


def _parameter_trouble(posterior_unc, white, names, fisher, sample_stats, diagnosis, rhat_max):
    """Per-parameter explanations of R-hat / ESS failures (curved invariant, or a straight ridge)."""
    from .verdicts import Explanation, Verdict

    if diagnosis is not None and getattr(diagnosis, "local_ridges", None):
        curved = _invariant_trouble(diagnosis, rhat_max)
        if curved:
            return curved
    conv = getattr(diagnosis, "convergence", None)
    if conv is not None and not conv.parameter_problems:
        return None  # nothing per parameter to explain (fit-level problems: see sampler_trouble)
    null = None
    if getattr(fisher, "global_null_dim", 0) and fisher.global_null_dim > 0:
        null = fisher.vectors[:, fisher.eigenvalues < fisher.lambda_tol]
    elif getattr(fisher, "local_whitened", None) is not None:
        null = _dominant_null(fisher.local_whitened, fisher.lambda_tol)
    if null is None or null.shape[1] == 0:
        return None
    div = None
    if sample_stats is not None and "diverging" in sample_stats:
        div = np.asarray(sample_stats["diverging"].values, bool)
    tr = ridge_trouble(posterior_unc, white, null, list(names), divergent=div, rhat_max=rhat_max)
    if tr.kind is None:
        return None
    combo = None
    if diagnosis is not None:
        for c in list(getattr(diagnosis, "combinations", [])) + list(getattr(diagnosis, "fisher_combinations", [])):
            on = set(getattr(c, "parameters", None) or c.coefficients)
            if on & set(tr.parameters):
                combo = c.name
                break
    tr.combination = combo
    ev = tr.evidence
    why = (f"the sampler struggles along a direction the data do not inform (R-hat along it "
           f"{ev['rhat_null']:.2f}, along the identified ones {ev['rhat_identified']:.2f}"
           + (f"; {ev['n_divergent']} divergences, shifted {ev['t_null']:.1f} SE along it" if ev["n_divergent"] else "")
           + "): more draws will not help; reparametrize into the identified combination"
           + (f" {combo}" if combo else "") + " or add data that fix the ridge")
    verdict = Verdict.COMBINATION if combo else Verdict.NOT_IDENTIFIED
    short = ("the sampler struggles along a direction the data do not inform"
             + (f" (only {combo} is identified)" if combo else "") + "; more draws will not help")
    return {p: Explanation(verdict, why, "ridge", combo, short, True) for p in tr.parameters}
