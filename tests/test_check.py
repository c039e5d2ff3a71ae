"""bayesid.check: structural verdicts before sampling (known answers with negative controls)."""

import pymc as pm
import pytest

import bayesid


def product_model(control: bool, prior=pm.Beta):
    with pm.Model() as m:
        # uniform priors, as Beta(1, 1) (logodds transform) or Uniform(0, 1) (interval transform)
        p1 = prior("p1", 1, 1) if prior is pm.Beta else prior("p1", 0, 1)
        p2 = prior("p2", 1, 1) if prior is pm.Beta else prior("p2", 0, 1)
        pm.Binomial("y", n=200, p=p1 * p2, observed=40)
        if control:  # a second data source that identifies p1
            pm.Binomial("z", n=200, p=p1, observed=100)
    return m


@pytest.mark.parametrize("prior", [pm.Beta, pm.Uniform])
def test_binomial_product_only_p1p2(prior):
    # the invariant is named in log coordinates for both transforms (interval on (0, 1) is logodds)
    r = bayesid.check(product_model(False, prior), n_draws=48, n_whitening=400, random_seed=1)
    # algebra: the likelihood depends on p1·p2 only, so at every draw one direction is uninformed and
    # both parameters load on it (shares (1-p_i)²-weighted, never 0 or 1 in the interior)
    assert (r.fisher.local_null_dim == 1).all()
    assert r.verdicts == {"p1": "identified only in combination", "p2": "identified only in combination"}
    assert [c.name for c in r.combinations] == ["p1·p2"]
    assert "p1·p2" in r.summary() and "<table" in r._repr_html_()


@pytest.mark.parametrize("prior", [pm.Beta, pm.Uniform])
def test_binomial_product_control_second_source(prior):
    r = bayesid.check(product_model(True, prior), n_draws=48, n_whitening=400, random_seed=1)
    assert (r.fisher.local_null_dim == 0).mean() > 0.9
    assert r.verdicts == {"p1": "identified", "p2": "identified"}
    assert r.combinations == []


def test_check_result_renders_through_the_presentation_layer():
    r = bayesid.check(product_model(False), n_draws=16, n_whitening=200, random_seed=2)
    html = r._repr_html_()
    assert "<table" in html and "p1" in html and "Structural check" in html
