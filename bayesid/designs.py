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

__all__ = ["DesignResult", "DesignComparison", "compare"]


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
