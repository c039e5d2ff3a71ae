"""bayesid.neural: training on simulations, save/load, calibration checks (known answers and negative
controls). Statistical tolerances come from the number of test datasets, never from hand tuning."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zuko")

from bayesid.neural import (NPE, Ensemble, PointEstimator, c2st, calibrate, load,  # noqa: E402
                            sbc, simulate_training_set)
from bayesid.neural.calibration import rank_uniformity, sbc_ranks  # noqa: E402
from bayesid.neural.simulation import ParameterTransform  # noqa: E402
from bayesid.models.toys import exact_line_posterior  # noqa: E402

pytestmark = pytest.mark.neural


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_import_bayesid_does_not_import_torch():
    code = "import sys, bayesid, bayesid.models; import bayesid.comparison; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_torch_gives_clear_error():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'zuko'):\n"
            "            raise ImportError('No module named ' + repr(name))\n"
            "sys.meta_path.insert(0, Block())\n"
            "try:\n    import bayesid.neural\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "bayesid[neural]" in out.stdout


def test_transform_round_trip_and_names():
    from bayesid import models

    tr = ParameterTransform(models.get("toy.identified"))
    assert tr.unconstrained_names == ["alpha", "beta", "sigma_log__"]
    x = np.array([[0.3, -1.0, 0.5], [1.0, 2.0, 3.0]])
    u = tr.forward(x)
    np.testing.assert_allclose(u[:, 2], np.log(x[:, 2]))
    np.testing.assert_allclose(tr.inverse(u), x)
    np.testing.assert_array_equal(tr.reorder_from(["sigma_log__", "alpha", "beta"]), [2, 0, 1])
    with pytest.raises(KeyError, match="do not match"):
        tr.reorder_from(["alpha", "beta", "sigma"])


def test_simulate_training_set_is_reproducible():
    a = simulate_training_set("toy.product", 300, random_seed=4)
    b = simulate_training_set("toy.product", 300, random_seed=4)
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.data["y"], b.data["y"])
    np.testing.assert_allclose(a.theta_unc, np.log(a.theta))
    assert a.x.shape == (300, 1, 50)  # a sequence: (n, channels, T)
    with pytest.raises(ValueError, match="positive"):
        simulate_training_set("toy.product", 0)


def test_untrained_estimator_errors_clearly():
    with pytest.raises(RuntimeError, match="not trained"):
        PointEstimator().predict({"y": np.zeros(50)})
    with pytest.raises(ValueError, match="n_simulations"):
        PointEstimator().fit("toy.additive")


def test_point_estimator_save_load_and_seed(tmp_path):
    ts = simulate_training_set("toy.additive", 2000, random_seed=0)
    e1 = PointEstimator(epochs=3, width=16, random_seed=7).fit(ts)
    e2 = PointEstimator(epochs=3, width=16, random_seed=7).fit(ts)
    test = simulate_training_set("toy.additive", 20, random_seed=1)
    np.testing.assert_allclose(e1.predict_unconstrained(test), e2.predict_unconstrained(test), rtol=1e-5)
    path = e1.save(tmp_path / "est.pt")
    e3 = load(path)
    np.testing.assert_allclose(e1.predict_unconstrained(test), e3.predict_unconstrained(test), rtol=1e-6)
    assert set(e1.predict(test)) == {"a", "b"}
    assert len(e1.history["val_loss"]) == 3
    # a single dataset (no batch dimension) is accepted
    assert e1.predict_unconstrained({"y": test.data["y"][0]}).shape == (1, 2)


def test_ensemble_and_npe_save_load(tmp_path):
    ts = simulate_training_set("toy.weak", 1000, design="many", random_seed=0)
    ens = Ensemble(NPE(epochs=2, width=16, transforms=1), n_members=2, random_seed=3).fit(ts)
    test = simulate_training_set("toy.weak", 5, design="many", random_seed=1)
    s = ens.sample(test, 10, random_seed=0)
    assert s.shape == (5, 10, 1)
    ens2 = load(ens.save(tmp_path / "ens.pt"))
    np.testing.assert_allclose(ens.member_predictions(test).shape, (2, 5, 1))
    np.testing.assert_allclose(ens2.sample(test, 10, random_seed=0), s, rtol=1e-5)


def test_summary_networks_for_iid_and_sequences():
    ts = simulate_training_set("toy.scale", 2000, random_seed=0)
    est = PointEstimator(summary="iid", epochs=2, width=16, random_seed=0).fit(ts)
    assert est.meta["summary_kind"] == "iid"
    est = PointEstimator(summary="conv1d", epochs=1, width=16, random_seed=0).fit(ts)
    assert est.meta["summary_kind"] == "conv1d"
    assert est.predict_unconstrained(ts.subset(np.arange(4))).shape == (4, 2)
    with pytest.raises(ValueError, match="summary must be"):
        PointEstimator(summary="transformer", epochs=1).fit(ts)


# ------------------------------------------------------------------ calibration tests: known answers
def test_rank_uniformity_known_answer():
    """Exactly uniform ranks pass; ranks of an overconfident posterior are rejected."""
    rng = np.random.default_rng(0)
    n, L = 400, 99
    theta = rng.standard_normal((n, 1))
    good = rng.standard_normal((n, L, 1))  # posterior = prior: calibrated
    bad = 0.5 * rng.standard_normal((n, L, 1))  # too narrow
    _, p_good, _ = rank_uniformity(sbc_ranks(theta, good), L)
    _, p_bad, _ = rank_uniformity(sbc_ranks(theta, bad), L)
    assert p_good[0] > 0.01
    assert p_bad[0] < 1e-6


def test_c2st_known_answers():
    """Same distribution: accuracy not significantly above 1/2; shifted by one sd: detected."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 2))
    same = c2st(x, rng.standard_normal((600, 2)), random_seed=0, epochs=100)
    diff = c2st(x, rng.standard_normal((600, 2)) + [1.0, 0.0], random_seed=0, epochs=100)
    assert same.pvalue > 0.01
    assert diff.pvalue < 1e-6 and diff.accuracy > 0.6


