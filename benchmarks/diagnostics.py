"""Time of bayesid.diagnose (draw-based parts) vs arviz.summary on the same data; Fisher time per draw;
the structural check vs one bayesid.fit; with ``--scale``, both ratios on hierarchical models of
d = 50, 200, 1000 parameters.

Default run: 4 chains × 1000 draws × 10 parameters, Gaussian draws with a built-in ridge (goal:
diagnose / summary ≤ 2), the Fisher analysis of toy.collinear, and ``bayesid.check`` of a Binomial
product model against one ``bayesid.fit`` of it (goal ≤ 0.1).

``--scale``: the non-centred hierarchical normal model written below as plain PyMC
(``mu ~ N(0, 5)``, ``tau, sigma ~ HalfNormal(2.5)``, ``z_j ~ N(0, 1)``, ``y_ij ~ N(mu + tau·z_j, sigma)``,
5 observations per group, d = groups + 3), fitted with ``bayesid.fit`` (real NUTS draws, not synthetic):
4 chains × 1000 draws for d ≤ 200; at d = 1000, 2 chains × 300 draws (and 2500 prior draws, the
whitening needs more than 2·d) and 16 Fisher draws so that it stays affordable on 2 shared cores.
Goals: diagnose(draws) / arviz.summary ≤ 2 at every d; Fisher time (``diagnose`` timings ``fisher`` +
``local_ridges``, compilation included) / fit time ≤ 0.25 at d = 200.

Prints ratios measured in this run (diagnose(draws) and arviz.summary: medians of 3 timings each,
taken in alternation after a warm-up of each), never asserts. On a
loaded machine absolute times move by several-fold between runs; only ratios within one run mean
anything.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _timing import median_time
import xarray as xr


def _tree(seed=0, d=10, chains=4, draws=1000):
    rng = np.random.default_rng(seed)
    prior = rng.normal(size=(1, chains * draws, d))
    post = rng.normal(0, 0.1, size=(chains, draws, d))
    post[..., 1] = rng.normal(size=(chains, draws)) - post[..., 0]  # ridge along p0 + p1 fixed
    mk = lambda a: xr.Dataset({f"p{i}": (("chain", "draw"), a[..., i]) for i in range(d)})  # noqa: E731
    return xr.DataTree.from_dict({"posterior": mk(post), "prior": mk(prior)})


def main():
    import arviz as az

    import bayesid

    tree = _tree()
    t_az = median_time(lambda: az.summary(tree), 7)
    t_bid = median_time(lambda: bayesid.diagnose(tree, fisher=False), 7)
    print(f"arviz.summary          : {t_az * 1e3:8.1f} ms")
    print(f"bayesid.diagnose(draws): {t_bid * 1e3:8.1f} ms")
    print(f"ratio diagnose / summary = {t_bid / t_az:.2f}  (goal <= 2)")

    spec = bayesid.models.get("toy.collinear")
    m = spec.build(spec.simulate(random_seed=0))
    fit = bayesid.fit(m, draws=500, tune=500, chains=2, random_seed=0, progressbar=False)
    diag = bayesid.diagnose(fit, model=m, fisher_draws=64)
    f = diag.fisher
    print(f"Fisher (toy.collinear, {len(f.local_null_dim)} draws, {f.draws.methods}, {f.draws.jacobian}): "
          f"{f.seconds_per_draw * 1e3:.1f} ms per posterior draw (compilation included)")
    check_vs_fit()


def _product_model():
    import pymc as pm

    with pm.Model() as m:
        p1 = pm.Beta("p1", 1, 1)
        p2 = pm.Beta("p2", 1, 1)
        pm.Binomial("y", n=200, p=p1 * p2, observed=40)
    return m


def check_vs_fit():
    """Structural check (no sampling) vs one bayesid.fit of the same plain-PyMC model; goal <= 0.1.

    Both are first run once on a *different* small model (a Normal mean), so that library imports and
    one-off JIT set-up are paid by neither; then each is timed on a freshly built product model (its own
    compilation included)."""
    import pymc as pm

    import bayesid

    with pm.Model() as warm:
        a = pm.Normal("a")
        pm.Normal("y", a, 1.0, observed=np.zeros(5))
    bayesid.check(warm, n_draws=16, random_seed=0)
    bayesid.fit(warm, draws=100, tune=100, chains=2, random_seed=0, progressbar=False)

    m = _product_model()
    t0 = time.perf_counter()
    r = bayesid.check(m, n_draws=64, random_seed=0)
    t_check = time.perf_counter() - t0
    m = _product_model()
    t0 = time.perf_counter()
    bayesid.fit(m, random_seed=0, progressbar=False)
    t_fit = time.perf_counter() - t0
    print(f"bayesid.check ({r.n_draws} prior draws): {t_check:.2f} s, bayesid.fit (4 x 1000 draws): "
          f"{t_fit:.2f} s, ratio check / fit = {t_check / t_fit:.3f}  (goal <= 0.1); "
          f"verdicts {r.verdicts}")


# ------------------------------------------------------------------------------------------- scale
def hierarchical(groups: int, per_group: int = 5, seed: int = 0):
    """Non-centred hierarchical normal model (plain PyMC): d = groups + 3 parameters."""
    import pymc as pm

    rng = np.random.default_rng(seed)
    idx = np.repeat(np.arange(groups), per_group)
    y = 0.5 + 0.8 * rng.normal(size=groups)[idx] + rng.normal(size=groups * per_group)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfNormal("tau", 2.5)
        sigma = pm.HalfNormal("sigma", 2.5)
        z = pm.Normal("z", 0, 1, shape=groups)
        pm.Normal("y", mu + tau * z[idx], sigma, observed=y)
    return m


def paired_times(f, g, repeat: int = 3):
    """Median wall times of ``f()`` and ``g()`` timed in alternation (after one warm-up call of each),
    so that a load change on a shared machine hits both alike rather than one of them."""
    f(), g()
    tf, tg = [], []
    for _ in range(repeat):
        for fn, ts in ((f, tf), (g, tg)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return float(np.median(tf)), float(np.median(tg))


def scale(dims=(50, 200, 1000)):
    import arviz as az

    import bayesid

    rows = []
    for d in dims:
        big = d > 500
        chains, draws, fisher_draws = (2, 300, 16) if big else (4, 1000, 64)
        m = hierarchical(d - 3)
        t0 = time.perf_counter()
        tree = bayesid.fit(m, draws=draws, tune=draws, chains=chains, random_seed=0, progressbar=False,
                           prior_draws=max(1000, int(2.5 * d)))
        t_fit = time.perf_counter() - t0
        t_az, t_draws = paired_times(lambda t=tree: az.summary(t),
                                     lambda t=tree: bayesid.diagnose(t, fisher=False), 3)
        t0 = time.perf_counter()
        diag = bayesid.diagnose(tree, model=m, fisher_draws=fisher_draws, progressbar=True)
        t_diag = time.perf_counter() - t0
        t_fisher = diag.timings.get("fisher", np.nan) + diag.timings.get("local_ridges", 0.0)
        verdicts = diag.table["verdict"].astype(str).value_counts().to_dict()
        rows.append((d, chains, draws, fisher_draws, t_fit, t_az, t_draws, t_fisher, t_diag,
                     diag.fisher.draws.jacobian, verdicts))
        print(f"d={d}: fit {t_fit:.1f} s, summary {t_az:.2f} s, diagnose(draws) {t_draws:.2f} s, "
              f"Fisher {t_fisher:.2f} s, diagnose(all) {t_diag:.1f} s; {verdicts}", flush=True)
    print("\n   d  chains x draws  Fisher draws  fit [s]  summary [s]  diagnose/summary  Fisher [s]  "
          "Fisher/fit")
    for d, c, n, s, tf, ta, td, tfi, _, _, _ in rows:
        print(f"{d:4d}  {c:6d} x {n:5d}  {s:12d}  {tf:7.1f}  {ta:11.2f}  {td / ta:16.2f}  {tfi:10.2f}  "
              f"{tfi / tf:10.3f}")
    print("goals: diagnose/summary <= 2 at every d; Fisher/fit <= 0.25 at d = 200")
    for r in rows:
        print(f"d={r[0]} Jacobian: {r[9]}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", action="store_true", help="hierarchical models, d = 50, 200, 1000")
    ap.add_argument("--dims", type=int, nargs="*", default=[50, 200, 1000])
    args = ap.parse_args()
    if args.scale:
        scale(tuple(args.dims))
    else:
        main()
