"""``savg weights list`` and ``savg weights import``.

    savg weights list                                        # registry entries and where each is available
    savg weights import SAVGBench_PretrainedModels_V1.zip    # official checkpoints -> safetensors + configs
    savg weights import /path/to/checkpoints/                # a folder holding official checkpoint files

Converted weights go to ``$SAVG_HOME/weights/<name>`` (default ``~/.cache/savg_hub``). Official files are read
with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``savg weights`` to the ``savg`` parser."""
    weights = commands.add_parser("weights", help="list and import pretrained weights", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="registry entries and their availability")
    listing.add_argument("--kind", help="only entries of this kind (e.g. stereo-seld, yolox-tiny, ultralytics)")
    listing.set_defaults(func=run_list)
    imp = sub.add_parser("import", help="convert official checkpoints (zip or folder) into the local cache")
    imp.add_argument("source", type=Path, metavar="ZIP_OR_FOLDER")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)


def availability(entry) -> str:
    """Where an entry's weights are: ``cache``, ``embedded``, ``hub`` (online only) or ``missing``."""
    from savg_hub import weights as registry

    if (registry.cache_dir() / entry.name / "config.json").is_file():
        return "cache"
    if entry.embedded and (registry.ASSETS / entry.embedded).exists():
        return "embedded"
    if entry.hub_repo and not registry._offline():
        return "hub"
    return "missing"


def run_list(args: argparse.Namespace) -> int:
    from savg_hub import weights as registry

    rows = [(e.name, e.kind, availability(e), e.description) for e in registry.entries(args.kind)]
    if not rows:
        raise ValueError(f"no registry entries of kind {args.kind!r}")
    widths = [max(len(r[i]) for r in rows + [("name", "kind", "available", "")]) for i in range(3)]
    print(f"{'name':<{widths[0]}}  {'kind':<{widths[1]}}  {'available':<{widths[2]}}  description")
    for name, kind, where, description in rows:
        print(f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {where:<{widths[2]}}  {description}")
    print(f"cache: {registry.cache_dir()}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from savg_hub import weights as registry

    converted = registry.import_official(args.source, progress=not args.no_progress)
    if not converted:
        known = ", ".join(sorted(e.official_filename for e in registry.entries() if e.official_filename))
        raise ValueError(f"no official checkpoint found in {args.source} (looked for: {known})")
    for entry, folder in converted:
        print(f"{entry.name:<32} {entry.kind:<14} -> {folder}  sha256 {registry.file_sha256(folder)[:12]}")
    return 0
