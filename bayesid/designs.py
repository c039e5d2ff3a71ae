"""Design comparison before any data is collected: expected identifiability per experimental design
and per prior design, by three methods that share one summary.

``fisher`` (the screen, seconds)
    At prior draws, the expected Fisher information of the likelihood
    (:func:`bayesid.diagnostics.preposterior.fisher_at_draws`, the core shared with the structural
    check and the diagnosis: closed form where the observed distribution has one, replicate datasets
    from the model's simulator otherwise). Whitened by the prior covariance and averaged over the prior
    it gives the *preposterior* information matrix ``W̄`` (a Laplace / linear-Gaussian approximation).
``mcmc``
    ``n_datasets`` prior-predictive datasets per design, each fitted by NUTS (:func:`bayesid.fit`), run
    serially, on a local process pool or a Dask cluster, checkpointed (:mod:`bayesid.executor`).
``npe``
    One amortized posterior per design (:class:`bayesid.neural.NPE` trained on that design's
    simulations), evaluated on the same datasets the mcmc method fits.

For mcmc and npe the expected prior-whitened posterior covariance ``R̄`` over the datasets stands in
for ``(I + W̄)⁻¹`` (equivalent information ``W̄ = R̄⁻¹ − I``; for a linear-Gaussian model the two are
equal), so every method reports through the same assembly:

* predicted posterior/prior variance in whitened coordinates: ``(I + W̄)⁻¹``;
* predicted contraction of parameter i: ``1 − l_iᵀ (I + W̄)⁻¹ l_i / ‖l_i‖²`` (``l_i`` row i of the
  prior Cholesky factor);
* uninformed directions: eigenvalues of ``W̄`` below ``lambda_tol`` (variance ratio ≥ 0.8, the same
  cut-off as the diagnostics' ridges);
* expected information gain, Gaussian approximation: ``½ Σ_j log(1 + λ_j)`` nats — the Bayesian
  D-optimality criterion (Chaloner & Verdinelli 1995);
* predicted verdicts per parameter by the diagnostics' own rules;
* mcmc / npe also: per parameter the probability of being identified (share of datasets with
  contraction ≥ the threshold), the contraction's standard error and the spread of the z-scores.

Designs are ranked by the number of parameters predicted identified, then by information gain (a
tight prior on one parameter can identify another while lowering the information the data add).
In :func:`compare_model` every design uses the same seeds (common random numbers: the same prior draws
and whitening).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DesignResult", "DesignComparison", "SimulationDesignComparison", "compare", "compare_model",
           "compare_mcmc", "McmcDesignComparison"]


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
    extra: dict = field(default_factory=dict)

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
    """Preposterior Fisher analysis of one (design, prior) of a registered model: prior draws from the
    spec, the information from :func:`bayesid.diagnostics.preposterior.fisher_at_draws` (the core
    shared with the structural check and the pm.Model path), the verdicts from
    :func:`_result_from_information` (the same assembly as for any pm.Model).

    Draws for which the spec's simulator reports a failure (``on_fail="nan"``: a gait that falls) are
    not viable: they are left out and counted in ``DesignResult.n_failed``. Observed variables without a
    closed-form information use replicate datasets from the spec's own (fast) simulator."""
    import inspect
    import warnings

    from bayesid.diagnostics.preposterior import constrained_to_points, fisher_at_draws, value_layout
    from bayesid.diagnostics.ridges import whitening
    from bayesid.pymc_utils import free_parameters

    d = spec.design(design)
    s_prior, s_white, s_sim = np.random.SeedSequence(seed).spawn(3)
    theta = spec.sample_prior(n_prior, priors=priors, random_seed=s_prior)
    white_theta = spec.sample_prior(max(2000, 20 * n_prior), priors=priors, random_seed=s_white)
    data0 = spec.simulate(spec.true_values(), design=d, random_seed=0)
    model = spec.build(data0, design=d, priors=priors)
    names, _ = value_layout(model)
    pts = constrained_to_points(model, theta)
    white = whitening(constrained_to_points(model, white_theta))
    obs = [rv.name for rv in model.observed_RVs]
    missing = [o for o in obs if o not in data0]
    if missing:
        raise KeyError(f"{spec.name}: observed variables {missing} are not keys of simulate()'s output; "
                       "design comparison needs them to match")
    extra = {"on_fail": "nan"} if "on_fail" in inspect.signature(spec.simulate).parameters else {}
    k = n_replicates or max(20, 10 * len(names))

    def simulate(reps):
        with warnings.catch_warnings():  # non-viable draws are counted in DesignResult.n_failed instead
            warnings.simplefilter("ignore", UserWarning)
            out = spec.simulate({n: np.repeat(v, reps, axis=0) for n, v in theta.items()}, design=d,
                                random_seed=s_sim, **extra)
        return {o: np.asarray(out[o], float).reshape(n_prior, reps, *np.shape(out[o])[1:]) for o in obs}

    try:  # closed-form information: one simulation per draw only to tell viable draws from failures
        reps = simulate(1) if extra else None
        res = fisher_at_draws(model, pts, None, method="exact", lambda_tol=lambda_tol)
    except ValueError as err:
        if "No closed-form" not in str(err):
            raise
        reps = simulate(k)
        res = fisher_at_draws(model, pts, None, replicates=reps, n_replicates=k, lambda_tol=lambda_tol)
    viable = np.ones(n_prior, bool)
    if reps is not None:
        for v in reps.values():
            viable &= np.all(np.isfinite(v.reshape(n_prior, -1)), axis=1)
    keep = viable[res.ok]  # res holds the draws whose information was finite
    failed = int(n_prior - keep.sum())
    if not keep.any():
        raise RuntimeError(f"{spec.name}/{d.name}: every prior draw gave a non-finite score "
                           "(non-viable parameters?); use a prior design with viable draws")
    from bayesid.diagnostics.preposterior import whiten_result

    res.fisher, res.points = res.fisher[keep], res.points[keep]
    whiten_result(res, white)
    return _result_from_information(res.mean_whitened, white, names, free_parameters(model), d.name, prior_label,
                                    lambda_tol, th, failed)


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


