"""Structure: diagnostics compute, bayesid.report presents; HTML, figure encoding and table formatting
each exist once; bayesid.compare is a plain function."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = [ROOT / "bayesid", ROOT / "diagnostics", ROOT / "models"]
REPORT = ROOT / "bayesid" / "report"


def _python_files():
    for d in CODE_DIRS:
        yield from (p for p in d.rglob("*.py") if "__pycache__" not in p.parts)


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_importing_diagnostics_loads_nothing_from_the_presentation_layer():
    code = ("import sys, bayesid.diagnostics, bayesid.diagnostics.diagnosis, bayesid.diagnostics.fisher; "
            "print(sorted(m for m in sys.modules if m.startswith('bayesid.report') or m == 'matplotlib'))")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_negative_control_the_check_sees_an_import():
    """The same check does see the presentation layer once it is imported (the test can fail)."""
    r = _run("import sys, bayesid.diagnostics, bayesid.report; print('bayesid.report' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


def test_diagnostics_has_no_module_level_import_of_the_report():
    for p in (ROOT / "diagnostics").rglob("*.py"):
        for line in p.read_text(encoding="utf-8").splitlines():
            if re.match(r"^(from|import) +bayesid\.report", line):
                pytest.fail(f"{p.relative_to(ROOT)} imports the presentation layer at module level: {line}")
    assert not (ROOT / "diagnostics" / "plots.py").exists(), "plotting belongs to bayesid/report/plots.py"


PRESENTATION = ("bayesid.report", "matplotlib", "jinja2", "rich", "IPython")


def _imported_modules(path):
    """Every module an ``import`` / ``from ... import`` names in ``path``, at any level (inside functions and
    methods too), relative imports resolved against the ``bayesid.diagnostics`` package."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . / .. import: inside bayesid.diagnostics
                base = ["bayesid", "diagnostics"][:max(0, 3 - node.level)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for a in node.names:  # from bayesid import report
                yield node.lineno, f"{mod}.{a.name}"


def _presentational(mod):
    return any(mod == p or mod.startswith(p + ".") for p in PRESENTATION)


def test_diagnostics_imports_nothing_presentational_at_any_level():
    """diagnostics computes: no module under diagnostics/ imports bayesid.report, matplotlib, jinja2, rich
    (or IPython) anywhere, functions included; rendering goes through diagnostics.display's registry."""
    found = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for p in sorted((ROOT / "diagnostics").rglob("*.py"))
             for line, mod in _imported_modules(p) if _presentational(mod)]
    assert not found, "\n".join(found)


def test_negative_control_the_import_walk_sees_a_lazy_import(tmp_path):
    """The walk finds imports inside methods and relative ones (the test above can fail)."""
    f = tmp_path / "x.py"
    f.write_text("class A:\n    def f(self):\n        from bayesid.report.plots import plot_pair\n"
                 "def g():\n    import matplotlib.pyplot as plt\n    from ...bayesid import report\n")
    found = {m for _, m in _imported_modules(f) if _presentational(m)}
    assert found == {"bayesid.report.plots", "bayesid.report.plots.plot_pair", "matplotlib.pyplot",
                     "bayesid.report"}, found


def test_a_diagnosis_renders_through_the_registry_without_importing_the_report_first():
    """In a fresh process that never imports bayesid.report, a Diagnosis' notebook HTML still renders: the
    registry asks the package root to load its presentation layer on first use."""
    code = ("import sys, numpy as np, xarray as xr, bayesid.diagnostics as bd; "
            "from bayesid.diagnostics import display; "
            "rng = np.random.default_rng(0); "
            "ds = lambda c, s: xr.Dataset({k: (('chain', 'draw'), rng.normal(0, s, (c, 200))) for k in 'ab'}); "
            "post = xr.DataTree.from_dict({'posterior': ds(2, 0.1), 'prior': ds(1, 1.0)}); "
            "d = bd.diagnose(post); assert 'bayesid.report' not in sys.modules; "
            "h = d._repr_html_(); print('bayesid.report' in sys.modules, 'diagnosis_html' in display.registered(), "
            "'<table' in h)")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "True True True", r.stdout


def test_display_without_a_registered_renderer_says_what_to_import():
    from bayesid.diagnostics import display

    with pytest.raises(display.DisplayUnavailableError, match="import bayesid.report"):
        display.renderer("no such kind")
    assert list(display.progress(range(3), description="x", total=3)) == [0, 1, 2]


# (pattern, what it stands for, the one file allowed to hold it)
ONCE = [
    (r"b64encode", "base64 figure encoding", REPORT / "figures.py"),
    (r"\.savefig\(", "figure rendering to bytes", REPORT / "figures.py"),
    (r"float_format|\.to_html\((float_format|classes|border|index)=", "table formatting", None),
    (r"<table|<!DOCTYPE|<html|<img |<section", "HTML markup in Python code", None),
]


@pytest.mark.parametrize("pattern, what, home", ONCE, ids=[w for _, w, _ in ONCE])
def test_html_figures_and_tables_exist_once(pattern, what, home):
    hits = sorted({p for p in _python_files() if re.search(pattern, p.read_text(encoding="utf-8"))})
    allowed = {home} if home else set()
    outside = [str(p.relative_to(ROOT)) for p in hits if p not in allowed]
    assert not outside, f"{what} outside the presentation layer's one place: {outside}"
    if home is not None:
        assert home in hits, f"{what} should live in {home.relative_to(ROOT)}"


def test_one_stylesheet_and_templates_are_package_files():
    css = list(REPORT.rglob("*.css"))
    assert [p.name for p in css] == ["style.css"]
    for name in ("page.html", "diagnosis.html", "designs.html", "neural.html", "_macros.html"):
        assert (REPORT / "templates" / name).exists()
    # no inline <style> anywhere but the page template
    for p in (REPORT / "templates").glob("*.html"):
        if p.name != "page.html":
            assert "<style" not in p.read_text(encoding="utf-8"), p.name


def test_compare_is_a_function_and_no_module_replaces_its_class():
    import bayesid
    from bayesid.comparison import compare

    assert bayesid.compare is compare and callable(compare)
    for p in _python_files():
        assert "__class__ =" not in p.read_text(encoding="utf-8"), p
