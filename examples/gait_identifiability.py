"""Which subject parameters can walking data determine? BSLIP under four measurement designs.

Simulates one subject (m = 80 kg, k = 14 kN/m, L0 = 1 m, α0 = 69°, VLO speed 1.097 m/s, compression
2.92 cm), fits the PyMC model of each design with NUTS (exact simulator gradients) and prints which
parameters and combinations the data identify, next to the answer the equations of motion give:

* accelerometer, motion capture, several speeds: only k/m, not k and m separately (the CoM
  acceleration is (k/m)·Σ(L0 − |r|) r̂ − g);
* accelerometer + force plates: the plates measure m·(a − g), so m and then k are identified.

Run ``python examples/gait_identifiability.py`` (4 chains × 1000 draws, 5 s records; a few minutes
on two cores) or with ``BAYESID_GAIT_TINY=1`` / ``--tiny`` (2 chains × 200 draws, 1.5 s records:
a smoke test, its numbers are rough).
"""

from __future__ import annotations

import os
import sys
import warnings

import bayesid
from bayesid import models


def contraction_table(spec, model, tree):
    """Per-parameter contraction 1 − Var_post/Var_prior in unconstrained coordinates (exact prior
    variances), and that of log k ± log m."""
    u = tree.unconstrained_posterior
    pri = spec.priors()
    rows = {}
    for v in model.value_vars:
        base = v.name.removesuffix("_log__")
        rows[base] = 1.0 - float(u[v.name].var()) / pri[base].params["sigma"] ** 2
    s2 = pri["k"].params["sigma"] ** 2 + pri["m"].params["sigma"] ** 2
    rows["log k + log m"] = 1.0 - float((u["k_log__"] + u["m_log__"]).var()) / s2
    rows["log k − log m (k/m)"] = 1.0 - float((u["k_log__"] - u["m_log__"]).var()) / s2
    return rows


def main(tiny=False, seed=7):
    warnings.filterwarnings("ignore", message=".*Potentials.*")
    spec = models.get("gait.bslip")
    truth = spec.true_values()
    draws, chains = (200, 2) if tiny else (1000, 4)
    print("subject: " + ", ".join(f"{p.name} = {float(truth[p.name]):g} {p.unit}" for p in spec.parameters))
    for name in ("imu_accel", "kinematics", "multi_speed", "imu_grf"):
        design = spec.make_design(name, duration=1.5) if tiny else spec.design(name)
        data = spec.simulate(truth, design, random_seed=seed)
        model = spec.build(data, design)
        tree = bayesid.fit(model, draws=draws, tune=max(draws, 300), chains=chains, random_seed=seed,
                           progressbar=False, **spec.sampler_kwargs(model))
        ka = spec.known_answer(name)
        print(f"\n== {name}: {design.description}")
        print(f"   physics says: identified {', '.join(ka.identified)}"
              + (f"; only in combination {', '.join(ka.in_combination)} via {', '.join(ka.combinations)}"
                 if ka.combinations else ""))
        rows = contraction_table(spec, model, tree)
        verdicts, combos = {}, []
        try:
            diag = bayesid.diagnose(tree, model=model, truth=truth, random_seed=seed)
            verdicts = diag.table["verdict"].to_dict()
            combos = [c.name for c in diag.combinations + diag.fisher_combinations]
        except Exception as err:  # the diagnostics are optional here: report, keep the contractions
            print(f"   (bayesid.diagnose failed: {type(err).__name__}: {err})")
        for k, c in rows.items():
            v = verdicts.get(k, "")
            print(f"   {k:<22s} contraction {c:6.3f}  {v}")
        if combos:
            print(f"   identified combinations found: {', '.join(dict.fromkeys(combos))}")
    return 0


if __name__ == "__main__":
    tiny = "--tiny" in sys.argv or os.environ.get("BAYESID_GAIT_TINY", "") not in ("", "0")
    sys.exit(main(tiny=tiny))
