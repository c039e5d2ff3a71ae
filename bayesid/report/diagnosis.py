"""The diagnosis page, verdict first: headline sentences, the verdict table with its reason, the
evidence (ridges and named combinations first, the rest folded away), convergence as a pass/fail
block, prior sensitivity, plots, the model/design/prior description, a glossary and the run metadata.
"""

from __future__ import annotations

import datetime as _dt
import json

import numpy as np

from .naming import NameMap, involved, join_names, linear_label, product_label, readable, terms
from .tables import Column, format_number, make_table

__all__ = ["diagnosis_context", "headlines", "GLOSSARY", "PSENSE_FLAG"]

#: ArviZ's power-scaling sensitivity flag (Kallioinen et al. 2024; ``arviz_stats.psense_summary``).
PSENSE_FLAG = 0.05

GLOSSARY = [
    ("identified", "The data pin the parameter down on its own: contraction at least the 'identified' threshold "
                   "and no share of its prior variance along a ridge."),
    ("identified up to relabelling", "The likelihood is unchanged when parameters (or blocks of them) swap labels, "
                                     "e.g. (A1, k1) ↔ (A2, k2); the chains sat in mirror solutions. Relabelled into "
                                     "one labelling, the data pin the parameter down. Fix: an ordering constraint."),
    ("identified only in combination", "The data determine a combination (e.g. k/m) but not the parameter "
                                        "alone: part of its prior variance lies along a ridge."),
    ("weakly identified", "The data inform the parameter, but the prior still shapes its posterior."),
    ("not identified", "The posterior is the prior: all of its prior variance lies along ridges."),
    ("not converged", "R-hat, ESS, divergences or E-BFMI failed: no identifiability verdict can be trusted "
                      "until sampling is fixed."),
    ("contraction", "1 − posterior variance / prior variance. 1: the data remove all prior uncertainty; 0: "
                    "they remove none. Shown with its Monte Carlo standard error."),
    ("overlap", "Area shared by the prior and posterior marginal densities, ∫ min(p_prior, p_post); above "
                "0.35 is commonly read as weak identification (Garrett & Zeger 2000)."),
    ("z-score", "(posterior mean − true value) / posterior sd, where a true value is known; |z| > 2 is "
                "surprising."),
    ("prior-whitened", "Coordinates in which the prior has unit covariance (unconstrained scale: log for "
                       "positive parameters). A posterior/prior variance ratio of 1 along a direction means "
                       "the data say nothing about it."),
    ("direction", "An eigenvector of the prior-whitened posterior covariance; its variance ratio says how "
                  "much the data narrow it."),
    ("ridge", "A direction with posterior/prior variance ratio at least the 'ridge' threshold: moving along "
              "it changes nothing the data see."),
    ("source: draws / fisher", "draws: from the posterior and prior samples. fisher: from the model's "
                               "Fisher information averaged over posterior draws (sees curved ridges)."),
    ("R-hat", "Split-rank R-hat (Vehtari et al. 2021): chains agree when ≤ 1.01."),
    ("ESS", "Effective sample size, bulk and tail; at least 100 per chain is needed."),
    ("E-BFMI", "Energy Bayesian fraction of missing information per chain; below 0.3 the sampler explores "
               "poorly (Betancourt 2016)."),
    ("psense", "Power-scaling sensitivity (ArviZ): how much the posterior changes when the prior (or "
               "likelihood) is raised to a power near 1; above 0.05 flags a noticeable dependence."),
]


def _vclass(v) -> str:
    return "v-" + str(v).replace(" ", "-").replace("–", "-")


def _combos(diag):
    """Draw-based and Fisher combinations, one per name (sources merged)."""
    out = {}
    for c in list(diag.combinations) + list(diag.fisher_combinations):
        key = c.name
        if key in out:
            if c.source not in out[key]["sources"]:
                out[key]["sources"].append(c.source)
            continue
        out[key] = {"c": c, "sources": [c.source]}
    return list(out.values())


