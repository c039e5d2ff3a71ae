"""min-ESS per second of ``bayesid.fit`` against plain ``pm.sample(nuts_sampler="nutpie")``, same model, same run.

Models: toy.additive, toy.collinear, the gait default (gait.bslip, imu_accel) and a non-centred
hierarchical model with 200 groups × 10 observations (203 parameters). Both samplers run 4 chains ×
1000 draws after 1000 tuning steps; ESS is arviz-stats' bulk ESS, minimised over every scalar
parameter; time is the wall time of the whole call (bayesid.fit also computes the log-likelihood,
log-prior, prior draws and unconstrained groups; pm.sample only samples). Goal (issue 11): ratio ≥ 0.9
everywhere, > 1 where the low-rank mass matrix helps.

Paired comparison: the baseline gets ``random_seed=bayesid.fit.posterior_seed(seed)``, the seed fit
hands to ``pm.sample``. Where fit picks nutpie's default adaptation too (``diag``, e.g. the 203-parameter
hierarchy) both runs then produce *the same draws* (checked and printed as ``same draws``), so their
ESS is equal and the ratio is a pure ratio of wall times, free of ESS noise between seeds.

Capped baseline (``--cap SECONDS``, used for gait.bslip by default): nutpie's diagonal adaptation needs
deep trees on the gait ridge and did not finish 4 × 2000 iterations within 8 minutes. The baseline
then runs through ``nutpie.sample(blocking=False)`` (same compile settings and target_accept) and is
aborted at the cap; its ESS is that of the post-warm-up draws it had by then (0 if it was still
tuning), per second of the cap — the labelled figure is "ESS per second within a wall-clock cap", a
lower bound for the ratio's denominator's honesty: the baseline's rate is what a user waiting that
long gets.

Also prints the parts of bayesid.fit that are not sampling — pm.sample's compilation and set-up
(``sample − sampling``), and fit's own work (fingerprints, log-likelihood and log-prior, prior draws,
unconstrained groups) — each as a share of nutpie's sampling time (goal on the gait demo ≤ 25 %), and
the load average (on a shared machine only ratios measured in one run mean anything).

Run: ``.venv/bin/python benchmarks/fit.py [--quick] [--only NAME] [--repeat N] [--cap S]``. Prints,
never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
#: cases whose nutpie-default baseline runs under a wall-clock cap unless --cap says otherwise
CAPPED = {"gait.bslip": 600.0}


def min_ess(tree):
    from arviz_stats import ess

    post = tree["posterior"]
    post = post.to_dataset() if hasattr(post, "to_dataset") else post
    if post.sizes.get("draw", 0) < 4:
        return 0.0
    e = ess(post, method="bulk")
    return float(min(float(np.nanmin(e[v].values)) for v in e.data_vars))


def _complete_draws(tree):
    """The posterior cut to the draws every chain has (an aborted nutpie run pads with NaN)."""
    post = tree["posterior"].to_dataset()
    ok = np.ones(post.sizes.get("draw", 0), bool)
    if not ok.size:
        return {"posterior": post}, 0
    for v in post.data_vars:
        a = post[v].values.reshape(post.sizes["chain"], post.sizes["draw"], -1)
        ok &= np.isfinite(a).all(axis=(0, 2))
    n = int(np.argmin(ok)) if not ok.all() else ok.size
    return {"posterior": post.isel(draw=slice(0, n))}, n


def nutpie_capped(model, base_kw, draws, tune, chains, seed, cap):
    """nutpie's default adaptation, aborted after ``cap`` seconds (compilation included)."""
    import nutpie

    t = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model, **base_kw.get("compile_kwargs", {}))
    nuts = {k: base_kw[k] for k in ("target_accept",) if k in base_kw}
    sampler = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=False,
                            blocking=False, **nuts)
    try:
        trace, finished = sampler.wait(timeout=max(cap - (time.perf_counter() - t), 0.1)), True
    except TimeoutError:  # nutpie raises it when the timeout passes first
        trace, finished = sampler.abort(), False
    elapsed = time.perf_counter() - t
    post, n = _complete_draws(trace)
    return post, elapsed, finished, n


