"""Person detectors for Spatial AV-Align: frames in, person boxes per frame out.

The official SAVGBench protocol (commit 04e8d5b, ``repeat_object_detection_to_metadata_from_list.py``) runs
mmdetection's YOLOX-tiny on every BGR frame and keeps COCO class 0 (person) with score > 0.3.
:class:`YOLOXTinyDetector` reproduces that pipeline with this project's own network
(:class:`~savg_hub.models.yolox.YOLOXModel`), batching many frames (of many clips) per forward pass;
:class:`UltralyticsDetector` plugs in any local Ultralytics YOLO detection model for the non-official
variants. Both satisfy :class:`PersonDetector`. :func:`write_detection_csv` / :func:`read_detection_csv`
handle the official per-clip OD CSV (``frame, 0, x0, y0, x1, y1``).

Example::

    from savg_hub.evaluation.detectors import load_detector, write_detection_csv
    detector = load_detector("yolox-tiny", weights="yolox-tiny/")         # converted folder or mmdet .pth
    boxes = detector.detect(frames)            # frames uint8 RGB (20, 256, 256, 3) -> 20 arrays (K, 5)
    write_detection_csv("pred_od/clip.csv", boxes)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torchvision

from savg_hub.convert.yolox import load_yolox_from_mmdet_checkpoint
from savg_hub.models.yolox import YOLOXModel, YOLOXOutput, flatten_yolox_outputs
from savg_hub.evaluation.csv_io import read_detection_csv, write_detection_csv  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

# The official YOLOX-tiny test configuration (yolox_tiny_8x8_300e_coco.py as used by SAVGBench 04e8d5b).
YOLOX_INPUT_SCALE = (416, 416)
YOLOX_PAD_VALUE = 114  # Pad(pad_to_square=True, pad_val=114)
YOLOX_SIZE_DIVISOR = 32  # DetDataPreprocessor(pad_size_divisor=32), pad_value 0
YOLOX_SCORE_THRESHOLD = 0.01  # test_cfg.score_thr (kept when >=)
YOLOX_NMS_IOU = 0.65  # test_cfg.nms.iou_threshold (suppressed when IoU >)
PERSON_CLASS = 0  # COCO person
PERSON_SCORE_THRESHOLD = 0.3  # the official script keeps score > 0.3 (strict)


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that finds people in video frames.

    Attributes:
        name: short identifier written into result files (e.g. ``"yolox-tiny"``).
    """

    name: str

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """Person boxes of every frame.

        Args:
            frames: uint8 RGB `(T, H, W, 3)`.

        Returns:
            T arrays, each float32 `(K, 5)`: ``x0, y0, x1, y1, score`` in input-frame pixels (not clipped),
            highest score first.
        """
        ...


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate a frame stack: uint8 `(T, H, W, 3)` RGB with H, W >= 1. Returns it unchanged.

    Raises:
        ValueError: naming the bad dtype or shape.
    """
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    return frames


# ----------------------------------------------------------------------------------------------------------
# YOLOX-tiny, official pipeline
# ----------------------------------------------------------------------------------------------------------


def yolox_resize_geometry(
    height: int, width: int, scale: tuple[int, int] = YOLOX_INPUT_SCALE
) -> tuple[int, int, tuple[float, float]]:
    """Keep-ratio resize size and scale factor, as mmcv ``rescale_size`` + mmdet ``Resize(keep_ratio=True)``.

    The factor is ``min(max(scale) / max(h, w), min(scale) / min(h, w))``; new sizes are
    ``int(side * factor + 0.5)``; the returned scale factor is the *realised* ``(new_w / w, new_h / h)``,
    which boxes are divided by afterwards.

    Returns:
        ``(new_height, new_width, (w_scale, h_scale))``; 256x256 -> ``(416, 416, (1.625, 1.625))``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    new_w = int(width * float(factor) + 0.5)
    new_h = int(height * float(factor) + 0.5)
    return new_h, new_w, (new_w / width, new_h / height)


