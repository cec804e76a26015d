"""FVD, KVD and "FAD" as the official SAVGBench protocol computes them, on clips decoded once.

Official route (reference §6): choose 96 windows of 2 s (10-fps resampled, :mod:`~savg_hub.evaluation.selection`)
from the generated set and 96 from the reference set; I3D logits of each window's 20 frames (after the official
uint8 round trip), AudioCLIP embeddings of each window's 80 000 samples of 44.1-kHz stereo (train-mode BatchNorm
over consecutive batches of 8, [-1, 1] audio where int16 levels are expected); FVD = Fréchet distance of the I3D
logits (thresholded-SVD float32 route), KVD = unbiased cubic-kernel MMD², FAD = 1000 × Fréchet distance of the
AudioCLIP embeddings.

Differences from the release that are not about the metric: clips are decoded once by this toolkit (the release
decodes video with PyAV and audio with moviepy/ffmpeg's resampler; here audio is resampled 16 → 44.1 kHz with a
polyphase filter, then quantised to 16 bits like ffmpeg's s16 output), and the features of a reference selection
are cached on disk keyed by the content of the chosen windows and the weights. A window the release could not
decode would be replaced by the next index; here every clip is decoded before selection, so that never happens
for clips that load at all (the loader reports the ones that do not).

Whole-clip variants (all clips, all 20 frames, the full 5 s of audio), named ``whole_clip_*``, are offered next
to the official numbers with bootstrap confidence intervals; they are not comparable with published numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from savg_hub.evaluation.bootstrap import bootstrap_two_sample
from savg_hub.evaluation.fad import AudioCLIPFeatureExtractor
from savg_hub.evaluation.frechet import (
    FAD_SCALE,
    fad_official,
    format_results_out_line,
    frechet_distance_exact,
    frechet_distance_official,
    kernel_distance_float64,
    kernel_distance_official,
)
from savg_hub.evaluation.fvd import I3DFeatureExtractor, official_uint8_round_trip
from savg_hub.evaluation.selection import (
    OFFICIAL_AUDIO_RATE,
    OFFICIAL_NUM_SAMPLES,
    OFFICIAL_SEED,
    OfficialWindow,
    VideoTiming,
    official_selection,
    window_audio,
)
from savg_hub.evaluation.temporal import quantize_s16
from savg_hub.media.clip import Clip, resample_audio
from savg_hub.utils.files import atomic_path, savg_home

logger = logging.getLogger(__name__)

PROTOCOL = "savgbench-official-04e8d5b"
FEATURE_CACHE_VERSION = 1


def clip_content_id(clip: Clip) -> str:
    """sha256 of a decoded clip's pixels, samples, frame rate and sample rate (hex, 64 chars)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(clip.video).tobytes())
    digest.update(np.ascontiguousarray(clip.audio, dtype=np.float32).tobytes())
    digest.update(f"{float(clip.fps)!r}/{int(clip.sample_rate)}".encode())
    return digest.hexdigest()


def official_audio_44k(clip: Clip) -> np.ndarray:
    """A clip's stereo audio as the official loader sees it: 44.1 kHz, 16-bit levels, float64 ``(2, N)``."""
    audio = np.asarray(clip.audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"clip {clip.clip_id!r}: audio must be stereo (2, N), got shape {audio.shape}")
    resampled = resample_audio(audio, int(clip.sample_rate), OFFICIAL_AUDIO_RATE)
    return quantize_s16(resampled).astype(np.float64)


def window_video(clip: Clip, window: OfficialWindow) -> np.ndarray:
    """A window's frames in the official evaluator's layout: uint8 ``(20, 3, H, W)`` after the uint8 round trip.

    Frames must already be 256x256 (the official resize-and-pad is then a no-op).
    """
    frames = _round_tripped_frames(clip)
    _check_window(clip, window, frames.shape[0])
    return frames[window.source_frames]


