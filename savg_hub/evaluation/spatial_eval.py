"""Spatial AV-Align end to end: clips in, the official score, per-clip scores and calibration controls out.

:class:`SpatialAVAlignEvaluator` keeps the SELD network and the person detector resident, takes clips in chunks,
runs the SELD windows of every clip of a chunk in shared batches (:class:`~savg_hub.evaluation.seld.SELDInference`)
and the detector on the frames of every clip of a chunk together, then applies the official matcher
(:func:`~savg_hub.evaluation.spatial.match_clip`). Results are those of the official three-script pipeline run clip
by clip (eval-mode networks: batch items do not interact).

**Calibration controls** (not part of the ``official`` protocol; reported next to the score, computed on the same
clips, reusing what does not change):

* ``swap_lr``: left and right audio channels swapped (SELD rerun, detections reused) -- must lower the score on
  well-aligned clips;
* ``flip_video``: frames mirrored horizontally (detector rerun, SELD reused) -- must lower it too;
* ``swap_and_flip``: both at once (reuses both reruns) -- a mirror image of an aligned clip is aligned, so this
  must *not* lower it much;
* ``mono``: both channels replaced by ``(L + R) / 2`` (SELD rerun) -- no direction cue left: the chance level.

Example::

    from savg_hub.evaluation.spatial_eval import SpatialAVAlignEvaluator
    evaluator = SpatialAVAlignEvaluator.from_pretrained()            # default weights, see savg_hub.weights
    result = evaluator.evaluate("generated/")                       # a folder, file list or dataset spec
    print(result.score, result.num_tp, result.num_fn, result.calibration_scores())
    result.write_official_csvs("pred_seld/", "pred_od/")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from savg_hub.evaluation.clips import ClipSource, open_clips
from savg_hub.evaluation.csv_io import detection_rows, write_detection_csv, write_seld_csv
from savg_hub.evaluation.detectors import PersonDetector, check_frames, load_detector
from savg_hub.evaluation.seld import SELD_SAMPLE_RATE, SELDInference
from savg_hub.evaluation.spatial import (
    OFFICIAL,
    ClipSpatialScore,
    SpatialAlignConfig,
    SpatialAVAlignResult,
    match_clip,
)
from savg_hub.media.clip import Clip

logger = logging.getLogger(__name__)

PROTOCOL = "official"
PROTOCOL_VERSION = "savgbench-04e8d5b"
CALIBRATIONS: tuple[str, ...] = ("swap_lr", "flip_video", "swap_and_flip", "mono")
"""Calibration controls, in report order."""

# which SELD input and which detector input each variant scores
_VARIANT_INPUTS: dict[str, tuple[str, str]] = {
    "official": ("original", "original"),
    "swap_lr": ("swapped", "original"),
    "flip_video": ("original", "flipped"),
    "swap_and_flip": ("swapped", "flipped"),
    "mono": ("mono", "original"),
}


# ----------------------------------------------------------------------------------------------------------
# Transforms (pure)
# ----------------------------------------------------------------------------------------------------------


def swap_channels(audio: np.ndarray) -> np.ndarray:
    """Left/right swap of ``float32 (2, N)`` stereo (a new array)."""
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"audio must be stereo (2, N); got shape {audio.shape}")
    return np.ascontiguousarray(audio[::-1])


def mono_downmix(audio: np.ndarray) -> np.ndarray:
    """Both channels replaced by ``(L + R) / 2``: ``float32 (2, N)`` with identical rows."""
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"audio must be stereo (2, N); got shape {audio.shape}")
    mid = ((audio[0].astype(np.float32) + audio[1].astype(np.float32)) * np.float32(0.5)).astype(np.float32)
    return np.stack([mid, mid])


def flip_frames(video: np.ndarray) -> np.ndarray:
    """Frames mirrored horizontally: ``uint8 (T, H, W, 3)`` -> same shape (a new contiguous array)."""
    check_frames(video)
    return np.ascontiguousarray(video[:, :, ::-1])


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ClipOutputs:
    """What the evaluator computed for one clip.

    Attributes:
        clip_id: the clip's identifier (CSV base name).
        seld_rows: float64 ``(R, 3)``: official SELD rows ``frame, class, x`` (10-fps frame, 0 speech / 1 instrument,
            pixels of the 256-px frame).
        detections: float64 ``(M, 6)``: official detection rows ``frame, 0, x0, y0, x1, y1`` (4-fps frame, pixels).
        hits: bool ``(R,)``: which SELD rows are hits (TP) under the official rule.
        calibration: ``{variant: (num_tp, num_fn)}`` for each calibration control computed.
        meta: provenance of the clip (paths, codecs).
    """

    clip_id: str
    seld_rows: np.ndarray
    detections: np.ndarray
    hits: np.ndarray
    calibration: dict[str, tuple[int, int]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_tp(self) -> int:
        return int(self.hits.sum())

    @property
    def num_fn(self) -> int:
        return int(len(self.hits) - self.hits.sum())

    @property
    def score(self) -> float | None:
        """Per-clip ``TP / (TP + FN)``; ``None`` when the SELD model detected nothing in the clip."""
        return self.num_tp / len(self.hits) if len(self.hits) else None


@dataclass
class WeightsRecord:
    """Which weights a component used (what results files record).

    Attributes:
        role: ``"seld"`` or ``"detector"``.
        kind: registry kind (``stereo-seld``, ``yolox-tiny``, ``ultralytics``) or ``"object"`` (passed in).
        spec: what was asked for (registry name, folder, file), or ``None`` for a model object.
        path: the resolved folder or file.
        sha256: :func:`savg_hub.weights.file_sha256` of ``path`` (``None`` for a model object).
        source: ``"official"`` (the published weights), ``"embedded"`` (the stand-in trained on synthetic scenes
            that ships with the package), ``"stand-in"`` (random-init feature networks used when the official
            ones are unavailable), ``"user"`` (a folder or file given by the caller) or ``"object"``.
        name: the detector's name or the registry entry.
    """

    role: str
    kind: str
    spec: str | None = None
    path: str | None = None
    sha256: str | None = None
    source: str = "object"
    name: str | None = None

    @property
    def stand_in(self) -> bool:
        """True for the embedded synthetic-data weights and for random-init stand-ins (``source ==
        "stand-in"``): scores are then not comparable with published numbers."""
        return self.source in ("embedded", "stand-in")

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "kind": self.kind, "spec": self.spec, "path": self.path, "sha256": self.sha256,
                "source": self.source, "name": self.name, "stand_in": self.stand_in}


@dataclass
class SpatialEvalResult:
    """Spatial AV-Align over a set of clips: the official score, per-clip outputs, calibration controls.

    Attributes:
        official: the official micro-averaged result (``score``, ``num_tp``, ``num_fn``, per-clip counts).
        calibration: ``{variant: SpatialAVAlignResult}`` for each control in :data:`CALIBRATIONS` that was run.
        clips: per-clip outputs, in evaluation order (SELD rows and detections for the official CSVs).
        seconds: wall time of :meth:`SpatialAVAlignEvaluator.evaluate`.
        weights: the weights used.
        protocol: protocol name (``"official"``).
        protocol_version: ``"savgbench-04e8d5b"``.
    """

    official: SpatialAVAlignResult
    calibration: dict[str, SpatialAVAlignResult]
    clips: list[ClipOutputs]
    seconds: float = 0.0
    weights: list[WeightsRecord] = field(default_factory=list)
    protocol: str = PROTOCOL
    protocol_version: str = PROTOCOL_VERSION

    name = "spatial_av_align"

    @property
    def score(self) -> float | None:
        """Official ``TP / (TP + FN)`` over all SELD detections of all clips; ``None`` when undefined."""
        return self.official.score

    @property
    def num_tp(self) -> int:
        return self.official.num_tp

    @property
    def num_fn(self) -> int:
        return self.official.num_fn

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def per_clip(self) -> list[ClipSpatialScore]:
        return self.official.per_clip

    @property
    def seld_rows(self) -> dict[str, np.ndarray]:
        """``{clip_id: (R, 3) rows}``, what the official SELD CSVs hold."""
        return {c.clip_id: c.seld_rows for c in self.clips}

    @property
    def detections(self) -> dict[str, np.ndarray]:
        """``{clip_id: (M, 6) rows}``, what the official detection CSVs hold."""
        return {c.clip_id: c.detections for c in self.clips}

    def calibration_scores(self) -> dict[str, float | None]:
        """``{variant: score}`` of the calibration controls (``None`` = undefined)."""
        return {name: result.score for name, result in self.calibration.items()}

    def official_lines(self) -> str:
        """The two ``results.out`` lines of the official script (trailing spaces included); ``""`` if undefined."""
        return self.official.official_lines() if self.official.defined else ""

    def write_official_csvs(self, seld_dir: str | os.PathLike | None = None,
                            detections_dir: str | os.PathLike | None = None) -> None:
        """Write ``<seld_dir>/<clip>.csv`` and ``<detections_dir>/<clip>.csv`` in the official formats (atomic)."""
        for outputs in self.clips:
            if seld_dir is not None:
                write_seld_csv(Path(seld_dir) / f"{outputs.clip_id}.csv", outputs.seld_rows)
            if detections_dir is not None:
                write_detection_rows_csv(Path(detections_dir) / f"{outputs.clip_id}.csv", outputs.detections)

    def per_clip_table(self) -> list[dict[str, Any]]:
        """One dict per clip: ``clip_id``, ``spatial_tp``, ``spatial_fn``, ``spatial_score`` and per calibration
        control ``spatial_<variant>_score``; ``num_person_boxes``."""
        table = []
        for outputs in self.clips:
            row: dict[str, Any] = {
                "clip_id": outputs.clip_id,
                "spatial_tp": outputs.num_tp,
                "spatial_fn": outputs.num_fn,
                "spatial_score": outputs.score,
                "num_person_boxes": int(len(outputs.detections)),
            }
            for variant in self.calibration:
                tp, fn = outputs.calibration.get(variant, (0, 0))
                row[f"spatial_{variant}_score"] = tp / (tp + fn) if tp + fn else None
            table.append(row)
        return table

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-clip rows; see :meth:`per_clip_table`)."""
        calibration = {}
        for variant, result in self.calibration.items():
            calibration[variant] = {"score": result.score, "num_tp": result.num_tp, "num_fn": result.num_fn,
                                    "delta": (None if result.score is None or self.score is None
                                              else result.score - self.score)}
        return {
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "score": self.score,
            "num_tp": self.num_tp,
            "num_fn": self.num_fn,
            "num_detections": self.official.num_detections,
            "num_clips": self.num_clips,
            "num_clips_without_seld_detections": sum(1 for c in self.clips if not len(c.hits)),
            "num_clips_without_person_boxes": sum(1 for c in self.clips if not len(c.detections)),
            "config": self.official.to_dict()["config"],
            "calibration": calibration,
            "seconds": self.seconds,
        }


