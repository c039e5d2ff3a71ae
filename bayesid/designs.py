"""Design comparison before any data is collected: expected identifiability per experimental design
and per prior design.

For each design, parameter sets are drawn from the prior, and at each one the expected Fisher
information of the likelihood is estimated from replicate datasets made by the model's own simulator
(the same Monte Carlo score estimator as :mod:`bayesid.diagnostics.fisher`). Whitened by the prior
covariance and averaged over the prior, it gives the *preposterior* information matrix ``W̄``
(a Laplace / linear-Gaussian approximation of what a future posterior will look like):

* predicted posterior/prior variance in whitened coordinates: ``(I + W̄)⁻¹``;
* predicted contraction of parameter i: ``1 − l_iᵀ (I + W̄)⁻¹ l_i / ‖l_i‖²`` (``l_i`` row i of the
  prior Cholesky factor);
* uninformed directions: eigenvalues of ``W̄`` below ``lambda_tol`` (variance ratio ≥ 0.8, the same
  cut-off as the diagnostics' ridges);
* expected information gain, Gaussian approximation: ``½ Σ_j log(1 + λ_j)`` nats — the Bayesian
  D-optimality criterion (Chaloner & Verdinelli 1995);
* predicted verdicts per parameter by the diagnostics' own rules.

Designs are ranked by the number of parameters predicted identified, then by information gain (a
tight prior on one parameter can identify another while lowering the information the data add).

No MCMC is run, so dozens of designs can be compared in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DesignResult", "DesignComparison", "compare", "compare_model", "compare_mcmc", "McmcDesignComparison"]


@dataclass
class DesignResult:
    """Expected identifiability of one (design, prior) combination."""

    design: str
    prior: str
    names: list
    eigenvalues: np.ndarray
    predicted_contraction: dict
    eig: float
    n_uninformed: int
    uninformed_labels: list = field(default_factory=list)
    n_failed: int = 0
    verdicts: dict = field(default_factory=dict)
    combinations: list = field(default_factory=list)

    @property
    def n_identified(self) -> int:
        return sum(v == "identified" for v in self.verdicts.values())


@dataclass
class DesignComparison:
    """Designs ranked by expected information gain. ``table`` has one row per (design, prior)."""

    model: str
    results: list
    thresholds: object

    @property
    def table(self) -> pd.DataFrame:
        rows = []
        for r in self.results:
            row = {"design": r.design, "prior": r.prior, "identified": r.n_identified,
                   "non_viable_prior_draws": r.n_failed,
                   "expected_information_gain": r.eig,
                   "uninformed_directions": r.n_uninformed,
                   "uninformed": "; ".join(r.uninformed_labels),
                   "identified_combinations": "; ".join(r.combinations)}
            row.update({f"contraction[{k}]": v for k, v in r.predicted_contraction.items()})
            rows.append(row)
        df = pd.DataFrame(rows).sort_values(["identified", "expected_information_gain"], ascending=False)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df.set_index(["design", "prior"])

    @property
    def best(self) -> tuple:
        return self.table.index[0]

    def verdicts(self) -> pd.DataFrame:
        """Predicted verdict per parameter and design, by the diagnostics' own rules
        (:func:`bayesid.diagnostics.verdicts.parameter_verdicts` on the predicted directions)."""
        return pd.DataFrame({(r.design, r.prior): r.verdicts for r in self.results}).T

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        t = self.table
        cols = [c for c in t.columns if c.startswith("contraction[")]
        if ax is None:
            _, ax = plt.subplots(figsize=(1.2 + 0.9 * len(cols), 0.5 * len(t) + 1.5))
        im = ax.imshow(t[cols].values, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(cols)), [c[12:-1] for c in cols], rotation=30, ha="right")
        ax.set_yticks(range(len(t)), [f"{d} / {p}" for d, p in t.index])
        for i in range(len(t)):
            for j in range(len(cols)):
                ax.text(j, i, f"{t[cols].values[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.figure.colorbar(im, ax=ax, label="predicted contraction")
        ax.set_title(f"{self.model}: designs ranked by identified parameters, then information gain")
        ax.figure.tight_layout()
        return ax

    def to_html(self, figures: bool = True) -> str:
        """HTML fragment: recommendation first, ranking, predicted verdicts, heat map
        (rendered by :mod:`bayesid.report.designs`)."""
        from .report.designs import designs_html

        return designs_html(self, figures=figures)

    def _repr_html_(self):
        return self.to_html(figures=False)

    def __repr__(self):
        cols = ["rank", "expected_information_gain", "uninformed_directions", "uninformed",
                "identified_combinations"]
        return f"<DesignComparison {self.model}>\n{self.table[cols].to_string()}"


def _evaluate(spec, design, priors, prior_label, n_prior, n_replicates, lambda_tol, seed, th):
    from bayesid.diagnostics.combinations import combinations_orthogonal_to, name_combination
    from bayesid.diagnostics.fisher import _score_function
    from bayesid.diagnostics.convergence import ConvergenceReport
    from bayesid.diagnostics.ridges import _normalise_columns, parameter_weights, whitening
    from bayesid.diagnostics.verdicts import parameter_verdicts
    from bayesid.pymc_utils import free_parameters, to_unconstrained

    d = spec.design(design)
    ss = np.random.SeedSequence(seed)
    s_prior, s_white, s_sim = ss.spawn(3)
    theta = spec.sample_prior(n_prior, priors=priors, random_seed=s_prior)
    white_theta = spec.sample_prior(max(2000, 20 * n_prior), priors=priors, random_seed=s_white)
    data0 = spec.simulate(spec.true_values(), design=d, random_seed=0)
    model = spec.build(data0, design=d, priors=priors)
    fn, values, obs = _score_function(model)
    params = free_parameters(model)
    missing = [o.name for o in obs if o.name not in data0]
    if missing:
        raise KeyError(f"{spec.name}: observed variables {missing} are not keys of simulate()'s output; "
                       "design comparison needs them to match")
    u_white = to_unconstrained(model, {k: v[:, None] for k, v in white_theta.items()}, sample_ndim=2)
    u_theta = to_unconstrained(model, {k: v[:, None] for k, v in theta.items()}, sample_ndim=2)
    flat_white = np.concatenate([u_white[v.name].reshape(len(white_theta[params[0].name]), -1)
                                 for v in values], axis=1)
    names = []
    for v in values:
        size = int(np.prod(u_white[v.name].shape[2:]))
        names += [v.name] if u_white[v.name].ndim == 2 else [f"{v.name}[{i}]" for i in range(size)]
    white = whitening(flat_white)
    dim = len(names)
    k = n_replicates or max(20, 10 * dim)
    import inspect

    extra = {"on_fail": "nan"} if "on_fail" in inspect.signature(spec.simulate).parameters else {}
    # non-viable prior draws (a simulator that reports failures as NaN) are skipped and counted
    import warnings

    with warnings.catch_warnings():  # non-viable draws are counted in DesignResult.n_failed instead
        warnings.simplefilter("ignore", UserWarning)
        rep = spec.simulate({n: np.repeat(v, k, axis=0) for n, v in theta.items()}, design=d,
                            random_seed=s_sim, **extra)
    acc = np.zeros((dim, dim))
    used = 0
    failed = 0
    for s in range(n_prior):
        f = np.zeros((dim, dim))
        ok = True
        for r in range(k):
            ys = [rep[o.name][s * k + r] for o in obs]
            g = fn(*[np.asarray(u_theta[v.name][s, 0], dtype=v.dtype) for v in values], *ys)
            if not np.all(np.isfinite(g)):
                ok = False
                break
            f += np.outer(g, g)
        if ok:
            acc += white.chol.T @ (f / k) @ white.chol
            used += 1
        else:
            failed += 1
    if used == 0:
        raise RuntimeError(f"{spec.name}/{d.name}: every prior draw gave a non-finite score "
                           "(non-viable parameters?); use a prior design with viable draws")
    wbar = acc / used
    lam, vec = np.linalg.eigh(wbar)
    lam = np.clip(lam, 0.0, None)
    post_w = np.linalg.inv(np.eye(dim) + wbar)
    L = white.chol
    ratio = np.einsum("ij,jk,ik->i", L, post_w, L) / np.einsum("ij,ij->i", L, L)
    trmap = {n: ("log" if "_log__" in n else None) for n in names}
    disp = _normalise_columns(L @ vec)
    labels = []
    for j in np.where(lam < lambda_tol)[0]:
        big = {n: disp[i, j] for i, n in enumerate(names) if abs(disp[i, j]) >= 0.15}
        labels.append(name_combination(big, trmap))
    null = np.where(lam < lambda_tol)[0]
    combos = []
    if null.size:
        combos = [c.name for c in combinations_orthogonal_to(disp[:, null], names, [trmap[n] for n in names])]
    nat = {p.value_name: p.name for p in params}
    natural = []
    for n in names:
        base, _, rest = n.partition("[")
        natural.append(nat.get(base, base) + (f"[{rest}" if rest else ""))
    pc = {n: float(1.0 - ratio[i]) for i, n in enumerate(natural)}
    verdicts = parameter_verdicts(natural, 1.0 - ratio, parameter_weights(white, vec), 1.0 / (1.0 + lam),
                                  np.full(dim, 0.5), ConvergenceReport(), th)
    return DesignResult(d.name, prior_label, names, lam, pc, float(0.5 * np.sum(np.log1p(lam))),
                        int(np.sum(lam < lambda_tol)), labels, failed,
                        {n: v[0] for n, v in zip(natural, verdicts)}, combos)


def _validate_compare(spec, designs, priors, n_prior, n_replicates):
    """Check :func:`compare`'s arguments up front (issue 16); returns ``(designs, priors)``."""
    from bayesid.errors import BadInputError
    from bayesid.models import Prior

    if isinstance(n_prior, bool) or not isinstance(n_prior, (int, np.integer)) or n_prior < 1:
        raise BadInputError(f"n_prior must be a positive number of prior draws, got {n_prior!r}")
    if n_replicates is not None and (not isinstance(n_replicates, (int, np.integer)) or n_replicates < 1):
        raise BadInputError(f"n_replicates must be a positive integer or None, got {n_replicates!r}")
    if isinstance(designs, str):
        designs = [designs]
    if priors is not None:
        if not isinstance(priors, dict):
            raise BadInputError(f"priors must be a dict {{name: {{parameter: Prior}}}}, got {type(priors).__name__}")
        flat = [k for k, v in priors.items() if isinstance(v, Prior)]
        if flat:
            raise BadInputError(
                f"priors maps {flat} straight to a Prior; it takes named prior designs "
                "{name: {parameter: Prior}}: each key is a prior design name, e.g. "
                f"priors={{'wide': {{{flat[0]!r}: Prior(...)}}}}.")
        for name, pr in priors.items():
            if not isinstance(pr, dict):
                raise BadInputError(f"prior design {name!r} must be a dict {{parameter: Prior}}, got "
                                    f"{type(pr).__name__}")
            try:
                spec.priors(pr)
            except (KeyError, TypeError) as err:
                raise BadInputError(f"prior design {name!r}: {err.args[0] if err.args else err}") from err
    return designs, priors


