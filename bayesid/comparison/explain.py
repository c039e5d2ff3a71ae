"""Explanations along the diagnosis' directions: each direction as a linear functional of the
unconstrained parameters, and the intervention study of :mod:`bayesid.neural.explain` run on them."""

from __future__ import annotations

import numpy as np

from .reference import reference_from_known_answer

__all__ = ["direction_functionals", "explanation_study", "noncentred_quantity"]


def direction_functionals(diagnosis, unconstrained_names) -> tuple[dict, dict]:
    """Each diagnosis direction as a linear functional of the unconstrained parameters.

    Parameters
    ----------
    diagnosis : Diagnosis or ReferenceDirections
    unconstrained_names : list of str
        The order of the estimator's unconstrained parameters.

    Returns
    -------
    functionals : dict of str -> ndarray (d,)
        ``label -> c`` such that ``c·u`` equals the whitened coordinate ``v·whiten(u)`` up to a constant
        (the prior sd of ``c·u`` is 1).
    verdicts : dict of str -> str
    """
    names = list(diagnosis.unconstrained_names)
    pos = {n: i for i, n in enumerate(unconstrained_names)}
    if sorted(names) != sorted(pos):
        raise KeyError(f"diagnosis parameters {names} do not match {list(unconstrained_names)}")
    d = len(names)
    mu = np.asarray(diagnosis.prior_mean, float)
    W = (diagnosis.whiten(mu[None] + np.eye(d)) - diagnosis.whiten(mu[None])).T  # z = W (u - mu)
    out, verdicts = {}, {}
    for dr in diagnosis.directions:
        c_diag = W.T @ np.asarray(dr.vector, float)
        c = np.zeros(d)
        for i, n in enumerate(names):
            c[pos[n]] = c_diag[i]
        label = f"{dr.label} [{dr.verdict}]" if dr.label in out else dr.label
        out[label] = c
        verdicts[label] = dr.verdict
    return out, verdicts


def noncentred_quantity(unconstrained_names, terms, index, mean="mu_log_{p}", scale="tau_log_{p}", z="z_{p}"):
    """A cluster-level quantity of a non-centred hierarchy as a function of the unconstrained estimate.

    For a cluster ``index`` with ``x_p = mean_p + scale_p · z_p[index]`` (e.g. ``log k_s`` of gait.hierarchical),
    returns ``u ↦ Σ_p c_p x_p`` for ``terms = {p: c_p}`` (``{"k": 1, "m": 1}`` is the subject's log k + log m,
    ``{"k": 1, "m": -1}`` its log k/m). A log-transformed scale (``tau_log_k_log__``) is exponentiated.

    Parameters
    ----------
    unconstrained_names : list of str
        The estimator's unconstrained parameter order.
    terms : dict of str -> float
    index : int or tuple of int
        The cluster (the index of ``z_p``).
    mean, scale, z : str
        Name patterns of the population mean, population scale and standardised deviation (``{p}`` is the
        term's key).

    Returns
    -------
    callable
        Maps a torch tensor ``(n, d)`` to ``(n,)`` (differentiable; for :func:`bayesid.neural.saliency`).
    """
    pos = {n: i for i, n in enumerate(unconstrained_names)}
    idx = index if isinstance(index, tuple) else (index,)
    parts = []
    for p, c in terms.items():
        m_name, s_name = mean.format(p=p), scale.format(p=p)
        z_name = f"{z.format(p=p)}[{','.join(map(str, idx))}]"
        log_scale = f"{s_name}_log__" in pos
        s_key = f"{s_name}_log__" if log_scale else s_name
        missing = [n for n in (m_name, s_key, z_name) if n not in pos]
        if missing:
            raise KeyError(f"no unconstrained parameter(s) {missing} for term {p!r}; have {list(unconstrained_names)}")
        parts.append((float(c), pos[m_name], pos[s_key], log_scale, pos[z_name]))

    def quantity(u):
        out = 0.0
        for c, im, i_s, log_scale, iz in parts:
            sc = u[:, i_s].exp() if log_scale else u[:, i_s]
            out = out + c * (u[:, im] + sc * u[:, iz])
        return out

    return quantity


def explanation_study(diagnosis, spec, design=None, estimator="point", include_parameters=True, quantities=None,
                      verdicts=None, **kwargs):
    """Explanations vs predictions along the diagnosis' directions (seed paper 003).

    Runs :func:`bayesid.neural.intervention_study` with one quantity per direction of ``diagnosis`` (and
    per parameter if ``include_parameters``), labelled with the MCMC verdicts. ``diagnosis=None`` uses
    the model's known answer. Other keyword arguments go to ``intervention_study``.

    Parameters
    ----------
    quantities : dict of str -> ndarray (d,) or callable, optional
        Further named quantities (e.g. :func:`noncentred_quantity` for each subject of a hierarchy), added
        after the directions and parameters; a name already used raises ``ValueError``.
    verdicts : dict of str -> str, optional
        Verdicts shown beside those further quantities.

    Returns
    -------
    InterventionStudy
    """
    from bayesid import models
    from bayesid.neural.explain import intervention_study
    from bayesid.neural.simulation import ParameterTransform

    spec = models.get(spec)
    design = spec.design(design).name
    if diagnosis is None:
        diagnosis = reference_from_known_answer(spec, design, kwargs.get("priors"),
                                                random_seed=kwargs.get("random_seed"))
    tr = ParameterTransform(spec, kwargs.get("priors"))
    q, verdicts_dir = direction_functionals(diagnosis, tr.unconstrained_names)
    if include_parameters:
        table = diagnosis.table
        for j, n in enumerate(tr.names):
            q[n] = np.eye(len(tr.names))[j]
            verdicts_dir[n] = str(table.loc[n, "verdict"]) if n in table.index else ""
    q_verdicts = verdicts_dir
    for name, fn in (quantities or {}).items():
        if name in q:
            raise ValueError(f"quantity {name!r} is already a direction or parameter of the study; rename it")
        q[name] = fn
        q_verdicts[name] = (verdicts or {}).get(name, "")
    return intervention_study(spec, estimator=estimator, design=design, quantities=q, verdicts=q_verdicts,
                              **kwargs)