def headlines(diag) -> tuple[str, list[str], str]:
    """``(lead, sentences, css_class)``: the findings in plain words, most important first.

    One sentence per ridge ("k and m are identified only as k/m; k·m moves freely"), then the
    parameters identified on their own, weakly identified and not identified ones, prior–data conflicts,
    and prior sensitivity. Non-convergence comes first and says that no verdict can be trusted.
    """
    nm = NameMap.of(diag)
    t = diag.table
    verdict = {n: str(v) for n, v in t["verdict"].items()}
    out = []
    conv = diag.convergence
    sym = getattr(diag, "symmetry", None)
    if sym is not None and sym.symmetries:
        for s in sym.symmetries:
            out.append(f"The chains sat in {sym.n_modes} mirror solutions of the swap {s.label}: the likelihood is the "
                       f"same at swapped draws, so the data cannot tell the labellings apart. Relabelled into one, "
                       f"the chains agree; {join_names(s.moved)} are identified up to this relabelling. "
                       f"Fix: {s.advice}.")
    struggling = {n: e for n, e in (getattr(diag, "explained", None) or {}).items()
                  if getattr(e, "sampler_struggles", False) and verdict.get(n) != "not converged"}
    if struggling and "not converged" not in verdict.values():
        what = "; ".join(dict.fromkeys(e.summary or e.reason for e in struggling.values()))
        out.append(f"The sampler's trouble comes from non-identification, not from too few draws "
                   f"({join_names(list(struggling))}): {what}.")
    elif not conv.ok:
        per = [f"{k}: {', '.join(v)}" for k, v in list(conv.parameter_problems.items())[:3]]
        why = "; ".join(conv.problems[:2] + per)
        out.append(f"Sampling did not converge ({why}). No verdict below can be trusted yet: fix the sampling "
                   "first (more draws, a reparametrization, a higher target_accept).")
    combos = _combos(diag)
    used = set()
    for r in diag.ridges:
        moving = involved(r.loadings, nm)
        movers_u = {k for k, _ in terms(r.loadings)}
        mine = [c for c in combos if set(c["c"].coefficients) & movers_u and c["c"].name not in used]
        what = readable(r.loadings, nm)
        if mine:
            for c in mine:
                used.add(c["c"].name)
            out.append(f"{join_names(moving)} are identified only as {join_names([c['c'].name for c in mine])}; "
                       f"{what} moves freely (the data cannot tell points along it apart).")
        elif len(moving) == 1:
            out.append(f"{moving[0]} is not identified: its posterior is as wide as its prior.")
        else:
            out.append(f"{what} moves freely: the data cannot tell apart points along this direction "
                       f"({join_names(moving)} change together).")
    groups = {}
    for n, v in verdict.items():
        groups.setdefault(v, []).append(n)
    if groups.get("identified"):
        ids = groups["identified"]
        one = len(ids) == 1
        out.append(f"{join_names(ids)} {'is' if one else 'are'} identified on {'its' if one else 'their'} own.")
    for n in groups.get("weakly identified", []):
        out.append(f"{n} is weakly identified (contraction {format_number(t.loc[n, 'contraction'], 'fraction')}): "
                   "the data inform it, but the prior still shapes it.")
    in_ridge_sentence = {p for r in diag.ridges for p in involved(r.loadings, nm)}
    for n in groups.get("not identified", []):
        if n not in in_ridge_sentence:
            out.append(f"{n} is not identified: its posterior is as wide as its prior.")
    for n in groups.get("identified only in combination", []):
        if n not in in_ridge_sentence:
            out.append(f"{n} is identified only in combination with other parameters.")
    if groups.get("prior-data conflict"):
        out.append(f"Prior–data conflict for {join_names(groups['prior-data conflict'])}: the posterior sits in the "
                   "far tail of the prior; check the prior and the data.")
    ps = _psense_flagged(diag)
    if ps:
        out.append(f"The posterior of {join_names([f'{n} ({v:.3f})' for n, v in ps])} is sensitive to the prior "
                   f"(psense above {PSENSE_FLAG}): a different prior would move it.")
    if not diag.ridges and all(v == "identified" for v in verdict.values()):
        lead = "Every parameter is identified by these data."
    elif (not diag.ridges and sym is not None and sym.symmetries
          and all(v in ("identified", "identified up to relabelling") for v in verdict.values())):
        lead = f"Every parameter is identified by these data, up to the relabelling {sym.label}."
    elif "not converged" in verdict.values():
        lead = "Not converged: verdicts below are provisional."
    elif diag.ridges:
        lead = f"{len(diag.ridges)} direction{'s' if len(diag.ridges) > 1 else ''} of the parameters " \
               f"{'are' if len(diag.ridges) > 1 else 'is'} not identified by these data."
    else:
        lead = "No ridge, but not every parameter is identified."
    if groups.get("identified up to relabelling") and not (sym is not None and sym.symmetries):
        out.append(f"{join_names(groups['identified up to relabelling'])} are identified up to relabelling.")
    cls = ("bad" if "not converged" in verdict.values() else
           "warn" if diag.ridges or len(groups) > 1 or sym is not None else "")
    return lead, out, cls


