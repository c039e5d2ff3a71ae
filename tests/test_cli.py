"""The command line: models, report, designs, neural, and its error messages."""

from __future__ import annotations

import pytest

from bayesid.cli import main


def test_models_lists_every_family(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("toy.additive", "gait.bslip", "rates.pairwise"):
        assert name in out


def test_report_writes_html_and_table(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "toy.scale", "--draws", "300", "--tune", "300", "-o", str(out)]) == 0
    assert out.exists() and out.with_suffix(".csv").exists()
    assert "s1·s2" in out.read_text()


def test_designs_ranks_without_data(tmp_path, capsys):
    out = tmp_path / "d.html"
    assert main(["designs", "toy.collinear", "--n-prior", "16", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.index("distinct") < text.index("collinear default")
    assert out.exists()


def test_unknown_names_give_clear_errors(capsys):
    assert main(["report", "toy.addtive"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model 'toy.addtive'" in err and "Did you mean 'toy.additive'" in err
    assert main(["report", "toy.additive", "--design", "huge"]) == 2
    assert "Valid designs: default, small" in capsys.readouterr().err


@pytest.mark.neural
def test_neural_against_the_known_answer(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "n.html"
    assert main(["neural", "toy.additive", "--no-mcmc", "--n-sims", "3000", "--epochs", "5", "--members", "2",
                 "--n-test", "400", "-o", str(out)]) == 0
    assert "regresses to the prior" in capsys.readouterr().out
    assert out.exists()
