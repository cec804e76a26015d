"""``savg``: the toolkit's command line.

    savg build-dataset --synthetic 6 --out demo-set/
    savg build-dataset --starss23 /data/STARSS23 --out svgsa24/
    savg import-svgsa24 /data/SAVGBench_Dataset_Development --out svgsa24-official/
    savg evaluate generated/ --metrics spatial --out results/
    savg seld generated/ --out pred_seld/ ; savg detect generated/ --out pred_od/
    savg spatial-align --seld pred_seld/ --detections pred_od/
    savg weights import SAVGBench_PretrainedModels_V1.zip
"""

from __future__ import annotations

import argparse
import logging
import sys

from savg_hub import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    from savg_hub.cli import dataset, evaluate, generate, weights

    parser = argparse.ArgumentParser(prog="savg", description="Spatially Aligned Audio-Video Generation toolkit")
    parser.add_argument("--version", action="version", version=f"savg_hub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (dataset, evaluate, generate, weights):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``savg`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"savg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"savg {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
