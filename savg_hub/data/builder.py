"""The SVGSA24 builder: STARSS23 recordings -> 5-s perspective clips with stereo audio, curated as in the paper.

For every recording (STARSS23 split ``dev-train-*`` -> ``dev``, ``dev-test-*`` -> ``eval``):

1. Windows of 5 s start every ``hop`` seconds (0.5 s for ``dev``); each is viewed from horizontal angles every
   ``yaw_step`` degrees (10° for ``dev``). The ``eval`` split uses its own, sparser steps (configurable).
2. Curation on the metadata (per window, then per angle). A candidate (window, angle) is kept only if
   only speech (0, 1) and instrument (9) classes are active, no two events overlap in any 100-ms frame,
   events cover at least 80% of the 50 frames, and every event is on screen at that angle.
3. Audio: the FOA window is rotated by the view angle and converted to stereo (L = W + Y, R = W - Y),
   high-pass filtered, resampled to 16 kHz and amplified by +38 dB; candidates whose peak then reaches the
   clipping level are dropped. (All of these steps are linear, so the filter, resampler and gain run once
   per window on the four FOA channels and each angle is two weighted sums.)
4. Video: the 360° video is decoded once, streaming; only frames that a kept clip uses (20 frames at 4 fps)
   are converted to RGB, each rendered once per angle that needs it (equirect -> 100° perspective, 256x144,
   letterboxed to 256x256). Memory holds at most the frames of the clips still open, whatever the length of
   the recording.

Every rejection is counted by reason (:data:`REJECTION_REASONS`, first failing rule). Output is a script-free
Hugging Face dataset folder (:mod:`savg_hub.data.hf_dataset`). The build runs in ``OUT.partial``; finished
recordings are recorded there, so an interrupted build resumes where it stopped, and ``OUT`` appears only
when everything is done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from savg_hub.data.hf_dataset import (
    DATA_DIR,
    DatasetInfo,
    ShardWriter,
    SplitStats,
    empty_labels,
    safe_key,
    split_sizes,
    write_info,
)
from savg_hub.data.starss23 import (
    METADATA_DTYPE,
    FoaReader,
    Recording,
    STARSS23FormatError,
    read_metadata,
    split_of,
)
from savg_hub.geometry import PerspectiveRenderer, PerspectiveView, wrap_azimuth
from savg_hub.media.io import encode_audio_bytes, encode_mp4_bytes
from savg_hub.utils.files import atomic_write_text

logger = logging.getLogger(__name__)

REJECTION_REASONS: tuple[str, ...] = (
    "non_target_class",
    "overlap",
    "low_coverage",
    "offscreen",
    "clipping",
    "source_too_short",
)
"""Why a candidate (window, angle) was dropped, in the order the rules are checked."""

_FRAME = Fraction(1, 10)  # one STARSS23 metadata frame, seconds


@dataclass
class BuilderConfig:
    """Every parameter of the SVGSA24 conversion and curation.

    Args:
        window_seconds: clip length in seconds (multiple of 0.1).
        dev_window_hop: seconds between window starts in the ``dev`` split (paper: 0.5).
        dev_yaw_step: degrees between view angles in ``dev`` (paper: 10).
        eval_window_hop: seconds between window starts in ``eval`` (the paper's evaluation set uses other
            steps than the development set without stating them; this toolkit's default is 2.5).
        eval_yaw_step: degrees between view angles in ``eval`` (toolkit default 30).
        split_map: STARSS23 split-folder prefix -> SVGSA24 split.
        hfov_deg: horizontal field of view of the perspective view.
        picture_width: picture width in pixels.
        picture_height: picture height in pixels.
        vfov_deg: vertical field of view; ``None`` = square pixels (67.6° for 100°, 256x144).
        pad_top: black rows above the picture.
        pad_bottom: black rows below the picture.
        fps: output frame rate.
        sample_rate: output audio rate in Hz.
        class_map: STARSS23 class id -> SVGSA24 class (0 speech, 1 instrument); other classes are non-targets.
        min_coverage: minimum fraction of a window's 100-ms frames with an active event.
        highpass_hz: cut-off of the Butterworth high-pass in Hz (not stated in the paper; toolkit default).
        highpass_order: order of that filter (applied forward and backward: zero phase).
        gain_db: gain after conversion to stereo, dB (paper: +38).
        clip_level: a candidate is dropped when its peak absolute sample reaches this level after the gain.
        video_crf: x264 CRF of the stored clips.
        video_preset: x264 preset.
        shard_rows: clips per parquet shard.
        num_workers: threads encoding clips while the next frames decode.
    """

    window_seconds: float = 5.0
    dev_window_hop: float = 0.5
    dev_yaw_step: float = 10.0
    eval_window_hop: float = 2.5
    eval_yaw_step: float = 30.0
    split_map: dict[str, str] = field(default_factory=lambda: {"dev-train": "dev", "dev-test": "eval"})
    hfov_deg: float = 100.0
    picture_width: int = 256
    picture_height: int = 144
    vfov_deg: float | None = None
    pad_top: int = 56
    pad_bottom: int = 56
    fps: float = 4.0
    sample_rate: int = 16_000
    class_map: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 9: 1})
    min_coverage: float = 0.8
    highpass_hz: float = 100.0
    highpass_order: int = 4
    gain_db: float = 38.0
    clip_level: float = 0.9999
    video_crf: int = 18
    video_preset: str = "medium"
    shard_rows: int = 500
    num_workers: int = 2

    def __post_init__(self) -> None:
        self.class_map = {int(k): int(v) for k, v in self.class_map.items()}
        for name in ("window_seconds", "dev_window_hop", "eval_window_hop"):
            value = getattr(self, name)
            if value <= 0 or abs(value * 10 - round(value * 10)) > 1e-9:
                raise ValueError(f"{name} must be a positive multiple of 0.1 s (a metadata frame); got {value}")
        for name in ("dev_yaw_step", "eval_yaw_step"):
            value = getattr(self, name)
            if not 0 < value <= 360:
                raise ValueError(f"{name} must be in (0, 360] degrees; got {value}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be in [0, 1]; got {self.min_coverage}")
        if self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError(f"fps and sample_rate must be positive; got {self.fps}, {self.sample_rate}")
        frames = self.window_seconds * self.fps
        if abs(frames - round(frames)) > 1e-9:
            raise ValueError(f"window_seconds * fps must be whole frames; got {self.window_seconds} * {self.fps}")
        if set(self.split_map.values()) - {"dev", "eval"}:
            raise ValueError(f"split_map values must be 'dev' or 'eval'; got {self.split_map}")
        if self.highpass_hz < 0 or self.highpass_order < 1:
            raise ValueError(f"bad high-pass {self.highpass_hz} Hz, order {self.highpass_order}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0; got {self.num_workers}")
        PerspectiveView(0.0, self.hfov_deg, self.picture_width, self.picture_height, self.vfov_deg,
                        self.pad_top, self.pad_bottom)

    def view(self, yaw_deg: float) -> PerspectiveView:
        """The perspective camera at STARSS23 azimuth ``yaw_deg``."""
        return PerspectiveView(yaw_deg, self.hfov_deg, self.picture_width, self.picture_height, self.vfov_deg,
                               self.pad_top, self.pad_bottom)

    def steps(self, split: str) -> tuple[float, float]:
        """``(window_hop_seconds, yaw_step_degrees)`` of an SVGSA24 split."""
        if split == "dev":
            return self.dev_window_hop, self.dev_yaw_step
        if split == "eval":
            return self.eval_window_hop, self.eval_yaw_step
        raise ValueError(f"unknown SVGSA24 split {split!r}")

    def yaws(self, split: str) -> list[float]:
        """View angles (STARSS23 azimuths in [-180, 180)) of a split: 0, step, 2*step, ... below 360."""
        _, step = self.steps(split)
        return [float(wrap_azimuth(a)) for a in np.arange(0.0, 360.0 - 1e-9, step)]

    @property
    def frames_per_window(self) -> int:
        """100-ms metadata frames per window."""
        return int(round(self.window_seconds * 10))

    @property
    def video_frames(self) -> int:
        """Output video frames per clip."""
        return int(round(self.window_seconds * self.fps))

    @property
    def num_samples(self) -> int:
        """Output audio samples per clip."""
        return int(round(self.window_seconds * self.sample_rate))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["class_map"] = {str(k): v for k, v in self.class_map.items()}
        return data

    def fingerprint(self) -> str:
        """Hash of every parameter that changes the output (not ``num_workers``)."""
        data = self.to_dict()
        data.pop("num_workers")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------
# Curation (pure functions on metadata rows)


def window_rows(metadata: np.ndarray, start_frame: int, num_frames: int) -> np.ndarray:
    """Rows of ``metadata`` inside ``[start_frame, start_frame + num_frames)`` with frames made window-relative."""
    rows = metadata[(metadata["frame"] >= start_frame) & (metadata["frame"] < start_frame + num_frames)].copy()
    rows["frame"] -= start_frame
    return rows


def curate_window(rows: np.ndarray, num_frames: int, class_map: dict[int, int], min_coverage: float) -> str | None:
    """The angle-independent rule a window breaks (a :data:`REJECTION_REASONS` entry), or ``None`` if it passes.

    Args:
        rows: the window's metadata rows (:data:`~savg_hub.data.starss23.METADATA_DTYPE`, window-relative frames).
        num_frames: frames in the window (50).
        class_map: target classes.
        min_coverage: minimum fraction of frames with an active event.
    """
    if len(rows) and not np.isin(rows["cls"], list(class_map)).all():
        return "non_target_class"
    counts = np.bincount(rows["frame"], minlength=num_frames) if len(rows) else np.zeros(num_frames, int)
    if counts.max(initial=0) > 1:
        return "overlap"
    if np.count_nonzero(counts) < min_coverage * num_frames - 1e-9:
        return "low_coverage"
    return None


def label_events(rows: np.ndarray, view: PerspectiveView, class_map: dict[int, int]) -> tuple[dict[str, list], bool]:
    """Convert a window's rows to labels in ``view``; also whether every event is on screen.

    Returns:
        ``(labels, all_on_screen)`` where ``labels`` maps each :data:`~savg_hub.data.hf_dataset.LABEL_FIELDS`
        name to a list (one entry per row, sorted by frame).
    """
    labels = empty_labels()
    if not len(rows):
        return labels, True
    order = np.argsort(rows["frame"], kind="stable")
    rows = rows[order]
    x, y, on_screen = view.project(rows["azimuth"], rows["elevation"])
    labels["frame"] = rows["frame"].astype(int).tolist()
    labels["class"] = [class_map.get(int(c), -1) for c in rows["cls"]]
    labels["x"] = np.nan_to_num(x, nan=-1.0).astype(np.float32).tolist()
    labels["y"] = np.nan_to_num(y, nan=-1.0).astype(np.float32).tolist()
    labels["starss23_class"] = rows["cls"].astype(int).tolist()
    labels["source"] = rows["source"].astype(int).tolist()
    labels["azimuth"] = np.asarray(wrap_azimuth(rows["azimuth"] - view.yaw_deg), np.float32).reshape(-1).tolist()
    labels["elevation"] = rows["elevation"].astype(np.float32).tolist()
    labels["distance"] = rows["distance"].astype(np.float32).tolist()
    return labels, bool(np.all(on_screen))


# --------------------------------------------------------------------------------------------------------------
# Audio


class WindowAudio:
    """Converts FOA windows of one recording into SVGSA24 stereo clips.

    High-pass, resampling and gain are linear and time-invariant, and rotation + stereo conversion is a fixed
    mix per angle, so they commute: each window's four FOA channels are filtered/resampled once
    (:meth:`prepare`) and each angle is then ``L = W + cY - sX``, ``R = W - cY + sX`` (:meth:`stereo`).

    Args:
        config: builder configuration.
        in_rate: FOA sample rate in Hz.
    """

    def __init__(self, config: BuilderConfig, in_rate: int) -> None:
        from scipy.signal import butter

        self.config = config
        self.in_rate = int(in_rate)
        g = math.gcd(self.in_rate, config.sample_rate)
        self.up, self.down = config.sample_rate // g, self.in_rate // g
        # half a second of context on each side absorbs the filter and resampler transients
        self.margin_in = int(math.ceil(0.5 * self.in_rate / self.down)) * self.down
        self.margin_out = self.margin_in * self.up // self.down
        self.window_in = int(round(config.window_seconds * self.in_rate))
        self.sos = (
            butter(config.highpass_order, config.highpass_hz, btype="highpass", fs=self.in_rate, output="sos")
            if config.highpass_hz > 0 else None
        )
        self.gain = 10.0 ** (config.gain_db / 20.0)

    def prepare(self, reader: FoaReader, start_seconds: Fraction) -> np.ndarray:
        """Filtered, resampled, amplified FOA of one window: ``float64 (4, num_samples)``."""
        from scipy.signal import resample_poly, sosfiltfilt

        start = int(start_seconds * self.in_rate)
        segment = reader.read(start - self.margin_in, start + self.window_in + self.margin_in).astype(np.float64)
        if self.sos is not None:
            segment = sosfiltfilt(self.sos, segment, axis=1)
        if self.up != self.down:
            segment = resample_poly(segment, self.up, self.down, axis=1)
        out = segment[:, self.margin_out : self.margin_out + self.config.num_samples]
        return out * self.gain

    @staticmethod
    def stereo(prepared: np.ndarray, yaw_deg: float) -> np.ndarray:
        """Stereo ``float64 (2, N)`` of a prepared window seen from ``yaw_deg``."""
        c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
        w, y, x = prepared[0], prepared[1], prepared[3]
        side = c * y - s * x
        return np.stack([w + side, w - side])


# --------------------------------------------------------------------------------------------------------------
# Plan: which clips of a recording survive


@dataclass
class PlannedClip:
    """A (window, angle) that passed curation, with everything needed to render it."""

    start_frame: int
    yaw: float
    labels: dict[str, list]
    source_frames: list[int] = field(default_factory=list)

    @property
    def start_seconds(self) -> Fraction:
        return self.start_frame * _FRAME


@dataclass
class RecordingPlan:
    """The kept clips of one recording plus the candidate and rejection counts."""

    recording: Recording
    split: str
    clips: list[PlannedClip]
    candidates: int
    rejections: dict[str, int]


def _video_info(path: Path) -> tuple[int, Fraction, int, int]:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = Fraction(stream.average_rate or stream.guessed_rate)
            frames = int(stream.frames or 0)
            if not frames and container.duration:
                frames = int(container.duration / 1_000_000 * rate)
            return frames, rate, int(stream.codec_context.height), int(stream.codec_context.width)
    except Exception as exc:
        raise STARSS23FormatError(f"unreadable 360° video {path}: {exc}") from exc


def plan_recording(recording: Recording, split: str, config: BuilderConfig) -> RecordingPlan:
    """Curate every candidate (window, angle) of a recording: metadata rules, on-screen test, audio clipping."""
    if recording.video_path is None:
        raise STARSS23FormatError(f"{recording.key} has no video; the builder needs it")
    metadata = read_metadata(recording.metadata_path)
    reader = FoaReader(recording.foa_path)
    num_video_frames, video_rate, _, _ = _video_info(recording.video_path)
    hop, _ = config.steps(split)
    yaws = config.yaws(split)
    hop_frames = int(round(hop * 10))
    duration_frames = int(min(reader.duration, num_video_frames / video_rate) * 10 + 1e-9)
    last_start = duration_frames - config.frames_per_window
    audio = WindowAudio(config, reader.sample_rate)
    rejections: dict[str, int] = defaultdict(int)
    clips: list[PlannedClip] = []
    candidates = 0
    for start_frame in range(0, last_start + 1, hop_frames):
        candidates += len(yaws)
        rows = window_rows(metadata, start_frame, config.frames_per_window)
        reason = curate_window(rows, config.frames_per_window, config.class_map, config.min_coverage)
        if reason is not None:
            rejections[reason] += len(yaws)
            continue
        visible = []
        for yaw in yaws:
            labels, on_screen = label_events(rows, config.view(yaw), config.class_map)
            if on_screen:
                visible.append((yaw, labels))
            else:
                rejections["offscreen"] += 1
        if not visible:
            continue
        prepared = audio.prepare(reader, start_frame * _FRAME)
        for yaw, labels in visible:
            if np.abs(audio.stereo(prepared, yaw)).max() >= config.clip_level:
                rejections["clipping"] += 1
                continue
            clip = PlannedClip(start_frame, yaw, labels)
            clip.source_frames = [
                int(math.floor((start_frame * _FRAME + Fraction(k) / Fraction(config.fps)) * video_rate + Fraction(1, 2)))
                for k in range(config.video_frames)
            ]
            if clip.source_frames[-1] >= num_video_frames:
                rejections["source_too_short"] += 1
                continue
            clips.append(clip)
    return RecordingPlan(recording, split, clips, candidates, dict(rejections))


def clip_id(recording: Recording, clip: PlannedClip) -> str:
    """``<name>_t<start frame>_deg<yaw 0..360>``, unique within a dataset."""
    return f"{recording.name}_t{clip.start_frame:05d}_deg{clip.yaw % 360:05.1f}"


# --------------------------------------------------------------------------------------------------------------
# Rendering: one streaming pass over the 360° video


def iter_video_frames(path: Path, wanted: set[int]) -> Iterable[tuple[int, np.ndarray]]:
    """Decode a video once; yield ``(index, rgb uint8 (H, W, 3))`` for the wanted frame indices, in order.

    Frames that are not wanted are decoded (H.264 needs them) but never converted to RGB.
    """
    import av

    if not wanted:
        return
    last = max(wanted)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                yield index, frame.to_ndarray(format="rgb24")
            if index >= last:
                return


class RecordingRenderer:
    """Renders and encodes the planned clips of one recording in a single streaming pass.

    Args:
        plan: the recording's kept clips.
        config: builder configuration.
        source_dataset: provenance string stored in every row.
    """

    def __init__(self, plan: RecordingPlan, config: BuilderConfig, source_dataset: str) -> None:
        self.plan = plan
        self.config = config
        self.source_dataset = source_dataset
        self.reader = FoaReader(plan.recording.foa_path)
        self.audio = WindowAudio(config, self.reader.sample_rate)
        self.peak_cached_frames = 0
        """Most perspective pictures held at once while rendering (bounded by the open clips, not the length)."""

    def rendered(self) -> Iterable[tuple[PlannedClip, np.ndarray, np.ndarray]]:
        """Yield ``(clip, frames uint8 (T, 256, 256, 3) letterboxed, stereo float32 (2, N))`` in clip order.

        One streaming pass over the 360° video: each wanted frame is converted to RGB once and rendered once per
        angle that needs it; a clip is yielded as soon as its last frame has been decoded.
        """
        clips = sorted(self.plan.clips, key=lambda c: (c.source_frames[-1], c.start_frame, c.yaw))
        if not clips:
            return
        wanted: dict[int, set[float]] = defaultdict(set)
        for clip in clips:
            for index in clip.source_frames:
                wanted[index].add(clip.yaw)
        renderers: dict[float, PerspectiveRenderer] = {}
        cache: dict[tuple[int, float], np.ndarray] = {}
        prepared: dict[int, np.ndarray] = {}
        remaining_per_window: dict[int, int] = defaultdict(int)
        for clip in clips:
            remaining_per_window[clip.start_frame] += 1
        position = 0
        for index, frame in iter_video_frames(self.plan.recording.video_path, set(wanted)):
            for yaw in wanted[index]:
                renderer = renderers.get(yaw)
                if renderer is None:
                    renderer = renderers[yaw] = PerspectiveRenderer(self.config.view(yaw), frame.shape[0], frame.shape[1])
                cache[(index, yaw)] = renderer(frame)
            self.peak_cached_frames = max(self.peak_cached_frames, len(cache))
            while position < len(clips) and clips[position].source_frames[-1] <= index:
                clip = clips[position]
                position += 1
                frames = self.config.view(clip.yaw).letterbox(np.stack([cache[(i, clip.yaw)] for i in clip.source_frames]))
                if clip.start_frame not in prepared:
                    prepared[clip.start_frame] = self.audio.prepare(self.reader, clip.start_seconds)
                stereo = self.audio.stereo(prepared[clip.start_frame], clip.yaw).astype(np.float32)
                remaining_per_window[clip.start_frame] -= 1
                if remaining_per_window[clip.start_frame] == 0:
                    del prepared[clip.start_frame]
                yield clip, frames, stereo
            # frames no open clip needs any more
            oldest = clips[position].source_frames[0] if position < len(clips) else math.inf
            for key in [k for k in cache if k[0] < oldest]:
                del cache[key]
        if position < len(clips):
            raise STARSS23FormatError(
                f"{self.plan.recording.video_path} ended before frame {clips[position].source_frames[-1]}"
            )

    def rows(self, executor: ThreadPoolExecutor | None = None) -> Iterable[dict]:
        """Yield dataset rows (dicts of :func:`~savg_hub.data.hf_dataset.features`) in clip order; with an
        ``executor``, clips are encoded on its threads while the next frames decode."""
        pending: list[Future] = []
        max_pending = max(2, 2 * self.config.num_workers)
        for clip, frames, stereo in self.rendered():
            if executor is None:
                yield self._encode(clip, frames, stereo)
                continue
            pending.append(executor.submit(self._encode, clip, frames, stereo))
            while len(pending) >= max_pending:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()

    def _encode(self, clip: PlannedClip, frames: np.ndarray, stereo: np.ndarray) -> dict:
        cid = clip_id(self.plan.recording, clip)
        mp4 = encode_mp4_bytes(frames, self.config.fps, stereo, self.config.sample_rate,
                               crf=self.config.video_crf, preset=self.config.video_preset)
        flac = encode_audio_bytes(stereo, self.config.sample_rate, format="flac")
        return {
            "clip_id": cid,
            "video": {"bytes": mp4, "path": f"{cid}.mp4"},
            "audio": {"bytes": flac, "path": f"{cid}.flac"},
            "labels": clip.labels,
            "source_dataset": self.source_dataset,
            "source_recording": self.plan.recording.key,
            "start_time": float(clip.start_seconds),
            "yaw": float(clip.yaw),
        }


# --------------------------------------------------------------------------------------------------------------
# The whole build


@dataclass
class BuildResult:
    """What :func:`build_svgsa24` produced."""

    out: Path
    info: DatasetInfo


def build_svgsa24(
    recordings: list[Recording],
    out: str | os.PathLike,
    config: BuilderConfig | None = None,
    *,
    name: str = "SVGSA24",
    source_dataset: str = "STARSS23",
    overwrite: bool = False,
    restart: bool = False,
    progress: bool = True,
    provenance: dict | None = None,
    card_renderer: Callable[[DatasetInfo, dict], str] | None = None,
) -> BuildResult:
    """Build an SVGSA24 dataset folder from STARSS23-layout recordings.

    Args:
        recordings: the recordings (see :func:`~savg_hub.data.starss23.find_recordings`).
        out: destination folder; it appears only when the build completes.
        config: conversion and curation parameters.
        name: dataset name in the card and info.
        source_dataset: provenance stored in each row (``"STARSS23"`` or ``"synthetic STARSS23-format"``).
        overwrite: replace an existing ``out``.
        restart: discard a partial build made with another configuration instead of raising.
        progress: show a progress bar.
        provenance: extra provenance recorded in ``meta/info.json``.
        card_renderer: ``(DatasetInfo, split sizes) -> README.md`` text (default: :func:`savg_hub.data.card.render_dataset_card`).

    Returns:
        :class:`BuildResult` with the folder and its :class:`DatasetInfo`.
    """
    from tqdm.auto import tqdm

    from savg_hub import __version__
    from savg_hub.data.card import git_revision, licence_for, render_dataset_card

    config = config or BuilderConfig()
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    if not recordings:
        raise ValueError("no recordings to build from")
    work = out.with_name(out.name + ".partial")
    state_dir = work / "state"
    fingerprint = {"config": config.fingerprint(), "recordings": sorted(r.key for r in recordings),
                   "name": name, "source_dataset": source_dataset}
    fingerprint_path = state_dir / "build.json"
    if fingerprint_path.exists() and json.loads(fingerprint_path.read_text()) != fingerprint:
        if not restart:
            raise RuntimeError(
                f"{work} holds a partial build with another configuration or recording list; "
                "pass restart=True (--restart) to discard it"
            )
        shutil.rmtree(work)
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(fingerprint_path, json.dumps(fingerprint, indent=2))

    splits = {r.key: split_of(r.split, config.split_map) for r in recordings}
    stats = {s: SplitStats() for s in ("dev", "eval")}
    executor = ThreadPoolExecutor(max_workers=config.num_workers) if config.num_workers > 0 else None
    bar = tqdm(total=len(recordings), desc="SVGSA24", unit="rec", disable=not progress)
    try:
        for recording in recordings:
            split = splits[recording.key]
            done_path = state_dir / f"{safe_key(recording.key)}.json"
            if done_path.exists():
                stats[split].merge(SplitStats.from_dict(json.loads(done_path.read_text())["stats"]))
                bar.update(1)
                continue
            split_dir = work / DATA_DIR / split
            for stale in split_dir.glob(f"{safe_key(recording.key)}-*.parquet"):
                stale.unlink()  # shards of an earlier, interrupted attempt at this recording
            plan = plan_recording(recording, split, config)
            rec_stats = SplitStats(candidates=plan.candidates, rejections=dict(plan.rejections),
                                   recordings=[recording.key])
            with ShardWriter(split_dir, recording.key, max_rows=config.shard_rows) as writer:
                for row in RecordingRenderer(plan, config, source_dataset).rows(executor):
                    writer.write(row)
                    rec_stats.add_row(row)
                    bar.set_postfix(clips=sum(s.num_clips for s in stats.values()) + rec_stats.num_clips)
            atomic_write_text(done_path, json.dumps({"stats": asdict(rec_stats),
                                                     "shards": [p.name for p in writer.shards]}, indent=2))
            stats[split].merge(rec_stats)
            bar.update(1)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    view = config.view(0.0)
    info = DatasetInfo(
        name=name,
        source=source_dataset,
        view={"hfov_deg": view.hfov_deg, "vfov_deg": view.vertical_fov_deg, "width": view.width,
              "height": view.height, "pad_top": view.pad_top, "pad_bottom": view.pad_bottom,
              "square_pixels": config.vfov_deg is None},
        splits={s: asdict(st) for s, st in stats.items() if st.num_clips or st.recordings},
        builder=config.to_dict(),
        provenance={"savg_hub_version": __version__, "git_revision": git_revision(),
                    "recordings": len(recordings), **(provenance or {})},
        license=licence_for(source_dataset)[0],
    )
    write_info(work, info)
    atomic_write_text(work / "README.md", (card_renderer or render_dataset_card)(info, split_sizes(work)))
    shutil.rmtree(state_dir)
    _replace_dir(work, out)
    return BuildResult(out=out, info=info)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``, replacing an existing ``dst`` only after ``src`` is in place."""
    if dst.exists():
        old = dst.with_name(dst.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old)
    else:
        os.replace(src, dst)


def recordings_by_split(recordings: list[Recording], config: BuilderConfig) -> dict[str, list[Recording]]:
    """Group recordings by their SVGSA24 split."""
    grouped: dict[str, list[Recording]] = defaultdict(list)
    for recording in recordings:
        grouped[split_of(recording.split, config.split_map)].append(recording)
    return dict(grouped)


__all__ = [
    "BuilderConfig",
    "BuildResult",
    "METADATA_DTYPE",
    "PlannedClip",
    "REJECTION_REASONS",
    "RecordingPlan",
    "RecordingRenderer",
    "WindowAudio",
    "build_svgsa24",
    "clip_id",
    "curate_window",
    "label_events",
    "plan_recording",
    "window_rows",
]
