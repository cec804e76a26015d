"""The SVGSA24 dataset as a script-free Hugging Face dataset folder.

Layout written by the builder and the importer::

    OUT/README.md                         dataset card with YAML ``configs`` (splits ``dev`` and ``eval``)
    OUT/meta/info.json                    :class:`DatasetInfo`: format, counts, rejections, provenance
    OUT/data/<split>/<shard>.parquet      rows of :data:`FEATURES`, media embedded as bytes

``datasets.load_dataset(OUT)`` returns ``video`` as a torchcodec ``VideoDecoder`` and ``audio`` as an
``AudioDecoder``. **Stereo:** ``example["audio"]["array"]`` is a *mono downmix* (datasets averages the channels);
use ``example["audio"].get_all_samples().data`` (a ``(2, 80000)`` tensor) or :func:`example_to_clip`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from savg_hub.media.clip import SVGSA24_CLIP, Clip, ClipSpec
from savg_hub.media.io import MediaError, read_media
from savg_hub.utils.files import atomic_write_text

logger = logging.getLogger(__name__)

FORMAT_VERSION = "svgsa24-hf-v1"
SPLITS = ("dev", "eval")
DATA_DIR = "data"
INFO_PATH = "meta/info.json"

LABEL_FIELDS: dict[str, str] = {
    "frame": "int32",           # 100-ms label frame within the clip, 0..49
    "class": "int32",           # 0 speech, 1 instrument
    "x": "float32",             # horizontal position, pixels of the 256-wide frame
    "y": "float32",             # vertical position, pixels of the 256x256 padded frame (bars included)
    "starss23_class": "int32",  # original STARSS23 class id (0, 1 or 9)
    "source": "int32",          # STARSS23 source index
    "azimuth": "float32",       # degrees relative to the view centre, STARSS23 sign (+ left)
    "elevation": "float32",     # degrees, + up
    "distance": "float32",      # cm (NaN when unknown)
}
"""Per-event label columns (parallel lists, one entry per active event per 100-ms frame)."""


def features():
    """The ``datasets.Features`` of an SVGSA24 row."""
    from datasets import Audio, Features, List, Value, Video

    return Features(
        {
            "clip_id": Value("string"),
            "video": Video(),
            "audio": Audio(sampling_rate=SVGSA24_CLIP.sample_rate, num_channels=SVGSA24_CLIP.num_channels),
            "labels": {name: List(Value(dtype)) for name, dtype in LABEL_FIELDS.items()},
            "source_dataset": Value("string"),
            "source_recording": Value("string"),
            "start_time": Value("float32"),
            "yaw": Value("float32"),
        }
    )


def empty_labels() -> dict[str, list]:
    """A ``labels`` value with no events."""
    return {name: [] for name in LABEL_FIELDS}


@dataclass
class SplitStats:
    """Counts of one split, accumulated while writing."""

    num_clips: int = 0
    recordings: list[str] = field(default_factory=list)
    label_frames: dict[str, int] = field(default_factory=lambda: {"speech": 0, "instrument": 0})
    clips_with_class: dict[str, int] = field(default_factory=lambda: {"speech": 0, "instrument": 0})
    candidates: int = 0
    rejections: dict[str, int] = field(default_factory=dict)

    def add_row(self, row: dict) -> None:
        self.num_clips += 1
        classes = row["labels"]["class"]
        for cls, name in enumerate(("speech", "instrument")):
            count = sum(1 for c in classes if c == cls)
            self.label_frames[name] += count
            self.clips_with_class[name] += int(count > 0)

    def merge(self, other: "SplitStats") -> None:
        self.num_clips += other.num_clips
        self.recordings += [r for r in other.recordings if r not in self.recordings]
        self.candidates += other.candidates
        for key in self.label_frames:
            self.label_frames[key] += other.label_frames[key]
            self.clips_with_class[key] += other.clips_with_class[key]
        for reason, count in other.rejections.items():
            self.rejections[reason] = self.rejections.get(reason, 0) + count

    @classmethod
    def from_dict(cls, data: dict) -> "SplitStats":
        return cls(**data)


@dataclass
class DatasetInfo:
    """Machine-readable description of a built dataset folder (``meta/info.json``)."""

    name: str
    source: str
    format_version: str = FORMAT_VERSION
    clip: dict = field(default_factory=lambda: asdict(SVGSA24_CLIP))
    audio_storage: str = "FLAC, 24-bit, stereo, lossless"
    video_storage: str = "mp4: H.264 yuv420p + AAC stereo"
    view: dict = field(default_factory=dict)
    class_names: tuple[str, ...] = ("speech", "instrument")
    splits: dict[str, dict] = field(default_factory=dict)
    builder: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    license: str = "cc-by-4.0"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=_json_default)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "DatasetInfo":
        data = json.loads((Path(folder) / INFO_PATH).read_text())
        return cls(**data)


def _json_default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def safe_key(key: str) -> str:
    """A file-system-safe form of a source key such as ``dev-train-sony/fold3_room21_mix001``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "__", key).strip("_")