_METHODS = ("fisher", "mcmc", "npe")
_SIM_OPTIONS = ("n_datasets", "fit_kwargs", "n_simulations", "npe_kwargs", "n_posterior_draws", "executor",
                "checkpoint", "progressbar")


def _check_method(method, options) -> None:
    from bayesid.errors import BadInputError

    if method not in _METHODS:
        raise BadInputError(f"method={method!r}; use one of {list(_METHODS)}")
    unknown = sorted(set(options) - set(_SIM_OPTIONS))
    if unknown:
        raise BadInputError(f"unknown option(s) {unknown} for design comparison; options of the mcmc / npe "
                            f"methods: {list(_SIM_OPTIONS)}")


def compare(spec, designs=None, priors=None, n_prior: int = 64, n_replicates: int | None = None,
            lambda_tol: float = 0.25, random_seed: int = 0, thresholds=None, method: str = "fisher",
            **options) -> DesignComparison:
    """Rank experimental and prior designs by how much they are expected to identify.

    Parameters
    ----------
    spec : str, ModelSpec, pymc.Model or callable
        Registered model; a ``pm.Model`` or model factory goes to :func:`compare_model`.
    designs : list of str or Design, optional
        Design names or :class:`~bayesid.models.Design` objects (e.g. ``spec.make_design("imu_accel",
        duration=1.0)``); default: all of the model's designs.
    priors : dict of str -> dict, optional
        Named prior designs, each a dict of prior overrides ``{parameter: Prior}``; the default
        priors are always included as ``"default"``.
    n_prior : int
        Prior draws over which the information is averaged (fisher).
    n_replicates : int, optional
        Replicate datasets per prior draw where the information has no closed form (default
        ``max(20, 10·d)``).
    lambda_tol : float
        Whitened information below which a direction counts as uninformed.
    random_seed : int
    method : {"fisher", "mcmc", "npe"}
        See :func:`compare_model`; mcmc and npe run on the spec's PyMC program (its forward
        sampler), with the spec's :meth:`sampler_kwargs` for the NUTS fits.
    **options
        ``n_datasets, fit_kwargs, n_simulations, npe_kwargs, n_posterior_draws, executor, checkpoint,
        progressbar`` for mcmc / npe (:func:`compare_model`).

    Returns
    -------
    DesignComparison
        For mcmc / npe a :class:`SimulationDesignComparison` (same table, plus per-dataset records).

    Raises
    ------
    BadInputError
        Unknown design, prior design, parameter, method or option.
    """
    from bayesid import models
    from bayesid.diagnostics.verdicts import Thresholds
    from bayesid.errors import BadInputError

    if not isinstance(spec, str) and not hasattr(spec, "known_answers"):  # a pm.Model or a model factory
        return compare_model(spec, designs, priors, method=method, n_prior=n_prior, n_replicates=n_replicates,
                             lambda_tol=lambda_tol, random_seed=random_seed, thresholds=thresholds, **options)
    _check_method(method, options)
    th = thresholds or Thresholds()
    spec = models.get(spec)
    designs, priors = _validate_compare(spec, designs, priors, n_prior, n_replicates)
    designs = list(designs or spec.designs)
    for d in designs:
        try:
            spec.design(d)
        except KeyError as err:
            raise BadInputError(f"unknown design {d!r} of {spec.name}; designs: {sorted(spec.designs)}") from err
    prior_designs = {"default": {}, **(priors or {})}
    if method != "fisher":
        space = _SpecSpace(spec, designs, priors)
        return _simulation_compare(space, method, th, random_seed, n_prior, lambda_tol, **options)
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
        if priors is not None and not isinstance(priors, dict):
            raise BadInputError(f"priors must be a dict {{prior design name: {{factory argument: value}}}}, "
                                f"got {type(priors).__name__}")
        bad = [k for k, v in (priors or {}).items() if not isinstance(v, dict)]
        if bad:
            raise BadInputError(f"prior design(s) {bad} must each be a dict of factory arguments")
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
        self.token = uuid.uuid4().hex  # one comparison: its jobs share it (executor.Shared)
        self.name = (getattr(self.factory, "__name__", "model") if self.factory is not None
                     else (model.name or "pm.Model"))

    def __getstate__(self):  # workers rebuild the models they need (compiled functions do not travel)
        state = {k: v for k, v in self.__dict__.items() if k not in ("_nuts", "_theta")}
        state["_cache"] = {}
        return state

    def _check_names(self, design, prior):
        from bayesid.errors import BadInputError

        if design not in self.designs:
            raise BadInputError(f"unknown design {design!r}; designs: {sorted(self.designs)}")
        if prior not in self.priors:
            raise BadInputError(f"unknown prior design {prior!r}; prior designs: {sorted(self.priors)}")

    def model_for(self, design, prior="default"):
        """``(model, data_values)`` for the named design and prior design."""
        import pymc as pm

        from bayesid.errors import BadInputError

        self._check_names(design, prior)
        if self.factory is None:
            return self.base, dict(self.designs[design])
        key = (design, prior)
        if key not in self._cache:
            try:
                m = self.factory(**self.designs[design], **self.priors[prior])
            except TypeError as err:
                raise BadInputError(f"the model factory rejected design {design!r} / prior {prior!r}: {err}") from err
            except ValueError as err:
                raise BadInputError(f"design {design!r} / prior {prior!r}: the model cannot take these values "
                                    f"({err})") from err
            if not isinstance(m, pm.Model):
                raise BadInputError(f"the model factory returned {type(m).__name__}, not a pymc.Model")
            self._cache[key] = m
        return self._cache[key], {}

    def fit_kwargs(self, model) -> dict:
        """Extra :func:`bayesid.fit` arguments this space's models need (none for a plain model)."""
        return {}

    def describe(self) -> dict:
        """JSON-able identity of the designs and priors (checkpoint keys)."""
        return {"designs": {k: {a: np.asarray(v).tolist() if not isinstance(v, tuple) else repr(v)
                                for a, v in dv.items()} for k, dv in self.designs.items()},
                "priors": {k: {a: repr(v) for a, v in pv.items()} for k, pv in self.priors.items()}}

    def check_all(self):
        """Build every (design, prior) model and set every design once: a design value the model cannot
        take fails here, before any simulation or fit, with a :class:`BadInputError`
        (:class:`~bayesid.simulate.DesignValueError`).

        Each ``pm.Data`` design is checked by one forward draw of the whole model (prior and observed
        variables) from a function compiled once per model without C or numba code generation
        (:func:`_design_check_fn`): the check costs milliseconds, where compiling the simulator for
        it cost seconds — a simulator the Fisher screen never uses, and that workers compile
        for themselves."""
        from bayesid.simulate import DesignValueError, simulator_for

        for d in self.designs:
            for p in self.priors:
                m, values = self.model_for(d, p)
                if values:  # pm.Data designs of one model: every value set and drawn once
                    sim = simulator_for(m)
                    with sim.design(values):
                        try:
                            with np.errstate(all="ignore"):
                                _design_check_fn(m)()
                        except (ValueError, IndexError) as err:
                            raise DesignValueError(
                                f"design {d!r}: drawing the model failed ({err}). If a design changed a "
                                "pm.Data container, the observed variables' shapes must follow it: give them "
                                "shape=x.shape (or dims whose coords the design changes) instead of a fixed "
                                "observed array.") from err


