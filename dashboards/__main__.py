"""``python -m dashboards build [--out DIR]``: regenerate the dashboard JSON files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dashboards.build import DEFAULT_OUT, build_all

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards",
                                     description="Grafana dashboards of driftloop.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="write the dashboard JSON files")
    build.add_argument("--out", type=Path, default=DEFAULT_OUT,
                       help=f"output directory (default: {DEFAULT_OUT}, from the repository root)")
    args = parser.parse_args(argv)
    for path in build_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