def run(name, draws, tune, chains, seed=1, cap=None, fit_first=False):
    import pymc as pm

    import bayesid

    fit_module = sys.modules["bayesid.fit"]  # the attribute bayesid.fit is the function
    s_post = fit_module.posterior_seed(seed)
    model, kw = CASES[name]()
    base_kw = {k: v for k, v in kw.items() if k != "nuts"}  # nutpie's own default adaptation
    load0 = os.getloadavg()[0]

    def baseline():
        if cap is not None:
            return nutpie_capped(model, base_kw, draws, tune, chains, s_post, cap)
        t = time.perf_counter()
        with model:
            base = pm.sample(draws=draws, tune=tune, chains=chains, nuts_sampler="nutpie", random_seed=s_post,
                             progressbar=False, **base_kw)
        return base, time.perf_counter() - t, True, draws

    if not fit_first:
        base, t_base, finished, n_base = baseline()
    t = time.perf_counter()
    tree = bayesid.fit(model, draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False, **kw)
    t_fit = time.perf_counter() - t
    if fit_first:
        base, t_base, finished, n_base = baseline()
    e_base, e_fit = min_ess(base), min_ess(tree)
    tm = json.loads(tree.attrs["bayesid_timings"])
    adapt = json.loads(tree.attrs["bayesid_settings"]).get("adaptation")
    same = ""
    if cap is None:
        same = "  same draws" if all(np.array_equal(base["posterior"][v].values, tree["posterior"][v].values)
                                     for v in tree["posterior"].data_vars) else "  different draws"
    d = int(sum(np.prod(v.shape) for v in model.initial_point().values()))
    label = "nutpie" if cap is None else (f"nutpie capped {cap:.0f}s ({'finished' if finished else 'aborted'}, "
                                          f"{n_base} draws/chain)")
    rate_b, rate_f = e_base / t_base, e_fit / t_fit
    ratio = f"{rate_f / rate_b:5.2f}" if rate_b > 0 else "  inf (baseline: no post-warm-up draws in the cap)"
    print(f"{name:16s} d={d:3d}  adaptation={adapt:8s} {label}: {e_base:6.0f} ESS / {t_base:6.1f}s = "
          f"{rate_b:7.1f}/s   bayesid.fit: {e_fit:6.0f} ESS / {t_fit:6.1f}s = {rate_f:7.1f}/s   "
          f"ratio {ratio}  (time ratio {t_base / t_fit:4.2f}){same}{'  [fit ran first]' if fit_first else ''}",
          flush=True)
    sampling = tm.get("sampling", tm["sample"])
    compile_ = tm["sample"] - sampling
    own = t_fit - tm["sample"]
    parts = ", ".join(f"{k} {v:.2f}s" for k, v in tm.items())
    print(f"{'':16s} fit parts: {parts}; not sampling {t_fit - sampling:.1f}s = {(t_fit - sampling) / sampling:.0%} "
          f"of sampling (pm.sample compile/set-up {compile_:.1f}s = {compile_ / sampling:.0%}, fit's own work "
          f"{own:.2f}s = {own / sampling:.0%}); load avg {load0:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)


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
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each case this many times, alternating which of the two runs first")
    ap.add_argument("--cap", type=float, default=None,
                    help="wall-clock cap (s) for the baseline of every case (default: only gait.bslip, 600 s)")
    a = ap.parse_args()
    draws, tune, chains = (300, 300, 2) if a.quick else (1000, 1000, 4)
    warm_up()
    for name in a.only or CASES:
        for r in range(a.repeat):  # alternate which runs first: the second call of a process tends to be faster
            run(name, draws, tune, chains, cap=a.cap if a.cap is not None else CAPPED.get(name), fit_first=r % 2 == 1)


if __name__ == "__main__":
    main()