class _SpecSpace(_DesignSpace):
    """A registered :class:`~bayesid.models.ModelSpec` as a design space: design names of the spec,
    prior designs as prior overrides; each model is the spec's PyMC program (built on data simulated at
    the true values, which only fix the layout)."""

    def __init__(self, spec, designs, priors):
        self.spec = spec
        self.designs = {spec.design(d).name: spec.design(d) for d in designs}
        self.priors = {"default": {}, **(priors or {})}
        self.factory = spec
        self._cache = {}
        self.token = uuid.uuid4().hex
        self.name = spec.name

    def model_for(self, design, prior="default"):
        self._check_names(design, prior)
        key = (design, prior)
        if key not in self._cache:
            d = self.designs[design]
            data0 = self.spec.simulate(self.spec.true_values(), design=d, random_seed=0)
            self._cache[key] = self.spec.build(data0, design=d, priors=self.priors[prior] or None)
        return self._cache[key], {}

    def fit_kwargs(self, model) -> dict:
        return dict(self.spec.sampler_kwargs(model))

    def describe(self) -> dict:
        return {"spec": self.spec.name,
                "designs": {k: json.loads(json.dumps(d.settings, default=str)) for k, d in self.designs.items()},
                "priors": {k: {a: repr(v) for a, v in pv.items()} for k, pv in self.priors.items()}}


def _graph_key(model) -> tuple:
    """Cache key of compiled functions of ``model`` (:func:`bayesid.vectorize.cached`, by model object):
    its variables, so a model changed after a comparison (a variable added or replaced) compiles anew.
    ``pm.Data`` values are read when the functions are called, so every design of a model shares them."""
    return ("bayesid.designs", len(model.named_vars),
            tuple(id(v) for v in model.basic_RVs + model.potentials + model.deterministics))


def _design_check_fn(model):
    """One forward draw of every observed variable of ``model`` (a fixed seed), compiled once per model
    object in FAST_COMPILE mode (no C/numba code generation); reads the ``pm.Data`` values set."""
    import pymc as pm

    from bayesid.vectorize import cached, no_traces

    def build():
        with no_traces():
            return pm.pytensorf.compile([], list(model.observed_RVs), random_seed=0, mode="FAST_COMPILE",
                                        on_unused_input="ignore")

    return cached(model, _graph_key(model), "design check", build)


def _compile_unconstrained_prior(model):
    import pymc as pm
    import pytensor.tensor as pt
    from pytensor.tensor.random.type import RandomGeneratorType

    from bayesid.vectorize import _batched_forward, no_traces

    outs = []
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms.get(rv)
        outs.append(rv if tr is None else tr.forward(rv, *rv.owner.inputs))
    n = pt.iscalar("n_draws")
    with no_traces():
        fn = pm.pytensorf.compile(inputs=[n], outputs=_batched_forward(outs, n), mode="FAST_COMPILE")
    return fn, [v for v in fn.get_shared() if isinstance(v.type, RandomGeneratorType)]


def _unconstrained_prior(model, layout, n: int, seed) -> np.ndarray:
    """``n`` prior draws in the unconstrained coordinates, ``(n, d)`` in ``layout`` order, from one call
    of the model's vectorised forward-sampling graph (:func:`bayesid.vectorize.sample_prior`'s graph,
    with the transforms' forward maps appended; the number of draws is an input, so one function,
    compiled once per model object in FAST_COMPILE mode — one call needs no JIT — serves the screen's
    draws and the whitening's, for every design; reseeded from ``seed`` every call, so the draws do not
    depend on the cache). Reads the ``pm.Data`` values set when called."""
    from pymc.pytensorf import reseed_rngs

    from bayesid.diagnostics.preposterior import flatten_points
    from bayesid.vectorize import cached

    fn, rngs = cached(model, _graph_key(model), "unconstrained prior", lambda: _compile_unconstrained_prior(model))
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    reseed_rngs(rngs, [int(v) for v in ss.generate_state(4)])
    vals = fn(np.int32(n))
    return flatten_points({model.rvs_to_values[rv].name: np.asarray(v) for rv, v in zip(model.free_RVs, vals)},
                          layout)


