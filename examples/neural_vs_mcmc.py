"""A network trained on simulations converges, yet cannot recover what the data do not identify.

Trains an ensemble of point estimators (MSE regression, as in the gait-parameter DNN paper) and an NPE
on simulations of a registered model, diagnoses one dataset with NUTS, and writes an HTML page that
sets the neural errors, projected on the MCMC directions, beside the training-loss curve; then the
explanations-vs-predictions study.

    python examples/neural_vs_mcmc.py                      # toy.additive, ~1 min on 2 cores
    python examples/neural_vs_mcmc.py --model gait.bslip   # the gait model (~10 min on 2 cores)
    python examples/neural_vs_mcmc.py --tiny               # what the tests run (sizes too small to read)
"""

from __future__ import annotations

import argparse
import warnings

import torch

import bayesid
from bayesid.comparison import compare, explanation_study
from bayesid.neural import NPE, Ensemble, PointEstimator, calibrate, simulate_training_set


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="toy.additive")
    ap.add_argument("--design", default=None)
    ap.add_argument("--n-sims", type=int, default=None)
    ap.add_argument("--out", default="neural_vs_mcmc.html")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (what the tests run; numbers are noisy)")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    warnings.simplefilter("ignore", UserWarning)
    spec = bayesid.models.get(a.model)
    design = spec.design(a.design).name
    gait = a.model.startswith("gait")
    n = a.n_sims or (2000 if a.tiny else 20000 if gait else 10000)
    epochs = 3 if a.tiny else 20
    n_test = 100 if a.tiny else 500

    # 1. MCMC answer on one dataset (the default true values)
    data = spec.simulate(design=design, random_seed=a.seed)
    model = spec.build(data, design)
    draws = 200 if a.tiny else 500
    tree = bayesid.fit(model, draws=draws, tune=draws, chains=2, random_seed=a.seed, **spec.sampler_kwargs(model))
    diag = bayesid.diagnose(tree, truth=spec.true_values())
    print(diag)

    # 2. amortized estimators trained on the same model's simulations
    ts = simulate_training_set(spec, n, design=design, random_seed=a.seed, progressbar=True)
    ens = Ensemble(PointEstimator(epochs=epochs, lr=3e-3, progressbar=True), n_members=2 if a.tiny else 3,
                   random_seed=a.seed).fit(ts)
    npe = NPE(epochs=epochs, lr=3e-3, random_seed=a.seed, progressbar=True).fit(ts)

    # 3. compare on held-out datasets, along the MCMC directions
    cmp_point = compare(diag, ens, n_test=n_test, random_seed=a.seed + 1, tree=tree)
    cmp_npe = compare(diag, npe, n_test=n_test, random_seed=a.seed + 1, tree=tree,
                      n_mcmc=0 if (gait or a.tiny) else 2)
    cal = calibrate(npe, spec, design=design, n_datasets=60 if a.tiny else 300, random_seed=a.seed + 2)
    print(cmp_point, cmp_npe, cal, sep="\n\n")

    # 4. explanations vs predictions
    study = explanation_study(diag, spec, design, n_repeats=2 if a.tiny else 3, n_simulations=min(n, 5000),
                              n_test=50 if a.tiny else 100, base_config=dict(epochs=2 if a.tiny else 10, lr=3e-3),
                              random_seed=a.seed)
    ridges = [d.label for d in diag.ridges]
    ident = [d.label for d in diag.directions if d.verdict == "identified"]
    if ridges and ident:
        print("explanation of", ridges[0], "vs prediction of", ident[0], ":",
              study.contrast(ridges[0], "explanation", ident[0], "prediction"))

    html = "\n".join([cmp_point.to_html(), cmp_npe.to_html(),
                      f"<pre>{cal!r}</pre>", cal.sbc.table().to_html(), study.to_html()])
    with open(a.out, "w") as f:
        f.write(f"<!doctype html><meta charset='utf-8'><title>{a.model}: neural vs MCMC</title>{html}")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
