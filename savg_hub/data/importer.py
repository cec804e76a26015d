"""Import the official SVGSA24 release (SAVGBench, Zenodo 17139882) into the toolkit's dataset layout.

The release stores clips as mp4 files (20 frames of 256x256 at 4 fps with a stereo audio track) and, for each
clip, a label CSV found by replacing ``video`` with ``metadata`` in the clip's path and ``.mp4`` with ``.csv``.
Label rows are ``frame, class, x, y``: 10-fps frame, STARSS23 class id (0, 1 or 9), ``x`` in pixels of the
256-wide frame and ``y`` in the 144-row picture (the padded frame's row is ``y + 56``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from savg_hub.data.hf_dataset import (
    DATA_DIR,
    DatasetInfo,
    ShardWriter,
    SplitStats,
    empty_labels,
    split_sizes,
    write_info,
)
from savg_hub.data.starss23 import SVGSA24_CLASS_MAP
from savg_hub.media.clip import SVGSA24_CLIP, ClipSpec, resample_audio, validate_clip
from savg_hub.media.io import MediaError, encode_audio_bytes, read_media
from savg_hub.utils.files import atomic_write_text

logger = logging.getLogger(__name__)

SOURCE_NAME = "SVGSA24 official release"
DEFAULT_SPLIT_FOLDERS = {"video_dev": "dev", "video_eval": "eval"}


def metadata_path_for(clip_path: Path, root: Path) -> Path:
    """The label CSV of a release clip: ``video`` -> ``metadata`` in the path below ``root``, ``.mp4`` -> ``.csv``."""
    relative = clip_path.relative_to(root)
    parts = [part.replace("video", "metadata") for part in relative.parts]
    return root.joinpath(*parts).with_suffix(".csv")


def read_release_labels(path: Path, pad_top: int = SVGSA24_CLIP.pad_top) -> dict[str, list]:
    """Parse one release label CSV (``frame, class, x, y``; no header) into a ``labels`` value."""
    labels = empty_labels()
    text = path.read_text()
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 4:
            raise ValueError(f"{path}:{lineno}: expected frame, class, x, y; got {row}")
        frame, cls = int(float(row[0])), int(float(row[1]))
        if cls not in SVGSA24_CLASS_MAP:
            raise ValueError(f"{path}:{lineno}: class {cls} is not a SVGSA24 target class (0, 1, 9)")
        labels["frame"].append(frame)
        labels["class"].append(SVGSA24_CLASS_MAP[cls])
        labels["x"].append(float(row[2]))
        labels["y"].append(float(row[3]) + pad_top)
        labels["starss23_class"].append(cls)
        labels["source"].append(-1)
        for name in ("azimuth", "elevation", "distance"):
            labels[name].append(math.nan)
    return labels


def _split_for(relative: Path, split_folders: dict[str, str], default: str | None) -> str:
    for part in relative.parts[:-1]:
        if part in split_folders:
            return split_folders[part]
    if default is None:
        raise ValueError(
            f"cannot tell the split of {relative}: no folder named {sorted(split_folders)}; pass split=..."
        )
    return default


def import_svgsa24(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str | None = None,
    split_folders: dict[str, str] | None = None,
    resample: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    spec: ClipSpec = SVGSA24_CLIP,
) -> DatasetInfo:
    """Convert an official SVGSA24 folder (mp4 clips + label CSVs) into a dataset folder.

    Args:
        root: folder of the release (e.g. holding ``video_dev/`` and ``metadata_dev/``), searched recursively.
        out: destination dataset folder (appears only when complete).
        split: split for clips outside a ``video_dev``/``video_eval`` folder.
        split_folders: folder name -> split (default ``{"video_dev": "dev", "video_eval": "eval"}``).
        resample: convert audio at another rate to 16 kHz instead of raising.
        overwrite: replace an existing ``out``.
        progress: show a progress bar.
        spec: the clip contract each clip must meet.

    Returns:
        The written :class:`DatasetInfo`.

    Raises:
        MediaError / ValueError: a clip breaks the contract or its labels are missing or malformed (the message
            names the file); nothing is written under ``out`` then.
    """
    from tqdm.auto import tqdm

    from savg_hub import __version__
    from savg_hub.data.builder import _replace_dir
    from savg_hub.data.card import git_revision, licence_for, render_dataset_card

    root, out = Path(root), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    clips = sorted(p for p in root.rglob("*.mp4") if "metadata" not in p.relative_to(root).as_posix())
    if not clips:
        raise ValueError(f"no .mp4 clips found under {root}")
    folders = split_folders or DEFAULT_SPLIT_FOLDERS
    work = out.with_name(out.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    stats = {"dev": SplitStats(), "eval": SplitStats()}
    writers: dict[str, ShardWriter] = {}
    try:
        for clip_path in tqdm(clips, desc="import SVGSA24", unit="clip", disable=not progress):
            relative = clip_path.relative_to(root)
            clip_split = _split_for(relative, folders, split)
            labels_path = metadata_path_for(clip_path, root)
            if not labels_path.is_file():
                raise ValueError(f"no label CSV for {clip_path} (looked for {labels_path})")
            raw = clip_path.read_bytes()
            media = read_media(raw, video=True, audio=True)
            if media.audio is None:
                raise MediaError(f"{clip_path} has no audio track")
            audio, rate = media.audio, int(media.sample_rate)
            if rate != spec.sample_rate:
                if not resample:
                    raise MediaError(f"audio of {clip_path} is {rate} Hz; expected {spec.sample_rate} (use resample)")
                audio = resample_audio(audio, rate, spec.sample_rate)
            if audio.shape[1] < spec.num_samples:
                raise MediaError(f"truncated audio in {clip_path}: {audio.shape[1]} samples < {spec.num_samples}")
            audio = np.ascontiguousarray(audio[:, : spec.num_samples])
            validate_clip(media.video, media.fps, audio, spec.sample_rate, spec, source=str(clip_path))
            clip_id = relative.with_suffix("").as_posix().replace("/", "__")
            row = {
                "clip_id": clip_id,
                "video": {"bytes": raw, "path": clip_path.name},
                "audio": {"bytes": encode_audio_bytes(np.clip(audio, -1.0, 1.0), spec.sample_rate), "path": f"{clip_path.stem}.flac"},
                "labels": read_release_labels(labels_path, spec.pad_top),
                "source_dataset": SOURCE_NAME,
                "source_recording": relative.as_posix(),
                "start_time": math.nan,
                "yaw": math.nan,
            }
            if clip_split not in writers:
                writers[clip_split] = ShardWriter(work / DATA_DIR / clip_split, f"svgsa24-{clip_split}")
            writers[clip_split].write(row)
            stats[clip_split].add_row(row)
            stats[clip_split].candidates += 1
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        shutil.rmtree(work, ignore_errors=True)
        raise

    info = DatasetInfo(
        name="SVGSA24",
        source=SOURCE_NAME,
        audio_storage="FLAC, 24-bit, stereo (decoded from the release's own audio track)",
        video_storage="the release's original mp4 files, unchanged",
        view={"hfov_deg": 100.0, "vfov_deg": float("nan"), "width": spec.width, "height": spec.picture_height,
              "pad_top": spec.pad_top, "pad_bottom": spec.pad_bottom, "square_pixels": False},
        splits={s: asdict(st) for s, st in stats.items() if st.num_clips},
        builder={},
        provenance={"savg_hub_version": __version__, "git_revision": git_revision(), "recordings": 0,
                    "release_root": root.name,
                    "description": "Imported from the official SVGSA24 release: clips and labels as published; "
                                   "audio re-stored losslessly after decoding, labels' y moved into the padded frame."},
        license=licence_for(SOURCE_NAME)[0],
    )
    write_info(work, info)
    atomic_write_text(work / "README.md", render_dataset_card(info, split_sizes(work)))
    _replace_dir(work, out)
    return info
