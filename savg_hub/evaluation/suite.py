"""All SAVGBench metrics in one run: each clip decoded once, models resident, optionally sharded over processes.

The official release scores a folder in five processes that each decode every clip again and load their own
models (reference §1, §10.1). Here one pass over the generated clips feeds every metric:

* Spatial AV-Align (SELD + person detector + the official matcher, calibration controls),
* Temporal AV-Align (optical-flow peaks vs audio onsets),
* the official FVD / KVD / FAD windows (the selection is planned before decoding: every clip of the SVGSA24
  contract has 20 frames at 4 fps), cut out of the decoded clip while it is in memory.

Only the reference clips that have a selected window are decoded (all of them with the whole-clip variants).
Features of the selected windows are computed in the official batches of 8 consecutive windows.

Sharding (``processes > 1``): clips are processed in fixed chunks and feature batches in fixed groups of 8 in
whichever process is free; each process builds its own models from the same :class:`SuiteConfig`. Because the
grouping does not depend on the number of processes, results are identical to a single-process run that uses
the same number of torch threads per process (float kernels depend on the thread count at the 1e-7 level).

Example::

    from savg_hub.evaluation.suite import SuiteConfig, evaluate_suite
    report = evaluate_suite("generated/", "svgsa24/:eval", SuiteConfig(), processes=2)
    report.write("results/", results_out="results.out")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from savg_hub.evaluation.clips import ClipSource, open_clips
from savg_hub.evaluation.quality import (
    QualityEvaluator,
    SetFeatures,
    WindowExcerpts,
    load_quality_models,
    quality_result,
    weights_id,
    whole_clip_statistics,
    window_excerpts,
)
from savg_hub.evaluation.report import EvaluationReport
from savg_hub.evaluation.selection import OfficialWindow, VideoTiming, official_selection
from savg_hub.evaluation.temporal import ClipTemporalScore, TemporalAVAlignResult, score_clip
from savg_hub.media.clip import SVGSA24_CLIP, Clip

logger = logging.getLogger(__name__)

METRICS = ("spatial", "fvd", "kvd", "fad", "temporal")
QUALITY_METRICS = ("fvd", "kvd", "fad")
_ALIASES = {"spatial_av_align": "spatial", "spatial-av-align": "spatial", "temporal_av_align": "temporal",
            "temporal-av-align": "temporal", "all": ",".join(METRICS)}
FEATURE_GROUP = 8  # the official evaluator's batch: AudioCLIP's train-mode BatchNorm groups, I3D batches


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"spatial,fvd"`` -> ``("spatial", "fvd")`` (``all`` = every metric).

    Raises:
        ValueError: empty or unknown names.
    """
    names: list[str] = []
    for raw in text.split(","):
        name = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
        names += [n for n in name.split(",") if n]
    if not names:
        raise ValueError("--metrics is empty; use e.g. --metrics spatial or --metrics all")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)} (or 'all')")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class SuiteConfig:
    """Everything a process needs to build the models and score clips (picklable, recorded in results).

    Args:
        metrics: subset of :data:`METRICS`.
        seld_weights: SELD weights spec (``None`` = registry default).
        detector: person detector spec (``"default"``, ``"yolox-tiny"``, ``"ultralytics:FILE"``).
        detector_weights: detector weights spec.
        i3d_weights: I3D weights spec (``None`` = the official weights once imported, else a stand-in).
        audioclip_weights: AudioCLIP weights spec (same rule).
        device: torch device.
        threads: torch CPU threads per process (``None`` = torch's choice in a single process, an equal share
            of the CPUs with several).
        calibration: run the Spatial AV-Align calibration controls.
        chunk_size: clips scored together (SELD windows and detector frames are batched within a chunk).
        seld_batch_size: SELD windows per forward pass.
        detector_batch_size: frames per detector forward pass.
        audioclip_mode: ``"official"`` (train-mode BatchNorm, [-1, 1] input) or ``"corrected"``.
        allow_stand_in: use random-init feature networks when I3D/AudioCLIP weights are unavailable.
        num_samples: windows per set for FVD/KVD/FAD (96).
        seed: the official selection seed (42).
        whole_clip: also compute the whole-clip FVD/KVD/FAD variants with bootstrap intervals.
        num_resamples: bootstrap replicates.
        visualize_dir: write Spatial AV-Align overlay videos here.
        feature_cache: reuse / store the reference set's I3D and AudioCLIP features on disk (keyed by the bytes of
            its selected windows and the weights; ``$SAVG_HOME/cache/quality``).
    """

    metrics: tuple[str, ...] = METRICS
    seld_weights: str | None = None
    detector: str = "default"
    detector_weights: str | None = None
    i3d_weights: str | None = None
    audioclip_weights: str | None = None
    device: str = "cpu"
    threads: int | None = None
    calibration: bool = True
    chunk_size: int = 16
    seld_batch_size: int = 64
    detector_batch_size: int = 16
    audioclip_mode: str = "official"
    allow_stand_in: bool = True
    num_samples: int = 96
    seed: int = 42
    whole_clip: bool = False
    num_resamples: int = 1000
    visualize_dir: str | None = None
    feature_cache: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be a non-empty subset of {METRICS}, got {self.metrics}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    @property
    def spatial(self) -> bool:
        return "spatial" in self.metrics

    @property
    def temporal(self) -> bool:
        return "temporal" in self.metrics

    @property
    def quality(self) -> bool:
        return any(m in self.metrics for m in QUALITY_METRICS)