def shard_name(key: str, index: int) -> str:
    """Shard file name for a source key and a running index: ``<safe key>-<index:05d>.parquet``."""
    return f"{safe_key(key)}-{index:05d}.parquet"


class ShardWriter:
    """Streams rows into parquet shards of at most ``max_rows`` rows, each written atomically.

    A shard becomes visible (renamed from its temporary name) only when it is complete, so an interrupted
    build never leaves a half-written shard under its final name.

    Args:
        directory: ``OUT/data/<split>``.
        key: source key used in shard names.
        max_rows: rows per shard file.
        row_group_rows: rows per parquet row group (media rows are large; keep this small).
    """

    def __init__(self, directory: str | os.PathLike, key: str, *, max_rows: int = 500, row_group_rows: int = 16) -> None:
        import pyarrow as pa

        self.directory = Path(directory)
        self.key = key
        self.max_rows = int(max_rows)
        self.row_group_rows = int(row_group_rows)
        self._features = features()
        metadata = {"huggingface": json.dumps({"info": {"features": self._features.to_dict()}})}
        self._schema = self._features.arrow_schema.with_metadata(metadata)
        self._pa = pa
        self._buffer: list[dict] = []
        self._writer = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._rows_in_shard = 0
        self.shards: list[Path] = []

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self.directory.mkdir(parents=True, exist_ok=True)
        self._final = self.directory / shard_name(self.key, len(self.shards))
        fd, tmp = tempfile.mkstemp(prefix=f".{self._final.name}.", suffix=".tmp", dir=self.directory)
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer = pq.ParquetWriter(str(self._tmp), self._schema)
        self._rows_in_shard = 0

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self._open()
        table = self._pa.Table.from_pylist(self._buffer, schema=self._schema)
        self._writer.write_table(table)
        self._rows_in_shard += len(self._buffer)
        self._buffer = []
        if self._rows_in_shard >= self.max_rows:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        os.replace(self._tmp, self._final)
        self.shards.append(self._final)

    def write(self, row: dict) -> None:
        """Add one row (a dict with the keys of :func:`features`; media as ``{"bytes": ..., "path": ...}``)."""
        self._buffer.append(row)
        if len(self._buffer) >= min(self.row_group_rows, self.max_rows - self._rows_in_shard):
            self._flush()

    def close(self) -> list[Path]:
        """Flush and finish the current shard; return every shard written."""
        self._flush()
        self._close_shard()
        return self.shards

    def abort(self) -> None:
        """Drop the shard being written (its temporary file is removed); finished shards stay."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._tmp.unlink(missing_ok=True)
        self._buffer = []

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def split_sizes(folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``{split: (num_examples, num_bytes)}`` of a dataset folder's parquet shards (from their footers)."""
    import pyarrow.parquet as pq

    sizes = {}
    for split in splits_in_folder(folder):
        shards = sorted((Path(folder) / DATA_DIR / split).glob("*.parquet"))
        sizes[split] = (sum(pq.ParquetFile(p).metadata.num_rows for p in shards), sum(p.stat().st_size for p in shards))
    return sizes