def test_npe_calibrated_on_identified_toy_and_undertrained_flagged():
    """SBC (chi-square on binned ranks, family-wise alpha = 0.01) and coverage accept a trained NPE on
    toy.identified and flag a deliberately under-trained one (1 epoch on 500 simulations)."""
    ts = simulate_training_set("toy.identified", 10000, random_seed=0)
    good = NPE(epochs=20, lr=3e-3, random_seed=0).fit(ts)
    rep = calibrate(good, "toy.identified", n_datasets=300, random_seed=3, alpha=0.01)
    assert not rep.flagged, rep.reasons
    bad = NPE(epochs=1, lr=1e-3, random_seed=0).fit(ts.subset(np.arange(500)))
    rep_bad = calibrate(bad, "toy.identified", n_datasets=300, random_seed=3, alpha=0.01)
    assert rep_bad.flagged
    assert not rep_bad.sbc.calibrated


def test_npe_matches_exact_posterior_by_c2st():
    """toy.weak / few is conjugate: the exact posterior is N(m, 2/3 · prior var). Against it a trained NPE
    reaches C2ST accuracy ≤ 0.55, the level of the best published NPE results (sbibm); an under-trained one
    is detected (p < 0.01). "C2ST cannot tell them apart at all" (p > 0.01) was a claim the 15-epoch flow
    does not hold: on a shifted seed (BAYESID_SEED_OFFSET=1) accuracy 0.534 at 3000 samples gave p = 1e-4.
    The control fails that level (> 0.55); it has no linear adjustment, which alone is nearly exact here."""
    from bayesid import models

    spec = models.get("toy.weak")
    ts = simulate_training_set(spec, 8000, design="few", random_seed=0)
    data = spec.simulate({"mu": 0.5}, design="few", random_seed=5)
    d = spec.design("few")
    prec = 1.0 + d["n_obs"] / d["sigma"] ** 2
    mean = (data["y"].sum() / d["sigma"] ** 2) / prec
    exact = mean + np.random.default_rng(2).standard_normal((1500, 1)) / np.sqrt(prec)
    good = NPE(epochs=15, lr=3e-3, random_seed=0).fit(ts)
    # the linear adjustment alone is nearly exact on a conjugate Gaussian, so the under-trained control has none
    bad = NPE(epochs=1, lr=1e-4, linear_adjust=False, random_seed=0).fit(ts.subset(np.arange(300)))
    r_good = c2st(good.sample(data, 1500, random_seed=1)[0], exact, random_seed=0, epochs=100)
    r_bad = c2st(bad.sample(data, 1500, random_seed=1)[0], exact, random_seed=0, epochs=100)
    assert r_good.accuracy <= 0.55, r_good
    assert r_bad.pvalue < 0.01 and r_bad.accuracy > 0.55, r_bad  # fails the level the trained one meets


def test_sbc_requires_posterior_estimator():
    ts = simulate_training_set("toy.weak", 500, random_seed=0)
    est = PointEstimator(epochs=1, width=8).fit(ts)
    with pytest.raises(TypeError, match="posterior estimator"):
        sbc(est, "toy.weak", n_datasets=10)