def _check_window(clip: Clip, window: OfficialWindow, num_frames: int) -> None:
    if window.source_frames.max() >= num_frames:
        raise ValueError(f"clip {clip.clip_id!r}: window needs frame {window.source_frames.max()}, "
                         f"the clip has {num_frames}")


def _round_tripped_frames(clip: Clip) -> np.ndarray:
    """A clip's frames after the official uint8 round trip, uint8 ``(T, 3, 256, 256)`` (an elementwise map, so
    applying it once per clip equals applying it to every window's frames)."""
    video = np.asarray(clip.video)
    if video.ndim != 4 or video.shape[1:] != (256, 256, 3):
        raise ValueError(f"clip {clip.clip_id!r}: frames must be (T, 256, 256, 3), got {video.shape}")
    frames = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).contiguous()
    return official_uint8_round_trip(frames).numpy()


@dataclass
class WindowExcerpts:
    """What the feature networks see of the selected windows, in selection order.

    The frames are kept once per source clip (windows of a clip overlap, and 96 windows would take 377 MB);
    :attr:`videos` and :meth:`video_batches` gather the windows' frames when needed.

    Attributes:
        frames: uint8 ``(T, 3, 256, 256)`` frames of each source clip after the official uint8 round trip.
        rows: ``(index into frames, source frame indices (20,))`` of each window.
        audio: float64 ``(N, 2, 80000)`` 44.1-kHz 16-bit-level stereo excerpts.
        labels: ``[(clip_id, window_index)]`` of each row.
    """

    frames: list[np.ndarray]
    rows: list[tuple[int, np.ndarray]]
    audio: np.ndarray
    labels: list[tuple[str, int]]

    @classmethod
    def empty(cls) -> "WindowExcerpts":
        return cls([], [], np.zeros((0, 2, 80_000)), [])

    @property
    def num_silent(self) -> int:
        """Windows whose audio is all zeros."""
        return int(np.sum(~np.any(self.audio != 0, axis=(1, 2))))

    def __len__(self) -> int:
        return len(self.labels)

    def _gather(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        rows = self.rows[start:stop]
        if not rows:
            return np.zeros((0, 20, 3, 256, 256), np.uint8)
        first = self.frames[rows[0][0]]
        shape = (len(rows), len(rows[0][1]), *first.shape[1:])
        out = np.empty(shape, np.uint8) if out is None or out.shape != shape else out
        for row, (clip, indices) in enumerate(rows):
            np.take(self.frames[clip], indices, axis=0, out=out[row])
        return out

    @property
    def videos(self) -> np.ndarray:
        """uint8 ``(N, 20, 3, 256, 256)``: every window's frames (a new array)."""
        return self._gather(0, len(self.rows))

    def video_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """The windows' frames in consecutive batches of ``batch_size`` (the last may be smaller), uint8
        ``(B, 20, 3, 256, 256)``. One buffer is reused: copy a batch to keep it past the next one."""
        buffer = None
        for start in range(0, len(self.rows), batch_size):
            buffer = self._gather(start, start + batch_size, buffer)
            yield buffer

    def __getitem__(self, index: slice) -> "WindowExcerpts":
        rows = self.rows[index]
        used = sorted({clip for clip, _ in rows})  # keep only the frames these rows need (cheap to pickle)
        remap = {clip: new for new, clip in enumerate(used)}
        return WindowExcerpts([self.frames[c] for c in used], [(remap[c], i) for c, i in rows],
                              self.audio[index], self.labels[index])

    @staticmethod
    def concatenate(parts: Sequence["WindowExcerpts"]) -> "WindowExcerpts":
        frames: list[np.ndarray] = []
        slots: dict[int, int] = {}  # id(array) -> position: parts cut from one clip share its frames
        rows: list[tuple[int, np.ndarray]] = []
        for part in parts:
            for clip, indices in part.rows:
                array = part.frames[clip]
                if id(array) not in slots:
                    slots[id(array)] = len(frames)
                    frames.append(array)
                rows.append((slots[id(array)], indices))
        audio = (np.concatenate([p.audio for p in parts]) if parts else np.zeros((0, 2, 80_000)))
        return WindowExcerpts(frames, rows, audio, [label for p in parts for label in p.labels])


def window_excerpts(clips: Sequence[Clip] | dict[int, Clip], windows: Sequence[OfficialWindow]) -> WindowExcerpts:
    """Cut the selected windows out of decoded clips (``clips[w.video_index]``; a dict may hold only the clips
    that have windows). Each clip's frames are round-tripped and its audio resampled once."""
    slots: dict[int, int] = {}
    frames: list[np.ndarray] = []
    audio_cache: dict[int, np.ndarray] = {}
    rows, audios, labels = [], [], []
    for w in windows:
        clip = clips[w.video_index]
        if w.video_index not in slots:
            slots[w.video_index] = len(frames)
            frames.append(_round_tripped_frames(clip))
            audio_cache[w.video_index] = official_audio_44k(clip)
        _check_window(clip, w, frames[slots[w.video_index]].shape[0])
        rows.append((slots[w.video_index], np.asarray(w.source_frames)))
        audios.append(window_audio(audio_cache[w.video_index], w))
        labels.append((clip.clip_id or str(w.video_index), w.window_index))
    if not windows:
        return WindowExcerpts.empty()
    return WindowExcerpts(frames, rows, np.stack(audios), labels)


@dataclass
class SetFeatures:
    """Features of one set's selected windows, in selection order.

    Attributes:
        i3d: float32 ``(N, 400)`` I3D logits.
        audioclip: float32 ``(N, 1024)`` AudioCLIP embeddings.
        windows: ``[(clip_id, window_index)]`` of each row.
        num_silent: windows whose audio is all zeros (the release asserts on them and stops).
        cached: whether the features came from the on-disk cache.
    """

    i3d: np.ndarray
    audioclip: np.ndarray
    windows: list[tuple[str, int]]
    num_silent: int = 0
    cached: bool = False


@dataclass
class QualityResult:
    """FVD / KVD / FAD of the official protocol (and the whole-clip variants when computed).

    Attributes:
        fvd: Fréchet distance of I3D logits (float32 TF-GAN route).
        kvd: unbiased cubic polynomial-kernel MMD² of I3D logits.
        fad: 1000 × Fréchet distance of AudioCLIP embeddings.
        num_fake_windows: windows used from the generated set (96 unless it has fewer).
        num_real_windows: windows used from the reference set.
        fake_windows: ``[(clip_id, window_index)]`` in selection order.
        real_windows: same for the reference set.
        num_silent_windows: all-zero audio windows (the release would stop with an AssertionError).
        reference_cached: whether the reference features came from the cache.
        whole_clip: the whole-clip variants (``{name: {"value", "ci_low", "ci_high", ...}}``) or empty.
    """

    fvd: float
    kvd: float
    fad: float
    num_fake_windows: int
    num_real_windows: int
    fake_windows: list[tuple[str, int]]
    real_windows: list[tuple[str, int]]
    num_silent_windows: int = 0
    reference_cached: bool = False
    whole_clip: dict = field(default_factory=dict)

    name = "quality"

    def official_metrics(self) -> dict[str, float]:
        """``{'fvd', 'kvd', 'fad'}`` as the official evaluator appends them (see ``format_results_out_line``)."""
        return {"fvd": self.fvd, "kvd": self.kvd, "fad": self.fad}

    def official_lines(self) -> str:
        """The official ``results.out`` line, ``{'fvd': ..., 'kvd': ..., 'fad': ...}`` and a newline."""
        return format_results_out_line(self.official_metrics()) + "\n"

    def to_dict(self) -> dict:
        """JSON-ready: the official values (``headline`` names them for the report's flat ``scores``), the
        windows used, and the whole-clip variants (their values also at the top level)."""
        data = asdict(self)
        data["fake_windows"] = [list(w) for w in self.fake_windows]
        data["real_windows"] = [list(w) for w in self.real_windows]
        data["protocol"] = PROTOCOL
        for key, entry in self.whole_clip.items():
            data[key] = entry["value"]
        data["headline"] = ["fvd", "kvd", "fad", *self.whole_clip]
        return data


def _timings(clips: Sequence[Clip]) -> list[VideoTiming]:
    return [VideoTiming(c.clip_id or str(i), int(np.asarray(c.video).shape[0]), float(c.fps))
            for i, c in enumerate(clips)]


class QualityEvaluator:
    """Official FVD / KVD / FAD between two sets of decoded clips, models resident.

    Args:
        i3d: I3D feature extractor (its ``batch_size`` is 8 in the official run).
        audioclip: AudioCLIP feature extractor; ``mode="official"`` (train-mode BatchNorm over batches of 8) for
            the official numbers.
        num_samples: windows per set (96).
        seed: the evaluator's seed (42).
        cache_dir: where reference features are cached (default ``$SAVG_HOME/cache/quality``); ``None`` with
            ``use_cache=False`` disables caching.
        weights_id: identifies the feature weights in cache keys (e.g. their sha256); required for caching.
        use_cache: cache reference features on disk.
    """

    def __init__(
        self,
        i3d: I3DFeatureExtractor,
        audioclip: AudioCLIPFeatureExtractor,
        *,
        num_samples: int = OFFICIAL_NUM_SAMPLES,
        seed: int = OFFICIAL_SEED,
        cache_dir: str | os.PathLike | None = None,
        weights_id: str = "",
        use_cache: bool = True,
    ) -> None:
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 (covariances need two samples), got {num_samples}")
        self.i3d = i3d
        self.audioclip = audioclip
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.use_cache = bool(use_cache) and bool(weights_id)
        self.weights_id = weights_id
        self.cache_dir = Path(cache_dir) if cache_dir is not None else savg_home() / "cache" / "quality"

    # ------------------------------------------------------------------------------------------------------
    def _cache_key(self, excerpts: WindowExcerpts) -> str:
        digest = hashlib.sha256()
        record = {"version": FEATURE_CACHE_VERSION, "weights": self.weights_id, "mode": self.audioclip.mode,
                  "batch": [self.i3d.batch_size, self.audioclip.batch_size]}
        digest.update(json.dumps(record, sort_keys=True).encode())
        for batch in excerpts.video_batches(self.i3d.batch_size):  # the same digest as the stacked array's bytes
            digest.update(memoryview(batch).cast("B"))
        digest.update(memoryview(np.ascontiguousarray(excerpts.audio)).cast("B"))
        return digest.hexdigest()

    def cached_features(self, excerpts: WindowExcerpts) -> SetFeatures | None:
        """Features of these excerpts from the on-disk cache, or ``None`` (also when caching is off)."""
        if not self.use_cache:
            return None
        path = self.cache_dir / f"{self._cache_key(excerpts)}.npz"
        if not path.is_file():
            return None
        with np.load(path) as stored:
            logger.info("reference features from cache %s", path.name)
            return SetFeatures(stored["i3d"], stored["audioclip"], list(excerpts.labels), excerpts.num_silent, True)

    def store_features(self, excerpts: WindowExcerpts, features: SetFeatures) -> None:
        """Put features of these excerpts into the on-disk cache (atomically; no-op when caching is off)."""
        if not self.use_cache:
            return
        path = self.cache_dir / f"{self._cache_key(excerpts)}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, i3d=features.i3d, audioclip=features.audioclip)

    def compute_features(self, excerpts: WindowExcerpts) -> SetFeatures:
        """I3D and AudioCLIP features of window excerpts, in order, no cache.

        The excerpts are embedded in consecutive batches from the first one on, so features of the batch-aligned
        slices ``excerpts[k * 8 : (k + 1) * 8]`` computed separately (e.g. in other processes) are identical.
        """
        if excerpts.num_silent:
            logger.warning("%d selected windows have all-zero audio (the official code stops on them)",
                           excerpts.num_silent)
        # Batch by batch, as logits() batches a stacked array (identical features, no (N, 20, 3, 256, 256) copy).
        parts = [self.i3d.logits(batch) for batch in excerpts.video_batches(self.i3d.batch_size)]
        i3d = np.concatenate(parts) if parts else self.i3d.logits(np.zeros((0, 20, 3, 256, 256), np.uint8))
        # official_audio_44k output is on the 16-bit grid, within [-1, 32767/32768]: no clipping copy needed
        audioclip = self.audioclip.embed(excerpts.audio, OFFICIAL_AUDIO_RATE)
        return SetFeatures(i3d, audioclip, list(excerpts.labels), excerpts.num_silent, False)

    def excerpt_features(self, excerpts: WindowExcerpts, *, cache: bool = False) -> SetFeatures:
        """:meth:`compute_features`, through the on-disk cache when ``cache`` (used for reference sets)."""
        found = self.cached_features(excerpts) if cache else None
        if found is not None:
            return found
        features = self.compute_features(excerpts)
        if cache:
            self.store_features(excerpts, features)
        return features

    def set_features(self, clips: Sequence[Clip], windows: Sequence[OfficialWindow], *,
                     cache: bool = False) -> SetFeatures:
        """I3D and AudioCLIP features of ``windows`` of ``clips`` (in order), from the cache when allowed."""
        return self.excerpt_features(window_excerpts(clips, windows), cache=cache)

    def whole_clip_features(self, clips: Sequence[Clip], *, cache: bool = False) -> dict[str, np.ndarray]:
        """Features of whole clips (not windows): I3D logits of all frames, and corrected-mode AudioCLIP
        embeddings (eval BatchNorm, int16 level) of the whole 44.1-kHz stereo signal, of its mid signal
        ``(L + R) / 2`` and of its side signal ``(L - R) / 2`` (each fed as both channels).

        Returns:
            ``{"i3d": (N, 400), "audio": (N, 1024), "mid": (N, 1024), "side": (N, 1024)}`` float32.
        """
        path = None
        if cache and self.use_cache:
            record = {"version": FEATURE_CACHE_VERSION, "weights": self.weights_id, "kind": "whole-clip",
                      "clips": [clip_content_id(c) for c in clips]}
            key = hashlib.sha256(json.dumps(record).encode()).hexdigest()
            path = self.cache_dir / f"whole-{key}.npz"
            if path.is_file():
                with np.load(path) as stored:
                    return {name: stored[name] for name in stored.files}
        corrected = AudioCLIPFeatureExtractor(self.audioclip.model, self.audioclip.device, mode="corrected",
                                              batch_size=self.audioclip.batch_size)
        videos = np.stack([official_uint8_round_trip(torch.from_numpy(np.ascontiguousarray(c.video))
                                                     .permute(0, 3, 1, 2)).numpy() for c in clips])
        audio = np.stack([official_audio_44k(c) for c in clips])  # on the 16-bit grid, within [-1, 1)
        mid = (audio[:, 0] + audio[:, 1]) / 2
        side = (audio[:, 0] - audio[:, 1]) / 2
        features = {
            "i3d": self.i3d.logits(videos),
            "audio": corrected.embed(audio, OFFICIAL_AUDIO_RATE),
            "mid": corrected.embed(np.stack([mid, mid], axis=1), OFFICIAL_AUDIO_RATE),
            "side": corrected.embed(np.stack([side, side], axis=1), OFFICIAL_AUDIO_RATE),
        }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, **features)
        return features

    def whole_clip(self, fake: Sequence[Clip], real: Sequence[Clip], *, num_resamples: int = 1000,
                   level: float = 0.95, seed: int = 0) -> dict[str, dict]:
        """The whole-clip variants over all clips, each with a bootstrap interval (exact float64 Fréchet
        distance, float64 MMD; FAD values × 1000 like the official scale).

        Returns:
            ``{"whole_clip_fvd", "whole_clip_kvd", "whole_clip_fad", "whole_clip_fad_mid",
            "whole_clip_fad_side"}`` each a :meth:`BootstrapInterval.to_dict` plus ``num_fake``/``num_real``.
        """
        if len(fake) < 2 or len(real) < 2:
            raise ValueError(f"whole-clip statistics need >= 2 clips per set, got {len(fake)} and {len(real)}")
        return whole_clip_statistics(self.whole_clip_features(fake), self.whole_clip_features(real, cache=True),
                                     num_resamples=num_resamples, level=level, seed=seed)

    def evaluate(self, fake: Sequence[Clip], real: Sequence[Clip], *, whole_clip: bool = False,
                 num_resamples: int = 1000) -> QualityResult:
        """Official FVD / KVD / FAD of ``fake`` (generated clips, official listing order) against ``real``.

        Args:
            fake: decoded generated clips, in the order the official code lists their files (sorted names).
            real: decoded reference clips, same order rule.
            whole_clip: also compute the whole-clip variants (:meth:`whole_clip`).
            num_resamples: bootstrap replicates of the whole-clip variants.

        Returns:
            :class:`QualityResult`.
        """
        fake_windows, real_windows = official_selection(_timings(fake), _timings(real), self.num_samples, self.seed)
        fake_features = self.set_features(fake, fake_windows)
        real_features = self.set_features(real, real_windows, cache=True)
        extra = self.whole_clip(fake, real, num_resamples=num_resamples) if whole_clip else {}
        return quality_result(fake_features, real_features, extra)


