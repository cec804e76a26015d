"""Training data, training and scoring of the synthetic-set person detector (an Ultralytics YOLO model).

Frames are made exactly as SVGSA24 dataset frames are: the synthetic 360° video frame is rendered, goes through
an H.264 round trip at the generator's settings, is resampled to the 100° perspective view by the builder's
:class:`~savg_hub.geometry.PerspectiveRenderer`, letterboxed with the black bars, and goes through the builder's
H.264 clip encoding. Boxes come from the scene's id mask through the same resampling
(:mod:`savg_hub.data.synthetic.boxes`). ``training/train_person_detector.py`` drives it::

    python training/train_person_detector.py --out /tmp/person-det --train-scenes 160 --epochs 30

Ultralytics is an optional dependency (AGPL-3.0), imported inside the functions that need it. Nothing here
downloads anything: models are built from a YAML, and training runs with ``amp=False`` (no AMP check model) and
``plots=False`` (no font).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from savg_hub.utils.files import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

PERSON_NAMES = {0: "person"}
"""Class names of the detector: one class, COCO's id 0 (so ``UltralyticsDetector(person_class=0)`` works)."""


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------


@dataclass
class PersonDataConfig:
    """Which synthetic frames the detector sees.

    Args:
        seed: seed of the scene seeds (distinct from the synthetic SVGSA24 build's seeds by construction: scene
            seeds are ``SeedSequence([seed, 0x9E75, split, k])``).
        train_scenes: scenes rendered for training.
        val_scenes: held-out scenes for validation and the reported scores.
        frames_per_scene: perspective frames per scene (random times and yaws).
        person_yaw_fraction: share of frames whose yaw is aimed near a person (the dataset's curation keeps
            views with the sound sources on screen); the rest look anywhere.
        yaw_jitter_deg: largest offset of an aimed yaw from the person's azimuth, degrees.
        duration: seconds per scene (walking paths depend on it; the synthetic build uses 30).
        equirect_width: 360° video width in pixels (the synthetic build: 960).
        equirect_crf: x264 CRF of the 360° round trip (the generator's default, 23); ``None`` = no round trip.
        clip_crf: x264 CRF of the clip round trip (the builder's default, 18); ``None`` = no round trip.
        min_pixels: people with fewer visible pixels get no box (slivers at the border).
    """

    seed: int = 0
    train_scenes: int = 160
    val_scenes: int = 24
    frames_per_scene: int = 12
    person_yaw_fraction: float = 0.8
    yaw_jitter_deg: float = 55.0
    duration: float = 30.0
    equirect_width: int = 960
    equirect_crf: int | None = 23
    clip_crf: int | None = 18
    min_pixels: int = 30

    def validate(self) -> None:
        """Raise ValueError naming a bad value."""
        for name in ("train_scenes", "val_scenes", "frames_per_scene"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0.0 <= self.person_yaw_fraction <= 1.0:
            raise ValueError(f"person_yaw_fraction must be in [0, 1]; got {self.person_yaw_fraction}")
        if self.equirect_width < 64 or self.equirect_width % 4:
            raise ValueError(f"equirect_width must be a multiple of 4 and >= 64; got {self.equirect_width}")
        if self.min_pixels < 1:
            raise ValueError(f"min_pixels must be >= 1; got {self.min_pixels}")


@dataclass
class PersonModelConfig:
    """The network: Ultralytics' YOLOv8 detection layout at a custom compound scale, one class.

    Args:
        base: Ultralytics model YAML the layout is read from (shipped inside the ultralytics package).
        depth: depth multiple (YOLOv8n: 0.33).
        width: width multiple (YOLOv8n: 0.25).
        max_channels: channel cap (YOLOv8n: 1024).
    """

    base: str = "yolov8.yaml"
    depth: float = 0.33
    width: float = 0.125
    max_channels: int = 1024

    def validate(self) -> None:
        if not (0 < self.depth <= 1.5 and 0 < self.width <= 1.5):
            raise ValueError(f"depth and width multiples must be in (0, 1.5]; got {self.depth}, {self.width}")
        if self.max_channels < 16:
            raise ValueError(f"max_channels must be >= 16; got {self.max_channels}")


@dataclass
class PersonTrainConfig:
    """Ultralytics training settings (CPU, offline).

    Args:
        epochs: training epochs.
        batch: images per batch.
        imgsz: training and inference size (the dataset frames are 256x256).
        lr0: initial learning rate.
        optimizer: Ultralytics optimizer name.
        mosaic: mosaic probability.
        close_mosaic: last epochs without mosaic.
        scale: random scale gain.
        translate: random translation fraction.
        fliplr: horizontal flip probability.
        workers: data-loader workers (0 = main process).
        seed: training seed.
        patience: early-stopping patience in epochs.
        time_hours: wall-clock budget of the training in hours; when set, Ultralytics fits the number of epochs
            to it after the first epoch (``epochs`` is then only the first guess).
    """

    epochs: int = 30
    batch: int = 16
    imgsz: int = 256
    lr0: float = 0.01
    optimizer: str = "SGD"
    mosaic: float = 0.5
    close_mosaic: int = 5
    scale: float = 0.3
    translate: float = 0.1
    fliplr: float = 0.5
    workers: int = 0
    seed: int = 0
    patience: int = 100
    time_hours: float | None = None

    def validate(self) -> None:
        if self.time_hours is not None and not 0 < self.time_hours <= 48:
            raise ValueError(f"time_hours must be in (0, 48]; got {self.time_hours}")
        if self.epochs < 1 or self.batch < 1:
            raise ValueError(f"epochs and batch must be >= 1; got {self.epochs}, {self.batch}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise ValueError(f"imgsz must be a multiple of 32; got {self.imgsz}")


@dataclass
class PersonDetectorConfig:
    """Everything of one person-detector training run (saved as ``train_config.json`` next to the model).

    Args:
        data: frames.
        model: network.
        train: optimisation.
        conf: score threshold of the reported recall (the official protocol keeps person boxes > 0.3).
        match_iou: IoU of a true positive in the reported scores.
    """

    data: PersonDataConfig = field(default_factory=PersonDataConfig)
    model: PersonModelConfig = field(default_factory=PersonModelConfig)
    train: PersonTrainConfig = field(default_factory=PersonTrainConfig)
    conf: float = 0.3
    match_iou: float = 0.5

    def validate(self) -> PersonDetectorConfig:
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if not 0.0 <= self.conf < 1.0:
            raise ValueError(f"conf must be in [0, 1); got {self.conf}")
        if not 0.0 < self.match_iou < 1.0:
            raise ValueError(f"match_iou must be in (0, 1); got {self.match_iou}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonDetectorConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        parts = {"data": PersonDataConfig, "model": PersonModelConfig, "train": PersonTrainConfig}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; expected {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in parts:
                sub_known = {f.name for f in fields(parts[key])}
                if set(value) - sub_known:
                    raise ValueError(f"unknown {key} config keys {sorted(set(value) - sub_known)}")
                kwargs[key] = parts[key](**value)
            else:
                kwargs[key] = value
        return cls(**kwargs).validate()


# ----------------------------------------------------------------------------------------------------------
# Frames and boxes
# ----------------------------------------------------------------------------------------------------------


def scene_seed(seed: int, split: int, index: int) -> int:
    """Scene seed of the ``index``-th scene of split ``split`` (0 train, 1 val) of a detector data set."""
    return int(np.random.SeedSequence([int(seed), 0x9E75, int(split), int(index)]).generate_state(1)[0])


def sample_views(scene, count: int, rng: np.random.Generator, config: PersonDataConfig) -> list[tuple[float, float]]:
    """``count`` random ``(time seconds, yaw degrees)`` of a scene: mostly aimed near a person, else anywhere.

    Times are multiples of the video frame period (1001/30000 s), as the builder picks source frames.
    """
    from savg_hub.geometry import wrap_azimuth

    period = Fraction(1001, 30000)
    last = int(config.duration / period) - 1
    out = []
    for _ in range(int(count)):
        time_s = float(int(rng.integers(0, last + 1)) * period)
        if scene.people and rng.random() < config.person_yaw_fraction:
            person = scene.people[int(rng.integers(len(scene.people)))]
            yaw = float(person.polar(time_s)[0]) + float(rng.uniform(-config.yaw_jitter_deg, config.yaw_jitter_deg))
        else:
            yaw = float(rng.uniform(-180.0, 180.0))
        out.append((time_s, float(wrap_azimuth(round(yaw, 1)))))
    return out


def _h264_round_trip(frames: np.ndarray, fps: Fraction, crf: int, preset: str) -> np.ndarray:
    """Encode ``uint8 (T, H, W, 3)`` frames to H.264 (yuv420p) and decode them back, as the data pipeline does."""
    from savg_hub.data.synthetic.video import StreamingVideoWriter
    from savg_hub.media.io import read_media

    with tempfile.TemporaryDirectory(prefix="savg-det-") as tmp:
        path = Path(tmp) / "frames.mp4"
        with StreamingVideoWriter(path, frames.shape[2], frames.shape[1], fps, crf=crf, preset=preset) as writer:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame))
        decoded = read_media(path, video=True, audio=False).video
    if decoded is None or decoded.shape != frames.shape:
        raise RuntimeError(f"H.264 round trip changed the frames: {frames.shape} -> "
                           f"{None if decoded is None else decoded.shape}")
    return decoded


def render_scene_frames(
    scene, views: Sequence[tuple[float, float]], config: PersonDataConfig | None = None, builder_config=None,
) -> tuple[np.ndarray, list[list]]:
    """Dataset-identical perspective frames of a synthetic scene and their person boxes.

    Args:
        scene: a :class:`~savg_hub.data.synthetic.SceneSpec`.
        views: ``(time seconds, yaw degrees)`` per frame.
        config: data settings (equirect size, codec round trips, minimum box size).
        builder_config: the SVGSA24 :class:`~savg_hub.data.builder.BuilderConfig` (view geometry).

    Returns:
        ``(frames uint8 (N, 256, 256, 3) RGB letterboxed, boxes)`` with ``boxes[i]`` the
        :class:`~savg_hub.data.synthetic.boxes.PersonBox` list of frame ``i``.
    """
    from savg_hub.data.builder import BuilderConfig
    from savg_hub.data.synthetic.boxes import PersonBoxRenderer, boxes_from_id_mask

    config = config or PersonDataConfig()
    builder_config = builder_config or BuilderConfig()
    if not views:
        raise ValueError("views is empty; give at least one (time, yaw)")
    renderer = PersonBoxRenderer(scene, config.equirect_width, config.equirect_width // 2)
    classes = {p.index: p.cls for p in scene.people}
    equirects, id_images = [], []
    for time_s, _ in views:
        frame, ids = renderer.render(time_s)
        equirects.append(frame)
        id_images.append(ids)
    equirect = np.stack(equirects)
    if config.equirect_crf is not None:
        equirect = _h264_round_trip(equirect, Fraction(30000, 1001), config.equirect_crf, "veryfast")
    pictures, boxes = [], []
    for (_, yaw), frame, ids in zip(views, equirect, id_images):
        view = builder_config.view(yaw)
        resample = renderer.perspective(view)
        pictures.append(view.letterbox(resample(frame)))
        boxes.append(boxes_from_id_mask(ids, view, resample, classes, min_pixels=config.min_pixels))
    frames = np.stack(pictures)
    if config.clip_crf is not None:
        frames = _h264_round_trip(frames, Fraction(int(builder_config.fps)), config.clip_crf,
                                  builder_config.video_preset)
    return frames, boxes


def yolo_label_lines(boxes: Sequence, width: int, height: int) -> list[str]:
    """Ultralytics label lines ``0 cx cy w h`` (normalised to ``[0, 1]``) of person boxes in a frame."""
    lines = []
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box.xyxy)
        x0, x1 = max(0.0, x0), min(float(width), x1)
        y0, y1 = max(0.0, y0), min(float(height), y1)
        if x1 <= x0 or y1 <= y0:
            continue
        lines.append(f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                     f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return lines


def write_yolo_split(root: str | os.PathLike, split: str, frames: np.ndarray, boxes: Sequence[Sequence],
                     prefix: str) -> int:
    """Write frames (PNG) and labels of one split in the Ultralytics layout ``ROOT/{images,labels}/<split>/``.

    Returns:
        The number of boxes written.
    """
    import cv2

    root = Path(root)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    total = 0
    for k, (frame, frame_boxes) in enumerate(zip(frames, boxes)):
        stem = f"{prefix}_{k:03d}"
        ok, png = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))
        if not ok:
            raise RuntimeError(f"could not encode {stem}.png")
        with atomic_path(root / "images" / split / f"{stem}.png") as tmp:
            tmp.write_bytes(png.tobytes())
        lines = yolo_label_lines(frame_boxes, frame.shape[1], frame.shape[0])
        atomic_write_text(root / "labels" / split / f"{stem}.txt", "".join(line + "\n" for line in lines))
        total += len(lines)
    return total