def readme_yaml(split_info: dict[str, tuple[int, int]], pretty_name: str, license: str,
                tags: list[str] | None = None) -> str:
    """The YAML front matter of the dataset card.

    ``configs`` make ``load_dataset(folder)`` script-free. ``dataset_info`` (features, and per split the number of
    examples and bytes) is written too: ``datasets`` verifies the row counts, and it keys its cache of a local folder
    on this block, so a folder rebuilt in place (or another folder with the same name) is not served from a stale
    cache.

    Args:
        split_info: ``{split: (num_examples, num_bytes)}`` (see :func:`split_sizes`).
        pretty_name: dataset title.
        license: Hub licence id.
        tags: Hub tags.
    """
    import datasets
    import yaml

    info = datasets.DatasetInfo(
        features=features(),
        splits=datasets.SplitDict(
            {name: datasets.SplitInfo(name=name, num_examples=n, num_bytes=b) for name, (n, b) in split_info.items()}
        ),
        download_size=sum(b for _, b in split_info.values()),
        dataset_size=sum(b for _, b in split_info.values()),
    )
    header = {
        "license": license,
        "pretty_name": pretty_name,
        "task_categories": ["text-to-video", "text-to-audio"],
        "tags": tags or ["spatial-audio", "stereo", "audio-visual", "video-generation", "sound-event-localization",
                         "savgbench", "svgsa24"],
        "size_categories": [size_category(sum(n for n, _ in split_info.values()))],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"{DATA_DIR}/{split}/*.parquet"} for split in split_info],
            }
        ],
        "dataset_info": info._to_yaml_dict(),
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def size_category(num_rows: int) -> str:
    """Hugging Face ``size_categories`` bucket for a row count."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if num_rows < limit:
            return name
    return "n>1M"


def splits_in_folder(folder: str | os.PathLike) -> list[str]:
    """Splits of a dataset folder that have at least one shard, in :data:`SPLITS` order."""
    folder = Path(folder)
    return [s for s in SPLITS if any((folder / DATA_DIR / s).glob("*.parquet"))]


class DatasetFolder:
    """Direct, cache-free read access to a local dataset folder's parquet shards.

    ``datasets.load_dataset`` copies a folder into its Arrow cache first; this reader instead indexes the shards'
    small columns and fetches one row's media only when asked. Rows come back raw: media as
    ``{"bytes": ..., "path": ...}`` dicts (decode with :func:`example_to_clip`).

    Args:
        folder: a folder written by the builder or the importer.
    """

    INDEX_COLUMNS = ("clip_id", "labels", "source_dataset", "source_recording", "start_time", "yaw")

    def __init__(self, folder: str | os.PathLike) -> None:
        import pyarrow.parquet as pq

        self.folder = Path(folder)
        self.splits = splits_in_folder(self.folder)
        if not self.splits:
            raise ValueError(f"{self.folder} has no data/<split>/*.parquet shards; is it an SVGSA24 dataset folder?")
        self._index: dict[str, list[tuple[Path, int]]] = {}
        self._meta: dict[str, list[dict]] = {}
        for split in self.splits:
            entries, metas = [], []
            for shard in sorted((self.folder / DATA_DIR / split).glob("*.parquet")):
                table = pq.read_table(shard, columns=list(self.INDEX_COLUMNS))
                for row_index, row in enumerate(table.to_pylist()):
                    entries.append((shard, row_index))
                    metas.append(row)
            self._index[split], self._meta[split] = entries, metas

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())

    def num_rows(self, split: str) -> int:
        """Rows in ``split``."""
        return len(self._index[self._check(split)])

    def _check(self, split: str) -> str:
        if split not in self._index:
            raise ValueError(f"split {split!r} not in {self.folder}; available: {self.splits}")
        return split

    def metadata(self, split: str) -> list[dict]:
        """Every row of ``split`` without its media (clip id, labels, provenance)."""
        return self._meta[self._check(split)]

    def row(self, split: str, index: int) -> dict:
        """One full raw row, media included."""
        import pyarrow.parquet as pq

        entries = self._index[self._check(split)]
        if not 0 <= index < len(entries):
            raise IndexError(f"row {index} out of range for split {split!r} ({len(entries)} rows)")
        shard, row_index = entries[index]
        parquet = pq.ParquetFile(shard)
        offset = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if row_index < offset + rows:
                return parquet.read_row_group(group).slice(row_index - offset, 1).to_pylist()[0]
            offset += rows
        raise IndexError(f"row {row_index} not found in {shard}")


def example_to_clip(example: dict, spec: ClipSpec = SVGSA24_CLIP) -> Clip:
    """Decode one dataset row (as returned by ``load_dataset`` or read raw) into a validated stereo :class:`Clip`.

    Accepts decoded rows (torchcodec decoders) and raw rows (``{"bytes": ..., "path": ...}`` media).
    """
    video_value, audio_value = example["video"], example["audio"]
    if isinstance(video_value, dict):
        media = read_media(video_value["bytes"], video=True, audio=False)
        video, fps = media.video, media.fps
    else:
        batch = video_value.get_frames_in_range(0, video_value.metadata.num_frames)
        video = batch.data.permute(0, 2, 3, 1).contiguous().numpy()
        fps = float(video_value.metadata.average_fps)
    if isinstance(audio_value, dict):
        if "bytes" in audio_value and audio_value["bytes"] is not None:
            media = read_media(audio_value["bytes"], video=False, audio=True)
            audio, rate = media.audio, media.sample_rate
        else:
            raise MediaError(f"audio of {example.get('clip_id')} has no bytes")
    else:
        samples = audio_value.get_all_samples()
        audio, rate = samples.data.numpy().astype(np.float32), int(samples.sample_rate)
    clip = Clip(video=video, audio=np.ascontiguousarray(audio), fps=fps, sample_rate=rate,
                clip_id=str(example.get("clip_id", "")))
    return clip.validate(spec)


def load_svgsa24(path_or_repo: str, split: str | None = None, *, revision: str | None = None):
    """``datasets.load_dataset`` on a local folder or Hub repo id; ``"repo:split"`` selects a split.

    Returns a ``DatasetDict`` (no split given) or a ``Dataset``.
    """
    from datasets import load_dataset

    if split is None and ":" in path_or_repo and not Path(path_or_repo).exists():
        path_or_repo, split = path_or_repo.rsplit(":", 1)
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; SVGSA24 splits are {SPLITS}")
    return load_dataset(path_or_repo, split=split, revision=revision)


def push_to_hub(folder: str | os.PathLike, repo_id: str, *, revision: str | None = None, private: bool = False,
                token: str | None = None, commit_message: str = "Upload SVGSA24 dataset") -> str:
    """Upload a built dataset folder as a Hub dataset repo (the folder is already in Hub layout).

    Returns the commit URL.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "README.md").is_file() or not splits_in_folder(folder):
        raise ValueError(f"{folder} is not a built SVGSA24 dataset folder (README.md and data/<split>/*.parquet)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder), revision=revision,
                             commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


def write_info(folder: str | os.PathLike, info: DatasetInfo) -> Path:
    """Write ``meta/info.json`` atomically."""
    return atomic_write_text(Path(folder) / INFO_PATH, info.to_json() + "\n")


def export_clips(folder: str | os.PathLike, split: str, out_dir: str | os.PathLike, *, limit: int | None = None,
                 lossless: bool = True, progress: bool = False) -> list[Path]:
    """Write a split's clips as files: ``<clip_id>.mp4`` (the stored H.264 + AAC bytes, copied) and, with
    ``lossless``, ``<clip_id>.flac`` (the stored lossless stereo, which readers prefer to the AAC track).

    This is the layout of a folder of generated clips and of the official reference folders, so a dataset split
    can serve as ``savg evaluate``'s reference or as ground-truth "generated" clips. Files are copied byte for
    byte (no re-encoding) and each is written atomically.

    Args:
        folder: a dataset folder (builder or importer output).
        split: ``"dev"`` or ``"eval"``.
        out_dir: destination folder (created).
        limit: export only the first ``limit`` rows.
        lossless: also write the ``.flac`` sidecars.
        progress: show a progress bar.

    Returns:
        the mp4 paths, in dataset order.
    """
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from savg_hub.utils.files import atomic_write_bytes

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    reader = DatasetFolder(folder)
    total = reader.num_rows(split)
    count = total if limit is None else min(int(limit), total)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    columns = ["clip_id", "video", "audio"]
    with tqdm(total=count, desc=f"export {split}", unit="clip", disable=not progress) as bar:
        for shard in sorted((reader.folder / DATA_DIR / split).glob("*.parquet")):
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=16, columns=columns):
                for row in batch.to_pylist():
                    if len(written) >= count:
                        return written
                    name = safe_key(str(row["clip_id"]))
                    written.append(atomic_write_bytes(out / f"{name}.mp4", row["video"]["bytes"]))
                    if lossless:
                        atomic_write_bytes(out / f"{name}.flac", row["audio"]["bytes"])
                    bar.update(1)
    return written
