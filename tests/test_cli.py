"""The command line: models, report, designs, neural; help, version, validation before work, listing of
every file written, refusal to replace files bayesid did not write, one-line errors."""

from __future__ import annotations

import os

import pytest

from bayesid.cli import main


def test_bare_call_prints_help_and_version(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: bayesid" in out and "report" in out and "designs" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    import bayesid

    assert f"bayesid {bayesid.__version__}" in capsys.readouterr().out


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("(default: report.html)", "(default: 1000)", "(default: 4)", "(default: 0)", "--force"):
        assert text in out, text
    assert "(default: None)" not in out and "(default: False)" not in out


def test_models_lists_every_family(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("toy.additive", "gait.bslip", "rates.pairwise"):
        assert name in out


def test_report_writes_html_and_table_and_lists_them(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "toy.scale", "--draws", "300", "--tune", "300", "-o", str(out)]) == 0
    assert out.exists() and out.with_suffix(".csv").exists()
    assert "s1·s2" in out.read_text()
    assert 'id="levels"' not in out.read_text()  # not a hierarchical model: no levels section
    text = capsys.readouterr().out
    listed = text[text.index("wrote:"):]
    for path in (out, out.with_suffix(".csv"), tmp_path / ".bayesid-cache"):
        assert str(path) in listed, path
    # a second run replaces bayesid's own files without --force
    assert main(["report", "toy.scale", "--draws", "300", "--tune", "300", "-o", str(out)]) == 0


@pytest.mark.slow
def test_report_of_a_hierarchical_model_has_the_levels_section(tmp_path, capsys):
    """mixed.noncentred: the report carries the levels (known answer: alpha trades off against the mean
    of the random intercepts b) and the printed summary says the same."""
    out = tmp_path / "m.html"
    assert main(["report", "mixed.noncentred", "--draws", "300", "--tune", "300", "--no-fisher", "--no-cache",
                 "-o", str(out)]) == 0
    html = out.read_text()
    assert 'id="levels"' in html and "alpha against the mean of b" in html
    text = capsys.readouterr().out
    assert "Levels:" in text and "alpha against the mean of b" in text


def test_designs_ranks_without_data(tmp_path, capsys):
    out = tmp_path / "d.html"
    assert main(["designs", "toy.collinear", "--n-prior", "16", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.index("distinct") < text.index("collinear default")
    assert out.exists() and str(out) in text[text.index("wrote:"):]


def test_unknown_names_give_clear_errors(capsys):
    assert main(["report", "toy.addtive"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model 'toy.addtive'" in err and "Did you mean 'toy.additive'" in err
    assert main(["report", "toy.additive", "--design", "huge"]) == 2
    assert "Valid designs: default, small" in capsys.readouterr().err


def test_bad_second_design_fails_before_any_work(monkeypatch, tmp_path, capsys):
    import bayesid.designs

    def boom(*a, **k):
        raise AssertionError("computed before the arguments were checked")

    monkeypatch.setattr(bayesid.designs, "compare", boom)
    assert main(["designs", "toy.collinear", "--design", "distinct", "--design", "nope",
                 "-o", str(tmp_path / "d.html")]) == 2
    err = capsys.readouterr().err
    assert "Unknown design 'nope'" in err and len(err.strip().splitlines()) == 1


def test_foreign_file_is_not_replaced_without_force(monkeypatch, tmp_path, capsys):
    import bayesid.workflow

    monkeypatch.setattr(bayesid.workflow, "diagnose_model", lambda *a, **k: pytest.fail("sampled first"))
    out = tmp_path / "x.html"
    table = tmp_path / "x.csv"
    table.write_text("my,own,data\n1,2,3\n")
    assert main(["report", "toy.additive", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "x.csv exists and was not written by bayesid" in err and "--force" in err
    assert table.read_text() == "my,own,data\n1,2,3\n" and not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_output_is_one_line_error_before_sampling(monkeypatch, tmp_path, capsys):
    import bayesid.workflow

    monkeypatch.setattr(bayesid.workflow, "diagnose_model", lambda *a, **k: pytest.fail("sampled first"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["report", "toy.additive", "-o", str(ro / "r.html")]) == 2
    finally:
        ro.chmod(0o700)
    err = capsys.readouterr().err
    assert err.startswith("bayesid: error: cannot write") and len(err.strip().splitlines()) == 1


def test_output_that_is_a_directory_is_refused_before_work(monkeypatch, tmp_path, capsys):
    """(Runs as root too: a directory is never a valid output file.)"""
    import bayesid.workflow

    monkeypatch.setattr(bayesid.workflow, "diagnose_model", lambda *a, **k: pytest.fail("sampled first"))
    assert main(["report", "toy.additive", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and len(err.strip().splitlines()) == 1


def test_bad_numbers_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "toy.additive", "--draws", "0"])
    assert e.value.code == 2 and "--draws must be at least 1" in capsys.readouterr().err


@pytest.mark.neural
def test_neural_against_the_known_answer(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "n.html"
    assert main(["neural", "toy.additive", "--no-mcmc", "--n-sims", "3000", "--epochs", "5", "--members", "2",
                 "--n-test", "400", "-o", str(out)]) == 0
    assert "regresses to the prior" in capsys.readouterr().out
    assert out.exists()
