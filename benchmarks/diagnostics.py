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
    print(f"Fisher (toy.collinear, {len(f.local_null_dim)} draws x {max(20, 10 * 3)} replicates): "
          f"{f.seconds_per_draw * 1e3:.1f} ms per posterior draw")


if __name__ == "__main__":
    main()