def _design_whitening(sim, values, layout, n_prior, random_seed):
    """Prior draws (n_prior, for the Fisher screen) and the prior whitening of one design: the same
    seeds for every design and method (common random numbers), so the fisher, mcmc and npe results of a
    design share one whitening."""
    from bayesid.diagnostics.ridges import whitening

    s_prior, s_white, s_rep = np.random.SeedSequence(random_seed).spawn(3)
    with sim.design(values):
        pts = _unconstrained_prior(sim.model, layout, n_prior, s_prior)
        wpts = _unconstrained_prior(sim.model, layout, max(2000, 20 * n_prior), s_white)
    return pts, whitening(wpts), s_rep


def _fisher_model(space, design, prior, n_prior, n_replicates, lambda_tol, random_seed, th):
    from bayesid.diagnostics.preposterior import fisher_at_draws, value_layout
    from bayesid.pymc_utils import free_parameters
    from bayesid.simulate import simulator_for

    model, values = space.model_for(design, prior)
    sim = simulator_for(model)
    names, layout = value_layout(model)
    pts, white, s_rep = _design_whitening(sim, values, layout, n_prior, random_seed)
    with sim.design(values):
        res = fisher_at_draws(model, pts, white, n_replicates=n_replicates, lambda_tol=lambda_tol,
                              random_seed=s_rep, cache_key=_graph_key(model))
    return _result_from_information(res.mean_whitened, white, names, free_parameters(model), design, prior,
                                    lambda_tol, th, res.n_failed)


def compare_model(model, designs, priors=None, method: str = "fisher", n_prior: int = 64,
                  n_replicates: int | None = None, n_datasets: int = 20, fit_kwargs=None,
                  n_simulations: int = 4000, npe_kwargs=None, n_posterior_draws: int = 1000,
                  lambda_tol: float = 0.25, random_seed: int = 0, thresholds=None, executor=None,
                  checkpoint=None, progressbar: bool = True) -> DesignComparison:
    """Rank the designs of any PyMC model by expected identifiability, by one of three methods.

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
    method : {"fisher", "mcmc", "npe"}
        ``"fisher"``: prior-averaged Fisher information (:func:`bayesid.diagnostics.preposterior.
        fisher_at_draws`, shared with the structural check), no sampling. ``"mcmc"``: ``n_datasets``
        prior-predictive datasets per design, each fitted by :func:`bayesid.fit`. ``"npe"``: one
        amortized posterior per design (:class:`bayesid.neural.NPE` trained on ``n_simulations`` of that
        design's simulations), evaluated on the same ``n_datasets`` datasets the mcmc method fits.
    n_prior, n_replicates, lambda_tol, thresholds
        Fisher screen; ``n_prior`` also sets the size of the prior whitening (``max(2000, 20·n_prior)``
        draws) every method uses.
    n_datasets : int
        Simulated datasets per (design, prior) for mcmc / npe.
    fit_kwargs : dict, optional
        For :func:`bayesid.fit` (mcmc; default ``draws=200, tune=200, chains=1``).
    n_simulations, npe_kwargs, n_posterior_draws
        NPE training simulations per design, :class:`~bayesid.neural.NPE` arguments (e.g.
        ``{"epochs": 20}``), posterior draws per dataset.
    executor : None, int or dask.distributed.Client
        Where the mcmc datasets (npe: the designs) run, :func:`bayesid.executor.run_jobs`.
    checkpoint : path, optional
        A :class:`bayesid.executor.CheckpointStore` directory for mcmc / npe: an interrupted run
        resumes where it stopped; a store of another comparison is refused.
    random_seed : int
        Common random numbers: every design uses the same seeds (the same prior draws).

    Returns
    -------
    DesignComparison
        For mcmc / npe a :class:`SimulationDesignComparison`: the same table (verdicts, uninformed
        directions, contraction, ranking rule) from the expected whitened posterior covariance, plus
        the probability each parameter is identified, the z-score spread and the per-dataset records.

    Raises
    ------
    BadInputError
        Unknown method, design or prior name, design values the model cannot take (a
        :class:`~bayesid.simulate.DesignValueError`), non-positive sizes.
    """
    from bayesid.diagnostics.verdicts import Thresholds

    _check_method(method, {})
    space = _DesignSpace(model, designs, priors)
    space.check_all()
    th = thresholds or Thresholds()
    if method != "fisher":
        return _simulation_compare(space, method, th, random_seed, n_prior, lambda_tol, n_datasets=n_datasets,
                                   fit_kwargs=fit_kwargs, n_simulations=n_simulations, npe_kwargs=npe_kwargs,
                                   n_posterior_draws=n_posterior_draws, executor=executor,
                                   checkpoint=checkpoint, progressbar=progressbar)
    results = []
    for d in space.designs:
        for p in space.priors:
            results.append(_fisher_model(space, d, p, n_prior, n_replicates, lambda_tol, random_seed, th))
    return DesignComparison(space.name, results, th)


# ================================================================ mcmc and npe: simulated datasets
#: What a worker of a design comparison imports when it starts (:func:`bayesid.executor.run_jobs`'s
#: ``preload``): the modules the first job would import anyway, so that their cost is the worker's
#: start-up, not its first dataset's.
WORKER_MODULES = ("pymc", "nutpie", "pyarrow", "bayesid.designs", "bayesid.fit", "bayesid.simulate",
                  "bayesid.diagnostics.preposterior")


