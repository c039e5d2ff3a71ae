"""min-ESS per second of ``bayesid.fit`` against plain ``pm.sample(nuts_sampler="nutpie")``, same model, same run.

Models: toy.additive, toy.collinear, the gait default (gait.bslip, imu_accel) and a non-centred
hierarchical model with 200 groups × 10 observations (203 parameters). For each, both samplers run 4
chains × 1000 draws after 1000 tuning steps from the same seed; ESS is arviz-stats' bulk ESS, minimised
over every scalar parameter; time is the wall time of the whole call (bayesid.fit also computes the
log-likelihood, log-prior, prior draws and unconstrained groups, pm.sample only samples).
Goal (issue 11): ratio ≥ 0.9 everywhere, > 1 where the low-rank mass matrix helps.

Also prints the parts of bayesid.fit that are not sampling (compilation, log-likelihood, log-prior,
prior draws, unconstrained groups) as a share of nutpie's sampling time (goal on the gait demo ≤ 25 %).

Run: ``.venv/bin/python benchmarks/fit.py [--quick] [--only NAME]``. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def hierarchical(n_groups=200, n_obs=10, seed=0):
    """Non-centred normal hierarchy: y_ij ~ N(mu + tau·z_j, sigma)."""
    import pymc as pm

    rng = np.random.default_rng(seed)
    theta = 1.0 + 0.5 * rng.normal(size=n_groups)
    y = theta[:, None] + rng.normal(size=(n_groups, n_obs))
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfNormal("tau", 2)
        sigma = pm.HalfNormal("sigma", 2)
        z = pm.Normal("z", 0, 1, shape=n_groups)
        pm.Normal("y", mu + tau * z[:, None], sigma, observed=y)
    return model, {}


def registered(name, design=None):
    import bayesid

    spec = bayesid.models.get(name)
    model = spec.build(spec.simulate(design=design, random_seed=1), design=design)
    return model, spec.sampler_kwargs(model)


CASES = {
    "toy.additive": lambda: registered("toy.additive"),
    "toy.collinear": lambda: registered("toy.collinear"),
    "gait.bslip": lambda: registered("gait.bslip"),
    "hierarchical-200": hierarchical,
}


def min_ess(tree):
    from arviz_stats import ess

    e = ess(tree, group="posterior", method="bulk")
    return float(min(float(np.nanmin(e[v].values)) for v in e.data_vars))


def run(name, draws, tune, chains, seed=1):
    import pymc as pm

    import bayesid

    model, kw = CASES[name]()
    base_kw = {k: v for k, v in kw.items() if k != "nuts"}  # nutpie's own default adaptation
    t = time.perf_counter()
    with model:
        base = pm.sample(draws=draws, tune=tune, chains=chains, nuts_sampler="nutpie", random_seed=seed,
                         progressbar=False, **base_kw)
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    tree = bayesid.fit(model, draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False, **kw)
    t_fit = time.perf_counter() - t
    e_base, e_fit = min_ess(base), min_ess(tree)
    tm = json.loads(tree.attrs["bayesid_timings"])
    adapt = json.loads(tree.attrs["bayesid_settings"]).get("adaptation")
    sampling = tm.get("sampling", tm["sample"])
    overhead = t_fit - sampling
    parts = ", ".join(f"{k} {v:.1f}s" for k, v in tm.items())
    print(f"{name:18s} d={model.initial_point().__len__():3d} vars  adaptation={adapt:8s} "
          f"nutpie: {e_base:7.0f} ESS / {t_base:6.1f}s = {e_base / t_base:7.1f}/s   "
          f"bayesid.fit: {e_fit:7.0f} ESS / {t_fit:6.1f}s = {e_fit / t_fit:7.1f}/s   "
          f"ratio {e_fit / t_fit / (e_base / t_base):5.2f}", flush=True)
    print(f"{'':18s} fit parts: {parts}; not sampling {overhead:.1f}s = {overhead / sampling:.0%} of sampling",
          flush=True)


def warm_up():
    """Import and JIT-initialise nutpie, numba and pytensor once, so neither side pays it in its timing."""
    import pymc as pm

    import bayesid

    with pm.Model() as m:
        pm.Normal("y", pm.Normal("x"), 1, observed=[0.0])
        pm.sample(draws=20, tune=20, chains=1, nuts_sampler="nutpie", progressbar=False, random_seed=0)
    bayesid.fit(m, draws=20, tune=20, chains=1, random_seed=0, progressbar=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 chains × 300 draws (smoke run)")
    ap.add_argument("--only", action="append", choices=list(CASES), help="run only these models")
    a = ap.parse_args()
    draws, tune, chains = (300, 300, 2) if a.quick else (1000, 1000, 4)
    warm_up()
    for name in a.only or CASES:
        run(name, draws, tune, chains)


if __name__ == "__main__":
    main()
