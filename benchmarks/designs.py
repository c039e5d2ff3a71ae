"""Design comparison on a plain PyMC model: workers vs serial, Dask LocalCluster, fisher vs one mcmc dataset.

Prints, on 3 designs × N datasets of a regression y ~ N(α + β1 x1 + β2 x2, 0.3) whose design is x2:

1. ``designs.compare_model(..., method="mcmc")`` serially, on 2 local worker processes including their
   start-up (goal ≥ 1.7×), on a pool started before the clock, and through a Dask ``LocalCluster`` of
   2 workers × 1 thread started before the clock (goal ≥ 1.6×); the records are checked identical.
2. The Fisher screen's time (all 3 designs) as a ratio to one mcmc dataset (goal ≤ 0.1), both sides
   cold (compilation included: the screen on freshly built models; the first dataset of a design,
   which compiles its sampler) and warm (compiled: the screen again on the same pm.Data model; a later
   dataset of a design, which reuses the sampler), and against the mean dataset of the serial run.

The design is given two ways: a factory ``build(x2)`` (a new model, so a new compilation, per design)
and one ``pm.Model`` with ``pm.Data("x2")`` (one compilation for all designs: the fast path). The mcmc
runs use the factory (3 compilations: the harder case for the workers).

Usage: ``python benchmarks/designs.py [--n-datasets 20]``. The load average is printed: on a machine
shared with other jobs only ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

N = 20
X1 = np.linspace(-1.0, 1.0, N)
DESIGNS = {"collinear": {"x2": X1}, "distinct": {"x2": np.cos(np.pi * np.arange(N) * 7 / N)},
           "half": {"x2": np.where(X1 > 0, X1, 0.0)}}


def build(x2, n=N):
    """The factory form: x2 is a constant of a new model per design."""
    import pymc as pm

    x1 = np.linspace(-1.0, 1.0, n)
    with pm.Model() as m:
        al = pm.Normal("alpha", 0.0, 2.0)
        b1 = pm.Normal("beta1", 0.0, 1.0)
        b2 = pm.Normal("beta2", 0.0, 1.0)
        pm.Normal("y", al + b1 * x1 + b2 * np.asarray(x2), 0.3, observed=np.zeros(n))
    return m


def build_data(n=N):
    """The pm.Data form: one model, the design sets x2."""
    import pymc as pm

    with pm.Model() as m:
        x2 = pm.Data("x2", X1)
        al = pm.Normal("alpha", 0.0, 2.0)
        b1 = pm.Normal("beta1", 0.0, 1.0)
        b2 = pm.Normal("beta2", 0.0, 1.0)
        pm.Normal("y", al + b1 * X1 + b2 * x2, 0.3, observed=np.zeros(n), shape=x2.shape)
    return m


def _timed(f, *a, **k):
    t = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t


def dataset_times(model_or_factory, design, fit_kwargs=None):
    """(cold, warm) seconds of one mcmc dataset: the first of a fresh design space (compiles the
    sampler, builds the model and simulator) and the next one (reuses them)."""
    from bayesid import designs as dz

    space = dz._DesignSpace(model_or_factory, {design: DESIGNS[design]}, None)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(99).spawn(4)]
    _, cold = _timed(dz._mcmc_dataset, space, design, "default", 0, 4, seeds, fit_kwargs)
    warm = min(_timed(dz._mcmc_dataset, space, design, "default", i, 4, seeds, fit_kwargs)[1] for i in (1, 2, 3))
    return cold, warm


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-datasets", type=int, default=20)
    args = ap.parse_args(argv)
    from bayesid import designs
    from bayesid.executor import _init_worker_preload, local_pool

    D = DESIGNS
    n_jobs = len(D) * args.n_datasets
    kw = dict(method="mcmc", n_datasets=args.n_datasets, random_seed=0, progressbar=False)
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    # ---------------------------------------------------------------- 1. workers
    serial, t1 = _timed(designs.compare_model, build, D, executor=None, **kw)
    pool, t2 = _timed(designs.compare_model, build, D, executor=2, **kw)  # incl. the worker's spawn + imports
    assert pool.records == serial.records, "2-worker pool and serial results differ"
    with local_pool(2, warm=True) as warm_pool:  # started (imports done) before the clock, like dask's
        pool_w, t2w = _timed(designs.compare_model, build, D, executor=warm_pool, **kw)
    assert pool_w.records == serial.records, "started 2-worker pool and serial results differ"
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, Client(cl) as client:
        client.run(_init_worker_preload)  # compile dir + the started pool's imports, before the clock
        dk, t3 = _timed(designs.compare_model, build, D, executor=client, **kw)
    assert dk.records == serial.records, "dask and serial results differ"
    # ---------------------------------------------------------------- 2. fisher vs one dataset
    cold_f, tf_factory = _timed(designs.compare_model, build, D, method="fisher", n_prior=64, random_seed=0)
    m = build_data()
    _, tf_data_cold = _timed(designs.compare_model, m, D, method="fisher", n_prior=64, random_seed=0)
    tf_data_warm = min(_timed(designs.compare_model, m, D, method="fisher", n_prior=64, random_seed=0)[1]
                       for _ in range(3))
    ds_cold, ds_warm = dataset_times(build, "distinct")
    ds_mean = t1 / n_jobs

    print(f"mcmc, {len(D)} designs × {args.n_datasets} datasets (factory: 3 compiled samplers), 1 chain × 200 "
          f"draws: serial {t1:.1f} s")
    print(f"  executor=2 incl. start-up (this process + 1 spawned worker, its spawn + imports on the clock): "
          f"{t2:.1f} s → {t1 / t2:.2f}× (goal ≥ 1.7)")
    print(f"  local_pool(2, warm=True), 2 workers started (imports done) before the clock: {t2w:.1f} s → "
          f"{t1 / t2w:.2f}×")
    print(f"  dask LocalCluster 2×1, started and imports done before the clock: {t3:.1f} s → "
          f"{t1 / t3:.2f}× (goal ≥ 1.6)")
    print(f"one mcmc dataset: cold {ds_cold:.2f} s (compiles its design's sampler), warm {ds_warm:.3f} s "
          f"(sampler reused), mean in the serial run {ds_mean:.3f} s")
    print(f"fisher screen, 3 designs × 64 prior draws: factory {tf_factory:.2f} s (3 models compiled), "
          f"pm.Data model cold {tf_data_cold:.2f} s (1 compilation), warm {tf_data_warm:.3f} s")
    print(f"  ratio cold/cold (factory screen / first dataset):        {tf_factory / ds_cold:.3f} (goal ≤ 0.1)")
    print(f"  ratio cold/cold (pm.Data screen / first dataset):        {tf_data_cold / ds_cold:.3f}")
    print(f"  ratio warm/warm (pm.Data screen / later dataset):        {tf_data_warm / ds_warm:.3f}")
    print(f"  ratio factory screen / mean dataset of the serial run:  {tf_factory / ds_mean:.3f}")
    print(f"ranking: fisher {[d for d, _ in cold_f.table.index]}, mcmc {[d for d, _ in serial.table.index]}")
    print(f"load average after: {os.getloadavg()} (on a shared machine the speed-ups are capped by the free "
          "cores: only ratios within this run mean anything)")
    print(serial)


if __name__ == "__main__":
    main()
