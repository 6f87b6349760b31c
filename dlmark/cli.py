"""The `dlmark` command: helpers around the workflow's results."""

from __future__ import annotations

import argparse
import sys

from dlmark import compare, models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list the model-zoo names dlmark knows, with published accuracy")
    cmp = sub.add_parser(
        "compare",
        help="throughput/latency changes between two runs; exit 1 if anything got slower",
        description="Compare two results folders (or throughput.csv files). A row counts as "
        "changed when the runs' 95%% confidence intervals do not overlap and the change is at "
        "least --threshold. Exit status: 0 no regression, 1 a regression, 2 nothing comparable.",
    )
    cmp.add_argument("old")
    cmp.add_argument("new")
    cmp.add_argument("--threshold", type=float, default=0.05, help="smallest relative change (default 0.05)")
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
