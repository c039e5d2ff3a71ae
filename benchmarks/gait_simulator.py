"""Benchmark: ten-step BSLIP walks per second on one core, numba simulator vs scipy ``solve_ivp``.

Both simulators integrate the same equations from the reference VLO state and stop after ten steps
(ten rear-leg lift-offs). The baseline is a straightforward ``scipy.integrate.solve_ivp`` (RK45, rtol
1e-8, atol 1e-10) with terminal event functions for touchdown and lift-off, restarted at each event.
The numba simulator uses RK4 with a fixed 5 ms step (events located by Newton on the step map).
The script prints both rates, their ratio, and how closely the two agree on the event times.

Run: ``python benchmarks/gait_simulator.py [n_walks]``.
"""

from __future__ import annotations

import sys
import time

import numba
import numpy as np
from scipy.integrate import solve_ivp

from bayesid.models.gait import simulator as sim


def scipy_walk(q, n_steps=10, rtol=1e-8, atol=1e-10):
    """Reference implementation with ``solve_ivp`` and terminal events.

    Returns
    -------
    status : int
        0 if ``n_steps`` steps were completed, 1 otherwise.
    events : list of (t, type)
        Touchdowns (1) and rear lift-offs (2).
    """
    kap, L0, alpha, y0, v0 = q
    sal, cal = np.sin(alpha), np.cos(alpha)
    feet = [0.0]

    def rhs(t, z):
        ax, ay = 0.0, -sim.G
        for f in feet:
            rx, ry = z[0] - f, z[1]
            ln = np.hypot(rx, ry)
            ax += kap * (L0 / ln - 1.0) * rx
            ay += kap * (L0 / ln - 1.0) * ry
        return [z[2], z[3], ax, ay]

    def touchdown(t, z):
        return z[1] - L0 * sal
    touchdown.terminal, touchdown.direction = True, -1

    def liftoff_rear(t, z):
        return np.hypot(z[0] - feet[0], z[1]) - L0
    liftoff_rear.terminal, liftoff_rear.direction = True, 1

    def fell(t, z):
        return z[2]
    fell.terminal, fell.direction = True, -1

    z = np.array([0.0, y0, v0, 0.0])
    t = 0.0
    events = []
    steps = 0
    while steps < n_steps:
        evs = [touchdown, liftoff_rear, fell] if len(feet) == 1 else [liftoff_rear, fell]
        sol = solve_ivp(rhs, (t, t + 3.0), z, method="RK45", rtol=rtol, atol=atol, events=evs)
        hit = [i for i, te in enumerate(sol.t_events) if len(te)]
        if not hit:
            return 1, events
        i = min(hit, key=lambda j: sol.t_events[j][0])
        t = sol.t_events[i][0]
        z = sol.y_events[i][0]
        if evs[i] is touchdown:
            feet.append(z[0] + L0 * cal)
            events.append((t, 1))
        elif evs[i] is liftoff_rear and len(feet) == 2:
            feet.pop(0)
            steps += 1
            events.append((t, 2))
        else:
            return 1, events
    return 0, events


def main(n_walks=20000, n_scipy=20):
    numba.set_num_threads(1)
    q = sim.reference_q()
    Q = np.tile(q, (n_walks, 1))
    sim.simulate_walks(Q[:2], dt=0.005, n_sub=1, max_steps=10)  # compile / load cache
    t0 = time.perf_counter()
    r = sim.simulate_walks(Q, dt=0.005, n_sub=1, max_steps=10, parallel=False)
    t_numba = time.perf_counter() - t0
    assert (r["status"] == 0).all() and (r["n_steps"] == 10).all()
    rate_numba = n_walks / t_numba

    t0 = time.perf_counter()
    for _ in range(n_scipy):
        st, ev = scipy_walk(q)
    t_scipy = time.perf_counter() - t0
    assert st == 0
    rate_scipy = n_scipy / t_scipy

    ev_n = r["events"][0]
    ev_n = ev_n[~np.isnan(ev_n[:, 0])][:, :2]
    ev_s = np.array(ev)
    m = min(len(ev_n), len(ev_s))
    dmax = np.abs(ev_n[:m, 0] - ev_s[:m, 0]).max()

    print(f"numba simulator: {n_walks} ten-step walks in {t_numba:.3f} s on one core -> "
          f"{rate_numba:,.0f} walks/s")
    print(f"scipy solve_ivp: {n_scipy} ten-step walks in {t_scipy:.3f} s -> {rate_scipy:,.1f} walks/s")
    print(f"ratio numba/scipy: {rate_numba / rate_scipy:,.0f}x  (goal: >= 10,000 walks/s)")
    print(f"event times agree to {dmax:.2e} s over {m} events")
    return rate_numba, rate_scipy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
