"""Compare an amortized neural estimator with the MCMC answer, direction by direction.

A network trained on simulations converges whether or not the data identify the parameters. Along a
direction the data do not inform, the best it can do (the posterior mean) is the prior mean: its error
there is as large as the prior's spread. :func:`compare` measures this on held-out simulated datasets,
projecting the errors on the directions an MCMC :class:`~bayesid.diagnostics.Diagnosis` found.

Quantities (``u`` = unconstrained parameters, ``z = whiten(u)`` = prior-whitened coordinates)
------------------------------------------------------------------------------------------------
* error variance ratio along a unit whitened direction ``v``: ``mean((v·(ẑ − z))²) / var(v·z)`` over
  the held-out datasets. It is the expected posterior/prior variance ratio when ``ẑ`` is the posterior
  mean (MSE-optimal), so ``1 − ratio`` is the *neural contraction* to set beside MCMC's. It is ≈ 1
  along a ridge (regression to the prior) and ≈ 0 along identified directions. Its 95 % interval is a
  percentile bootstrap over datasets (``n_boot`` resamples).
* For NPE also the posterior/prior variance ratio of the flow's draws along ``v`` (mean over datasets).
* ensemble spread: standard deviation across ensemble members of the estimate, in prior sds.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesid.diagnostics.verdicts import Thresholds, Verdict

from .metrics import neural_verdict, ratio_ci, ridge_share
from .reference import ReferenceDirections, reference_from_known_answer
from .result import NeuralComparison

__all__ = ["compare"]


@dataclass
class _Test:
    """Held-out datasets and the estimator's answers on them, in the diagnosis' coordinate order."""

    data: object
    u_true: np.ndarray
    u_hat: np.ndarray
    members: np.ndarray | None
    draws: np.ndarray | None
    ix: np.ndarray
    seconds_simulate: float
    seconds_predict: float


class _PlainModel:
    """A plain ``pymc.Model`` (with optional ``pm.Data`` design values) in the role of a ModelSpec for
    :func:`compare`: held-out simulations by :class:`bayesid.simulate.ModelSimulator` (the simulator
    the estimator was trained with), refits of ``pm.observe(model, data)`` under the design values."""

    def __init__(self, model, values):
        from bayesid.simulate import simulator_for

        self.model = model
        self.values = dict(values or {})
        self.sim = simulator_for(model)
        self.name = model.name or "pm.Model"
        self._ctx = None

    def build(self, data, design=None, priors=None):
        import pymc as pm

        self._ctx = self.sim.design(self.values)
        self._ctx.__enter__()  # the design values stay set while the refit compiles and samples
        return pm.observe(self.model, {k: np.asarray(v) for k, v in data.items()})

    def restore(self):
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


def _check_model(diagnosis, estimator, model, design, priors):
    """Checks of :func:`compare` on a plain ``pm.Model``; returns ``(_PlainModel, design label)``."""
    import pymc as pm

    from bayesid.errors import BadInputError
    from bayesid.simulate import component_names, simulator_for

    if not isinstance(model, pm.Model):
        raise BadInputError(f"model must be a pymc.Model, got {type(model).__name__}")
    if not getattr(estimator, "fitted", False):
        raise RuntimeError("The estimator is not trained: call .fit(...) before compare().")
    if priors:
        raise BadInputError("priors cannot be overridden on a pm.Model; build the model with the priors you want")
    if design is not None and not isinstance(design, dict):
        raise BadInputError(f"with model=..., design is a dict of pm.Data values (as given to .fit), got "
                            f"{type(design).__name__}")
    if diagnosis is None:
        raise BadInputError("a plain pm.Model has no known answer: pass the MCMC diagnosis "
                            "(bayesid.diagnose(tree, model=model))")
    sim = simulator_for(model)
    th = sim.sample_prior(1, 0)
    names = component_names(sim.to_unconstrained(th), sim.value_names)
    if list(names) != list(estimator.unconstrained_names):
        raise BadInputError(f"The estimator was trained on parameters {estimator.unconstrained_names} but the "
                            f"model has {names}: train it on this model (estimator.fit(model, ...)).")
    tr = estimator.transform
    if getattr(tr, "_sim", True) is None:  # loaded from a file: re-attach the model's transforms
        tr._sim = sim
    plain = _PlainModel(model, design)
    return plain, ("custom" if design else "default")


def _check(diagnosis, estimator, spec, design, priors):
    from bayesid import models
    from bayesid.neural.estimators import check_trained_on
    from bayesid.neural.simulation import ParameterTransform

    if not getattr(estimator, "fitted", False):
        raise RuntimeError("The estimator is not trained: call .fit(...) before compare().")
    meta = estimator.meta
    check_trained_on(estimator, diagnosis)  # issue 16: a diagnosis of another model/prior/design
    spec = models.get(spec or meta["model"])
    design = spec.design(design or meta["design"]).name
    if spec.name != meta["model"] or design != meta["design"]:
        warnings.warn(f"The estimator was trained on {meta['model']} / {meta['design']} but is compared on "
                      f"{spec.name} / {design}.", stacklevel=3)
    now = ParameterTransform(spec, priors).unconstrained_names
    if list(now) != list(estimator.unconstrained_names):
        raise ValueError(
            f"The estimator was trained on parameters {estimator.unconstrained_names} but {spec.name} now has "
            f"{now} (the model or the priors changed since training). Retrain the estimator.")
    return spec, design


def _run_test(spec, design, priors, estimator, names, n_test, n_posterior_draws, s_test, s_draw) -> _Test:
    from bayesid.neural.simulation import simulate_training_set

    t0 = time.perf_counter()
    ix = estimator.transform.reorder_from(names)  # estimator columns in diagnosis order
    if isinstance(spec, _PlainModel):  # held-out datasets from the same PyMC simulator as training
        test = simulate_training_set(spec.model, n_test, design=spec.values, random_seed=s_test)
    else:
        test = simulate_training_set(spec, n_test, design=design, priors=priors, random_seed=s_test)
    t_sim = time.perf_counter() - t0
    t1 = time.perf_counter()
    u_hat = estimator.predict_unconstrained(test)[:, ix]
    t_pred = time.perf_counter() - t1
    members = estimator.member_predictions(test)[:, :, ix] if hasattr(estimator, "member_predictions") else None
    is_npe = getattr(estimator, "kind", "") == "npe"
    draws = estimator.sample(test, n_posterior_draws, random_seed=s_draw)[:, :, ix] if is_npe else None
    return _Test(test, test.theta_unc[:, ix], u_hat, members, draws, ix, t_sim, t_pred)


def _per_parameter(diagnosis, estimator, t: _Test, names, ridge_truth, n_boot, rng, th) -> pd.DataFrame:
    utr = estimator.transform
    ix = t.ix
    inv = lambda u: utr.inverse(u[:, np.argsort(ix)])[:, ix]  # noqa: E731  natural scale, diagnosis order
    nat_err = inv(t.u_hat) - inv(t.u_true)
    table = diagnosis.table
    unc_to_name = dict(zip(utr.unconstrained_names, utr.names))
    rows = []
    for j, n in enumerate(names):
        pname = unc_to_name[n]
        err = t.u_hat[:, j] - t.u_true[:, j]
        r, lo, hi = ratio_ci(err, t.u_true[:, j], n_boot, rng)
        row = {"parameter": pname, "unconstrained": n, "rmse": float(np.sqrt(np.mean(err ** 2))),
               "rmse_natural": float(np.sqrt(np.mean(nat_err[:, j] ** 2))),
               "prior_sd": float(np.std(t.u_true[:, j])), "error_ratio": r, "ratio_lower": lo,
               "ratio_upper": hi, "neural_contraction": 1 - r, "ridge_share": ridge_share(err, ridge_truth)}
        if t.draws is not None:
            row["npe_contraction"] = float(1 - t.draws[:, :, j].var(axis=1).mean() / np.var(t.u_true[:, j]))
        mc = np.nan
        if pname in table.index:
            col = "contraction_unc" if "contraction_unc" in table else "contraction"
            mc = float(table.loc[pname, col])
        row["mcmc_contraction"] = mc
        row["mcmc_verdict"] = str(table.loc[pname, "verdict"]) if pname in table.index else ""
        row["ensemble_spread"] = (float(t.members[:, :, j].std(axis=0).mean() / np.std(t.u_true[:, j]))
                                  if t.members is not None else np.nan)
        row["neural_verdict"] = neural_verdict(r, th)
        rows.append(row)
    return pd.DataFrame(rows).set_index("parameter")


def _per_direction(diagnosis, t: _Test, V, z_true, z_hat, n_boot, rng, th) -> pd.DataFrame:
    tw, ew = z_true @ V.T, z_hat @ V.T
    rows = []
    for k, dr in enumerate(diagnosis.directions):
        r, lo, hi = ratio_ci(ew[:, k] - tw[:, k], tw[:, k], n_boot, rng)
        row = {"label": dr.label, "mcmc_verdict": str(dr.verdict), "mcmc_ratio": float(dr.ratio),
               "error_ratio": r, "ratio_lower": lo, "ratio_upper": hi, "neural_contraction": 1 - r}
        if t.draws is not None:
            zd = np.stack([diagnosis.whiten(t.draws[i]) @ V[k] for i in range(len(t.draws))])
            row["npe_ratio"] = float(zd.var(axis=1).mean() / np.var(tw[:, k]))
        if t.members is not None:
            zm = np.stack([diagnosis.whiten(m) @ V[k] for m in t.members])
            row["ensemble_spread"] = float(zm.std(axis=0).mean() / np.std(tw[:, k]))
        row["neural_verdict"] = neural_verdict(r, th)
        rows.append(row)
    return pd.DataFrame(rows), tw, ew


def _per_combination(diagnosis, t: _Test, names, n_boot, rng, th) -> pd.DataFrame:
    rows = []
    for c in getattr(diagnosis, "combinations", []):
        cvec = np.array([c.coefficients.get(n, 0.0) for n in names])
        tr, e = t.u_true @ cvec, t.u_hat @ cvec
        r, lo, hi = ratio_ci(e - tr, tr, n_boot, rng)
        rows.append({"name": c.name, "mcmc_ratio": float(getattr(c, "ratio", np.nan)), "error_ratio": r,
                     "ratio_lower": lo, "ratio_upper": hi, "rmse": float(np.sqrt(np.mean((e - tr) ** 2))),
                     "neural_verdict": neural_verdict(r, th)})
    return pd.DataFrame(rows, columns=["name", "mcmc_ratio", "error_ratio", "ratio_lower", "ratio_upper",
                                       "rmse", "neural_verdict"])


def _mcmc_unconstrained(tree, names):
    post = tree["unconstrained_posterior"].to_dataset()
    cols = []
    for n in names:
        m = re.match(r"^(.*?)(\[(.*)\])?$", n)
        var, ix = m.group(1), m.group(3)
        v = post[var].values
        v = v.reshape(v.shape[0] * v.shape[1], *v.shape[2:])
        if ix is not None:
            v = v.reshape(v.shape[0], -1)[:, np.ravel_multi_index(tuple(int(i) for i in ix.split(",")),
                                                                  post[var].shape[2:])]
        cols.append(v)
    return np.column_stack(cols)


def _held_out_refits(diagnosis, estimator, spec, design, priors, t: _Test, names, n_mcmc, mcmc_kwargs, tree,
                     s_mcmc) -> pd.DataFrame:
    """MCMC refits of ``n_mcmc`` held-out datasets (and the diagnosis' own data when ``tree`` is given)."""
    if not (n_mcmc or tree is not None):
        return pd.DataFrame()
    from bayesid.fit import fit
    from bayesid.neural.calibration import c2st

    kw = dict(draws=500, tune=500, chains=2, progressbar=False)
    kw.update(mcmc_kwargs or {})
    seeds = s_mcmc.spawn(max(int(n_mcmc), 0) + 1)
    jobs = []
    if tree is not None:
        obs = tree["observed_data"].to_dataset()
        jobs.append(("diagnosed data", {k: obs[k].values for k in obs.data_vars}, tree, None))
    for i in range(int(n_mcmc)):
        jobs.append((f"held-out {i}", {k: v[i] for k, v in t.data.data.items()}, None, i))
    is_npe = t.draws is not None
    rows = []
    for (label, data, tr_, i), s in zip(jobs, seeds):
        t2 = time.perf_counter()
        if tr_ is None:
            try:
                tr_ = fit(spec.build(data, design, priors), random_seed=int(s.generate_state(1)[0] % 2**31), **kw)
            finally:
                if isinstance(spec, _PlainModel):
                    spec.restore()
        secs = time.perf_counter() - t2 if i is not None else np.nan
        mc = _mcmc_unconstrained(tr_, names)
        batch = {k: np.asarray(v)[None] for k, v in data.items()}
        uh = estimator.predict_unconstrained(batch)[:, t.ix][0]
        zmc, zh = diagnosis.whiten(mc), diagnosis.whiten(uh[None])[0]
        row = {"dataset": label, "mcmc_seconds": secs,
               "distance_to_mcmc_mean": float(np.linalg.norm(zh - zmc.mean(0))),
               "mcmc_sd_whitened": float(np.sqrt(zmc.var(0).sum()))}
        if is_npe:
            nd = estimator.sample(batch, min(len(mc), 2000), random_seed=s)[0][:, t.ix]
            res = c2st(nd, mc, random_seed=s)
            row.update(c2st_accuracy=res.accuracy, c2st_pvalue=res.pvalue)
        rows.append(row)
    return pd.DataFrame(rows)


def compare(diagnosis, estimator, spec=None, design=None, n_test=500, random_seed=None, priors=None,
            n_mcmc=0, mcmc_kwargs=None, n_posterior_draws=500, n_boot=1000, tree=None,
            model=None) -> NeuralComparison:
    """Measure what an amortized estimator recovers, along the directions of an MCMC diagnosis.

    Parameters
    ----------
    diagnosis : Diagnosis or ReferenceDirections or None
        From :func:`bayesid.diagnose`. ``None`` uses the model's known answer
        (:func:`~bayesid.comparison.reference_from_known_answer`).
    estimator : PointEstimator, NPE or Ensemble
        Trained on ``spec``/``design``.
    spec : ModelSpec or str, optional
        Defaults to the model the estimator was trained on.
    design : str, optional
        Defaults to the estimator's training design.
    n_test : int
        Held-out datasets simulated from the prior (the sample size of every error ratio).
    random_seed : int, optional
    priors : dict, optional
        Prior overrides (must match training).
    n_mcmc : int
        Of the held-out datasets, how many to refit with NUTS (:func:`bayesid.fit`) for a direct
        comparison (C2ST of NPE draws against MCMC draws, distance to the MCMC mean, MCMC seconds).
    mcmc_kwargs : dict, optional
        Passed to :func:`bayesid.fit` (default ``draws=500, tune=500, chains=2``).
    n_posterior_draws : int
        NPE draws per dataset.
    n_boot : int
        Bootstrap resamples of the confidence intervals.
    tree : DataTree, optional
        The diagnosis' own fit: the estimator is also run on its ``observed_data`` and (NPE) compared by
        C2ST with its unconstrained posterior.
    model : pymc.Model, optional
        A plain PyMC model (not registered) the estimator was trained on with ``.fit(model, ...)``:
        held-out datasets come from the same simulator (:class:`bayesid.simulate.ModelSimulator`), the
        NUTS refits are of ``pm.observe(model, data)`` by :func:`bayesid.fit`; ``design`` is then the
        dict of ``pm.Data`` values used in training (None: the model's current values) and a
        ``diagnosis`` is required (a plain model has no known answer).

    Returns
    -------
    NeuralComparison
        Its neural verdicts use the diagnosis' :class:`~bayesid.diagnostics.Thresholds` (recovered when
        the error ratio is at most ``1 − identified``, regressing to the prior from ``ridge``).
    """
    from bayesid.neural.simulation import seed_sequence

    if model is not None:
        spec, design = _check_model(diagnosis, estimator, model, design, priors)
    else:
        spec, design = _check(diagnosis, estimator, spec, design, priors)
    s_test, s_boot, s_draw, s_mcmc, s_ref = seed_sequence(random_seed).spawn(5)
    source = "MCMC diagnosis"
    if diagnosis is None:
        diagnosis = reference_from_known_answer(spec, design, priors, random_seed=s_ref)
        source = f"known answer of {spec.name} / {design} (no MCMC diagnosis given)"
    elif isinstance(diagnosis, ReferenceDirections):
        source = "known answer"
    th = getattr(diagnosis, "thresholds", None) or Thresholds()
    names = list(diagnosis.unconstrained_names)
    t = _run_test(spec, design, priors, estimator, names, n_test, n_posterior_draws, s_test, s_draw)
    z_true, z_hat = diagnosis.whiten(t.u_true), diagnosis.whiten(t.u_hat)
    rng = np.random.default_rng(s_boot)
    d = len(names)
    V = np.array([np.asarray(dr.vector, float) for dr in diagnosis.directions]).reshape(-1, d)
    ridge_idx = [k for k, dr in enumerate(diagnosis.directions) if dr.verdict == Verdict.NOT_IDENTIFIED]
    ridge_truth = z_true @ V[ridge_idx].T if ridge_idx else np.zeros((len(z_true), 0))

    params = _per_parameter(diagnosis, estimator, t, names, ridge_truth, n_boot, rng, th)
    dirs, tw, ew = _per_direction(diagnosis, t, V, z_true, z_hat, n_boot, rng, th)
    combos = _per_combination(diagnosis, t, names, n_boot, rng, th)
    held = _held_out_refits(diagnosis, estimator, spec, design, priors, t, names, n_mcmc, mcmc_kwargs, tree,
                            s_mcmc)

    hist = estimator.history if isinstance(estimator.history, list) else [estimator.history]
    name = type(estimator).__name__
    if hasattr(estimator, "members"):
        name = f"Ensemble of {estimator.n_members} {type(estimator.members[0]).__name__}"
    return NeuralComparison(params, dirs, combos, held, hist, bool(estimator.converged()), tw, ew,
                            spec.name, design, name, int(n_test), source,
                            {"simulate_test": t.seconds_simulate, "predict": t.seconds_predict,
                             "predict_per_dataset": t.seconds_predict / n_test}, th)