def _dataset(sim, values, i, n_datasets, seeds, theta=None):
    """Dataset ``i`` of a design (common random numbers: prior draw ``i`` and noise seed ``i`` are the
    same for every design and for both simulation methods): ``(theta_i, data_i)``. ``theta``: the
    design's ``n_datasets`` prior draws when already drawn."""
    s_prior, s_noise = (np.random.SeedSequence(s) for s in seeds[:2])
    with sim.design(values):
        if theta is None:
            theta = sim.sample_prior(n_datasets, s_prior)
        th_i = {k: v[i:i + 1] for k, v in theta.items()}
        data = sim.simulate(th_i, np.random.SeedSequence(s_noise.entropy, spawn_key=(i,)))
    return th_i, data


def _viable(model, point: dict) -> bool:
    """Whether the model's potentials are finite at the true parameters ``point`` (unconstrained
    ``{value name: value}``). A dataset simulated at parameters that a ``pm.Potential`` rejects (a gait
    that falls) is not viable: it is counted, not fitted. Without potentials every prior draw is viable
    (a proper prior and likelihood are finite almost surely)."""
    if not model.potentials:
        return True
    fn = getattr(model, "_bayesid_potential_fn", None)
    if fn is None:
        fn = model.compile_fn(model.logp(vars=model.potentials), inputs=model.value_vars,
                              on_unused_input="ignore")
        model._bayesid_potential_fn = fn
    with np.errstate(all="ignore"):
        return bool(np.isfinite(fn(point)))


def _record(names, truth, draws, divergences=0) -> dict:
    """JSON-able summary of one dataset's posterior draws ``(S, d)`` (unconstrained, layout order)."""
    draws = np.asarray(draws, float)
    return {"names": list(names), "truth": np.asarray(truth, float).tolist(), "mean": draws.mean(0).tolist(),
            "cov": np.atleast_2d(np.cov(draws, rowvar=False)).tolist(), "divergences": int(divergences),
            "failed": False}


#: Settings the compiled NUTS path (:class:`_CompiledNuts`) reproduces exactly as :func:`bayesid.fit`
#: passes them to nutpie; any other ``fit_kwargs`` key (another sampler, ``initvals``...) fits each
#: dataset through :func:`bayesid.fit` itself.
_COMPILED_NUTS_KEYS = {"draws", "tune", "chains", "target_accept", "nuts", "compile_kwargs", "adaptation",
                       "sampler", "progressbar", "cores"}


class _CompiledNuts:
    """NUTS (nutpie) on one model, compiled once and reused for every dataset.

    The observed values become shared variables (``bayesid_observed_<name>``) of a copy of the model
    (:func:`pymc.observe`), so nutpie's ``with_data`` swaps in each dataset — and, for a ``pm.Model``
    with ``pm.Data`` designs, each design's values — without compiling again. The settings are those
    :func:`bayesid.fit` gives nutpie (adaptation by :func:`bayesid.fit.choose_adaptation`, target
    acceptance, the seed through :func:`bayesid.fit.posterior_seed`), so the posterior draws are the ones
    ``bayesid.fit(pm.observe(model, data), random_seed=seed, ...)`` samples (a test checks this); only
    fit's post-processing (prior draws, log densities), which the design summary does not read, is
    skipped, and the draws are read from nutpie's Arrow trace (:func:`_raw_posterior`). Each fit runs
    its chains on ``cores`` threads (default 1: the parallelism is the executor's workers')."""

    def __init__(self, model, data):
        import pymc as pm
        import pytensor

        self.shared = {}
        obs = {}
        for rv in model.observed_RVs:
            name = f"bayesid_observed_{rv.name}"
            obs[rv] = pytensor.shared(np.asarray(data[rv.name][0], dtype=rv.dtype), name=name,
                                      shape=rv.type.shape)
            self.shared[rv.name] = name
        self.fitted = pm.observe(model, obs)
        self.compiled = None

    def compile(self, settings: dict) -> None:
        """Compile nutpie's sampler with :func:`bayesid.fit`'s handling of ``settings``."""
        import nutpie

        from bayesid.fit import choose_adaptation

        self.settings = settings
        nuts = dict(settings.get("nuts") or {})
        if "max_treedepth" in nuts:
            nuts["maxdepth"] = nuts.pop("max_treedepth")
        self.nuts = {"adaptation": choose_adaptation(self.fitted, settings.get("adaptation", "auto")), **nuts,
                     "target_accept": float(settings.get("target_accept", 0.8))}
        # var_names=[]: the trace keeps only the value variables (all the summary reads), so nutpie's
        # second compiled function (the constrained values of every draw) is the identity
        self.compiled = nutpie.compile_pymc_model(self.fitted, backend="numba", var_names=[],
                                                  **dict(settings.get("compile_kwargs") or {}))
        self.data_names = {v.name for v in self.compiled.shared_var_keys}

    def sample(self, data: dict, values: dict, seed: int, layout):
        """Unconstrained posterior draws ``(S, d)`` in ``layout`` order and the number of divergences."""
        import nutpie

        from bayesid.diagnostics.preposterior import flatten_points
        from bayesid.fit import posterior_seed

        upd = {self.shared[k]: np.asarray(v[0]) for k, v in data.items() if k in self.shared}
        for k, v in values.items():  # pm.Data design values the compiled density reads
            if k in self.data_names:
                upd[k] = np.asarray(v[0] if isinstance(v, tuple) else v)
        chains = int(self.settings.get("chains", 1))
        try:  # the seed pm.sample gives nutpie for fit's posterior seed (first chain's)
            from pymc.util import get_random_generator

            nseed = int(get_random_generator(posterior_seed(seed)).spawn(chains)[0].integers(2**30))
        except ImportError:  # pragma: no cover - a PyMC without it: still a fixed seed
            nseed = int(posterior_seed(seed))
        trace = nutpie.sample(self.compiled.with_data(**upd), draws=int(self.settings.get("draws", 200)),
                              tune=max(1, int(self.settings.get("tune", 200))), chains=chains,
                              cores=int(self.settings.get("cores") or 1), seed=nseed, save_warmup=False,
                              progress_bar=False, store_unconstrained=True, return_raw_trace=True, **self.nuts)
        arrays, div = _raw_posterior(trace, [v.name for v, _, _ in layout])
        return flatten_points(arrays, layout), div


