"""Execute examples/latent_rates.ipynb at its tiny size (BAYESID_EXAMPLE_SIZE=tiny) with nbclient."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _notebooks import run_notebook

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("torch")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "latent_rates.ipynb"


@pytest.mark.neural
def test_latent_rates_notebook_runs(tmp_path):
    nb = run_notebook(NOTEBOOK, tmp_path, {"BAYESID_EXAMPLE_SIZE": "tiny", "MPLBACKEND": "Agg"})
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )
    assert "size: tiny" in text
    assert "Var_post(mean θ)" in text and "σ shrinks to" in text
    if os.environ.get("BAYESID_SAVE_NOTEBOOK"):
        nbformat.write(nb, os.environ["BAYESID_SAVE_NOTEBOOK"])
