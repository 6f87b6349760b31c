"""The `dlmark` command: helpers around the workflow's tables."""

from __future__ import annotations

import argparse
import sys

from dlmark import models, runtimes
from dlmark.results import compare, tables
from dlmark.results.status import NOISY, STATUSES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list the model-zoo names dlmark knows, with published accuracy")
    sub.add_parser("variants", help="list the runtime/precision pairs, where they run, and whether installed")
    cmp = sub.add_parser(
        "compare",
        help="throughput/latency changes between two runs; exit 1 if anything got slower",
        description="Compare two results folders (or throughput.csv files). A row counts as "
        "changed when the change lies outside its own 95% interval (both rows' intervals combined), "
        "beyond what the drift canaries say the machine and the row's timing job shifted, by at "
        "least --threshold. Exit status: 0 no regression, 1 a regression, 2 nothing comparable.",
    )
    cmp.add_argument("old")
    cmp.add_argument("new")
    cmp.add_argument("--threshold", type=float, default=0.05, help="smallest relative change (default 0.05)")
    pts = sub.add_parser(
        "points",
        help="the targets that measure again the points of a given status",
        description="Print the rounds files of the models that have throughput points with the "
        "given status(es), one per line (a model's points are measured together, so its job is "
        "what measures one again); with --files, the points' own files. Measure them again with: "
        "snakemake --cores 1 --resources gpu=1 --forcerun $(dlmark points --status noisy)",
    )
    pts.add_argument("--status", nargs="+", default=[NOISY], choices=list(STATUSES))
    pts.add_argument("--results", default="results", help="the results folder (default results)")
    pts.add_argument("--machine", help="only this machine label")
    pts.add_argument("--files", action="store_true", help="print the points' own result files instead")
    mrg = sub.add_parser(
        "merge",
        help="copy another machine's results/ into this one's (then rerun snakemake)",
    )
    mrg.add_argument("source", help="the results/ folder of another run")
    mrg.add_argument("--into", default="results")
    args = parser.parse_args(argv)
    if args.command == "models":
        for info in models.zoo().values():
            print(f"{info.name:20s} {info.family:12s} {info.input_size}px  top-1 {info.top1:.4f}")
        return 0
    if args.command == "variants":
        width = max(len(f"{r}/{p}") for r, p in runtimes.known())
        for runtime, precision in runtimes.known():
            backend = runtimes.get(runtime, precision)
            where = "+".join(k.upper() for k in sorted(backend.device_kinds))
            missing = runtimes.problems(runtime, precision, [])
            print(f"{runtime + '/' + precision:{width}s} {where:8s} {'not installed' if missing else 'installed'}")
        return 0
    if args.command == "points":
        listed = tables.raw_points if args.files else tables.rerun_targets
        for path in listed(args.results, args.status, args.machine):
            print(path)
        return 0
    try:
        if args.command == "compare":
            return compare.run_compare(args.old, args.new, args.threshold)
        copied, skipped = compare.merge(args.source, args.into)
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"dlmark: {exc}", file=sys.stderr)
        return 2
    print(f"copied {copied} result file(s), {skipped} already present; run snakemake to update the tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
