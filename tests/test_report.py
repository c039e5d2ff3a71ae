"""The report, designs and neural pages without a browser: verdict first, one naming scheme, nothing
external, every table in a scroll box, every file protected; the number formatter and the direction
names on their known answers."""

from __future__ import annotations

import re

import numpy as np
import pytest

import _report_pages as rp
from bayesid.report.naming import NameMap, linear_label, product_label
from bayesid.report.tables import format_number


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    return {k: p.read_text(encoding="utf-8") for k, p in rp.pages(folder).items()}


def _visible(html):
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    html = re.sub(r'src="data:[^"]+"', 'src=""', html)
    return re.sub(r"<[^>]+>", " ", html)


def _self_contained(html):
    assert '<meta name="viewport"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "external resource"
    assert "<link" not in html and "<script" not in html and "@import" not in html and "url(http" not in html
    # every table scrolls inside its own box
    assert html.count("<table") == html.count('<div class="scroll"'), "a table outside a scroll box"
    # every figure is an embedded image
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert src.startswith("data:image/png;base64,") or src.startswith("data:image/svg+xml;base64,")


def test_report_reads_verdict_first(pages):
    html = pages["report"]
    _self_contained(html)
    # the headline sentence of the ridge (known answer: k/m identified, k·m free), above the first figure
    sentence = "k and m are identified only as k/m; k·m moves freely"
    assert sentence in html
    assert html.index(sentence) < html.index("<img")
    assert html.index(sentence) < html.index('id="verdicts"')
    assert "L is identified on its own" in html
    # the verdict table carries the reason
    vt = html[html.index('id="verdict-table"'):]
    vt = vt[: vt.index("</table>")]
    assert ">Why<" in vt and "prior variance along ridges" in vt
    # sections in order, with anchors and a table of contents
    order = ["verdicts", "evidence", "convergence", "sensitivity", "plots", "model", "glossary", "run"]
    pos = [html.index(f'id="{s}"') for s in order]
    assert pos == sorted(pos)
    for s in order:
        assert f'href="#{s}"' in html
    assert html.count("<img") >= 4


def test_report_directions_use_one_naming_scheme(pages):
    html = pages["report"]
    text = _visible(html)
    assert "_log__" not in text, "unconstrained PyMC names leaked into the page"
    assert "^1" not in text and "1·log" not in text
    # the ridge row comes first, in natural names; its label and its reading agree
    ridges = html[html.index('id="ridges"'):]
    body = ridges[ridges.index("<tbody>"):]
    first_row = body[: body.index("</tr>")]
    assert "log(k) + log(m)" in first_row and "k·m moves freely" in first_row and "not identified" in first_row
    # each named combination once
    comb = html[html.index('id="combination-table"'):]
    comb = comb[: comb.index("</table>")]
    assert comb.count("<td>k/m</td>") + comb.count('<td class="">k/m</td>') == 1
    assert "log(k) − log(m)" in comb


def test_report_convergence_sensitivity_glossary_and_run(pages):
    html = pages["report"]
    conv = html[html.index('id="convergence"'):html.index('id="sensitivity"')]
    for check in ("chains × draws", "largest R-hat", "smallest bulk ESS", "smallest tail ESS", "divergent transitions",
                  "E-BFMI"):
        assert check in conv, check
    assert "2 × 500" in conv and ("pass" in conv)
    sens = html[html.index('id="sensitivity"'):html.index('id="plots"')]
    assert "psense" in sens
    gl = html[html.index('id="glossary"'):]
    for term in ("contraction", "overlap", "prior-whitened", "source: draws / fisher", "ridge", "psense"):
        assert f"<dt>{term}</dt>" in gl, term
    run = html[html.index('id="run"'):]
    import bayesid

    for key in ("bayesid", "seed", "chains", "draws per chain", "report date"):
        assert f"<dt>{key}</dt>" in run, key
    assert bayesid.__version__ in run
    assert "3.29e-" not in html  # numbers are never written in e-notation