class SuiteModels:
    """The resident models of one process.

    Args:
        spatial: a :class:`~savg_hub.evaluation.spatial_eval.SpatialAVAlignEvaluator` (``None``: no Spatial).
        quality: a :class:`~savg_hub.evaluation.quality.QualityEvaluator` (``None``: no FVD/KVD/FAD).
        temporal: compute Temporal AV-Align.
        weights: weights records of the feature networks (the spatial evaluator carries its own).
    """

    def __init__(self, spatial: Any = None, quality: QualityEvaluator | None = None, temporal: bool = False,
                 weights: Sequence[Any] = ()) -> None:
        self.spatial = spatial
        self.quality = quality
        self.temporal = bool(temporal)
        self.weights = list(weights)

    @classmethod
    def from_config(cls, config: SuiteConfig) -> "SuiteModels":
        """Build (load) the models ``config`` asks for."""
        spatial = quality = None
        records: list[Any] = []
        if config.spatial:
            from savg_hub.evaluation.spatial_eval import SpatialAVAlignEvaluator

            spatial = SpatialAVAlignEvaluator.from_pretrained(
                config.seld_weights, config.detector, config.detector_weights, device=config.device,
                batch_size=config.seld_batch_size, detector_batch_size=config.detector_batch_size,
                calibration=config.calibration, chunk_size=config.chunk_size)
        if config.quality:
            i3d, audioclip, records = load_quality_models(
                config.i3d_weights, config.audioclip_weights, device=config.device,
                audioclip_mode=config.audioclip_mode, allow_stand_in=config.allow_stand_in)
            quality = QualityEvaluator(i3d, audioclip, num_samples=config.num_samples, seed=config.seed,
                                       weights_id=weights_id(records), use_cache=config.feature_cache)
        return cls(spatial, quality, config.temporal, records)

    @property
    def all_weights(self) -> list[Any]:
        return (list(self.spatial.weights) if self.spatial is not None else []) + self.weights


# ----------------------------------------------------------------------------------------------------------
# Work units (module-level so that worker processes can run them)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class ChunkOutput:
    """What one chunk of clips gives.

    Attributes:
        spatial: per-clip Spatial AV-Align outputs (``ClipOutputs``), in chunk order.
        temporal: per-clip Temporal AV-Align analyses.
        excerpts: ``{selection position: one-window WindowExcerpts}`` of the chunk's selected windows.
        whole: whole-clip features of the chunk's clips (``{"i3d", "audio", "mid", "side"}``) or ``None``.
    """

    spatial: list[Any] = field(default_factory=list)
    temporal: list[ClipTemporalScore] = field(default_factory=list)
    excerpts: dict[int, WindowExcerpts] = field(default_factory=dict)
    whole: dict[str, np.ndarray] | None = None


