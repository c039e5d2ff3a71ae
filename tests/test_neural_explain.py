"""Explanations vs predictions (seed paper 003): interventions on the training move the saliency of
non-identified directions far more than the predictions of identified quantities."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zuko")

from bayesid.comparison import explanation_study  # noqa: E402
from bayesid.neural import PointEstimator, saliency, simulate_training_set  # noqa: E402

pytestmark = pytest.mark.neural


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_saliency_of_linear_quantity_known_answer():
    """For toy.additive the posterior mean of a + b is n·ȳ / (n + σ²/2): linear in y with equal weights
    on the exchangeable observations, so its saliency is (nearly) constant across observations."""
    ts = simulate_training_set("toy.additive", 5000, random_seed=0)
    est = PointEstimator(epochs=10, width=32, lr=3e-3, random_seed=0).fit(ts)
    g = saliency(est, ts.subset(np.arange(20)), quantities=[[1.0, 1.0]])
    assert g.shape == (1, 20, 1, 50)
    g = g.reshape(20, 50)
    cos = (g.sum(1) / np.sqrt(50)) / np.linalg.norm(g, axis=1)  # cosine with the constant vector
    assert np.median(cos) > 0.9


def test_explanations_of_ridge_move_more_than_predictions_of_identified():
    """Paired over 3 repeats × 5 interventions (n = 15): the explanation effect along the ridge a − b
    exceeds the prediction effect of a + b (one-sided t-test p < 0.01), and exceeds the explanation
    effect of a + b (negative control: explanations of an identified direction are stable)."""
    st = explanation_study(None, "toy.additive", n_repeats=3, n_simulations=3000, n_test=100,
                           base_config=dict(epochs=10, width=32, lr=3e-3), random_seed=0)
    assert set(st.effects["intervention"]) == {"seed", "width", "depth", "learning rate", "training-set size"}
    c = st.contrast("a - b", "explanation", "a + b", "prediction")
    assert c["n"] == 15 and c["pvalue"] < 0.01 and c["lower"] > 0, c
    c2 = st.contrast("a - b", "explanation", "a + b", "explanation")
    assert c2["pvalue"] < 0.01, c2
    assert (st.effects["upper"] >= st.effects["lower"]).all()
    html = st.to_html()
    assert "data:image/png;base64," in html


def test_intervention_study_errors():
    from bayesid.neural import intervention_study

    with pytest.raises(ValueError, match="n_repeats"):
        intervention_study("toy.additive", n_repeats=1)
    with pytest.raises(ValueError, match="estimator"):
        intervention_study("toy.additive", estimator="gp")
