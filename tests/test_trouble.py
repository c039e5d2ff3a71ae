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