def score_chunk(models: SuiteModels, pairs: Sequence[tuple[int, str, Clip]],
                windows: dict[int, list[tuple[int, OfficialWindow]]], *, spatial: bool, temporal: bool,
                whole_clip: bool, visualize_dir: str | None = None) -> ChunkOutput:
    """Run every per-clip metric on one chunk of decoded clips.

    Args:
        models: the process's models.
        pairs: ``(index in the source, clip_id, clip)`` of the chunk.
        windows: ``{index in the source: [(selection position, window)]}`` of the selected FVD windows.
        spatial: score Spatial AV-Align.
        temporal: score Temporal AV-Align.
        whole_clip: compute whole-clip features.
        visualize_dir: write overlay videos here.
    """
    out = ChunkOutput()
    if spatial and pairs:
        out.spatial = models.spatial.evaluate_chunk([(clip_id, clip) for _, clip_id, clip in pairs])
        if visualize_dir is not None:
            from savg_hub.evaluation.visualize import write_overlay_video

            for (_, clip_id, clip), outputs in zip(pairs, out.spatial):
                write_overlay_video(Path(visualize_dir) / f"{clip_id}.mp4", clip, outputs,
                                    config=models.spatial.config)
    if temporal:
        out.temporal = [score_clip(clip_id, clip.video, clip.fps, clip.audio, clip.sample_rate)
                        for _, clip_id, clip in pairs]
    for index, clip_id, clip in pairs:
        selected = windows.get(index, ())
        if selected:  # one audio resampling per clip, however many of its windows were chosen
            cut = window_excerpts({index: clip}, [window for _, window in selected])
            for row, (position, _) in enumerate(selected):
                out.excerpts[position] = cut[row : row + 1]
    if whole_clip and pairs:
        out.whole = models.quality.whole_clip_features([clip for _, _, clip in pairs])
    return out


def _features(models: SuiteModels, excerpts: WindowExcerpts) -> SetFeatures:
    return models.quality.compute_features(excerpts)


# Per-process state of worker processes (set by the pool initializer, never at import).
_WORKER: dict[str, Any] = {}


def _worker_init(config: SuiteConfig) -> None:
    import torch

    if config.threads is not None:
        import cv2

        torch.set_num_threads(config.threads)
        cv2.setNumThreads(config.threads)  # also the Farnebäck threads of Temporal AV-Align
    _WORKER["config"] = config
    _WORKER["models"] = SuiteModels.from_config(config)
    _WORKER["sources"] = {}


def _worker_source(spec: Any, split: str | None) -> ClipSource:
    key = (repr(spec), split)
    sources = _WORKER["sources"]
    if key not in sources:
        sources[key] = open_clips(spec, split=split, workers=1)
    return sources[key]


def _worker_chunk(spec: Any, split: str | None, indices: list[int],
                  windows: dict[int, list[tuple[int, OfficialWindow]]], flags: dict[str, Any]) -> ChunkOutput:
    source = _worker_source(spec, split)
    subset = ClipSource([source.items[i] for i in indices], source.kind, source.description, workers=1,
                        prefetch=2)
    pairs = [(index, clip_id, clip) for index, (clip_id, clip) in zip(indices, subset.iter())]
    return score_chunk(_WORKER["models"], pairs, windows, **flags)


def _worker_features(excerpts: WindowExcerpts) -> SetFeatures:
    return _features(_WORKER["models"], excerpts)


# ----------------------------------------------------------------------------------------------------------
# Report sections
# ----------------------------------------------------------------------------------------------------------


class TemporalSection:
    """Temporal AV-Align as a report section (official mean IoU, the corrected one-to-one variant)."""

    name = "temporal_av_align"

    def __init__(self, result: TemporalAVAlignResult) -> None:
        self.result = result

    def to_dict(self) -> dict[str, Any]:
        data = self.result.to_dict()
        data.pop("per_clip", None)
        data["score"] = self.result.official
        data["headline"] = ["corrected"]
        return data

    def per_clip_table(self) -> list[dict[str, Any]]:
        return [{"clip_id": c.clip_id, "temporal_official": c.official, "temporal_corrected": c.corrected,
                 "temporal_num_video_peaks": int(len(c.video_peaks)),
                 "temporal_num_audio_onsets": int(len(c.audio_onsets))} for c in self.result.per_clip]

    def official_lines(self) -> str:
        return self.result.official_line() if self.result.official is not None else ""


# ----------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------


class _Runner:
    """Runs work units inline (with the given models) or in a process pool (models built per process)."""

    def __init__(self, models: SuiteModels, config: SuiteConfig, processes: int) -> None:
        self.models = models
        self.pool = None
        if processes > 1:
            import multiprocessing

            self.pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init, initargs=(config,))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[i : i + size]) for i in range(0, len(indices), size)]


