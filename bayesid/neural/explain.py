"""Explanations versus predictions (after "causal effect of seeds and hyperparameters on explanations",
seed paper 003): gradient saliency of each estimate with respect to the input, and the average
treatment effect (ATE) of interventions on the training (seed, width/depth, learning rate, training-set
size) on predictions and on explanations.

Effect measures (dimensionless, per quantity ``q`` — a parameter or a direction)
-------------------------------------------------------------------------------
* prediction: ``mean_i |q_treated(x_i) - q_base(x_i)| / sd_prior(q)`` over held-out datasets ``x_i``
  (0 = the same estimate, 1 = a change as large as the prior's spread);
* explanation: ``mean_i (1 - cos(grad q_treated(x_i), grad q_base(x_i)))`` (0 = the same saliency map
  up to scale, 1 = orthogonal, 2 = reversed).

Each repeat ``r`` pairs a baseline run and a treated run that share the simulation seed and, except
under the ``seed`` intervention, the initialisation seed. The ATE is the mean over ``n_repeats``
repeats, with a Student-t 95 % confidence interval on ``n_repeats - 1`` degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from .simulation import seed_sequence

__all__ = ["saliency", "intervention_study", "InterventionStudy", "DEFAULT_INTERVENTIONS"]

DEFAULT_INTERVENTIONS = {
    "seed": {"random_seed": "+1"},
    "width": {"width": 2.0},
    "depth": {"depth": "+1"},
    "learning rate": {"lr": 0.3},
    "training-set size": {"n_simulations": 0.5},
}


def saliency(estimator, data, quantities=None) -> np.ndarray:
    """Gradient of each estimated quantity with respect to the network input.

    Parameters
    ----------
    estimator : PointEstimator, NPE or Ensemble
    data : dict, TrainingSet or array
        Datasets (batched).
    quantities : ndarray (k, d) or sequence of (ndarray (d,) or callable), optional
        Functionals of the unconstrained estimate ``u``: a row ``c`` is the linear ``q = c·u`` (e.g. a
        direction); a callable maps a torch tensor ``u`` of shape ``(n, d)`` to ``(n,)`` differentiably
        (e.g. a subject's ``log k_s + log m_s = mu + exp(log tau)·z_s`` in a non-centred hierarchy).
        Default the identity (one saliency map per unconstrained parameter).

    Returns
    -------
    ndarray, shape (k, n, *input_shape)
        ``d q_k(x_n) / d x_n``. NPE means are differentiated through 64 reparametrised draws with a
        fixed seed (a callable is applied to that mean).
    """
    x = estimator._x(data).clone().requires_grad_(True)
    d = len(estimator.unconstrained_names)
    funcs = _quantity_functions(np.eye(d) if quantities is None else quantities, d)
    out = []
    for f in funcs:
        torch.manual_seed(0)
        if x.grad is not None:
            x.grad = None
        m = _mean_for_grad(estimator, x)
        f(m).sum().backward()
        out.append(x.grad.detach().numpy().copy())
    return np.stack(out)


def _quantity_functions(quantities, d) -> list:
    """Each quantity (a row ``c`` of length ``d`` or a callable) as a function of a torch ``(n, d)`` tensor."""
    if isinstance(quantities, np.ndarray) or not isinstance(quantities, (list, tuple)):
        quantities = list(np.atleast_2d(np.asarray(quantities, float)))
    funcs = []
    for j, q in enumerate(quantities):
        if callable(q):
            funcs.append(q)
            continue
        c = np.asarray(q, float)
        if c.shape != (d,):
            raise ValueError(f"quantity {j} has shape {c.shape}; a linear quantity needs one coefficient per "
                             f"unconstrained parameter ({d}), or pass a callable of the (n, {d}) estimate")
        ct = torch.as_tensor(c, dtype=torch.float64)
        funcs.append(lambda u, ct=ct: u @ ct.to(u.dtype))
    return funcs


def _evaluate(funcs, u) -> np.ndarray:
    """``(n, k)`` values of the quantity functions at unconstrained points ``u`` (numpy ``(n, d)``), in
    double precision (differences between two trainings' estimates are small against the values)."""
    with torch.no_grad():
        t = torch.as_tensor(np.asarray(u), dtype=torch.float64)
        vals = []
        for j, f in enumerate(funcs):
            v = f(t)
            if tuple(v.shape) != (t.shape[0],):
                raise ValueError(f"quantity {j} returned shape {tuple(v.shape)}; a callable quantity must map an "
                                 f"(n, d) tensor to (n,)")
            vals.append(v.double().numpy())
    return np.stack(vals, axis=1)


def _mean_for_grad(estimator, x):
    members = getattr(estimator, "members", None) or [estimator]
    outs = []
    for m in members:
        if hasattr(m, "sample_tensor"):
            outs.append(m.sample_tensor(x, 64, generator_seed=0).mean(0))
        else:
            outs.append(m.mean_tensor(x))
    return torch.stack(outs).mean(0)


def _apply(config, n_sims, override):
    cfg = dict(config)
    n = n_sims
    for key, val in override.items():
        if key == "n_simulations":
            n = int(round(n * val)) if isinstance(val, float) else int(val)
            continue
        cur = cfg.get(key)
        if isinstance(val, str) and val.startswith("+"):
            cfg[key] = (cur or 0) + int(val[1:])
        elif isinstance(val, float) and key in ("width", "depth", "lr", "epochs"):
            cfg[key] = type(cur)(cur * val) if key != "lr" else cur * val
        else:
            cfg[key] = val
    return cfg, n


@dataclass
class InterventionStudy:
    """Result of :func:`intervention_study`.

    Attributes
    ----------
    effects : pandas.DataFrame
        One row per (intervention, quantity, target ∈ {prediction, explanation}): ``ate``, ``lower``,
        ``upper`` (t 95 % CI), ``n`` (repeats), and the ``verdict`` of the quantity.
    per_repeat : pandas.DataFrame
        The effect of every repeat.
    """

    effects: object
    per_repeat: object

    def ate(self, quantity, target, intervention=None) -> float:
        """Mean ATE of ``target`` for ``quantity`` (over interventions unless one is named)."""
        e = self.effects
        sel = (e["quantity"] == quantity) & (e["target"] == target)
        if intervention is not None:
            sel &= e["intervention"] == intervention
        if not sel.any():
            raise KeyError(f"no effect for quantity {quantity!r} / target {target!r}; have "
                           f"{sorted(e['quantity'].unique())}")
        return float(e.loc[sel, "ate"].mean())

    def paired_differences(self, quantity_a, target_a, quantity_b, target_b):
        """``effect(a) − effect(b)`` of every (repeat, intervention) pair (see :meth:`contrast`).

        Returns
        -------
        diff : ndarray (n,)
        a, b : pandas.Series
            The two effects, indexed by (repeat, intervention).
        """
        import pandas as pd

        per = self.per_repeat
        key = ["repeat", "intervention"]

        def sel(q, t):
            qs = [q] if isinstance(q, str) else list(q)
            parts = []
            for one in qs:
                s = per[(per["quantity"] == one) & (per["target"] == t)].set_index(key)["effect"]
                if s.empty:
                    raise KeyError(f"no effects for quantity {one!r} / target {t!r}")
                parts.append(s)
            return parts[0] if len(parts) == 1 else pd.concat(parts, axis=1).mean(axis=1, skipna=False)

        a, b = sel(quantity_a, target_a), sel(quantity_b, target_b)
        missing = a.index.difference(b.index).union(b.index.difference(a.index))
        if len(missing):
            raise KeyError(f"(repeat, intervention) pairs {list(missing)} lack one of the two effects")
        diff = (a - b.reindex(a.index)).to_numpy()
        if not np.all(np.isfinite(diff)):
            raise ValueError(f"non-finite effects in the contrast {quantity_a!r} / {quantity_b!r}")
        return diff, a, b

    def contrast(self, quantity_a, target_a, quantity_b, target_b) -> dict:
        """Paired contrast ``effect(a) − effect(b)`` over all repeats × interventions.

        Parameters
        ----------
        quantity_a, quantity_b : str or list of str
            A quantity, or several (e.g. the same quantity of every subject) whose effects are averaged
            within each (repeat, intervention) pair before the contrast: the pairs, and hence ``n``, stay
            the trainings, whatever the number of quantities pooled.
        target_a, target_b : {"prediction", "explanation"}

        Returns
        -------
        dict
            ``mean``, ``lower``/``upper`` (Student-t 95 % CI), ``n`` (pairs), ``pvalue`` (one-sided
            t-test of mean > 0), ``ratio`` (mean effect a / mean effect b).
        """
        diff, a, b = self.paired_differences(quantity_a, target_a, quantity_b, target_b)
        n = len(diff)
        m, sd = float(diff.mean()), float(diff.std(ddof=1))
        h = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))
        p = float(stats.t.sf(m / (sd / np.sqrt(n)), n - 1)) if sd > 0 else float(m <= 0)
        return {"mean": m, "lower": m - h, "upper": m + h, "n": n, "pvalue": p,
                "ratio": float(a.mean() / b.mean()) if b.mean() != 0 else np.inf}

    def contrast_difference(self, other, quantity_a, target_a, quantity_b, target_b) -> dict:
        """How much larger the contrast ``effect(a) − effect(b)`` is in this study than in ``other``.

        For a negative control by design: the same contrast in a study where the cause is removed (e.g.
        force plates, which identify what the accelerometer leaves on a ridge) must be smaller. The two
        studies' trainings see different data, so the test is unpaired: Welch's t on the two sets of
        paired differences (Welch–Satterthwaite degrees of freedom).

        Returns
        -------
        dict
            ``mean`` (difference of the mean contrasts), ``lower``/``upper`` (95 % CI), ``df``, ``n``
            (pairs in this study and in ``other``), ``pvalue`` (one-sided, difference > 0).
        """
        d1 = self.paired_differences(quantity_a, target_a, quantity_b, target_b)[0]
        d2 = other.paired_differences(quantity_a, target_a, quantity_b, target_b)[0]
        v1, v2 = d1.var(ddof=1) / len(d1), d2.var(ddof=1) / len(d2)
        m, se = float(d1.mean() - d2.mean()), float(np.sqrt(v1 + v2))
        df = float((v1 + v2) ** 2 / (v1 ** 2 / (len(d1) - 1) + v2 ** 2 / (len(d2) - 1))) if se > 0 else np.inf
        h = float(stats.t.ppf(0.975, df) * se)
        p = float(stats.t.sf(m / se, df)) if se > 0 else float(m <= 0)
        return {"mean": m, "lower": m - h, "upper": m + h, "df": df, "n": (len(d1), len(d2)), "pvalue": p}

    def to_html(self, figures=True) -> str:
        """HTML fragment: ATE table and (optionally) the bar chart (rendered by :mod:`bayesid.report`)."""
        from bayesid.report.misc import explanation_html

        return explanation_html(self, figures=figures)

    def _repr_html_(self):
        return self.to_html()

    def plot(self, ax=None):
        """ATE with 95 % CI per intervention, predictions beside explanations, per quantity."""
        import matplotlib.pyplot as plt

        e = self.effects
        quants = list(dict.fromkeys(e["quantity"]))
        inter = list(dict.fromkeys(e["intervention"]))
        if ax is None:
            fig, ax = plt.subplots(1, len(quants), figsize=(3.0 * len(quants), 2.8), squeeze=False, sharey=True)
            ax = ax[0]
        w = 0.38
        for a, q in zip(np.atleast_1d(ax), quants):
            for t, (target, col) in enumerate((("prediction", "C0"), ("explanation", "C3"))):
                sub = e[(e["quantity"] == q) & (e["target"] == target)].set_index("intervention").reindex(inter)
                xs = np.arange(len(inter)) + (t - 0.5) * w
                a.bar(xs, sub["ate"], w, color=col, label=target,
                      yerr=[sub["ate"] - sub["lower"], sub["upper"] - sub["ate"]], capsize=2)
            a.set_xticks(np.arange(len(inter)), inter, rotation=45, ha="right", fontsize=7)
            verdict = e.loc[e["quantity"] == q, "verdict"].iloc[0]
            a.set_title(f"{q}\n({verdict})", fontsize=8)
        np.atleast_1d(ax)[0].set_ylabel("ATE (dimensionless)")
        np.atleast_1d(ax)[0].legend(fontsize=7)
        return ax


