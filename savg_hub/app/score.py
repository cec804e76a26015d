"""The app's "Score" view: Spatial AV-Align of uploaded clips (or dataset examples), with calibration controls and
overlay videos. No model code here: it calls :class:`~savg_hub.evaluation.spatial_eval.SpatialAVAlignEvaluator`.

Models are loaded once, on the first scoring request, and kept resident. When no weights are available the view
says what is missing instead of failing.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from savg_hub.media.clip import Clip

logger = logging.getLogger(__name__)

CALIBRATION_LABELS: dict[str, str] = {
    "swap_lr": "swap L/R",
    "flip_video": "flip video",
    "swap_and_flip": "swap + flip",
    "mono": "mono",
}
"""Display names of the calibration controls (keys of :data:`~savg_hub.evaluation.spatial_eval.CALIBRATIONS`)."""

TABLE_HEADERS = ["clip", "TP", "FN", "score", *CALIBRATION_LABELS.values(), "person boxes"]

MISSING_HELP = (
    "Scoring needs a stereo SELD model and a person detector. Import the official SAVGBench weights with "
    "`savg weights import SAVGBench_PretrainedModels_V1.zip` (or a folder holding the checkpoints), or start the "
    "app with `--seld-weights PATH --detector yolox-tiny --detector-weights PATH`."
)

STAND_IN_NOTE = (
    "**Note:** scored with the embedded stand-in weights ({names}), small models trained on synthetic scenes. "
    "Scores show how the metric behaves; they are not comparable with published SAVGBench numbers."
)


@dataclass
class EvaluatorOptions:
    """How the view builds its evaluator on first use (see ``SpatialAVAlignEvaluator.from_pretrained``).

    Attributes:
        seld_weights: SELD weights spec (``None`` = the registry default).
        detector: detector spec (``"default"``, ``"yolox-tiny"``, ``"ultralytics:<file>"``).
        detector_weights: detector weights spec.
        device: torch device.
    """

    seld_weights: str | None = None
    detector: str = "default"
    detector_weights: str | None = None
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


def _have_kind(kind: str) -> bool:
    from savg_hub import weights as registry

    for entry in registry.entries(kind):
        if (registry.cache_dir() / entry.name).is_dir():
            return True
        if entry.embedded and (registry.ASSETS / entry.embedded).exists():
            return True
    return False


def _named_exists(spec: str) -> bool:
    from savg_hub import weights as registry

    return Path(spec).exists() or spec in registry.REGISTRY


def weights_availability(options: EvaluatorOptions | None = None) -> tuple[bool, str]:
    """``(available, message)`` for the weights the view would load, checked without loading or downloading.

    Named weights count as available when the path exists or the name is in the registry; defaults are looked up
    in the local weights cache and the package's embedded assets.
    """
    options = options or EvaluatorOptions()
    missing = []
    if options.seld_weights is not None:
        if not _named_exists(options.seld_weights):
            missing.append(f"SELD weights `{options.seld_weights}` not found")
    elif not _have_kind("stereo-seld"):
        missing.append("no SELD weights (neither imported official ones nor the embedded stand-in)")
    detector = options.detector
    named = options.detector_weights or (detector.split(":", 1)[1] if detector.startswith("ultralytics:") else None)
    if named is not None:
        if not _named_exists(named):
            missing.append(f"detector weights `{named}` not found")
    else:
        kinds = {"default": ("yolox-tiny", "ultralytics")}.get(detector, (detector,))
        if not any(_have_kind(kind) for kind in kinds):
            missing.append("no person-detector weights (neither imported official ones nor the embedded stand-in)")
    if missing:
        return False, "; ".join(missing) + ". " + MISSING_HELP
    return True, "Weights found; the models load on the first **Score** click and stay resident."


def _table_value(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _safe_name(clip_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", clip_id)[:80] or "clip"


class ScoreView:
    """State and actions of the Score tab.

    Args:
        workdir: where overlay videos are written.
        evaluator: a ready :class:`~savg_hub.evaluation.spatial_eval.SpatialAVAlignEvaluator` (e.g. tiny models in
            tests); when ``None`` one is built from ``options`` on the first :meth:`score` call.
        options: weights specs for building the evaluator.
        dataset: a :class:`~savg_hub.data.hf_dataset.DatasetFolder` whose rows can be scored as examples.
        factory: builds the evaluator from ``options`` (default: ``SpatialAVAlignEvaluator.from_pretrained``).
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        evaluator: Any | None = None,
        options: EvaluatorOptions | None = None,
        dataset: Any | None = None,
        factory: Callable[[EvaluatorOptions], Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.options = options or EvaluatorOptions()
        self.dataset = dataset
        self._evaluator = evaluator
        self._factory = factory or _from_pretrained
        self._lock = threading.Lock()
        self._load_error: str | None = None

    # -- status -------------------------------------------------------------------------------------------

    def status(self) -> str:
        """Markdown shown when the tab opens: what will be used, or what is missing."""
        if self._evaluator is not None:
            return self._weights_note(self._evaluator) or "Models loaded."
        available, message = weights_availability(self.options)
        return message if available else f"**Scoring unavailable:** {message}"

    @staticmethod
    def _weights_note(evaluator: Any) -> str:
        records = list(getattr(evaluator, "weights", ()) or ())
        stand_ins = [r.name or r.spec or r.role for r in records if getattr(r, "stand_in", False)]
        if stand_ins:
            return STAND_IN_NOTE.format(names=", ".join(f"`{n}`" for n in stand_ins))
        named = [f"{r.role}: `{r.name or r.spec}` ({r.source})" for r in records if r.name or r.spec]
        return ("Weights — " + "; ".join(named)) if named else ""

    def evaluator(self) -> Any:
        """The resident evaluator, built on first use.

        Raises:
            ValueError: no usable weights (the message says how to get them).
        """
        with self._lock:
            if self._evaluator is None:
                try:
                    self._evaluator = self._factory(self.options)
                except (ValueError, FileNotFoundError, ModuleNotFoundError, OSError) as error:
                    raise ValueError(f"{error}. {MISSING_HELP}") from error
                logger.info("Score view: evaluator loaded (%s)", self._weights_note(self._evaluator))
            return self._evaluator

    # -- inputs -------------------------------------------------------------------------------------------

    def example_choices(self) -> list[tuple[str, str]]:
        """``(label, "split/index")`` of the dataset rows that can be scored."""
        if self.dataset is None:
            return []
        return [(f"{split}: {meta['clip_id']}", f"{split}/{i}") for split in self.dataset.splits
                for i, meta in enumerate(self.dataset.metadata(split))]

    def _example(self, ref: str) -> tuple[str, Clip]:
        from savg_hub.data.hf_dataset import example_to_clip

        split, _, index = str(ref).partition("/")
        if self.dataset is None or split not in self.dataset.splits or not index.isdigit():
            raise ValueError(f"unknown example {ref!r}")
        row = self.dataset.row(split, int(index))
        clip = example_to_clip(row)
        clip.clip_id = str(row["clip_id"])
        return clip.clip_id, clip

    def _clips(self, files: Sequence[str] | None, examples: Sequence[str] | None) -> list[tuple[str, Clip]]:
        from savg_hub.evaluation.clips import open_clips

        pairs = [self._example(ref) for ref in (examples or [])]
        paths = [Path(f if isinstance(f, str) else getattr(f, "name", f)) for f in (files or [])]
        if paths:
            pairs.extend(open_clips(paths).iter(workers=min(2, len(paths))))
        seen: set[str] = set()
        for clip_id, _ in pairs:
            if clip_id in seen:
                raise ValueError(f"clip id {clip_id!r} given twice (rename one of the files)")
            seen.add(clip_id)
        return pairs

    # -- scoring ------------------------------------------------------------------------------------------

    def score(self, files: Sequence[str] | None, examples: Sequence[str] | None,
              controls: Sequence[str] | None = None) -> tuple[str, list[list[Any]], dict[str, str]]:
        """Score clips.

        Args:
            files: uploaded mp4 paths.
            examples: dataset rows as ``"split/index"``.
            controls: calibration controls to compute (names of ``CALIBRATIONS``; ``None`` = all).

        Returns:
            ``(markdown summary, per-clip table rows, {clip_id: overlay mp4 path})``. Problems (no weights, a bad
            clip, nothing selected) come back as the summary text with an empty table.
        """
        if not files and not examples:
            return "Upload mp4 clips or pick dataset examples, then press **Score**.", [], {}
        try:
            self.evaluator()
        except ValueError as error:
            return f"**Scoring unavailable:** {error}", [], {}
        try:
            pairs = self._clips(files, examples)
        except ValueError as error:  # a file that cannot be read, duplicate ids
            return f"**Cannot score:** {error}", [], {}
        return self.score_clips(pairs, controls)

    def score_clips(self, pairs: Sequence[tuple[str, Clip]], controls: Sequence[str] | None = None,
                    ) -> tuple[str, list[list[Any]], dict[str, str]]:
        """Score in-memory clips (e.g. freshly generated ones) with the resident evaluator.

        Args:
            pairs: ``(clip_id, clip)`` with SVGSA24 clips (20 frames of 256x256 at 4 fps, stereo 16 kHz).
            controls: calibration controls to compute (names of ``CALIBRATIONS``; ``None`` = all).

        Returns:
            as :meth:`score`.
        """
        from savg_hub.evaluation.spatial_eval import CALIBRATIONS, SpatialAVAlignEvaluator
        from savg_hub.evaluation.visualize import write_overlay_video

        try:
            evaluator = self.evaluator()
        except ValueError as error:
            return f"**Scoring unavailable:** {error}", [], {}
        selected = tuple(c for c in CALIBRATIONS if controls is None or c in controls)
        if tuple(getattr(evaluator, "calibration", ())) != selected:  # same resident models, other controls
            evaluator = SpatialAVAlignEvaluator(evaluator.seld, evaluator.detector, calibration=selected,
                                                chunk_size=evaluator.chunk_size, config=evaluator.config,
                                                weights=evaluator.weights)
        out_dir = self.workdir / uuid.uuid4().hex[:12]
        videos: dict[str, str] = {}

        def overlay(clip: Clip, outputs: Any) -> None:
            path = out_dir / f"{_safe_name(outputs.clip_id)}-overlay.mp4"
            videos[outputs.clip_id] = str(write_overlay_video(path, clip, outputs, config=evaluator.config))

        try:
            result = evaluator.evaluate(list(pairs), on_clip=overlay)
        except ValueError as error:  # a clip that does not meet the contract, duplicate ids
            return f"**Cannot score:** {error}", [], {}
        rows = []
        for entry in result.per_clip_table():
            rows.append([entry["clip_id"], entry["spatial_tp"], entry["spatial_fn"],
                         _table_value(entry["spatial_score"]),
                         *[_table_value(entry.get(f"spatial_{c}_score")) if c in selected else "–"
                           for c in CALIBRATION_LABELS],
                         entry["num_person_boxes"]])
        return self._summary(result, selected, evaluator), rows, videos

    def _summary(self, result: Any, selected: Sequence[str], evaluator: Any) -> str:
        if result.score is None:
            head = (f"**Spatial AV-Align: undefined** — the SELD model detected no sound event in the "
                    f"{result.num_clips} clip(s).")
        else:
            head = (f"**Spatial AV-Align: {result.score:.3f}** ({result.num_tp} TP / {result.num_fn} FN over "
                    f"{result.num_clips} clip(s), official micro-average)")
        lines = [head]
        if selected:
            scores = result.calibration_scores()
            parts = []
            for name in selected:
                value = scores.get(name)
                delta = "" if value is None or result.score is None else f" ({value - result.score:+.3f})"
                parts.append(f"{CALIBRATION_LABELS[name]}: {_table_value(value)}{delta}")
            lines.append("Calibration controls — " + " · ".join(parts) + ". On well-aligned clips swap L/R and flip "
                         "video lower the score, swap + flip does not, mono shows the chance level.")
        note = self._weights_note(evaluator)
        if note:
            lines.append(note)
        return "\n\n".join(lines)


def _from_pretrained(options: EvaluatorOptions) -> Any:
    from savg_hub.evaluation.spatial_eval import SpatialAVAlignEvaluator

    return SpatialAVAlignEvaluator.from_pretrained(options.seld_weights, options.detector, options.detector_weights,
                                                   device=options.device, **options.extra)


__all__ = ["CALIBRATION_LABELS", "EvaluatorOptions", "ScoreView", "weights_availability"]
