"""The neural comparison page and its plots (presentation of :class:`bayesid.comparison.NeuralComparison`).

Verdict first: one sentence per direction (does the network recover what MCMC identifies, and does it
fall back to the prior along the ridges?), then the direction and combination tables, the figures, the
per-parameter table and the held-out MCMC refits, with a glossary of the quantities.
"""

from __future__ import annotations

import numpy as np

from .figures import render_figure
from .plots import verdict_color
from .tables import Column, format_number, make_table

__all__ = ["neural_html", "neural_context", "plot_loss", "plot_directions", "plot_parameters", "plot_errors",
           "plot_all", "NEURAL_COLORS"]

NEURAL_COLORS = {"recovered": "#1b7837", "partly recovered": "#e08214", "regresses to the prior": "#b2182b"}


def _ax(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_loss(cmp, ax=None):
    """Training and validation loss per epoch (every ensemble member)."""
    ax = _ax(ax, (4.2, 3.0))
    for i, h in enumerate(cmp.history):
        ax.plot(h["epoch"], h["train_loss"], color="#4393c3", alpha=0.7, label="training" if i == 0 else None)
        ax.plot(h["epoch"], h["val_loss"], color="#d6604d", alpha=0.9, label="validation" if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("training " + ("converged" if cmp.converged else "NOT converged"), fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_directions(cmp, ax=None):
    """Neural error ratio per direction (with bootstrap CI) beside the reference posterior/prior ratio."""
    df = cmp.directions
    ax = _ax(ax, (0.9 * len(df) + 3.0, 3.2))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["error_ratio"], 0.4, color=[NEURAL_COLORS.get(v, "#777") for v in df["neural_verdict"]],
           label="neural error / prior variance",
           yerr=[df["error_ratio"] - df["ratio_lower"], df["ratio_upper"] - df["error_ratio"]], capsize=2)
    ref = "MCMC" if cmp.source.startswith("MCMC") else "known answer"
    ax.bar(x + 0.2, df["mcmc_ratio"].fillna(0), 0.4, color=[verdict_color(v) for v in df["mcmc_verdict"]],
           alpha=0.55, label=f"{ref}: posterior / prior variance")
    if "npe_ratio" in df:
        ax.scatter(x - 0.2, df["npe_ratio"], color="k", marker="_", s=200, label="NPE posterior / prior", zorder=3)
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set_xticks(x, [str(lab) if len(str(lab)) < 22 else str(lab)[:20] + "…" for lab in df["label"]],
                  fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("variance ratio (1 = prior)")
    ax.set_title("Error along each direction", fontsize=9)
    ax.legend(fontsize=6)
    return ax


def plot_parameters(cmp, ax=None):
    """Neural contraction vs MCMC contraction per parameter."""
    df = cmp.parameters
    ax = _ax(ax, (0.8 * len(df) + 3.0, 3.0))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["neural_contraction"], 0.4, color="#b2182b", label="neural: 1 − MSE / prior variance")
    ax.bar(x + 0.2, df["mcmc_contraction"].fillna(0), 0.4, color="#2166ac",
           label="MCMC" if cmp.source.startswith("MCMC") else "MCMC (none given)")
    if df["ensemble_spread"].notna().any():
        ax.scatter(x - 0.2, df["ensemble_spread"], color="k", marker="x", label="ensemble spread / prior sd")
    ax.set_xticks(x, df.index, fontsize=7)
    ax.set_ylim(min(-0.1, float(np.nanmin(df["neural_contraction"])) - 0.05), 1.05)
    ax.set_ylabel("contraction")
    ax.set_title("Per parameter", fontsize=9)
    ax.legend(fontsize=6)
    return ax


def plot_errors(cmp, axes=None):
    """Estimate against truth along each direction: identified directions lie on the diagonal, ridges
    are flat (the estimate is the prior mean whatever the truth)."""
    import matplotlib.pyplot as plt

    k = cmp.truth_w.shape[1]
    if axes is None:
        _, axes = plt.subplots(1, k, figsize=(2.7 * k, 2.8), squeeze=False, layout="constrained")
        axes = axes[0]
    for j, a in enumerate(np.atleast_1d(axes)):
        t, e = cmp.truth_w[:, j], cmp.estimate_w[:, j]
        r = cmp.directions.iloc[j]
        a.scatter(t, e, s=4, alpha=0.5, color=verdict_color(r["mcmc_verdict"]))
        lim = np.nanmax(np.abs(np.r_[t, e])) * 1.05
        a.plot([-lim, lim], [-lim, lim], color="0.5", lw=0.8)
        a.set_title(f"{r['label']}\n{r['mcmc_verdict']}", fontsize=7)
        a.set_xlabel("truth (whitened)", fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("neural estimate", fontsize=7)
    return axes


def plot_all(cmp):
    """All panels in one figure: loss curve beside identifiability per direction and parameter."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 6), layout="constrained")
    gs = fig.add_gridspec(2, 3)
    plot_loss(cmp, fig.add_subplot(gs[0, 0]))
    plot_directions(cmp, fig.add_subplot(gs[0, 1]))
    plot_parameters(cmp, fig.add_subplot(gs[0, 2]))
    k = cmp.truth_w.shape[1]
    sub = gs[1, :].subgridspec(1, max(k, 1))
    plot_errors(cmp, [fig.add_subplot(sub[0, j]) for j in range(k)])
    fig.suptitle(f"{cmp.estimator} vs MCMC — {cmp.model} / {cmp.design}", fontsize=10)
    return fig


def _overview(cmp):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
    plot_loss(cmp, axes[0])
    plot_directions(cmp, axes[1])
    plot_parameters(cmp, axes[2])
    return fig


def _errors_fig(cmp):
    return np.atleast_1d(plot_errors(cmp))[0].figure


def headlines(cmp) -> list[str]:
    """One sentence per direction of interest, the training status first."""
    out = [("Training converged (validation loss flat)." if cmp.converged
            else "Training has NOT converged (validation loss still falling): errors below may shrink with "
                 "more epochs.")]
    d = cmp.directions
    for _, r in d.iterrows():
        ratio = format_number(r["error_ratio"], "fraction")
        ci = f"{format_number(r['ratio_lower'], 'fraction')}–{format_number(r['ratio_upper'], 'fraction')}"
        if r["mcmc_verdict"] == "not identified":
            out.append(f"Along {r['label']} (not identified by MCMC) the network's error variance is {ratio} × the "
                       f"prior's (95 % {ci}): it {r['neural_verdict']}" +
                       (" — it returns the prior mean there, whatever the truth." if r["neural_verdict"] ==
                        "regresses to the prior" else "."))
    good = d[(d["mcmc_verdict"] == "identified")]
    if len(good):
        rec = good[good["neural_verdict"] == "recovered"]
        out.append(f"{len(rec)} of {len(good)} identified directions are recovered by the network "
                   f"(error variance ≤ {format_number(1 - cmp.thresholds.identified, 'fraction')} × prior)."
                   if cmp.thresholds is not None else f"{len(rec)} of {len(good)} identified directions recovered.")
    for _, r in cmp.combinations.iterrows():
        out.append(f"Combination {r['name']}: error variance {format_number(r['error_ratio'], 'fraction')} × prior "
                   f"→ {r['neural_verdict']}.")
    return out


def _vbadge(v):
    return (str(v), "verdict") if v else ""


def neural_context(cmp, figures=True, prefix="nn-"):
    p = prefix
    dcols = [Column("label", "Direction", "text"), Column("mcmc_verdict", "MCMC verdict", "text"),
             Column("mcmc_ratio", "MCMC posterior / prior", "fraction"),
             Column("error_ratio", "Neural error / prior", "fraction", "mean squared error / prior variance"),
             Column("ci", "95 % interval", "text", "percentile bootstrap over held-out datasets"),
             Column("neural_verdict", "Neural", "text")]
    extra = [c for c in ("npe_ratio", "ensemble_spread") if c in cmp.directions]
    dcols += [Column(c, {"npe_ratio": "NPE posterior / prior", "ensemble_spread": "Ensemble spread"}[c], "fraction")
              for c in extra]

    def rows(df, label_key):
        out = []
        for _, r in df.iterrows():
            row = dict(r)
            row["label"] = r[label_key]
            row["ci"] = f"{format_number(r['ratio_lower'], 'fraction')} – {format_number(r['ratio_upper'], 'fraction')}"
            row["mcmc_verdict"] = _vbadge(r.get("mcmc_verdict", ""))
            row["neural_verdict"] = (str(r["neural_verdict"]), "neural")
            out.append(row)
        return out

    order = cmp.directions.assign(_o=cmp.directions["mcmc_verdict"].map(
        {"not identified": 0, "weakly identified": 1}).fillna(2)).sort_values("_o", kind="stable")
    dir_t = make_table(rows(order, "label"), dcols, table_id=f"{p}directions")
    ccols = [Column("label", "Combination", "text"), Column("mcmc_ratio", "MCMC posterior / prior", "fraction"),
             Column("error_ratio", "Neural error / prior", "fraction"), Column("ci", "95 % interval", "text"),
             Column("neural_verdict", "Neural", "text")]
    comb_t = make_table(rows(cmp.combinations, "name"), ccols, table_id=f"{p}combinations") \
        if len(cmp.combinations) else None
    pcols = [Column("parameter", "Parameter", "text"), Column("mcmc_verdict", "MCMC verdict", "text"),
             Column("mcmc_contraction", "MCMC contraction", "fraction"),
             Column("neural_contraction", "Neural contraction", "fraction"),
             Column("ridge_share", "Ridge share", "fraction", "share of the error explained by the ridge coordinates"),
             Column("rmse_natural", "RMSE (natural)", "value"), Column("neural_verdict", "Neural", "text")]
    prow = []
    for n, r in cmp.parameters.iterrows():
        row = dict(r)
        row["parameter"] = n
        row["mcmc_verdict"] = _vbadge(r.get("mcmc_verdict", ""))
        row["neural_verdict"] = (str(r["neural_verdict"]), "neural")
        prow.append(row)
    par_t = make_table(prow, pcols, table_id=f"{p}parameters")
    held_t = None
    if len(cmp.held_out):
        from .tables import frame_table

        held_t = frame_table(cmp.held_out, index=False, kinds={"mcmc_seconds": "seconds", "dataset": "text"},
                             labels={"distance_to_mcmc_mean": "distance to MCMC mean (whitened)",
                                     "mcmc_sd_whitened": "MCMC sd (whitened)", "c2st_accuracy": "C2ST accuracy",
                                     "c2st_pvalue": "C2ST p", "mcmc_seconds": "MCMC time"})
    figs = []
    if figures:
        figs = [render_figure(lambda: _overview(cmp), "training loss and error per direction and parameter",
                              "Left: loss curves. Middle: error variance of the network along each direction beside "
                              "MCMC's posterior/prior variance. Right: contraction per parameter.", f"{p}fig-overview",
                              wide=True),
                render_figure(lambda: _errors_fig(cmp), "estimate against truth per direction",
                              "Identified directions lie on the diagonal; along a ridge the estimate is flat (the "
                              "prior mean, whatever the truth).", f"{p}fig-errors", wide=True)]
        figs = [f for f in figs if f]
    glossary = [
        ("error variance ratio", "mean((estimate − truth)²) / prior variance over the held-out datasets, in "
                                 "prior-whitened coordinates: ≈ 1 when the network returns the prior mean, ≈ 0 when it "
                                 "recovers the truth. 1 − ratio is the neural contraction."),
        ("recovered / regresses to the prior", "error ratio at most 1 − identified / at least the ridge threshold "
                                                "of the diagnosis (the same cut-offs as the MCMC verdicts)."),
        ("ridge share", "fraction of a parameter's error variance explained by the true coordinates along the "
                        "ridges: ≈ 1 when its error is the ridge."),
        ("ensemble spread", "sd of the members' estimates / prior sd: members agreeing does not mean identified."),
        ("C2ST", "classifier two-sample test of NPE draws against MCMC draws: accuracy 0.5 = indistinguishable."),
    ]
    return dict(p=p, title=cmp.title, headlines=headlines(cmp), converged=cmp.converged, dir_table=dir_t,
                comb_table=comb_t, par_table=par_t, held_table=held_t, figures=figs, glossary=glossary,
                meta=[("estimator", cmp.estimator), ("reference", cmp.source),
                      ("held-out datasets", str(cmp.n_test)),
                      ("prediction time per dataset",
                       format_number(cmp.timings.get("predict_per_dataset"), "seconds"))])


def neural_html(cmp, figures=True, prefix="nn-") -> str:
    from . import render

    return render("neural.html", **neural_context(cmp, figures=figures, prefix=prefix))
