"""Which clips the official FVD / KVD / FAD look at (reference §6.2): 96 random 2-s windows, not whole clips.

The official evaluator lists the videos of a folder recursively (names sorted at each level), cuts every video
into overlapping windows of 20 frames after resampling it to **10 fps** (torchvision ``VideoClips`` with
``frame_rate=10``, one frame between window starts), numbers the windows of all videos one after the other,
shuffles that list once with Python's ``random`` seeded with 42 — the generated ("fake") set first, then the
reference ("real") set on the same random stream — and keeps the first 96 entries of each list. A window that
fails to decode is replaced by the next window index (modulo the number of windows).

For a 20-frame 4-fps clip the resampled video has 50 frames (source frames ``floor(0.4 i)``), so there are 31
windows; window ``c`` shows source frames ``floor(0.4 (c + j))``, ``j = 0..19`` — 2 s of video with duplicated
frames — and its audio is the 44.1-kHz stereo signal from ``floor(0.4 c) / 4`` s, cut to 80 000 samples
(≈ 1.81 s) and zero-padded on the right if the file ends first.

Everything here is pure and cheap: it works from the videos' frame counts and frame rates, so a selection can
be planned (and tested) before anything is decoded.

Example::

    fake = [VideoTiming("a.mp4", 20, 4.0), VideoTiming("b.mp4", 20, 4.0)]
    real = [VideoTiming("r.mp4", 20, 4.0)]
    fake_windows, real_windows = official_selection(fake, real)      # 62 and 31 windows (fewer than 96)
    fake_windows[0].source_frames                                    # int64 (20,), frame indices at 4 fps
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

OFFICIAL_SEED = 42
OFFICIAL_NUM_SAMPLES = 96
OFFICIAL_WINDOW_FRAMES = 20
OFFICIAL_FRAME_RATE = 10.0
OFFICIAL_AUDIO_RATE = 44_100
OFFICIAL_AUDIO_SAMPLES = 80_000
OFFICIAL_VIDEO_EXTENSIONS = ("avi", "gif", "mp4")


@dataclass(frozen=True)
class VideoTiming:
    """What the selection needs to know of one video.

    Attributes:
        path: the file (any identifier; only carried along).
        num_frames: decoded video frames (20 for an SVGSA24 clip).
        fps: the video's frame rate in frames per second (4.0 for an SVGSA24 clip).
    """

    path: str
    num_frames: int
    fps: float

    def __post_init__(self) -> None:
        if int(self.num_frames) != self.num_frames or self.num_frames < 0:
            raise ValueError(f"{self.path}: num_frames must be a non-negative integer, got {self.num_frames}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"{self.path}: fps must be a positive number, got {self.fps}")


@dataclass(frozen=True)
class OfficialWindow:
    """One selected window.

    Attributes:
        video_index: position of its video in the listing.
        path: its video.
        window_index: window number within the video (0-based).
        global_index: window number over all videos (the index the official code shuffles).
        source_frames: int64 ``(20,)`` indices into the video's own frames (with repeats).
        audio_start: seconds, ``source_frames[0] / fps``.
        audio_end: seconds, ``(source_frames[-1] + 1) / fps``.
    """

    video_index: int
    path: str
    window_index: int
    global_index: int
    source_frames: np.ndarray
    audio_start: float
    audio_end: float

    @property
    def audio_start_sample(self) -> int:
        """First sample of the window's audio at 44.1 kHz (moviepy rounds ``t * fps``)."""
        return int(np.round(self.audio_start * OFFICIAL_AUDIO_RATE))