def test_negative_control_identified_model_has_no_ridge_sentence():
    """Same page for a model where everything is identified: no ridge sentence, the all-clear lead."""
    import pymc as pm

    import bayesid
    from bayesid.report import diagnosis_html

    rng = np.random.default_rng(0)
    with pm.Model() as model:
        a = pm.Normal("a", 0, 1)
        pm.Normal("y", a, 0.1, observed=rng.normal(0.3, 0.1, 30))
    tree = bayesid.fit(model, draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
    html = diagnosis_html(bayesid.diagnose(tree), figures=False)
    assert "Every parameter is identified by these data." in html
    assert "moves freely" not in html


def test_designs_page_recommends_first(pages):
    html = pages["designs"]
    _self_contained(html)
    assert "Recommended: distinct" in html
    assert html.index("Recommended:") < html.index("<table") < html.index("<img")
    assert "x2 = x1" in html  # the design's description
    assert "± MC error" in html and "Non-viable prior draws" in html
    assert 'border="1"' not in html


def test_neural_page_says_the_ridge_falls_back_to_the_prior(pages):
    html = pages["neural"]
    _self_contained(html)
    s = "it regresses to the prior"
    assert s in html and html.index(s) < html.index("<img")
    assert html.count("data:image/png;base64,") == 2


def test_write_refuses_empty_lists_and_foreign_files(tmp_path):
    import bayesid.report as report

    frag = report.Fragment("<p>x</p>")
    with pytest.raises(ValueError, match="empty list"):
        report.write([], tmp_path / "e.html")
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html>my own notes</html>")
    with pytest.raises(report.OutputError, match="not written by bayesid"):
        report.write(frag, foreign)
    assert foreign.read_text() == "<html>my own notes</html>"
    assert report.write(frag, foreign, force=True) == foreign
    assert report.written_by_bayesid(foreign)
    report.write(frag, foreign)  # its own file is replaced without force
    with pytest.raises(report.OutputError, match="directory"):
        report.write(frag, tmp_path)


@pytest.mark.parametrize("value, kind, text", [
    (3.29e-05, "value", "3.29×10⁻⁵"), (6060.4, "ess", "6\u2009060"), (1.0, "rhat", "1.000"),
    (0.5812, "fraction", "0.58"), (0.0004, "fraction", "<0.01"),
    (-0.525, "z", "−0.53"), (13500.0, "value", "13\u2009500"), (0.999, "value", "0.999"), (float("nan"), "value", ""),
    (2.5e7, "value", "2.50×10⁷"), (80.0, "value", "80.0"),
])
def test_number_format_per_quantity(value, kind, text):
    assert format_number(value, kind) == text


def test_direction_names_known_answers():
    nm = NameMap(["k_log__", "m_log__", "a", "p_logodds__"], ["k", "m", "a", "p"], ["log", "log", None, "logodds"])
    assert linear_label({"k_log__": 1.0, "m_log__": -1.0}, nm) == "log(k) − log(m)"
    assert product_label({"k_log__": 1.0, "m_log__": -1.0}, nm) == "k/m"
    assert product_label({"k_log__": 0.7, "m_log__": 0.7}, nm) == "k·m"
    assert product_label({"k_log__": 1.0, "m_log__": 0.5}, nm) == "k^2·m"
    assert product_label({"k_log__": 1.0, "a": 1.0}, nm) is None  # mixed: stays linear
    assert linear_label({"k_log__": 1.0, "a": -0.26, "p_logodds__": 0.01}, nm) == "log(k) − 0.26·a"
    assert linear_label({"p_logodds__": 1.0}, nm) == "logit(p)"


# ----------------------------------------------------------------------------- levels section
@pytest.fixture(scope="module")
def levels_page():
    import bayesid.report as report

    diag, lv, model = rp.levels_diagnosis()
    return diag, lv, model, report.page("levels", report.diagnosis_html(diag, figures=False, levels=lv))


def test_levels_section_says_what_the_levels_say_and_agrees_with_the_table(levels_page):
    """The section's sentences are the Levels summary's lines; the levels agree with the diagnosis table,
    ridges and summary (consistency_problems empty on both); the known answer of mixed.regression 'between'
    (α, β, γ confounded with the mean of b, the mean of u, the w-weighted mean of b) is on the page."""
    import html as _html

    diag, lv, _, html = levels_page
    _self_contained(html)
    assert not diag.consistency_problems() and not lv.consistency_problems(diag)
    sec = html[html.index('id="levels"'):html.index('id="convergence"')]
    assert html.index('id="evidence"') < html.index('id="levels"') and 'href="#levels"' in html
    for line in lv.summary().splitlines():
        assert line in _html.unescape(sec), line
    for label in ("alpha against the mean of b", "beta against the mean of u",
                  "gamma against the w-weighted mean of b"):
        assert label in sec, label
    assert "_log__" not in _visible(sec)
    # one parameter, one verdict: alpha is 'identified only in combination' in the table and in the levels
    assert diag.table.loc["alpha", "verdict"] == "identified only in combination"
    lt = sec[sec.index('id="levels-table"'):]
    row = lt[lt.index('<td class="">alpha</td>'):]
    assert "identified only in combination" in row[:row.index("</tr>")]


def test_levels_consistency_check_catches_contradictions(levels_page):
    """Negative controls: a single-parameter verdict that differs from the table, a 'prior-determined'
    combination of parameters the table identifies, and a confounding left out of the summary are found."""
    import copy
    import dataclasses

    from bayesid.diagnostics.hierarchy import LevelQuantity
    from bayesid.diagnostics.verdicts import Verdict

    diag, lv, _, _ = levels_page
    bad = copy.deepcopy(lv)
    alpha = next(q for q in bad.fixed if q.name == "alpha")
    alpha.parameter_verdict = Verdict.IDENTIFIED
    bad.fixed.append(LevelQuantity("fixed", "beta + tau", {"beta": 1.0, "tau_log__": 1.0}, 1.0, 0.01,
                                   Verdict.NOT_IDENTIFIED))
    probs = bad.consistency_problems(diag)
    assert any("'alpha'" in p and "the table says" in p for p in probs), probs
    assert any("'beta + tau' is prior-determined" in p for p in probs), probs
    hidden = dataclasses.replace(lv, confounding=[dataclasses.replace(c, against="x") if c.fixed == "beta" else c
                                                  for c in lv.confounding])
    hidden.summary = lambda: lv.summary()  # the page would still print the old sentence
    assert any("beta against x" in p for p in hidden.consistency_problems(diag))


def test_levels_section_only_for_hierarchical_models(tmp_path, pages):
    """A flat model gets no levels section (the k/m page has none); write(model=) computes the section for a
    hierarchical one; levels= without a Diagnosis is an error."""
    import pymc as pm

    import bayesid.report as report
    from bayesid.report.levels import resolve_levels

    assert 'id="levels"' not in pages["report"]
    diag, lv, model = rp.levels_diagnosis()
    with pm.Model() as flat:
        pm.Normal("a", 0, 1)
    assert resolve_levels(diag, model=flat) is None
    assert resolve_levels(diag, model=model, cluster_covariates={"w": rp.levels_covariate()}).summary() == lv.summary()
    with pytest.raises(TypeError, match="no Diagnosis"):
        report.write(report.Fragment("<p>x</p>"), tmp_path / "x.html", levels=lv)