def _psense_flagged(diag):
    t = diag.table
    if "psense_prior" not in t:
        return []
    return [(n, float(v)) for n, v in t["psense_prior"].items() if np.isfinite(v) and v > PSENSE_FLAG]


def _units(diag):
    from .plots import parameter_units

    return parameter_units(diag)


def _pm(mean, sd, unit=""):
    """``13 500 ± 944 N/m``: mean and sd to the same decimal place as the sd's 2 significant digits."""
    if not (np.isfinite(mean) and np.isfinite(sd)):
        return format_number(mean)
    s = f"{format_number(mean)} ± {format_number(sd)}"
    return f"{s} {unit}".strip()


def _verdict_table(diag, p):
    t = diag.table
    units = _units(diag)
    has_truth = "truth" in t and np.isfinite(t["truth"]).any()
    cols = [Column("parameter", "Parameter", "text"), Column("verdict", "Verdict", "text", "see the glossary"),
            Column("reason", "Why", "text", "the rule that gave the verdict"),
            Column("post", "Posterior mean ± sd", "value")]
    if has_truth:
        cols += [Column("truth", "True value", "value"), Column("z", "z", "z", "(mean − truth) / sd")]
    cols += [Column("contraction", "Contraction ± MCSE", "value",
                    "1 − posterior var / prior var (natural scale), with its Monte Carlo standard error")]
    rows = []
    for n, r in t.iterrows():
        u = units.get(n, "")
        tv = r.get("truth")
        rows.append({"parameter": n, "verdict": (str(r["verdict"]), "verdict"), "reason": (str(r["reason"]), "wrap"),
                     "post": _pm(r["mean"], r["sd"], u),
                     "truth": (f"{format_number(tv)} {u}".strip() if tv is not None and np.isfinite(tv) else ""),
                     "z": r.get("z"),
                     "contraction": f"{format_number(r['contraction'], 'fraction')} ± "
                                    f"{format_number(r['contraction_se'], 'fraction')}"})
    return make_table(rows, cols, table_id=f"{p}verdict-table")


_FULL_LABELS = {"variable": ("Variable", "text"), "unconstrained": ("Unconstrained", "text"),
                "mean": ("Mean", "value"), "sd": ("sd", "value"), "truth": ("True value", "value"),
                "z": ("z", "z"), "contraction": ("Contraction", "fraction"),
                "contraction_se": ("± MCSE", "fraction"),
                "contraction_unc": ("Contraction (unconstrained)", "fraction"),
                "overlap": ("Overlap", "fraction"), "bimodality": ("Bimodality coef.", "fraction"),
                "psense_prior": ("psense prior", "psense"), "psense_likelihood": ("psense likelihood", "psense"),
                "rhat": ("R-hat", "rhat"), "ess_bulk": ("ESS bulk", "ess"), "ess_tail": ("ESS tail", "ess"),
                "ridge_weight": ("Ridge weight", "fraction"), "verdict": ("Verdict", "text"),
                "reason": ("Why", "text")}


def _full_table(diag, p):
    t = diag.table
    nm = NameMap.of(diag)
    cols = [Column("parameter", "Parameter", "text")]
    for c in t.columns:
        label, kind = _FULL_LABELS.get(c, (c.replace("_", " "), "text" if t[c].dtype == object else "value"))
        cols.append(Column(c, label, kind))
    rows = []
    for n, r in t.iterrows():
        row = {"parameter": n, **{c: r[c] for c in t.columns}}
        if "unconstrained" in row:
            row["unconstrained"] = nm.coord(row["unconstrained"])
        if "verdict" in row:
            row["verdict"] = (str(row["verdict"]), "verdict")
        if "reason" in row:
            row["reason"] = (str(row["reason"]), "wrap")
        rows.append(row)
    return make_table(rows, cols, table_id=f"{p}full-table")


