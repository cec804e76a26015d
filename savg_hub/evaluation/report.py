"""Results files of an evaluation (DESIGN.md §3): ``results.json``, ``per_clip.csv`` and the official ``results.out``.

An :class:`EvaluationReport` collects one *section* per metric family -- anything with a ``name``, ``to_dict()``
and optionally ``per_clip_table()`` and ``official_lines()`` (:class:`ResultSection`); Spatial AV-Align's
:class:`~savg_hub.evaluation.spatial_eval.SpatialEvalResult` is one. FVD/KVD/FAD and Temporal AV-Align results add
themselves as further sections without changes here; the official ``results.out`` text keeps the official line
order (Spatial, then the FVD/KVD/FAD dict, then Temporal).

``results.json`` layout (format ``savg-results-v1``)::

    {"format": "savg-results-v1", "created": "...Z",
     "protocol": {"name": "official", "version": "savgbench-04e8d5b"},
     "scores": {"spatial_av_align": 0.51, "spatial_av_align.swap_lr": 0.2, ...},    # headline numbers
     "sections": {"spatial_av_align": {...}},                                   # each section's to_dict()
     "clips": {"source": "generated/", "kind": "files", "split": null, "revision": "files-...", "num_clips": 96},
     "weights": [{"role": "seld", "sha256": "...", "source": "official", "stand_in": false, ...}, ...],
     "stand_in_weights": false, "warnings": [...],
     "environment": {"python": "3.11.9", "platform": "...", "packages": {...},
                     "git": {"revision": "...", "dirty": false}},
     "seconds": 12.3}
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from savg_hub.utils.files import atomic_write_text

logger = logging.getLogger(__name__)

REPORT_FORMAT = "savg-results-v1"
OFFICIAL_SECTION_ORDER: tuple[str, ...] = ("spatial_av_align", "quality", "temporal_av_align")
"""Order of the sections' lines in the official ``results.out`` (evaluation_script.sh steps 5-7)."""

PACKAGES: tuple[str, ...] = (
    "savg_hub", "torch", "torchvision", "numpy", "scipy", "diffusers", "safetensors", "datasets", "huggingface_hub",
    "av", "opencv-python", "opencv-python-headless", "ultralytics", "soxr", "pandas",
)
STAND_IN_WARNING = (
    "stand-in weights: the embedded models trained on synthetic scenes were used; scores are not comparable with "
    "published SAVGBench numbers (import the official weights with `savg weights import`)"
)


@runtime_checkable
class ResultSection(Protocol):
    """One metric family's results. ``per_clip_table`` and ``official_lines`` are optional."""

    name: str

    def to_dict(self) -> dict[str, Any]: ...


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that affect results (missing ones are left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"revision": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: this package), else None."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        revision = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": revision, "dirty": bool(status.strip())} if revision else None


