"""``savg generate``: sample clips from a SAVGBench pipeline and write them as mp4 + lossless FLAC.

    savg generate --num-clips 8 --seed 0 --out generated/                   # the embedded default
    savg generate --model my-pipeline/ --num-clips 96 --steps 25 --out generated/
    savg generate --model savgbench --sampler official --out generated/     # official weights (savg weights import)
    savg evaluate generated/                                                # score them

``--model`` is a saved pipeline folder (``save_pretrained``), ``savgbench`` (the official weights from the
registry) or a Hub repo id. Clip ``i`` is seeded with ``--seed + i``; the cross-attention shifts and the adaptive
sampler's step sizes are shared by a batch, so use ``--batch-size 1`` for clips that depend on their seed only.
Next to the clips, ``generation.json`` records the model, seeds, sampler and package versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``savg generate`` to the ``savg`` parser."""
    gen = commands.add_parser("generate", help="generate clips with a SAVGBench pipeline", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("--model", metavar="NAME_OR_PATH",
                     help="pipeline folder, 'savgbench' or a Hub repo id (default: the embedded pipeline)")
    gen.add_argument("--num-clips", type=int, default=1, metavar="N", help="clips to generate (default: 1)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first clip (default: 0)")
    gen.add_argument("--steps", type=int, default=25, metavar="K",
                     help="base-stage steps (ignored by --sampler official; default: 25)")
    gen.add_argument("--sr-steps", type=int, default=25, help="super-resolution DDIM steps (default: 25)")
    gen.add_argument("--sampler", choices=("dpmsolver", "official"),
                     help="base-stage sampler (default: the pipeline's scheduler)")
    gen.add_argument("--batch-size", type=int, default=1, metavar="B", help="clips per pipeline call (default: 1)")
    gen.add_argument("--out", type=Path, required=True, help="destination folder")
    gen.add_argument("--prefix", default="clip", help="file-name prefix (default: clip)")
    gen.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    gen.add_argument("--overwrite", action="store_true", help="replace clips of the same name in --out")
    gen.add_argument("--no-progress", action="store_true", help="no progress bars")
    gen.set_defaults(func=run_generate)


def _check(args: argparse.Namespace) -> None:
    for name in ("num_clips", "steps", "sr_steps", "batch_size"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1; got {value}")
    if args.seed < 0:
        raise ValueError(f"--seed must be non-negative; got {args.seed}")


def run_generate(args: argparse.Namespace) -> int:
    import diffusers
    import torch

    from savg_hub import __version__
    from savg_hub.pipelines.export import export_to_clips
    from savg_hub.pipelines.loading import default_pipeline_spec, load_pipeline
    from savg_hub.pipelines.pipeline_savgbench_joint import SAVGBenchJointPipeline
    from savg_hub.utils.files import atomic_write_text

    _check(args)
    names = [args.out / f"{args.prefix}_{i:05d}.mp4" for i in range(args.num_clips)]
    existing = [p for p in names if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} clips in all); pass --overwrite to replace")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    spec = args.model if args.model is not None else default_pipeline_spec()
    pipe = load_pipeline(spec, device=device)
    pipe.set_progress_bar_config(disable=args.no_progress)
    extra = {"sr_num_inference_steps": args.sr_steps} if isinstance(pipe, SAVGBenchJointPipeline) else {}

    start = time.perf_counter()
    paths: list[Path] = []
    for first in range(0, args.num_clips, args.batch_size):
        count = min(args.batch_size, args.num_clips - first)
        generators = [torch.Generator(device).manual_seed(args.seed + first + i) for i in range(count)]
        output = pipe(batch_size=count, num_inference_steps=args.steps, sampler=args.sampler,
                      generator=generators, output_type="np", **extra)
        paths += export_to_clips(output, args.out, args.prefix, start_index=first)
        print(f"{len(paths)}/{args.num_clips} clips written to {args.out}", flush=True)
    seconds = time.perf_counter() - start

    manifest = {
        "model": str(spec),
        "pipeline": type(pipe).__name__,
        "sampler": args.sampler or type(pipe.scheduler).__name__,
        "num_inference_steps": args.steps,
        "sr_num_inference_steps": args.sr_steps if extra else None,
        "seeds": [args.seed + i for i in range(args.num_clips)],
        "batch_size": args.batch_size,
        "device": device,
        "clips": [p.name for p in paths],
        "fps": float(pipe.config.fps),
        "sample_rate": int(pipe.config.sample_rate),
        "seconds": round(seconds, 3),
        "versions": {"savg_hub": __version__, "diffusers": diffusers.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    atomic_write_text(args.out / "generation.json", json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(paths)} clips in {seconds:.1f} s ({seconds / len(paths):.2f} s per clip) to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m savg_hub.cli.generate ...`` (same as ``savg generate ...``)."""
    from savg_hub.cli.main import main as savg_main

    return savg_main(["generate", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
