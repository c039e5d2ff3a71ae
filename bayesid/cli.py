"""Command line: ``bayesid models``, ``bayesid report MODEL [--design D] -o report.html``,
``bayesid designs MODEL [--design D ...] [-o designs.html]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _cmd_models(args):
    from . import models

    for name in models.list():
        try:
            spec = models.get(name)
            print(f"{name:22s} {spec.description}")
            print(f"{'':22s} designs: {', '.join(spec.designs)} (default {spec.default_design})")
        except Exception as err:  # a family that cannot load still gets listed, with the reason
            print(f"{name:22s} [unavailable: {err}]")
    return 0


def _cmd_report(args):
    from . import models, report
    from .workflow import diagnose_model

    spec = models.get(args.model)
    design = spec.design(args.design).name
    out = Path(args.output)
    print(f"bayesid: {spec.name}, design {design!r}: simulating at the default true values, fitting "
          f"({args.chains} chains x {args.draws} draws, seed {args.seed}) ...", flush=True)
    diag, tree, _ = diagnose_model(spec, design=design, draws=args.draws, tune=args.tune, chains=args.chains,
                                   random_seed=args.seed, cache_dir=out.parent / ".bayesid-cache",
                                   fisher=not args.no_fisher)
    print(diag)
    report.write(diag, out, title=f"bayesid report: {spec.name} ({design})")
    table = out.with_suffix(".csv")
    diag.table.to_csv(table)
    print(f"\nwrote {out} (HTML report), {table} (verdict table), "
          f"fit cached in {out.parent / '.bayesid-cache'}")
    return 0


def _cmd_designs(args):
    from . import designs, report

    dc = designs.compare(args.model, designs=args.design or None, n_prior=args.n_prior, random_seed=args.seed)
    print(dc)
    print()
    print(dc.verdicts().to_string())
    if args.output:
        report.write(dc, args.output, title=f"bayesid designs: {dc.model}")
        print(f"\nwrote {args.output}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``bayesid`` console script."""
    p = argparse.ArgumentParser(prog="bayesid", description="Which parameters can your data determine?")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("models", help="list the registered models and their designs")
    r = sub.add_parser("report", help="fit and diagnose a registered model, write one HTML report")
    r.add_argument("model", help="registered model name (see `bayesid models`)")
    r.add_argument("--design", default=None, help="design name (default: the model's default)")
    r.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    r.add_argument("--draws", type=int, default=1000)
    r.add_argument("--tune", type=int, default=1000)
    r.add_argument("--chains", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-fisher", action="store_true", help="skip the model-based Fisher analysis")
    d = sub.add_parser("designs", help="rank a model's designs by expected identifiability (no data needed)")
    d.add_argument("model")
    d.add_argument("--design", action="append", help="design to include (repeatable; default: all)")
    d.add_argument("--n-prior", type=int, default=64, help="prior draws averaged over")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("-o", "--output", default=None, help="HTML file to write")
    args = p.parse_args(argv)
    from .models import UnknownModelError

    try:
        return {"models": _cmd_models, "report": _cmd_report, "designs": _cmd_designs}[args.cmd](args)
    except (UnknownModelError, KeyError, ValueError, TypeError) as err:
        print(f"bayesid: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