def environment() -> dict[str, Any]:
    """Python, platform, package versions and git revision."""
    return {"python": platform.python_version(), "platform": platform.platform(), "executable": sys.executable,
            "packages": package_versions(), "git": git_revision()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return value


def headline_scores(name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The flat ``scores`` entries of one section: ``name`` -> its ``score`` (if any), ``name.<key>`` for its other
    top-level numbers named in ``data["headline"]`` or its calibration/variant scores."""
    scores: dict[str, Any] = {}
    if "score" in data:
        scores[name] = data["score"]
    for key in data.get("headline", ()):
        scores[f"{name}.{key}"] = data.get(key)
    for variant, values in (data.get("calibration") or {}).items():
        scores[f"{name}.{variant}"] = values.get("score") if isinstance(values, Mapping) else values
    return scores


@dataclass
class EvaluationReport:
    """Everything one evaluation run records.

    Attributes:
        sections: result sections by name (e.g. ``{"spatial_av_align": SpatialEvalResult}``).
        source: the clips as given (folder, list, ``dataset:split``).
        num_clips: clips evaluated.
        seconds: wall time of the whole run.
        clips_info: ``kind``, ``split``, ``revision`` of the clip source, when known.
        weights: weights records (``to_dict()`` objects or dicts with ``sha256``, ``source``, ``stand_in``).
        protocol: protocol name.
        protocol_version: protocol version.
        warnings: extra notes for readers (a stand-in warning is added automatically).
        command: the command line, when run from the CLI.
    """

    sections: dict[str, Any]
    source: str = ""
    num_clips: int = 0
    seconds: float = 0.0
    clips_info: dict[str, Any] = field(default_factory=dict)
    weights: list[Any] = field(default_factory=list)
    protocol: str = "official"
    protocol_version: str = "savgbench-04e8d5b"
    warnings: list[str] = field(default_factory=list)
    command: list[str] | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def add(self, section: Any, name: str | None = None) -> "EvaluationReport":
        """Add (or replace) a section; returns ``self``."""
        key = name or getattr(section, "name", None)
        if not key:
            raise ValueError(f"section {type(section).__name__} has no name; pass name=")
        self.sections[key] = section
        return self

    @property
    def weights_records(self) -> list[dict[str, Any]]:
        return [w.to_dict() if hasattr(w, "to_dict") else dict(w) for w in self.weights]

    @property
    def stand_in_weights(self) -> bool:
        """True when any embedded synthetic-data stand-in weights were used."""
        return any(record.get("stand_in") for record in self.weights_records)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` content."""
        sections = {name: _jsonable(section.to_dict() if hasattr(section, "to_dict") else section)
                    for name, section in self.sections.items()}
        scores: dict[str, Any] = {}
        for name, data in sections.items():
            scores.update(headline_scores(name, data))
        warnings = list(self.warnings)
        if self.stand_in_weights and STAND_IN_WARNING not in warnings:
            warnings.insert(0, STAND_IN_WARNING)
        return _jsonable({
            "format": REPORT_FORMAT,
            "created": self.created,
            "protocol": {"name": self.protocol, "version": self.protocol_version},
            "scores": scores,
            "sections": sections,
            "clips": {"source": self.source, "num_clips": self.num_clips, **self.clips_info},
            "weights": self.weights_records,
            "stand_in_weights": self.stand_in_weights,
            "warnings": warnings,
            "environment": environment(),
            "command": self.command,
            "seconds": self.seconds,
        })

    def per_clip_rows(self) -> list[dict[str, Any]]:
        """Per-clip rows of every section merged on ``clip_id`` (first-seen clip order)."""
        merged: dict[str, dict[str, Any]] = {}
        for section in self.sections.values():
            table = section.per_clip_table() if hasattr(section, "per_clip_table") else []
            for row in table:
                clip_id = str(row["clip_id"])
                merged.setdefault(clip_id, {"clip_id": clip_id}).update(row)
        return list(merged.values())

    def per_clip_csv(self) -> str:
        """``per_clip.csv`` text: a header, one row per clip; undefined values are empty cells."""
        rows = self.per_clip_rows()
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns or ["clip_id"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ("" if value is None else _csv_value(value)) for key, value in row.items()})
        return buffer.getvalue()

    def results_out_text(self) -> str:
        """The official ``results.out`` lines of every section, in the official order (sections without official
        lines, or undefined ones, contribute nothing)."""
        names = [n for n in OFFICIAL_SECTION_ORDER if n in self.sections]
        names += [n for n in self.sections if n not in names]
        text = ""
        for name in names:
            section = self.sections[name]
            if hasattr(section, "official_lines"):
                text += section.official_lines()
        return text

    def write(self, out_dir: str | os.PathLike, *, results_out: str | os.PathLike | None = None,
              append_results_out: bool = False) -> dict[str, Path]:
        """Write ``out_dir/results.json`` and ``out_dir/per_clip.csv`` (and ``results_out`` when given), atomically.

        Args:
            out_dir: destination folder (created).
            results_out: path of the official-format text file, or ``None``.
            append_results_out: append to an existing ``results_out`` (as the official scripts do) instead of
                replacing it; the new file is still swapped in atomically.

        Returns:
            ``{"results": path, "per_clip": path[, "results_out": path]}``.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {
            "results": atomic_write_text(out / "results.json", json.dumps(self.to_dict(), indent=2) + "\n"),
            "per_clip": atomic_write_text(out / "per_clip.csv", self.per_clip_csv()),
        }
        if results_out is not None:
            path = Path(results_out)
            text = self.results_out_text()
            if append_results_out and path.is_file():
                text = path.read_text(encoding="utf-8") + text
            written["results_out"] = atomic_write_text(path, text)
        return written


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (np.floating,)):
        return repr(float(value))
    return value


def report_for_spatial(result: Any, *, source: Any = "", seconds: float | None = None,
                       command: list[str] | None = None) -> EvaluationReport:
    """An :class:`EvaluationReport` with one Spatial AV-Align section (``result``: a ``SpatialEvalResult``).

    Args:
        result: the evaluator's result.
        source: the clip source (a :class:`~savg_hub.evaluation.clips.ClipSource` gives kind, split and revision)
            or its description.
        seconds: wall time of the whole run (default: the evaluation's).
        command: the command line.
    """
    info: dict[str, Any] = {}
    description = source
    if hasattr(source, "kind"):
        info = {"kind": source.kind, "split": source.split, "revision": source.revision, **dict(source.info)}
        description = source.description
    return EvaluationReport(
        sections={result.name: result}, source=str(description), num_clips=result.num_clips,
        seconds=result.seconds if seconds is None else seconds, clips_info=info, weights=list(result.weights),
        protocol=result.protocol, protocol_version=result.protocol_version, command=command,
    )


__all__ = [
    "OFFICIAL_SECTION_ORDER",
    "REPORT_FORMAT",
    "EvaluationReport",
    "ResultSection",
    "environment",
    "git_revision",
    "headline_scores",
    "package_versions",
    "report_for_spatial",
]