def write_dataset_yaml(root: str | os.PathLike) -> Path:
    """``ROOT/data.yaml`` for Ultralytics (absolute path, splits ``train``/``val``, one class ``person``)."""
    root = Path(root).resolve()
    text = (f"path: {json.dumps(str(root))}\ntrain: images/train\nval: images/val\n"
            f"names:\n  0: person\n")
    return atomic_write_text(root / "data.yaml", text)


@dataclass
class HeldOutSet:
    """Held-out frames kept in memory for scoring: ``frames uint8 (N, 256, 256, 3)``, ``boxes[i]`` float32
    ``(K_i, 4)`` ground truth."""

    frames: np.ndarray
    boxes: list[np.ndarray]


def build_person_dataset(root: str | os.PathLike, config: PersonDataConfig, *, builder_config=None,
                         progress: bool = False) -> tuple[Path, HeldOutSet, dict[str, int]]:
    """Render the train/val scenes into an Ultralytics dataset at ``root``.

    Returns:
        ``(data.yaml path, the validation frames and boxes, counts)`` with counts of images and boxes per split.
    """
    from tqdm.auto import tqdm

    from savg_hub.data.synthetic import SyntheticConfig, sample_scene

    config.validate()
    synth = SyntheticConfig(duration=config.duration, video_width=config.equirect_width,
                            video_height=config.equirect_width // 2)
    counts: dict[str, int] = {}
    held_frames, held_boxes = [], []
    for split_id, (split, num) in enumerate((("train", config.train_scenes), ("val", config.val_scenes))):
        images = boxes_total = 0
        for index in tqdm(range(num), desc=f"render {split}", disable=not progress):
            seed = scene_seed(config.seed, split_id, index)
            scene = sample_scene(seed, synth)
            rng = np.random.default_rng(seed)
            views = sample_views(scene, config.frames_per_scene, rng, config)
            frames, boxes = render_scene_frames(scene, views, config, builder_config)
            boxes_total += write_yolo_split(root, split, frames, boxes, f"s{split_id}_{index:04d}")
            images += len(frames)
            if split == "val":
                held_frames.append(frames)
                held_boxes += [np.array([b.xyxy for b in fb], np.float32).reshape(-1, 4) for fb in boxes]
        counts[f"{split}_images"], counts[f"{split}_boxes"] = images, boxes_total
    data_yaml = write_dataset_yaml(root)
    return data_yaml, HeldOutSet(np.concatenate(held_frames), held_boxes), counts


# ----------------------------------------------------------------------------------------------------------
# Model and training
# ----------------------------------------------------------------------------------------------------------


def write_model_yaml(path: str | os.PathLike, config: PersonModelConfig) -> Path:
    """A one-class model YAML: the layout of Ultralytics' ``config.base`` with one compound scale ``p``."""
    import yaml

    from savg_hub.evaluation.detectors import import_ultralytics

    ultralytics = import_ultralytics()

    config.validate()
    base = Path(ultralytics.__file__).parent / "cfg" / "models" / config.base.split("yolo")[-1][:2] / config.base
    if not base.is_file():
        found = list((Path(ultralytics.__file__).parent / "cfg" / "models").rglob(config.base))
        if not found:
            raise ValueError(f"model layout {config.base!r} not found in the ultralytics package")
        base = found[0]
    layout = yaml.safe_load(base.read_text())
    layout["nc"] = 1
    layout["scales"] = {"p": [float(config.depth), float(config.width), int(config.max_channels)]}
    layout["scale"] = "p"
    return atomic_write_text(path, yaml.safe_dump(layout, sort_keys=False))


def _offline_train_args(train: PersonTrainConfig) -> dict[str, Any]:
    extra: dict[str, Any] = {} if train.time_hours is None else {"time": float(train.time_hours)}
    return extra | {
        "epochs": int(train.epochs),
        "batch": int(train.batch),
        "imgsz": int(train.imgsz),
        "lr0": float(train.lr0),
        "optimizer": train.optimizer,
        "mosaic": float(train.mosaic),
        "close_mosaic": int(train.close_mosaic),
        "scale": float(train.scale),
        "translate": float(train.translate),
        "fliplr": float(train.fliplr),
        "workers": int(train.workers),
        "seed": int(train.seed),
        "patience": int(train.patience),
        "device": "cpu",
        "amp": False,  # the AMP check would download yolo11n.pt
        "plots": False,  # plots need Arial.ttf (a download)
        "pretrained": False,
        "deterministic": True,
        "cache": "ram",
        "exist_ok": True,
        "verbose": False,
    }


def train_person_detector(data_yaml: str | os.PathLike, out_dir: str | os.PathLike, config: PersonDetectorConfig,
                          *, name: str = "run") -> Path:
    """Train the model from scratch with Ultralytics; returns the best checkpoint (``.pt``, optimizer stripped).

    Args:
        data_yaml: an Ultralytics dataset YAML (:func:`write_dataset_yaml`).
        out_dir: folder of the run (``out_dir/name/weights/best.pt``).
        config: the run's settings.
    """
    from savg_hub.evaluation.detectors import import_ultralytics

    YOLO = import_ultralytics().YOLO
    config.validate()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    model_yaml = write_model_yaml(out_dir / "person_detector_model.yaml", config.model)
    model = YOLO(str(model_yaml), task="detect")
    started = time.perf_counter()
    model.train(data=str(data_yaml), project=str(out_dir), name=name, **_offline_train_args(config.train))
    logger.info("trained in %.0f s", time.perf_counter() - started)
    best = out_dir / name / "weights" / "best.pt"
    if not best.is_file():
        best = out_dir / name / "weights" / "last.pt"
    if not best.is_file():
        raise RuntimeError(f"Ultralytics wrote no checkpoint under {out_dir / name / 'weights'}")
    return best


# ----------------------------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------------------------


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of float ``(N, 4)`` and ``(M, 4)`` ``x0, y0, x1, y1`` boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def detection_scores(predictions: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray], *,
                     iou: float = 0.5, conf: float = 0.3) -> dict[str, float]:
    """AP at ``iou`` (all-point interpolation, VOC/COCO style, one class) and recall/precision at score > ``conf``.

    Args:
        predictions: per frame, float ``(K, 5)`` ``x0, y0, x1, y1, score`` (all scores: AP needs low ones).
        ground_truth: per frame, float ``(G, 4)``.

    Returns:
        ``{"ap50", "recall", "precision", "num_gt", "num_frames"}`` (``ap50`` keyed so for the default IoU).
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction frames for {len(ground_truth)} ground-truth frames")
    scores, hits = [], []
    num_gt = 0
    tp_conf = fp_conf = 0
    for pred, gt in zip(predictions, ground_truth):
        pred = np.asarray(pred, np.float64).reshape(-1, 5)
        gt = np.asarray(gt, np.float64).reshape(-1, 4)
        num_gt += len(gt)
        order = np.argsort(-pred[:, 4], kind="stable")
        pred = pred[order]
        matrix = box_iou(pred[:, :4], gt)
        taken = np.zeros(len(gt), bool)
        for k in range(len(pred)):
            hit = False
            if len(gt):
                candidates = np.where(taken, -1.0, matrix[k])
                best = int(np.argmax(candidates))
                if candidates[best] >= iou:
                    taken[best] = True
                    hit = True
            scores.append(pred[k, 4])
            hits.append(hit)
            if pred[k, 4] > conf:
                tp_conf += hit
                fp_conf += not hit
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits_sorted = np.asarray(hits, bool)[order] if hits else np.zeros(0, bool)
    tp = np.cumsum(hits_sorted)
    fp = np.cumsum(~hits_sorted)
    recall_curve = tp / max(num_gt, 1)
    precision_curve = tp / np.maximum(tp + fp, 1)
    mrec = np.concatenate([[0.0], recall_curve, [1.0]])
    mpre = np.concatenate([[1.0], precision_curve, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    ap = float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1])) if num_gt else float("nan")
    return {
        "ap50": ap,
        "recall": tp_conf / num_gt if num_gt else float("nan"),
        "precision": tp_conf / (tp_conf + fp_conf) if tp_conf + fp_conf else float("nan"),
        "num_gt": int(num_gt),
        "num_frames": len(predictions),
    }


def video_frame_of_label(label_frame: int, num_video_frames: int = 20) -> int:
    """Video frame of a 10-fps label frame, as the official matcher maps it: ``round(f * 0.4)``, clamped."""
    return min(int(np.round(label_frame / 10 * 4)), num_video_frames - 1)


def label_hit_fraction(detections: Sequence[Sequence[np.ndarray]], labels: Sequence[dict], *,
                       threshold_px: float = 40.0) -> dict[str, float]:
    """Share of labelled sound-source positions a perfect SELD would score against these person boxes.

    For each clip and label row (frame ``f``, ``x``), the row counts as hit when some box of video frames
    ``k - 1 .. k + 1`` (``k`` from :func:`video_frame_of_label`) overlaps ``[x - 40, x + 40]`` with the official
    integer truncation (``int(x1) >= int(x) - 40`` and ``int(x0) <= int(x) + 40``).

    Args:
        detections: per clip, per video frame, float ``(K, >= 4)`` boxes.
        labels: per clip, the dataset's ``labels`` dict (``frame``, ``x`` lists).

    Returns:
        ``{"fraction", "hits", "labels", "clips"}``.
    """
    if len(detections) != len(labels):
        raise ValueError(f"{len(detections)} clips of detections for {len(labels)} clips of labels")
    hits = total = 0
    for clip_boxes, clip_labels in zip(detections, labels):
        num = len(clip_boxes)
        for frame, x in zip(clip_labels["frame"], clip_labels["x"]):
            total += 1
            k = video_frame_of_label(int(frame), num)
            xi = int(x)
            for j in range(max(0, k - 1), min(num, k + 2)):
                b = np.asarray(clip_boxes[j], np.float64)
                if b.size == 0:
                    continue
                b = b.reshape(len(b), -1)
                if np.any((b[:, 2].astype(np.int64) >= xi - threshold_px)
                                     & (b[:, 0].astype(np.int64) <= xi + threshold_px)):
                    hits += 1
                    break
    return {"fraction": hits / total if total else float("nan"), "hits": hits, "labels": total,
            "clips": len(labels)}


def detect_dataset(detector, folder: str | os.PathLike, split: str = "eval", *, max_clips: int | None = None,
                   progress: bool = False) -> tuple[list[list[np.ndarray]], list[dict]]:
    """Run a :class:`~savg_hub.evaluation.detectors.PersonDetector` on every frame of a dataset folder's clips.

    Returns:
        ``(detections, labels)``: per clip, the detector's 20 ``(K, 5)`` arrays, and the clip's labels.
    """
    from tqdm.auto import tqdm

    from savg_hub.data.hf_dataset import DatasetFolder, example_to_clip

    dataset = DatasetFolder(folder)
    count = dataset.num_rows(split) if max_clips is None else min(max_clips, dataset.num_rows(split))
    detections, labels = [], []
    for index in tqdm(range(count), desc=f"detect {split}", disable=not progress):
        row = dataset.row(split, index)
        detections.append(detector.detect(example_to_clip(row).video))
        labels.append(row["labels"])
    return detections, labels


def above(detections: Sequence[Sequence[np.ndarray]], min_score: float) -> list[list[np.ndarray]]:
    """Per clip and frame, only the boxes with score > ``min_score`` (strict, as the official script)."""
    return [[np.asarray(b)[np.asarray(b)[:, 4] > min_score] for b in clip] for clip in detections]


def score_on_dataset(detector, folder: str | os.PathLike, split: str = "eval", *, max_clips: int | None = None,
                     progress: bool = False) -> dict[str, float]:
    """:func:`label_hit_fraction` of ``detector`` on an SVGSA24 dataset folder's split (every clip's 20 frames)."""
    detections, labels = detect_dataset(detector, folder, split, max_clips=max_clips, progress=progress)
    return label_hit_fraction(detections, labels)


def synthetic_scene_index(folder: str | os.PathLike) -> tuple[dict[str, Any], Any]:
    """Scene seeds of a synthetic SVGSA24 folder's recordings, from its ``meta/info.json`` provenance.

    Returns:
        ``({"<split>/<name>": scene seed}, SyntheticConfig)`` as :func:`~savg_hub.data.synthetic.generate_starss23`
        made them (default ``test_fraction``).

    Raises:
        ValueError: the folder was not built from synthetic scenes (no ``synthetic_seed`` provenance).
    """
    from savg_hub.data.synthetic import SyntheticConfig, plan_recordings

    info = json.loads((Path(folder) / "meta" / "info.json").read_text())
    provenance = info.get("provenance", {})
    if "synthetic_seed" not in provenance or "synthetic_config" not in provenance:
        raise ValueError(f"{folder} has no synthetic provenance (synthetic_seed, synthetic_config) in meta/info.json")
    raw = dict(provenance["synthetic_config"])
    known = {f.name for f in fields(SyntheticConfig)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in known}
    if isinstance(kwargs.get("fps"), str):
        kwargs["fps"] = Fraction(kwargs["fps"])
    config = SyntheticConfig(**kwargs)
    plan = plan_recordings(int(provenance["recordings"]), int(provenance["synthetic_seed"]))
    return {f"{split}/{name}": seed for split, name, seed in plan}, config


def dataset_ground_truth(folder: str | os.PathLike, split: str = "eval", *, max_clips: int | None = None,
                         builder_config=None) -> tuple[list[list[np.ndarray]], list[dict]]:
    """Ground-truth person boxes of every frame of a synthetic SVGSA24 folder's clips (scenes re-sampled from
    the build's seeds; boxes at the builder's source-frame times and views).

    Returns:
        ``(boxes, labels)``: per clip, per video frame float32 ``(K, 5)`` (score 1), and the clip's labels.
    """
    from savg_hub.data.builder import BuilderConfig
    from savg_hub.data.hf_dataset import DatasetFolder
    from savg_hub.data.synthetic import sample_scene
    from savg_hub.data.synthetic.boxes import PersonBoxRenderer, clip_frame_time

    builder_config = builder_config or BuilderConfig()
    seeds, synth = synthetic_scene_index(folder)
    dataset = DatasetFolder(folder)
    rows = dataset.metadata(split)[: max_clips if max_clips is not None else None]
    renderers: dict[str, PersonBoxRenderer] = {}
    out_boxes, out_labels = [], []
    for row in rows:
        key = row["source_recording"]
        if key not in seeds:
            raise ValueError(f"recording {key!r} is not one of the build's synthetic recordings")
        if key not in renderers:
            renderers.clear()  # rows come grouped by recording; keep one room in memory
            renderers[key] = PersonBoxRenderer(sample_scene(seeds[key], synth), synth.video_width,
                                               synth.video_height)
        view = builder_config.view(float(row["yaw"]))
        start = Fraction(round(float(row["start_time"]) * 10), 10)
        frames = []
        for k in range(builder_config.video_frames):
            time_s = clip_frame_time(start, k, synth.frame_rate, builder_config.fps)
            boxes = renderers[key].boxes(time_s, view)
            frames.append(np.array([[*b.xyxy, 1.0] for b in boxes], np.float32).reshape(-1, 5))
        out_boxes.append(frames)
        out_labels.append(row["labels"])
    return out_boxes, out_labels


def measure_held_out(detector_weights: str | os.PathLike, held_out: HeldOutSet, config: PersonDetectorConfig
                     ) -> dict[str, float]:
    """AP50 and recall/precision at score > ``config.conf`` of an Ultralytics model on held-out frames."""
    from savg_hub.evaluation.detectors import UltralyticsDetector

    detector = UltralyticsDetector(detector_weights, conf=0.001, imgsz=config.train.imgsz)
    predictions = detector.detect(held_out.frames)
    return detection_scores(predictions, held_out.boxes, iou=config.match_iou, conf=config.conf)


# ----------------------------------------------------------------------------------------------------------
# Export and model card
# ----------------------------------------------------------------------------------------------------------

MODEL_NAME = "yolo-person-synthetic"
"""Registry name of the shipped model (``savg_hub.weights``)."""


def export_person_detector(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, record: dict[str, Any],
                           *, name: str = MODEL_NAME) -> Path:
    """Copy a trained checkpoint to ``out_dir/<name>.pt`` and write ``out_dir/<name>.json`` (the ``record``:
    training config and measured scores, plus the file's sha256 and size). Both writes are atomic.

    Returns:
        The ``.pt`` path.
    """
    from savg_hub.utils.files import sha256_file

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    out_dir = Path(out_dir)
    target = out_dir / f"{name}.pt"
    with atomic_path(target) as tmp:
        tmp.write_bytes(checkpoint.read_bytes())
    full = _json_safe(dict(record))
    full["file"] = {"name": target.name, "sha256": sha256_file(target), "bytes": target.stat().st_size}
    atomic_write_text(out_dir / f"{name}.json", json.dumps(full, indent=2, default=str) + "\n")
    return target


def _json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by ``None`` (strict JSON), recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def render_person_detector_card(record: dict[str, Any], *, name: str = MODEL_NAME) -> str:
    """The model card (README.md) of the shipped person detector, from its export record.

    Args:
        record: what :func:`export_person_detector` writes: ``config`` (:meth:`PersonDetectorConfig.to_dict`),
            ``held_out`` (:func:`detection_scores`), optionally ``dataset`` (:func:`label_hit_fraction` plus
            ``folder``/``split``), ``counts``, ``training_seconds``, ``command``, ``file``, ``versions``.
    """
    config = PersonDetectorConfig.from_dict(record["config"])
    held = record.get("held_out", {})
    data, model, train = config.data, config.model, config.train
    counts = record.get("counts", {})
    file_info = record.get("file", {})
    lines = [
        "---",
        "license: agpl-3.0",
        "library_name: ultralytics",
        "pipeline_tag: object-detection",
        "tags: [savg_hub, savgbench, person-detection, synthetic]",
        "---",
        "",
        f"# {name}",
        "",
        "A small Ultralytics YOLO person detector (one class, `person` = id 0) trained from scratch by "
        "savg_hub on perspective frames of its synthetic STARSS23-format scenes. It is the embedded default "
        "person detector of the toolkit's Spatial AV-Align when no other weights are available offline. "
        "**It is not the official detector**: the official SAVGBench protocol uses mmdetection's YOLOX-tiny "
        "trained on COCO (`load_detector(\"yolox-tiny\")` with the `yolox-tiny-coco` weights).",
        "",
        "## Use",
        "",
        "```python",
        "from savg_hub.evaluation.detectors import load_detector",
        f"detector = load_detector(\"ultralytics:{name}\")   # or load_detector(\"default\")",
        "boxes = detector.detect(frames)   # uint8 RGB (T, 256, 256, 3) -> T float32 arrays (K, 5): x0, y0, x1, y1, score",
        "```",
        "",
        f"File: `savg_hub/assets/weights/{name}/{file_info.get('name', name + '.pt')}` "
        f"({_fmt(file_info.get('bytes', 0) / 1e6, 1)} MB, sha256 `{file_info.get('sha256', 'n/a')}`). "
        "Ultralytics `.pt` files are pickles: load only this file or files you trust.",
        "",
        "## Data",
        "",
        f"- {data.train_scenes} training and {data.val_scenes} held-out synthetic scenes (seed {data.seed}; scene "
        "seeds disjoint from the synthetic SVGSA24 build), "
        f"{data.frames_per_scene} frames each at random times and yaws ({data.person_yaw_fraction:.0%} aimed "
        f"within ±{data.yaw_jitter_deg:g}° of a person).",
        f"- {counts.get('train_images', 'n/a')} training images ({counts.get('train_boxes', 'n/a')} boxes), "
        f"{counts.get('val_images', 'n/a')} held-out images ({counts.get('val_boxes', 'n/a')} boxes).",
        "- Frames made as dataset frames are: 360° frame rendered at "
        f"{data.equirect_width}x{data.equirect_width // 2}, H.264 CRF {data.equirect_crf} round trip, the "
        "builder's 100° 256x144 perspective view letterboxed to 256x256 with 56-px black bars, H.264 CRF "
        f"{data.clip_crf} round trip.",
        "- Boxes from the renderer's person-id mask through the same resampling "
        f"(`savg_hub.data.synthetic.boxes`); people with fewer than {data.min_pixels} visible pixels are unlabelled.",
        "",
        "## Recipe",
        "",
        f"- Network: Ultralytics `{model.base}` layout at depth {model.depth:g}, width {model.width:g}, "
        f"max channels {model.max_channels} (one class), random initialisation.",
        f"- Ultralytics training on CPU: imgsz {train.imgsz}, batch {train.batch}, {train.optimizer} lr0 "
        f"{train.lr0:g}, epochs {record.get('epochs_run', train.epochs)}"
        + (f" (fitted to a {train.time_hours:g}-h budget)" if train.time_hours else "")
        + f", mosaic {train.mosaic:g} (off for the last {train.close_mosaic}), scale {train.scale:g}, "
        f"translate {train.translate:g}, fliplr {train.fliplr:g}, seed {train.seed}; amp and plots off (offline).",
        f"- Training time: {_fmt((record.get('training_seconds') or float('nan')) / 60, 1)} min "
        "(1 CPU thread).",
        "",
        "## Measured scores",
        "",
        "| what | value |",
        "|---|---|",
        f"| held-out synthetic frames: AP50 (person) | {_fmt(held.get('ap50', float('nan')))} |",
        f"| held-out: recall at score > {config.conf:g} (IoU ≥ {config.match_iou:g}) | "
        f"{_fmt(held.get('recall', float('nan')))} |",
        f"| held-out: precision at score > {config.conf:g} | {_fmt(held.get('precision', float('nan')))} |",
        f"| held-out ground-truth boxes / frames | {held.get('num_gt', 'n/a')} / {held.get('num_frames', 'n/a')} |",
    ]
    dataset = record.get("dataset")
    if dataset:
        split = dataset.get("split", "eval")
        frames = dataset.get("frames")
        if frames:
            lines += [
                f"| synthetic SVGSA24 `{split}` frames (true boxes from the scenes): AP50 | "
                f"{_fmt(frames.get('ap50'))} |",
                f"| synthetic SVGSA24 `{split}` frames: recall / precision at score > {config.conf:g} | "
                f"{_fmt(frames.get('recall'))} / {_fmt(frames.get('precision'))} "
                f"({frames.get('num_gt')} boxes, {frames.get('num_frames')} frames) |",
            ]
        lines.append(
            f"| synthetic SVGSA24 `{split}`: labelled sound positions within ±40 px of a detected person box "
            f"(frame ±1) | **{_fmt(dataset.get('fraction'))}** "
            f"({dataset.get('hits')}/{dataset.get('labels')} labels, {dataset.get('clips')} clips) |"
        )
        if dataset.get("ground_truth_fraction") is not None:
            lines.append(f"| the same with the true person boxes (ceiling) | "
                         f"{_fmt(dataset.get('ground_truth_fraction'))} |")
    lines += [
        "",
        "The label-hit row is what the official Spatial AV-Align matcher (±40 px, frame ±1, score > 0.3) "
        "would give the dataset's own ground truth with a perfect SELD and this detector: the ceiling of the "
        "metric on the synthetic set. The ceiling row replaces the detector by the people's true boxes. "
        "The checkpoint was picked by Ultralytics' validation fitness on the held-out scenes, so the held-out "
        "rows are slightly optimistic; the SVGSA24 rows (other scenes, the dataset's own encoded frames) are "
        "independent of training and selection.",
        "",
        "Reproduce (with `OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False "
        "YOLO_CONFIG_DIR=$(mktemp -d)`; the second line re-scores a model without training):",
        "",
        "```bash",
        record.get("command", "python training/train_person_detector.py --out /tmp/person-detector"),
        *([record["measure_command"]] if record.get("measure_command") else []),
        "```",
        "",
        "## Limits",
        "",
        "- Trained on synthetic people only (ray-cast bodies in box rooms); on real footage it is not a person "
        "detector to rely on. For the official protocol and for real data use YOLOX-tiny COCO.",
        "- Tuned to 256x256 SVGSA24-style letterboxed frames (inference at imgsz 256).",
        "",
        "## Licence",
        "",
        "AGPL-3.0: the model is built and trained with Ultralytics (AGPL-3.0, https://ultralytics.com/license); "
        "the weights are a derivative of it.",
        "",
        "## Citation",
        "",
        "```bibtex",
        "@inproceedings{shimada2026savgbench,",
        "  title     = {{SAVGBench}: Benchmarking Spatially Aligned Audio-Video Generation},",
        "  author    = {Shimada, Kazuki and Simon, Christian and Shibuya, Takashi and Takahashi, Shusuke and "
        "Mitsufuji, Yuki},",
        "  booktitle = {Proc. of IEEE ICASSP},",
        "  year      = {2026}",
        "}",
        "```",
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "HeldOutSet",
    "PERSON_NAMES",
    "PersonDataConfig",
    "PersonDetectorConfig",
    "PersonModelConfig",
    "PersonTrainConfig",
    "MODEL_NAME",
    "above",
    "box_iou",
    "detect_dataset",
    "export_person_detector",
    "render_person_detector_card",
    "build_person_dataset",
    "dataset_ground_truth",
    "detection_scores",
    "label_hit_fraction",
    "measure_held_out",
    "render_scene_frames",
    "sample_views",
    "scene_seed",
    "synthetic_scene_index",
    "score_on_dataset",
    "train_person_detector",
    "video_frame_of_label",
    "write_dataset_yaml",
    "write_model_yaml",
    "write_yolo_split",
    "yolo_label_lines",
]
