"""gait.bslip: simulator physics, exact gradients, simulator/PyMC agreement, errors, known answers.

Tolerances and where they come from
-----------------------------------
* Reference gait (DESIGN.md, Geyer et al. 2006 parameters): the reference state is quoted to 4
  significant digits, so step period, length, speed and double-support fraction are checked to the
  last quoted digit (±1 unit), and step-to-step variation (periodicity) to 1e-3 s / 1e-3 m.
* Energy: classical RK4 has global error O(h⁴); with h = 10 ms the relative energy drift over 10 s is
  ~1e-6, and halving h must reduce it by ≈ 2⁴ = 16 (accepted: 8 … 32, i.e. order 3–5).
* Events: located by Newton on the RK4 step map to ~1e-15 s, so the event function vanishes to 1e-9
  (the tolerance asked for) — the CoM height at touchdown equals L0·sin α0, the leg length at lift-off L0.
* Event times vs an independent scipy ``solve_ivp`` (rtol 1e-10) integration: RK4 at h = 5 ms has a
  global state error ~1e-6 (measured on the reference gait by halving h), so event times agree to 1e-5 s.
* Sensitivities vs central finite differences with relative step 1e-6: truncation error O(ε²·f''') and
  round-off O(1e-16/ε) bound the discrepancy to ~1e-7 relative; accepted 1e-5.
* Posterior contractions: Monte Carlo standard errors from the effective sample size (see ``_var_ratio_se``),
  accepted at 4 MCSE.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from _gait_checks import assert_loglik_matches_simulator

from bayesid import models
from bayesid.models import BadDataError
from bayesid.models.gait import BSLIP, NonViableGaitError
from bayesid.models.gait import simulator as sim

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def spec():
    return models.get("gait.bslip")


def _reference_walk(seconds=10.0, dt=0.01, n_sub=1, sens=False):
    n_t = int(round(seconds / dt)) + 1
    return sim.simulate_walks(sim.reference_q(), dt=dt, n_sub=n_sub, n_t=n_t, sensitivities=sens)


def _events(r, s=0):
    ev = r["events"][s]
    return ev[~np.isnan(ev[:, 0])]


# ----------------------------------------------------------------------------- physics
def test_registry_returns_bslip(spec):
    assert isinstance(spec, BSLIP)
    assert set(spec.designs) == {"imu_accel", "kinematics", "imu_grf", "multi_speed"}
    for d in spec.designs:
        assert d in spec.known_answers


def test_reference_gait_is_periodic_walking():
    r = _reference_walk()
    assert r["status"][0] == sim.OK
    ev = _events(r)
    td = ev[ev[:, 1] == sim.EV_TOUCHDOWN]
    lo = ev[ev[:, 1] == sim.EV_LIFTOFF]
    periods = np.diff(td[:, 0])
    lengths = np.diff(td[:, 4])
    assert len(periods) >= 20
    # DESIGN.md: step ≈ 0.445 s, step length ≈ 0.51 m, ≈ 1.16 m/s, double support ≈ 37 %
    assert np.all(np.abs(periods - 0.445) < 1e-3)
    assert np.all(np.abs(lengths - 0.514) < 1e-3)
    speed = (td[-1, 4] - td[0, 4]) / (td[-1, 0] - td[0, 0])
    assert abs(speed - 1.16) < 0.01
    ds = (lo[: len(periods), 0] - td[: len(periods), 0]) / periods
    assert np.all(np.abs(ds - 0.37) < 0.01)
    # periodic: the step-to-step variation is far below the step itself
    assert np.ptp(periods) < 1e-3 and np.ptp(lengths) < 1e-3
    # M-shaped vertical force: two peaks above g per step, a dip below g at mid-stance (VLO)
    out = r["out"][0]
    t = np.arange(out.shape[0]) * 0.01
    one = (t > td[3, 0]) & (t < td[4, 0])
    sfy = out[one, 5]
    assert sfy.max() > 1.2 * sim.G and out[0, 5] < sim.G


def test_energy_is_conserved_with_rk4_order():
    drift = []
    for n_sub in (1, 2):
        r = _reference_walk(n_sub=n_sub)
        e = r["out"][0, :, 6]
        drift.append(np.ptp(e) / e[0])
    assert drift[0] < 1e-5
    assert 8.0 < drift[0] / drift[1] < 32.0


def test_event_times_are_exact_on_the_step_map():
    q = sim.reference_q()
    r = _reference_walk()
    ev = _events(r)
    td = ev[ev[:, 1] == sim.EV_TOUCHDOWN]
    lo = ev[ev[:, 1] == sim.EV_LIFTOFF]
    L0, alpha = q[1], q[2]
    assert np.abs(td[:, 3] - L0 * np.sin(alpha)).max() < 1e-9
    assert np.abs(td[:, 4] - (td[:, 2] + L0 * np.cos(alpha))).max() < 1e-12
    # rear foot of the lift-off is the previous stance foot: one step length behind the new one
    rear = np.concatenate([[0.0], td[:-1, 4]])[: len(lo)]
    leg = np.hypot(lo[:, 2] - rear, lo[:, 3])
    assert np.abs(leg - L0).max() < 1e-9


def _load_benchmark():
    path = ROOT / "benchmarks" / "gait_simulator.py"
    spec_ = importlib.util.spec_from_file_location("gait_simulator_bench", path)
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    return mod


def test_event_times_agree_with_solve_ivp():
    bench = _load_benchmark()
    q = sim.reference_q()
    st, ev_ref = bench.scipy_walk(q, n_steps=10, rtol=1e-10, atol=1e-12)
    assert st == 0
    r = sim.simulate_walks(q, dt=0.005, n_sub=1, max_steps=10)
    ev = _events(r)[:, :2]
    ev_ref = np.array(ev_ref)
    assert len(ev) == len(ev_ref) == 20
    assert np.array_equal(ev[:, 1], ev_ref[:, 1])
    assert np.abs(ev[:, 0] - ev_ref[:, 0]).max() < 1e-5


def test_failure_modes_have_status_codes():
    q = sim.reference_q()
    cases = {
        sim.FLIGHT: dict(v0=1.4),           # too fast: the stance leg extends fully, a flight phase
        sim.FRONT_LIFTOFF: dict(v0=0.8),    # too slow: rolls back onto the rear leg
        sim.BAD_START: dict(y0=1.01),       # starts with a stretched leg
        sim.BAD_PARAMS: dict(alpha=2.0),    # angle of attack beyond 90°
    }
    names = list(sim.Q_NAMES)
    Q = []
    for kw in cases.values():
        row = q.copy()
        for k, v in kw.items():
            row[names.index(k)] = v
        Q.append(row)
    Q.append(q)
    r = sim.simulate_walks(np.array(Q), n_t=500)
    assert list(r["status"]) == list(cases) + [sim.OK]
    assert np.isfinite(r["out"]).all()


def test_prior_draws_are_mostly_viable(spec):
    theta = spec.sample_prior(2000, random_seed=4)
    st = spec.viability(theta)
    # 90 % viable measured; 2000 draws give a binomial sd of 0.007
    assert (st == 0).mean() > 0.8


def test_dynamics_depend_on_k_and_m_only_through_k_over_m(spec):
    th = spec.true_values()
    th2 = dict(th, k=th["k"] * 1.3, m=th["m"] * 1.3)
    for design in ("imu_accel", "kinematics"):
        a = spec.walk(th, design)["out"]
        b = spec.walk(th2, design)["out"]
        assert np.array_equal(a[..., :6], b[..., :6]) or np.abs(a[..., :6] - b[..., :6]).max() < 1e-12


# ----------------------------------------------------------------------------- gradients
def test_sensitivities_match_finite_differences_across_events():
    q = sim.reference_q()
    r = sim.simulate_walks(q, n_t=300, sensitivities=True)
    assert (_events(r)[:, 0] < 3.0).sum() >= 10  # ten contact events inside the record
    J = r["jac"][0]
    for p in range(sim.N_Q):
        eps = 1e-6 * abs(q[p])
        qp, qm = q.copy(), q.copy()
        qp[p] += eps
        qm[p] -= eps
        fd = (sim.simulate_walks(qp, n_t=300)["out"][0, :, :6]
              - sim.simulate_walks(qm, n_t=300)["out"][0, :, :6]) / (2 * eps)
        scale = np.abs(J[:, :, p]).max(axis=0)
        assert (np.abs(fd - J[:, :, p]).max(axis=0) <= 1e-5 * scale).all(), sim.Q_NAMES[p]


def test_value_only_and_sensitivity_paths_give_the_same_walks(spec):
    """simulate() uses the scalar value-only RK4, the Op the tangent RK4: same arithmetic up to
    round-off, across prior draws with many events."""
    th = spec.sample_prior(50, random_seed=9)
    Q = spec.core_q(th)[:, 0]
    a = sim.simulate_walks(Q, n_t=300)
    b = sim.simulate_walks(Q, n_t=300, sensitivities=True)
    assert np.array_equal(a["status"], b["status"])
    ok = a["status"] == 0
    assert ok.sum() >= 30
    assert np.abs(a["out"][ok, :, :6] - b["out"][ok, :, :6]).max() < 1e-9


@pytest.mark.parametrize("design", ["imu_accel", "imu_grf"])
def test_logp_gradient_matches_finite_differences(spec, design):
    d = spec.make_design(design, duration=2.0)
    data = spec.simulate(design=d, random_seed=2)
    model = spec.build(data, design=d)
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    rng = np.random.default_rng(0)
    point = model.initial_point()
    names = list(point)
    # a point near the truth (in unconstrained space), away from the prior mean
    tv = spec.true_values()
    for n in names:
        base = n.removesuffix("_log__")
        point[n] = np.log(tv[base]) if n.endswith("_log__") else tv[base]
        point[n] = point[n] + 1e-3 * rng.standard_normal()
    g = dlogp(point)
    for i, n in enumerate(names):
        eps = 1e-6
        pp, pm_ = dict(point), dict(point)
        pp[n] = pp[n] + eps
        pm_[n] = pm_[n] - eps
        fd = (logp(pp) - logp(pm_)) / (2 * eps)
        assert abs(fd - g[i]) <= 1e-5 * max(abs(g[i]), 1.0) + 1e-4, (n, fd, g[i])


def test_op_has_a_numba_implementation_without_object_mode():
    import pytensor
    import pytensor.tensor as pt

    from bayesid.models.gait.op import WalkOp

    q = pt.matrix("q")
    op = WalkOp(200, 0.01, 1, 4, 6)
    pred, jac, status = op(q)
    cost = (pred ** 2).sum()
    grad = pytensor.grad(cost, q)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        f = pytensor.function([q], [cost, grad, status], mode="NUMBA")
    f_py = pytensor.function([q], [cost, grad, status], mode="FAST_COMPILE")
    Q = sim.reference_q()[None]
    a, b = f(Q), f_py(Q)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-12)
    assert b[2][0] == 0


def _walk_ops(fn):
    from pytensor.tensor.blockwise import Blockwise

    from bayesid.models.gait.op import WalkOp

    ops = [n.op.core_op if isinstance(n.op, Blockwise) else n.op for n in fn.maker.fgraph.apply_nodes]
    return [op for op in ops if isinstance(op, WalkOp)]


def test_forward_only_rewrite_gives_bit_identical_log_likelihoods_and_keeps_gradients(spec):
    """Where nothing uses the Jacobian (the vectorised pointwise log-likelihood bayesid.fit computes),
    the rewrite swaps in WalkOp(sensitivities=False); the values must be *exactly* those of the
    sensitivity path (same arithmetic, see models/gait/op.py), over prior draws that include falls.
    The reference is the same function with the Op's ``jac`` also returned (so the rewrite cannot fire
    and every other rewrite is the same). Controls: that graph keeps the sensitivities, and a gradient
    graph keeps them under the default mode."""
    import pytensor
    from pymc.model.transform.conditioning import remove_value_transforms
    from pytensor.graph.traversal import applys_between, graph_inputs

    from bayesid.models.gait.op import WalkOp

    from bayesid.vectorize import compile_vectorized

    d = spec.make_design("imu_accel", duration=1.0)
    model = spec.build(spec.simulate(design=d, random_seed=3), design=d)
    um = remove_value_transforms(model)
    ll = um.logp(vars=um.observed_RVs, sum=False)
    th = {k: np.array(v, dtype=float) for k, v in spec.sample_prior(40, random_seed=4).items()}
    th["alpha0"][0], th["v0"][1] = 80.0, 2.0  # two walkers that fall / take off
    draws = [np.asarray(th[um.values_to_rvs[v].name], dtype=float) for v in um.value_vars]
    fast = compile_vectorized(um.value_vars, ll, mode="FAST_COMPILE")
    [node] = [n for n in applys_between(list(graph_inputs(ll)), ll) if isinstance(n.op, WalkOp)]
    full = compile_vectorized(um.value_vars, ll + [node.outputs[1]], mode="FAST_COMPILE")
    assert [op.sensitivities for op in _walk_ops(fast)] == [False]
    assert [op.sensitivities for op in _walk_ops(full)] == [True]
    a, b = fast(*draws)[0], full(*draws)[0]
    assert np.array_equal(a, b)
    assert (spec.viability(th, d)[:2] != 0).all() and np.isfinite(a).all()  # falls included, still finite
    dlogp = model.compile_dlogp()
    assert any(op.sensitivities for op in _walk_ops(dlogp.f if hasattr(dlogp, "f") else dlogp))
    grad_fn = pytensor.function(model.value_vars, pytensor.grad(model.logp(), model.value_vars[0]))
    assert [op.sensitivities for op in _walk_ops(grad_fn)] == [True]


# ----------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("design", ["imu_accel", "kinematics", "imu_grf", "multi_speed"])
def test_simulator_and_pymc_program_agree(spec, design):
    """The PyMC log-likelihood of simulated data equals the Gaussian density around the simulator's
    noise-free output (same data-generating process), at the truth and at another viable point."""
    d = spec.make_design(design, duration=2.0)
    theta = spec.true_values()
    data = spec.simulate(theta, d, random_seed=5)
    model = spec.build(data, design=d)
    other = dict(theta, k=theta["k"] * 1.05, alpha0=theta["alpha0"] + 0.3, v0=theta["v0"] * 1.01)

    def mean_of(th):
        w = spec.walk(th, d)["out"][0]  # (trials, n_t, 7)
        mean = {}
        if design == "kinematics":
            mean["com"] = w[0, :, 0:2]
        elif design == "multi_speed":
            mean["accel"] = w[:, :, 4:6]
        else:
            mean["accel"] = w[0, :, 4:6]
        if design == "imu_grf":
            mean["grf"] = th["m"] * w[0, :, 4:6]
        return mean

    sd = {"accel": d.settings.get("sigma_accel"), "grf": d.settings.get("sigma_grf"),
          "com": d.settings.get("sigma_pos")}
    assert_loglik_matches_simulator(model, data, (theta, other), mean_of, sd)


def test_simulate_is_reproducible_and_batched(spec):
    a = spec.simulate(random_seed=3)["accel"]
    assert np.array_equal(a, spec.simulate(random_seed=3)["accel"])
    assert not np.array_equal(a, spec.simulate(random_seed=4)["accel"])
    th = spec.sample_prior(4, random_seed=1)
    th = {k: v for k, v in th.items()}
    ok = spec.viability(th) == 0
    th = {k: v[ok] for k, v in th.items()}
    out = spec.simulate(th, "multi_speed", random_seed=0)
    assert out["accel"].shape == (int(ok.sum()), 3, 300, 2)


# ----------------------------------------------------------------------------- errors
def test_non_viable_true_parameters_raise_clear_error(spec):
    th = dict(spec.true_values(), alpha0=np.array(60.0))
    with pytest.raises(NonViableGaitError, match=r"alpha0=60.*flight phase"):
        spec.simulate(th, random_seed=0)
    batch = {k: np.stack([v, spec.true_values()[k]]) for k, v in th.items()}
    with pytest.warns(UserWarning, match="not viable"):
        out = spec.simulate(batch, random_seed=0, on_fail="nan")
    assert np.isnan(out["accel"][0]).all() and np.isfinite(out["accel"][1]).all()


def test_non_viable_proposal_gives_minus_inf_with_finite_gradient(spec):
    d = spec.make_design("imu_accel", duration=1.0)
    model = spec.build(spec.simulate(design=d, random_seed=0), design=d)
    point = model.initial_point()
    point["alpha0"] = np.array(60.0)
    assert model.compile_logp()(point) == -np.inf
    assert np.isfinite(model.compile_dlogp()(point)).all()


def test_bad_data_raise_bad_data_error(spec):
    data = spec.simulate(random_seed=0)
    with pytest.raises(BadDataError, match=r"shape \(250, 2\).*\(500, 2\).*100.0 Hz"):
        spec.build({"accel": data["accel"][::2]})
    with pytest.raises(BadDataError, match="sampled at 50 Hz"):
        spec.build({"accel": data["accel"], "time": np.arange(500) / 50.0})
    with pytest.raises(BadDataError, match="gravity"):
        spec.build({"accel": data["accel"] - [0.0, sim.G]})
    with pytest.raises(BadDataError, match="lack"):
        spec.build({"com": data["accel"]})
    with pytest.raises(BadDataError, match="NaN"):
        bad = data["accel"].copy()
        bad[7, 0] = np.nan
        spec.build({"accel": bad})
    with pytest.raises(KeyError, match="no settings"):
        spec.make_design("imu_accel", sampling_rate=50)


# ----------------------------------------------------------------------------- known answers
def _var_ratio_se(ratio, ess):
    """MCSE of a posterior/prior variance ratio whose prior variance is known exactly: for
    near-Gaussian draws Var(s²)/σ⁴ ≈ 2/ESS, so se(ratio) ≈ ratio·sqrt(2/ESS)."""
    return ratio * np.sqrt(2.0 / ess)


def _sum_diff(tree):
    import arviz_stats

    u = tree.unconstrained_posterior
    lk, lm = u["k_log__"], u["m_log__"]
    s, dif = lk + lm, lk - lm

    def ess_of_variance(x):
        # the MCSE of a variance is that of the mean of the squared deviations: use their ESS, which for
        # NUTS is often far below the (antithetic) ESS of x itself
        a = np.asarray(x.transpose("chain", "draw").values)
        return float(arviz_stats.ess((a - a.mean()) ** 2))

    ess = {n: ess_of_variance(x) for n, x in (("sum", s), ("diff", dif), ("k", lk), ("m", lm))}
    return s.values.ravel(), dif.values.ravel(), lk.values.ravel(), ess


def _fit(spec, design, draws, chains, seed, **dkw):
    import bayesid

    d = spec.make_design(design, **dkw) if dkw else spec.design(design)
    data = spec.simulate(design=d, random_seed=seed)
    model = spec.build(data, design=d)
    tree = bayesid.fit(model, draws=draws, tune=max(draws, 300), chains=chains, random_seed=seed,
                       progressbar=False, **spec.sampler_kwargs(model))
    return model, tree


def _check_ratio_answer(spec, tree):
    """Known answer on the k/m ridge: Var(log k + log m) = prior (2 s²), log k − log m pinned,
    contraction of log k = 1/2 − Var_post(log k/m)/(4 s²)."""
    s_k = spec.priors()["k"].params["sigma"]
    s_m = spec.priors()["m"].params["sigma"]
    assert s_k == s_m
    s2 = s_k ** 2
    ssum, sdiff, lk, ess = _sum_diff(tree)
    r_sum = ssum.var() / (2 * s2)
    r_diff = sdiff.var() / (2 * s2)
    assert abs(r_sum - 1.0) < 4 * _var_ratio_se(1.0, ess["sum"]), (r_sum, ess)
    assert r_diff < 0.01
    c_k = 1 - lk.var() / s2
    expect = 0.5 - sdiff.var() / (4 * s2)
    assert abs(c_k - expect) < 4 * _var_ratio_se(1 - expect, ess["k"]), (c_k, expect, ess)


def test_tiny_fit_shows_the_k_over_m_ridge(spec):
    """Tiny case (1 s of accelerometer data, 2 chains × 300 draws): log k − log m is pinned, log k + log m
    keeps its prior variance (within 4 MCSE)."""
    _, tree = _fit(spec, "imu_accel", draws=300, chains=2, seed=11, duration=1.0)
    _check_ratio_answer(spec, tree)


def test_tiny_fit_force_plates_remove_the_ridge(spec):
    """Negative control of the tiny case: with force plates (1 s) log k + log m contracts too."""
    _, tree = _fit(spec, "imu_grf", draws=300, chains=2, seed=12, duration=1.0)
    ssum, sdiff, _, ess = _sum_diff(tree)
    s2 = spec.priors()["m"].params["sigma"] ** 2
    # GRF noise 10 N on ~800 N over 100 samples pins log m to ~1e-3: ratio ~1e-4, far below 0.1
    assert ssum.var() / (2 * s2) < 0.1 and sdiff.var() / (2 * s2) < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("design", ["imu_accel", "kinematics", "multi_speed"])
def test_ratio_designs_identify_k_over_m_only(spec, design):
    import bayesid

    model, tree = _fit(spec, design, draws=1000, chains=4, seed=21)
    _check_ratio_answer(spec, tree)
    c = tree.unconstrained_posterior
    p = spec.priors()
    for name in ("L0", "alpha0", "v0", "d0"):
        key = f"{name}_log__" if p[name].domain == "positive" else name
        prior_var = p[name].params["sigma"] ** 2
        assert float(c[key].var()) / prior_var < 0.2, name
    diag = bayesid.diagnose(tree, model=model, truth=spec.true_values())
    t = diag.table
    verdict = t["verdict"].to_dict() if "verdict" in t else {}
    ka = spec.known_answer(design)
    for name in ka.in_combination:
        assert verdict[name] in ("identified only in combination", "not identified",
                                 "weakly identified"), (name, verdict[name])
    for name in ka.identified:
        assert verdict[name] == "identified", (name, verdict[name])
    assert "k/m" in [cb.name for cb in diag.combinations + diag.fisher_combinations]


@pytest.mark.slow
def test_force_plates_identify_m_and_k(spec):
    """Negative control: with the force plates m and k contract like every other parameter."""
    import bayesid

    model, tree = _fit(spec, "imu_grf", draws=1000, chains=4, seed=22)
    u = tree.unconstrained_posterior
    s2 = spec.priors()["m"].params["sigma"] ** 2
    for name in ("k_log__", "m_log__"):
        assert float(u[name].var()) / s2 < 0.1, name
    ssum, sdiff, _, ess = _sum_diff(tree)
    assert ssum.var() / (2 * s2) < 0.1
    diag = bayesid.diagnose(tree, model=model, truth=spec.true_values())
    verdict = diag.table["verdict"].to_dict()
    for name in spec.known_answer("imu_grf").identified:
        assert verdict[name] == "identified", (name, verdict[name])


@pytest.mark.slow
def test_example_script_runs_at_tiny_size():
    env = dict(os.environ, BAYESID_GAIT_TINY="1")
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "gait_identifiability.py")], env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "k/m" in res.stdout and "imu_grf" in res.stdout
