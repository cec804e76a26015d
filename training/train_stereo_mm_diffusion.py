#!/usr/bin/env python
"""Train Stereo MM-Diffusion (the SAVGBench joint audio-video model) on an SVGSA24 dataset folder.

    accelerate launch training/train_stereo_mm_diffusion.py --config training/configs/stereo_mm_diffusion_official.yaml \
        --dataset svgsa24/
    python training/train_stereo_mm_diffusion.py --config training/configs/stereo_mm_diffusion_tiny.yaml \
        --dataset demo-set/ --output-dir runs/mmdiff-tiny
    python training/train_stereo_mm_diffusion.py --config ... --output-dir runs/mmdiff-tiny --resume

Output folder::

    checkpoints/checkpoint-<step>/   Accelerate state (model, optimizer, grad scaler, RNG, EMA, step) + the config
    pipeline/                        the EMA model as a StereoMMDiffusionPipeline folder (save_pretrained; loads with
                                     DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)), README.md
                                     model card, training_config.{json,yaml}, training.json
    training_config.{json,yaml}      the typed config of the run

The recipe and every knob are in :class:`savg_hub.training.diffusion.StereoMMDiffusionTrainingConfig`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCRIPT = "training/train_stereo_mm_diffusion.py"


def parse_args(argv: list[str] | None = None, description: str = __doc__) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="training config (.yaml or .json)")
    parser.add_argument("--output-dir", type=Path, help="run folder (default: runs/<config name>)")
    parser.add_argument("--dataset", help="SVGSA24 dataset folder (overrides the config's `dataset`)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    parser.add_argument("--max-steps", type=int, help="override max_steps")
    parser.add_argument("--init-from", help="start from these weights (overrides the config's `init_from`: a model "
                        "folder or a pipeline folder holding it)")
    parser.add_argument("--name", help="weights name used in the model card (default: the output folder's name)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace, config_class):
    config = config_class.load(args.config)
    changes: dict[str, Any] = {}
    if args.dataset:
        changes["dataset"] = args.dataset
    if args.max_steps:
        changes["max_steps"] = args.max_steps
    if args.init_from:
        changes["init_from"] = args.init_from
    return config.replace(**changes) if changes else config


def finish(folder: Path, pipeline, config, run: dict[str, Any], kind: str, name: str, command: str) -> Path:
    """Save ``pipeline`` to ``folder`` with its model card, the config and the run summary."""
    from savg_hub.pipelines.cards import render_training_card
    from savg_hub.training.diffusion import write_config
    from savg_hub.utils.files import atomic_write_text

    pipeline.save_pretrained(folder)
    write_config(folder, config)
    summary = {key: value for key, value in run.items() if key != "final"} | {"command": command}
    atomic_write_text(folder / "training.json", json.dumps(summary, indent=2) + "\n")
    dataset_name = None
    license = "other"
    try:
        from savg_hub.data.hf_dataset import DatasetInfo

        info = DatasetInfo.load(config.dataset_path())
        dataset_name, license = info.name, (info.license or "other")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    card = render_training_card(kind, config.to_dict(), run, name=name, dataset_name=dataset_name,
                                train_command=command, license=license)
    atomic_write_text(folder / "README.md", card)
    logger.info("saved the EMA pipeline to %s", folder)
    return folder


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: parse ``argv``, load the config, train, save the pipeline. Returns the run summary."""
    from savg_hub.training.diffusion import StereoMMDiffusionTrainingConfig, train_diffusion

    args = parse_args(argv)
    config = load_config(args, StereoMMDiffusionTrainingConfig)
    output_dir = args.output_dir or Path("runs") / args.config.stem
    command = " ".join(["python", SCRIPT, *(sys.argv[1:] if argv is None else argv)])
    name = args.name or Path(output_dir).resolve().name

    def on_finish(unet, run: dict[str, Any]) -> str:
        from savg_hub.media.clip import SVGSA24_CLIP
        from savg_hub.pipelines import StereoMMDiffusionPipeline, stereo_mm_diffusion_dpmsolver_scheduler

        scheduler = stereo_mm_diffusion_dpmsolver_scheduler(config.num_train_timesteps, config.beta_start,
                                                            config.beta_end, config.prediction_type)
        pipeline = StereoMMDiffusionPipeline(unet=unet, scheduler=scheduler, fps=SVGSA24_CLIP.fps,
                                             sample_rate=SVGSA24_CLIP.sample_rate)
        return str(finish(Path(output_dir) / "pipeline", pipeline, config, run, config.kind, name, command))

    return train_diffusion(config, output_dir, resume=args.resume, progress=not args.no_progress,
                           on_finish=on_finish)


if __name__ == "__main__":
    from savg_hub.training.script import run_script

    run_script(main)