def compare(spec, designs=None, priors=None, n_prior: int = 64, n_replicates: int | None = None,
            lambda_tol: float = 0.25, random_seed: int = 0, thresholds=None) -> DesignComparison:
    """Rank experimental and prior designs by how much they are expected to identify.

    Parameters
    ----------
    spec : str or ModelSpec
        Registered model.
    designs : list of str, optional
        Design names (default: all of the model's designs).
    priors : dict of str -> dict, optional
        Named prior designs, each a dict of prior overrides ``{parameter: Prior}``; the default
        priors are always included as ``"default"``.
    n_prior : int
        Prior draws over which the information is averaged.
    n_replicates : int, optional
        Replicate datasets per prior draw (default ``max(20, 10·d)``).
    lambda_tol : float
        Whitened information below which a direction counts as uninformed.
    random_seed : int

    Returns
    -------
    DesignComparison
    """
    from bayesid import models
    from bayesid.diagnostics.verdicts import Thresholds

    if not isinstance(spec, str) and not hasattr(spec, "known_answers"):  # a pm.Model or a model factory
        return compare_model(spec, designs, priors, n_prior=n_prior, n_replicates=n_replicates,
                             lambda_tol=lambda_tol, random_seed=random_seed, thresholds=thresholds)
    th = thresholds or Thresholds()
    spec = models.get(spec)
    designs, priors = _validate_compare(spec, designs, priors, n_prior, n_replicates)
    designs = list(designs or spec.designs)
    prior_designs = {"default": {}, **(priors or {})}
    try:
        from rich.progress import track
    except ImportError:  # pragma: no cover
        def track(x, **_):
            return x
    jobs = [(d, pl, pr) for d in designs for pl, pr in prior_designs.items()]
    results = []
    for i, (d, pl, pr) in enumerate(track(jobs, description=f"designs of {spec.name}", transient=True)):
        results.append(_evaluate(spec, d, pr, pl, n_prior, n_replicates, lambda_tol, [random_seed, i], th))
    return DesignComparison(spec.name, results, th)


