#!/usr/bin/env python
"""Train the stereo SELD network (the Spatial AV-Align sound localiser) on an SVGSA24 dataset folder.

    accelerate launch training/train_seld.py --config training/configs/seld_official.yaml --dataset svgsa24/
    python training/train_seld.py --config training/configs/seld_synthetic_small.yaml --output-dir runs/seld-small
    python training/train_seld.py --config ... --output-dir runs/seld-small --resume   # continue the last checkpoint

Output folder::

    checkpoints/checkpoint-<step>/   Accelerate state (model, optimizer, RNG, SWA model, step) + the config
    model/                           final network (SWA average with re-estimated BatchNorm when SWA ran),
                                     ``save_pretrained`` format, + the config as json/yaml
    evaluation.json                  DCASE-style scores of the final network on ``eval_split`` (official inference)
    eval_history.jsonl               periodic evaluations (``eval_every``; a copy of the network with its
                                     BatchNorm statistics re-estimated as for the final one)
    training_config.{json,yaml}      the typed config of the run

The recipe and every knob are in :class:`savg_hub.training.seld.SELDTrainingConfig`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from savg_hub.training.checkpoints import TrainerState, list_checkpoints, save_checkpoint, write_config
from savg_hub.utils.files import atomic_dir

logger = logging.getLogger("train_seld")



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="training config (.yaml or .json)")
    parser.add_argument("--output-dir", type=Path, help="run folder (default: runs/<config name>)")
    parser.add_argument("--dataset", help="SVGSA24 dataset folder (overrides the config's `dataset`)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    parser.add_argument("--max-steps", type=int, help="override max_steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--evaluate", type=Path, metavar="WEIGHTS",
                        help="do not train: score a save_pretrained folder on the config's eval split "
                             "(whole split) and write <output-dir>/evaluation.json")
    parser.add_argument("--model-card", type=Path, metavar="README",
                        help="with --evaluate: also render a model card from the run folder's training config "
                             "(--run-dir) and this evaluation")
    parser.add_argument("--run-dir", type=Path, help="training run whose evaluation.json/training_config.json "
                                                     "describe the evaluated weights (for --model-card)")
    parser.add_argument("--card-name", default="stereo-seld-synthetic", help="weights name used in the card")
    parser.add_argument("--card-note", help="an extra sentence for the card's training section")
    return parser.parse_args(argv)


def save_model(model, folder: Path, config) -> Path:
    """``save_pretrained`` + config into ``folder`` (written aside, then renamed)."""
    with atomic_dir(folder) as work:
        model.save_pretrained(str(work))
        write_config(work, config)
    return folder


def _cycle(loader) -> Iterator[dict]:
    while True:
        yield from loader


def _provenance(folder: Path) -> dict[str, Any]:
    import importlib.metadata

    from savg_hub import __version__
    from savg_hub.data.card import git_revision
    from savg_hub.weights import file_sha256

    versions = {}
    for package in ("torch", "diffusers", "accelerate", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"savg_hub_version": __version__, "git_revision": git_revision(), "packages": versions,
            "weights_sha256": file_sha256(folder)}


def train(config, output_dir: Path, *, resume: bool = False, progress: bool = True,
          command: str | None = None) -> dict[str, Any]:
    """Run (or continue) a training run; returns the final evaluation dict (also written to evaluation.json)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from torch.optim.swa_utils import AveragedModel
    from tqdm.auto import tqdm

    from savg_hub.training.seld import (
        SELDCropDataset,
        evaluate_seld,
        seld_learning_rate,
        seld_loss,
        swa_update_due,
        update_batch_norm,
    )
    from savg_hub.utils.files import atomic_write_text

    output_dir = Path(output_dir)
    dataset_dir = config.dataset_path()
    accelerator = Accelerator(mixed_precision=config.mixed_precision,
                              project_config=ProjectConfiguration(project_dir=str(output_dir)))
    set_seed(config.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_config(output_dir, config)

    dataset = SELDCropDataset(dataset_dir, config.train_split, config.crop_frames, config.train_stft_center,
                              config.max_train_clips, config.model.class_num, config.swap_probability)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                                         drop_last=len(dataset) >= config.batch_size,
                                         num_workers=config.num_workers)
    model = config.model.build()
    optimizer = torch.optim.Adam(model.parameters(), lr=seld_learning_rate(0, config),
                                 weight_decay=config.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    swa_model = AveragedModel(accelerator.unwrap_model(model))
    state = TrainerState()
    accelerator.register_for_checkpointing(state, swa_model)

    if resume:
        found = list_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint under {output_dir / 'checkpoints'}")
        step, folder = found[-1]
        accelerator.load_state(str(folder))
        logger.info("resumed from %s (step %d)", folder, state.step)
    elif list_checkpoints(output_dir):
        raise FileExistsError(f"{output_dir} already holds checkpoints; pass --resume or another --output-dir")

    batches = _cycle(loader)
    history_path = output_dir / "eval_history.jsonl"
    history = history_path.read_text().splitlines() if (resume and history_path.is_file()) else []
    bar = tqdm(total=config.max_steps, initial=state.step, desc="train SELD", unit="it",
               disable=not progress or not accelerator.is_main_process, dynamic_ncols=True)
    session_start = time.perf_counter()
    elapsed_before = state.elapsed
    model.train()
    running = None
    while state.step < config.max_steps:
        lr = seld_learning_rate(state.step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(batches)
        with accelerator.autocast():
            output = model(batch["features"])
        loss, parts = seld_loss(output.sed_logits, output.doa, batch["activity"], batch["x"], batch["mask"],
                                config.sed_loss_weight, config.doa_loss_weight)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        state.step += 1
        state.elapsed = elapsed_before + time.perf_counter() - session_start
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {state.step}")
        running = value if running is None else 0.98 * running + 0.02 * value
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", sed=f"{parts['sed']:.3f}", doa=f"{parts['doa']:.4f}", lr=f"{lr:.2e}")
        if state.step % config.log_every == 0:
            logger.info("step %d loss %.5f (sed %.4f doa %.5f) lr %.3g", state.step, running, parts["sed"],
                        parts["doa"], lr)
        if swa_update_due(state.step, config):
            swa_model.update_parameters(accelerator.unwrap_model(model))
            logger.info("SWA: averaged the weights at step %d (%d models)", state.step, int(swa_model.n_averaged))
        if config.eval_every and state.step % config.eval_every == 0 and accelerator.is_main_process:
            # eval-mode BatchNorm needs statistics of the current weights: the running averages kept during
            # training lag behind them badly, so a copy gets the same re-estimation as the final network
            probe = copy.deepcopy(accelerator.unwrap_model(model))
            update_batch_norm(probe, (next(batches)["features"] for _ in range(config.bn_update_batches)))
            result = evaluate_seld(probe, dataset_dir, config.eval_split,
                                   device=accelerator.device, batch_size=config.eval_batch_size,
                                   max_clips=config.eval_max_clips, x_tolerance=config.x_tolerance)
            model.train()
            f_scores = {name: round(s["f_score"], 4) for name, s in result["per_class"].items()}
            logger.info("step %d eval (%d clips): F %s, position error %.1f px", state.step, result["num_clips"],
                        f_scores, result["overall"]["position_error_px"])
            history.append(json.dumps({"step": state.step, "elapsed_s": state.elapsed, "f_score": f_scores,
                                       "location_independent_f_score": {
                                           n: round(s["location_independent_f_score"], 4)
                                           for n, s in result["per_class"].items()},
                                       "position_error_px": result["overall"]["position_error_px"]}))
            atomic_write_text(history_path, "\n".join(history) + "\n")
        if state.step % config.checkpoint_every == 0 or state.step == config.max_steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_checkpoint(accelerator, output_dir, state.step, config)
    bar.close()

    # final network: the SWA average with BatchNorm statistics re-estimated on training batches
    final = accelerator.unwrap_model(model)
    averaged = int(swa_model.n_averaged)
    if averaged:
        final = swa_model.module
        used = update_batch_norm(final, (next(batches)["features"] for _ in range(config.bn_update_batches)))
        logger.info("SWA model: %d averaged weights, BatchNorm re-estimated on %d batches", averaged, used)
    final.eval()
    result: dict[str, Any] = {}
    if accelerator.is_main_process:
        model_dir = save_model(final, output_dir / "model", config)
        result = evaluate_seld(final, dataset_dir, config.eval_split, device=accelerator.device,
                               batch_size=config.eval_batch_size, max_clips=config.final_eval_max_clips,
                               x_tolerance=config.x_tolerance)
        result.update(
            step=state.step,
            swa_models_averaged=averaged,
            training_seconds=state.elapsed,
            num_parameters=sum(p.numel() for p in final.parameters()),
            train_clips=len(dataset),
            command=command,
            **_provenance(model_dir),
        )
        atomic_write_text(output_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")
        f_scores = {name: round(s["f_score"], 4) for name, s in result["per_class"].items()}
        logger.info("final (%d clips of %s): F %s, position error %.2f px", result["num_clips"], config.eval_split,
                    f_scores, result["overall"]["position_error_px"])
    accelerator.end_training()
    return result


def evaluate_only(config, weights: Path, output_dir: Path, arguments: list[str]) -> dict[str, Any]:
    """Score ``weights`` on the whole ``eval_split`` of the config's dataset; write ``evaluation.json``."""
    import torch

    from savg_hub.models.stereo_seld import StereoSELDModel
    from savg_hub.training.seld import evaluate_seld
    from savg_hub.utils.files import atomic_write_text

    model = StereoSELDModel.from_pretrained(str(weights))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = evaluate_seld(model, config.dataset_path(), config.eval_split, device=device,
                           batch_size=config.eval_batch_size, x_tolerance=config.x_tolerance)
    kept, skip = [], False
    for argument in arguments:  # the card options do not change the measurement
        if skip:
            skip = False
        elif argument.split("=")[0] in ("--model-card", "--run-dir", "--card-name", "--card-note"):
            skip = "=" not in argument
        else:
            kept.append(argument)
    result.update(weights=str(weights), num_parameters=sum(p.numel() for p in model.parameters()),
                  command=" ".join(["python", "training/train_seld.py", *kept]), **_provenance(weights))
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")
    f_scores = {name: round(s["f_score"], 4) for name, s in result["per_class"].items()}
    logger.info("%s on %d clips of %s: F %s, position error %.2f px", weights, result["num_clips"],
                config.eval_split, f_scores, result["overall"]["position_error_px"])
    return result


def write_card(path: Path, evaluation: dict[str, Any], run_dir: Path, name: str, note: str | None = None) -> Path:
    """Render the model card of ``name`` from a training run folder and a measured evaluation."""
    from savg_hub.data.hf_dataset import DatasetInfo
    from savg_hub.training.card import render_seld_model_card
    from savg_hub.training.seld import SELDTrainingConfig
    from savg_hub.utils.files import atomic_write_text

    config = SELDTrainingConfig.from_dict(json.loads((run_dir / "training_config.json").read_text()))
    trained = json.loads((run_dir / "evaluation.json").read_text())
    merged = evaluation | {key: trained[key] for key in
                           ("step", "swa_models_averaged", "training_seconds", "train_clips") if key in trained}
    dataset = config.dataset_path()
    info = DatasetInfo.load(dataset) if (dataset / "meta" / "info.json").is_file() else None
    weights = Path(evaluation["weights"])
    safetensors = sorted(weights.glob("*.safetensors"))
    # machine-specific folders are shown by name (the card says how the dataset is built)
    places = {str(dataset.resolve()): dataset.name, str(run_dir.resolve().parent): "runs"}
    places |= {str(path): short for path, short in ((dataset, dataset.name), (run_dir.parent, "runs"))
               if Path(path).is_absolute()}

    def portable(command: str) -> str:
        for long, short in sorted(places.items(), key=lambda item: -len(item[0])):
            command = command.replace(long, short)
        return "SAVG_TORCH_THREADS=1 OMP_NUM_THREADS=1 " + command

    text = render_seld_model_card(
        config, merged, name=name, dataset_info=None if info is None else json.loads(info.to_json()),
        train_command=portable(trained.get("command") or "python training/train_seld.py --config <config>"),
        eval_command=portable(evaluation["command"]),
        model_bytes=safetensors[0].stat().st_size if safetensors else None,
        training_note=note,
    )
    return atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: parse ``argv``, load the config, train. Returns the final evaluation."""
    from savg_hub.training.seld import SELDTrainingConfig

    args = parse_args(argv)
    config = SELDTrainingConfig.load(args.config)
    changes = {}
    if args.dataset:
        changes["dataset"] = args.dataset
    if args.max_steps:
        changes["max_steps"] = args.max_steps
    if changes:
        config = SELDTrainingConfig.from_dict(config.to_dict() | changes)
    output_dir = args.output_dir or Path("runs") / args.config.stem
    arguments = list(sys.argv[1:] if argv is None else argv)
    if args.evaluate is not None:
        result = evaluate_only(config, args.evaluate, output_dir, arguments)
        if args.model_card is not None:
            if args.run_dir is None:
                raise ValueError("--model-card needs --run-dir (the training run of the evaluated weights)")
            write_card(args.model_card, result, args.run_dir, args.card_name, args.card_note)
        return result
    if args.model_card is not None:
        raise ValueError("--model-card is only used with --evaluate WEIGHTS")
    return train(config, output_dir, resume=args.resume, progress=not args.no_progress,
                 command=" ".join(["python", "training/train_seld.py", *arguments]))


if __name__ == "__main__":
    from savg_hub.training.script import run_script

    run_script(main)
