"""Command line: ``bayesid models``, ``bayesid report MODEL [--design D] -o report.html``,
``bayesid designs MODEL [--design D ...] [-o designs.html]``,
``bayesid neural MODEL [--design D] [-o neural.html]`` (needs the ``neural`` extra)."""

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


def _cmd_neural(args):
    from . import models, report
    from .compare import compare
    from .neural import Ensemble, PointEstimator, simulate_training_set
    from .workflow import diagnose_model

    spec = models.get(args.model)
    design = spec.design(args.design).name
    out = Path(args.output)
    sections = []
    if args.no_mcmc:
        diag = None  # the model's recorded known answer gives the directions
    else:
        diag, _, _ = diagnose_model(spec, design=design, draws=args.draws, tune=args.draws, chains=args.chains,
                                    random_seed=args.seed, cache_dir=out.parent / ".bayesid-cache")
        print(diag)
        sections.append(diag.to_html())
    ts = simulate_training_set(spec, args.n_sims, design=design, random_seed=args.seed, progressbar=True)
    ens = Ensemble(PointEstimator(epochs=args.epochs, progressbar=True), n_members=args.members,
                   random_seed=args.seed).fit(ts)
    cmp = compare(diag, ens, n_test=args.n_test, random_seed=args.seed + 1)
    print(cmp)
    sections.append(cmp.to_html())

    class _Page:  # report.write takes objects with to_html()
        def __init__(self, html):
            self.html = html

        def to_html(self):
            return self.html

    report.write([_Page(h) for h in sections], out, title=f"bayesid neural: {spec.name} ({design})")
    print(f"\nwrote {out}")
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
    n = sub.add_parser("neural", help="train an amortized point-estimator ensemble and compare it with MCMC")
    n.add_argument("model")
    n.add_argument("--design", default=None)
    n.add_argument("--n-sims", type=int, default=20000, help="training simulations")
    n.add_argument("--epochs", type=int, default=20)
    n.add_argument("--members", type=int, default=3, help="ensemble members (seeds)")
    n.add_argument("--n-test", type=int, default=500, help="held-out datasets")
    n.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain for the MCMC diagnosis")
    n.add_argument("--chains", type=int, default=4)
    n.add_argument("--no-mcmc", action="store_true", help="use the model's known answer instead of a NUTS fit")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("-o", "--output", default="neural.html")
    args = p.parse_args(argv)
    from .models import UnknownModelError

    try:
        return {"models": _cmd_models, "report": _cmd_report, "designs": _cmd_designs,
                "neural": _cmd_neural}[args.cmd](args)
    except (UnknownModelError, KeyError, ValueError, TypeError) as err:
        print(f"bayesid: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
