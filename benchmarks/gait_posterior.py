"""Benchmark: NUTS with exact simulator gradients vs a gradient-free sampler on the BSLIP posterior.

Data: design ``imu_accel`` (5 s of pelvis accelerometer data at 100 Hz, noise sd 0.05 m/s²) simulated
at the reference subject. Both samplers target the same posterior (same likelihood, same priors):

* NUTS: ``bayesid.fit`` (nutpie, numba backend, the simulator Op with forward sensitivities),
  4 chains × 1000 draws after 1000 tuning steps, with ``spec.sampler_kwargs``;
* baseline: PyMC's slice sampler (``pm.Slice``) on the forward-only Op
  (``spec.build_gradient_free``), started at the same point, ``SLICE_DRAWS`` draws per chain.

ESS is arviz_stats' bulk ESS, minimised over the six parameters; ESS/s divides it by the wall time
of the sampler run (tuning + draws; NUTS excluding the one-off numba compilation, which is printed
separately along with the total ``bayesid.fit`` wall time). Prints the ratio (goal ≥ 20×) and the
wall time of the 4 × 1000 NUTS run (goal ≤ 60 s).

Run: ``python benchmarks/gait_posterior.py [slice_draws]``.
"""

from __future__ import annotations

import sys
import time
import warnings

import arviz_stats
import numpy as np


def min_ess(posterior, names):
    ess = {n: float(arviz_stats.ess(np.asarray(posterior[n].transpose("chain", "draw").values)))
           for n in names}
    return min(ess.values()), ess


def main(slice_draws=500, seed=1):
    import pymc as pm

    import bayesid
    from bayesid import models

    warnings.filterwarnings("ignore", message=".*Potentials.*")
    spec = models.get("gait.bslip")
    data = spec.simulate(design="imu_accel", random_seed=seed)
    names = spec.parameter_names

    model = spec.build(data, "imu_accel")
    t0 = time.perf_counter()
    tree = bayesid.fit(model, draws=1000, tune=1000, chains=4, random_seed=seed, progressbar=False,
                       **spec.sampler_kwargs(model))
    t_fit = time.perf_counter() - t0
    t_nuts = float(tree.posterior.attrs.get("sampling_time", np.nan))
    ess_nuts, ess_n = min_ess(tree.posterior, names)
    div = int(tree.sample_stats["diverging"].sum())
    steps = float(tree.sample_stats["n_steps"].mean())

    gf = spec.build_gradient_free(data, "imu_accel")
    start = gf.initial_point()
    with gf:
        t0 = time.perf_counter()
        idata = pm.sample(draws=slice_draws, tune=slice_draws, chains=4, cores=2, step=pm.Slice(),
                          initvals=start, random_seed=seed, progressbar=False, compute_convergence_checks=False)
        t_slice = time.perf_counter() - t0
    ess_slice, ess_s = min_ess(idata.posterior, names)

    r_nuts = ess_nuts / t_nuts
    r_slice = ess_slice / t_slice
    print(f"NUTS (nutpie, exact gradients): 4 chains x 1000 draws (+1000 tune): sampling {t_nuts:.1f} s, "
          f"bayesid.fit total {t_fit:.1f} s (compile, prior predictive, log-likelihood included); "
          f"{steps:.1f} leapfrog steps/draw, {div} divergences")
    print("  bulk ESS: " + ", ".join(f"{k} {v:.0f}" for k, v in ess_n.items()))
    print(f"  min ESS {ess_nuts:.0f} -> {r_nuts:.1f} ESS/s")
    print(f"Slice (gradient-free, same likelihood): 4 chains x {slice_draws} draws (+{slice_draws} tune): "
          f"{t_slice:.1f} s")
    print("  bulk ESS: " + ", ".join(f"{k} {v:.1f}" for k, v in ess_s.items()))
    print(f"  min ESS {ess_slice:.1f} -> {r_slice:.2f} ESS/s")
    print(f"ESS/s ratio NUTS/slice: {r_nuts / r_slice:.0f}x  (goal >= 20x); NUTS wall {t_fit:.1f} s "
          "(goal <= 60 s)")
    return r_nuts / r_slice


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