def _score_source(runner: _Runner, spec: Any, source: ClipSource, indices: Sequence[int],
                  windows: dict[int, list[tuple[int, OfficialWindow]]], flags: dict[str, Any], chunk_size: int,
                  desc: str, progress: bool) -> list[ChunkOutput]:
    from tqdm.auto import tqdm

    chunks = _chunks(indices, chunk_size)
    outputs: list[ChunkOutput] = []
    with tqdm(total=len(indices), desc=desc, unit="clip", disable=not progress, leave=False) as bar:
        if runner.pool is None:
            subset = ClipSource([source.items[i] for i in indices], source.kind, source.description,
                                workers=source.workers, prefetch=max(source.prefetch, chunk_size))
            stream = iter(zip(indices, subset.iter()))
            for chunk in chunks:
                pairs = [(index, clip_id, clip) for index, (clip_id, clip) in (next(stream) for _ in chunk)]
                outputs.append(score_chunk(runner.models, pairs, windows, **flags))
                bar.update(len(chunk))
        else:
            futures = [runner.pool.submit(_worker_chunk, spec, source.split, chunk,
                                          {i: windows[i] for i in chunk if i in windows}, flags)
                       for chunk in chunks]
            for chunk, future in zip(chunks, futures):
                outputs.append(future.result())
                bar.update(len(chunk))
    return outputs


def _set_features(runner: _Runner, excerpts: WindowExcerpts, cache: bool) -> SetFeatures:
    quality = runner.models.quality
    if cache:
        found = quality.cached_features(excerpts)
        if found is not None:
            return found
    if runner.pool is None:
        features = quality.compute_features(excerpts)
    else:
        groups = [excerpts[i : i + FEATURE_GROUP] for i in range(0, len(excerpts), FEATURE_GROUP)]
        parts = list(runner.pool.map(_worker_features, groups))
        features = SetFeatures(np.concatenate([p.i3d for p in parts]), np.concatenate([p.audioclip for p in parts]),
                               list(excerpts.labels), excerpts.num_silent, False)
    if cache:
        quality.store_features(excerpts, features)
    return features


def _merge_whole(outputs: Sequence[ChunkOutput]) -> dict[str, np.ndarray]:
    parts = [o.whole for o in outputs if o.whole is not None]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _open(spec: Any, split: str | None, workers: int) -> ClipSource:
    return spec if isinstance(spec, ClipSource) else open_clips(spec, split=split, workers=workers)