def preprocess_yolox_frames(
    frames: np.ndarray, scale: tuple[int, int] = YOLOX_INPUT_SCALE
) -> tuple[torch.Tensor, tuple[float, float]]:
    """The official YOLOX test pipeline on RGB frames: RGB->BGR, keep-ratio bilinear resize, pad.

    Steps (mmdet 3.3 ``yolox_tiny`` test pipeline and data preprocessor): the frame is turned to BGR (the
    official code reads it with OpenCV), resized with ``cv2.resize(INTER_LINEAR)`` to
    :func:`yolox_resize_geometry`, padded at the bottom/right to a square with value 114, then to a multiple
    of 32 with value 0 (a no-op when the square side is already one, e.g. 416). No mean/std normalisation, no
    channel swap back.

    Args:
        frames: uint8 RGB `(T, H, W, 3)`.
        scale: the ``Resize`` scale.

    Returns:
        ``(images, (w_scale, h_scale))``: float32 `(T, 3, H', W')` BGR in [0, 255] and the scale factor to
        divide detected boxes by.
    """
    check_frames(frames)
    num, height, width = frames.shape[:3]
    new_h, new_w, scale_factor = yolox_resize_geometry(height, width, scale)
    side = max(new_h, new_w)
    padded_h = math.ceil(side / YOLOX_SIZE_DIVISOR) * YOLOX_SIZE_DIVISOR
    padded_w = math.ceil(side / YOLOX_SIZE_DIVISOR) * YOLOX_SIZE_DIVISOR
    canvas = np.zeros((num, padded_h, padded_w, 3), dtype=np.uint8)
    canvas[:, :side, :side] = YOLOX_PAD_VALUE
    for index in range(num):
        bgr = np.ascontiguousarray(frames[index, :, :, ::-1])
        canvas[index, :new_h, :new_w] = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    images = torch.from_numpy(canvas).permute(0, 3, 1, 2).float()
    return images, scale_factor


def class_aware_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Class-aware NMS as mmcv's ``batched_nms`` (below its 10 000-box split): offset trick, then plain NMS.

    Boxes of different classes are moved apart by ``label * (max coordinate + 1)`` and suppressed with
    ``torchvision.ops.nms`` (a box is dropped when its IoU with a higher-scoring kept box is >
    ``iou_threshold``). Unlike ``torchvision.ops.batched_nms``, which switches to a per-class loop above 1000
    CPU boxes, this always uses the offset trick, like mmcv for every box count YOLOX can produce at 416x416
    (3549 priors), so float32 rounding near the threshold matches the reference.

    Args:
        boxes: float `(K, 4)` ``x0, y0, x1, y1``.
        scores: float `(K,)`.
        labels: int `(K,)` class ids.

    Returns:
        int64 `(K',)` indices of the kept boxes, by decreasing score.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    offsets = labels.to(boxes) * (boxes.max() + 1)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, iou_threshold)