# ================================================================ designs of any pm.Model
def _result_from_information(wbar, white, names, params, design_label, prior_label, lambda_tol, th,
                             failed=0) -> DesignResult:
    """Predicted identifiability from a prior-averaged whitened information matrix ``wbar``."""
    from bayesid.diagnostics.combinations import combinations_orthogonal_to, name_combination
    from bayesid.diagnostics.convergence import ConvergenceReport
    from bayesid.diagnostics.ridges import _normalise_columns, parameter_weights
    from bayesid.diagnostics.verdicts import parameter_verdicts

    dim = len(names)
    lam, vec = np.linalg.eigh(wbar)
    lam = np.clip(lam, 0.0, None)
    L = white.chol
    post_w = np.linalg.inv(np.eye(dim) + wbar)
    ratio = np.einsum("ij,jk,ik->i", L, post_w, L) / np.einsum("ij,ij->i", L, L)
    trmap = {n: ("log" if "_log__" in n else None) for n in names}
    disp = _normalise_columns(L @ vec)
    null = np.where(lam < lambda_tol)[0]
    labels = [name_combination({n: disp[i, j] for i, n in enumerate(names) if abs(disp[i, j]) >= 0.15}, trmap)
              for j in null]
    combos = ([c.name for c in combinations_orthogonal_to(disp[:, null], names, [trmap[n] for n in names])]
              if null.size else [])
    nat = {p.value_name: p.name for p in params}
    natural = []
    for n in names:
        base, _, rest = n.partition("[")
        natural.append(nat.get(base, base) + (f"[{rest}" if rest else ""))
    pc = {n: float(1.0 - ratio[i]) for i, n in enumerate(natural)}
    verdicts = parameter_verdicts(natural, 1.0 - ratio, parameter_weights(white, vec), 1.0 / (1.0 + lam),
                                  np.full(dim, 0.5), ConvergenceReport(), th)
    return DesignResult(design_label, prior_label, names, lam, pc, float(0.5 * np.sum(np.log1p(lam))),
                        int(null.size), labels, failed, {n: v[0] for n, v in zip(natural, verdicts)}, combos)