def _direction_rows(diag, nm, dirs):
    from .plots import direction_order

    rows = []
    for k in direction_order(dirs):
        d = dirs[k]
        ridge = str(d.verdict) == "not identified"
        vec = d.loadings if ridge else d.coefficients
        prod = product_label(vec, nm)
        if ridge:
            meaning = f"{prod or 'this combination'} moves freely"
        else:
            meaning = f"{prod} is {'determined' if str(d.verdict) == 'identified' else 'partly determined'}" \
                if prod else ("determined" if str(d.verdict) == "identified" else "partly determined")
        rows.append({"direction": linear_label(vec, nm), "meaning": meaning,
                     "verdict": (str(d.verdict), "verdict"), "ratio": d.ratio, "se": d.ratio_se,
                     "source": d.source, "_ridge": ridge})
    return rows


def _direction_tables(diag, p):
    nm = NameMap.of(diag)
    cols = [Column("direction", "Direction", "text",
                   "ridges: how parameters move along it; others: the combination measured"),
            Column("meaning", "Read as", "text"), Column("verdict", "Verdict", "text"),
            Column("ratio", "Posterior / prior variance", "fraction", "1: as wide as the prior; 0: pinned down"),
            Column("se", "± MCSE", "fraction"), Column("source", "Source", "text", "draws or fisher")]
    rows = _direction_rows(diag, nm, list(diag.directions))
    frows = _direction_rows(diag, nm, list(diag.fisher_directions))
    ridge_ids = {id(r) for r in diag.ridges}
    ridge_rows = []
    for d, row in zip([diag.directions[k] for k in _order(diag.directions)], rows):
        if id(d) in ridge_ids or str(d.verdict) == "weakly identified":
            ridge_rows.append(row)
    for d, row in zip([diag.fisher_directions[k] for k in _order(diag.fisher_directions)], frows):
        if id(d) in ridge_ids:
            ridge_rows.append(row)
    ridge_t = make_table(ridge_rows, cols, table_id=f"{p}ridges",
                         caption="Directions the data do not (or only partly) inform")
    all_t = make_table(rows + frows, cols, table_id=f"{p}directions")
    combos = _combos(diag)
    ccols = [Column("name", "Combination", "text"), Column("meaning", "In coordinates", "text"),
             Column("contraction", "Contraction", "fraction"), Column("source", "Found by", "text")]
    crow = [{"name": c["c"].name, "meaning": linear_label(c["c"].coefficients, nm),
             "contraction": c["c"].contraction, "source": ", ".join(c["sources"])} for c in combos]
    comb_t = make_table(crow, ccols, table_id=f"{p}combination-table")
    return ridge_t, all_t, comb_t, len(rows) + len(frows)


def _order(dirs):
    from .plots import direction_order

    return direction_order(list(dirs))


def _convergence(diag, p):
    conv = diag.convergence
    th = diag.thresholds
    chains = conv.chains or 0
    per_chain = conv.n_draws // chains if chains else conv.n_draws
    rh = [v for v in conv.rhat.values() if np.isfinite(v)]
    eb = [v for v in conv.ess_bulk.values() if np.isfinite(v)]
    et = [v for v in conv.ess_tail.values() if np.isfinite(v)]
    ess_min = th.ess_min_per_chain * max(chains, 1)
    rows = []

    def add(check, value, kind, limit, ok):
        rows.append({"check": check, "value": value, "_k": kind, "limit": limit,
                     "result": ("pass" if ok else "fail", "pass" if ok else "fail")})

    add("chains × draws", f"{chains} × {per_chain:,}".replace(",", "\u2009"), "text", "≥ 2 chains", chains > 1)
    if rh:
        add("largest R-hat", format_number(max(rh), "rhat"), "text", f"≤ {th.rhat_max}", max(rh) <= th.rhat_max)
    if eb:
        add("smallest bulk ESS", format_number(min(eb), "ess"), "text", f"≥ {format_number(ess_min, 'ess')}",
            min(eb) >= ess_min)
    if et:
        add("smallest tail ESS", format_number(min(et), "ess"), "text", f"≥ {format_number(ess_min, 'ess')}",
            min(et) >= ess_min)
    add("divergent transitions", format_number(conv.divergences, "int"), "text", f"≤ {th.max_divergences}",
        conv.divergences <= th.max_divergences)
    if conv.bfmi:
        add("smallest E-BFMI", f"{min(conv.bfmi):.2f}", "text", f"≥ {th.bfmi_min}", min(conv.bfmi) >= th.bfmi_min)
    else:
        rows.append({"check": "E-BFMI", "value": "not available (no energy in sample_stats)", "limit": "",
                     "result": ""})
    cols = [Column("check", "Check", "text"), Column("value", "Value", "text"), Column("limit", "Needed", "text"),
            Column("result", "Result", "text")]
    raw = getattr(diag, "raw_convergence", None)
    sym = getattr(diag, "symmetry", None)
    if conv.ok:
        sentence = (f"Sampling converged: {chains} chains of {format_number(per_chain, 'int')} draws agree "
                    f"(R-hat, ESS), with {conv.divergences} divergent transitions."
                    if chains else "Sampling converged.")
        if raw is not None and sym is not None and sym.symmetries:
            rh = max(v for v in raw.rhat.values() if np.isfinite(v))
            sentence = (f"As sampled, the chains disagreed (largest R-hat {format_number(rh, 'rhat')}): they sat in "
                        f"mirror solutions of {sym.label}. The figures below are for the draws relabelled into one "
                        "labelling: " + sentence[0].lower() + sentence[1:])
    else:
        sentence = "Sampling did not converge: " + "; ".join(
            conv.problems + [f"{k}: {', '.join(v)}" for k, v in conv.parameter_problems.items()]) + "."
    return conv.ok, sentence, make_table(rows, cols, table_id=f"{p}convergence-table")


