"""Design comparison on a plain PyMC model: workers vs serial, Dask LocalCluster, fisher vs one mcmc dataset.

Prints: the wall time of ``designs.compare_model(..., method="mcmc")`` on 3 designs × N datasets with 1
and 2 local worker processes (goal ≥ 1.7× speed-up), the same through a Dask ``LocalCluster`` of 2
workers × 1 thread (goal ≥ 1.6×), and the Fisher screen's time (all 3 designs) as a ratio to the time
of one mcmc dataset (goal ≤ 0.1). Results are checked identical across executors (same seeds).

Usage: ``python benchmarks/designs.py [--n-datasets 20]``. The load average is printed: on a machine
shared with other jobs the speed-ups are noisy.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def build(x2, n=20):
    import pymc as pm

    x1 = np.linspace(-1.0, 1.0, n)
    with pm.Model() as m:
        al = pm.Normal("alpha", 0.0, 2.0)
        b1 = pm.Normal("beta1", 0.0, 1.0)
        b2 = pm.Normal("beta2", 0.0, 1.0)
        pm.Normal("y", al + b1 * x1 + b2 * np.asarray(x2), 0.3, observed=np.zeros(n))
    return m


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-datasets", type=int, default=20)
    args = ap.parse_args(argv)
    from bayesid import designs

    x1 = np.linspace(-1.0, 1.0, 20)
    D = {"collinear": {"x2": x1}, "distinct": {"x2": np.cos(np.pi * np.arange(20) * 7 / 20)},
         "half": {"x2": np.where(x1 > 0, x1, 0.0)}}
    kw = dict(method="mcmc", n_datasets=args.n_datasets, random_seed=0, progressbar=False)
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    t = time.perf_counter()
    serial = designs.compare_model(build, D, executor=None, **kw)
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    pool = designs.compare_model(build, D, executor=2, **kw)
    t2 = time.perf_counter() - t  # includes spawning the workers and their imports
    assert pool.records == serial.records, "2-worker pool and serial results differ"
    from bayesid.executor import local_pool

    with local_pool(2, warm=True) as warm_pool:  # started (and PyMC imported) before the clock, like dask's
        t = time.perf_counter()
        pool_w = designs.compare_model(build, D, executor=warm_pool, **kw)
        t2w = time.perf_counter() - t
    assert pool_w.records == serial.records, "warm 2-worker pool and serial results differ"
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, Client(cl) as client:
        t = time.perf_counter()
        dk = designs.compare_model(build, D, executor=client, **kw)
        t3 = time.perf_counter() - t
    assert dk.records == serial.records, "dask and serial results differ"
    n_jobs = len(D) * args.n_datasets
    t = time.perf_counter()
    fisher = designs.compare_model(build, D, method="fisher", n_prior=64, random_seed=0)
    tf = time.perf_counter() - t
    print(f"mcmc, {len(D)} designs × {args.n_datasets} datasets: serial {t1:.1f} s, 2 workers {t2:.1f} s "
          f"(incl. worker start-up) → speed-up {t1 / t2:.2f}×; started pool {t2w:.1f} s → {t1 / t2w:.2f}× "
          "(goal ≥ 1.7)")
    print(f"dask LocalCluster 2×1 (started before the clock): {t3:.1f} s → speed-up {t1 / t3:.2f}× (goal ≥ 1.6)")
    print(f"fisher screen (3 designs, 64 prior draws): {tf:.2f} s = {tf / (t1 / n_jobs):.3f} × one mcmc dataset "
          f"({t1 / n_jobs:.2f} s) (goal ≤ 0.1)")
    print(f"ranking: fisher {[d for d, _ in fisher.table.index]}, mcmc {[d for d, _ in serial.table.index]}")
    print(f"load average after: {os.getloadavg()} (on a shared machine the speed-ups are capped by the free "
          "cores: only ratios within this run mean anything)")
    print(serial)


if __name__ == "__main__":
    main()