def write_detection_rows_csv(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write official detection rows ``(M, 6)`` (``frame, category, x0, y0, x1, y1``) as the official OD CSV."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    num_frames = int(rows[:, 0].max()) + 1 if len(rows) else 0
    per_frame = [rows[rows[:, 0] == frame][:, 2:6] for frame in range(num_frames)]
    return write_detection_csv(path, per_frame)


# ----------------------------------------------------------------------------------------------------------
# Loading components
# ----------------------------------------------------------------------------------------------------------


class SELDPredictor(Protocol):
    """Anything with the :meth:`SELDInference.predict` signature (its results need a ``rows`` attribute)."""

    def predict(self, audios: Sequence[np.ndarray], sample_rate: int = SELD_SAMPLE_RATE) -> list[Any]: ...


def _weights_source(spec: str, kind: str, path: Path) -> tuple[str, str | None]:
    from savg_hub import weights as registry

    try:
        path.resolve().relative_to(registry.ASSETS.resolve())
        embedded = True
    except ValueError:
        embedded = False
    if embedded:
        return "embedded", spec if spec in registry.REGISTRY else None
    entry = registry.REGISTRY.get(str(spec))
    if entry is not None:
        return ("official" if entry.official_filename else "embedded"), entry.name
    spec_path = Path(spec)
    if spec_path.is_file():
        found = registry.entry_for_file(spec_path)
        if found is not None and found.kind == kind:
            return "official", found.name
    return "user", None


def _resolve(spec: str | os.PathLike, kind: str, role: str) -> tuple[Path, WeightsRecord]:
    from savg_hub import weights as registry

    path = registry.resolve_weights(spec, kind)
    source, name = _weights_source(str(spec), kind, path)
    record = WeightsRecord(role=role, kind=kind, spec=str(spec), path=str(path), sha256=registry.file_sha256(path),
                           source=source, name=name)
    return path, record


def load_seld(weights: str | os.PathLike | None = None, *, device: str | torch.device = "cpu",
              batch_size: int = 64) -> tuple[SELDInference, WeightsRecord]:
    """The official SELD inference with weights from a spec (registry name, converted folder, official ``.pth``).

    ``weights=None`` uses :func:`savg_hub.weights.default_weights` (``"stereo-seld"``): the official weights when
    imported, else the embedded stand-in.

    Returns:
        ``(SELDInference, WeightsRecord)``.
    """
    from savg_hub import weights as registry
    from savg_hub.models.stereo_seld import StereoSELDModel

    if weights is not None:
        path, record = _resolve(weights, "stereo-seld", "seld")
    else:
        spec, official = registry.default_weights("stereo-seld")
        try:
            path, record = _resolve(spec, "stereo-seld", "seld")
        except registry.WeightsError as error:
            embedded = [e for e in registry.entries("stereo-seld")
                        if e.embedded and (registry.ASSETS / e.embedded).exists()]
            if not official or not embedded:
                raise
            logger.warning("official SELD weights unavailable (%s); using the embedded stand-in %s", error,
                           embedded[0].name)
            path, record = _resolve(embedded[0].name, "stereo-seld", "seld")
    model = StereoSELDModel.from_pretrained(str(path))
    return SELDInference(model, device=device, batch_size=batch_size), record


def load_person_detector(detector: str | PersonDetector = "default", weights: str | os.PathLike | None = None, *,
                         device: str | torch.device = "cpu", batch_size: int = 16,
                         ) -> tuple[PersonDetector, WeightsRecord]:
    """A person detector from a spec.

    Args:
        detector: ``"yolox-tiny"`` (the official detector), ``"ultralytics:<model file>"``, ``"ultralytics"``
            (with ``weights``), ``"default"`` (YOLOX-tiny with the official weights when they are imported, else
            the embedded Ultralytics stand-in), or a :class:`PersonDetector` object.
        weights: weights spec for ``yolox-tiny`` / ``ultralytics`` (registry name, folder, official ``.pth`` or model
            file); ``None`` = the registry default.
        device: torch device.
        batch_size: frames per forward pass.

    Raises:
        ValueError: an unknown spec, or no usable weights (the message says how to get them).
    """
    from savg_hub import weights as registry

    if not isinstance(detector, str):
        if not isinstance(detector, PersonDetector):
            raise ValueError(f"detector must be a spec string or a PersonDetector, got {type(detector).__name__}")
        return detector, WeightsRecord(role="detector", kind="object", name=getattr(detector, "name", None))
    device_name = str(device)
    if detector == "default":
        if weights is not None:
            raise ValueError("--detector-weights needs --detector yolox-tiny or ultralytics")
        spec, official = registry.default_weights("yolox-tiny")
        if official:
            try:
                return load_person_detector("yolox-tiny", spec, device=device, batch_size=batch_size)
            except registry.WeightsError as error:
                logger.info("official YOLOX-tiny weights not available (%s); using the embedded detector", error)
        try:
            spec, _ = registry.default_weights("ultralytics")
        except registry.WeightsError as error:
            raise registry.WeightsError(
                "no person detector weights available offline: import the official ones with `savg weights import "
                "SAVGBench_PretrainedModels_V1.zip` (or pass --detector yolox-tiny --detector-weights FILE)"
            ) from error
        return load_person_detector("ultralytics", spec, device=device, batch_size=batch_size)
    if detector == "yolox-tiny":
        spec = weights if weights is not None else registry.default_weights("yolox-tiny")[0]
        path, record = _resolve(spec, "yolox-tiny", "detector")
        loaded = load_detector("yolox-tiny", weights=path, device=device_name)
        loaded.batch_size = int(batch_size)
        record.name = loaded.name
        return loaded, record
    if detector == "ultralytics" or detector.startswith("ultralytics:"):
        given = detector[len("ultralytics:"):] if detector.startswith("ultralytics:") else None
        if given and weights is not None:
            raise ValueError(f"weights={weights!r} given twice: the detector spec {detector!r} names the model file")
        spec = given or weights or registry.default_weights("ultralytics")[0]
        path, record = _resolve(spec, "ultralytics", "detector")
        if path.is_dir():
            candidates = sorted(path.glob("*.pt")) + sorted(path.glob("*.onnx"))
            if not candidates:
                raise ValueError(f"{path}: no Ultralytics model file (*.pt, *.onnx) in the folder")
            path = candidates[0]
        # a registry name goes through load_detector's registered path (it runs the model at its training size)
        target = str(spec) if str(spec) in registry.REGISTRY and not Path(spec).exists() else str(path)
        loaded = load_detector(f"ultralytics:{target}", device=device_name)
        loaded.batch_size = int(batch_size)
        record.name = loaded.name
        return loaded, record
    raise ValueError(f"unknown detector {detector!r}; expected 'default', 'yolox-tiny', 'ultralytics:<file>' "
                     "or 'ultralytics' with weights")


# ----------------------------------------------------------------------------------------------------------
# Streaming helpers
# ----------------------------------------------------------------------------------------------------------


ClipsLike = ClipSource | str | os.PathLike | Iterable[tuple[str, Clip]] | Iterable[Clip]


def iter_clip_pairs(clips: ClipsLike, *, video: bool = True, prefetch: int = 0,
                    ) -> tuple[Iterator[tuple[str, Clip]], int | None]:
    """``(iterator of (clip_id, Clip), total or None)`` for a source spec, a :class:`ClipSource` or an iterable.

    ``prefetch``: for a :class:`ClipSource`, decode at least this many clips ahead (e.g. the next chunk while the
    current one is computed).
    """
    if isinstance(clips, (str, os.PathLike)):
        clips = open_clips(clips, video=video)
    total = len(clips) if hasattr(clips, "__len__") else None
    if isinstance(clips, ClipSource):
        iterable: Iterable = clips.iter(prefetch=max(clips.prefetch, int(prefetch)))
    else:
        iterable = clips

    def pairs() -> Iterator[tuple[str, Clip]]:
        seen: set[str] = set()
        for index, item in enumerate(iterable):
            if isinstance(item, Clip):
                clip_id, clip = item.clip_id or f"clip{index:05d}", item
            else:
                clip_id, clip = item
            clip_id = str(clip_id)
            if clip_id in seen:
                raise ValueError(f"clip id {clip_id!r} appears twice; ids name the per-clip CSV files")
            seen.add(clip_id)
            yield clip_id, clip

    return pairs(), total


def _chunks(pairs: Iterator[tuple[str, Clip]], size: int) -> Iterator[list[tuple[str, Clip]]]:
    chunk: list[tuple[str, Clip]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _progress(total: int | None, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="clip", disable=not enabled, leave=False)


def _check_audio(clip_id: str, clip: Clip) -> np.ndarray:
    if int(clip.sample_rate) != SELD_SAMPLE_RATE:
        raise ValueError(f"clip {clip_id}: audio at {clip.sample_rate} Hz; SELD needs {SELD_SAMPLE_RATE}")
    audio = np.asarray(clip.audio)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"clip {clip_id}: audio must be stereo (2, N); got shape {audio.shape}")
    return audio.astype(np.float32, copy=False)


def _check_video(clip_id: str, clip: Clip, num_frames: int) -> np.ndarray:
    video = np.asarray(clip.video)
    try:
        check_frames(video)
    except ValueError as error:
        raise ValueError(f"clip {clip_id}: {error}") from None
    if video.shape[0] != num_frames:
        raise ValueError(f"clip {clip_id}: {video.shape[0]} video frames; the matcher expects {num_frames}")
    return video


def _detect_many(detector: PersonDetector, videos: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Detector rows ``(M, 6)`` per video, all frames of all videos in one :meth:`detect` call."""
    if not videos:
        return []
    frames = np.concatenate(videos, axis=0) if len(videos) > 1 else videos[0]
    boxes = detector.detect(frames)
    if len(boxes) != len(frames):
        raise ValueError(f"detector {getattr(detector, 'name', detector)!r} returned {len(boxes)} frames of boxes "
                         f"for {len(frames)} frames")
    out, start = [], 0
    for video in videos:
        out.append(detection_rows(boxes[start:start + len(video)]))
        start += len(video)
    return out


def predict_seld_rows(seld: SELDPredictor, clips: ClipsLike, *, chunk_size: int = 32, progress: bool = False,
                      ) -> Iterator[tuple[str, np.ndarray]]:
    """Official SELD rows ``(R, 3)`` per clip, windows batched across ``chunk_size`` clips; yields in order."""
    pairs, total = iter_clip_pairs(clips, video=False, prefetch=chunk_size)
    with _progress(total, progress, "SELD") as bar:
        for chunk in _chunks(pairs, chunk_size):
            predictions = seld.predict([_check_audio(i, c) for i, c in chunk])
            for (clip_id, _), prediction in zip(chunk, predictions):
                yield clip_id, np.asarray(prediction.rows, dtype=np.float64).reshape(-1, 3)
            bar.update(len(chunk))


def detect_rows(detector: PersonDetector, clips: ClipsLike, *, chunk_size: int = 8, progress: bool = False,
                ) -> Iterator[tuple[str, np.ndarray]]:
    """Official detection rows ``(M, 6)`` per clip, frames of ``chunk_size`` clips per detector call."""
    pairs, total = iter_clip_pairs(clips, video=True, prefetch=chunk_size)
    with _progress(total, progress, "detect") as bar:
        for chunk in _chunks(pairs, chunk_size):
            videos = []
            for clip_id, clip in chunk:
                video = np.asarray(clip.video)
                try:
                    check_frames(video)
                except ValueError as error:
                    raise ValueError(f"clip {clip_id}: {error}") from None
                videos.append(video)
            for (clip_id, _), rows in zip(chunk, _detect_many(detector, videos)):
                yield clip_id, rows
            bar.update(len(chunk))


# ----------------------------------------------------------------------------------------------------------
# The evaluator
# ----------------------------------------------------------------------------------------------------------


class SpatialAVAlignEvaluator:
    """Spatial AV-Align with resident models, batched across clips, with calibration controls.

    Args:
        seld: a :class:`SELDInference` (or any object with its ``predict``), or a ``StereoSELDModel`` (wrapped in
            :class:`SELDInference` on ``device``).
        detector: a :class:`PersonDetector`.
        calibration (`bool` or sequence of names, *optional*, defaults to `True`): which controls of
            :data:`CALIBRATIONS` to compute (``True`` = all, ``False`` = none).
        chunk_size (`int`, *optional*, defaults to 16): clips processed together (their SELD windows share
            batches; their frames go to one detector call). Memory grows with it (about 8 MB of frames per clip,
            doubled when the flip control runs).
        config (`SpatialAlignConfig`, *optional*): the matching rule (default: the official one).
        device: where a bare SELD model runs.
        weights: records of the weights used (filled by :meth:`from_pretrained`), copied into results.
        overlap (`bool`, *optional*, defaults to `True`): run a chunk's SELD call (its STFT features are
            single-threaded NumPy) in a helper thread while the detector runs, so both cores stay busy. The
            computations are the same either way.
    """

    def __init__(
        self,
        seld: SELDPredictor | torch.nn.Module,
        detector: PersonDetector,
        *,
        calibration: bool | Sequence[str] = True,
        chunk_size: int = 16,
        config: SpatialAlignConfig = OFFICIAL,
        device: str | torch.device = "cpu",
        weights: Sequence[WeightsRecord] = (),
        overlap: bool = True,
    ) -> None:
        if isinstance(seld, torch.nn.Module):
            seld = SELDInference(seld, device=device)
        if not hasattr(seld, "predict"):
            raise ValueError(f"seld must be a SELDInference (or have .predict), got {type(seld).__name__}")
        if not hasattr(detector, "detect"):
            raise ValueError(f"detector must be a PersonDetector (with .detect), got {type(detector).__name__}")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.seld = seld
        self.detector = detector
        self.calibration = self._calibration_names(calibration)
        self.chunk_size = int(chunk_size)
        self.config = config
        self.weights = list(weights)
        self.overlap = bool(overlap)

    @staticmethod
    def _calibration_names(calibration: bool | Sequence[str]) -> tuple[str, ...]:
        if calibration is True:
            return CALIBRATIONS
        if calibration is False or calibration is None:
            return ()
        names = tuple(calibration)
        unknown = [n for n in names if n not in CALIBRATIONS]
        if unknown:
            raise ValueError(f"unknown calibration controls {unknown}; known: {list(CALIBRATIONS)}")
        return tuple(n for n in CALIBRATIONS if n in names)

    @classmethod
    def from_pretrained(
        cls,
        seld_weights: str | os.PathLike | None = None,
        detector: str | PersonDetector = "default",
        detector_weights: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        detector_batch_size: int = 16,
        **kwargs: Any,
    ) -> "SpatialAVAlignEvaluator":
        """Build from weights specs (see :func:`load_seld`, :func:`load_person_detector`); ``None``/``"default"``
        use the registry defaults (official weights when imported, else the embedded stand-ins)."""
        seld, seld_record = load_seld(seld_weights, device=device, batch_size=batch_size)
        found, det_record = load_person_detector(detector, detector_weights, device=device,
                                                 batch_size=detector_batch_size)
        return cls(seld, found, weights=[seld_record, det_record], **kwargs)

    # -- one chunk ------------------------------------------------------------------------------------------

    def _needed(self) -> tuple[set[str], set[str]]:
        variants = ("official",) + self.calibration
        return ({_VARIANT_INPUTS[v][0] for v in variants}, {_VARIANT_INPUTS[v][1] for v in variants})

    def evaluate_chunk(self, chunk: Sequence[tuple[str, Clip]]) -> list[ClipOutputs]:
        """Official outputs and calibration counts for a few clips, computed together."""
        seld_inputs, det_inputs = self._needed()
        audios = [_check_audio(i, c) for i, c in chunk]
        videos = [_check_video(i, c, self.config.num_video_frames) for i, c in chunk]
        transforms: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "original": lambda a: a, "swapped": swap_channels, "mono": mono_downmix}
        order = [name for name in ("original", "swapped", "mono") if name in seld_inputs]
        batch = [transforms[name](audio) for name in order for audio in audios]
        frames = list(videos) + ([flip_frames(v) for v in videos] if "flipped" in det_inputs else [])
        if self.overlap:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="savg-seld") as pool:
                pending = pool.submit(self.seld.predict, batch)
                rows = _detect_many(self.detector, frames)
                predictions = pending.result()
        else:
            predictions = self.seld.predict(batch)
            rows = _detect_many(self.detector, frames)
        seld_rows = {name: [np.asarray(predictions[k * len(chunk) + i].rows, np.float64).reshape(-1, 3)
                            for i in range(len(chunk))] for k, name in enumerate(order)}
        detections = {"original": rows[: len(chunk)]}
        if "flipped" in det_inputs:
            detections["flipped"] = rows[len(chunk):]
        outputs = []
        for i, (clip_id, clip) in enumerate(chunk):
            hits = match_clip(seld_rows["original"][i], detections["original"][i], self.config, clip_id)
            counts = {}
            for variant in self.calibration:
                audio_key, video_key = _VARIANT_INPUTS[variant]
                flags = match_clip(seld_rows[audio_key][i], detections[video_key][i], self.config, clip_id)
                counts[variant] = (int(flags.sum()), int(len(flags) - flags.sum()))
            outputs.append(ClipOutputs(clip_id, seld_rows["original"][i], detections["original"][i], hits, counts,
                                       dict(clip.meta)))
        return outputs

    # -- many clips -----------------------------------------------------------------------------------------

    def evaluate(
        self,
        clips: ClipsLike,
        *,
        progress: bool = False,
        on_clip: Callable[[Clip, ClipOutputs], None] | None = None,
    ) -> SpatialEvalResult:
        """Score clips.

        Args:
            clips: a source spec (folder, file, ``dataset:split``; see :func:`~savg_hub.evaluation.clips.open_clips`),
                a :class:`ClipSource`, or an iterable of ``(clip_id, Clip)`` pairs or of clips.
            progress: show a progress bar.
            on_clip: called as ``on_clip(clip, outputs)`` once per clip after it is scored, while its decoded
                frames are still in memory (e.g. to write an overlay video without decoding again).

        Returns:
            a :class:`SpatialEvalResult`. Its ``score`` is ``None`` when no clip has a SELD detection.
        """
        started = time.perf_counter()
        pairs, total = iter_clip_pairs(clips, video=True, prefetch=self.chunk_size)
        collected: list[ClipOutputs] = []
        with _progress(total, progress, "Spatial AV-Align") as bar:
            for chunk in _chunks(pairs, self.chunk_size):
                for (clip_id, clip), outputs in zip(chunk, self.evaluate_chunk(chunk)):
                    collected.append(outputs)
                    if on_clip is not None:
                        on_clip(clip, outputs)
                bar.update(len(chunk))
        seconds = time.perf_counter() - started
        logger.info("Spatial AV-Align on %d clips in %.1f s", len(collected), seconds)
        return self.result(collected, seconds)

    def result(self, outputs: Sequence[ClipOutputs], seconds: float = 0.0) -> SpatialEvalResult:
        """Aggregate per-clip outputs (e.g. from :meth:`evaluate_chunk` calls, possibly in other processes) into
        the micro-averaged result and the calibration controls."""
        official = SpatialAVAlignResult(config=self.config)
        calibration = {variant: SpatialAVAlignResult(config=self.config) for variant in self.calibration}
        for clip in outputs:
            official.per_clip.append(ClipSpatialScore(clip.clip_id, clip.num_tp, clip.num_fn))
            official.num_tp += clip.num_tp
            official.num_fn += clip.num_fn
            for variant, (tp, fn) in clip.calibration.items():
                calibration[variant].per_clip.append(ClipSpatialScore(clip.clip_id, tp, fn))
                calibration[variant].num_tp += tp
                calibration[variant].num_fn += fn
        return SpatialEvalResult(official, calibration, list(outputs), seconds, list(self.weights))


def evaluate_spatial(
    clips: ClipsLike,
    *,
    seld_weights: str | os.PathLike | None = None,
    detector: str | PersonDetector = "default",
    detector_weights: str | os.PathLike | None = None,
    device: str = "cpu",
    calibration: bool | Sequence[str] = True,
    progress: bool = False,
) -> SpatialEvalResult:
    """One call: build a :class:`SpatialAVAlignEvaluator` from weights specs and score ``clips``."""
    evaluator = SpatialAVAlignEvaluator.from_pretrained(seld_weights, detector, detector_weights, device=device,
                                                        calibration=calibration)
    return evaluator.evaluate(clips, progress=progress)


__all__ = [
    "CALIBRATIONS",
    "PROTOCOL",
    "PROTOCOL_VERSION",
    "ClipOutputs",
    "SpatialAVAlignEvaluator",
    "SpatialEvalResult",
    "WeightsRecord",
    "detect_rows",
    "evaluate_spatial",
    "flip_frames",
    "load_person_detector",
    "load_seld",
    "mono_downmix",
    "predict_seld_rows",
    "swap_channels",
    "write_detection_rows_csv",
]
