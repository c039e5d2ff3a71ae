"""The example notebooks and scripts run end to end at tiny sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from _notebooks import run_notebook

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_quickstart_notebook(tmp_path):
    nb = run_notebook(EXAMPLES / "quickstart.ipynb", tmp_path, {"BAYESID_EXAMPLE_DRAWS": "300"})
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "a·b" in text and "a + b" in text
    assert (tmp_path / "quickstart-report.html").exists()


@pytest.mark.neural
def test_neural_vs_mcmc_script(tmp_path):
    pytest.importorskip("torch")
    import runpy
    import sys

    out = tmp_path / "n.html"
    argv = sys.argv
    sys.argv = ["neural_vs_mcmc.py", "--tiny", "--out", str(out)]
    try:
        runpy.run_path(str(EXAMPLES / "neural_vs_mcmc.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert out.exists() and "a - b" in out.read_text()