def quality_result(fake: SetFeatures, real: SetFeatures, whole_clip: dict | None = None) -> QualityResult:
    """The official FVD / KVD / FAD from the two sets' window features."""
    return QualityResult(
        fvd=frechet_distance_official(fake.i3d, real.i3d),
        kvd=kernel_distance_official(fake.i3d, real.i3d),
        fad=fad_official(fake.audioclip, real.audioclip),
        num_fake_windows=len(fake.windows), num_real_windows=len(real.windows),
        fake_windows=fake.windows, real_windows=real.windows,
        num_silent_windows=fake.num_silent + real.num_silent, reference_cached=real.cached,
        whole_clip=dict(whole_clip or {}),
    )


def whole_clip_statistics(fake: dict[str, np.ndarray], real: dict[str, np.ndarray], *, num_resamples: int = 1000,
                          level: float = 0.95, seed: int = 0) -> dict[str, dict]:
    """The whole-clip variants from whole-clip features (:meth:`QualityEvaluator.whole_clip_features`), each with a
    percentile bootstrap interval (exact float64 Fréchet distance, float64 MMD; FAD values × 1000)."""

    def fad(x: np.ndarray, y: np.ndarray) -> float:
        return frechet_distance_exact(x, y) * FAD_SCALE

    plan = {
        "whole_clip_fvd": (frechet_distance_exact, "i3d"),
        "whole_clip_kvd": (kernel_distance_float64, "i3d"),
        "whole_clip_fad": (fad, "audio"),
        "whole_clip_fad_mid": (fad, "mid"),
        "whole_clip_fad_side": (fad, "side"),
    }
    results = {}
    for name, (statistic, key) in plan.items():
        interval = bootstrap_two_sample(statistic, fake[key], real[key], num_resamples=num_resamples, level=level,
                                        seed=seed)
        results[name] = {**interval.to_dict(), "num_fake": len(fake[key]), "num_real": len(real[key])}
    return results


