"""compare(): neural errors projected on the directions the MCMC diagnosis (or the known answer) finds.

Known answers: along a ridge the posterior equals the prior, so the MSE-optimal estimate is the prior
mean and its error variance equals the prior variance (ratio 1); identified combinations have ratio
≈ Var_post / Var_prior ≪ 1. Tolerances: a variance ratio estimated from ``n`` datasets has standard
error ≈ ratio·sqrt(2/n) (normal errors), and we allow 4 standard errors; "recovered" / "regresses to
the prior" are the diagnosis' own cut-offs (ratio ≤ 0.5 / ≥ 0.8).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zuko")

import bayesid  # noqa: E402
from bayesid.comparison import PRIOR_RATIO, RECOVERED_RATIO, compare, reference_from_known_answer  # noqa: E402
from bayesid.neural import Ensemble, PointEstimator, simulate_training_set  # noqa: E402

pytestmark = pytest.mark.neural
N_TEST = 500


def _se(ratio, n=N_TEST):
    return ratio * np.sqrt(2.0 / n)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _check_ridge_decomposition(cmp, combination):
    dirs = cmp.directions
    ridge = dirs[dirs["mcmc_verdict"] == "not identified"]
    ident = dirs[dirs["mcmc_verdict"] == "identified"]
    assert len(ridge) == 1 and len(ident) >= 1
    r = ridge.iloc[0]
    # known answer: error variance along the ridge = prior variance along it
    assert abs(r["error_ratio"] - 1.0) < 4 * _se(1.0), r
    assert r["ratio_lower"] >= PRIOR_RATIO and r["neural_verdict"] == "regresses to the prior"
    # identified direction and combination recovered
    assert (ident["ratio_upper"] <= RECOVERED_RATIO).all(), ident
    c = cmp.combinations.set_index("name").loc[combination]
    assert c["ratio_upper"] <= RECOVERED_RATIO and c["neural_verdict"] == "recovered"


@pytest.mark.parametrize("model, combination", [("toy.additive", "a + b"), ("toy.product", "a·b")])
def test_point_estimates_regress_to_prior_along_ridge(model, combination):
    ens = Ensemble(PointEstimator(epochs=15, width=64, lr=3e-3), n_members=2, random_seed=0)
    ens.fit(model, n_simulations=10000)
    cmp = compare(None, ens, n_test=N_TEST, random_seed=1)
    _check_ridge_decomposition(cmp, combination)
    # each parameter keeps half its prior variance as error (equal priors: the ridge's share), plus half
    # the (tiny) error ratio of the identified combination
    c = cmp.combinations.set_index("name").loc[combination, "error_ratio"]
    for p in ("a", "b"):
        r = cmp.parameters.loc[p, "error_ratio"]
        assert abs(r - (0.5 + c / 2)) < 4 * _se(0.5), (p, r)
    # the ensemble members agree on the prior mean: their spread does not reveal the ridge
    ridge = cmp.directions[cmp.directions["mcmc_verdict"] == "not identified"].iloc[0]
    assert ridge["ensemble_spread"] < ridge["error_ratio"]


def test_negative_control_everything_recovered_on_identified_toy():
    est = PointEstimator(epochs=25, width=64, lr=3e-3, random_seed=0).fit("toy.identified", n_simulations=15000)
    cmp = compare(None, est, n_test=N_TEST, random_seed=1)
    assert (cmp.parameters["ratio_upper"] <= RECOVERED_RATIO).all(), cmp.parameters
    assert (cmp.directions["neural_verdict"] == "recovered").all()
    assert len(cmp.directions) == 3 and not (cmp.directions["mcmc_verdict"] == "not identified").any()


def test_reference_directions_from_known_answer():
    ref = reference_from_known_answer("toy.additive", random_seed=0)
    ridge = ref.ridges[0]
    np.testing.assert_allclose(np.abs(ridge.vector), [2 ** -0.5] * 2, atol=0.02)
    assert np.sign(ridge.vector[0]) != np.sign(ridge.vector[1])
    assert ref.combinations[0].coefficients == {"a": 1.0, "b": 1.0}
    refp = reference_from_known_answer("toy.product", random_seed=0)
    assert refp.combinations[0].coefficients == {"a_log__": 1.0, "b_log__": 1.0}


def test_compare_with_mcmc_diagnosis_and_html():
    """With the real diagnosis of toy.additive: same decomposition, MCMC refits of held-out datasets,
    HTML fragment with embedded figures, and ``bayesid.compare`` callable."""
    spec = bayesid.models.get("toy.additive")
    data = spec.simulate(random_seed=1)
    tree = bayesid.fit(spec.build(data), draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
    diag = bayesid.diagnose(tree, truth=spec.true_values())
    est = PointEstimator(epochs=15, lr=3e-3, random_seed=0).fit("toy.additive", n_simulations=10000)
    cmp = bayesid.compare(diag, est, n_test=N_TEST, random_seed=2, n_mcmc=1, tree=tree)
    _check_ridge_decomposition(cmp, "a + b")
    # neural contraction per parameter beside MCMC's (both ≈ 1/2 for a and b; in this conjugate model the
    # posterior variance does not depend on the data, so one MCMC dataset speaks for all): 4 combined
    # standard errors (neural: sqrt(2/n) relative; MCMC: the diagnosis' own contraction_se)
    for p in ("a", "b"):
        row = cmp.parameters.loc[p]
        se = np.hypot(_se(0.5), diag.table.loc[p, "contraction_se"])
        assert abs(row["neural_contraction"] - row["mcmc_contraction"]) < 4 * se, (row, se)
    # the point estimate sits at the MCMC posterior mean, well inside the posterior spread
    assert len(cmp.held_out) == 2
    assert (cmp.held_out["distance_to_mcmc_mean"] < 0.5 * cmp.held_out["mcmc_sd_whitened"]).all()
    html = cmp.to_html()
    assert html.startswith("<section") and html.count("data:image/png;base64,") == 2
    assert "regresses to the prior" in cmp._repr_html_()
    assert "NOT converged" in cmp.summary() or "converged" in cmp.summary()


def test_compare_errors():
    with pytest.raises(RuntimeError, match="not trained"):
        compare(None, PointEstimator(), spec="toy.additive")
    ts = simulate_training_set("toy.additive", 500, random_seed=0)
    est = PointEstimator(epochs=1, width=8).fit(ts)
    ref = reference_from_known_answer("toy.product", random_seed=0)
    with pytest.raises(KeyError, match="do not match"):
        compare(ref, est, n_test=20)


@pytest.mark.slow
def test_gait_k_and_m_regress_to_prior_identified_parameters_do_not():
    """gait.bslip / imu_accel: only k/m enters the accelerations, so log k + log m is a ridge. A CNN
    point estimator regresses to the prior along it; k and m individually keep about half their prior
    variance as error, and that error is the ridge (ridge_share ≈ 1); the errors of the identified
    parameters carry no ridge component (ridge_share ≈ 0: below the 99.9 % point of χ²_1 / n)."""
    from scipy import stats

    spec = pytest.importorskip("bayesid.models").get("gait.bslip")
    ts = simulate_training_set(spec, 20000, design="imu_accel", random_seed=1)
    est = PointEstimator(epochs=20, lr=3e-3, random_seed=0).fit(ts)
    cmp = compare(None, est, n_test=N_TEST, random_seed=2)
    ridges = cmp.directions[cmp.directions["mcmc_verdict"] == "not identified"]
    assert len(ridges) == 1
    r = ridges.iloc[0]
    # named in the natural coordinates (k·m) since the ridge naming reads the log transform;
    # the unconstrained spelling is the same direction
    assert r["label"] in ("k·m", "m·k") or set(r["label"].split(" + ")) == {"k_log__", "m_log__"}, r["label"]
    assert abs(r["error_ratio"] - 1.0) < 4 * _se(1.0) and r["neural_verdict"] == "regresses to the prior"
    c = cmp.combinations.set_index("name").loc["k/m"]
    assert c["ratio_upper"] <= RECOVERED_RATIO
    p = cmp.parameters
    for name in ("k", "m"):
        # known answer (equal prior sds): ratio = 1/2 + (error ratio of log k/m) / 2
        assert abs(p.loc[name, "error_ratio"] - (0.5 + c["error_ratio"] / 2)) < 4 * _se(0.5), p.loc[name]
        assert p.loc[name, "ridge_share"] > 0.9
    bound = stats.chi2.ppf(0.999, 1) / N_TEST
    for name in ("L0", "alpha0", "v0", "d0"):
        assert p.loc[name, "ridge_share"] < bound, p.loc[name]


def test_compare_refuses_estimator_trained_on_other_parameters():
    ts = simulate_training_set("toy.additive", 300, random_seed=0)
    est = PointEstimator(epochs=1, width=8).fit(ts)
    est.meta["transform"].unconstrained_names = ["b", "a"]  # as if the model's parameter order changed
    with pytest.raises(ValueError, match="Retrain"):
        compare(None, est, n_test=20)


def test_npe_posterior_is_the_prior_along_the_ridge_and_c2st_against_mcmc():
    """NPE on toy.additive: it claims no information along a − b, contracts along a + b, and compare()
    refits a held-out dataset with NUTS for a C2ST.

    The exact posterior equals the prior along a − b (ratio 1). This small NPE (8 epochs, 5000
    simulations) is not trained to that precision: with the linear adjustment, over training seeds 0–2
    its ratio was 1.10–1.16 (mean 1.12, SD 0.03; before it, 1.20–1.27 over seeds 0–4; an over-dispersed,
    i.e. conservative, flow), so "= 1 within the n_test error" is not a claim it can meet. The claim
    tested is the one the diagnosis uses: the NPE reads the ridge as not identified (ratio ≥ the ridge
    cut-off 0.8, a margin of > 4 combined standard errors — n_test SE 0.06, seed SD 0.03 — below what it
    gives) and a + b as recovered (≤ 0.5; measured 0.004–0.005).
    An NPE that contracted along the ridge would fail. Calibration itself is tested by SBC in
    test_neural.py."""
    from bayesid.diagnostics import Thresholds
    from bayesid.neural import NPE

    npe = NPE(epochs=8, lr=3e-3, random_seed=0).fit("toy.additive", n_simulations=5000)
    cmp = compare(None, npe, n_test=N_TEST, random_seed=1, n_mcmc=1, n_posterior_draws=200,
                  mcmc_kwargs=dict(draws=300, tune=300))
    dirs = cmp.directions.set_index("mcmc_verdict")
    assert dirs.loc["not identified", "npe_ratio"] >= Thresholds().ridge
    assert dirs.loc["identified", "npe_ratio"] <= RECOVERED_RATIO
    row = cmp.held_out.iloc[0]
    assert 0.0 <= row["c2st_accuracy"] <= 1.0 and 0.0 <= row["c2st_pvalue"] <= 1.0
    assert np.isfinite(row["mcmc_seconds"])
