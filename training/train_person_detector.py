"""Train the embedded default person detector (Ultralytics YOLO, one class) on synthetic SVGSA24-style frames.

Renders seeded synthetic scenes into dataset-identical 256x256 letterboxed perspective frames with person boxes
(an Ultralytics dataset under ``OUT/data``, outside the repository), trains a small YOLO from a model YAML
(random initialisation, CPU, offline), scores it on held-out scenes (AP50, recall at score > 0.3) and,
optionally, on a synthetic SVGSA24 folder (share of labelled sound positions within ±40 px of a detected person),
and exports ``OUT/export/yolo-person-synthetic.{pt,json}`` (+ the model card)::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False YOLO_CONFIG_DIR=$(mktemp -d) \\
    python training/train_person_detector.py --out /tmp/person-detector --time-hours 0.6 \\
        --dataset svgsa24-synth/ --export-to savg_hub/assets/weights/yolo-person-synthetic \\
        --card-out model_cards/yolo-person-synthetic/README.md

``--measure WEIGHTS.pt`` skips data and training: it re-scores an existing model (held-out frames are re-rendered
from the same seeds) and rewrites the export record and card.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="work folder (dataset, runs, export); outside the repo")
    parser.add_argument("--config", type=Path, help="a train_config.json to start from (flags override it)")
    parser.add_argument("--seed", type=int, help="data seed")
    parser.add_argument("--train-scenes", type=int)
    parser.add_argument("--val-scenes", type=int)
    parser.add_argument("--frames-per-scene", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--time-hours", type=float, help="training budget; Ultralytics fits the epochs to it")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--width", type=float, help="model width multiple")
    parser.add_argument("--depth", type=float, help="model depth multiple")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads")
    parser.add_argument("--dataset", type=Path, help="synthetic SVGSA24 folder for the label-hit score")
    parser.add_argument("--dataset-split", default="eval")
    parser.add_argument("--max-clips", type=int, help="score at most this many dataset clips")
    parser.add_argument("--measure", type=Path, help="score this .pt instead of training")
    parser.add_argument("--export-to", type=Path, help="also copy the .pt and .json here (the package assets)")
    parser.add_argument("--card-out", type=Path, help="write the model card here")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace):
    from savg_hub.training.detector import PersonDetectorConfig

    config = (PersonDetectorConfig.from_dict(json.loads(args.config.read_text())) if args.config
              else PersonDetectorConfig())
    overrides = {
        ("data", "seed"): args.seed,
        ("data", "train_scenes"): args.train_scenes,
        ("data", "val_scenes"): args.val_scenes,
        ("data", "frames_per_scene"): args.frames_per_scene,
        ("train", "epochs"): args.epochs,
        ("train", "time_hours"): args.time_hours,
        ("train", "batch"): args.batch,
        ("model", "width"): args.width,
        ("model", "depth"): args.depth,
    }
    for (part, key), value in overrides.items():
        if value is not None:
            setattr(getattr(config, part), key, value)
    return config.validate()


def _versions() -> dict[str, str]:
    import torch
    import ultralytics

    import savg_hub

    return {"savg_hub": savg_hub.__version__, "ultralytics": ultralytics.__version__, "torch": torch.__version__,
            "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    for key, value in {"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False"}.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("train_person_detector")

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    from savg_hub.data.card import git_revision
    from savg_hub.evaluation.detectors import UltralyticsDetector
    from savg_hub.training.detector import (
        MODEL_NAME,
        HeldOutSet,
        above,
        build_person_dataset,
        dataset_ground_truth,
        detect_dataset,
        detection_scores,
        export_person_detector,
        label_hit_fraction,
        measure_held_out,
        render_person_detector_card,
        render_scene_frames,
        sample_views,
        scene_seed,
        train_person_detector,
    )
    from savg_hub.utils.files import atomic_write_text

    config = build_config(args)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "train_config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    command = "python training/train_person_detector.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    record: dict = {"name": MODEL_NAME, "config": config.to_dict(), "command": command,
                    "git_revision": git_revision(), "versions": _versions()}

    if args.measure is None:
        started = time.perf_counter()
        data_yaml, held_out, counts = build_person_dataset(out / "data", config.data, progress=True)
        record["counts"] = counts
        record["data_seconds"] = round(time.perf_counter() - started, 1)
        log.info("dataset %s in %.0f s", counts, record["data_seconds"])
        started = time.perf_counter()
        best = train_person_detector(data_yaml, out / "runs", config)
        record["training_seconds"] = round(time.perf_counter() - started, 1)
        results = (best.parent.parent / "results.csv").read_text().strip().splitlines()
        record["epochs_run"] = len(results) - 1
        atomic_write_text(out / "train_config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    else:
        best = args.measure
        # keep what the training run recorded (its export record in OUT, else the one at --export-to)
        candidates = [out / "export" / f"{MODEL_NAME}.json"]
        if args.export_to is not None:
            candidates.append(args.export_to / f"{MODEL_NAME}.json")
        previous = next((p for p in candidates if p.is_file()), None)
        if previous is not None:
            old = json.loads(previous.read_text())
            for key in ("counts", "data_seconds", "training_seconds", "epochs_run", "command"):
                if key in old:
                    record[key] = old[key]
        record["measure_command"] = command
        # the held-out frames again, from the same seeds
        import numpy as np

        from savg_hub.data.synthetic import SyntheticConfig, sample_scene

        synth = SyntheticConfig(duration=config.data.duration, video_width=config.data.equirect_width,
                                video_height=config.data.equirect_width // 2)
        frames, boxes = [], []
        for index in range(config.data.val_scenes):
            seed = scene_seed(config.data.seed, 1, index)
            scene = sample_scene(seed, synth)
            views = sample_views(scene, config.data.frames_per_scene, np.random.default_rng(seed), config.data)
            f, b = render_scene_frames(scene, views, config.data)
            frames.append(f)
            boxes += [np.array([x.xyxy for x in fb], np.float32).reshape(-1, 4) for fb in b]
        held_out = HeldOutSet(np.concatenate(frames), boxes)

    record["held_out"] = measure_held_out(best, held_out, config)
    log.info("held-out: %s", record["held_out"])
    if args.dataset is not None:
        started = time.perf_counter()
        detector = UltralyticsDetector(best, conf=0.001, imgsz=config.train.imgsz)
        detections, labels = detect_dataset(detector, args.dataset, args.dataset_split, max_clips=args.max_clips,
                                            progress=True)
        scores = label_hit_fraction(above(detections, config.conf), labels)
        record["dataset"] = {"folder": args.dataset.name, "split": args.dataset_split, **scores}
        try:  # synthetic folders: the people's true boxes in the dataset's own frames
            truth, _ = dataset_ground_truth(args.dataset, args.dataset_split, max_clips=args.max_clips)
        except ValueError as error:
            log.info("no ground truth for %s: %s", args.dataset, error)
        else:
            record["dataset"]["ground_truth_fraction"] = label_hit_fraction(truth, labels)["fraction"]
            record["dataset"]["frames"] = detection_scores(
                [f for clip in detections for f in clip], [g[:, :4] for clip in truth for g in clip],
                iou=config.match_iou, conf=config.conf)
        record["dataset"]["seconds"] = round(time.perf_counter() - started, 1)
        log.info("dataset: %s", record["dataset"])
    exported = export_person_detector(best, out / "export", record)
    final = json.loads((out / "export" / f"{MODEL_NAME}.json").read_text())
    atomic_write_text(out / "export" / "README.md", render_person_detector_card(final))
    if args.export_to is not None:
        export_person_detector(exported, args.export_to, record)
    if args.card_out is not None:
        atomic_write_text(args.card_out, render_person_detector_card(final))
    log.info("exported %s (%.1f MB)", exported, exported.stat().st_size / 1e6)
    print(json.dumps({k: final[k] for k in ("held_out", "dataset", "file") if k in final}, indent=2))


if __name__ == "__main__":
    main()
