"""Sampling failures explained by non-identification (issue 12, item 4), on models written here as plain PyMC.

Known answer (algebra): y ~ Binomial(n, p1·p2) with uniform priors sees only the product, so the posterior
is a band around the hyperbola p1·p2 = y/n; only p1·p2 is identified. NUTS wanders slowly along that curved
ridge (R-hat on p1 and p2 often fails at these sizes) while the invariant p1·p2 itself mixes. Whether or
not this particular run converges, the verdict must be "identified only in combination" with p1·p2 named;
when it did not converge, the reason must say that the sampler struggles along the ridge, and the summary
must not ask for more draws. Control: a second data source Binomial(n2, p1) identifies p1, hence p2.
Negative control for the explanation (centered eight schools, no structural ridge) is
tests/test_diagnostics.py::test_pymc_models_outside_the_registry_eight_schools: every parameter there stays
"not converged" whenever convergence fails.
"""

from __future__ import annotations

import pymc as pm

import bayesid
from bayesid.diagnostics import Verdict


def _fit(extra: bool):
    with pm.Model() as m:
        p1 = pm.Uniform("p1", 0, 1)
        p2 = pm.Uniform("p2", 0, 1)
        pm.Binomial("y", 400, p1 * p2, observed=120)
        if extra:
            pm.Binomial("y1", 200, p1, observed=100)
    tree = bayesid.fit(m, draws=500, tune=500, chains=2, random_seed=3, progressbar=False)
    return bayesid.diagnose(tree, model=m, random_seed=0)


def test_product_of_probabilities_sampler_trouble_is_read_as_the_ridge():
    d = _fit(extra=False)
    for p in ("p1", "p2"):
        assert d.verdicts[p] == Verdict.COMBINATION, d.table.loc[p, "reason"]
    names = [c.name for c in d.combinations]
    assert "p1·p2" in names
    summary = d.summary()
    if not d.convergence.ok:
        assert all(d.explained[p].sampler_struggles for p in ("p1", "p2"))  # the structured flag
        assert all(d.explained[p].combination == "p1·p2" for p in ("p1", "p2"))
        assert "Fix the sampling first" not in summary
        assert "non-identification" in summary
    assert not d.consistency_problems()


def test_product_of_probabilities_control_with_data_on_p1_is_identified():
    d = _fit(extra=True)
    assert d.convergence.ok
    assert d.verdicts["p1"] == Verdict.IDENTIFIED and d.verdicts["p2"] == Verdict.IDENTIFIED
    assert d.explained == {}
    assert not d.ridges