class _DesignSpace:
    """The models of a comparison: a ``pm.Model`` with ``pm.Data`` designs, or a factory
    ``build(**design, **prior) -> pm.Model``. ``model_for(design, prior)`` returns a model (and the
    ``pm.Data`` values to set) for one (design, prior) pair."""

    def __init__(self, model, designs, priors):
        import pymc as pm

        from bayesid.errors import BadInputError

        if designs is None or not isinstance(designs, dict) or not designs:
            raise BadInputError("designs must be a non-empty dict {design name: {pm.Data name or factory "
                                "argument: value}}, e.g. {'n5': {'x': np.linspace(0, 1, 5)}}")
        bad = [k for k, v in designs.items() if not isinstance(v, dict)]
        if bad:
            raise BadInputError(f"design(s) {bad} must each be a dict of values, e.g. {{'x': [...]}}")
        self.designs = designs
        self.priors = {"default": {}, **(priors or {})}
        self.factory = None if isinstance(model, pm.Model) else model
        if self.factory is None:
            if priors:
                raise BadInputError("prior designs need a model factory build(**design, **prior) -> pm.Model; "
                                    "a fixed pm.Model cannot change its priors. Pass the function instead.")
            self.base = model
        elif not callable(model):
            raise BadInputError(f"model must be a pymc.Model or a function returning one, got "
                                f"{type(model).__name__}")
        self._cache = {}
        self.name = (getattr(self.factory, "__name__", "model") if self.factory is not None
                     else (model.name or "pm.Model"))

    def model_for(self, design, prior="default"):
        """``(model, data_values)`` for the named design and prior design."""
        import pymc as pm

        from bayesid.errors import BadInputError

        if design not in self.designs:
            raise BadInputError(f"unknown design {design!r}; designs: {sorted(self.designs)}")
        if prior not in self.priors:
            raise BadInputError(f"unknown prior design {prior!r}; prior designs: {sorted(self.priors)}")
        if self.factory is None:
            return self.base, dict(self.designs[design])
        key = (design, prior)
        if key not in self._cache:
            try:
                m = self.factory(**self.designs[design], **self.priors[prior])
            except TypeError as err:
                raise BadInputError(f"the model factory rejected design {design!r} / prior {prior!r}: {err}") from err
            if not isinstance(m, pm.Model):
                raise BadInputError(f"the model factory returned {type(m).__name__}, not a pymc.Model")
            self._cache[key] = m
        return self._cache[key], {}


