"""Design comparison on a plain PyMC model: 2 workers vs 1, a Dask LocalCluster, fisher vs one mcmc dataset.

What is measured, and why
-------------------------
The parallel runs are there to show *throughput of real work*, so the run is sized like one: 3 designs
× 20 datasets of a population model, each dataset fitted with :func:`bayesid.fit`'s own defaults
(4 chains × (1000 tune + 1000 draws)). The model is a hierarchical exponential decay (pharmacokinetics
style: ``J = 60`` subjects, each observed at the same ``T = 6`` sampling times; ``log k_j = μ + τ z_j``,
non-centred; 64 parameters) whose design is the sampling times (one ``pm.Data``), so that one compiled
sampler serves all designs in a process. A fit then costs about 1.5 s on this 2-core machine under load
(roughly a third of that idle); with the 0.05 s fits of a 3-parameter regression × 1 chain × 200 draws
that earlier versions of this benchmark used, a 60-dataset run was mostly compilation and start-up,
and no number of workers can speed those up.

Fairness: every fit, serial or on a worker, runs its chains on **one thread** (nutpie ``cores=1``,
:func:`bayesid.designs._fit_settings`; measured: one busy sampling thread with ``cores=1``, two with
``cores=2`` or nutpie's default on this machine), so the serial run is a one-core baseline and 2 workers
can at most double it. Its CPU time / wall time is printed (≤ 1 means it did not use the second core).

The one-off costs are printed apart from the runs: a worker's start-up (spawn + imports), and the
compilation of a design's sampler in this process and in a fresh worker (first dataset − a later one;
nutpie's numba compilation of the log density, several seconds per process whatever the model's size, is
the floor of what a worker adds).
``executor=2`` pays them on the clock (the second worker's start-up and compile overlap this process's
work); the Dask cluster has its workers started and imports done before the clock, but each still
compiles its sampler on the clock (it is part of the comparison). Next to each speed-up the best one
two lanes could reach with the measured one-off costs is printed: ``(C + W) / ((C + S + C' + W) / 2)``
for ``executor=2`` and ``(C + W) / ((2 C' + W) / 2)`` for Dask, with W the 60 warm fits, C this
process's compile, C' a fresh worker's and S its start-up.

Honesty checks: the records (posterior mean and covariance of every dataset) of every parallel run are
asserted identical to the serial run's.

Fisher screen vs one mcmc dataset: the screen (3 designs × 64 prior draws) is timed cold — on a freshly
built model, so every function it needs is compiled — and warm (again on the same model: the compiled
functions are reused, pm.Data designs share them); it is compared with one mcmc dataset cold (first
dataset of a fresh design space: the sampler's compilation included) and warm (a later dataset).

Usage: ``python benchmarks/designs.py [--n-datasets 20] [--subjects 60]``. The load average is printed
before and after: on a machine shared with other jobs only ratios within one run mean anything, and a
parallel speed-up is capped by the cores the other jobs leave free.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

T = 6
TIMES = {"early": np.linspace(0.1, 1.0, T), "spread": np.geomspace(0.1, 8.0, T), "late": np.linspace(6.0, 10.0, T)}
DESIGNS = {name: {"t": t} for name, t in TIMES.items()}
#: bayesid.fit's defaults (draws, tune, chains): what a user's fit of one dataset costs
FIT = {"draws": 1000, "tune": 1000, "chains": 4}


def build(n_subjects: int = 60):
    """Hierarchical exponential decay ``y_jt ~ N(A exp(-k_j t), σ)``; the design is ``pm.Data('t')``."""
    import pymc as pm

    with pm.Model() as m:
        t = pm.Data("t", TIMES["spread"])
        log_a = pm.Normal("log_a", 1.0, 0.5)
        mu = pm.Normal("mu_log_k", -0.5, 0.5)
        tau = pm.HalfNormal("tau_log_k", 0.5)
        z = pm.Normal("z", 0.0, 1.0, shape=n_subjects)
        k = pm.math.exp(mu + tau * z)
        sigma = pm.HalfNormal("sigma", 0.3)
        pm.Normal("y", pm.math.exp(log_a) * pm.math.exp(-k[:, None] * t[None, :]), sigma,
                  observed=np.zeros((n_subjects, T)))
    return m


def _timed(f, *a, **k):
    t = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


def dataset_times(n_subjects, design="spread", fit_kwargs=FIT):
    """(cold, warm) seconds of one mcmc dataset in this process: the first of a fresh design space on a
    fresh model (builds the simulator, compiles the sampler) and the mean of the next two (reuse them)."""
    from bayesid import designs as dz

    space = dz._DesignSpace(build(n_subjects), {design: DESIGNS[design]}, None)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(99).spawn(4)]
    _, cold = _timed(dz._mcmc_dataset, space, design, "default", 0, 4, seeds, fit_kwargs)
    warm = [_timed(dz._mcmc_dataset, space, design, "default", i, 4, seeds, fit_kwargs)[1] for i in (1, 2)]
    return cold, float(np.mean(warm))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-datasets", type=int, default=20)
    ap.add_argument("--subjects", type=int, default=60)
    args = ap.parse_args(argv)
    from bayesid import designs
    from bayesid.executor import _init_worker, local_pool

    J, D = args.subjects, DESIGNS
    n_jobs = len(D) * args.n_datasets
    W = designs.WORKER_MODULES
    kw = dict(method="mcmc", n_datasets=args.n_datasets, fit_kwargs=FIT, random_seed=0, progressbar=False)
    print(f"load average before: {tuple(round(x, 2) for x in os.getloadavg())}, cpus: {os.cpu_count()}", flush=True)
    # ---------------------------------------------------------------- 0. one-off costs, apart
    ds_cold, ds_warm = dataset_times(J)
    t0 = time.perf_counter()
    with local_pool(1, warm=True, preload=W) as one:
        t_start = time.perf_counter() - t0
        w_cold, w_warm = one.submit(dataset_times, J).result()
    print(f"one-off: worker start-up (spawn + imports) {t_start:.1f} s; sampler compile {ds_cold - ds_warm:.1f} s "
          f"here, {w_cold - w_warm:.1f} s in a fresh worker (first dataset − a later one)", flush=True)
    # ---------------------------------------------------------------- 1. workers
    m = build(J)
    c0 = _cpu()
    serial, t1 = _timed(designs.compare_model, m, D, executor=None, **kw)
    cpu1 = _cpu() - c0
    pool, t2 = _timed(designs.compare_model, m, D, executor=2, **kw)  # the worker's spawn + imports on the clock
    assert pool.records == serial.records, "executor=2 and serial results differ"
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, Client(cl) as client:
        client.run(_init_worker, W)  # compile dir, one thread, imports: before the clock
        dk, t3 = _timed(designs.compare_model, m, D, executor=client, **kw)
    assert dk.records == serial.records, "dask and serial results differ"
    load_mid = os.getloadavg()
    # ---------------------------------------------------------------- 2. fisher vs one dataset
    fresh = build(J)
    fisher, tf_cold = _timed(designs.compare_model, fresh, D, method="fisher", n_prior=64, random_seed=0)
    tf_warm = min(_timed(designs.compare_model, fresh, D, method="fisher", n_prior=64, random_seed=0)[1]
                  for _ in range(3))
    ds_mean = t1 / n_jobs

    print(f"mcmc, {len(D)} designs × {args.n_datasets} datasets, {J} subjects ({J + 4} parameters), "
          f"{FIT['chains']} chains × ({FIT['tune']} + {FIT['draws']}) per fit, 1 thread per fit")
    print(f"  serial: {t1:.1f} s ({ds_mean:.2f} s per dataset; CPU/wall {cpu1 / t1:.2f}: one core)")
    # what two lanes could do at best with these one-off costs: the work W = n_jobs × warm dataset split
    # evenly; the serial run pays one compile C (this process, numba warm), a fresh worker S + C'
    C, C1, work = ds_cold - ds_warm, w_cold - w_warm, n_jobs * ds_warm
    best2 = (C + work) / ((C + t_start + C1 + work) / 2)
    best_dask = (C + work) / ((2 * C1 + work) / 2)
    print(f"  executor=2 (this process + 1 spawned worker; its start-up and compile on the clock): {t2:.1f} s → "
          f"{t1 / t2:.2f}× (goal ≥ 1.7; best possible with the one-off costs above {best2:.2f}×)")
    print(f"  dask LocalCluster 2 workers × 1 thread, started before the clock (each compiles on the clock): "
          f"{t3:.1f} s → {t1 / t3:.2f}× (goal ≥ 1.6; best possible {best_dask:.2f}×)")
    print(f"  records identical to the serial run's: yes (asserted); load average after the runs: "
          f"{tuple(round(x, 2) for x in load_mid)}")
    print(f"one mcmc dataset: cold {ds_cold:.2f} s (sampler compiled), warm {ds_warm:.2f} s; "
          f"mean in the serial run {ds_mean:.2f} s")
    print(f"fisher screen, 3 designs × 64 prior draws: cold {tf_cold:.2f} s (fresh model: its functions "
          f"compiled), warm {tf_warm:.3f} s (compiled functions reused)")
    print(f"  ratio warm screen / warm dataset:          {tf_warm / ds_warm:.3f} (goal ≤ 0.1)")
    print(f"  ratio cold screen / cold dataset:          {tf_cold / ds_cold:.3f}")
    print(f"  ratio cold screen / mean serial dataset:   {tf_cold / ds_mean:.3f}")
    print(f"ranking: fisher {[d for d, _ in fisher.table.index]}, mcmc {[d for d, _ in serial.table.index]}")
    print(f"load average after: {tuple(round(x, 2) for x in os.getloadavg())}")
    cols = ["rank", "identified", "uninformed_directions", "expected_information_gain", "p_uninformed_direction"]
    print(serial.table[cols].to_string())


if __name__ == "__main__":
    main()
