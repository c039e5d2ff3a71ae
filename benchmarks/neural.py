"""Amortized neural estimators: speed against MCMC, training time, and accuracy against sbi's NPE.

Prints figures measured in this run, never asserts:

1. time per amortized estimate (point estimate; NPE with 1000 posterior draws), batched and for a
   single dataset, against NUTS (``bayesid.fit``) wall time per dataset; ratio (goal ≥ 1000×, < 10 ms);
2. training time for 10^5 simulations (gait.bslip / imu_accel if registered, else toy.identified;
   goal < 5 min): simulation time and point-estimator training time (``--epochs``);
3. side by side on the same simulations of toy.identified: bayesid NPE vs sbi's NPE (MAF) — training
   time and C2ST accuracy against NUTS posteriors on held-out datasets (0.5 = indistinguishable). The
   part is skipped with a message when sbi is not installed (``pip install sbi``; it is not a bayesid
   dependency).

Usage: ``python benchmarks/neural.py [--quick] [--threads N] [--epochs E] [--n-train N]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
from _timing import median_time


def _mcmc_seconds(spec, design, n, draws, tune, chains, seed=0):
    import bayesid

    ts = []
    for i in range(n):
        data = spec.simulate(design=design, random_seed=seed + i)
        t = time.perf_counter()
        model = spec.build(data, design)
        bayesid.fit(model, draws=draws, tune=tune, chains=chains, random_seed=seed + i, progressbar=False,
                    **spec.sampler_kwargs(model))
        ts.append(time.perf_counter() - t)
    return ts


def amortization(model, design, n_train, epochs, mcmc_n, mcmc_draws, quick):
    import torch

    import bayesid
    from bayesid.neural import NPE, PointEstimator, simulate_training_set

    spec = bayesid.models.get(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = simulate_training_set(spec, n_train, design=design, random_seed=0)
        test = simulate_training_set(spec, 1000, design=design, random_seed=1)
    one = test.subset(np.arange(1))
    pe = PointEstimator(epochs=epochs, random_seed=0).fit(ts)
    npe = NPE(epochs=epochs, random_seed=0).fit(ts)
    with torch.no_grad():
        t_batch = median_time(lambda: pe.predict_unconstrained(test), 3) / len(test)
        t_one = median_time(lambda: pe.predict_unconstrained(one), 20)
        t_npe_one = median_time(lambda: npe.sample(one, 1000, random_seed=0), 10)
        t_npe_batch = median_time(lambda: npe.sample(test, 1000, random_seed=0), 1) / len(test)
    print(f"\n[1] amortization on {model} / {spec.design(design).name} "
          f"({n_train} training simulations, {epochs} epochs)")
    print(f"    point estimate : {t_one * 1e3:8.3f} ms for one dataset, {t_batch * 1e3:8.4f} ms/dataset in a "
          "batch of 1000")
    print(f"    NPE 1000 draws : {t_npe_one * 1e3:8.3f} ms for one dataset, {t_npe_batch * 1e3:8.4f} ms/dataset "
          "in a batch of 1000")
    ts_m = _mcmc_seconds(spec, design, mcmc_n, mcmc_draws, mcmc_draws, 2 if quick else 4)
    t_m = float(np.median(ts_m))
    print(f"    NUTS (bayesid.fit, {mcmc_draws}+{mcmc_draws} draws, {2 if quick else 4} chains): "
          f"{t_m:8.2f} s/dataset (median of {mcmc_n}; first incl. compilation {ts_m[0]:.2f} s)")
    print(f"    ratio MCMC / amortized: point {t_m / t_one:,.0f}× (single dataset), {t_m / t_batch:,.0f}× "
          f"(batched); NPE {t_m / t_npe_one:,.0f}× (single), {t_m / t_npe_batch:,.0f}× (batched)"
          "   [goal ≥ 1000×, < 10 ms]")


def training_time(n, epochs):
    import bayesid
    from bayesid.neural import PointEstimator, simulate_training_set

    model, design = "gait.bslip", "imu_accel"
    try:
        bayesid.models.get(model)
    except Exception as err:  # noqa: BLE001
        print(f"    ({model} unavailable: {err}; using toy.identified)")
        model, design = "toy.identified", None
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = simulate_training_set(model, n, design=design, random_seed=0)
    t_sim = time.perf_counter() - t
    est = PointEstimator(epochs=epochs, random_seed=0).fit(ts)
    t_train = est.meta["train_seconds"]
    print(f"\n[2] training on {n:,} simulations of {model} ({len(ts):,} viable, {est.meta['summary_kind']} "
          f"summary, {epochs} epochs)")
    print(f"    simulation {t_sim:7.1f} s + training {t_train:7.1f} s = {t_sim + t_train:7.1f} s "
          f"({(t_sim + t_train) / 60:.2f} min; goal < 5 min); final validation loss "
          f"{est.history['val_loss'][-1]:.4f}, converged: {est.converged()}")
    # error ratio = MSE / prior variance per unconstrained parameter on held-out simulations (goal: ≤ 0.2 on
    # the parameters the diagnosis calls identified, ≈ 1 along a ridge such as log k + log m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = simulate_training_set(model, 2000, design=design, random_seed=1)
    u, ut = est.predict_unconstrained(test), test.theta_unc
    ratio = ((u - ut) ** 2).mean(0) / ut.var(0)
    names = est.unconstrained_names
    parts = [f"{n} {r:.3f}" for n, r in zip(names, ratio)]
    if {"k_log__", "m_log__"} <= set(names):
        ik, im = names.index("k_log__"), names.index("m_log__")
        for label, sign in (("log k/m", -1.0), ("log k·m", 1.0)):
            c, ct = u[:, ik] + sign * u[:, im], ut[:, ik] + sign * ut[:, im]
            parts.append(f"{label} {((c - ct) ** 2).mean() / ct.var():.3f}")
    print(f"    error ratio (held-out, {len(test)} simulations): " + ", ".join(parts))


def versus_sbi(n_train, epochs, n_ref):
    try:
        import sbi  # noqa: F401
        from sbi.inference import NPE as SbiNPE
    except ImportError:
        print("\n[3] sbi is not installed: skipping the comparison with sbi's NPE (pip install sbi).")
        return
    import torch

    import bayesid
    from bayesid.compare import _mcmc_unconstrained
    from bayesid.neural import NPE, c2st, simulate_training_set

    model = "toy.identified"
    spec = bayesid.models.get(model)
    ts = simulate_training_set(spec, n_train, random_seed=0)
    x = torch.as_tensor(ts.x.reshape(len(ts), -1))
    th = torch.as_tensor(ts.theta_unc, dtype=torch.float32)

    t = time.perf_counter()
    ours = NPE(epochs=epochs, random_seed=0).fit(ts)
    t_ours = time.perf_counter() - t

    torch.manual_seed(0)
    t = time.perf_counter()
    inf = SbiNPE(prior=None, density_estimator="maf", show_progress_bars=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = inf.append_simulations(th, x).train(show_train_summary=False)
    t_sbi = time.perf_counter() - t
    n_ep_sbi = inf.summary.get("epochs_trained", ["?"])[-1] if hasattr(inf, "summary") else "?"

    acc_ours, acc_sbi = [], []
    for i in range(n_ref):
        data = spec.simulate(spec.sample_prior(1, random_seed=100 + i) | {}, random_seed=200 + i)
        data1 = {k: v[0] for k, v in data.items()}
        tree = bayesid.fit(spec.build(data1), draws=1000, tune=1000, chains=2, random_seed=i, progressbar=False)
        ref = _mcmc_unconstrained(tree, ours.unconstrained_names)
        s_ours = ours.sample({k: v for k, v in data.items()}, len(ref), random_seed=i)[0]
        with torch.no_grad():
            xo = torch.as_tensor(data["y"].reshape(1, -1), dtype=torch.float32)
            s_sbi = theirs.sample((len(ref),), condition=xo).reshape(len(ref), -1).numpy()
        acc_ours.append(c2st(s_ours, ref, random_seed=i).accuracy)
        acc_sbi.append(c2st(s_sbi, ref, random_seed=i).accuracy)
    print(f"\n[3] bayesid NPE vs sbi NPE on the same {n_train:,} simulations of {model} "
          f"(C2ST against NUTS on {n_ref} held-out datasets; 0.5 = indistinguishable)")
    print(f"    bayesid NPE (NSF, {epochs} epochs)      : train {t_ours:7.1f} s, C2ST "
          f"{np.mean(acc_ours):.3f} ± {np.std(acc_ours) / np.sqrt(n_ref):.3f}  {np.round(acc_ours, 3).tolist()}")
    print(f"    sbi NPE (MAF, early stopping, {n_ep_sbi} ep): train {t_sbi:7.1f} s, C2ST "
          f"{np.mean(acc_sbi):.3f} ± {np.std(acc_sbi) / np.sqrt(n_ref):.3f}  {np.round(acc_sbi, 3).tolist()}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small settings (minutes on 2 cores)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the 10^5-simulation training")
    ap.add_argument("--n-train", type=int, default=100_000, help="simulations for part [2]")
    ap.add_argument("--parts", default="123", help="which parts to run, e.g. '13'")
    ap.add_argument("--model", default="toy.additive", help="model of part [1] (e.g. gait.bslip)")
    ap.add_argument("--mcmc-draws", type=int, default=None, help="NUTS tune = draws per chain in part [1]")
    ap.add_argument("--mcmc-n", type=int, default=None, help="datasets fitted by NUTS in part [1]")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    print(f"bayesid.neural benchmark — torch {torch.__version__}, {a.threads} CPU thread(s), "
          f"cuda unused; python {sys.version.split()[0]}")
    q = a.quick
    if "1" in a.parts:
        amortization(a.model, None, 5000 if q else 20000, 10 if q else 20, a.mcmc_n or (2 if q else 3),
                     a.mcmc_draws or (500 if q else 1000), q)
    if "2" in a.parts:
        training_time(a.n_train if not q else 10_000, a.epochs or (3 if q else 10))
    if "3" in a.parts:
        versus_sbi(5000 if q else 20000, 10 if q else 30, 2 if q else 5)


if __name__ == "__main__":
    main()
