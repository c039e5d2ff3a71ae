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

Import as ``from bayesid.compare import compare``; the module itself is callable too, so
``bayesid.compare(diagnosis, estimator, ...)`` works once ``bayesid.compare`` is imported.
"""

from __future__ import annotations

import base64
import html
import io
import re
import sys
import time
import types
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["compare", "NeuralComparison", "ReferenceDirections", "reference_from_known_answer",
           "direction_functionals", "explanation_study"]

# Neural verdicts use the diagnosis' cut-offs on the posterior/prior variance ratio, so that "recovered"
# and "identified" mean the same thing (bayesid.diagnostics.verdicts.Thresholds: identified when the
# ratio is at most 1 - identified = 0.5, a ridge when it is at least ridge = 0.8).
RECOVERED_RATIO = 0.5  # error ratio at most this: "recovered"
PRIOR_RATIO = 0.8  # error ratio at least this: "regresses to the prior"


# ---------------------------------------------------------------------------- reference directions
@dataclass
class RefDirection:
    """A direction known from the model's algebra (stands in for a diagnosis' ``Direction``)."""

    vector: np.ndarray
    loadings: dict
    coefficients: dict
    ratio: float
    verdict: str
    label: str
    ratio_se: float = float("nan")
    source: str = "known answer"


@dataclass
class RefCombination:
    name: str
    coefficients: dict
    ratio: float = float("nan")

    @property
    def contraction(self):
        return 1.0 - self.ratio


@dataclass
class ReferenceDirections:
    """The subset of the :class:`~bayesid.diagnostics.Diagnosis` API that :func:`compare` reads, built
    from a model's :class:`~bayesid.models.KnownAnswer` instead of MCMC (for tests, and for models with
    no diagnosis yet). Whitening is by the Cholesky factor of the prior covariance, as in the diagnosis.
    """

    unconstrained_names: list
    names: list
    prior_mean: np.ndarray
    prior_cov: np.ndarray
    directions: list
    combinations: list
    table: pd.DataFrame
    chol: np.ndarray = field(repr=False, default=None)

    @property
    def ridges(self):
        return [d for d in self.directions if d.verdict == "not identified"]

    def whiten(self, x_unc):
        x = np.atleast_2d(np.asarray(x_unc, float))
        return np.linalg.solve(self.chol, (x - self.prior_mean).T).T


def _parse_combination(text, tr):
    """'a + b' → {a: 1, b: 1}; 'a·b' → {a_log__: 1, b_log__: 1}; 'k/m' → {k_log__: 1, m_log__: -1}."""
    unc = dict(zip(tr.names, tr.unconstrained_names))
    s = text.replace(" ", "")
    if re.search(r"[·*/]", s):
        toks = re.split(r"([·*/])", s)
        coef, sign = {}, 1.0
        for t in toks:
            if t in "·*":
                sign = 1.0
            elif t == "/":
                sign = -1.0
            else:
                if t not in unc or not unc[t].endswith("_log__"):
                    return None
                coef[unc[t]] = sign
        return coef
    toks = re.split(r"([+-])", s)
    coef, sign = {}, 1.0
    for t in toks:
        if t == "+":
            sign = 1.0
        elif t == "-":
            sign = -1.0
        elif t:
            if t not in unc:
                return None
            coef[unc[t]] = sign
    return coef


def reference_from_known_answer(spec, design=None, priors=None, n_prior=20000, random_seed=None,
                                ) -> ReferenceDirections:
    """Directions and combinations from ``spec.known_answer(design)``, in the diagnosis' layout.

    Ridges are the known answer's ``ridges`` (loadings on unconstrained names; a constrained name of a
    positive parameter is read as its log); the identified directions are their orthogonal complement
    in prior-whitened coordinates (Gram-Schmidt of the coordinate axes). Prior means and variances come
    from ``n_prior`` prior draws; the covariance is diagonal because ModelSpec priors are independent.
    """
    from bayesid import models
    from bayesid.neural.simulation import ParameterTransform, seed_int

    spec = models.get(spec)
    d_ = spec.design(design)
    ka = spec.known_answer(d_)
    tr = ParameterTransform(spec, priors)
    th = spec.sample_prior(n_prior, priors=priors, random_seed=seed_int(random_seed))
    flat, _ = spec.flatten_theta(th)
    u = tr.forward(flat)
    mu = u.mean(0)
    # ModelSpec priors are independent elementwise: the prior covariance is diagonal (sample variances;
    # zeroing the sampling noise off the diagonal keeps the known directions exact)
    cov = np.diag(u.var(axis=0, ddof=1))
    L = np.sqrt(cov)
    d = len(mu)
    to_unc = dict(zip(tr.names, tr.unconstrained_names))
    ridge_vecs, dirs = [], []
    for r in ka.ridges:
        delta = np.zeros(d)
        for k, v in r.items():
            key = k if k in tr.unconstrained_names else to_unc.get(k)
            if key is None:
                raise KeyError(f"known-answer ridge names {k!r}, not a parameter of {spec.name}")
            delta[tr.unconstrained_names.index(key)] = v
        z = np.linalg.solve(L, delta)
        ridge_vecs.append(z / np.linalg.norm(z))
    R = np.array(ridge_vecs).reshape(len(ridge_vecs), d)
    # identified directions: Gram-Schmidt of the coordinate axes against the ridges, skipping axes that
    # become dependent, so independent parameters keep their own axis (clean labels)
    basis = [v for v in R]
    comp = []
    for e in np.eye(d):
        w = e - sum(np.dot(e, b) * b for b in basis) if basis else e.copy()
        if np.linalg.norm(w) > 1e-6:
            w = w / np.linalg.norm(w)
            basis.append(w)
            comp.append(w)
    comp = np.array(comp).reshape(len(comp), d)
    def _label(w):
        terms = []
        for c, n in zip(w, tr.unconstrained_names):
            if abs(c) <= 0.05:
                continue
            c = float(np.sign(c)) if abs(abs(c) - 1) < 0.05 else c
            mag = "" if abs(c) == 1 else f"{abs(c):.2g}·"
            terms.append(("- " if c < 0 else "+ ") + mag + n)
        s = " ".join(terms)
        return s[2:] if s.startswith("+ ") else "-" + s[2:]

    def _mk(v, verdict):
        disp = L @ v
        disp = disp / np.abs(disp).max()
        coef = np.linalg.solve(L.T, v)
        coef = coef / np.abs(coef).max()
        # ridges are named by how the parameters move along them, identified directions by the
        # combination they measure (as the diagnosis does)
        lab = _label(disp if verdict == "not identified" else coef)
        return RefDirection(v, dict(zip(tr.unconstrained_names, disp)), dict(zip(tr.unconstrained_names, coef)),
                            1.0 if verdict == "not identified" else float("nan"), verdict, lab)

    dirs = [_mk(v, "not identified") for v in R] + [_mk(v, "identified") for v in comp]
    combos = []
    for c in ka.combinations:
        coef = _parse_combination(c, tr)
        if coef:
            combos.append(RefCombination(c, coef))
    verdict = {}
    for n in tr.names:
        verdict[n] = ("identified" if n in ka.identified else "weakly identified" if n in ka.weakly_identified
                      else "not identified" if n in ka.not_identified
                      else "identified only in combination" if n in ka.in_combination else "")
    table = pd.DataFrame({"unconstrained": tr.unconstrained_names, "verdict": [verdict[n] for n in tr.names],
                          "contraction": np.nan}, index=pd.Index(tr.names, name="parameter"))
    return ReferenceDirections(list(tr.unconstrained_names), list(tr.names), mu, cov, dirs, combos, table, L)


# ---------------------------------------------------------------------------- result
def _fig_to_b64(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _neural_verdict(r):
    if not np.isfinite(r):
        return ""
    if r <= RECOVERED_RATIO:
        return "recovered"
    if r >= PRIOR_RATIO:
        return "regresses to the prior"
    return "partly recovered"


@dataclass
class NeuralComparison:
    """What an amortized estimator recovers, set beside what MCMC says the data identify.

    Attributes
    ----------
    parameters : pandas.DataFrame
        Per unconstrained parameter: ``rmse`` (unconstrained), ``rmse_natural``, ``error_ratio``
        (MSE / prior variance) with ``ratio_lower/upper`` (bootstrap 95 %), ``neural_contraction``
        (``1 − error_ratio``), ``npe_contraction`` (NPE only), ``mcmc_contraction`` and ``mcmc_verdict``
        (from the diagnosis), ``ensemble_spread`` (sd across members / prior sd), ``neural_verdict``,
        and ``ridge_share``: the fraction of the error variance explained (least squares) by the true
        coordinates along the non-identified directions — ≈ 1 for a parameter that is only identified in
        combination (its error *is* the ridge), ≈ 0 (``χ²_r / n``) for an identified one.
    directions : pandas.DataFrame
        The same per diagnosis direction (errors projected on it), with ``mcmc_ratio``.
    combinations : pandas.DataFrame
        The same for each identified combination (``a + b``, ``a·b``).
    held_out : pandas.DataFrame
        Per held-out dataset refitted with MCMC (``n_mcmc``): seconds, C2ST accuracy/p of the NPE
        against the MCMC draws, distance of the neural estimate from the MCMC mean.
    history : list of dict
        Training-loss curves (one per ensemble member).
    converged : bool
        Whether training converged (validation loss flat, see ``NeuralEstimator.converged``).
    truth_w, estimate_w : ndarray (n_test, k)
        True and estimated whitened coordinates along each direction (for the scatter plots).
    """

    parameters: pd.DataFrame
    directions: pd.DataFrame
    combinations: pd.DataFrame
    held_out: pd.DataFrame
    history: list
    converged: bool
    truth_w: np.ndarray
    estimate_w: np.ndarray
    model: str = ""
    design: str = ""
    estimator: str = ""
    n_test: int = 0
    source: str = "diagnosis"
    timings: dict = field(default_factory=dict)

    # -------------------------------------------------------------- text
    def summary(self) -> str:
        """Plain-language summary: converged vs identified, direction by direction."""
        lines = [f"{self.estimator} on {self.model} / {self.design}, {self.n_test} held-out datasets: "
                 + ("training converged (validation loss flat)." if self.converged
                  else "training has NOT converged (validation loss still falling).")]
        for _, r in self.directions.iterrows():
            lines.append(f"  direction {r['label']!s} (MCMC: {r['mcmc_verdict']}): error variance = "
                         f"{r['error_ratio']:.2f} × prior [{r['ratio_lower']:.2f}, {r['ratio_upper']:.2f}] → "
                         f"{r['neural_verdict']}")
        for _, r in self.combinations.iterrows():
            lines.append(f"  combination {r['name']}: error variance = {r['error_ratio']:.3f} × prior → "
                         f"{r['neural_verdict']}")
        ridge = self.directions[self.directions["mcmc_verdict"] == "not identified"]
        if len(ridge) and self.converged:
            lines.append("  The network converged, yet along the non-identified direction(s) its error is as "
                         "large as the prior spread: it returns the prior mean there, whatever the truth.")
        return "\n".join(lines)

    def __repr__(self):
        return f"<NeuralComparison>\n{self.summary()}"

    # -------------------------------------------------------------- plots
    def plot_loss(self, ax=None):
        """Training and validation loss per epoch (every ensemble member)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(3.6, 2.8))
        for i, h in enumerate(self.history):
            ax.plot(h["epoch"], h["train_loss"], color="C0", alpha=0.6, label="train" if i == 0 else None)
            ax.plot(h["epoch"], h["val_loss"], color="C1", alpha=0.8, label="validation" if i == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title("converged" if self.converged else "not converged", fontsize=9)
        ax.legend(fontsize=7)
        return ax

    def plot_directions(self, ax=None):
        """Neural error ratio per direction (with bootstrap CI) beside MCMC's posterior/prior ratio."""
        import matplotlib.pyplot as plt

        df = self.directions
        if ax is None:
            _, ax = plt.subplots(figsize=(0.9 * len(df) + 2.5, 2.8))
        x = np.arange(len(df))
        ax.bar(x - 0.2, df["error_ratio"], 0.4, color="C3", label="neural error / prior",
               yerr=[df["error_ratio"] - df["ratio_lower"], df["ratio_upper"] - df["error_ratio"]], capsize=2)
        ref = "MCMC" if self.source.startswith("MCMC") else "known answer"
        ax.bar(x + 0.2, df["mcmc_ratio"].fillna(0), 0.4, color="C0", label=f"{ref} posterior / prior")
        if "npe_ratio" in df:
            ax.scatter(x - 0.2, df["npe_ratio"], color="k", marker="_", s=200, label="NPE posterior / prior",
                       zorder=3)
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_xticks(x, [f"{lab}\n({v})" for lab, v in zip(df["label"], df["mcmc_verdict"])], fontsize=6,
                      rotation=30, ha="right")
        ax.set_ylabel("variance ratio")
        ax.set_title("identified?", fontsize=9)
        ax.legend(fontsize=6)
        return ax

    def plot_parameters(self, ax=None):
        """Neural contraction vs MCMC contraction per parameter."""
        import matplotlib.pyplot as plt

        df = self.parameters
        if ax is None:
            _, ax = plt.subplots(figsize=(0.8 * len(df) + 2.5, 2.8))
        x = np.arange(len(df))
        ax.bar(x - 0.2, df["neural_contraction"], 0.4, color="C3", label="neural (1 − MSE/prior var)")
        ax.bar(x + 0.2, df["mcmc_contraction"].fillna(0), 0.4, color="C0",
               label="MCMC" if self.source.startswith("MCMC") else "MCMC (none given)")
        if df["ensemble_spread"].notna().any():
            ax.scatter(x - 0.2, df["ensemble_spread"], color="k", marker="x", label="ensemble spread / prior sd")
        ax.set_xticks(x, df.index, fontsize=7)
        ax.set_ylim(min(-0.1, float(np.nanmin(df["neural_contraction"])) - 0.05), 1.05)
        ax.set_ylabel("contraction")
        ax.legend(fontsize=6)
        return ax

    def plot_errors(self, axes=None):
        """Estimate against truth along each direction: identified directions lie on the diagonal,
        ridges are flat (the estimate is the prior mean whatever the truth)."""
        import matplotlib.pyplot as plt

        k = self.truth_w.shape[1]
        if axes is None:
            _, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.6), squeeze=False)
            axes = axes[0]
        for j, a in enumerate(np.atleast_1d(axes)):
            t, e = self.truth_w[:, j], self.estimate_w[:, j]
            a.scatter(t, e, s=4, alpha=0.5)
            lim = np.nanmax(np.abs(np.r_[t, e])) * 1.05
            a.plot([-lim, lim], [-lim, lim], color="0.5", lw=0.8)
            r = self.directions.iloc[j]
            a.set_title(f"{r['label']}\n{r['mcmc_verdict']}", fontsize=7)
            a.set_xlabel("truth (whitened)", fontsize=7)
        np.atleast_1d(axes)[0].set_ylabel("neural estimate", fontsize=7)
        return axes

    def plot(self):
        """All panels in one figure: loss curve beside identifiability per direction and parameter."""
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(12, 6))
        gs = fig.add_gridspec(2, 3)
        self.plot_loss(fig.add_subplot(gs[0, 0]))
        self.plot_directions(fig.add_subplot(gs[0, 1]))
        self.plot_parameters(fig.add_subplot(gs[0, 2]))
        k = self.truth_w.shape[1]
        sub = gs[1, :].subgridspec(1, max(k, 1))
        self.plot_errors([fig.add_subplot(sub[0, j]) for j in range(k)])
        fig.suptitle(f"{self.estimator} vs MCMC — {self.model} / {self.design}", fontsize=10)
        fig.tight_layout()
        return fig

    # -------------------------------------------------------------- HTML
    def to_html(self, figures=True) -> str:
        """An HTML fragment (one ``<section>`` of the report) with tables and base64 PNG figures."""
        import matplotlib.pyplot as plt

        def tab(df, index=True):
            return df.to_html(float_format=lambda v: f"{v:.3g}", index=index, border=0, classes="bayesid-table")

        parts = [f'<section class="bayesid-neural"><h2>Neural estimator vs MCMC: {html.escape(self.model)} / '
                 f'{html.escape(self.design)}</h2>',
                 f"<pre>{html.escape(self.summary())}</pre>"]
        if figures:
            fig, axes = plt.subplots(1, 3, figsize=(12, 3))
            self.plot_loss(axes[0])
            self.plot_directions(axes[1])
            self.plot_parameters(axes[2])
            fig.tight_layout()
            parts.append(f'<img alt="loss and identifiability" src="data:image/png;base64,{_fig_to_b64(fig)}"/>')
            self.plot_errors()
            parts.append(f'<img alt="estimate vs truth per direction" '
                         f'src="data:image/png;base64,{_fig_to_b64(plt.gcf())}"/>')
        parts += ["<h3>Directions</h3>", tab(self.directions, index=False),
                  "<h3>Parameters</h3>", tab(self.parameters)]
        if len(self.combinations):
            parts += ["<h3>Identified combinations</h3>", tab(self.combinations, index=False)]
        if len(self.held_out):
            parts += ["<h3>Held-out datasets refitted with MCMC</h3>", tab(self.held_out, index=False)]
        parts.append(f"<p>Reference: {html.escape(self.source)}; error ratios are MSE / prior variance over "
                     f"{self.n_test} held-out prior-predictive datasets, 95 % percentile-bootstrap intervals.</p>"
                     "</section>")
        return "\n".join(parts)

    def _repr_html_(self):
        return self.to_html()