def _raw_posterior(trace, names):
    """Posterior draws ``{name: (chains·draws, *shape)}`` (chain after chain, tuning rows dropped) and
    the number of divergent posterior draws, read straight from nutpie's Arrow trace.

    The same numbers as nutpie's DataTree (its ``posterior`` / ``unconstrained_posterior`` groups,
    ``sample_stats.diverging``), without building it: that conversion cost as much as the sampling
    itself for a fit of 4 chains × 2000 iterations of a small model (0.15 s of 0.30 s, profiled)."""
    import pyarrow

    def column(batch, name):
        col = batch.column(name)
        meta = col.field.metadata or {}
        shape = [int(k) for k in meta.get(b"shape", b"").decode().split(",") if k]
        arr = pyarrow.array(col)
        if hasattr(arr, "flatten"):
            arr = arr.flatten()
        return arr.to_numpy(zero_copy_only=False).reshape(batch.num_rows, *shape)

    draw_batches, stat_batches = trace.get_arrow_trace()
    parts, div = {n: [] for n in names}, 0
    for draw, stat in zip(draw_batches, stat_batches):
        post = ~column(stat, "tuning").astype(bool)
        for n in names:
            parts[n].append(column(draw, n)[post])
        if "diverging" in stat.schema.names:
            div += int(column(stat, "diverging")[post].astype(bool).sum())
    return {n: np.concatenate(v) for n, v in parts.items()}, div


def _fit_settings(space, fitted, fit_kwargs) -> dict:
    # one core per fit (nutpie runs chains on ``cores`` threads): the parallelism is the workers', and a
    # serial run is then the one-core baseline they are compared with
    kw = dict(draws=200, tune=200, chains=1, cores=1, progressbar=False)
    kw.update(space.fit_kwargs(fitted))
    kw.update(fit_kwargs or {})
    return kw


def _compiled_nuts(space, design, prior, model, values, data, fit_kwargs):
    """The resident space's :class:`_CompiledNuts` for (design, prior), compiled at first use; None when
    the settings need :func:`bayesid.fit`. A ``pm.Model``'s ``pm.Data`` designs share one compilation
    when they leave the parameter layout unchanged."""
    from bayesid.diagnostics.preposterior import value_layout

    cache = space.__dict__.setdefault("_nuts", {})
    d = len(value_layout(model)[0])
    key = ("all designs", prior, d) if space.factory is None else (design, prior, d)
    if key not in cache:
        runner = _CompiledNuts(model, data)
        kw = _fit_settings(space, runner.fitted, fit_kwargs)  # e.g. jitter_rvs of this copy's variables
        if set(kw) - _COMPILED_NUTS_KEYS or kw.get("sampler", "nutpie") != "nutpie":
            runner = None
        else:
            runner.compile(kw)
        cache[key] = runner
    return cache[key]


def _design_prior_draws(space, sim, design, prior, values, n_datasets, seeds):
    """The ``n_datasets`` prior draws of a design, drawn once per process."""
    cache = space.__dict__.setdefault("_theta", {})
    key = (design, prior, int(n_datasets), int(seeds[0]))
    if key not in cache:
        with sim.design(values):
            cache[key] = sim.sample_prior(int(n_datasets), np.random.SeedSequence(seeds[0]))
    return cache[key]


