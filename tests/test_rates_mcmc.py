"""Latent-rate models under NUTS and bayesid.diagnose: the known answers, and negative controls.

Tolerances: Monte Carlo standard errors (batch means, or the diagnosis' own ``ratio_se``) times a
Bonferroni-corrected normal quantile; directions are compared with a Davis–Kahan-type bound
sin(angle) ≤ z·se / gap, gap being the distance of the ridge's variance ratio to the next one.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesid
from bayesid import models

ALPHA = 1e-3
DRAWS = dict(draws=1000, tune=500, chains=2, progressbar=False)


def zcrit(n_checks):
    return stats.norm.ppf(1 - ALPHA / (2 * n_checks))


def batch_mcse(x, n_batches=20):
    """Monte Carlo standard error of the mean of ``x`` (chain, draw) by batch means."""
    x = np.asarray(x, float)
    b = x[:, : x.shape[1] // n_batches * n_batches].reshape(x.shape[0], n_batches, -1).mean(-1).ravel()
    return float(b.std(ddof=1) / np.sqrt(b.size))


def run(name, design=None, seed=1, diagnose=True, truth=True):
    spec = models.get(name)
    data = spec.simulate(design=design, random_seed=seed)
    model = spec.build(data, design=design)
    tree = bayesid.fit(model, random_seed=seed + 1, **DRAWS)
    truth = spec.true_values() if truth else None
    diag = bayesid.diagnose(tree, model=model, truth=truth) if diagnose else None
    return spec, tree, diag


def as_vector(loadings, names):
    v = np.array([loadings.get(n, 0.0) for n in names], float)
    return v / np.linalg.norm(v)


def subspace_sines(A, B):
    """Sines of the principal angles between the column spaces of A and B."""
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    cos = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0, 1)
    return np.sqrt(1 - cos**2)


def check_ridges_match(diag, known_ridges):
    """The draw ridges span the known ridges, and the Fisher ridges do too."""
    names = diag.unconstrained_names
    known = np.column_stack([as_vector(r, names) for r in known_ridges])
    ridges = [d for d in diag.directions if d.verdict == "not identified"]
    assert len(ridges) == len(known_ridges), [(d.ratio, d.loadings) for d in diag.directions]
    others = [d.ratio for d in diag.directions if d.verdict != "not identified"]
    for d in ridges:  # ratio = 1 within its Monte Carlo error: prior-determined
        assert abs(d.ratio - 1.0) < zcrit(len(ridges)) * d.ratio_se
    gap = min(d.ratio for d in ridges) - max(others)
    se = max(d.ratio_se for d in ridges)
    found = np.column_stack([as_vector(d.loadings, names) for d in ridges])
    assert subspace_sines(found, known).max() < zcrit(len(ridges)) * se / gap
    fisher = [d for d in diag.fisher_directions if d.verdict == "not identified"]
    assert len(fisher) == len(known_ridges)
    fv = np.column_stack([as_vector(d.loadings, names) for d in fisher])
    assert subspace_sines(fv, known).max() < 1e-6  # Fisher ridges are exact null vectors


# ----------------------------------------------------------------------------- Pairwise (fast)
@pytest.fixture(scope="module")
def pairwise():
    return run("rates.pairwise")


def test_shift_posterior_equals_prior_exactly(pairwise):
    """Var_post(mean θ) = τ²/n exactly (the isotropic prior factorises along the flat direction)."""
    spec, tree, _ = pairwise
    th = tree["unconstrained_posterior"]["theta"].values  # (chain, draw, n)
    n = th.shape[-1]
    tau = spec.parameter("theta").prior.params["sigma"]
    m = th.mean(-1)
    dev2 = (m - m.mean()) ** 2
    assert abs(dev2.mean() - tau**2 / n) < zcrit(2) * batch_mcse(dev2)
    assert abs(m.mean()) < zcrit(2) * batch_mcse(m)


def test_contrasts_contract(pairwise):
    """Negative control: centred components contract far below their prior variance τ²(n−1)/n."""
    _, tree, _ = pairwise
    th = tree["unconstrained_posterior"]["theta"].values
    n = th.shape[-1]
    c = th - th.mean(-1, keepdims=True)
    for i in range(n):
        dev2 = (c[..., i] - c[..., i].mean()) ** 2
        assert dev2.mean() + zcrit(n) * batch_mcse(dev2) < (n - 1) / n


def test_diagnose_finds_the_all_ones_ridge(pairwise):
    spec, _, diag = pairwise
    ka = spec.known_answer()
    check_ridges_match(diag, ka.ridges)
    assert set(diag.table["verdict"]) == {"identified only in combination"}
    # locally too: exactly one flat direction at every posterior draw, the same one everywhere
    assert np.all(diag.fisher.local_null_dim == 1) and diag.fisher.global_null_dim == 1
    # the identified combinations are differences, each contracted
    assert diag.combinations and all(" - " in c.name and c.ratio < 0.5 for c in diag.combinations)


@pytest.fixture(scope="module")
def anchored():
    return run("rates.anchored")


def test_anchored_has_no_ridge(anchored):
    """Negative control: anchoring θ_0 = 0 leaves no non-identified direction."""
    _, _, diag = anchored
    assert diag.ridges == []
    assert np.all(diag.fisher.local_null_dim == 0) and diag.fisher.global_null_dim == 0
    assert [d for d in diag.fisher_directions if d.verdict == "not identified"] == []
    assert set(diag.table["verdict"]) == {"identified"}


# ----------------------------------------------------------------------------- other cases
@pytest.mark.slow
def test_disconnected_graph_has_one_ridge_per_component():
    spec, _, diag = run("rates.pairwise", "disconnected")
    check_ridges_match(diag, spec.known_answer("disconnected").ridges)


@pytest.mark.slow
def test_l2_shift_stays_prior_determined():
    spec, tree, diag = run("rates.l2")
    check_ridges_match(diag, spec.known_answer().ridges)
    th = tree["unconstrained_posterior"]["theta"].values
    tau = spec.parameter("theta").prior.params["sigma"]
    m = th.mean(-1)
    dev2 = (m - m.mean()) ** 2
    assert abs(dev2.mean() - tau**2 / th.shape[-1]) < zcrit(1) * batch_mcse(dev2)


def test_zerosum_has_no_ridge():
    """Negative control: Σθ = 0 (ZeroSumNormal) leaves no non-identified direction.

    (No truth passed: diagnose maps true values component-wise and the zero-sum coordinates have
    n − 1 components for the n constrained ones.)"""
    _, _, diag = run("rates.zerosum", truth=False)
    assert diag.ridges == []
    assert [d for d in diag.fisher_directions if d.verdict == "not identified"] == []


@pytest.mark.slow
def test_affine_shift_ridge_and_scale_direction():
    """Shift: an exact (linear) ridge. Scale: a curved ridge — locally the Fisher information is
    singular along (λ, 1) at every draw, so the draw-averaged information informs it far less
    than the contrasts, and the draws do not identify it."""
    spec, tree, diag = run("rates.affine")
    names = diag.unconstrained_names
    check_ridges_match(diag, spec.known_answer().ridges)
    # two exactly flat directions at every draw (shift and the scale tangent (λ, 1)), but only the
    # shift survives averaging over the posterior: the scale ridge turns with λ — it is curved
    assert np.all(diag.fisher.local_null_dim == 2)
    assert diag.fisher.global_null_dim == 1
    post = tree["posterior"]
    lam = post["lam"].values.reshape(-1, 6).mean(0)
    sig = float(post["sigma"].values.mean())
    tangent = spec.local_ridges(lam, sig)[1]  # (λ, 1) in (lam, sigma_log__)
    shift = as_vector(spec.known_answer().ridges[0], names)
    t = np.array(tangent, float)
    t -= (t @ shift) * shift
    t /= np.linalg.norm(t)
    rest = [d for d in diag.directions if d.verdict != "not identified"]
    # the least-informed remaining direction is the scale direction, and it is not identified
    scale_dir = max(rest, key=lambda d: d.ratio)

    def cos_tangent(d):
        v = as_vector(d.loadings, names)
        v -= (v @ shift) * shift
        return abs(v @ t) / np.linalg.norm(v)

    # ... and of all remaining directions it is the one closest to the local scale tangent
    assert max(rest, key=cos_tangent) is scale_dir
    assert scale_dir.verdict != "identified"
    contrasts = [d.ratio for d in rest if d is not scale_dir]
    assert scale_dir.ratio - zcrit(1) * scale_dir.ratio_se > max(contrasts)

    # exact known answer along the curved ridge: given the identified z = (λ − λ̄)/σ, the posterior of
    # log σ is the prior conditional (Affine.scale_given_contrasts), so s − E(s | z) has posterior mean 0
    lam_d, sig_d = post["lam"].values, post["sigma"].values
    z = (lam_d - lam_d.mean(-1, keepdims=True)) / sig_d[..., None]
    m1, m2 = spec.scale_given_contrasts((z**2).sum(-1))
    s = np.log(sig_d)
    for dev in (s - m1, s**2 - m2):
        assert abs(dev.mean()) < zcrit(3) * batch_mcse(dev)
    # negative control of that check: the conditional without the Jacobian σ^(n−1) is rejected
    grid = np.linspace(-10, 6, 4001)
    lw = (-np.exp(2 * grid) * (z**2).sum(-1)[..., None] / 2
          + spec.parameter("sigma").prior.logpdf(np.exp(grid)) + grid)
    w = np.exp(lw - lw.max(-1, keepdims=True))
    wrong = s - (w * grid).sum(-1) / w.sum(-1)
    assert abs(wrong.mean()) > zcrit(3) * batch_mcse(wrong)


def test_beta_pair_swap_symmetry():
    """p = 1: the draws move freely along log λ1 − log λ2 (the two swapped modes), λ1·λ2 is identified,
    and locally (Fisher) nothing is flat — a discrete, global non-identifiability."""
    spec, tree, diag = run("rates.beta_pair", "p1")
    names = diag.unconstrained_names
    swap = as_vector({"lam1_log__": 1.0, "lam2_log__": -1.0}, names)
    worst = max(diag.directions, key=lambda d: d.ratio)
    assert abs(as_vector(worst.loadings, names) @ swap) > 0.9
    assert worst.verdict != "identified"
    assert "lam1·lam2" in [c.name for c in diag.combinations]
    assert all(d.verdict != "not identified" for d in diag.fisher_directions)
    lam = tree["posterior"]
    frac = float((lam["lam1"] > lam["lam2"]).mean())
    assert 0.0 < frac < 1.0  # both modes visited


@pytest.mark.slow
def test_beta_pair_negative_control():
    _, _, diag = run("rates.beta_pair", "pneg")
    assert diag.ridges == []
    assert set(diag.table["verdict"]) == {"identified"}


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "known limitation of the variance-ratio verdicts: with p = 2 the posterior has two separated branches "
    "((2, 0.5) and ≈(0.82, 0.78), the second holding most of the mass under this prior), yet when NUTS mixes "
    "between them (target_accept 0.95, no divergences) every direction contracts and both rates are "
    "called 'identified'. BetaPair.preimages gives the right answer; diagnose has no multimodality check."))
def test_beta_pair_two_branches_are_not_called_identified():
    spec = models.get("rates.beta_pair")
    data = spec.simulate(design="p2", random_seed=1)
    model = spec.build(data, design="p2")
    tree = bayesid.fit(model, draws=1000, tune=1000, chains=2, random_seed=2, progressbar=False,
                       target_accept=0.95)
    lam1 = tree["posterior"]["lam1"].values
    pre = spec.preimages(*spec.beta_params(2.0, 0.5, 2.0), 2.0)
    assert len(pre) == 2
    near = [np.mean(np.abs(np.log(lam1 / q[0])) < np.abs(np.log(lam1 / o[0]))) for q, o in (pre, pre[::-1])]
    assert min(near) > 0.05  # the draws really do visit both branches
    diag = bayesid.diagnose(tree, model=model, truth=spec.true_values())
    assert set(diag.table["verdict"]) != {"identified"}