# ------------------------------------- linear adjustment against the conjugate algebra (plain PyMC model)
def test_linear_adjustment_is_the_exact_posterior_mean_of_a_linear_gaussian_model():
    """y ~ N(a + b x, σ = 0.5) with a, b ~ N(0, 2²), written as plain PyMC: the posterior is Gaussian with
    mean Σ Xᵀy / σ² (linear in y) and covariance Σ = (XᵀX / σ² + I / 4)⁻¹ that does not depend on y. The
    least-squares adjustment the estimators fit before training must therefore be that posterior mean
    and its residual sd the posterior sd. Tolerances: a least-squares fit with p features on n rows
    predicts with excess mean squared error p/n residual variances (we allow 3 p/n); the residual sd has
    relative standard error 1/√(2n) (we allow 4). Negative control: parameters shuffled against their
    data leave the adjustment at the prior mean, far outside the bound."""
    import pymc as pm

    x = np.linspace(-1.0, 1.0, 20)
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 2.0)
        b = pm.Normal("b", 0.0, 2.0)
        pm.Normal("y", a + b * x, 0.5, observed=np.zeros_like(x))
    ts = simulate_training_set(model, 4000, random_seed=0)
    test = simulate_training_set(model, 300, random_seed=1)
    X = np.stack([np.ones_like(x), x], 1)
    cov = np.linalg.inv(X.T @ X / 0.25 + np.eye(2) / 4.0)
    exact_mean = test.data["y"].astype(float) @ X @ cov.T / 0.25
    exact_sd = np.sqrt(np.diag(cov))

    def adjustment(training_set):
        est = PointEstimator(epochs=1, width=8, val_fraction=0.1, random_seed=0).fit(training_set)
        with torch.no_grad():
            shift = est.net.adjust.shift(est.net.summary.linear_features(est._x(test))).numpy()
        m, sd = est.meta["y_mean"], est.meta["y_sd"]
        n_rows = len(training_set) - int(round(0.1 * len(training_set)))
        return m + sd * shift, sd * est.net.adjust.s.numpy(), est.net.adjust.W.shape[0], n_rows

    mean, s, p, n = adjustment(ts)
    err = ((mean - exact_mean) / exact_sd) ** 2
    assert (err.mean(0) < 3 * p / n).all(), (err.mean(0), p / n)
    np.testing.assert_allclose(s, exact_sd, rtol=4 / np.sqrt(2 * n))
    shuffled = ts.subset(np.arange(len(ts)))
    perm = np.random.default_rng(2).permutation(len(ts))
    shuffled.theta, shuffled.theta_unc = ts.theta[perm], ts.theta_unc[perm]
    mean_bad, _, _, _ = adjustment(shuffled)
    assert (((mean_bad - exact_mean) / exact_sd) ** 2).mean(0).min() > 100 * p / n


# ------------------------------------------------- NPE against the exact posterior of a 3-parameter model
@pytest.mark.slow
def test_npe_reaches_sbibm_level_against_the_exact_posterior_of_identified_toy():
    """toy.identified (y ~ N(α + β x, σ), 100 points, σ ~ HalfNormal(1)): the posterior sd of α and β is
    proportional to σ, which the prior spreads over two orders of magnitude, and log σ is set by the
    residual sum of squares. At 2·10⁴ simulations the NPE reaches mean C2ST ≤ 0.55 against the exact
    posterior (grid algebra above) over 6 prior datasets, the sbibm level. Seed spread of that mean (10
    datasets each; training sets 0, 0, 1 and network seeds 1, 2, 3): 0.516, 0.508, 0.532 — sd 0.013, so
    0.55 is 2.5 sd above their mean. Negative control: the same network without the linear adjustment
    (energy features and heteroscedastic scale unused) stays above 0.55."""
    from bayesid import models

    spec = models.get("toy.identified")
    x = np.linspace(-1.0, 1.0, spec.design().settings["n_obs"])
    ts = simulate_training_set(spec, 20000, random_seed=0)
    good = NPE(random_seed=0).fit(ts)
    bad = NPE(random_seed=0, linear_adjust=False).fit(ts)
    acc_good, acc_bad = [], []
    for i in range(6):
        y = spec.simulate(spec.sample_prior(1, random_seed=50 + i), random_seed=60 + i)["y"]
        ref = exact_line_posterior(y[0], x, 2000, np.random.default_rng(70 + i))
        acc_good.append(c2st(good.sample({"y": y}, 2000, random_seed=i)[0], ref, random_seed=i).accuracy)
        acc_bad.append(c2st(bad.sample({"y": y}, 2000, random_seed=i)[0], ref, random_seed=i).accuracy)
    assert np.mean(acc_good) <= 0.55, acc_good
    assert np.mean(acc_bad) > 0.55, acc_bad


