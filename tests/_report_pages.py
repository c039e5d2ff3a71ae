"""Pages for the report tests: a tiny plain-PyMC fit with a k/m ridge, a design comparison and a
neural comparison page (built from arrays: the page is presentation, its numbers are tested elsewhere)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

K_TRUE, M_TRUE, L_TRUE = 2.0, 4.0, 1.0


@functools.cache
def ridge_diagnosis():
    """y1 ~ N(k/m, 0.05) and y2 ~ N(L, 0.1): k/m and L identified, k·m a ridge (known answer)."""
    import pymc as pm

    import bayesid

    rng = np.random.default_rng(3)
    y1 = rng.normal(K_TRUE / M_TRUE, 0.05, 40)
    y2 = rng.normal(L_TRUE, 0.1, 40)
    with pm.Model() as model:
        k = pm.LogNormal("k", np.log(2.0), 0.3)
        m = pm.LogNormal("m", np.log(4.0), 0.3)
        L = pm.Normal("L", 1.0, 1.0)
        pm.Normal("y1", k / m, 0.05, observed=y1)
        pm.Normal("y2", L, 0.1, observed=y2)
    tree = bayesid.fit(model, draws=500, tune=500, chains=2, random_seed=5, progressbar=False)
    return bayesid.diagnose(tree, truth={"k": K_TRUE, "m": M_TRUE, "L": L_TRUE}, title="tiny k/m model")


@functools.cache
def levels_diagnosis():
    """mixed.regression, design 'between', exact posterior draws (no MCMC): its Diagnosis and Levels.

    Known answer (models/mixed.py): only α + γ w_j + b_j and β + u_j enter the likelihood, so α and γ trade
    off against the mean and the w-weighted mean of b, β against the mean of u."""
    import bayesid
    from bayesid.models.mixed import MixedRegression

    spec = MixedRegression()
    data = spec.simulate(design="between", random_seed=0)
    model = spec.build(data, design="between")
    tree = spec.exact_tree(data, "between", draws=1000, chains=2, prior_draws=4000, random_seed=1)
    diag = bayesid.diagnose(tree, model=model, fisher=False, title="mixed.regression, between")
    return diag, diag.levels(model=model, cluster_covariates={"w": spec.cluster_covariate()}), model


def levels_covariate():
    from bayesid.models.mixed import MixedRegression

    return MixedRegression().cluster_covariate()


@functools.cache
def design_comparison():
    from bayesid import designs

    return designs.compare("toy.collinear", n_prior=8, random_seed=0)


def neural_comparison():
    """A NeuralComparison of toy.additive's shape: ridge a − b at the prior, a + b recovered."""
    from bayesid.comparison import NeuralComparison
    from bayesid.diagnostics import Thresholds

    rng = np.random.default_rng(0)
    n = 200
    tw = rng.normal(size=(n, 2))
    ew = np.column_stack([np.zeros(n) + rng.normal(0, 0.02, n), tw[:, 1] + rng.normal(0, 0.1, n)])
    dirs = pd.DataFrame({"label": ["a - b", "a + b"], "mcmc_verdict": ["not identified", "identified"],
                         "mcmc_ratio": [0.99, 0.01], "error_ratio": [1.0, 0.01], "ratio_lower": [0.9, 0.008],
                         "ratio_upper": [1.1, 0.012], "neural_contraction": [0.0, 0.99],
                         "neural_verdict": ["regresses to the prior", "recovered"]})
    params = pd.DataFrame({"unconstrained": ["a", "b"], "rmse": [0.7, 0.7], "rmse_natural": [0.7, 0.7],
                           "prior_sd": [1.0, 1.0], "error_ratio": [0.5, 0.5], "ratio_lower": [0.45, 0.45],
                           "ratio_upper": [0.55, 0.55], "neural_contraction": [0.5, 0.5],
                           "ridge_share": [0.99, 0.99], "mcmc_contraction": [0.5, 0.5],
                           "mcmc_verdict": ["identified only in combination"] * 2, "ensemble_spread": [np.nan] * 2,
                           "neural_verdict": ["partly recovered"] * 2}, index=pd.Index(["a", "b"], name="parameter"))
    combos = pd.DataFrame({"name": ["a + b"], "mcmc_ratio": [0.01], "error_ratio": [0.01], "ratio_lower": [0.008],
                           "ratio_upper": [0.012], "rmse": [0.1], "neural_verdict": ["recovered"]})
    hist = [{"epoch": np.arange(1, 6), "train_loss": np.exp(-np.arange(5)), "val_loss": np.exp(-np.arange(5)) + 0.1}]
    return NeuralComparison(params, dirs, combos, pd.DataFrame(), hist, True, tw, ew, "toy.additive", "default",
                            "PointEstimator", n, "known answer", {"predict_per_dataset": 1e-4}, Thresholds())


def pages(folder):
    """Write the three pages into ``folder``; returns ``{name: path}``."""
    import bayesid.report as report

    out = {}
    out["report"] = report.write(ridge_diagnosis(), folder / "report.html", title="bayesid report: tiny k/m model",
                                 force=True)
    out["designs"] = report.write(design_comparison(), folder / "designs.html", title="bayesid designs", force=True)
    out["neural"] = report.write(neural_comparison(), folder / "neural.html", title="bayesid neural", force=True)
    return out
