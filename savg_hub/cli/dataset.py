"""``savg build-dataset``, ``savg import-svgsa24`` and ``savg export-clips``.

    savg build-dataset --synthetic 6 --out demo-set/              # STARSS23-format synthetic scenes, no download
    savg build-dataset --starss23 /data/STARSS23 --out svgsa24/   # the paper's conversion + curation
    savg import-svgsa24 /data/SAVGBench_Dataset_Evaluation --out svgsa24-eval/
    savg export-clips demo-set/:eval --out reference-clips/       # mp4 + .flac files, e.g. for --reference
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def _resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"resolution must look like 960x480; got {text!r}") from exc
    return width, height


def register(commands: argparse._SubParsersAction) -> None:
    """Add the dataset commands to the ``savg`` parser."""
    build = commands.add_parser("build-dataset", help="build SVGSA24 from STARSS23 (or synthetic scenes)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--starss23", type=Path, metavar="DIR", help="STARSS23 folder (foa_dev/, video_dev/, metadata_dev/)")
    source.add_argument("--synthetic", type=int, metavar="N", help="generate N synthetic STARSS23-format recordings first")
    build.add_argument("--out", type=Path, required=True, help="destination dataset folder")
    build.add_argument("--splits", nargs="+", metavar="SPLIT", help="STARSS23 split folders to use (default: all)")
    build.add_argument("--dev-hop", type=float, default=0.5, help="seconds between dev windows (paper: 0.5)")
    build.add_argument("--dev-yaw-step", type=float, default=10.0, help="degrees between dev view angles (paper: 10)")
    build.add_argument("--eval-hop", type=float, default=2.5, help="seconds between eval windows")
    build.add_argument("--eval-yaw-step", type=float, default=30.0, help="degrees between eval view angles")
    build.add_argument("--workers", type=int, default=2, help="clip-encoding threads")
    build.add_argument("--name", default=None, help="dataset name (card title)")
    build.add_argument("--seed", type=int, default=0, help="synthetic: random seed")
    build.add_argument("--duration", type=float, default=20.0, help="synthetic: seconds per recording")
    build.add_argument("--resolution", type=_resolution, default=(960, 480), help="synthetic: equirect WxH")
    build.add_argument("--recordings-dir", type=Path, help="synthetic: keep the generated recordings here")
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    build.add_argument("--restart", action="store_true", help="discard a partial build made with other settings")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)

    imp = commands.add_parser("import-svgsa24", help="import the official SVGSA24 release into the dataset layout")
    imp.add_argument("root", type=Path, help="release folder (video_dev/ + metadata_dev/, or video_eval/ ...)")
    imp.add_argument("--out", type=Path, required=True, help="destination dataset folder")
    imp.add_argument("--split", choices=("dev", "eval"), help="split for clips outside video_dev/video_eval folders")
    imp.add_argument("--resample", action="store_true", help="convert audio that is not 16 kHz")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)

    exp = commands.add_parser("export-clips", help="write a dataset split as mp4 + lossless .flac clip files")
    exp.add_argument("dataset", type=str, metavar="DATASET[:SPLIT]", help="dataset folder, e.g. demo-set/:eval")
    exp.add_argument("--out", type=Path, required=True, help="destination folder")
    exp.add_argument("--split", help="split (or write DATASET:SPLIT; default eval)")
    exp.add_argument("--limit", type=int, help="only the first N clips")
    exp.add_argument("--no-lossless", action="store_true", help="mp4 only (no .flac sidecars)")
    exp.add_argument("--no-progress", action="store_true", help="no progress bar")
    exp.set_defaults(func=run_export)


def _summary(info, seconds: float, out: Path) -> str:
    lines = [f"wrote {out} in {seconds:.1f} s"]
    for split, stats in info.splits.items():
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(stats["rejections"].items()) if v) or "none"
        lines.append(
            f"  {split}: {stats['num_clips']} clips ({stats['num_clips'] * 5 / 60:.1f} min) from "
            f"{len(stats['recordings'])} recordings; {stats['candidates']} candidates; rejected: {rejected}"
        )
    return "\n".join(lines)


def run_build(args: argparse.Namespace) -> int:
    from savg_hub.data.builder import BuilderConfig, build_svgsa24
    from savg_hub.data.starss23 import find_recordings

    config = BuilderConfig(dev_window_hop=args.dev_hop, dev_yaw_step=args.dev_yaw_step,
                           eval_window_hop=args.eval_hop, eval_yaw_step=args.eval_yaw_step,
                           num_workers=args.workers)
    started = time.perf_counter()
    provenance: dict = {}
    temporary: Path | None = None
    if args.synthetic is not None:
        from savg_hub.data.synthetic import SyntheticConfig, generate_starss23

        if args.synthetic < 1:
            raise ValueError(f"--synthetic needs at least 1 recording; got {args.synthetic}")
        width, height = args.resolution
        synth = SyntheticConfig(duration=args.duration, video_width=width, video_height=height)
        root = args.recordings_dir
        if root is None:
            temporary = root = args.out.with_name(args.out.name + ".recordings")
        generate_starss23(root, args.synthetic, seed=args.seed, config=synth, progress=not args.no_progress)
        source_dataset = "synthetic STARSS23-format"
        name = args.name or "SVGSA24-synthetic"
        provenance = {"synthetic_seed": args.seed, "synthetic_config": _jsonable(synth)}
    else:
        root = args.starss23
        source_dataset = "STARSS23"
        name = args.name or "SVGSA24"
        provenance = {"starss23_root": root.name}
    recordings = find_recordings(root, args.splits)
    result = build_svgsa24(recordings, args.out, config, name=name, source_dataset=source_dataset,
                           overwrite=args.overwrite, restart=args.restart, progress=not args.no_progress,
                           provenance=provenance)
    if temporary is not None:
        shutil.rmtree(temporary, ignore_errors=True)
    print(_summary(result.info, time.perf_counter() - started, args.out), file=sys.stdout)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from savg_hub.data.importer import import_svgsa24

    started = time.perf_counter()
    info = import_svgsa24(args.root, args.out, split=args.split, resample=args.resample, overwrite=args.overwrite,
                          progress=not args.no_progress)
    print(_summary(info, time.perf_counter() - started, args.out), file=sys.stdout)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from savg_hub.data.hf_dataset import export_clips

    folder, _, split = args.dataset.rpartition(":") if ":" in args.dataset else (args.dataset, "", "")
    split = args.split or split or "eval"
    paths = export_clips(folder, split, args.out, limit=args.limit, lossless=not args.no_lossless,
                         progress=not args.no_progress)
    print(f"wrote {len(paths)} clips of {folder}:{split} to {args.out}", file=sys.stdout)
    return 0


def _jsonable(config) -> dict:
    from dataclasses import asdict
    from fractions import Fraction

    def convert(value):
        if isinstance(value, (tuple, list)):
            return [convert(v) for v in value]
        if isinstance(value, Fraction):
            return f"{value.numerator}/{value.denominator}"
        return value if isinstance(value, (int, float, str, bool, type(None), dict)) else str(value)

    return {k: convert(v) for k, v in asdict(config).items()}