# ---------------------------------------------------------------------------- comparison
def _ratio_ci(err, truth, n_boot, rng):
    """MSE(err) / var(truth) and its percentile bootstrap 95 % interval over datasets."""
    r = float(np.mean(err ** 2) / np.var(truth))
    n = len(err)
    idx = rng.integers(0, n, (n_boot, n))
    rb = np.mean(err[idx] ** 2, axis=1) / np.var(truth[idx], axis=1)
    lo, hi = np.quantile(rb, [0.025, 0.975])
    return r, float(lo), float(hi)


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


def compare(diagnosis, estimator, spec=None, design=None, n_test=500, random_seed=None, priors=None,
            n_mcmc=0, mcmc_kwargs=None, n_posterior_draws=500, n_boot=1000, tree=None) -> NeuralComparison:
    """Measure what an amortized estimator recovers, along the directions of an MCMC diagnosis.

    Parameters
    ----------
    diagnosis : Diagnosis or ReferenceDirections or None
        From :func:`bayesid.diagnose`. ``None`` uses the model's known answer
        (:func:`reference_from_known_answer`).
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

    Returns
    -------
    NeuralComparison
    """
    from bayesid import models
    from bayesid.neural.simulation import seed_sequence, simulate_training_set

    if not getattr(estimator, "fitted", False):
        raise RuntimeError("The estimator is not trained: call .fit(...) before compare().")
    meta = estimator.meta
    spec = models.get(spec or meta["model"])
    design = spec.design(design or meta["design"]).name
    if spec.name != meta["model"] or design != meta["design"]:
        warnings.warn(f"The estimator was trained on {meta['model']} / {meta['design']} but is compared on "
                      f"{spec.name} / {design}.", stacklevel=2)
    from bayesid.neural.simulation import ParameterTransform

    now = ParameterTransform(spec, priors).unconstrained_names
    if list(now) != list(estimator.unconstrained_names):
        raise ValueError(
            f"The estimator was trained on parameters {estimator.unconstrained_names} but {spec.name} now has "
            f"{now} (the model or the priors changed since training). Retrain the estimator.")
    ss = seed_sequence(random_seed)
    s_test, s_boot, s_draw, s_mcmc, s_ref = ss.spawn(5)
    source = "MCMC diagnosis"
    if diagnosis is None:
        diagnosis = reference_from_known_answer(spec, design, priors, random_seed=s_ref)
        source = f"known answer of {spec.name} / {design} (no MCMC diagnosis given)"
    elif isinstance(diagnosis, ReferenceDirections):
        source = "known answer"
    t0 = time.perf_counter()
    names = list(diagnosis.unconstrained_names)
    ix = estimator.transform.reorder_from(names)  # estimator columns in diagnosis order
    test = simulate_training_set(spec, n_test, design=design, priors=priors, random_seed=s_test)
    t_sim = time.perf_counter() - t0
    u_true = test.theta_unc[:, ix]
    t1 = time.perf_counter()
    u_hat = estimator.predict_unconstrained(test)[:, ix]
    t_pred = time.perf_counter() - t1
    members = None
    if hasattr(estimator, "member_predictions"):
        members = estimator.member_predictions(test)[:, :, ix]
    is_npe = getattr(estimator, "kind", "") == "npe"
    draws = estimator.sample(test, n_posterior_draws, random_seed=s_draw)[:, :, ix] if is_npe else None

    z_true = diagnosis.whiten(u_true)
    z_hat = diagnosis.whiten(u_hat)
    rng = np.random.default_rng(s_boot)
    table = diagnosis.table
    d = len(names)

    # ---- ridge coordinates of the truths (to attribute parameter errors to the ridges)
    ridge_idx = [k for k, dr in enumerate(diagnosis.directions) if dr.verdict == "not identified"]
    V_all = np.array([np.asarray(dr.vector, float) for dr in diagnosis.directions]).reshape(-1, d)
    ridge_truth = z_true @ V_all[ridge_idx].T if ridge_idx else np.zeros((len(z_true), 0))

    def _ridge_share(err):
        if not ridge_idx:
            return 0.0
        X = np.column_stack([np.ones(len(err)), ridge_truth])
        res = err - X @ np.linalg.lstsq(X, err, rcond=None)[0]
        return float(1.0 - res.var() / max(err.var(), 1e-300))

    # ---- per parameter
    utr = estimator.transform
    inv = lambda u: utr.inverse(u[:, np.argsort(ix)])[:, ix]  # noqa: E731  natural scale, diagnosis order
    nat_err = inv(u_hat) - inv(u_true)
    rows = []
    unc_to_name = dict(zip(utr.unconstrained_names, utr.names))
    for j, n in enumerate(names):
        pname = unc_to_name[n]
        r, lo, hi = _ratio_ci(u_hat[:, j] - u_true[:, j], u_true[:, j], n_boot, rng)
        row = {"parameter": pname, "unconstrained": n,
               "rmse": float(np.sqrt(np.mean((u_hat[:, j] - u_true[:, j]) ** 2))),
               "rmse_natural": float(np.sqrt(np.mean(nat_err[:, j] ** 2))),
               "prior_sd": float(np.std(u_true[:, j])),
               "error_ratio": r, "ratio_lower": lo, "ratio_upper": hi, "neural_contraction": 1 - r,
               "ridge_share": _ridge_share(u_hat[:, j] - u_true[:, j])}
        if is_npe:
            row["npe_contraction"] = float(1 - draws[:, :, j].var(axis=1).mean() / np.var(u_true[:, j]))
        mc = np.nan
        if pname in table.index:
            col = "contraction_unc" if "contraction_unc" in table else "contraction"
            mc = float(table.loc[pname, col])
        row["mcmc_contraction"] = mc
        row["mcmc_verdict"] = str(table.loc[pname, "verdict"]) if pname in table.index else ""
        row["ensemble_spread"] = (float(members[:, :, j].std(axis=0).mean() / np.std(u_true[:, j]))
                                  if members is not None else np.nan)
        row["neural_verdict"] = _neural_verdict(r)
        rows.append(row)
    params = pd.DataFrame(rows).set_index("parameter")

    # ---- per direction
    V = np.array([np.asarray(dr.vector, float) for dr in diagnosis.directions]).reshape(-1, d)
    tw, ew = z_true @ V.T, z_hat @ V.T
    drows = []
    for k, dr in enumerate(diagnosis.directions):
        r, lo, hi = _ratio_ci(ew[:, k] - tw[:, k], tw[:, k], n_boot, rng)
        row = {"label": dr.label, "mcmc_verdict": dr.verdict, "mcmc_ratio": float(dr.ratio),
               "error_ratio": r, "ratio_lower": lo, "ratio_upper": hi, "neural_contraction": 1 - r}
        if is_npe:
            zd = np.stack([diagnosis.whiten(draws[i]) @ V[k] for i in range(len(draws))])
            row["npe_ratio"] = float(zd.var(axis=1).mean() / np.var(tw[:, k]))
        if members is not None:
            zm = np.stack([diagnosis.whiten(m) @ V[k] for m in members])
            row["ensemble_spread"] = float(zm.std(axis=0).mean() / np.std(tw[:, k]))
        row["neural_verdict"] = _neural_verdict(r)
        drows.append(row)
    dirs = pd.DataFrame(drows)

    # ---- identified combinations
    crows = []
    for c in getattr(diagnosis, "combinations", []):
        cvec = np.array([c.coefficients.get(n, 0.0) for n in names])
        t, e = u_true @ cvec, u_hat @ cvec
        r, lo, hi = _ratio_ci(e - t, t, n_boot, rng)
        crows.append({"name": c.name, "mcmc_ratio": float(getattr(c, "ratio", np.nan)), "error_ratio": r,
                      "ratio_lower": lo, "ratio_upper": hi, "rmse": float(np.sqrt(np.mean((e - t) ** 2))),
                      "neural_verdict": _neural_verdict(r)})
    combos = pd.DataFrame(crows, columns=["name", "mcmc_ratio", "error_ratio", "ratio_lower", "ratio_upper",
                                          "rmse", "neural_verdict"])

    # ---- MCMC refits of held-out datasets (and of the diagnosis' own data)
    hrows = []
    if n_mcmc or tree is not None:
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
            jobs.append((f"held-out {i}", {k: v[i] for k, v in test.data.items()}, None, i))
        for (label, data, tr_, i), s in zip(jobs, seeds):
            t2 = time.perf_counter()
            if tr_ is None:
                model = spec.build(data, design, priors)
                tr_ = fit(model, random_seed=int(s.generate_state(1)[0] % 2**31), **kw)
            secs = time.perf_counter() - t2 if i is not None else np.nan
            mc = _mcmc_unconstrained(tr_, names)
            batch = {k: np.asarray(v)[None] for k, v in data.items()}
            uh = estimator.predict_unconstrained(batch)[:, ix][0]
            zmc, zh = diagnosis.whiten(mc), diagnosis.whiten(uh[None])[0]
            row = {"dataset": label, "mcmc_seconds": secs,
                   "distance_to_mcmc_mean": float(np.linalg.norm(zh - zmc.mean(0))),
                   "mcmc_sd_whitened": float(np.sqrt(zmc.var(0).sum()))}
            if is_npe:
                nd = estimator.sample(batch, min(len(mc), 2000), random_seed=s)[0][:, ix]
                res = c2st(nd, mc, random_seed=s)
                row.update(c2st_accuracy=res.accuracy, c2st_pvalue=res.pvalue)
            hrows.append(row)
    held = pd.DataFrame(hrows)

    hist = estimator.history if isinstance(estimator.history, list) else [estimator.history]
    name = type(estimator).__name__
    if hasattr(estimator, "members"):
        name = f"Ensemble of {estimator.n_members} {type(estimator.members[0]).__name__}"
    return NeuralComparison(params, dirs, combos, held, hist, bool(estimator.converged()), tw, ew,
                            spec.name, design, name, int(n_test), source,
                            {"simulate_test": t_sim, "predict": t_pred, "predict_per_dataset": t_pred / n_test})


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


def explanation_study(diagnosis, spec, design=None, estimator="point", include_parameters=True, **kwargs):
    """Explanations vs predictions along the diagnosis' directions (seed paper 003).

    Runs :func:`bayesid.neural.intervention_study` with one quantity per direction of ``diagnosis`` (and
    per parameter if ``include_parameters``), labelled with the MCMC verdicts. ``diagnosis=None`` uses
    the model's known answer. Other keyword arguments go to ``intervention_study``.

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
    q, verdicts = direction_functionals(diagnosis, tr.unconstrained_names)
    if include_parameters:
        table = diagnosis.table
        for j, n in enumerate(tr.names):
            q[n] = np.eye(len(tr.names))[j]
            verdicts[n] = str(table.loc[n, "verdict"]) if n in table.index else ""
    return intervention_study(spec, estimator=estimator, design=design, quantities=q, verdicts=verdicts,
                              **kwargs)


class _CallableModule(types.ModuleType):
    """Lets ``bayesid.compare(...)`` call :func:`compare` although ``bayesid.compare`` is this module."""

    def __call__(self, *args, **kwargs):
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
