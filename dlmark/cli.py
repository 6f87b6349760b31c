"""The `dlmark` command: helpers around the workflow's results."""

from __future__ import annotations

import argparse
import sys

from dlmark import models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list the model-zoo names dlmark knows")
    args = parser.parse_args(argv)
    if args.command == "models":
        for info in models.zoo().values():
            print(f"{info.name:20s} {info.family:12s} {info.input_size}px  top-1 {info.top1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