def _fisher_model(space, design, prior, n_prior, n_replicates, lambda_tol, random_seed, th):
    from bayesid.diagnostics.preposterior import fisher_at_draws, flatten_points, value_layout
    from bayesid.diagnostics.ridges import whitening
    from bayesid.pymc_utils import free_parameters
    from bayesid.simulate import simulator_for

    model, values = space.model_for(design, prior)
    sim = simulator_for(model)
    # common random numbers: the same seeds, hence the same prior draws, for every design
    s_prior, s_white, s_rep = np.random.SeedSequence(random_seed).spawn(3)
    names, layout = value_layout(model)
    with sim.design(values):
        pts = flatten_points(sim.to_unconstrained(sim.sample_prior(n_prior, s_prior)), layout)
        wpts = flatten_points(sim.to_unconstrained(sim.sample_prior(max(2000, 20 * n_prior), s_white)), layout)
        white = whitening(wpts)
        res = fisher_at_draws(model, pts, white, n_replicates=n_replicates, lambda_tol=lambda_tol,
                              random_seed=s_rep)
    return _result_from_information(res.mean_whitened, white, names, free_parameters(model), design, prior,
                                    lambda_tol, th, res.n_failed)


def compare_model(model, designs, priors=None, method: str = "fisher", n_prior: int = 64,
                  n_replicates: int | None = None, n_datasets: int = 20, fit_kwargs=None,
                  lambda_tol: float = 0.25, random_seed: int = 0, thresholds=None, executor=None,
                  checkpoint=None, progressbar: bool = True) -> DesignComparison:
    """Rank the designs of any PyMC model by expected identifiability.

    Parameters
    ----------
    model : pymc.Model or callable
        A model whose varied quantities are ``pm.Data`` containers, or a factory
        ``build(**design_values, **prior_values) -> pm.Model``.
    designs : dict of str -> dict
        ``{design name: {pm.Data name (or factory argument): value}}``.
    priors : dict of str -> dict, optional
        Prior designs: extra factory arguments ``{name: {argument: value}}`` (factories only); the
        factory's defaults are always included as ``"default"``.
    method : {"fisher", "mcmc"}
        ``"fisher"``: prior-averaged Fisher information (:func:`bayesid.diagnostics.preposterior.
        fisher_at_draws`, shared with the structural check), no sampling. ``"mcmc"``: ``n_datasets``
        prior-predictive datasets per design, each fitted by :func:`bayesid.fit`
        (:func:`compare_mcmc`).
    n_prior, n_replicates, lambda_tol, thresholds
        As in :func:`compare` (fisher).
    n_datasets, fit_kwargs, executor, checkpoint
        As in :func:`compare_mcmc` (mcmc).
    random_seed : int
        Common random numbers: every design uses the same seeds (the same prior draws).

    Returns
    -------
    DesignComparison
        For ``"mcmc"``, a :class:`McmcDesignComparison`.
    """
    from bayesid.diagnostics.verdicts import Thresholds
    from bayesid.errors import BadInputError

    if method not in ("fisher", "mcmc"):
        raise BadInputError(f"method={method!r}; use 'fisher' or 'mcmc' (npe is not available for pm.Model yet)")
    space = _DesignSpace(model, designs, priors)
    th = thresholds or Thresholds()
    if method == "mcmc":
        return compare_mcmc(space, n_datasets=n_datasets, fit_kwargs=fit_kwargs, random_seed=random_seed,
                            executor=executor, checkpoint=checkpoint, thresholds=th, progressbar=progressbar)
    results = []
    for d in space.designs:
        for p in space.priors:
            results.append(_fisher_model(space, d, p, n_prior, n_replicates, lambda_tol, random_seed, th))
    return DesignComparison(space.name, results, th)


