"""Time of bayesid.diagnose (draw-based parts) vs arviz.summary on the same data; Fisher time per draw.

4 chains × 1000 draws × 10 parameters, Gaussian draws with a built-in ridge. Goal: ratio ≤ 2.
Prints ratios measured in this run (medians of repeated timings), never asserts.
"""

from __future__ import annotations


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
    print(f"Fisher (toy.collinear, {len(f.local_null_dim)} draws, {f.draws.methods}): "
          f"{f.seconds_per_draw * 1e3:.1f} ms per posterior draw (compilation included)")
    check_vs_fit()


def check_vs_fit():
    """Structural check (no sampling) vs one bayesid.fit of the same plain-PyMC model; goal <= 0.1."""
    import time

    import pymc as pm

    import bayesid

    with pm.Model() as m:
        p1 = pm.Beta("p1", 1, 1)
        p2 = pm.Beta("p2", 1, 1)
        pm.Binomial("y", n=200, p=p1 * p2, observed=40)
    t0 = time.perf_counter()
    bayesid.check(m, n_draws=64, random_seed=0)
    t_check = time.perf_counter() - t0
    t0 = time.perf_counter()
    bayesid.fit(m, random_seed=0, progressbar=False)
    t_fit = time.perf_counter() - t0
    print(f"bayesid.check: {t_check:.1f} s, bayesid.fit (4 x 1000 draws): {t_fit:.1f} s, "
          f"ratio check / fit = {t_check / t_fit:.2f}  (goal <= 0.1)")


if __name__ == "__main__":
    main()