# ----------------------------------------------------------------------------------------------------------
# Feature networks: the official weights when available, else clearly labelled random-init stand-ins
# ----------------------------------------------------------------------------------------------------------

STAND_IN_I3D_CONFIG = {"width_divisor": 8}
STAND_IN_AUDIOCLIP_CONFIG = {"n_fft": 512, "win_length": 400, "layers": (1, 1, 1, 1), "groups": 4,
                             "width_per_group": 4, "base_channels": 16}
"""Small stand-ins: same layout (I3D at 1/8 width; AudioCLIP with a 257-bin Fourier front end at the official hop
and a one-block-per-stage ResNeXt trunk), so that an offline run stays cheap on a CPU."""


def _stand_in(model_class, config: dict, seed: int):
    """A seeded random-init model whose features keep their spread through depth: convolutions and linear layers
    get variance-preserving (He) initialisation, so eval-mode activations neither vanish nor explode."""
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(**config)
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=module.in_features ** -0.5)
                nn.init.zeros_(module.bias)
    return model.eval()


def load_quality_models(
    i3d_weights: str | os.PathLike | None = None,
    audioclip_weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    audioclip_mode: str = "official",
    allow_stand_in: bool = True,
    stand_in_seed: int = 0,
) -> tuple[I3DFeatureExtractor, AudioCLIPFeatureExtractor, list]:
    """The FVD/KVD and FAD feature extractors, with records of the weights they use.

    Args:
        i3d_weights: a weights spec for I3D (registry name, converted folder, official ``i3d_pretrained_400.pt``);
            ``None`` = the registry default (the official weights once imported with ``savg weights import``).
        audioclip_weights: same for AudioCLIP (official ``AudioCLIP-Full-Training.pt``).
        device: torch device.
        audioclip_mode: ``"official"`` or ``"corrected"`` (see :class:`AudioCLIPFeatureExtractor`).
        allow_stand_in: when no weights are named and the official ones are not available offline, use
            randomly initialised (seeded) small networks of the same design instead of failing. Their scores only
            compare runs made with the same stand-ins; results files flag them (``source: "stand-in"``).
        stand_in_seed: seed of the stand-ins' initialisation.

    Returns:
        ``(i3d_extractor, audioclip_extractor, [WeightsRecord, WeightsRecord])``.
    """
    from savg_hub import weights as registry
    from savg_hub.evaluation.spatial_eval import WeightsRecord, _resolve
    from savg_hub.models.audioclip import AudioCLIPAudioModel
    from savg_hub.models.i3d import InceptionI3DModel

    models, records = [], []
    for role, kind, spec, model_class, stand_in_config in (
        ("i3d", "i3d", i3d_weights, InceptionI3DModel, STAND_IN_I3D_CONFIG),
        ("audioclip", "audioclip", audioclip_weights, AudioCLIPAudioModel, STAND_IN_AUDIOCLIP_CONFIG),
    ):
        if spec is not None:
            path, record = _resolve(spec, kind, role)
            models.append(model_class.from_pretrained(str(path)))
            records.append(record)
            continue
        default, _ = registry.default_weights(kind)
        try:
            path, record = _resolve(default, kind, role)
        except registry.WeightsError as error:
            if not allow_stand_in:
                raise
            logger.warning("%s weights unavailable (%s); using a random-init stand-in (scores are not comparable "
                           "with published numbers)", role, error)
            model = _stand_in(model_class, stand_in_config, stand_in_seed)
            models.append(model)
            records.append(WeightsRecord(role=role, kind=kind, spec=None, path=None, sha256=None,
                                         source="stand-in",
                                         name=f"{kind} stand-in: random init seed {stand_in_seed}, "
                                              f"config {json.dumps(stand_in_config)}"))
            continue
        models.append(model_class.from_pretrained(str(path)))
        records.append(record)
    i3d = I3DFeatureExtractor(models[0], device=device, batch_size=8)
    audioclip = AudioCLIPFeatureExtractor(models[1], device=device, mode=audioclip_mode, batch_size=8)
    return i3d, audioclip, records


def weights_id(records: Sequence) -> str:
    """A cache key part naming the feature weights (their sha256, or the stand-ins' description)."""
    return hashlib.sha256(json.dumps([[r.role, r.sha256, r.name] for r in records]).encode()).hexdigest()
