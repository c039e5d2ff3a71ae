"""diagnostics.trouble.ridge_trouble on draws with known structure (numpy known answers + control)."""

import numpy as np

from bayesid.diagnostics.ridges import whitening
from bayesid.diagnostics.trouble import ridge_trouble

NAMES = ["a", "b", "c"]


def draws(offset_dir, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(4, 500, 3)) * np.array([1.0, 0.05, 1.0])
    # chain c shifted by c·0.5 along offset_dir (chain means differ ~ 20 within-chain SEs)
    q += (np.arange(4)[:, None, None] * 0.5) * np.asarray(offset_dir)[None, None, :]
    return q


WHITE = whitening(np.random.default_rng(9).normal(size=(4000, 3)))
NULL = np.array([[1.0], [0.0], [0.0]])  # a moves freely; b, c informed


def test_chains_disagree_along_the_ridge():
    tr = ridge_trouble(draws([1.0, 0, 0]), WHITE, NULL, NAMES)
    assert tr.kind == "ridge" and tr.parameters == ["a"]
    ev = tr.evidence
    assert ev["rhat_null"] - 1 > 5 * (ev["rhat_identified"] - 1)


def test_disagreement_along_an_identified_direction_is_not_a_ridge():
    """Negative control: the chains disagree along c (informed): 'not converged' stands."""
    tr = ridge_trouble(draws([0, 0, 1.0]), WHITE, NULL, NAMES)
    assert tr.kind is None


def test_converged_chains_no_trouble():
    tr = ridge_trouble(draws([0, 0, 0]), WHITE, NULL, NAMES)
    assert tr.kind is None


def test_divergences_scattered_through_the_posterior_or_in_a_neck():
    """divergence_scatter on iid N(0, I) draws (prior = posterior scale): divergences flagged at random draws are
    scattered (the mean shift is ~N(0, 1) per axis, far below 4 SE; no draw outside the central 99.9 %); the same
    number flagged at the smallest values of one coordinate — a funnel's neck — are concentrated (shift of
    ≈ 2.3 SD × sqrt(10) ≈ 7 SE along that axis)."""
    from bayesid.diagnostics.trouble import divergence_scatter

    rng = np.random.default_rng(4)
    q = rng.normal(size=(4, 500, 3))
    div = np.zeros((4, 500), bool)
    div.reshape(-1)[rng.choice(2000, 10, replace=False)] = True
    sc = divergence_scatter(q, WHITE, div)
    assert sc["n_divergent"] == 10 and sc["scattered"] and sc["t_max"] < 4
    neck = np.zeros(2000, bool)
    neck[np.argsort(q.reshape(-1, 3)[:, 0])[:10]] = True
    sc = divergence_scatter(q, WHITE, neck.reshape(4, 500))
    assert not sc["scattered"] and sc["t_max"] > 5
    one = np.zeros(2000, bool)
    one[np.argmin(q.reshape(-1, 3)[:, 0])] = True  # a single divergence at the bottom of the neck
    sc = divergence_scatter(q, WHITE, one.reshape(4, 500))
    assert not sc["scattered"] and sc["outside"] == 1
    assert not divergence_scatter(q, WHITE, np.zeros((4, 500), bool))["scattered"]
