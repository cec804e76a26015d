"""Write synthetic recordings in the STARSS23 release layout (FOA WAV, equirectangular mp4, metadata CSV)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from savg_hub.data.starss23 import Recording, write_metadata
from savg_hub.data.synthetic.audio import render_foa
from savg_hub.data.synthetic.config import SyntheticConfig
from savg_hub.data.synthetic.scene import sample_scene
from savg_hub.data.synthetic.video import write_video
from savg_hub.media.io import write_audio

logger = logging.getLogger(__name__)

TRAIN_SPLIT = "dev-train-synth"
TEST_SPLIT = "dev-test-synth"


def _check_component(kind: str, value: str) -> None:
    if not value or value in (".", "..") or "/" in value or "\\" in value or value != value.strip():
        raise ValueError(f"{kind} must be a plain folder/file name; got {value!r}")


def recording_paths(root: str | os.PathLike, split: str, name: str) -> Recording:
    """Where a recording's three files go: ``ROOT/{foa_dev,video_dev,metadata_dev}/<split>/<name>.*``."""
    _check_component("split", split)
    _check_component("name", name)
    root = Path(root)
    return Recording(
        name=name,
        split=split,
        foa_path=root / "foa_dev" / split / f"{name}.wav",
        video_path=root / "video_dev" / split / f"{name}.mp4",
        metadata_path=root / "metadata_dev" / split / f"{name}.csv",
    )


def generate_recording(
    root: str | os.PathLike, split: str, name: str, seed: int, config: SyntheticConfig | None = None
) -> Recording:
    """Generate one synthetic recording and write it in the STARSS23 layout.

    Writes ``ROOT/foa_dev/<split>/<name>.wav`` (4-channel FOA, ACN/SN3D, ``config.sample_rate``),
    ``ROOT/video_dev/<split>/<name>.mp4`` (equirectangular H.264, ``config.num_video_frames`` frames at
    ``config.fps``, streamed frame by frame) and, last, ``ROOT/metadata_dev/<split>/<name>.csv`` (so a
    recording is listed by :func:`~savg_hub.data.starss23.find_recordings` only once it is complete). Every
    file is written atomically. The same ``seed`` and ``config`` give identical files.

    Args:
        root: release root folder.
        split: split folder, e.g. ``"dev-train-synth"``.
        name: file stem, e.g. ``"fold3_room1_mix001"``.
        seed: scene seed (>= 0).
        config: generator settings (default :class:`SyntheticConfig`).

    Returns:
        The :class:`~savg_hub.data.starss23.Recording`.
    """
    config = config or SyntheticConfig()
    recording = recording_paths(root, split, name)
    started = time.perf_counter()
    scene = sample_scene(seed, config)
    foa = render_foa(scene, config)
    write_audio(recording.foa_path, foa, config.sample_rate, subtype=config.audio_subtype)
    audio_done = time.perf_counter()
    write_video(
        recording.video_path,
        scene,
        config.video_width,
        config.video_height,
        config.frame_rate,
        config.num_video_frames,
        crf=config.video_crf,
        preset=config.video_preset,
    )
    write_metadata(recording.metadata_path, scene.metadata())
    logger.debug(
        "generated %s/%s (seed %d): audio %.1f s, video %.1f s",
        split,
        name,
        seed,
        audio_done - started,
        time.perf_counter() - audio_done,
    )
    return recording


def recording_seed(seed: int, index: int) -> int:
    """Scene seed of the ``index``-th recording of a set generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def plan_recordings(
    num_recordings: int, seed: int = 0, test_fraction: float = 1 / 3
) -> list[tuple[str, str, int]]:
    """``(split, name, scene seed)`` of each recording of :func:`generate_starss23`, train recordings first.

    ``round(num_recordings * test_fraction)`` recordings go to ``dev-test-synth`` (named
    ``fold4_room<k>_mix001``),
    the rest to ``dev-train-synth`` (``fold3_room<k>_mix001``); with two or more recordings each split gets at
    least one unless ``test_fraction`` is 0.
    """
    if int(num_recordings) != num_recordings or num_recordings < 1:
        raise ValueError(f"num_recordings must be a positive integer; got {num_recordings}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1); got {test_fraction}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    num_test = int(round(num_recordings * test_fraction))
    if num_recordings >= 2 and test_fraction > 0:
        num_test = min(max(num_test, 1), num_recordings - 1)
    elif num_recordings == 1:
        num_test = 0
    num_train = num_recordings - num_test
    plan = [(TRAIN_SPLIT, f"fold3_room{k + 1}_mix001", recording_seed(seed, k)) for k in range(num_train)]
    plan += [
        (TEST_SPLIT, f"fold4_room{k + 1}_mix001", recording_seed(seed, num_train + k))
        for k in range(num_test)
    ]
    return plan


def generate_starss23(
    root: str | os.PathLike,
    num_recordings: int,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    *,
    test_fraction: float = 1 / 3,
    progress: bool = True,
) -> list[Recording]:
    """Generate a synthetic STARSS23-format release: ``num_recordings`` recordings split into
    ``dev-train-synth`` and ``dev-test-synth`` (see :func:`plan_recordings`). Deterministic in ``seed``.

    Args:
        root: release root folder (created).
        num_recordings: how many recordings.
        seed: seed of the whole set.
        config: generator settings (default :class:`SyntheticConfig`).
        test_fraction: share of recordings in the test split.
        progress: show a tqdm progress bar.

    Returns:
        The recordings, train first, in generation order.
    """
    from tqdm.auto import tqdm

    config = config or SyntheticConfig()
    plan = plan_recordings(num_recordings, seed, test_fraction)
    recordings = []
    for split, name, scene_seed in tqdm(plan, desc="synthetic STARSS23", unit="rec", disable=not progress):
        recordings.append(generate_recording(root, split, name, scene_seed, config))
    logger.info("generated %d synthetic recordings under %s", len(recordings), root)
    return recordings