def _flat_named(arrays: dict, order) -> tuple[np.ndarray, list]:
    from bayesid.simulate import component_names

    cols = [np.asarray(arrays[k], float).reshape(np.shape(arrays[k])[0], -1) for k in order]
    return np.concatenate(cols, axis=1), component_names(arrays, order)


def _mcmc_dataset(space, design, prior, i, n_datasets, seeds, fit_kwargs) -> dict:
    """Simulate dataset ``i`` of a design (common random numbers: prior draw ``i`` and noise seed ``i``
    are the same for every design) and fit it with :func:`bayesid.fit`; JSON-able summary."""
    import pymc as pm

    from bayesid.fit import fit
    from bayesid.simulate import simulator_for

    model, values = space.model_for(design, prior)
    sim = simulator_for(model)
    s_prior, s_noise, s_fit = (np.random.SeedSequence(s) for s in seeds)
    with sim.design(values):
        theta = sim.sample_prior(n_datasets, s_prior)
        th_i = {k: v[i:i + 1] for k, v in theta.items()}
        data = sim.simulate(th_i, np.random.SeedSequence(s_noise.entropy, spawn_key=(i,)))
        truth_u, names = _flat_named(sim.to_unconstrained(th_i), sim.value_names)
        fitted = pm.observe(model, {k: v[0] for k, v in data.items()})
        kw = dict(draws=200, tune=200, chains=1, progressbar=False)
        kw.update(fit_kwargs or {})
        tree = fit(fitted, random_seed=int(np.random.SeedSequence(s_fit.entropy, spawn_key=(i,))
                                            .generate_state(1)[0] % 2**31), **kw)
    post = tree["unconstrained_posterior"].to_dataset()
    prior_ds = tree["unconstrained_prior"].to_dataset()

    def _draws(ds):
        arrs = {k: ds[k].values.reshape(-1, *ds[k].shape[2:]) for k in sim.value_names}
        return _flat_named(arrs, sim.value_names)[0]

    up, uq = _draws(post), _draws(prior_ds)
    sd = up.std(0, ddof=1)
    div = tree["sample_stats"]["diverging"].values.sum() if "diverging" in tree["sample_stats"] else 0
    return {"names": names, "contraction": (1.0 - up.var(0, ddof=1) / uq.var(0, ddof=1)).tolist(),
            "z": ((up.mean(0) - truth_u[0]) / sd).tolist(), "divergences": int(div)}


@dataclass
class McmcDesignComparison:
    """Designs ranked by MCMC on simulated datasets: per (design, prior), the expected contraction of
    each parameter (unconstrained coordinates), the probability it is identified (contraction at least
    ``thresholds.identified``) and the spread of its z-scores (≈ 1 for a calibrated posterior).

    ``records`` holds every dataset's summary (the checkpointed results)."""

    model: str
    records: dict
    thresholds: object
    n_datasets: int

    def _rows(self):
        rows = []
        for (d, p), recs in self.records.items():
            c = np.array([r["contraction"] for r in recs])
            z = np.array([r["z"] for r in recs])
            names = recs[0]["names"]
            row = {"design": d, "prior": p}
            ident = c >= self.thresholds.identified
            row["identified"] = int((ident.mean(0) >= 0.5).sum())  # parameters identified in most datasets
            for j, n in enumerate(names):
                row[f"contraction[{n}]"] = float(c[:, j].mean())
                row[f"contraction_se[{n}]"] = float(c[:, j].std(ddof=1) / np.sqrt(len(c))) if len(c) > 1 else np.nan
                row[f"p_identified[{n}]"] = float(ident[:, j].mean())
                row[f"z_sd[{n}]"] = float(z[:, j].std(ddof=1)) if len(z) > 1 else np.nan
            row["divergences"] = int(sum(r["divergences"] for r in recs))
            rows.append(row)
        return rows

    @property
    def table(self) -> pd.DataFrame:
        df = pd.DataFrame(self._rows())
        cs = [c for c in df.columns if c.startswith("contraction[")]
        df["mean_contraction"] = df[cs].mean(axis=1)
        df = df.sort_values(["identified", "mean_contraction"], ascending=False)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df.set_index(["design", "prior"])

    @property
    def best(self) -> tuple:
        return self.table.index[0]

    def __repr__(self):
        return f"<McmcDesignComparison {self.model}, {self.n_datasets} datasets per design>\n{self.table.to_string()}"