def list_videos_official(root: str | os.PathLike) -> list[Path]:
    """Video files under ``root`` in the official order: names sorted at each level, folders recursed in place,
    extensions ``avi``/``gif``/``mp4`` (any case)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"reference/generated folder {root} does not exist or is not a folder")
    found: list[Path] = []
    for entry in sorted(os.listdir(root)):
        path = root / entry
        if "." in entry and entry.rsplit(".", 1)[-1].lower() in OFFICIAL_VIDEO_EXTENSIONS:
            found.append(path)
        elif path.is_dir():
            found.extend(list_videos_official(path))
    return found


def resampled_frame_indices(num_frames: int, fps: float, frame_rate: float = OFFICIAL_FRAME_RATE) -> np.ndarray:
    """Source frame of each frame of the video resampled to ``frame_rate`` (torchvision ``VideoClips``).

    ``floor(num_frames * frame_rate / fps)`` frames; frame ``i`` is source frame ``floor(i * fps / frame_rate)``
    computed in float32 as torchvision does (an integer step is a plain stride).

    Returns:
        int64 ``(M,)``.
    """
    total = int(math.floor(num_frames * (float(frame_rate) / fps)))
    step = float(fps) / float(frame_rate)
    if step.is_integer():
        return np.arange(0, num_frames, int(step), dtype=np.int64)[:total]
    return (torch.arange(total, dtype=torch.float32) * step).floor().to(torch.int64).numpy()


def video_windows(num_frames: int, fps: float, window_frames: int = OFFICIAL_WINDOW_FRAMES,
                  frame_rate: float = OFFICIAL_FRAME_RATE) -> np.ndarray:
    """All windows of one video: int64 ``(W, window_frames)`` source frame indices (``W`` may be 0).

    Windows start at every resampled frame (``frames_between_clips = 1``); 31 for a 20-frame 4-fps clip.
    """
    resampled = resampled_frame_indices(num_frames, fps, frame_rate)
    if resampled.size < window_frames:
        return np.zeros((0, window_frames), dtype=np.int64)
    count = resampled.size - window_frames + 1
    return np.stack([resampled[c : c + window_frames] for c in range(count)])


class WindowIndex:
    """The official numbering of all windows of a list of videos (video after video, in listing order)."""

    def __init__(self, videos: Sequence[VideoTiming], window_frames: int = OFFICIAL_WINDOW_FRAMES,
                 frame_rate: float = OFFICIAL_FRAME_RATE) -> None:
        self.videos = list(videos)
        self._windows = [video_windows(v.num_frames, v.fps, window_frames, frame_rate) for v in self.videos]
        self._offsets = np.cumsum([0] + [len(w) for w in self._windows])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def window(self, global_index: int) -> OfficialWindow:
        """The window numbered ``global_index`` (0 <= index < len)."""
        if not 0 <= global_index < len(self):
            raise ValueError(f"window index {global_index} out of range 0..{len(self) - 1}")
        video_index = int(np.searchsorted(self._offsets, global_index, side="right") - 1)
        window_index = int(global_index - self._offsets[video_index])
        video = self.videos[video_index]
        frames = self._windows[video_index][window_index]
        return OfficialWindow(
            video_index=video_index,
            path=video.path,
            window_index=window_index,
            global_index=int(global_index),
            source_frames=frames,
            audio_start=float(frames[0]) / video.fps,
            audio_end=float(frames[-1] + 1) / video.fps,
        )


def official_shuffles(num_fake: int, num_real: int, seed: int = OFFICIAL_SEED) -> tuple[list[int], list[int]]:
    """The two shuffled window-index lists: ``random.seed(seed)``, shuffle ``range(num_fake)``, then shuffle
    ``range(num_real)`` on the same stream (nothing else draws from Python's ``random`` in between)."""
    rng = random.Random(seed)
    fake = list(range(num_fake))
    rng.shuffle(fake)
    real = list(range(num_real))
    rng.shuffle(real)
    return fake, real


def first_decodable(index: int, total: int, decodes: Callable[[int], bool]) -> int:
    """The official fallback: the first index from ``index`` on (wrapping around) whose window ``decodes``.

    Raises:
        ValueError: no window of the set decodes.
    """
    for step in range(total):
        candidate = (index + step) % total
        if decodes(candidate):
            return candidate
    raise ValueError(f"none of the {total} windows could be decoded")


def official_selection(
    fake: Sequence[VideoTiming],
    real: Sequence[VideoTiming],
    num_samples: int = OFFICIAL_NUM_SAMPLES,
    seed: int = OFFICIAL_SEED,
) -> tuple[list[OfficialWindow], list[OfficialWindow]]:
    """The windows the official FVD/KVD/FAD use: the first ``num_samples`` of each shuffled list.

    Args:
        fake: the generated videos in official listing order (:func:`list_videos_official`).
        real: the reference videos, same order.
        num_samples: windows per set (96); fewer when a set has fewer windows.
        seed: the evaluator's seed (42).

    Returns:
        ``(fake_windows, real_windows)`` in the order the official loaders deliver them (batches of 8 are
        consecutive runs of this list, which matters for AudioCLIP's train-mode BatchNorm).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    fake_index, real_index = WindowIndex(fake), WindowIndex(real)
    for name, index in (("generated", fake_index), ("reference", real_index)):
        if len(index) == 0:
            raise ValueError(f"the {name} set has no window of {OFFICIAL_WINDOW_FRAMES} frames at 10 fps "
                             f"(videos: {len(index.videos)}); clips must last at least 2 s")
    fake_order, real_order = official_shuffles(len(fake_index), len(real_index), seed)
    return ([fake_index.window(i) for i in fake_order[:num_samples]],
            [real_index.window(i) for i in real_order[:num_samples]])


def window_audio(audio: np.ndarray, window: OfficialWindow, sample_rate: int = OFFICIAL_AUDIO_RATE,
                 num_samples: int = OFFICIAL_AUDIO_SAMPLES) -> np.ndarray:
    """A window's audio as the official loader cuts it: ``num_samples`` from the window's start, zero-padded on
    the right when the window (or the file) is shorter.

    Args:
        audio: float ``(2, N)`` stereo at ``sample_rate`` (the official loader resamples to 44.1 kHz and forces
            two channels).
        window: the selected window.

    Returns:
        float64 ``(2, num_samples)``.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"audio must be stereo (2, N), got shape {audio.shape}")
    start = int(np.round(window.audio_start * sample_rate))
    stop = min(int(np.round(window.audio_end * sample_rate)), audio.shape[1], start + num_samples)
    out = np.zeros((2, num_samples), dtype=np.float64)
    if stop > start:
        out[:, : stop - start] = audio[:, start:stop]
    return out