# ------------------------------------------------------------------ periodic records: cycle features
def test_cycle_crossings_of_a_sine_are_the_known_times_and_noise_is_not_periodic():
    """sin(2π t / P + φ) crosses its mean upwards at t = (k − φ/2π) P (samples): the interpolated crossing
    times agree to the linear-interpolation error (≤ (π/P)²/6 · P/π samples ≈ 3·10⁻³ for P = 40), the cycle
    length is P and half of each cycle lies above the mean. Negative controls: white noise and a random
    walk are not periodic (``cycle_options`` → None), so ``summary="auto"`` keeps the CNN for them."""
    from bayesid.neural.networks import CycleFeatures, _level_crossings, cycle_options

    P, T = 40.0, 600
    rng = np.random.default_rng(0)
    phi = rng.uniform(0, 2 * np.pi, 50)
    t = np.arange(T)
    x = np.sin(2 * np.pi * t[None] / P + phi[:, None])
    ups, downs, fu, fd = _level_crossings(torch.tensor(x), 0.0, 0.5, 12)
    assert bool(fu.all()) and bool(fd.all())
    k0 = np.ceil(phi / (2 * np.pi) + 1e-9)  # the first up-crossing after t = 0 (none counted at t = 0)
    want = (k0[:, None] + np.arange(12)[None] - phi[:, None] / (2 * np.pi)) * P
    np.testing.assert_allclose(ups.numpy(), want, atol=5e-3)
    np.testing.assert_allclose((downs - ups).numpy(), P / 2, atol=1e-2)
    opts = cycle_options(x[:, None, :] * 3.0 + 1.0)
    assert opts is not None and opts["channel"] == 0 and abs(opts["period"] - P) < 0.05
    assert opts["n_cycles"] == 13
    feats = CycleFeatures(1, T, opts)(torch.tensor(x[:, None, :] * 3.0 + 1.0, dtype=torch.float32))
    assert feats.shape == (50, feats.shape[1]) and bool(torch.isfinite(feats).all())
    assert cycle_options(rng.standard_normal((500, 2, T))) is None
    assert cycle_options(np.cumsum(rng.standard_normal((500, 1, T)), axis=-1)) is None


def test_point_estimator_on_periodic_records_recovers_the_frequency_not_the_unused_parameter(tmp_path):
    """A plain PyMC model y(t) = sin(2π f t) + 0.1 ε over 12 cycles, log f ~ N(log 2, 0.1), and c ~ N(0, 1)
    that the data never see. Known answer: the posterior sd of log f is ~10⁻⁴ (Fisher information
    (2πf)² Σt² / 2σ²), so the Bayes error ratio is ~10⁻⁶; that of c is exactly 1 (its posterior is its prior).
    ``summary="auto"`` picks the cycle features (the records are periodic); the network must get log f to an
    error ratio ≤ 0.05 (the issue's ≤ 0.2 goal, tighter for this easier problem) and must not claim c:
    its ratio ≥ 1 − 4 SE (SE = √(2/n)), at most 1.3 (overfitting a noise target). Save/load keeps the cycle
    configuration (identical predictions) and saliency gradients stay finite."""
    import pymc as pm
    import pytensor.tensor as pt

    from bayesid.neural.explain import saliency

    t = np.arange(600) * 0.01
    with pm.Model() as model:
        logf = pm.Normal("logf", np.log(2.0), 0.1)
        pm.Normal("c", 0.0, 1.0)
        pm.Normal("y", pt.sin(2 * np.pi * pt.exp(logf) * t), 0.1, observed=np.zeros_like(t))
    ts = simulate_training_set(model, 4000, random_seed=0)
    test = simulate_training_set(model, 1000, random_seed=1)
    est = PointEstimator(epochs=15, width=16, random_seed=0).fit(ts)
    assert est.meta["summary_kind"] == "cycles"
    names = est.unconstrained_names
    u, ut = est.predict_unconstrained(test), test.theta_unc
    ratio = dict(zip(names, ((u - ut) ** 2).mean(0) / ut.var(0)))
    se = np.sqrt(2 / len(test))
    assert ratio["logf"] <= 0.05, ratio
    assert 1 - 4 * se <= ratio["c"] <= 1.3, ratio
    est2 = load(est.save(tmp_path / "cyc.pt"))
    np.testing.assert_allclose(est2.predict_unconstrained(test), u, rtol=1e-5, atol=1e-6)
    g = saliency(est, test.subset(np.arange(3)))
    assert np.isfinite(g).all()
    with pytest.raises(Exception, match="periodic"):
        PointEstimator(summary="cycles", epochs=1).fit(simulate_training_set("toy.scale", 200, random_seed=0))
