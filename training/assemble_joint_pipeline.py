#!/usr/bin/env python
"""Assemble a SAVGBenchJointPipeline from a trained base stage and a trained SR stage, with its model card.

    python training/assemble_joint_pipeline.py --base runs/mmdiff-embedded/pipeline --sr runs/sr-embedded/pipeline \
        --out savg_hub/assets/weights/savgbench-joint-synthetic
    # after `savg generate` + `savg evaluate` of its samples and of the ground truth, put the scores in the card:
    python training/assemble_joint_pipeline.py --card-only --out savg_hub/assets/weights/savgbench-joint-synthetic \
        --ground-truth gt-eval/results.json --samples samples-eval/results.json \
        --generation samples/generation.json --card-copy model_cards/savgbench-joint-synthetic/README.md

``--base`` / ``--sr`` are the ``pipeline/`` folders the training scripts write (a StereoMMDiffusionPipeline and a
SuperResolutionPipeline); their typed configs and run summaries are copied to ``training/base`` and
``training/sr`` inside the output folder, which the card is rendered from. A run that started from another run's
weights (``init_from``: a pipeline folder with its own ``training.json``) brings that run's records along, in
``training/<stage>/init/`` (and so on down the chain), so the card lists every phase.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

STAGE_FILES = ("training_config.json", "training_config.yaml", "training.json", "README.md")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="base-stage pipeline folder (train_stereo_mm_diffusion.py)")
    parser.add_argument("--sr", type=Path, help="SR-stage pipeline folder (train_super_resolution.py)")
    parser.add_argument("--out", type=Path, required=True, help="joint pipeline folder to write (or update)")
    parser.add_argument("--name", help="name in the card (default: the output folder's name)")
    parser.add_argument("--card-only", action="store_true", help="only re-render README.md of --out")
    parser.add_argument("--ground-truth", type=Path, help="results.json of `savg evaluate` on the dataset's clips")
    parser.add_argument("--samples", type=Path, help="results.json of `savg evaluate` on the pipeline's samples")
    parser.add_argument("--generation", type=Path, help="generation.json written by `savg generate`")
    parser.add_argument("--card-copy", type=Path, help="also write the card here (e.g. model_cards/<name>/README.md)")
    parser.add_argument("--note", action="append", default=[], help="an observation on the samples for the card's "
                                                                     "known issues (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    return parser.parse_args(argv)


def _spatial(path: Path | None) -> dict | None:
    if path is None:
        return None
    sections = json.loads(path.read_text()).get("sections", {})
    if "spatial_av_align" not in sections:
        raise ValueError(f"{path} has no spatial_av_align section (run `savg evaluate ... --metrics spatial`)")
    return sections["spatial_av_align"]


def _evaluator(path: Path | None) -> str:
    if path is None:
        return ""
    weights = json.loads(path.read_text()).get("weights", [])
    names = [f"{w.get('role')}: {w.get('name') or w.get('spec')}" for w in weights if w.get("role") in ("seld", "detector")]
    return ", ".join(names)


def _stage(folder: Path) -> dict:
    """A stage's records: ``{"config", "run", "command", "init"}``, ``init`` being the same for the run it started
    from (``None`` when it started from scratch or that run's records are not there)."""
    run = json.loads((folder / "training.json").read_text())
    config = json.loads((folder / "training_config.json").read_text())
    init = _stage(folder / "init") if (folder / "init" / "training.json").is_file() else None
    return {"config": config, "run": run, "command": run.get("command", ""), "init": init}


def _init_records(folder: Path, kind: str) -> Path | None:
    """The pipeline folder holding the records of the run that ``folder``'s run started from (its ``init_from``),
    or ``None`` when it started from scratch or those records are not there."""
    from savg_hub.training.diffusion import resolve_init_folder

    source = json.loads((folder / "training_config.json").read_text()).get("init_from")
    if not source:
        return None
    try:
        model_folder = resolve_init_folder(source, kind)
    except FileNotFoundError:
        return None
    for candidate in (model_folder, model_folder.parent):  # a model saved with its records, or a pipeline's unet/
        if (candidate / "training.json").is_file() and (candidate / "training_config.json").is_file():
            return candidate
    return None


def _copy_records(folder: Path, target: Path, kind: str, depth: int = 0) -> None:
    if depth > 8:
        raise ValueError(f"init_from chain of {folder} is longer than 8 runs (a cycle?)")
    target.mkdir(parents=True)
    for name in STAGE_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, target / name)
    source = _init_records(folder, kind)
    if source is not None:
        _copy_records(source, target / "init", kind, depth + 1)


def assemble(base: Path, sr: Path, out: Path, overwrite: bool = False) -> Path:
    """Write the joint pipeline folder ``out`` (atomically) from the two stage folders."""
    from savg_hub.pipelines import SAVGBenchJointPipeline, StereoMMDiffusionPipeline, SuperResolutionPipeline
    from savg_hub.utils.files import atomic_dir

    for folder in (base, sr):
        missing = [name for name in ("model_index.json", "training.json", "training_config.json")
                   if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} lacks {missing}; expected a pipeline/ folder of a training run")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    base_pipe = StereoMMDiffusionPipeline.from_pretrained(str(base))
    sr_pipe = SuperResolutionPipeline.from_pretrained(str(sr))
    joint = SAVGBenchJointPipeline(unet=base_pipe.unet, scheduler=base_pipe.scheduler, sr_unet=sr_pipe.unet,
                                   sr_scheduler=sr_pipe.scheduler, fps=base_pipe.config.fps,
                                   sample_rate=base_pipe.config.sample_rate)
    with atomic_dir(out) as staging:
        joint.save_pretrained(staging)
        (Path(staging) / "training").mkdir()
        for stage, folder, kind in (("base", base, "stereo_mm_diffusion"), ("sr", sr, "super_resolution")):
            _copy_records(folder, Path(staging) / "training" / stage, kind)
    return out


def write_card(out: Path, name: str, ground_truth: Path | None, samples: Path | None, generation: Path | None,
               copy: Path | None, notes: list[str] | None = None) -> str:
    """Render ``out/README.md`` from the stage records inside ``out`` and the given score files."""
    from savg_hub.pipelines.cards import render_embedded_joint_card
    from savg_hub.utils.files import atomic_write_text

    card = render_embedded_joint_card(
        _stage(out / "training" / "base"), _stage(out / "training" / "sr"), name=name,
        ground_truth=_spatial(ground_truth), samples=_spatial(samples),
        generation=json.loads(generation.read_text()) if generation else None,
        evaluator=_evaluator(samples), notes=notes or ())
    atomic_write_text(out / "README.md", card)
    if copy is not None:
        atomic_write_text(copy, card)
    return card


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    if not args.card_only:
        if args.base is None or args.sr is None:
            raise SystemExit("--base and --sr are needed (or --card-only)")
        assemble(args.base, args.sr, args.out, overwrite=args.overwrite)
    write_card(args.out, args.name or args.out.resolve().name, args.ground_truth, args.samples, args.generation,
               args.card_copy, args.note)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