def _psense(diag, p):
    t = diag.table
    if "psense_prior" not in t:
        note = diag.psense_note or "not computed (the tree has no log_prior / log_likelihood groups)"
        return f"Prior sensitivity (ArviZ psense): {note.rstrip('.')}.", None
    flagged = _psense_flagged(diag)
    if flagged:
        s = (f"{join_names([n for n, _ in flagged])} {'is' if len(flagged) == 1 else 'are'} sensitive to the prior: "
             f"power-scaling sensitivity above {PSENSE_FLAG} (ArviZ's flag). A ridge makes this expected — along "
             "it only the prior decides.")
    else:
        s = f"No parameter's posterior is sensitive to the prior beyond ArviZ's {PSENSE_FLAG} flag."
    if diag.psense_note:
        s += " " + diag.psense_note.rstrip(".") + "."
    cols = [Column("parameter", "Parameter", "text"), Column("prior", "psense prior", "psense"),
            Column("likelihood", "psense likelihood", "psense"), Column("flag", "Flag", "text")]
    rows = [{"parameter": n, "prior": r["psense_prior"], "likelihood": r.get("psense_likelihood"),
             "flag": (f"> {PSENSE_FLAG}", "fail") if np.isfinite(r["psense_prior"]) and r["psense_prior"] > PSENSE_FLAG
             else ""} for n, r in t.iterrows()]
    return s, make_table(rows, cols, table_id=f"{p}psense-table")


def _priors(diag):
    spec = getattr(diag, "spec", None)
    if spec is None:
        return None
    cols = [Column("name", "Parameter", "text"), Column("description", "Meaning", "text"),
            Column("prior", "Prior", "text"), Column("truth", "True value (simulation)", "value"),
            Column("unit", "Unit", "text")]
    rows = []
    priors = getattr(diag, "priors", None)
    try:
        pri = spec.priors(priors)
    except Exception:  # noqa: BLE001 - fall back to the defaults
        pri = {q.name: q.prior for q in spec.parameters}
    for q in spec.parameters:
        tv = np.asarray(q.true_value, float)
        rows.append({"name": q.name, "description": (q.description, "wrap"), "prior": repr(pri.get(q.name, q.prior)),
                     "truth": float(tv) if tv.size == 1 else None, "unit": q.unit})
    return make_table(rows, cols)


