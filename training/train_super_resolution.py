#!/usr/bin/env python
"""Train the SAVGBench 64 -> 256 super-resolution model (guided-diffusion SR U-Net) on SVGSA24 frames.

    accelerate launch training/train_super_resolution.py --config training/configs/super_resolution_official.yaml \
        --dataset svgsa24/
    python training/train_super_resolution.py --config training/configs/super_resolution_tiny.yaml \
        --dataset demo-set/ --output-dir runs/sr-tiny [--resume]

Output folder: as ``train_stereo_mm_diffusion.py``; ``pipeline/`` is a SuperResolutionPipeline folder (DDIM on the
``sampler_num_train_timesteps`` schedule). The recipe: :class:`savg_hub.training.diffusion.SuperResolutionTrainingConfig`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_stereo_mm_diffusion import finish, load_config, parse_args  # noqa: E402

logger = logging.getLogger("train_super_resolution")

SCRIPT = "training/train_super_resolution.py"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: parse ``argv``, load the config, train, save the pipeline. Returns the run summary."""
    from savg_hub.training.diffusion import SuperResolutionTrainingConfig, train_diffusion

    args = parse_args(argv, __doc__)
    config = load_config(args, SuperResolutionTrainingConfig)
    output_dir = args.output_dir or Path("runs") / args.config.stem
    command = " ".join(["python", SCRIPT, *(sys.argv[1:] if argv is None else argv)])
    name = args.name or Path(output_dir).resolve().name

    def on_finish(unet, run: dict[str, Any]) -> str:
        from savg_hub.pipelines import SuperResolutionPipeline, sr_ddim_scheduler

        scheduler = sr_ddim_scheduler(config.sampler_num_train_timesteps, config.prediction_type)
        pipeline = SuperResolutionPipeline(unet=unet, scheduler=scheduler)
        return str(finish(Path(output_dir) / "pipeline", pipeline, config, run, config.kind, name, command))

    return train_diffusion(config, output_dir, resume=args.resume, progress=not args.no_progress,
                           on_finish=on_finish)


if __name__ == "__main__":
    from savg_hub.training.script import run_script

    run_script(main)
