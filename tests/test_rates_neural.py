"""Neural ensembles on pair outcomes (bayesid/neural/pairwise.py): arbitrary offsets, L2 scale collapse,
and the identifiable output layer that removes both.

Tolerances: an F quantile with (M − 1, M − 1) degrees of freedom for variance comparisons between
M members; exact rank tests (all M of one group below all M of another has probability 1/C(2M, M)
under exchangeability, ≈ 1e-3 for M = 6); float precision for quantities fixed by construction.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special, stats

pytest.importorskip("torch")
from bayesid import models  # noqa: E402
from bayesid.models.rates import comparison_pairs, pair_design_matrix  # noqa: E402
from bayesid.neural import pairwise as P  # noqa: E402

pytestmark = pytest.mark.neural

M = 6  # members: 1/C(12, 6) = 1.1e-3 for the rank tests
ALPHA = 1e-3
TRAIN = dict(steps=600, n_members=M)


@pytest.fixture(scope="module")
def races():
    X, theta = P.make_items(6, random_seed=0)
    spec = models.get("rates.pairwise")
    d = spec.design("all_pairs")
    y = spec.simulate({"theta": theta}, design=d, random_seed=1)["y"]
    first, second = comparison_pairs(d)
    return X, theta, first, second, y, d


def mle_contrasts(d, y):
    """Exact maximum-likelihood log-rates (θ_0 = 0 anchor, then centred) and their standard errors."""
    X = pair_design_matrix(d)[:, 1:]

    def nll(b):
        z = X @ b
        return -np.sum(y * -np.logaddexp(0, -z) + (1 - y) * -np.logaddexp(0, z))

    b = optimize.minimize(nll, np.zeros(X.shape[1]), method="BFGS", options={"gtol": 1e-10}).x
    th = np.r_[0.0, b]
    p = special.expit(pair_design_matrix(d) @ th)
    C = np.eye(len(th)) - 1.0 / len(th)  # centring
    F = (pair_design_matrix(d) * (p * (1 - p))[:, None]).T @ pair_design_matrix(d)
    cov = C @ np.linalg.pinv(F) @ C
    return th - th.mean(), np.sqrt(np.diag(cov))


@pytest.fixture(scope="module")
def raw_ensemble(races):
    X, _, first, second, y, _ = races
    return P.train_ensemble(X, first, second, y, random_seed=3, **TRAIN)


def test_members_disagree_along_the_shift_only(raw_ensemble):
    ens = raw_ensemble
    sp = ens.spread()
    # offsets vary far more than chance would allow if members differed like the contrasts do
    assert sp["variance_ratio"] > stats.f.ppf(1 - ALPHA, M - 1, M - 1)
    # the raw per-item spread is the offset spread: reporting it as uncertainty reports the offset
    assert sp["raw_sd"] ** 2 > stats.f.ppf(1 - ALPHA, M - 1, M - 1) * sp["centred_sd"] ** 2
    # differences agree between members
    pairs = np.array([(0, k) for k in range(1, 6)])
    dsd = ens.differences(pairs).std(axis=0, ddof=1)
    assert np.all(dsd**2 * stats.f.ppf(1 - ALPHA, M - 1, M - 1) < sp["offset_sd"] ** 2)


def test_centred_output_layer_removes_the_offset(races, raw_ensemble):
    X, _, first, second, y, d = races
    raw = raw_ensemble
    cen = P.train_ensemble(X, first, second, y, random_seed=4, centre=True, **TRAIN)
    eps = np.finfo(float).eps
    assert np.abs(cen.offsets()).max() < 64 * eps * np.abs(cen.outputs).max()
    # both ensembles' identified quantity is the maximum-likelihood contrast; optimisation error is
    # negligible (< 1 %) next to the statistical standard error
    mle, se = mle_contrasts(d, y)
    for e in (raw, cen):
        assert np.all(np.abs(e.average("centred") - mle) < 0.01 * se)
    # ... while the raw average carries the mean of arbitrary offsets
    assert abs(raw.average("raw").mean()) > 0.01 * se.max()


@pytest.fixture(scope="module")
def thurstone(races):
    X, _, first, second, y, _ = races
    kw = dict(link="probit", random_seed=5, **TRAIN)
    free = P.train_ensemble(X, first, second, y, **kw)
    pen = P.train_ensemble(X, first, second, y, l2=0.1, **kw)
    ident = P.train_ensemble(X, first, second, y, l2=0.1, centre=True, fixed_scale=True, **kw)
    return free, pen, ident


def test_l2_penalty_collapses_a_free_scale(thurstone):
    free, pen, ident = thurstone
    # rank test: every penalised member has a smaller σ (and output scale) than every free member
    assert pen.sigmas.max() < free.sigmas.min()
    assert pen.centred().std(axis=1).max() < free.centred().std(axis=1).min()
    # σ keeps falling through training: no optimum, only a drift towards 0
    for m in pen.members:
        h = m.history["sigma"]
        assert h[-1] < h[len(h) // 2] < h[0]
    # the identified quantity (λ_i − λ_j)/σ is nearly untouched (the penalty mostly moves along the
    # ridge): closer to the unpenalised answer than the same penalty gets with the scale fixed
    ref = free.average("standardised")
    assert np.linalg.norm(pen.average("standardised") - ref) < np.linalg.norm(ident.average("standardised") - ref)


def test_identifiable_output_layer_fixes_offset_and_scale(thurstone):
    free, pen, ident = thurstone
    eps = np.finfo(float).eps
    assert np.all(ident.sigmas == 1.0)
    assert np.abs(ident.offsets()).max() < 64 * eps * np.abs(ident.outputs).max()
    # the same penalty no longer collapses the scale (rank test against the free-scale ensemble)
    assert ident.centred().std(axis=1).min() > pen.centred().std(axis=1).max()
    # members agree on the raw outputs themselves: nothing left to average away
    sp = ident.spread()
    assert sp["raw_sd"] ** 2 < free.spread()["offset_sd"] ** 2 / stats.f.ppf(1 - ALPHA, M - 1, M - 1)


def test_batched_members_equal_single_fits(races):
    X, _, first, second, y, _ = races
    """Training M members as one batched module is training each on its own (sum loss, elementwise Adam)."""
    ens = P.train_ensemble(X, first, second, y, n_members=3, steps=50, random_seed=9, bootstrap=True)
    one = P.fit_member(X, first, second, y, steps=50, random_seed=ens.settings["member_seeds"][2],
                       bootstrap=True)
    # batched and single matrix products may round differently: 50 Adam steps amplify ~1e-16 a little
    np.testing.assert_allclose(one.outputs, ens.outputs[2], rtol=0, atol=1e-9)
    assert not np.allclose(ens.outputs[0], ens.outputs[2])


def test_clear_errors(races):
    X, _, first, second, y, _ = races
    with pytest.raises(ValueError, match="0/1"):
        P.fit_member(X, first, second, y * 2, steps=1)
    with pytest.raises(ValueError, match="cover every compared item"):
        P.fit_member(X[:3], first, second, y, steps=1)
    with pytest.raises(ValueError, match="link"):
        P.RateNet(3, link="cloglog")
    with pytest.raises(ValueError, match="two members"):
        P.train_ensemble(X, first, second, y, n_members=1)


@pytest.mark.slow
def test_bootstrap_ensemble_spread_matches_the_posterior(races):
    """Bagged members estimate sampling variability of the contrasts: compare with NUTS (same model,
    same data). Seed-only members have no spread in the contrasts at all."""
    import bayesid

    X, theta, first, second, y, d = races
    spec = models.get("rates.pairwise")
    tree = bayesid.fit(spec.build({"y": y}, design=d), draws=1000, tune=500, chains=2, random_seed=2,
                       progressbar=False)
    post = P.posterior_summary(tree["posterior"]["theta"].values)
    n_boot = 40
    # the MAP of the same model: the N(0, 1) prior as the penalty Σθ²/2 = l2·K·mean(θ²), K comparisons
    l2 = X.shape[0] / (2 * y.size)
    boot = P.train_ensemble(X, first, second, y, n_members=n_boot, bootstrap=True, random_seed=6, steps=800,
                            l2=l2)
    sd_boot = boot.centred().std(axis=0, ddof=1)
    # chi-square interval of an SD from n_boot draws; the posterior SD's own error is smaller
    lo = np.sqrt(stats.chi2.ppf(ALPHA / 12, n_boot - 1) / (n_boot - 1))
    hi = np.sqrt(stats.chi2.ppf(1 - ALPHA / 12, n_boot - 1) / (n_boot - 1))
    ratio = sd_boot / post["centred_sd_items"]
    assert np.all((ratio > lo) & (ratio < hi)), ratio


def test_centred_net_scores_new_items_against_the_catalogue(races):
    import torch

    X = torch.as_tensor(races[0], dtype=torch.float64)
    net = P.RateNet(X.shape[1], centre=True, n_members=2, seeds=[1, 2]).double()
    with torch.no_grad():
        full = net(X)
        part = net(X[:2], reference=X)
        alone = net(X[:2])
    np.testing.assert_allclose(part.numpy(), full[:, :2].numpy(), rtol=0, atol=1e-14)
    # without the reference, a subset is centred on itself: a different (and wrong) origin
    assert not np.allclose(alone.numpy(), full[:, :2].numpy())


def test_multistart_members_split_between_swapped_maxima():
    """p = 1: members land on both mirror maxima; their raw average is rejected by a likelihood-ratio
    test against the maximum, the canonical (sorted) average is not. p = −1: one maximum (control)."""
    bp = models.get("rates.beta_pair")
    crit = stats.chi2.ppf(1 - ALPHA, 2) / 2  # log-likelihood drop a 2-parameter LR test rejects
    y = bp.simulate(design="p1", random_seed=1)["y"]
    lam, ll = P.beta_pair_multistart(y, 1.0, n_members=16, random_seed=2, steps=1000)
    first = lam[:, 0] > lam[:, 1]
    assert 0 < first.sum() < len(first)  # P(all 16 in one basin) = 2^-15 if the basins split evenly
    assert ll.max() - ll.min() < crit
    raw, can = lam.mean(0), P.canonical_pair(lam).mean(0)
    assert ll.max() - bp.loglik(raw[0], raw[1], {"y": y}, "p1") > crit
    assert ll.max() - bp.loglik(can[0], can[1], {"y": y}, "p1") < crit
    y = bp.simulate(design="pneg", random_seed=1)["y"]
    lam, ll = P.beta_pair_multistart(y, -1.0, n_members=16, random_seed=2, steps=1000)
    raw = lam.mean(0)
    assert ll.max() - bp.loglik(raw[0], raw[1], {"y": y}, "pneg") < crit
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        P.beta_pair_multistart(np.r_[y, 1.0], -1.0)
