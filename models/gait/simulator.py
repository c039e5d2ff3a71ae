"""Event-accurate BSLIP walking simulator with forward sensitivities, compiled with numba.

The bipedal spring-loaded inverted pendulum (BSLIP; Geyer, Seyfarth & Blickhan 2006): a point mass
``m`` at the centre of mass (CoM), two massless leg springs of stiffness ``k`` and rest length ``L0``.
A stance leg with its foot at ``(f, 0)`` pushes the CoM ``r = (x − f, y)`` with force
``k (L0 − |r|) r / |r|``, so the equations of motion are

    ẍ, ÿ = (k/m) Σ_stance (L0 − |r_i|) r_i / |r_i|  −  (0, g).

Phases and events
-----------------
* single support on foot A → **touchdown** when the CoM height falls through ``L0 sin α0``
  (event function ``y − L0 sin α0`` crossing from + to −); the new foot is placed at
  ``x + L0 cos α0`` and double support begins;
* double support (rear A, front B) → **lift-off** of the rear leg when ``|r_A| = L0``
  (event function ``|r_A| − L0`` crossing − to +); single support on B begins. One *step* is
  completed at each such lift-off.

Anything else ends the walk with a status code (:data:`STATUS_MESSAGES`): the stance leg reaching its
rest length in single support (a flight phase: running/hopping, not walking), the front leg lifting off
first, the CoM moving backwards or dropping below ``0.5·L0`` (a fall), no touchdown within ``t_stall``
seconds, or an invalid start / parameter set.

Numerics
--------
Fixed-step classical Runge–Kutta (RK4) with step ``h = dt / n_sub`` on the sampling grid
``t_i = i·dt``. An event inside a step is located on the RK4 step map itself: Newton's method,
safeguarded by bisection, solves ``g(Φ_τ(z_n)) = 0`` for the partial step ``τ`` (to ~1e-15 s), the
phase is switched there and the rest of the step ``h − τ`` is taken, so the sampling grid is kept.
Sensitivities are the exact forward-mode derivatives of this discrete scheme: tangents are carried
through every RK4 stage (the variational equations of the discrete map), the event time's tangent
follows from the implicit function theorem on ``g(Φ_τ(z_n); θ) = 0`` (using the exact derivative of
the RK4 map in its step size), and the foot placement and the remaining step inherit it. The result
is the derivative of the very numbers the simulator returns (up to round-off and the Newton
tolerance) — no finite differences anywhere.

Core parameters (one row per walk): ``q = (κ = k/m, L0, α0 [rad], y0, v0)``, the walk starting at
vertical leg orientation (VLO) in single support with the foot at ``x = 0`` and CoM state
``(x, y, vx, vy) = (0, y0, v0, 0)``. The dynamics depend on ``k`` and ``m`` only through ``κ``.

Output channels per sample: ``x, y, vx, vy, sfx, sfy, e`` — CoM position and velocity, specific
force (what an accelerometer aligned with the world axes measures: acceleration minus gravity, i.e.
the leg forces divided by ``m``) and the mechanical energy per unit mass
``v²/2 + g y + κ Σ (L0 − |r_i|)²/2`` (conserved by the exact dynamics).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = [
    "G", "N_Q", "Q_NAMES", "CHANNELS", "STATUS_MESSAGES", "OK", "simulate_walks", "walk_core",
    "reference_q",
]

G = 9.81
N_Q = 5
Q_NAMES = ("kappa", "L0", "alpha", "y0", "v0")
CHANNELS = ("x", "y", "vx", "vy", "sfx", "sfy", "e")
N_CH = 7
N_TAN_CH = 6  # channels with tangents (not the energy)
MAX_EV = 128  # events recorded per walk

OK = 0
FELL = 1
FLIGHT = 2
FRONT_LIFTOFF = 3
STALLED = 4
BAD_START = 5
BAD_PARAMS = 6
STATUS_MESSAGES = {
    OK: "ok: walked the whole record",
    FELL: "fell: the CoM moved backwards or dropped below 0.5·L0",
    FLIGHT: "flight phase: the stance leg reached its rest length in single support (running/hopping, "
            "not walking)",
    FRONT_LIFTOFF: "front leg lifted off first in double support (the walker bounced back)",
    STALLED: "stalled: no touchdown within t_stall seconds (or contacts chattering within one step)",
    BAD_START: "invalid start: need 0 < L0 − y0 and y0 > L0·sin(α0) at VLO, v0 > 0",
    BAD_PARAMS: "invalid parameters: need finite k/m > 0, L0 > 0 and 0 < α0 < 90°",
}
# event types in the event log
EV_TOUCHDOWN = 1
EV_LIFTOFF = 2

# tangent column layout: column 0 is the step-size direction (used for event location), columns
# 1..N_Q the parameter directions in the order of Q_NAMES.
_C_KAP, _C_L0, _C_AL, _C_Y0, _C_V0 = 1, 2, 3, 4, 5


def reference_q():
    """Core parameters of the reference periodic gait (m = 80 kg, k = 14 kN/m, L0 = 1 m, α0 = 69°,
    VLO height 0.9708 m, VLO speed 1.097 m/s)."""
    return np.array([14000.0 / 80.0, 1.0, np.deg2rad(69.0), 0.9708, 1.097])


@njit(cache=True, fastmath=False)
def _f(z, feet, dfeet, nf, kap, L0, dkap, dL0, dz, c0, c1, out, dout):
    """Right-hand side and its tangent for tangent columns c0..c1-1 (see module docstring)."""
    out[0] = z[2]
    out[1] = z[3]
    ax = 0.0
    ay = 0.0
    for j in range(c0, c1):
        dout[0, j] = dz[2, j]
        dout[1, j] = dz[3, j]
        dout[2, j] = 0.0
        dout[3, j] = 0.0
    for i in range(nf):
        rx = z[0] - feet[i]
        ry = z[1]
        ln = np.sqrt(rx * rx + ry * ry)
        s = L0 / ln - 1.0
        ax += kap * s * rx
        ay += kap * s * ry
        if c1 > c0:
            c = kap * L0 / (ln * ln * ln)
            axx = kap * s - c * rx * rx
            axy = -c * rx * ry
            ayy = kap * s - c * ry * ry
            for j in range(c0, c1):
                drx = dz[0, j] - dfeet[i, j]
                dry = dz[1, j]
                dout[2, j] += axx * drx + axy * dry + s * rx * dkap[j] + kap * rx / ln * dL0[j]
                dout[3, j] += axy * drx + ayy * dry + s * ry * dkap[j] + kap * ry / ln * dL0[j]
    out[2] = ax
    out[3] = ay - G


@njit(cache=True, fastmath=False)
def _rk4(z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, h, dh, c0, c1, zn, dzn, K, DK, zt, dzt):
    """One RK4 step of size ``h`` (tangent ``dh[j]``) from ``z`` (tangent ``dz``) into ``zn``, ``dzn``.

    ``K`` (4, 4) and ``DK`` (4, 4, ncol) receive the stages; ``zt``, ``dzt`` are scratch.
    """
    # stage 1
    _f(z, feet, dfeet, nf, kap, L0, dkap, dL0, dz, c0, c1, K[0], DK[0])
    # stage 2, 3, 4
    for st in range(1, 4):
        a = 0.5 if st < 3 else 1.0
        for r in range(4):
            zt[r] = z[r] + a * h * K[st - 1, r]
            for j in range(c0, c1):
                dzt[r, j] = dz[r, j] + a * (dh[j] * K[st - 1, r] + h * DK[st - 1, r, j])
        _f(zt, feet, dfeet, nf, kap, L0, dkap, dL0, dzt, c0, c1, K[st], DK[st])
    for r in range(4):
        inc = (K[0, r] + 2.0 * K[1, r] + 2.0 * K[2, r] + K[3, r]) / 6.0
        zn[r] = z[r] + h * inc
        for j in range(c0, c1):
            dinc = (DK[0, r, j] + 2.0 * DK[1, r, j] + 2.0 * DK[2, r, j] + DK[3, r, j]) / 6.0
            dzn[r, j] = dz[r, j] + dh[j] * inc + h * dinc


@njit(cache=True, fastmath=False, inline="always")
def _acc_val(x, y, f0, f1, nf, kap, L0):
    """CoM acceleration (value only) for the fast path without sensitivities; sums in the order of
    :func:`_stage_tan` (``ay`` starts at ``−g``), so both paths give bit-identical walks."""
    rx = x - f0
    ln = np.sqrt(rx * rx + y * y)
    s = kap * (L0 / ln - 1.0)
    ax = s * rx
    ay = -G + s * y
    if nf == 2:
        rx = x - f1
        ln = np.sqrt(rx * rx + y * y)
        s = kap * (L0 / ln - 1.0)
        ax += s * rx
        ay += s * y
    return ax, ay


@njit(cache=True, fastmath=False)
def _rk4_val(z, feet, nf, kap, L0, h, zn):
    """One RK4 step (values only) in scalar registers; same arithmetic as :func:`_rk4`."""
    x, y, vx, vy = z[0], z[1], z[2], z[3]
    f0, f1 = feet[0], feet[1]
    a1x, a1y = _acc_val(x, y, f0, f1, nf, kap, L0)
    hh = 0.5 * h
    x2, y2, vx2, vy2 = x + hh * vx, y + hh * vy, vx + hh * a1x, vy + hh * a1y
    a2x, a2y = _acc_val(x2, y2, f0, f1, nf, kap, L0)
    x3, y3, vx3, vy3 = x + hh * vx2, y + hh * vy2, vx + hh * a2x, vy + hh * a2y
    a3x, a3y = _acc_val(x3, y3, f0, f1, nf, kap, L0)
    x4, y4, vx4, vy4 = x + h * vx3, y + h * vy3, vx + h * a3x, vy + h * a3y
    a4x, a4y = _acc_val(x4, y4, f0, f1, nf, kap, L0)
    zn[0] = x + h * ((vx + 2.0 * vx2 + 2.0 * vx3 + vx4) / 6.0)
    zn[1] = y + h * ((vy + 2.0 * vy2 + 2.0 * vy3 + vy4) / 6.0)
    zn[2] = vx + h * ((a1x + 2.0 * a2x + 2.0 * a3x + a4x) / 6.0)
    zn[3] = vy + h * ((a1y + 2.0 * a2y + 2.0 * a3y + a4y) / 6.0)


@njit(cache=True, fastmath=False, inline="always")
def _stage_tan(x, y, f0, f1, nf, kap, L0, dzs, dfeet, dkap, dL0, c0, c1, dk):
    """Acceleration at (x, y) and the tangent of the whole RHS for columns c0..c1-1.

    ``dzs`` (4, ncol) is the stage state's tangent; writes ``dk`` (4, ncol); returns (ax, ay).
    """
    ax = 0.0
    ay = -G
    for j in range(c0, c1):
        dk[0, j] = dzs[2, j]
        dk[1, j] = dzs[3, j]
        dk[2, j] = 0.0
        dk[3, j] = 0.0
    for i in range(nf):
        rx = x - (f0 if i == 0 else f1)
        l2 = rx * rx + y * y
        ln = np.sqrt(l2)
        s = L0 / ln - 1.0
        ks = kap * s
        ax += ks * rx
        ay += ks * y
        c = kap * L0 / (l2 * ln)
        axx = ks - c * rx * rx
        axy = -c * rx * y
        ayy = ks - c * y * y
        bx = s * rx
        by = s * y
        ex = kap * rx / ln
        ey = kap * y / ln
        for j in range(c0, c1):
            drx = dzs[0, j] - dfeet[i, j]
            dry = dzs[1, j]
            dk[2, j] += axx * drx + axy * dry + bx * dkap[j] + ex * dL0[j]
            dk[3, j] += axy * drx + ayy * dry + by * dkap[j] + ey * dL0[j]
    return ax, ay


@njit(cache=True, fastmath=False)
def _rk4_tan(z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, h, dh, c0, c1, zn, dzn, DK, dzt):
    """RK4 step with tangents, RHS inlined (same arithmetic as :func:`_rk4`)."""
    x, y, vx, vy = z[0], z[1], z[2], z[3]
    f0, f1 = feet[0], feet[1]
    hh = 0.5 * h
    d1 = DK[0]
    d2 = DK[1]
    d3 = DK[2]
    d4 = DK[3]
    a1x, a1y = _stage_tan(x, y, f0, f1, nf, kap, L0, dz, dfeet, dkap, dL0, c0, c1, d1)
    x2, y2, vx2, vy2 = x + hh * vx, y + hh * vy, vx + hh * a1x, vy + hh * a1y
    for j in range(c0, c1):
        hj = 0.5 * dh[j]
        dzt[0, j] = dz[0, j] + hj * vx + hh * d1[0, j]
        dzt[1, j] = dz[1, j] + hj * vy + hh * d1[1, j]
        dzt[2, j] = dz[2, j] + hj * a1x + hh * d1[2, j]
        dzt[3, j] = dz[3, j] + hj * a1y + hh * d1[3, j]
    a2x, a2y = _stage_tan(x2, y2, f0, f1, nf, kap, L0, dzt, dfeet, dkap, dL0, c0, c1, d2)
    x3, y3, vx3, vy3 = x + hh * vx2, y + hh * vy2, vx + hh * a2x, vy + hh * a2y
    for j in range(c0, c1):
        hj = 0.5 * dh[j]
        dzt[0, j] = dz[0, j] + hj * vx2 + hh * d2[0, j]
        dzt[1, j] = dz[1, j] + hj * vy2 + hh * d2[1, j]
        dzt[2, j] = dz[2, j] + hj * a2x + hh * d2[2, j]
        dzt[3, j] = dz[3, j] + hj * a2y + hh * d2[3, j]
    a3x, a3y = _stage_tan(x3, y3, f0, f1, nf, kap, L0, dzt, dfeet, dkap, dL0, c0, c1, d3)
    x4, y4, vx4, vy4 = x + h * vx3, y + h * vy3, vx + h * a3x, vy + h * a3y
    for j in range(c0, c1):
        hj = dh[j]
        dzt[0, j] = dz[0, j] + hj * vx3 + h * d3[0, j]
        dzt[1, j] = dz[1, j] + hj * vy3 + h * d3[1, j]
        dzt[2, j] = dz[2, j] + hj * a3x + h * d3[2, j]
        dzt[3, j] = dz[3, j] + hj * a3y + h * d3[3, j]
    a4x, a4y = _stage_tan(x4, y4, f0, f1, nf, kap, L0, dzt, dfeet, dkap, dL0, c0, c1, d4)
    i0 = (vx + 2.0 * vx2 + 2.0 * vx3 + vx4) / 6.0
    i1 = (vy + 2.0 * vy2 + 2.0 * vy3 + vy4) / 6.0
    i2 = (a1x + 2.0 * a2x + 2.0 * a3x + a4x) / 6.0
    i3 = (a1y + 2.0 * a2y + 2.0 * a3y + a4y) / 6.0
    zn[0] = x + h * i0
    zn[1] = y + h * i1
    zn[2] = vx + h * i2
    zn[3] = vy + h * i3
    for j in range(c0, c1):
        hj = dh[j]
        dzn[0, j] = dz[0, j] + hj * i0 + h * ((d1[0, j] + 2.0 * d2[0, j] + 2.0 * d3[0, j] + d4[0, j]) / 6.0)
        dzn[1, j] = dz[1, j] + hj * i1 + h * ((d1[1, j] + 2.0 * d2[1, j] + 2.0 * d3[1, j] + d4[1, j]) / 6.0)
        dzn[2, j] = dz[2, j] + hj * i2 + h * ((d1[2, j] + 2.0 * d2[2, j] + 2.0 * d3[2, j] + d4[2, j]) / 6.0)
        dzn[3, j] = dz[3, j] + hj * i3 + h * ((d1[3, j] + 2.0 * d2[3, j] + 2.0 * d3[3, j] + d4[3, j]) / 6.0)


@njit(cache=True, fastmath=False)
def _event_g(kind, z, feet, L0, sal):
    """Event function: kind 0 = touchdown (y − L0 sin α0), kind 1/2 = length of leg 0/1 minus L0."""
    if kind == 0:
        return z[1] - L0 * sal
    rx = z[0] - feet[kind - 1]
    return np.sqrt(rx * rx + z[1] * z[1]) - L0


@njit(cache=True, fastmath=False)
def _record(i, z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, c0, c1, out, jac, F, DF, want_tan):
    _f(z, feet, dfeet, nf, kap, L0, dkap, dL0, dz, c0, c1, F, DF)
    out[i, 0] = z[0]
    out[i, 1] = z[1]
    out[i, 2] = z[2]
    out[i, 3] = z[3]
    out[i, 4] = F[2]
    out[i, 5] = F[3] + G
    e = 0.5 * (z[2] * z[2] + z[3] * z[3]) + G * z[1]
    for m in range(nf):
        rx = z[0] - feet[m]
        d = L0 - np.sqrt(rx * rx + z[1] * z[1])
        e += 0.5 * kap * d * d
    out[i, 6] = e
    if want_tan:
        for j in range(c0, c1):
            for r in range(4):
                jac[i, r, j - 1] = dz[r, j]
            jac[i, 4, j - 1] = DF[2, j]
            jac[i, 5, j - 1] = DF[3, j]


@njit(cache=True, fastmath=False)
def walk_core(q, dt, n_sub, n_t, max_steps, t_stall, want_tan, out, jac, events):
    """Simulate one walk; fill ``out`` (n_t, 7), ``jac`` (n_t, 6, 5) and the event log.

    Parameters
    ----------
    q : (5,) float array
        ``κ = k/m, L0, α0 [rad], y0, v0``.
    dt : float
        Sampling interval; the integration step is ``dt / n_sub``.
    n_sub : int
    n_t : int
        Number of samples to record (at ``t = 0, dt, ..., (n_t − 1) dt``); may be 0.
    max_steps : int
        Stop after this many completed steps (rear-leg lift-offs); 0 means no step limit.
        The walk runs until both the samples and the steps are complete.
    t_stall : float
        A walk with no touchdown for this long has stalled.
    want_tan : bool
        Compute the sensitivities ``jac[i, c, p] = ∂ out[i, c] / ∂ q[p]``.
    out, jac : arrays
        Outputs. Samples after a failure repeat the last state (finite) with zero sensitivity.
    events : (n_events, 5) array
        Event log rows ``(t, type, x, y, foot x)``; type 1 touchdown (foot x = the new front foot),
        2 rear lift-off (foot x = the remaining stance foot); unused rows NaN.

    Returns
    -------
    status : int
        0 if the walk completed, otherwise a failure code (see ``STATUS_MESSAGES``).
    n_steps : int
        Completed steps.
    t_end : float
        Time reached.
    """
    ncol = N_Q + 1
    for a in range(events.shape[0]):
        for b in range(events.shape[1]):
            events[a, b] = np.nan
    kap, L0, alpha, y0, v0 = q[0], q[1], q[2], q[3], q[4]
    if not (np.isfinite(kap) and kap > 0 and np.isfinite(L0) and L0 > 0
            and np.isfinite(alpha) and 0 < alpha < 0.5 * np.pi):
        _fill_fail(0, n_t, out, jac, want_tan)
        return BAD_PARAMS, 0, 0.0
    sal = np.sin(alpha)
    cal = np.cos(alpha)
    if not (np.isfinite(y0) and np.isfinite(v0) and y0 < L0 and y0 > L0 * sal and v0 > 0):
        _fill_fail(0, n_t, out, jac, want_tan)
        return BAD_START, 0, 0.0

    z = np.zeros(4)
    dz = np.zeros((4, ncol))
    zn = np.zeros(4)
    dzn = np.zeros((4, ncol))
    zt = np.zeros(4)
    dzt = np.zeros((4, ncol))
    K = np.zeros((4, 4))
    DK = np.zeros((4, 4, ncol))
    F = np.zeros(4)
    DF = np.zeros((4, ncol))
    feet = np.zeros(2)
    dfeet = np.zeros((2, ncol))
    dkap = np.zeros(ncol)
    dL0 = np.zeros(ncol)
    dal = np.zeros(ncol)
    dkap[_C_KAP] = 1.0
    dL0[_C_L0] = 1.0
    dal[_C_AL] = 1.0
    dh = np.zeros(ncol)
    dh_rem = np.zeros(ncol)
    dtau = np.zeros(ncol)

    z[1] = y0
    z[2] = v0
    dz[1, _C_Y0] = 1.0
    dz[2, _C_V0] = 1.0
    nf = 1  # feet[0] is the stance foot in single support; (rear, front) in double support
    c1 = ncol if want_tan else 1  # parameter columns 1..c1-1

    h = dt / n_sub
    n_ev = 0
    n_steps = 0
    t = 0.0
    t_last_td = 0.0
    i_rec = 0
    if n_t > 0:
        _record(0, z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, 1, c1, out, jac, F, DF, want_tan)
        i_rec = 1
    status = OK
    k_step = 0
    while True:
        if i_rec >= n_t and (max_steps <= 0 or n_steps >= max_steps):
            break
        # one grid step of size h, possibly split at events
        h_rem = h
        for j in range(ncol):
            dh_rem[j] = 0.0
        n_split = 0
        while True:
            if want_tan:
                _rk4_tan(z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, h_rem, dh_rem, 1, c1,
                         zn, dzn, DK, dzt)
            else:
                _rk4_val(z, feet, nf, kap, L0, h_rem, zn)
            # candidate events: sign changes of the event functions over the step
            best_kind = -1
            best_tau = h_rem
            for kind in range(3):
                if nf == 1:
                    if kind == 2:
                        continue
                    if kind == 0:
                        g0 = _event_g(0, z, feet, L0, sal)
                        g1 = _event_g(0, zn, feet, L0, sal)
                        hit = g0 > 0.0 and g1 <= 0.0
                    else:
                        g0 = _event_g(1, z, feet, L0, sal)
                        g1 = _event_g(1, zn, feet, L0, sal)
                        hit = g0 < 0.0 and g1 >= 0.0
                else:
                    if kind == 0:
                        continue
                    g0 = _event_g(kind, z, feet, L0, sal)
                    g1 = _event_g(kind, zn, feet, L0, sal)
                    hit = g0 < 0.0 and g1 >= 0.0
                if not hit:
                    continue
                # Newton on tau with bisection safeguard; bracket [lo, hi] with g(lo)·g(hi) ≤ 0
                lo = 0.0
                hi = h_rem
                glo = g0
                tau = h_rem * g0 / (g0 - g1)
                for r in range(4):
                    dz[r, 0] = 0.0
                for i in range(nf):
                    dfeet[i, 0] = 0.0
                dh[0] = 1.0
                for _it in range(60):
                    # value and exact d/dtau of the RK4 step map (tangent column 0 only)
                    _rk4(z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, tau, dh, 0, 1,
                         zn, dzn, K, DK, zt, dzt)
                    gv = _event_g(kind, zn, feet, L0, sal)
                    if kind == 0:
                        dg = dzn[1, 0]
                    else:
                        rx = zn[0] - feet[kind - 1]
                        ll = np.sqrt(rx * rx + zn[1] * zn[1])
                        dg = (rx * dzn[0, 0] + zn[1] * dzn[1, 0]) / ll
                    if gv == 0.0:
                        break
                    if (gv > 0.0) == (glo > 0.0):
                        lo = tau
                        glo = gv
                    else:
                        hi = tau
                    step = gv / dg if dg != 0.0 else 0.0
                    tn = tau - step
                    if not (lo < tn < hi) or dg == 0.0:
                        tn = 0.5 * (lo + hi)
                    if abs(tn - tau) <= 1e-15 * h + 1e-300:
                        tau = tn
                        break
                    tau = tn
                if tau < best_tau or best_kind < 0:
                    best_tau = tau
                    best_kind = kind
            if best_kind < 0:
                for r in range(4):
                    z[r] = zn[r]
                    for j in range(1, c1):
                        dz[r, j] = dzn[r, j]
                t += h_rem
                break
            # take the partial step to the event with all columns: column 0 = d/dtau
            tau = best_tau
            for j in range(ncol):
                dh[j] = 0.0
            dh[0] = 1.0
            for r in range(4):
                dz[r, 0] = 0.0
            for i in range(nf):
                dfeet[i, 0] = 0.0
            _rk4(z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, tau, dh, 0, c1,
                 zn, dzn, K, DK, zt, dzt)
            kind = best_kind
            # event-time sensitivity: d tau_j = -(grad g · dz_j + explicit_j) / (grad g · w)
            if kind == 0:
                gx, gy = 0.0, 1.0
            else:
                rx = zn[0] - feet[kind - 1]
                ll = np.sqrt(rx * rx + zn[1] * zn[1])
                gx, gy = rx / ll, zn[1] / ll
            gw = gx * dzn[0, 0] + gy * dzn[1, 0]
            for j in range(1, c1):
                if kind == 0:
                    expl = -sal * dL0[j] - L0 * cal * dal[j]
                else:
                    expl = -dL0[j] - gx * dfeet[kind - 1, j]
                dtau[j] = -(gx * dzn[0, j] + gy * dzn[1, j] + expl) / gw
            for r in range(4):
                z[r] = zn[r]
                for j in range(1, c1):
                    dz[r, j] = dzn[r, j] + dzn[r, 0] * dtau[j]
            t += tau
            h_rem -= tau
            for j in range(1, c1):
                dh_rem[j] -= dtau[j]
            # apply the event
            if kind == 0:  # touchdown: new front foot
                feet[1] = z[0] + L0 * cal
                for j in range(1, c1):
                    dfeet[1, j] = dz[0, j] + cal * dL0[j] - L0 * sal * dal[j]
                nf = 2
                t_last_td = t
                if n_ev < events.shape[0]:
                    events[n_ev, 0] = t
                    events[n_ev, 1] = EV_TOUCHDOWN
                    events[n_ev, 2] = z[0]
                    events[n_ev, 3] = z[1]
                    events[n_ev, 4] = feet[1]
                    n_ev += 1
            elif nf == 2 and kind == 1:  # rear lift-off: single support on the front foot
                feet[0] = feet[1]
                for j in range(1, c1):
                    dfeet[0, j] = dfeet[1, j]
                nf = 1
                n_steps += 1
                if n_ev < events.shape[0]:
                    events[n_ev, 0] = t
                    events[n_ev, 1] = EV_LIFTOFF
                    events[n_ev, 2] = z[0]
                    events[n_ev, 3] = z[1]
                    events[n_ev, 4] = feet[0]
                    n_ev += 1
            elif nf == 1:  # stance leg reached rest length in single support
                status = FLIGHT
            else:
                status = FRONT_LIFTOFF
            if status != OK:
                break
            n_split += 1
            if h_rem <= 1e-13 * h:
                # the event fell on the grid point (within round-off): nothing left to integrate
                t += h_rem
                break
            if n_split > 8:
                # contacts chattering within one step: not a walking gait
                status = STALLED
                break
        if status == OK:
            if z[2] <= 0.0 or z[1] < 0.5 * L0 or not np.isfinite(z[1]):
                status = FELL
            elif t - t_last_td > t_stall:
                status = STALLED
        if status != OK:
            _fill_fail(i_rec, n_t, out, jac, want_tan)
            return status, n_steps, t
        k_step += 1
        if k_step % n_sub == 0 and i_rec < n_t:
            _record(i_rec, z, dz, feet, dfeet, nf, kap, L0, dkap, dL0, 1, c1, out, jac, F, DF,
                    want_tan)
            i_rec += 1
    return status, n_steps, t


@njit(cache=True, fastmath=False)
def _fill_fail(i0, n_t, out, jac, want_tan):
    for i in range(i0, n_t):
        for c in range(N_CH):
            out[i, c] = out[i0 - 1, c] if i0 > 0 else 0.0
        if want_tan:
            for c in range(jac.shape[1]):
                for p in range(jac.shape[2]):
                    jac[i, c, p] = 0.0


@njit(cache=True)
def _batch_serial(Q, dt, n_sub, n_t, max_steps, t_stall, want_tan, out, jac, events, status, steps,
                  tend):
    for s in range(Q.shape[0]):
        st, ns, te = walk_core(Q[s], dt, n_sub, n_t, max_steps, t_stall, want_tan, out[s], jac[s],
                               events[s])
        status[s] = st
        steps[s] = ns
        tend[s] = te


@njit(cache=True, parallel=True)
def _batch_parallel(Q, dt, n_sub, n_t, max_steps, t_stall, want_tan, out, jac, events, status,
                    steps, tend):
    for s in prange(Q.shape[0]):
        st, ns, te = walk_core(Q[s], dt, n_sub, n_t, max_steps, t_stall, want_tan, out[s], jac[s],
                               events[s])
        status[s] = st
        steps[s] = ns
        tend[s] = te


def simulate_walks(q, dt=0.01, n_sub=2, n_t=0, max_steps=0, t_stall=2.0, sensitivities=False,
                   parallel=False, n_events=MAX_EV):
    """Simulate BSLIP walks for a batch of core parameter sets.

    Parameters
    ----------
    q : array_like, shape (n, 5) or (5,)
        Rows ``(κ = k/m [1/s²], L0 [m], α0 [rad], y0 [m], v0 [m/s])``.
    dt : float
        Sampling interval [s]; the RK4 step is ``dt / n_sub``.
    n_sub : int
        RK4 steps per sampling interval.
    n_t : int
        Samples to record, at ``t = 0, dt, …``.
    max_steps : int
        Also run until this many steps are completed (0: only the record length counts).
    t_stall : float
        Seconds without a touchdown after which a walk counts as stalled.
    sensitivities : bool
        Also return ``jac`` with ``jac[s, i, c, p] = ∂ out[s, i, c] / ∂ q[s, p]`` for the channels
        ``x, y, vx, vy, sfx, sfy``.
    parallel : bool
        Spread the walks over numba's threads (``prange``).
    n_events : int
        Rows of the event log per walk.

    Returns
    -------
    dict
        ``out`` (n, n_t, 7) with channels :data:`CHANNELS`; ``status`` (n,) int (0 = ok, see
        :data:`STATUS_MESSAGES`); ``n_steps`` (n,); ``t_end`` (n,); ``events`` (n, n_events, 5) rows
        ``(t, type, x, y, foot x)``; and ``jac`` (n, n_t, 6, 5) if requested.
    """
    Q = np.ascontiguousarray(np.atleast_2d(np.asarray(q, dtype=np.float64)))
    if Q.shape[1] != N_Q:
        raise ValueError(f"q must have {N_Q} columns {Q_NAMES}, got shape {Q.shape}")
    if n_t <= 0 and max_steps <= 0:
        raise ValueError("give n_t > 0 (samples to record) or max_steps > 0 (steps to walk)")
    n = Q.shape[0]
    out = np.zeros((n, n_t, N_CH))
    jac = np.zeros((n, n_t if sensitivities else 0, N_TAN_CH, N_Q))
    events = np.zeros((n, n_events, 5))
    status = np.zeros(n, np.int64)
    steps = np.zeros(n, np.int64)
    tend = np.zeros(n)
    fn = _batch_parallel if parallel else _batch_serial
    fn(Q, float(dt), int(n_sub), int(n_t), int(max_steps), float(t_stall), bool(sensitivities), out,
       jac, events, status, steps, tend)
    res = {"out": out, "status": status, "n_steps": steps, "t_end": tend, "events": events}
    if sensitivities:
        res["jac"] = jac
    return res


# numba threads are set by the caller; expose for benchmarks
set_num_threads = numba.set_num_threads