def evaluate_suite(
    generated: Any,
    reference: Any = None,
    config: SuiteConfig | None = None,
    *,
    generated_split: str | None = None,
    reference_split: str | None = None,
    processes: int = 1,
    models: SuiteModels | None = None,
    progress: bool = False,
    workers: int = 2,
    command: list[str] | None = None,
) -> EvaluationReport:
    """Score generated clips with every metric of ``config`` in one pass.

    Args:
        generated: the generated clips (folder, files, ``dataset:split``, or a :class:`ClipSource`).
        reference: the reference clips (needed for FVD/KVD/FAD).
        config: what to compute and with which weights (default: everything, default weights).
        generated_split: dataset split of ``generated`` (or ``:split`` in the spec).
        reference_split: dataset split of ``reference``.
        processes: worker processes (1 = everything in this process). With more, ``generated`` and
            ``reference`` must be specs that worker processes can open again (not in-memory iterables).
        models: prebuilt models for a single-process run (e.g. tiny ones in tests); default: built from
            ``config``.
        progress: progress bars.
        workers: decoding threads of this process.
        command: the command line, recorded in the report.

    Returns:
        an :class:`~savg_hub.evaluation.report.EvaluationReport` with sections ``spatial_av_align``,
        ``quality`` and ``temporal_av_align`` as computed.

    Raises:
        ValueError: FVD/KVD/FAD without a reference, ``processes`` < 1, or ``models`` with ``processes`` > 1.
    """
    config = config or SuiteConfig()
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if models is not None and processes > 1:
        raise ValueError("prebuilt models cannot be shared with worker processes; pass config only")
    if config.quality and reference is None:
        raise ValueError(f"{[m for m in config.metrics if m in QUALITY_METRICS]} need a reference set (--reference)")
    if processes > 1 and config.threads is None:
        config = replace(config, threads=max(1, (os.cpu_count() or 1) // processes))
    if processes == 1 and config.threads is not None:
        import cv2
        import torch

        torch.set_num_threads(config.threads)
        cv2.setNumThreads(config.threads)
    started = time.perf_counter()
    gen = _open(generated, generated_split, workers)
    ref = _open(reference, reference_split, workers) if reference is not None and config.quality else None
    models = models or SuiteModels.from_config(config)
    if config.spatial and models.spatial is None:
        raise ValueError("config asks for Spatial AV-Align but the models have no spatial evaluator")
    if config.quality and models.quality is None:
        raise ValueError("config asks for FVD/KVD/FAD but the models have no quality evaluator")

    fake_windows: list[OfficialWindow] = []
    real_windows: list[OfficialWindow] = []
    if config.quality:
        spec = SVGSA24_CLIP

        def timings(source: ClipSource) -> list[VideoTiming]:
            return [VideoTiming(clip_id, spec.num_frames, spec.fps) for clip_id in source.clip_ids]

        fake_windows, real_windows = official_selection(timings(gen), timings(ref), config.num_samples, config.seed)

    def by_clip(windows: Sequence[OfficialWindow]) -> dict[int, list[tuple[int, OfficialWindow]]]:
        grouped: dict[int, list[tuple[int, OfficialWindow]]] = {}
        for position, window in enumerate(windows):
            grouped.setdefault(window.video_index, []).append((position, window))
        return grouped

    runner = _Runner(models, config, processes)
    try:
        gen_flags = {"spatial": config.spatial, "temporal": config.temporal,
                     "whole_clip": config.quality and config.whole_clip, "visualize_dir": config.visualize_dir}
        gen_out = _score_source(runner, generated, gen, list(range(len(gen))), by_clip(fake_windows), gen_flags,
                                config.chunk_size, "generated clips", progress)
        sections: dict[str, Any] = {}
        if config.spatial:
            outputs = [o for chunk in gen_out for o in chunk.spatial]
            sections["spatial_av_align"] = models.spatial.result(outputs, time.perf_counter() - started)
        if config.temporal:
            sections["temporal_av_align"] = TemporalSection(
                TemporalAVAlignResult(per_clip=[t for chunk in gen_out for t in chunk.temporal]))
        if config.quality:
            needed = (list(range(len(ref))) if config.whole_clip
                      else sorted({w.video_index for w in real_windows}))
            ref_flags = {"spatial": False, "temporal": False, "whole_clip": config.whole_clip, "visualize_dir": None}
            ref_out = _score_source(runner, reference, ref, needed, by_clip(real_windows), ref_flags,
                                    config.chunk_size, "reference clips", progress)

            def assemble(outputs: Sequence[ChunkOutput], count: int) -> WindowExcerpts:
                found = {pos: ex for chunk in outputs for pos, ex in chunk.excerpts.items()}
                return WindowExcerpts.concatenate([found[i] for i in range(count)])

            fake = _set_features(runner, assemble(gen_out, len(fake_windows)), cache=False)
            real = _set_features(runner, assemble(ref_out, len(real_windows)), cache=True)
            whole = {}
            if config.whole_clip:
                whole = whole_clip_statistics(_merge_whole(gen_out), _merge_whole(ref_out),
                                              num_resamples=config.num_resamples)
            sections["quality"] = quality_result(fake, real, whole)
    finally:
        runner.close()

    seconds = time.perf_counter() - started
    warnings = []
    if config.temporal and sections["temporal_av_align"].result.num_undefined:
        section = sections["temporal_av_align"].result
        warnings.append(f"Temporal AV-Align undefined for {section.num_undefined} clips (no onset and no video "
                        f"peak), left out of the mean; the official script stops on them: {section.undefined_clips}")
    if config.quality and sections["quality"].num_silent_windows:
        warnings.append(f"{sections['quality'].num_silent_windows} selected FVD/FAD windows have all-zero audio; "
                        "the official loader stops on them")
    info = {"kind": gen.kind, "split": gen.split, "revision": gen.revision, **dict(gen.info)}
    if ref is not None:
        info["reference"] = {"source": str(ref.description), "kind": ref.kind, "split": ref.split,
                             "revision": ref.revision, "num_clips": len(ref)}
    info["processes"] = processes
    info["config"] = asdict(config)
    return EvaluationReport(sections=sections, source=str(gen.description), num_clips=len(gen), seconds=seconds,
                            clips_info=info, weights=models.all_weights, warnings=warnings, command=command)