def intervention_study(spec, estimator="point", design=None, quantities=None, verdicts=None,
                       interventions=None, n_repeats=3, n_simulations=5000, n_test=200, base_config=None,
                       priors=None, random_seed=None, progressbar=False) -> InterventionStudy:
    """Average treatment effect of training interventions on predictions and on explanations.

    Parameters
    ----------
    spec : ModelSpec or str
    estimator : {"point", "npe"}
        Estimator trained in every run.
    design : str, optional
    quantities : dict of str -> ndarray (d,) or callable, optional
        Named functionals of the unconstrained estimate: linear ones as coefficient vectors (e.g.
        whitened directions mapped back, or unit vectors for single parameters), others as callables of
        the torch ``(n, d)`` estimate returning ``(n,)`` (see :func:`saliency`). Default: one per
        unconstrained parameter. The prediction effect is scaled by each quantity's prior sd, estimated
        from the ``2 · n_simulations`` prior draws of the training pool.
    verdicts : dict of str -> str, optional
        Verdict shown beside each quantity (e.g. "not identified").
    interventions : dict of str -> dict, optional
        Name → override of the estimator configuration (``{"width": 2.0}`` multiplies, ``"+1"`` adds,
        ``{"n_simulations": 0.5}`` scales the training-set size). Default :data:`DEFAULT_INTERVENTIONS`.
    n_repeats : int
        Baseline/treated pairs per intervention (the ``n`` of the confidence intervals); at least 2.
    n_simulations : int
        Baseline training-set size.
    n_test : int
        Held-out datasets on which predictions and saliency are compared.
    base_config : dict, optional
        Baseline estimator configuration (see :class:`NeuralEstimator`).
    priors : dict, optional
    random_seed : int, optional
    progressbar : bool

    Returns
    -------
    InterventionStudy
    """
    import pandas as pd

    from .estimators import NPE, PointEstimator
    from .simulation import simulate_training_set

    if n_repeats < 2:
        raise ValueError("n_repeats must be at least 2 to give a confidence interval")
    Est = {"point": PointEstimator, "npe": NPE}.get(estimator)
    if Est is None:
        raise ValueError(f"estimator must be 'point' or 'npe', got {estimator!r}")
    interventions = DEFAULT_INTERVENTIONS if interventions is None else interventions
    defaults = dict(Est().config)
    unknown = [k for k in (base_config or {}) if k not in defaults]
    if unknown:
        raise ValueError(f"base_config has unknown keys {unknown}; valid: {sorted(defaults)}")
    base_config = {**defaults, **(base_config or {})}
    ss = seed_sequence(random_seed)
    s_test, s_rep = ss.spawn(2)
    test = simulate_training_set(spec, n_test, design=design, priors=priors, random_seed=s_test)
    names = list(test.transform.unconstrained_names)
    d = len(names)
    if quantities is None:
        quantities = {n: np.eye(d)[j] for j, n in enumerate(names)}
    qnames = list(quantities)
    funcs = _quantity_functions(list(quantities.values()), d)
    verdicts = verdicts or {}
    big = simulate_training_set(spec, n_simulations * 2, design=design, priors=priors,
                                random_seed=ss.spawn(1)[0])
    q_sd = _evaluate(funcs, big.theta_unc).std(axis=0, ddof=1)  # prior sd of each quantity
    if not np.all(q_sd > 0):
        bad = [q for q, s in zip(qnames, q_sd) if not s > 0]
        raise ValueError(f"quantities {bad} do not vary under the prior; their prediction effect has no scale")

    def run(cfg, n_sims, seed, sim_rows):
        cfg = dict(cfg)
        cfg.setdefault("random_seed", seed)
        est = Est(**cfg)
        est.fit(big.subset(sim_rows[:n_sims]))
        pred = _evaluate(funcs, est.predict_unconstrained(test))  # (n_test, k)
        sal = saliency(est, test, funcs)  # (k, n_test, ...)
        return pred, sal.reshape(sal.shape[0], sal.shape[1], -1)

    rows = []
    rep_seeds = s_rep.spawn(n_repeats)
    bar = None
    total = n_repeats * (1 + len(interventions))
    if progressbar:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("intervention study", total=total)
    for r, rs in enumerate(rep_seeds):
        seed = int(rs.generate_state(1)[0] % (2**31))
        sim_rows = np.random.default_rng(seed).permutation(len(big))
        base = dict(base_config, random_seed=seed)
        p0, g0 = run(base, n_simulations, seed, sim_rows)
        if bar:
            bar.update(task, advance=1)
        for iname, override in interventions.items():
            cfg, n_sims = _apply(base, n_simulations, override)
            if n_sims > len(big):
                raise ValueError(f"intervention {iname!r} asks for {n_sims} simulations; at most {len(big)}")
            p1, g1 = run(cfg, n_sims, seed, sim_rows)
            if bar:
                bar.update(task, advance=1)
            for k, q in enumerate(qnames):
                pe = float(np.mean(np.abs(p1[:, k] - p0[:, k])) / q_sd[k])
                num = (g0[k] * g1[k]).sum(-1)
                den = np.linalg.norm(g0[k], axis=-1) * np.linalg.norm(g1[k], axis=-1)
                cos = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
                ee = float(np.mean(1.0 - cos))
                rows.append({"repeat": r, "intervention": iname, "quantity": q, "target": "prediction", "effect": pe})
                rows.append({"repeat": r, "intervention": iname, "quantity": q, "target": "explanation", "effect": ee})
    if bar:
        bar.stop()
    per = pd.DataFrame(rows)
    agg = []
    tq = stats.t.ppf(0.975, n_repeats - 1)
    for (i, q, t), g in per.groupby(["intervention", "quantity", "target"], sort=False):
        m, s = g["effect"].mean(), g["effect"].std(ddof=1)
        h = tq * s / np.sqrt(len(g))
        agg.append({"intervention": i, "quantity": q, "target": t, "ate": m, "lower": m - h, "upper": m + h,
                    "n": len(g), "verdict": verdicts.get(q, "")})
    return InterventionStudy(pd.DataFrame(agg), per)
