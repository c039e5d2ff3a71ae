"""Amortized neural estimators: speed against MCMC, training time, and accuracy against sbi's NPE.

Prints figures measured in this run, never asserts:

1. time per amortized estimate (point estimate; NPE with 1000 posterior draws), batched and for a
   single dataset, against NUTS (``bayesid.fit``) wall time per dataset; ratio (goal ≥ 1000×, < 10 ms);
2. training time for 10^5 simulations (gait.bslip / imu_accel if registered, else toy.identified;
   goal < 5 min): simulation time and point-estimator training time (``--epochs``, default 40,
   batch 512, lr 2·10⁻³;
   ``--seeds 0,1`` trains under several seeds), error ratios on 2000 held-out simulations;
3. bayesid's NPE on toy.identified at 2·10⁴ simulations: C2ST against the exact posterior (a grid in
   log σ, Gaussian (α, β) given σ) on held-out prior datasets, and the same for the model written as
   plain PyMC (trained through the PyMC forward sampler); then side by side with sbi's NPE (MAF) on the
   same simulations, C2ST against NUTS (0.5 = indistinguishable). The sbi comparison is skipped with a
   message when sbi is not installed (``pip install sbi``; it is not a bayesid dependency).

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


def training_time(n, epochs, seeds=(0,), n_test=2000):
    import bayesid
    from bayesid.neural import PointEstimator, simulate_training_set

    model, design = "gait.bslip", "imu_accel"
    try:
        bayesid.models.get(model)
    except Exception as err:  # noqa: BLE001
        print(f"    ({model} unavailable: {err}; using toy.identified)")
        model, design = "toy.identified", None
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = simulate_training_set(model, n, design=design, random_seed=0)
    t_sim = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = simulate_training_set(model, n_test, design=design, random_seed=1)
    # error ratio = MSE / prior variance per unconstrained parameter on held-out simulations (goal: ≤ 0.2 on
    # the parameters the diagnosis calls identified, ≈ 1 along a ridge such as log k + log m); its standard
    # error is about ratio·√(2/n_test)
    for seed in seeds:
        t = time.perf_counter()
        est = PointEstimator(epochs=epochs, batch_size=512, lr=2e-3, random_seed=seed).fit(ts)
        t_train = time.perf_counter() - t  # everything fit() does: fixed features, linear adjustment, epochs
        print(f"\n[2] training on {n:,} simulations of {model} ({len(ts):,} viable, {est.meta['summary_kind']} "
              f"summary, {len(est.history['epoch'])} of {epochs} epochs, seed {seed}; torch threads "
              f"{__import__('torch').get_num_threads()}, load average {load0:.1f} → {os.getloadavg()[0]:.1f})")
        print(f"    simulation {t_sim:7.1f} s + training {t_train:7.1f} s = {t_sim + t_train:7.1f} s "
              f"({(t_sim + t_train) / 60:.2f} min; goal < 5 min); final validation loss "
              f"{est.history['val_loss'][-1]:.4f}, converged: {est.converged()}")
        u, ut = est.predict_unconstrained(test), test.theta_unc
        ratio = ((u - ut) ** 2).mean(0) / ut.var(0)
        names = est.unconstrained_names
        parts = [f"{n} {r:.3f}" for n, r in zip(names, ratio)]
        if {"k_log__", "m_log__"} <= set(names):
            ik, im = names.index("k_log__"), names.index("m_log__")
            for label, sign in (("log k/m", -1.0), ("log k·m", 1.0)):
                c, ct = u[:, ik] + sign * u[:, im], ut[:, ik] + sign * ut[:, im]
                parts.append(f"{label} {((c - ct) ** 2).mean() / ct.var():.3f}")
        print(f"    error ratio (held-out, {len(test)} simulations, SE ≈ ratio·{np.sqrt(2 / len(test)):.3f}): "
              + ", ".join(parts))


def _c2st_exact(est, simulate_one, x, n_ref, seed0):
    """C2ST of ``est``'s posterior against the exact one on ``n_ref`` prior datasets."""
    from bayesid.models.toys import exact_line_posterior
    from bayesid.neural import c2st

    accs = []
    for i in range(n_ref):
        y = simulate_one(seed0 + i)
        ref = exact_line_posterior(y, x, 2000, np.random.default_rng(seed0 + i))
        s = est.sample({"y": y[None]}, len(ref), random_seed=i)[0]
        accs.append(c2st(s, ref, random_seed=i).accuracy)
    return np.asarray(accs)