def compare_mcmc(space, n_datasets=20, fit_kwargs=None, random_seed=0, executor=None, checkpoint=None,
                 thresholds=None, progressbar=True) -> McmcDesignComparison:
    """Fit ``n_datasets`` prior-predictive datasets per (design, prior) with :func:`bayesid.fit`.

    Parameters
    ----------
    space : _DesignSpace
        From :func:`compare_model`.
    n_datasets : int
    fit_kwargs : dict, optional
        For :func:`bayesid.fit` (default ``draws=200, tune=200, chains=1``).
    random_seed : int
        Common random numbers: dataset ``i`` of every design uses the same prior draw and seeds.
    executor : None, int or dask.distributed.Client
        See :func:`bayesid.executor.run_jobs`.
    checkpoint : path, optional
        A :class:`bayesid.executor.CheckpointStore` directory keyed by the model fingerprint, designs,
        priors, seed and settings: an interrupted run resumes where it stopped.
    """
    from bayesid.diagnostics.verdicts import Thresholds
    from bayesid.errors import BadInputError
    from bayesid.executor import CheckpointStore, run_jobs
    from bayesid.pymc_utils import model_fingerprint

    if isinstance(n_datasets, bool) or not isinstance(n_datasets, (int, np.integer)) or n_datasets < 1:
        raise BadInputError(f"n_datasets must be a positive integer, got {n_datasets!r}")
    th = thresholds or Thresholds()
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_seed).spawn(3)]
    pairs = [(d, p) for d in space.designs for p in space.priors]
    store = None
    if checkpoint is not None:
        fps = {}
        for d, p in pairs:
            m, values = space.model_for(d, p)
            fps[f"{d}/{p}"] = model_fingerprint(m, observed=False)
        key = {"kind": "designs.mcmc", "models": fps, "designs": {k: {a: np.asarray(v).tolist() for a, v in dv.items()}
                                                                 for k, dv in space.designs.items()},
               "priors": {k: {a: repr(v) for a, v in pv.items()} for k, pv in space.priors.items()},
               "random_seed": random_seed, "n_datasets": int(n_datasets), "fit_kwargs": fit_kwargs or {}}
        store = CheckpointStore(checkpoint, key)
    jobs = [(f"{d}|{p}|{i}", (space, d, p, i, int(n_datasets), seeds, fit_kwargs))
            for d, p in pairs for i in range(int(n_datasets))]
    res = run_jobs(_mcmc_dataset, jobs, executor=executor, checkpoint=store, progressbar=progressbar,
                   description=f"fitting datasets of {space.name}")
    records = {(d, p): [res[f"{d}|{p}|{i}"] for i in range(int(n_datasets))] for d, p in pairs}
    return McmcDesignComparison(space.name, records, th, int(n_datasets))


def load_model_factory(target: str):
    """Load ``"path/to/model.py:build"`` (a function ``build(**design) -> pm.Model`` or a module-level
    ``pm.Model``) for the CLI ``bayesid designs path/to/model.py:build ...``.

    Raises
    ------
    BadInputError
        Malformed target, missing file, or no such attribute (the message lists what the file defines).
    """
    import importlib.util
    from pathlib import Path

    from bayesid.errors import BadInputError

    path, sep, attr = str(target).rpartition(":")
    if not sep or not path or not attr:
        raise BadInputError(f"model target {target!r} must look like path/to/model.py:build")
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"model file {file} does not exist")
    spec = importlib.util.spec_from_file_location(f"bayesid_user_model_{abs(hash(str(file.resolve())))}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, attr):
        names = sorted(k for k in vars(module) if not k.startswith("_"))
        raise BadInputError(f"{file} defines no {attr!r}; it defines {names}")
    return getattr(module, attr)