def yolox_postprocess(
    output: YOLOXOutput,
    strides: Sequence[int],
    scale_factor: tuple[float, float],
    score_threshold: float = YOLOX_SCORE_THRESHOLD,
    iou_threshold: float = YOLOX_NMS_IOU,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Detections of every image from raw head outputs, as mmdetection's ``YOLOXHead.predict_by_feat``.

    Per prior: box decoded from the priors (:func:`~savg_hub.models.yolox.flatten_yolox_outputs`), label =
    arg-max class, score = sigmoid(class logit) * sigmoid(objectness); kept when score >= ``score_threshold``;
    boxes divided by ``scale_factor`` (back to input-frame pixels, not clipped); then :func:`class_aware_nms`.
    No per-image cap on the number of boxes.

    Args:
        output: head outputs of N images.
        strides: stride of each level.
        scale_factor: ``(w_scale, h_scale)`` of the resize (:func:`yolox_resize_geometry`).

    Returns:
        N tuples ``(boxes float32 (K, 4), scores float32 (K,), labels int64 (K,))`` by decreasing score.
    """
    boxes, class_probs, objectness = flatten_yolox_outputs(output, strides)
    max_probs, labels = class_probs.max(dim=-1)
    scores_all = max_probs * objectness
    divisor = boxes.new_tensor([scale_factor[0], scale_factor[1], scale_factor[0], scale_factor[1]])
    results = []
    for image in range(boxes.shape[0]):
        keep = objectness[image] * max_probs[image] >= score_threshold
        image_boxes = boxes[image][keep] / divisor
        image_scores = scores_all[image][keep]
        image_labels = labels[image][keep]
        order = class_aware_nms(image_boxes, image_scores, image_labels, iou_threshold)
        results.append((image_boxes[order], image_scores[order], image_labels[order]))
    return results


def select_class(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    class_id: int = PERSON_CLASS,
    min_score: float = PERSON_SCORE_THRESHOLD,
) -> np.ndarray:
    """Rows ``x0, y0, x1, y1, score`` (float32 `(K, 5)`) of one class with score > ``min_score`` (strict).

    The comparison is made in float64, as the official NumPy 1.23 script compares ``np.float32`` scores with
    the Python float 0.3 (both promoted to float64).
    """
    mask = (labels == class_id) & (scores.double() > min_score)
    rows = torch.cat([boxes[mask], scores[mask, None]], dim=1)
    return rows.detach().cpu().numpy().astype(np.float32, copy=False).reshape(-1, 5)


class YOLOXTinyDetector:
    """The official SAVGBench person detector: YOLOX-tiny, mmdetection's pipeline, persons with score > 0.3.

    Args:
        model (`YOLOXModel`): the network with converted weights (see ``savg_hub.convert.yolox``).
        device (`str | torch.device`, *optional*, defaults to `"cpu"`): where the forward runs.
        batch_size (`int`, *optional*, defaults to 16): frames per forward pass (roughly 50 MB of memory
            per frame at 416x416); results do not depend on it (eval-mode BatchNorm) beyond float32
            reduction-order noise.
    """

    name = "yolox-tiny"

    def __init__(self, model: YOLOXModel, device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        if not isinstance(model, YOLOXModel):
            raise ValueError(f"model must be a YOLOXModel, got {type(model).__name__}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)

    @torch.inference_mode()
    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """Person boxes per frame.

        Args:
            frames: uint8 RGB `(T, H, W, 3)`; frames of many clips may be concatenated (all of one size).

        Returns:
            T float32 arrays `(K, 5)`: ``x0, y0, x1, y1, score`` in input-frame pixels (not clipped), by
            decreasing score.
        """
        check_frames(frames)
        strides = tuple(int(s) for s in self.model.config.strides)
        dtype = next(self.model.parameters()).dtype
        results: list[np.ndarray] = []
        for start in range(0, frames.shape[0], self.batch_size):
            images, scale_factor = preprocess_yolox_frames(frames[start : start + self.batch_size])
            output = self.model(images.to(self.device, dtype))
            for boxes, scores, labels in yolox_postprocess(output, strides, scale_factor):
                results.append(select_class(boxes, scores, labels))
        return results


# ----------------------------------------------------------------------------------------------------------
# Ultralytics
# ----------------------------------------------------------------------------------------------------------


def import_ultralytics():
    """Import and return the ``ultralytics`` module without its process-wide side effects.

    Importing Ultralytics sets environment variables for the whole process (``OMP_NUM_THREADS=1``,
    ``NUMEXPR_MAX_THREADS=1``, log levels, ...), which every subprocess started afterwards inherits: a worker or
    benchmark child then runs single-threaded. They are put back as they were.

    Raises:
        ModuleNotFoundError: ultralytics is not installed.
    """
    before = dict(os.environ)
    try:
        import ultralytics
    except ModuleNotFoundError as error:  # optional dependency
        raise ModuleNotFoundError("the Ultralytics detector needs ultralytics: pip install ultralytics") from error
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
    return ultralytics


class UltralyticsDetector:
    """Person boxes from any Ultralytics YOLO detection model stored in a local file.

    The file is opened with Ultralytics' own loader (``ultralytics.YOLO(path)``): ``.pt`` files are full
    pickles that it unpickles *with* code execution, so only use files you trust; exported formats (``.onnx``,
    ``.torchscript``, ...) and model YAMLs (random weights) work as Ultralytics supports them. Nothing is
    downloaded: the path must exist.

    Args:
        weights (`str | Path`): local model file.
        person_class (`int | str`, *optional*, defaults to 0): class id, or a class name looked up in the
            model's ``names``.
        conf (`float`, *optional*, defaults to 0.3): minimum score (Ultralytics keeps ``score > conf``).
        iou (`float`, *optional*, defaults to 0.7): NMS IoU threshold.
        imgsz (`int`, *optional*, defaults to 640): inference size (letterboxed by Ultralytics).
        max_det (`int`, *optional*, defaults to 300): most boxes per frame.
        device (`str`, *optional*, defaults to `"cpu"`): Ultralytics device string.
        batch_size (`int`, *optional*, defaults to 16): frames per forward pass.
    """

    def __init__(
        self,
        weights: str | os.PathLike,
        person_class: int | str = PERSON_CLASS,
        conf: float = 0.3,
        iou: float = 0.7,
        imgsz: int = 640,
        max_det: int = 300,
        device: str = "cpu",
        batch_size: int = 16,
    ) -> None:
        YOLO = import_ultralytics().YOLO
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"Ultralytics model file not found (nothing is downloaded): {path}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.yolo = YOLO(str(path))
        if self.yolo.task != "detect":
            raise ValueError(f"{path}: an Ultralytics '{self.yolo.task}' model, not a detection model")
        names: dict[int, str] = dict(self.yolo.names)
        if isinstance(person_class, str):
            matches = [index for index, label in names.items() if label == person_class]
            if not matches:
                shown = ", ".join(f"{k}: {v!r}" for k, v in list(names.items())[:20])
                raise ValueError(f"class name {person_class!r} not in the model's names ({shown}, ...)")
            class_id = matches[0]
        else:
            class_id = int(person_class)
            if class_id not in names:
                raise ValueError(f"person_class {person_class} out of range 0..{len(names) - 1}")
        self.class_id = class_id
        self.name = f"ultralytics:{path.name}:{names[class_id]}"
        self.predict_args: dict[str, Any] = {
            "conf": float(conf),
            "iou": float(iou),
            "imgsz": int(imgsz),
            "max_det": int(max_det),
            "device": device,
            "verbose": False,
            "classes": [class_id],
        }
        self.batch_size = int(batch_size)

    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """Person boxes per frame (see :class:`PersonDetector`); Ultralytics clips boxes to the frame.

        Ultralytics' CPU device selection resets torch's thread count (to ``cpu_count - 1``); the caller's setting
        is restored afterwards, so the other models of the process keep their speed and their numerics.
        """
        check_frames(frames)
        results: list[np.ndarray] = []
        threads = torch.get_num_threads()
        try:
            for start in range(0, frames.shape[0], self.batch_size):
                batch = [
                    np.ascontiguousarray(frame[:, :, ::-1]) for frame in frames[start : start + self.batch_size]
                ]
                for result in self.yolo.predict(batch, batch=len(batch), **self.predict_args):
                    boxes = result.boxes
                    keep = boxes.cls.int() == self.class_id
                    rows = torch.cat([boxes.xyxy[keep], boxes.conf[keep, None]], dim=1)
                    order = torch.argsort(rows[:, 4], descending=True, stable=True)
                    results.append(rows[order].cpu().numpy().astype(np.float32).reshape(-1, 5))
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        return results


# ----------------------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------------------


DEFAULT_SPEC = "default"
"""``load_detector(DEFAULT_SPEC)``: the official YOLOX-tiny when its weights are available (imported into the
cache, or downloadable), else the embedded person detector trained on the synthetic set (``yolo-person-synthetic``,
Ultralytics, AGPL-3.0)."""

_DETECTOR_WEIGHT_KINDS = {"yolox-tiny": "yolox-tiny", "ultralytics": "ultralytics"}


def default_detector_weights(name: str) -> Path:
    """The local path of a detector's registered default weights, through the weights registry (DESIGN.md §5).

    Args:
        name: ``"yolox-tiny"`` (official YOLOX-tiny COCO weights: cache, then Hub when online) or
            ``"ultralytics"`` (the embedded synthetic-set model, ``yolo-person-synthetic``).

    Returns:
        A converted ``YOLOXModel`` folder, or an Ultralytics ``.pt`` file.

    Raises:
        ValueError: an unknown detector name, or (``savg_hub.weights.WeightsError``) weights that are not available
            offline, with what to do about it.
    """
    from savg_hub.weights import WeightsError, default_weights, resolve_weights

    if name not in _DETECTOR_WEIGHT_KINDS:
        raise ValueError(f"no registered weights for detector {name!r}; known: {sorted(_DETECTOR_WEIGHT_KINDS)}")
    kind = _DETECTOR_WEIGHT_KINDS[name]
    try:
        spec, _ = default_weights(kind)
        return resolve_weights(spec, kind)
    except WeightsError as error:
        raise WeightsError(
            f"no registered default weights for detector {name!r} are available ({error}); or pass weights= "
            "(a converted YOLOXModel folder or the mmdetection .pth)"
        ) from error


def _registered_ultralytics(name: str, device: str) -> UltralyticsDetector:
    """An :class:`UltralyticsDetector` of an ``ultralytics`` registry entry, at its training size.

    The inference size comes from the ``<file>.json`` record next to the ``.pt`` (``config.train.imgsz``), else
    from the checkpoint's training arguments.
    """
    import json

    from savg_hub.weights import resolve_weights

    path = resolve_weights(name, "ultralytics")
    record_path = path.with_suffix(".json")
    imgsz = None
    if record_path.is_file():
        imgsz = json.loads(record_path.read_text()).get("config", {}).get("train", {}).get("imgsz")
    detector = UltralyticsDetector(path, device=device, imgsz=int(imgsz) if imgsz else 640)
    if not imgsz:
        trained = (getattr(detector.yolo, "ckpt", None) or {}).get("train_args", {}).get("imgsz")
        if trained:
            detector.predict_args["imgsz"] = int(trained)
    detector.name = f"ultralytics:{name}"
    return detector


def load_detector(spec: str, weights: str | os.PathLike | None = None, device: str = "cpu") -> PersonDetector:
    """Build a :class:`PersonDetector` from a spec string.

    Args:
        spec: ``"yolox-tiny"`` (the official detector), ``"ultralytics:<local model file>"``,
            ``"ultralytics:<registry name>"`` (e.g. ``"ultralytics:yolo-person-synthetic"``, the embedded model,
            run at its training size) or ``"default"`` (:data:`DEFAULT_SPEC`).
        weights: for ``"yolox-tiny"``: a ``save_pretrained`` folder of :class:`YOLOXModel` or an mmdetection
            ``.pth`` (converted in memory); ``None`` = registered default weights. Not used by
            ``ultralytics:`` or ``default``.
        device: torch device for the forward pass.

    Raises:
        ValueError: unknown spec, an empty Ultralytics path, or ``weights`` given with ``ultralytics:``.
    """
    if spec == DEFAULT_SPEC:
        if weights is not None:
            raise ValueError(f"weights={weights!r} is not used with {spec!r}; name a detector spec instead")
        from savg_hub.weights import WeightsError, default_weights

        name, official = default_weights("yolox-tiny")
        if official:
            try:
                return load_detector("yolox-tiny", device=device)
            except (WeightsError, FileNotFoundError) as error:
                logger.info("official YOLOX-tiny weights unavailable (%s); using the embedded synthetic-set "
                               "detector", error)
        name, _ = default_weights("ultralytics")
        logger.info("person detector: embedded %s (synthetic-set model, not the official protocol)", name)
        return _registered_ultralytics(name, device)
    if spec == "yolox-tiny":
        path = Path(weights) if weights is not None else default_detector_weights(spec)
        if path.is_dir():
            model = YOLOXModel.from_pretrained(path)
        elif path.is_file():
            model = load_yolox_from_mmdet_checkpoint(path)
        else:
            raise FileNotFoundError(f"YOLOX weights not found: {path}")
        return YOLOXTinyDetector(model, device=device)
    if spec.startswith("ultralytics:"):
        model_path = spec[len("ultralytics:") :]
        if not model_path:
            raise ValueError(f"detector spec {spec!r} names no model file; use 'ultralytics:<path>'")
        if weights is not None:
            raise ValueError(f"weights={weights!r} is not used with {spec!r}; put the model path in the spec")
        if not Path(model_path).exists():
            from savg_hub.weights import REGISTRY

            entry = REGISTRY.get(model_path)
            if entry is not None and entry.kind == "ultralytics":
                return _registered_ultralytics(model_path, device)
        return UltralyticsDetector(model_path, device=device)
    raise ValueError(
        f"unknown detector spec {spec!r}; expected 'yolox-tiny', 'default', 'ultralytics:<model file>' or "
        "'ultralytics:<registry name>'"
    )


# ----------------------------------------------------------------------------------------------------------
# Official OD CSV
# ----------------------------------------------------------------------------------------------------------
