"""``gait.hierarchical``: BSLIP walking of several subjects drawn from a population.

``S`` subjects, each with their own leg stiffness, mass, rest leg length and angle of attack drawn
from a log-normal population, walk ``W`` times each (every walk with its own VLO speed and leg
compression). The walks are those of :mod:`bayesid.models.gait` (the same numba simulator and PyMC
Op, unchanged), observed with the sensor designs of ``gait.bslip``.

Parameters (non-centred)
------------------------
Population: ``mu_log_k``, ``mu_log_m``, ``mu_log_L0``, ``mu_log_alpha0`` (means of the logs; α0 in
degrees) and ``tau_log_k``, ``tau_log_m``, ``tau_log_L0``, ``tau_log_alpha0`` (their sds).
Subjects: ``z_k``, ``z_m``, ``z_L0``, ``z_alpha0`` (shape ``(S,)``, standard normal), with
``log k_s = mu_log_k + tau_log_k · z_k[s]`` and so on; ``k``, ``m``, ``L0``, ``alpha0`` are deterministics.
Walks: ``v0`` [m/s] and ``d0`` [m] of shape ``(S, W)`` (the VLO state of each record, as in gait.bslip).

Known answer (from the equations of motion)
-------------------------------------------
Accelerometer and motion-capture records depend on ``(k_s, m_s)`` only through ``κ_s = k_s / m_s``
(see :mod:`.model`). Hence under ``imu_accel`` and ``kinematics``:

* per subject only ``log k_s − log m_s`` is informed; ``log k_s + log m_s`` is not;
* the likelihood depends on the population through ``d_s = (mu_log_k − mu_log_m) + tau_log_k z_k[s] −
  tau_log_m z_m[s]`` only. Shifting both means by the same amount, ``(Δmu_log_k, Δmu_log_m) = (c, c)``,
  leaves every ``d_s`` unchanged: a straight ridge in the unconstrained coordinates. With equal prior sds
  of the two means, ``mu_log_k + mu_log_m`` is a priori independent of ``mu_log_k − mu_log_m`` and of
  everything else the likelihood sees, so its posterior **equals its prior exactly** (contraction 0),
  while ``mu_log_k − mu_log_m`` (the population mean of log k/m) is informed by the ``S`` subjects;
* integrating the subjects, ``d_s ~ N(mu_log_k − mu_log_m, tau_log_k² + tau_log_m²)``: only the sum of the
  two population variances is informed, not their split.

With force plates (``imu_grf``) each subject's ``m_s`` (force / specific force) and ``k_s = κ_s m_s`` are
identified, and ``mu_log_k + mu_log_m`` is informed by the S subjects' values of log k_s + log m_s
(posterior variance ≈ (tau_log_k² + tau_log_m²)/S): the negative control.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..base import BadDataError, Design, KnownAnswer, ModelSpec, Parameter
from ..priors import Prior
from . import simulator as sim
from .model import NonViableGaitError

__all__ = ["HierarchicalBSLIP"]

SUBJECT_PARAMS = ("k", "m", "L0", "alpha0")
_POP_MEAN = {"k": float(np.log(13000.0)), "m": float(np.log(80.0)), "L0": 0.0, "alpha0": float(np.log(69.0))}
_POP_MEAN_SD = {"k": 0.07, "m": 0.07, "L0": 0.015, "alpha0": 0.01}
_POP_SCALE_SD = {"k": 0.07, "m": 0.07, "L0": 0.015, "alpha0": 0.008}
_TRUE_MEAN = {"k": float(np.log(14000.0)), "m": float(np.log(80.0)), "L0": 0.0, "alpha0": float(np.log(69.0))}
_TRUE_SCALE = {"k": 0.05, "m": 0.05, "L0": 0.01, "alpha0": 0.005}
_UNITS = {"k": "N/m", "m": "kg", "L0": "m", "alpha0": "deg"}

_DERIV_RATIO = (
    "Specific force and CoM kinematics depend on (k_s, m_s) only via k_s/m_s (ẍ = (k/m) Σ (L0 − |r_i|) r̂_i − g ŷ; "
    "the events do not involve k or m). The likelihood sees the population only through d_s = (mu_log_k − "
    "mu_log_m) + tau_log_k z_k[s] − tau_log_m z_m[s]: the shift (Δmu_log_k, Δmu_log_m) = (1, 1) is an exact "
    "ridge, and with equal prior sds the posterior of mu_log_k + mu_log_m equals its prior (contraction 0). "
    "mu_log_k − mu_log_m (population mean of log k/m) is informed by the S subjects; per subject only "
    "log k_s − log m_s is, and of the scales only tau_log_k² + tau_log_m²."
)


def _design(name, description, **settings):
    settings.setdefault("n_sub", 1)
    settings.setdefault("t_stall", 2.0)
    return Design(name, description, settings)


class HierarchicalBSLIP(ModelSpec):
    """BSLIP walkers from a log-normal population: S subjects × W walks (see the module docstring).

    Parameters
    ----------
    n_subjects : int
        Number of subjects ``S``.
    n_walks : int
        Walks (records) per subject ``W``.
    duration : float
        Seconds per walk in every design.

    Notes
    -----
    Designs (as in ``gait.bslip``, per walk): ``imu_accel`` (pelvis accelerometer, specific force, noise sd
    0.05 m/s²), ``kinematics`` (CoM positions, 2 mm), ``imu_grf`` (accelerometer plus force plates, 10 N);
    100 Hz. Data arrays have shape ``(S, W, n_t, 2)``.

    The PyMC program evaluates all S·W walks with one :class:`~bayesid.models.gait.op.WalkOp` call and adds
    ``pm.Potential("viable_gait", 0 or −inf)`` as gait.bslip does. :meth:`simulate` raises
    :class:`~bayesid.models.gait.NonViableGaitError` for parameters where any walk fails, unless
    ``on_fail="nan"``.
    """

    name = "gait.hierarchical"
    description = ("Hierarchical BSLIP walking: S subjects with (k, m, L0, α0) from a log-normal population, "
                   "W walks each, accelerometer / motion-capture / force-plate designs.")

    def __init__(self, n_subjects=3, n_walks=2, duration=2.0):
        if n_subjects < 1 or n_walks < 1 or duration <= 0:
            raise ValueError("need n_subjects ≥ 1, n_walks ≥ 1 and duration > 0")
        S, W = int(n_subjects), int(n_walks)
        self.n_subjects, self.n_walks = S, W
        rng = np.random.default_rng(7)
        z_true = {p: np.clip(rng.standard_normal(S), -1.5, 1.5) for p in SUBJECT_PARAMS}
        params = []
        for p in SUBJECT_PARAMS:
            params.append(Parameter(f"mu_log_{p}", Prior("normal", {"mu": _POP_MEAN[p], "sigma": _POP_MEAN_SD[p]}),
                                    _TRUE_MEAN[p], f"log {_UNITS[p]}", description=f"population mean of log {p}"))
        for p in SUBJECT_PARAMS:
            params.append(Parameter(f"tau_log_{p}", Prior("halfnormal", {"sigma": _POP_SCALE_SD[p]}), _TRUE_SCALE[p],
                                    description=f"population sd of log {p}"))
        for p in SUBJECT_PARAMS:
            params.append(Parameter(f"z_{p}", Prior("normal", {"mu": 0.0, "sigma": 1.0}), z_true[p], shape=(S,),
                                    description=f"standardised subject deviation of log {p}"))
        v0 = 1.097 * (1.0 + 0.01 * np.linspace(-1.0, 1.0, W))[None, :] * np.ones((S, 1)) if W > 1 \
            else np.full((S, 1), 1.097)
        params.append(Parameter("v0", Prior("normal", {"mu": 1.10, "sigma": 0.03}), v0, "m/s", shape=(S, W),
                                description="forward CoM speed at the first VLO of each walk"))
        params.append(Parameter("d0", Prior("lognormal", {"mu": float(np.log(0.03)), "sigma": 0.15}),
                                np.full((S, W), 0.0292), "m", shape=(S, W),
                                description="leg compression at the first VLO of each walk"))
        self.parameters = tuple(params)
        common = dict(fs=100.0, duration=float(duration))
        self.designs = {
            "imu_accel": _design("imu_accel", f"pelvis accelerometer, {S} subjects × {W} walks × {duration} s, "
                                 "100 Hz, noise sd 0.05 m/s²", sigma_accel=0.05, **common),
            "kinematics": _design("kinematics", f"CoM motion capture, {S} subjects × {W} walks × {duration} s, 2 mm",
                                  sigma_pos=0.002, **common),
            "imu_grf": _design("imu_grf", f"accelerometer plus force plates, {S} subjects × {W} walks × "
                               f"{duration} s", sigma_accel=0.05, sigma_grf=10.0, **common),
        }
        self.default_design = "imu_accel"
        self.known_answers = self._known_answers()

    # ------------------------------------------------------------ known answers
    def _known_answers(self):
        pop_other = ("mu_log_L0", "mu_log_alpha0", "tau_log_L0", "tau_log_alpha0", "z_L0", "z_alpha0")
        ratio = KnownAnswer(
            identified=("v0", "d0"),
            weakly_identified=pop_other,
            in_combination=("mu_log_k", "mu_log_m", "tau_log_k", "tau_log_m", "z_k", "z_m"),
            combinations=("mu_log_k - mu_log_m",),
            ridges=({"mu_log_k": 1.0, "mu_log_m": 1.0},),
            derivation=_DERIV_RATIO,
        )
        grf = KnownAnswer(
            identified=("v0", "d0"),
            weakly_identified=("mu_log_k", "mu_log_m", "tau_log_k", "tau_log_m", "z_k", "z_m") + pop_other,
            derivation="Force plates measure m_s·(a − g): m_s and k_s = κ_s m_s are identified per subject, and the "
                       "population means and sds of log k and log m are informed by the S subjects' values (weakly "
                       "for few subjects: the posterior variance of mu_log_k + mu_log_m is ≈ (tau_log_k² + "
                       "tau_log_m²)/S).",
        )
        return {"imu_accel": ratio, "kinematics": ratio, "imu_grf": grf}

    # ------------------------------------------------------------ structure
    @staticmethod
    def _n_t(design) -> int:
        return int(round(design["duration"] * design["fs"]))

    def data_shapes(self, design=None):
        d = self.design(design)
        shape = (self.n_subjects, self.n_walks, self._n_t(d), 2)
        match d.name:
            case "imu_accel":
                return {"accel": shape}
            case "kinematics":
                return {"com": shape}
            case "imu_grf":
                return {"accel": shape, "grf": shape}
        raise KeyError(f"no data layout for design {d.name!r}")

    def _shape_hint(self, design) -> str:
        return (f"(subjects, walks, n_t, axis) = ({self.n_subjects}, {self.n_walks}, {self._n_t(design)}, 2); "
                f"n_t = duration·fs at {design['fs']} Hz")

    def validate_data(self, data, design=None):
        out = super().validate_data(data, design)
        d = self.design(design)
        if "accel" in out and d["duration"] >= 2.0:
            mean_v = float(out["accel"][..., 1].mean())
            if abs(mean_v - sim.G) > 4.0:
                raise BadDataError(
                    f"data['accel'][..., 1] averages {mean_v:.3g} m/s², but an accelerometer measures specific force "
                    f"a − g, whose vertical component averages ≈ g = {sim.G} m/s². Was gravity removed, or are the "
                    "axes (forward, vertical) swapped?")
        return out

    def subject_values(self, theta) -> dict[str, np.ndarray]:
        """Per-subject ``k, m, L0, alpha0`` (natural units, α0 in degrees), each ``(n, S)``."""
        batch, _ = self._as_batch(theta)
        return {p: np.exp(batch[f"mu_log_{p}"][:, None] + batch[f"tau_log_{p}"][:, None] * batch[f"z_{p}"])
                for p in SUBJECT_PARAMS}

    def core_q(self, theta, design=None) -> np.ndarray:
        """Simulator parameters ``(n, S, W, 5)`` = ``(k/m, L0, α0 [rad], L0 − d0, v0)`` of every walk."""
        batch, _ = self._as_batch(theta)
        sv = self.subject_values(batch)
        n = sv["k"].shape[0]
        Q = np.empty((n, self.n_subjects, self.n_walks, sim.N_Q))
        Q[..., 0] = (sv["k"] / sv["m"])[..., None]
        Q[..., 1] = sv["L0"][..., None]
        Q[..., 2] = np.deg2rad(sv["alpha0"])[..., None]
        Q[..., 3] = sv["L0"][..., None] - batch["d0"]
        Q[..., 4] = batch["v0"]
        return Q

    def walk(self, theta=None, design=None) -> dict:
        """Noise-free simulator output: ``out`` (n, S, W, n_t, 7) and ``status`` (n, S, W)."""
        d = self.design(design)
        theta = self.true_values() if theta is None else theta
        Q = self.core_q(theta, d)
        n = Q.shape[0]
        m = n * self.n_subjects * self.n_walks
        r = sim.simulate_walks(Q.reshape(m, sim.N_Q), dt=1.0 / d["fs"], n_sub=d["n_sub"], n_t=self._n_t(d),
                               t_stall=d["t_stall"], parallel=m >= 64)
        shape = (n, self.n_subjects, self.n_walks)
        return {"out": r["out"].reshape(*shape, *r["out"].shape[1:]), "status": r["status"].reshape(shape)}

    def viability(self, theta=None, design=None) -> np.ndarray:
        """0 where every walk of the parameter set walked the whole record, else the first failure code."""
        st = self.walk(theta, design)["status"].reshape(-1, self.n_subjects * self.n_walks)
        big = np.iinfo(np.int64).max
        first = np.where(st != 0, st, big).min(axis=1)
        return np.where(first == big, 0, first)

    def sampler_kwargs(self, model) -> dict:
        """As gait.bslip: jitter only ``z_alpha0`` at the start (PyMC's ±1 jitter of every coordinate starts
        walkers that fall), a low-rank mass matrix for the k/m ridge, target_accept 0.9."""
        return {"compile_kwargs": {"jitter_rvs": {model["z_alpha0"]}}, "nuts": {"adaptation": "low_rank"},
                "target_accept": 0.9}

    def _observed_mean(self, theta, design) -> np.ndarray:
        """Noise-free observations of every parameter set, flattened and divided by their noise sd."""
        d = self.design(design)
        out = self.walk(theta, d)["out"]
        n = out.shape[0]
        if d.name == "kinematics":
            return out[..., 0:2].reshape(n, -1) / d["sigma_pos"]
        acc = out[..., 4:6]
        parts = [acc.reshape(n, -1) / d["sigma_accel"]]
        if d.name == "imu_grf":
            m = self.subject_values(theta)["m"]
            parts.append((m[:, :, None, None, None] * acc).reshape(n, -1) / d["sigma_grf"])
        return np.concatenate(parts, axis=1)

    def unconstrained_transforms(self) -> dict:
        """``{parameter: "log" or None}``: the unconstrained coordinates of the PyMC program (for trees
        built by hand, e.g. :meth:`linearised_tree`, passed as ``bayesid.diagnose(..., transforms=...)``)."""
        return {p.name: "log" if p.prior.domain == "positive" else None for p in self.parameters}

    def linearised_tree(self, design=None, draws=1000, chains=2, prior_draws=4000, step=1e-4, random_seed=None):
        """Prior and exact posterior draws of the *linearised* model given the population scales.

        The population sds ``tau_log_*`` are fixed at their true values (in both groups, so the
        diagnosis drops them as constants, with a note). Given them the prior of the other unconstrained
        coordinates (means, z, v0, log d0) is Gaussian, and with the observations linearised at the true
        values (Jacobian ``J`` of the noise-scaled noise-free observations by central differences of the
        simulator, ``step`` × each coordinate's prior sd) the posterior of the noise-free dataset is
        Gaussian, ``N(Σ(C₀⁻¹m₀ + JᵀJ θ*), Σ = (C₀⁻¹ + JᵀJ)⁻¹)``, drawn exactly. Not the posterior of a noisy
        dataset of the real model, but an exact account of which directions its data inform locally:
        the k/m invariance makes J exactly orthogonal to every ridge of the known answer (the walks are
        bitwise identical along it). A fast path (no MCMC) for the level diagnostics; groups carry the
        free variables and the subject values ``k, m, L0, alpha0``. Diagnose with
        ``transforms=spec.unconstrained_transforms()``.
        """
        import xarray as xr

        d = self.design(design)
        ss = np.random.SeedSequence(random_seed)
        s_prior, s_post = ss.spawn(2)
        truth = self.true_values()
        pr = self.sample_prior(prior_draws, random_seed=s_prior)
        for p in SUBJECT_PARAMS:
            pr[f"tau_log_{p}"] = np.full(prior_draws, float(truth[f"tau_log_{p}"]))
        names = self.parameter_names
        pos = {k: v == "log" for k, v in self.unconstrained_transforms().items()}
        shapes = {p.name: tuple(p.shape) for p in self.parameters}

        def to_unc(th):
            cols = [np.log(np.asarray(th[k], float)) if pos[k] else np.asarray(th[k], float) for k in names]
            return np.concatenate([c.reshape(c.shape[0], -1) for c in cols], axis=1)

        def to_nat(u):
            out, i = {}, 0
            for k in names:
                size = int(np.prod(shapes[k], dtype=int))
                v = u[:, i:i + size].reshape(u.shape[0], *shapes[k])
                out[k] = np.exp(v) if pos[k] else v
                i += size
            return out

        U0 = to_unc(pr)
        u_star = to_unc({k: np.asarray(v, float)[None] for k, v in truth.items()})[0]
        free = np.flatnonzero(U0.std(axis=0) > 1e-12 * (1.0 + np.abs(U0.mean(axis=0))))
        C0 = np.cov(U0[:, free], rowvar=False)
        m0 = U0[:, free].mean(axis=0)
        h = step * np.sqrt(np.diag(C0))
        k = free.size
        pts = np.repeat(u_star[None], 2 * k, axis=0)
        pts[np.arange(k), free] += h
        pts[k + np.arange(k), free] -= h
        mean = self._observed_mean(to_nat(pts), d)
        J = ((mean[:k] - mean[k:]) / (2 * h[:, None])).T
        # in prior-whitened coordinates (C0 = L Lᵀ, A = J L) the posterior is N(δ-shrunk, V diag(1/(1+λ)) Vᵀ)
        L = np.linalg.cholesky(C0)
        A = J @ L
        lam, V = np.linalg.eigh(A.T @ A)
        lam = np.clip(lam, 0.0, None)
        delta = np.linalg.solve(L, u_star[free] - m0)
        mu = m0 + L @ (V @ ((lam / (1 + lam)) * (V.T @ delta)))
        eps = np.random.default_rng(s_post).standard_normal((draws * chains, k))
        post = np.repeat(u_star[None], draws * chains, axis=0)
        post[:, free] = mu + (eps / np.sqrt(1 + lam)) @ V.T @ L.T
        coords = {"subject": np.arange(self.n_subjects), "walk": np.arange(self.n_walks)}

        def group(th, c, n):
            th = {**th, **self.subject_values(th)}
            dv = {}
            for key, v in th.items():
                a = np.asarray(v, float).reshape(c, n, *np.shape(v)[1:])
                dims = ("chain", "draw") + (("subject",) if a.ndim >= 3 else ()) + (("walk",) if a.ndim == 4 else ())
                dv[key] = (dims, a)
            return xr.Dataset(dv, coords=coords)

        return xr.DataTree.from_dict({"posterior": group(to_nat(post), chains, draws),
                                      "prior": group(pr, 1, prior_draws)})

    # ------------------------------------------------------------ contract
    def simulate(self, theta=None, design=None, random_seed=None, on_fail="raise"):
        """Simulate noisy datasets (see :meth:`ModelSpec.simulate`); ``on_fail`` as in gait.bslip."""
        if on_fail not in ("raise", "nan"):
            raise ValueError(f"on_fail must be 'raise' or 'nan', got {on_fail!r}")
        d = self.design(design)
        theta = self.true_values() if theta is None else theta
        batch, single = self._as_batch(theta)
        out = self._simulate(batch, d, np.random.default_rng(random_seed), on_fail=on_fail)
        return {k: v[0] for k, v in out.items()} if single else out

    def _simulate(self, theta, design, rng, on_fail="raise"):
        d = design
        w = self.walk(theta, d)
        st = w["status"].reshape(w["status"].shape[0], -1)
        bad = (st != 0).any(axis=1)
        if bad.any():
            if on_fail == "raise":
                i = int(np.argmax(bad))
                j = int(np.argmax(st[i] != 0))
                s, walk = divmod(j, self.n_walks)
                raise NonViableGaitError(
                    f"{int(bad.sum())} of {bad.size} parameter set(s) do not give walks of {d['duration']} s under "
                    f"design {d.name!r}; first: set {i}, subject {s}, walk {walk}: "
                    f"{sim.STATUS_MESSAGES[int(st[i, j])]}. Filter with spec.viability(theta, design) == 0, or pass "
                    "on_fail='nan'.")
            warnings.warn(f"{int(bad.sum())} of {bad.size} parameter sets are not viable walks; their data are NaN "
                          "(see spec.viability)", stacklevel=3)
        out = w["out"]
        res = {}
        if d.name in ("imu_accel", "imu_grf"):
            sf = out[..., 4:6]
            res["accel"] = sf + d["sigma_accel"] * rng.standard_normal(sf.shape)
        if d.name == "imu_grf":
            m = self.subject_values(theta)["m"]
            f = m[:, :, None, None, None] * out[..., 4:6]
            res["grf"] = f + d["sigma_grf"] * rng.standard_normal(f.shape)
        if d.name == "kinematics":
            pos = out[..., 0:2]
            res["com"] = pos + d["sigma_pos"] * rng.standard_normal(pos.shape)
        for k in res:
            res[k][bad] = np.nan
        return res

    def _build(self, data, design, priors):
        import pymc as pm
        import pytensor.tensor as pt

        from .op import WalkOp

        d = design
        S, W, n_t = self.n_subjects, self.n_walks, self._n_t(d)
        coords = {"subject": np.arange(S), "walk": np.arange(W), "time": np.arange(n_t) / d["fs"],
                  "axis": ["forward", "vertical"]}
        ch = (0, 2) if d.name == "kinematics" else (4, 6)
        op = WalkOp(n_t, 1.0 / d["fs"], d["n_sub"], ch[0], ch[1], d["t_stall"], True)
        with pm.Model(coords=coords) as model:
            mu = {p: priors[f"mu_log_{p}"].to_pymc(f"mu_log_{p}") for p in SUBJECT_PARAMS}
            tau = {p: priors[f"tau_log_{p}"].to_pymc(f"tau_log_{p}") for p in SUBJECT_PARAMS}
            z = {p: priors[f"z_{p}"].to_pymc(f"z_{p}", dims="subject") for p in SUBJECT_PARAMS}
            sv = {p: pm.Deterministic(p, pt.exp(mu[p] + tau[p] * z[p]), dims="subject") for p in SUBJECT_PARAMS}
            v0 = priors["v0"].to_pymc("v0", dims=("subject", "walk"))
            d0 = priors["d0"].to_pymc("d0", dims=("subject", "walk"))
            ones = pt.ones((S, W))
            q = pt.stack([
                ((sv["k"] / sv["m"])[:, None] * ones).ravel(),
                (sv["L0"][:, None] * ones).ravel(),
                (sv["alpha0"][:, None] * (np.pi / 180.0) * ones).ravel(),
                (sv["L0"][:, None] - d0).ravel(),
                v0.ravel(),
            ], axis=1)
            pred, _, status = op(q)
            pm.Potential("viable_gait", pt.switch(pt.eq(pt.sum(status), 0.0), 0.0, -np.inf))
            pred = pred.reshape((S, W, n_t, 2))
            dims = ("subject", "walk", "time", "axis")
            if d.name == "kinematics":
                pm.Normal("com", mu=pred, sigma=d["sigma_pos"], observed=data["com"], dims=dims)
            else:
                pm.Normal("accel", mu=pred, sigma=d["sigma_accel"], observed=data["accel"], dims=dims)
            if d.name == "imu_grf":
                pm.Normal("grf", mu=sv["m"][:, None, None, None] * pred, sigma=d["sigma_grf"],
                          observed=data["grf"], dims=dims)
        return model