def _mcmc_dataset(space, design, prior, i, n_datasets, seeds, fit_kwargs) -> dict:
    """Simulate dataset ``i`` of a design and fit it by NUTS; JSON-able summary. With the default
    settings the sampler is compiled once per process and design (:class:`_CompiledNuts`: the draws of
    :func:`bayesid.fit`); other ``fit_kwargs`` go through :func:`bayesid.fit` per dataset."""
    import pymc as pm

    from bayesid.diagnostics.preposterior import flatten_points, value_layout
    from bayesid.fit import fit
    from bayesid.simulate import simulator_for

    model, values = space.model_for(design, prior)
    sim = simulator_for(model)
    names, layout = value_layout(model)
    theta = _design_prior_draws(space, sim, design, prior, values, n_datasets, seeds)
    th_i, data = _dataset(sim, values, i, n_datasets, seeds, theta)
    seed = int(np.random.SeedSequence(seeds[2], spawn_key=(i,)).generate_state(1)[0] % 2**31)
    with sim.design(values):
        truth_dict = sim.to_unconstrained(th_i)
        truth = flatten_points(truth_dict, layout)[0]
        if not _viable(model, {k: v[0] for k, v in truth_dict.items()}):
            return {"names": names, "failed": True}
        runner = _compiled_nuts(space, design, prior, model, values, data, fit_kwargs)
        if runner is not None:
            draws, div = runner.sample(data, values, seed, layout)
            return _record(names, truth, draws, div)
        fitted = pm.observe(model, {k: v[0] for k, v in data.items()})
        tree = fit(fitted, random_seed=seed, **_fit_settings(space, fitted, fit_kwargs))
    post = tree["unconstrained_posterior"].to_dataset()
    draws = flatten_points({v.name: post[v.name].values.reshape(-1, *post[v.name].shape[2:]) for v, _, _ in layout},
                           layout)
    div = tree["sample_stats"]["diverging"].values.sum() if "diverging" in tree["sample_stats"] else 0
    return _record(names, truth, draws, div)


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run torch on ``n`` intra-op threads (restored after): small networks train ~10× faster on one
    thread than on oversubscribed cores (measured: 3000 simulations × 15 epochs, 96 s → 8.5 s on the
    loaded 2-core machine)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _npe_design(space, design, prior, n_datasets, seeds, n_simulations, npe_kwargs, n_posterior_draws) -> dict:
    """Train one NPE on ``n_simulations`` simulations of a design and summarise its posterior on the
    design's ``n_datasets`` datasets (the same ones the mcmc method fits)."""
    from bayesid.diagnostics.preposterior import flatten_points, value_layout
    from bayesid.neural import NPE
    from bayesid.simulate import simulator_for

    model, values = space.model_for(design, prior)
    sim = simulator_for(model)
    names, layout = value_layout(model)
    s_train, s_sim, s_draw = np.random.SeedSequence(seeds[3]).spawn(3)
    kw = {"random_seed": int(s_train.generate_state(1)[0] % 2**31)}
    kw.update(npe_kwargs or {})
    with _torch_threads(1):  # parallelism comes from the executor's workers, as for the mcmc fits
        est = NPE(**kw).fit(model, n_simulations=int(n_simulations), design=values, simulation_seed=s_sim)
    if list(est.unconstrained_names) != list(names):  # the same layout as the fisher screen and mcmc
        raise RuntimeError(f"NPE parameters {est.unconstrained_names} differ from the model's {names}")
    recs, viable, truths, datas = [], [], [], []
    with sim.design(values):
        theta = sim.sample_prior(int(n_datasets), np.random.SeedSequence(seeds[0]))
    for i in range(int(n_datasets)):
        th_i, data = _dataset(sim, values, i, n_datasets, seeds, theta)
        with sim.design(values):
            td = sim.to_unconstrained(th_i)
            ok = _viable(model, {k: v[0] for k, v in td.items()})
        viable.append(ok)
        truths.append(flatten_points(td, layout)[0])
        datas.append(data)
    idx = [i for i, ok in enumerate(viable) if ok]
    draws = None
    if idx:
        batch = {k: np.concatenate([datas[i][k] for i in idx]) for k in datas[0]}
        with _torch_threads(1):
            draws = est.sample(batch, int(n_posterior_draws), random_seed=s_draw)
    j = 0
    for i in range(int(n_datasets)):
        if viable[i]:
            recs.append(_record(names, truths[i], draws[j]))
            j += 1
        else:
            recs.append({"names": names, "failed": True})
    meta = est.meta
    return {"records": recs, "training": {"converged": bool(est.converged()),
                                          "seconds": float(meta.get("train_seconds", np.nan)),
                                          "n_simulations": int(meta["n_train"]),
                                          "final_val_loss": float(est.history["val_loss"][-1])}}


def _simulation_compare(space, method, th, random_seed, n_prior, lambda_tol, n_datasets=20, fit_kwargs=None,
                        n_simulations=4000, npe_kwargs=None, n_posterior_draws=1000, executor=None,
                        checkpoint=None, progressbar=True) -> SimulationDesignComparison:
    """mcmc / npe over every (design, prior) of ``space``: jobs through :func:`bayesid.executor.run_jobs`
    (one per dataset for mcmc, one per design for npe), checkpointed, then summarised per design by
    :func:`_result_from_information` on the expected whitened posterior covariance."""
    from bayesid.errors import BadInputError
    from bayesid.executor import CheckpointStore, Shared, run_jobs
    from bayesid.pymc_utils import model_fingerprint

    for name, v, lo in (("n_datasets", n_datasets, 2), ("n_simulations", n_simulations, 10),
                        ("n_posterior_draws", n_posterior_draws, 10), ("n_prior", n_prior, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise BadInputError(f"{name} must be an integer of at least {lo}, got {v!r}")
    n_datasets = int(n_datasets)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_seed).spawn(4)]
    pairs = [(d, p) for d in space.designs for p in space.priors]
    settings = ({"fit_kwargs": fit_kwargs or {}} if method == "mcmc" else
                {"n_simulations": int(n_simulations), "npe_kwargs": npe_kwargs or {},
                 "n_posterior_draws": int(n_posterior_draws)})
    store = None
    if checkpoint is not None:
        fps = {f"{d}/{p}": model_fingerprint(space.model_for(d, p)[0], observed=False) for d, p in pairs}
        key = {"kind": f"designs.{method}", "models": fps, **space.describe(), "random_seed": random_seed,
               "n_datasets": n_datasets, **settings}
        store = CheckpointStore(checkpoint, key)
    shared = Shared(space, space.token)  # pickled once per run, unpickled once per worker
    if method == "mcmc":
        jobs = [(f"{d}|{p}|{i}", (shared, d, p, i, n_datasets, seeds, fit_kwargs))
                for d, p in pairs for i in range(n_datasets)]
        # datasets that share a compiled sampler stay on one worker: a pm.Model's designs share one,
        # a factory's (design, prior) pairs have one each
        groups = {f"{d}|{p}|{i}": (p if space.factory is None else f"{d}|{p}") for d, p in pairs
                  for i in range(n_datasets)}
        res = run_jobs(_mcmc_dataset, jobs, executor=executor, checkpoint=store, progressbar=progressbar,
                       description=f"fitting datasets of {space.name}", groups=groups, preload=WORKER_MODULES)
        records = {(d, p): [res[f"{d}|{p}|{i}"] for i in range(n_datasets)] for d, p in pairs}
        training = {}
    else:
        jobs = [(f"npe|{d}|{p}", (shared, d, p, n_datasets, seeds, n_simulations, npe_kwargs, n_posterior_draws))
                for d, p in pairs]
        res = run_jobs(_npe_design, jobs, executor=executor, checkpoint=store, progressbar=progressbar,
                       description=f"training one NPE per design of {space.name}",
                       preload=WORKER_MODULES + ("bayesid.neural",))
        records = {(d, p): res[f"npe|{d}|{p}"]["records"] for d, p in pairs}
        training = {(d, p): res[f"npe|{d}|{p}"]["training"] for d, p in pairs}
    results = [_summarise(space, d, p, records[(d, p)], n_prior, lambda_tol, random_seed, th) for d, p in pairs]
    return SimulationDesignComparison(space.name, results, th, method=method, records=records,
                                      n_datasets=n_datasets, training=training)