def _run_meta(diag):
    import bayesid

    tree = diag.tree
    attrs = dict(getattr(tree, "attrs", {}) or {}) if tree is not None else {}
    settings = {}
    if "bayesid_settings" in attrs:
        try:
            settings = json.loads(attrs["bayesid_settings"])
        except (TypeError, ValueError):
            settings = {}
    conv = diag.convergence
    out = [("bayesid", bayesid.__version__)]
    run = getattr(diag, "run_info", {}) or {}
    seed = run.get("seed", attrs.get("random_seed", ""))
    out.append(("seed", str(seed) if seed != "" else "not recorded"))
    out.append(("chains", str(settings.get("chains", conv.chains))))
    per = conv.n_draws // conv.chains if conv.chains else conv.n_draws
    out.append(("draws per chain", str(settings.get("draws", per))))
    if "tune" in settings:
        out.append(("tuning steps", str(settings["tune"])))
    if settings.get("sampler"):
        out.append(("sampler", str(settings["sampler"]) + (f" ({settings['adaptation']} mass matrix)"
                                                           if settings.get("adaptation") else "")))
    if settings.get("prior_draws"):
        out.append(("prior draws", str(settings["prior_draws"])))
    out.append(("report date", run.get("date") or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")))
    times = getattr(diag, "timings", {}) or {}
    if times:
        out.append(("diagnosis seconds", ", ".join(f"{k} {v:.1f}" for k, v in times.items())))
    return out


def diagnosis_context(diag, figures: bool = True, prefix: str = "", show_title: bool = False, levels=None) -> dict:
    """Everything ``templates/diagnosis.html`` shows, computed from a Diagnosis (nothing recomputed that
    the diagnosis already decided: verdicts, ridges and combinations are its own). ``levels``: the
    :class:`~bayesid.diagnostics.hierarchy.Levels` of a hierarchical model, shown as its own section
    after the evidence."""
    from markupsafe import Markup

    from . import plots
    from .figures import render_figure
    from .levels import levels_html

    p = prefix
    lead, lines, cls = headlines(diag)
    ridge_t, all_t, comb_t, n_dirs = _direction_tables(diag, p)
    conv_ok, conv_sentence, conv_t = _convergence(diag, p)
    ps_sentence, ps_t = _psense(diag, p)
    figs = []
    if figures:
        nm = NameMap.of(diag)
        first = diag.ridges[0] if diag.ridges else None
        figs.append(render_figure(lambda: plots.plot_marginals(diag), "prior and posterior marginals",
                                  "Prior (grey) and posterior (verdict colour) of each parameter in natural units; "
                                  "black line: the true value.", f"{p}fig-marginals", wide=True))
        figs.append(render_figure(lambda: plots.plot_pair(diag), "pair plot along the ridge",
                                  ("Prior and posterior draws of the parameters moving most along "
                                   f"{'the ridge ' + readable(first.loadings, nm) if first else 'no ridge'}"
                                   "; the black curve keeps the identified combination at its posterior mean."),
                                  f"{p}fig-pair"))
        figs.append(render_figure(lambda: plots.plot_spectrum(diag), "direction spectrum",
                                  "Posterior/prior variance of every prior-whitened direction (log axis, ± 2 MCSE); "
                                  "ridges first; black ticks: the Fisher prediction.", f"{p}fig-spectrum", wide=True))
        if "z" in diag.table and np.isfinite(diag.table["z"]).any():
            figs.append(render_figure(lambda: plots.plot_z_contraction(diag), "z-score vs contraction",
                                      "Right and inside the band: identified and consistent with the truth.",
                                      f"{p}fig-z"))
        figs.append(render_figure(lambda: plots.plot_contraction(diag), "contraction per parameter",
                                  f"Dashed: identified from {diag.thresholds.identified:g}; dotted: ridge below "
                                  f"{1 - diag.thresholds.ridge:g} (contraction ± 2 MCSE).", f"{p}fig-contraction"))
        figs = [f for f in figs if f]
    spec = getattr(diag, "spec", None)
    design = getattr(diag, "design", None)
    th = diag.thresholds
    return dict(
        p=p, title=diag.title or "Identifiability diagnosis", show_title=show_title,
        lead=lead, headlines=lines, headline_class=cls,
        verdict_table=_verdict_table(diag, p),
        verdict_note=(f"Thresholds: identified when contraction ≥ {th.identified:g} and no ridge; a direction is a "
                      f"ridge when its posterior/prior variance ratio ≥ {th.ridge:g}."),
        ridge_table=ridge_t, direction_table=all_t, combination_table=comb_t, n_directions=n_dirs,
        has_fisher=bool(diag.fisher_directions), full_table=_full_table(diag, p),
        conv_ok=conv_ok, conv_sentence=conv_sentence, conv_table=conv_t,
        psense_sentence=ps_sentence, psense_table=ps_t, figures=figs,
        model_description=(f"{spec.name}: {spec.description}" if spec is not None else ""),
        design_description=(f"{design.name} — {design.description}" if design is not None
                            and hasattr(design, "description") else ""),
        prior_table=_priors(diag), glossary=GLOSSARY,
        thresholds=", ".join(f"{k} = {v}" for k, v in th.as_dict().items()),
        run_meta=_run_meta(diag), summary_text=diag.summary(),
        levels=Markup(levels_html(levels, prefix=p)) if levels is not None else "",
    )
