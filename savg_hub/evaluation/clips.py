"""Clip sources for the evaluators: folders of mp4, lists of files, or SVGSA24-format datasets.

Every source yields ``(clip_id, Clip)`` pairs, each clip decoded once, in a stable order, with decoding running
ahead of the consumer in a small thread pool (a bounded number of clips in flight, so memory stays flat).

Accepted specs (:func:`open_clips`):

* a folder: its ``*.mp4`` files, sorted by name (a ``name.flac``/``name.wav`` next to ``name.mp4`` is the clip's
  lossless audio and is preferred); with ``video=False`` a folder of only ``.wav``/``.flac`` files works too;
* a list of files (mp4, or wav/flac when ``video=False``);
* a dataset: a local dataset folder (``data/<split>/*.parquet``, as the builder and importer write) or a
  ``datasets.load_dataset`` id, with the split after a colon: ``demo-set/:eval``, ``sony/svgsa24:eval``.

Official-format clips (MP3-in-MP4) read as any other (:func:`~savg_hub.media.clip.read_clip`).

Example::

    with open_clips("generated/") as source:
        for clip_id, clip in source:          # clip.video uint8 (20, 256, 256, 3), clip.audio float32 (2, 80000)
            ...
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from savg_hub.media.clip import SIDECAR_EXTENSIONS, SVGSA24_CLIP, Clip, ClipSpec, find_sidecar, read_clip
from savg_hub.media.io import MediaError, read_audio, read_media

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4",)
AUDIO_ONLY_EXTENSIONS = (".wav", ".flac")


class ClipSourceError(ValueError):
    """A clip source spec names nothing readable, or one of its clips fails to decode (named in the message)."""


@dataclass
class _Item:
    clip_id: str
    label: str  # what an error message names (a path, or dataset:split[row])
    load: Callable[[], Clip]


@dataclass
class ClipSource:
    """An ordered, sized collection of clips, decoded on demand with a bounded prefetch.

    Args:
        items: the clips (built by :func:`open_clips`).
        kind: ``"files"`` or ``"dataset"``.
        description: the spec as given (for reports).
        split: the dataset split, when ``kind == "dataset"``.
        revision: what identifies the data version, when known (the Hub revision asked for, or a content id of
            the files: names and sizes).
        workers: decoding threads.
        prefetch: clips decoded ahead of the consumer (bounded queue).
        info: more provenance (e.g. the ``datasets`` fingerprint of a Hub dataset).
    """

    items: list[_Item]
    kind: str
    description: str
    split: str | None = None
    revision: str | None = None
    workers: int = 2
    prefetch: int = 4
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def clip_ids(self) -> list[str]:
        """Clip identifiers in iteration order."""
        return [item.clip_id for item in self.items]

    def __iter__(self) -> Iterator[tuple[str, Clip]]:
        return self.iter()

    def iter(self, workers: int | None = None, prefetch: int | None = None) -> Iterator[tuple[str, Clip]]:
        """Yield ``(clip_id, Clip)`` in order; up to ``prefetch`` clips are decoded ahead in ``workers`` threads.

        Raises:
            ClipSourceError: a clip fails to decode; the message names it (the file, or ``dataset:split[row]``).
        """
        workers = self.workers if workers is None else int(workers)
        prefetch = self.prefetch if prefetch is None else int(prefetch)
        if workers < 0 or prefetch < 1:
            raise ValueError(f"workers must be >= 0 and prefetch >= 1; got workers={workers}, prefetch={prefetch}")
        if workers == 0:
            for item in self.items:
                yield item.clip_id, _load(item)
            return
        pending: collections.deque[tuple[_Item, Future]] = collections.deque()
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="savg-decode")
        try:
            queue = iter(self.items)
            for item in queue:
                pending.append((item, executor.submit(_load, item)))
                if len(pending) >= prefetch:
                    break
            while pending:
                item, future = pending.popleft()
                clip = future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append((nxt, executor.submit(_load, nxt)))
                yield item.clip_id, clip
        finally:
            for _, future in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ClipSource":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _load(item: _Item) -> Clip:
    try:
        clip = item.load()
    except (MediaError, ValueError, OSError) as error:
        message = str(error)
        if item.label not in message:
            message = f"{item.label}: {message}"
        raise ClipSourceError(f"cannot read clip {item.clip_id!r}: {message}") from error
    clip.clip_id = item.clip_id
    return clip


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------


def read_audio_clip(path: str | os.PathLike, spec: ClipSpec = SVGSA24_CLIP) -> Clip:
    """Only the audio of a clip file (mp4 with or without sidecar, or a wav/flac), validated like :func:`read_clip`.

    Returns:
        a :class:`Clip` whose ``video`` is empty, ``uint8 (0, H, W, 3)``, and ``fps`` is ``spec.fps``.
    """
    path = Path(path)
    if path.suffix.lower() in AUDIO_ONLY_EXTENSIONS:
        audio, rate = read_audio(path)
        lossy = False
    else:
        sidecar = find_sidecar(path)
        if sidecar is not None:
            audio, rate = read_audio(sidecar)
            lossy = False
        else:
            data = read_media(path, video=False, audio=True)
            if data.audio is None:
                raise MediaError(f"{path} has no audio stream (and no .flac/.wav sidecar)")
            audio, rate, lossy = data.audio, int(data.sample_rate), data.audio_is_lossy
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] != spec.num_channels:
        raise MediaError(f"audio in {path} has shape {audio.shape}; expected {spec.num_channels} channels "
                         "(left, right)")
    if int(rate) != spec.sample_rate:
        raise MediaError(f"audio in {path} is sampled at {rate} Hz; expected {spec.sample_rate}")
    n = audio.shape[1]
    if n < spec.num_samples or (n > spec.num_samples and (not lossy or n - spec.num_samples > spec.max_codec_padding)):
        raise MediaError(f"audio in {path} has {n} samples; expected {spec.num_samples}")
    audio = np.ascontiguousarray(audio[:, : spec.num_samples])
    if not np.isfinite(audio).all():
        raise MediaError(f"audio in {path} contains NaN or Inf")
    video = np.zeros((0, spec.height, spec.width, 3), np.uint8)
    return Clip(video=video, audio=audio, fps=spec.fps, sample_rate=int(rate), clip_id=path.stem,
                meta={"path": str(path), "audio_only": True})


def _file_items(paths: Sequence[Path], spec: ClipSpec, video: bool) -> list[_Item]:
    items, seen = [], {}
    for path in paths:
        suffix = path.suffix.lower()
        if suffix not in VIDEO_EXTENSIONS and not (not video and suffix in AUDIO_ONLY_EXTENSIONS):
            allowed = VIDEO_EXTENSIONS + (() if video else AUDIO_ONLY_EXTENSIONS)
            raise ClipSourceError(f"{path}: not a clip file (expected {', '.join(allowed)})")
        if not path.is_file():
            raise ClipSourceError(f"clip file not found: {path}")
        clip_id = path.stem
        if clip_id in seen:
            raise ClipSourceError(f"two clips share the id {clip_id!r} (their CSV files would collide): "
                                  f"{seen[clip_id]} and {path}")
        seen[clip_id] = path
        if video:
            load = (lambda p=path: read_clip(p, spec))
        else:
            load = (lambda p=path: read_audio_clip(p, spec))
        items.append(_Item(clip_id, str(path), load))
    return items


def folder_clip_paths(folder: str | os.PathLike, video: bool = True) -> list[Path]:
    """The clip files of a folder: ``*.mp4`` sorted by name; with ``video=False`` and no mp4, ``*.wav``/``*.flac``.

    Sidecar audio next to an mp4 is not a clip of its own.
    """
    folder = Path(folder)
    mp4 = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                 and not p.name.startswith("."))
    if mp4 or video:
        return mp4
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_ONLY_EXTENSIONS
                  and not p.name.startswith("."))


def _content_id(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0".encode())
        sidecar = find_sidecar(path) if path.suffix.lower() in VIDEO_EXTENSIONS else None
        if sidecar is not None:
            digest.update(f"{sidecar.name}\0{sidecar.stat().st_size}\0".encode())
    return "files-" + digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------


def parse_dataset_spec(spec: str) -> tuple[str, str | None]:
    """``"path_or_id:split"`` -> ``(path_or_id, split)``; no colon (or an existing path) -> ``(spec, None)``."""
    if Path(spec).exists() or ":" not in spec:
        return spec, None
    base, split = spec.rsplit(":", 1)
    if not base or not split or "/" in split or "\\" in split:
        return spec, None
    return base, split


def _is_dataset_folder(path: Path) -> bool:
    return path.is_dir() and (path / "data").is_dir() and any((path / "data").glob("*/*.parquet"))


def _dataset_folder_items(folder: Path, split: str | None, spec: ClipSpec, video: bool) -> tuple[list[_Item], str, str]:
    from savg_hub.data.hf_dataset import DatasetFolder, example_to_clip

    dataset = DatasetFolder(folder)
    split = _choose_split(split, dataset.splits, str(folder))
    metas = dataset.metadata(split)
    items = []
    seen: set[str] = set()
    for index, meta in enumerate(metas):
        clip_id = str(meta.get("clip_id") or f"{split}-{index:05d}")
        if clip_id in seen:
            raise ClipSourceError(f"{folder}:{split} holds the clip id {clip_id!r} twice")
        seen.add(clip_id)

        def load(index: int = index) -> Clip:
            clip = example_to_clip(dataset.row(split, index), spec)
            if not video:
                clip.video = clip.video[:0]
            return clip

        items.append(_Item(clip_id, f"{folder}:{split}[{index}]", load))
    shards = sorted((folder / "data" / split).glob("*.parquet"))
    return items, split, _content_id(shards)


def _choose_split(split: str | None, available: Sequence[str], where: str) -> str:
    if split is None:
        if len(available) == 1:
            return available[0]
        raise ClipSourceError(f"{where} has the splits {list(available)}; name one, e.g. {where}:eval")
    if split not in available:
        raise ClipSourceError(f"split {split!r} not in {where}; available: {list(available)}")
    return split


def _hub_dataset_items(repo: str, split: str | None, spec: ClipSpec, video: bool,
                       revision: str | None) -> tuple[list[_Item], str, str | None]:
    from datasets import load_dataset

    from savg_hub.data.hf_dataset import example_to_clip

    try:
        if split is not None:
            dataset = load_dataset(repo, split=split, revision=revision)
        else:
            loaded = load_dataset(repo, revision=revision)
            split = _choose_split(split, list(loaded.keys()), repo)
            dataset = loaded[split]
    except ClipSourceError:
        raise
    except Exception as error:  # network, missing repo, unknown split, offline cache miss
        raise ClipSourceError(f"cannot load dataset {repo!r} (split {split!r}): {error}") from error
    ids = dataset["clip_id"] if "clip_id" in dataset.column_names else [f"{split}-{i:05d}" for i in range(len(dataset))]
    if len(set(ids)) != len(ids):
        raise ClipSourceError(f"{repo}:{split} has duplicate clip ids")
    items = []
    for index, clip_id in enumerate(ids):

        def load(index: int = index) -> Clip:
            clip = example_to_clip(dataset[index], spec)
            if not video:
                clip.video = clip.video[:0]
            return clip

        items.append(_Item(str(clip_id), f"{repo}:{split}[{index}]", load))
    return items, split, getattr(dataset, "_fingerprint", None)


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return (
        len(parts) in (1, 2)
        and all(parts)
        and not text.startswith((".", "~"))
        and not any(text.lower().endswith(ext) for ext in VIDEO_EXTENSIONS + AUDIO_ONLY_EXTENSIONS)
    )


# ----------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------


def open_clips(
    source: str | os.PathLike | Sequence[str | os.PathLike] | ClipSource,
    *,
    split: str | None = None,
    spec: ClipSpec = SVGSA24_CLIP,
    video: bool = True,
    workers: int = 2,
    prefetch: int = 4,
    revision: str | None = None,
) -> ClipSource:
    """A :class:`ClipSource` for a folder, a list of files, or a dataset (see the module docstring).

    Args:
        source: folder, file, list of files, dataset folder or ``load_dataset`` id (``"id:split"`` selects a
            split), or an existing :class:`ClipSource` (returned unchanged).
        split: dataset split (overrides a ``:split`` suffix).
        spec: the clip contract to validate against.
        video: decode video too (``False``: audio only, for SELD; then wav/flac files are accepted).
        workers: decoding threads (0 decodes in the calling thread).
        prefetch: clips decoded ahead (bounded queue).
        revision: Hub dataset revision.

    Raises:
        ClipSourceError: the spec names nothing readable, or holds no clips (the message says which).
    """
    if isinstance(source, ClipSource):
        return source
    common = {"workers": workers, "prefetch": prefetch}
    if not isinstance(source, (str, os.PathLike)):
        paths = [Path(p) for p in source]
        if not paths:
            raise ClipSourceError("no clip files given")
        if len(paths) == 1 and paths[0].is_dir():
            return open_clips(paths[0], split=split, spec=spec, video=video, workers=workers, prefetch=prefetch,
                              revision=revision)
        items = _file_items(paths, spec, video)
        return ClipSource(items, "files", ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else ""),
                          revision=_content_id(paths), **common)
    text = os.fspath(source)
    base, parsed_split = parse_dataset_spec(text)
    split = split or parsed_split
    path = Path(base)
    if _is_dataset_folder(path):
        items, chosen, content = _dataset_folder_items(path, split, spec, video)
        if not items:
            raise ClipSourceError(f"{path}:{chosen} holds no clips")
        return ClipSource(items, "dataset", text, split=chosen, revision=content, **common)
    if path.is_dir():
        if split is not None:
            raise ClipSourceError(f"{path} is a folder of clip files, not a dataset folder; it has no split {split!r}")
        paths = folder_clip_paths(path, video)
        if not paths:
            wanted = "*.mp4" if video else "*.mp4, *.wav or *.flac"
            raise ClipSourceError(f"no clips ({wanted}) in {path}")
        return ClipSource(_file_items(paths, spec, video), "files", text, revision=_content_id(paths), **common)
    if path.is_file():
        return ClipSource(_file_items([path], spec, video), "files", text, revision=_content_id([path]), **common)
    if _looks_like_hub_id(base):
        try:
            items, chosen, fingerprint = _hub_dataset_items(base, split, spec, video, revision)
        except ClipSourceError as error:
            raise ClipSourceError(f"{base!r} is not a local folder or file, and as a dataset id: {error}") from error
        if not items:
            raise ClipSourceError(f"{base}:{chosen} holds no clips")
        return ClipSource(items, "dataset", text, split=chosen, revision=revision,
                          info={"fingerprint": fingerprint}, **common)
    raise ClipSourceError(f"{text!r} is not a folder, a clip file, a dataset folder or a dataset id")


__all__ = [
    "AUDIO_ONLY_EXTENSIONS",
    "SIDECAR_EXTENSIONS",
    "ClipSource",
    "ClipSourceError",
    "folder_clip_paths",
    "open_clips",
    "parse_dataset_spec",
    "read_audio_clip",
]