def _summarise(space, design, prior, recs, n_prior, lambda_tol, random_seed, th) -> DesignResult:
    """One design's records → :class:`DesignResult`: ``R̄`` = mean whitened posterior covariance over
    the datasets; the equivalent information ``W̄ = R̄⁻¹ − I`` goes through the same assembly as the
    Fisher screen (for a linear-Gaussian model the two are equal). Per parameter also: probability of
    being identified (contraction ≥ ``th.identified``), mean contraction and its standard error,
    spread of the z-scores."""
    from bayesid.diagnostics.preposterior import value_layout
    from bayesid.pymc_utils import free_parameters
    from bayesid.simulate import simulator_for

    model, values = space.model_for(design, prior)
    names, layout = value_layout(model)
    _, white, _ = _design_whitening(simulator_for(model), values, layout, n_prior, random_seed)
    ok = [r for r in recs if not r.get("failed")]
    if not ok:
        raise RuntimeError(f"{space.name}/{design}/{prior}: no simulated dataset was viable")
    Linv = np.linalg.inv(white.chol)
    covs = np.array([r["cov"] for r in ok], float).reshape(len(ok), len(names), len(names))
    Rw = np.einsum("ij,sjk,lk->sil", Linv, covs, Linv)
    rbar = 0.5 * (Rw.mean(0) + Rw.mean(0).T)
    lam_r, vec_r = np.linalg.eigh(rbar)
    wbar = vec_r @ np.diag(1.0 / np.clip(lam_r, 1e-12, None) - 1.0) @ vec_r.T
    res = _result_from_information(wbar, white, names, free_parameters(model), design, prior, lambda_tol, th,
                                   len(recs) - len(ok))
    prior_var = np.einsum("ij,ij->i", white.chol, white.chol)
    c = 1.0 - np.array([np.diag(cv) for cv in covs]) / prior_var
    z = np.array([(np.array(r["mean"]) - np.array(r["truth"])) / np.sqrt(np.diag(np.array(r["cov"])))
                  for r in ok])
    natural = list(res.predicted_contraction)
    n = len(ok)
    res.extra = {}
    for j, nm in enumerate(natural):
        res.extra[f"p_identified[{nm}]"] = float(np.mean(c[:, j] >= th.identified))
        res.extra[f"contraction_se[{nm}]"] = float(c[:, j].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
        res.extra[f"z_sd[{nm}]"] = float(z[:, j].std(ddof=1)) if n > 1 else np.nan
    # per dataset: uninformed directions of its own whitened posterior (ratio ≥ th.ridge)
    n_unf = np.array([(np.linalg.eigvalsh(0.5 * (r_ + r_.T)) >= th.ridge).sum() for r_ in Rw])
    res.extra["p_uninformed_direction"] = float(np.mean(n_unf > 0))
    res.extra["divergences"] = int(sum(r.get("divergences", 0) for r in ok))
    return res


@dataclass
class SimulationDesignComparison(DesignComparison):
    """Designs ranked from posteriors on simulated datasets (method ``"mcmc"``: NUTS fits by
    :func:`bayesid.fit`; ``"npe"``: one amortized posterior per design).

    The table has the columns of the Fisher screen's (same ranking rule, verdicts from the expected
    whitened posterior covariance ``R̄``, whose equivalent information is ``R̄⁻¹ − I``) plus, per
    parameter, ``p_identified[...]`` (share of datasets with contraction ≥ ``thresholds.identified``),
    ``contraction_se[...]`` and ``z_sd[...]`` (≈ 1 for a calibrated posterior), and
    ``p_uninformed_direction`` (share of datasets whose own posterior keeps a direction at ≥
    ``thresholds.ridge`` of its prior variance).

    Attributes
    ----------
    method : str
    records : dict
        ``{(design, prior): [per-dataset summary]}`` (what the checkpoint stores).
    n_datasets : int
    training : dict
        npe only: per (design, prior) ``converged``, ``seconds``, ``n_simulations``, ``final_val_loss``.
    """

    method: str = "mcmc"
    records: dict = field(default_factory=dict)
    n_datasets: int = 0
    training: dict = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        t = super().table
        extra = pd.DataFrame({(r.design, r.prior): getattr(r, "extra", {}) for r in self.results}).T
        extra.index = extra.index.set_names(["design", "prior"])
        return t.join(extra)

    def __repr__(self):
        t = self.table
        cols = [c for c in ("rank", "identified", "uninformed_directions", "uninformed", "p_uninformed_direction")
                if c in t.columns]
        return (f"<SimulationDesignComparison {self.model}: {self.method}, {self.n_datasets} datasets per "
                f"design>\n{t[cols].to_string()}")


McmcDesignComparison = SimulationDesignComparison  # the name of earlier versions


def compare_mcmc(space, n_datasets=20, fit_kwargs=None, random_seed=0, executor=None, checkpoint=None,
                 thresholds=None, progressbar=True, n_prior=64, lambda_tol=0.25) -> SimulationDesignComparison:
    """The mcmc method on a design space (see :func:`compare_model`)."""
    from bayesid.diagnostics.verdicts import Thresholds

    return _simulation_compare(space, "mcmc", thresholds or Thresholds(), random_seed, n_prior, lambda_tol,
                               n_datasets=n_datasets, fit_kwargs=fit_kwargs, executor=executor,
                               checkpoint=checkpoint, progressbar=progressbar)


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