def _fmt(accs):
    return f"{accs.mean():.3f} ± {accs.std(ddof=1) / np.sqrt(len(accs)):.3f}  {np.round(accs, 3).tolist()}"


def versus_sbi(n_train, epochs, n_ref, n_exact):
    """[3]: bayesid's NPE against the exact posterior (toy.identified and the same model as plain PyMC),
    and side by side with sbi's NPE against NUTS when sbi is installed."""
    import pymc as pm

    import bayesid
    from bayesid.neural import NPE, simulate_training_set

    model = "toy.identified"
    spec = bayesid.models.get(model)
    x_obs = np.linspace(-1.0, 1.0, spec.design().settings["n_obs"])
    ts = simulate_training_set(spec, n_train, random_seed=0)
    t = time.perf_counter()
    ours = NPE(epochs=epochs, random_seed=0).fit(ts)
    t_ours = time.perf_counter() - t

    def sim_registered(seed):
        return spec.simulate(spec.sample_prior(1, random_seed=seed), random_seed=seed + 1)["y"][0]

    acc_exact = _c2st_exact(ours, sim_registered, x_obs, n_exact, 5000)
    print(f"\n[3] NPE posteriors on {n_train:,} simulations (C2ST, 0.5 = indistinguishable; goal ≤ 0.55, sbibm level)")
    print(f"    bayesid NPE on {model} ({len(ours.history['epoch'])} epochs, early stopping, train {t_ours:.1f} s), "
          f"against the exact posterior on {n_exact} prior datasets: C2ST {_fmt(acc_exact)}")

    # the same model written as plain PyMC (x as pm.Data), trained through bayesid's PyMC forward sampler
    with pm.Model() as plain:
        xd = pm.Data("x", x_obs)
        a = pm.Normal("a", 0.0, 2.0)
        b = pm.Normal("b", 0.0, 2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", a + b * xd, sigma, observed=np.zeros_like(x_obs))
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts_pm = simulate_training_set(plain, n_train, random_seed=0)
    t_sim_pm = time.perf_counter() - t
    t = time.perf_counter()
    ours_pm = NPE(epochs=epochs, random_seed=0).fit(ts_pm)
    t_pm = time.perf_counter() - t

    def sim_plain(seed):
        rng = np.random.default_rng(seed)
        a_, b_, s_ = 2.0 * rng.standard_normal(), 2.0 * rng.standard_normal(), abs(rng.standard_normal())
        return a_ + b_ * x_obs + s_ * rng.standard_normal(x_obs.size)

    acc_pm = _c2st_exact(ours_pm, sim_plain, x_obs, n_exact, 7000)
    print(f"    bayesid NPE on the plain-PyMC model (simulated in {t_sim_pm:.1f} s; "
          f"{len(ours_pm.history['epoch'])} epochs, train {t_pm:.1f} s): C2ST {_fmt(acc_pm)}")

    try:
        import sbi  # noqa: F401
        from sbi.inference import NPE as SbiNPE
    except ImportError:
        print("    sbi is not installed: skipping the comparison with sbi's NPE (pip install sbi).")
        return
    import torch

    from bayesid.comparison.compare import _mcmc_unconstrained
    from bayesid.neural import c2st

    x = torch.as_tensor(ts.x.reshape(len(ts), -1))
    th = torch.as_tensor(ts.theta_unc, dtype=torch.float32)
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
    acc_ours, acc_sbi = np.asarray(acc_ours), np.asarray(acc_sbi)
    print(f"    side by side on the same simulations, C2ST against NUTS (2 × 1000 draws) on {n_ref} held-out datasets")
    print(f"    bayesid NPE (NSF)                      : train {t_ours:7.1f} s, C2ST {_fmt(acc_ours)}")
    print(f"    sbi NPE (MAF, early stopping, {n_ep_sbi} ep): train {t_sbi:7.1f} s, C2ST {_fmt(acc_sbi)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small settings (minutes on 2 cores)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the 10^5-simulation training")
    ap.add_argument("--n-train", type=int, default=100_000, help="simulations for part [2]")
    ap.add_argument("--parts", default="123", help="which parts to run, e.g. '13'")
    ap.add_argument("--seeds", default="0", help="training seeds of part [2], comma-separated (e.g. 0,1)")
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
        training_time(a.n_train if not q else 10_000, a.epochs or (10 if q else 40),
                      tuple(int(v) for v in a.seeds.split(",")))
    if "3" in a.parts:
        versus_sbi(5000 if q else 20000, 10 if q else 30, 2 if q else 5, 5 if q else 20)


if __name__ == "__main__":
    main()
