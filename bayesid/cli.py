"""Command line: ``bayesid models``, ``bayesid report MODEL``, ``bayesid designs MODEL``,
``bayesid neural MODEL`` (needs the ``neural`` extra). ``bayesid`` alone prints this help.

Every argument (model, each ``--design``, every output path) is checked before any work starts; every
file written is listed at the end; a file that bayesid did not write is never replaced without
``--force``; an error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_ERROR = 2


class CLIError(Exception):
    """A bad argument, reported as one line."""


# ------------------------------------------------------------------------------------------ checks
def _positive(name):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, got {v}")
        return v

    return conv


def _spec(name):
    from . import models

    return models.get(name)


def _check_designs(spec, designs):
    """Every named design exists (all checked before anything is computed)."""
    return [spec.design(d).name for d in designs]


def _check_outputs(paths, force):
    from .report import check_output

    for p in paths:
        check_output(p, force=force)


def _check_dir(path):
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and (not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK)):
        raise CLIError(f"cannot write the cache folder {path} ({probe} is not a writable folder); "
                       "pass --cache-dir elsewhere or --no-cache")


class _Written:
    """The files a command wrote, listed at the end."""

    def __init__(self):
        self.items = []

    def add(self, path, what):
        self.items.append((Path(path), what))

    def report(self):
        if self.items:
            print("\nwrote:")
            for p, what in self.items:
                print(f"  {p}  ({what})")


# ------------------------------------------------------------------------------------------ commands
def _cmd_models(args):
    from . import models

    for name in models.list():
        try:
            spec = models.get(name)
            print(f"{name:22s} {spec.description}")
            print(f"{'':22s} designs: {', '.join(spec.designs)} (default {spec.default_design})")
        except Exception as err:  # noqa: BLE001 - a family that cannot load still gets listed, with the reason
            print(f"{name:22s} [unavailable: {err}]")
    return 0


def _report_plan(args):
    spec = _spec(args.model)
    design = _check_designs(spec, [args.design] if args.design else [spec.default_design])[0]
    out = Path(args.output)
    table = None if args.no_table else Path(args.table) if args.table else out.with_suffix(".csv")
    if table is not None and table.resolve() == out.resolve():
        raise CLIError(f"the verdict table and the report would both be {out}; pass --table another.csv")
    cache = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else out.parent / ".bayesid-cache"
    _check_outputs([out] + ([table] if table else []), args.force)
    if cache is not None:
        _check_dir(cache)
    return spec, design, out, table, cache


def _cmd_report(args):
    from . import report
    from .report.levels import resolve_levels
    from .workflow import diagnose_model

    spec, design, out, table, cache = _report_plan(args)  # everything checked before sampling
    print(f"bayesid: {spec.name}, design {design!r}: simulating at the default true values, fitting "
          f"({args.chains} chains x {args.draws} draws, {args.tune} tuning steps, seed {args.seed}) ...", flush=True)
    diag, tree, model = diagnose_model(spec, design=design, draws=args.draws, tune=args.tune, chains=args.chains,
                                       random_seed=args.seed, cache_dir=cache, fisher=not args.no_fisher)
    diag.run_info = {"seed": args.seed}
    print(diag)
    lv = resolve_levels(diag, model=model)  # hierarchical models: a levels section
    if lv is not None:
        print(f"\nLevels:\n{lv.summary()}")
    written = _Written()
    if cache is not None:
        written.add(cache, "fitted posterior cache; delete it or pass --no-cache")
    if table is not None:
        table.parent.mkdir(parents=True, exist_ok=True)
        diag.table.to_csv(table)  # the table first: it is cheap and survives a failing plot
        written.add(table, "verdict table, CSV")
    report.write(diag, out, title=f"bayesid report: {spec.name} ({design})", force=True, levels=lv)
    written.add(out, "HTML report")
    written.report()
    return 0


def _designs_model(args):
    """The model a ``designs`` run compares (a registered name; kept separate so other sources, such as
    ``path/to/model.py:build``, can be added here)."""
    return _spec(args.model)


def _cmd_designs(args):
    from . import designs, report

    if ".py:" in args.model:  # a user's PyMC program (helper D, issue 13)
        return _cmd_designs_pymc(args)
    spec = _designs_model(args)
    names = _check_designs(spec, args.design) if args.design else None
    out = Path(args.output)
    _check_outputs([out], args.force)
    dc = designs.compare(spec, designs=names, n_prior=args.n_prior, random_seed=args.seed)
    print(dc)
    print()
    print(dc.verdicts().to_string())
    written = _Written()
    report.write(dc, out, title=f"bayesid designs: {dc.model}", force=True)
    written.add(out, "design comparison, HTML")
    written.report()
    return 0


def _cmd_designs_pymc(args):
    """``bayesid designs path/to/model.py:build --designs path/to/model.py:DESIGNS --method mcmc``."""
    from . import designs

    factory = designs.load_model_factory(args.model)
    if not args.designs:
        raise SystemExit("give --designs path/to/model.py:DESIGNS (a dict {name: {pm.Data or argument: value}})")
    table = designs.load_model_factory(args.designs)
    executor = args.workers
    client = None
    if args.scheduler:
        from dask.distributed import Client

        client = executor = Client(args.scheduler)
    try:
        dc = designs.compare_model(factory, table, method=args.method, n_prior=args.n_prior,
                                   n_datasets=args.n_datasets, n_simulations=args.n_sims,
                                   random_seed=args.seed, executor=executor, checkpoint=args.checkpoint)
    finally:
        if client is not None:
            client.close()
    print(dc)
    out = Path(args.output).with_suffix(".csv")
    _check_outputs([out], args.force)
    dc.table.to_csv(out)
    print(f"wrote {out} (design table, CSV)")
    return 0


def _cmd_neural(args):
    from . import report
    from .comparison import compare
    from .workflow import diagnose_model

    try:
        from .neural import Ensemble, PointEstimator, simulate_training_set
    except ImportError as err:
        raise CLIError(f"bayesid neural needs the neural extra (torch, zuko): pip install 'bayesid[neural]' "
                       f"({err})") from None
    spec = _spec(args.model)
    design = _check_designs(spec, [args.design] if args.design else [spec.default_design])[0]
    out = Path(args.output)
    _check_outputs([out], args.force)
    cache = None if args.no_cache else out.parent / ".bayesid-cache"
    if cache is not None and not args.no_mcmc:
        _check_dir(cache)
    written = _Written()
    sections = []
    if args.no_mcmc:
        diag = None  # the model's recorded known answer gives the directions
    else:
        diag, _, _ = diagnose_model(spec, design=design, draws=args.draws, tune=args.draws, chains=args.chains,
                                    random_seed=args.seed, cache_dir=cache)
        print(diag)
        sections.append(report.Fragment(report.diagnosis_html(diag, prefix="mcmc-")))
        if cache is not None:
            written.add(cache, "fitted posterior cache")
    ts = simulate_training_set(spec, args.n_sims, design=design, random_seed=args.seed, progressbar=True)
    ens = Ensemble(PointEstimator(epochs=args.epochs, progressbar=True), n_members=args.members,
                   random_seed=args.seed).fit(ts)
    cmp = compare(diag, ens, n_test=args.n_test, random_seed=args.seed + 1)
    print(cmp)
    sections.insert(0, cmp)
    report.write(sections, out, title=f"bayesid neural: {spec.name} ({design})", force=True)
    written.add(out, "neural comparison, HTML")
    written.report()
    return 0


# ------------------------------------------------------------------------------------------ parser
class _DefaultsFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` for options with a real default (not for flags, not twice)."""

    def _get_help_string(self, action):
        h = action.help or ""
        if ("default" not in h and action.default is not None and action.default is not False
                and action.default != argparse.SUPPRESS
                and action.option_strings and action.nargs != 0):
            h += " (default: %(default)s)"
        return h


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    fmt = _DefaultsFormatter
    p = argparse.ArgumentParser(prog="bayesid", formatter_class=fmt,
                                description="Which parameters, and which combinations of them, can your data "
                                            "determine? Identifiability diagnostics for PyMC models.",
                                epilog="Run 'bayesid COMMAND --help' for a command's options.")
    p.add_argument("--version", action="version", version=f"bayesid {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.add_parser("models", help="list the registered models and their designs", formatter_class=fmt)

    r = sub.add_parser("report", help="simulate, fit and diagnose a registered model; write an HTML report",
                       formatter_class=fmt)
    r.add_argument("model", help="registered model name (see 'bayesid models')")
    r.add_argument("--design", default=None, help="design name (default: the model's default design)")
    r.add_argument("-o", "--output", default="report.html", help="HTML report to write")
    r.add_argument("--table", default=None, help="verdict table CSV (default: the report's name with .csv)")
    r.add_argument("--no-table", action="store_true", help="do not write the CSV verdict table")
    r.add_argument("--cache-dir", default=None,
                   help="folder for the fitted posterior (default: .bayesid-cache next to the report)")
    r.add_argument("--no-cache", action="store_true", help="do not cache the fit")
    r.add_argument("--draws", type=_positive("--draws"), default=1000, help="NUTS draws per chain")
    r.add_argument("--tune", type=_positive("--tune"), default=1000, help="NUTS tuning steps per chain")
    r.add_argument("--chains", type=_positive("--chains"), default=4, help="NUTS chains")
    r.add_argument("--seed", type=int, default=0, help="random seed (data, sampler, diagnostics)")
    r.add_argument("--no-fisher", action="store_true", help="skip the model-based Fisher analysis")
    r.add_argument("--force", action="store_true", help="overwrite output files that bayesid did not write")

    d = sub.add_parser("designs", help="rank a model's designs by expected identifiability (no data needed)",
                       formatter_class=fmt)
    d.add_argument("model", help="registered model name (see 'bayesid models')")
    d.add_argument("--design", action="append", default=None,
                   help="design to include (repeatable; default: all of the model's designs)")
    d.add_argument("--n-prior", type=_positive("--n-prior"), default=64, help="prior draws averaged over")
    d.add_argument("--seed", type=int, default=0, help="random seed")
    d.add_argument("-o", "--output", default="designs.html", help="HTML page to write")
    d.add_argument("--force", action="store_true", help="overwrite output files that bayesid did not write")
    d.add_argument("--designs", default=None,
                   help="for MODEL=path/to/model.py:build: path/to/model.py:DESIGNS, a dict of designs")
    d.add_argument("--method", choices=("fisher", "mcmc", "npe"), default="fisher",
                   help="design comparison method")
    d.add_argument("--workers", type=int, default=None,
                   help="working processes (mcmc, npe): this one plus N-1 spawned workers")
    d.add_argument("--scheduler", default=None, help="dask scheduler address, e.g. tcp://host:8786 (mcmc, npe)")
    d.add_argument("--n-datasets", type=int, default=20, help="simulated datasets per design (mcmc, npe)")
    d.add_argument("--n-sims", type=int, default=4000, help="NPE training simulations per design (npe)")
    d.add_argument("--checkpoint", default=None, help="checkpoint directory: resume an interrupted mcmc/npe run")

    n = sub.add_parser("neural", help="train an amortized point-estimator ensemble and compare it with MCMC",
                       formatter_class=fmt)
    n.add_argument("model", help="registered model name (see 'bayesid models')")
    n.add_argument("--design", default=None, help="design name (default: the model's default design)")
    n.add_argument("--n-sims", type=_positive("--n-sims"), default=20000, help="training simulations")
    n.add_argument("--epochs", type=_positive("--epochs"), default=20, help="training epochs")
    n.add_argument("--members", type=_positive("--members"), default=3, help="ensemble members (seeds)")
    n.add_argument("--n-test", type=_positive("--n-test"), default=500, help="held-out datasets")
    n.add_argument("--draws", type=_positive("--draws"), default=1000,
                   help="NUTS draws (and tuning steps) per chain for the MCMC diagnosis")
    n.add_argument("--chains", type=_positive("--chains"), default=4, help="NUTS chains")
    n.add_argument("--no-mcmc", action="store_true", help="use the model's known answer instead of a NUTS fit")
    n.add_argument("--no-cache", action="store_true", help="do not cache the MCMC fit")
    n.add_argument("--seed", type=int, default=0, help="random seed")
    n.add_argument("-o", "--output", default="neural.html", help="HTML page to write")
    n.add_argument("--force", action="store_true", help="overwrite output files that bayesid did not write")
    return p


def _one_line(err) -> str:
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(msg).split())


def main(argv=None) -> int:
    """Entry point of the ``bayesid`` console script. Returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 0
    from .models import UnknownModelError
    from .report import OutputError

    try:
        return {"models": _cmd_models, "report": _cmd_report, "designs": _cmd_designs,
                "neural": _cmd_neural}[args.cmd](args)
    except (CLIError, UnknownModelError, OutputError, KeyError, ValueError, TypeError, OSError) as err:
        print(f"bayesid: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
