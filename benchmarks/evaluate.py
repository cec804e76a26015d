"""Benchmark a full evaluation (all five metrics) against a per-metric path that mirrors the official one.

    python benchmarks/evaluate.py                                  # 96 vs 96 synthetic clips, built offline here
    python benchmarks/evaluate.py --generated DIR --reference DIR  # the first --num-clips mp4 files of each
    python benchmarks/evaluate.py --num-clips 24 --processes 2     # smaller; add a 2-process row

Paths, each measured in fresh processes (peak RSS = the largest ``ru_maxrss`` of its processes), on the same files:

* **single pass** (``savg evaluate``'s :func:`~savg_hub.evaluation.suite.evaluate_suite`): every generated clip
  decoded once, in a thread pool ahead of the compute, for Spatial AV-Align (SELD windows and detector frames
  batched across a chunk of clips), Temporal AV-Align and the official FVD/KVD/FAD windows (cut out while the
  clip is in memory); only the reference clips with a selected window decoded; models loaded once.
* **per metric (official layout)**: as the release runs ``evaluation_script.sh``, one fresh process per stage,
  each loading its own models and decoding every clip again: (1) SELD, one clip at a time, then (2) person
  detection, one seeked frame per forward, then (3) the matcher on the CSV folders -- the sequential path of
  ``benchmarks/spatial_av_align.py``; (4) FVD/KVD/FAD: each selected 2-s window decoded from its file again (as
  torchvision's ``VideoClips`` and moviepy do per window), features in batches of 8; (5) Temporal AV-Align: each
  clip decoded again, frames with OpenCV and audio on its own, as the release's script. Audio decoding
  (``--decoders``): ``official`` (default) starts an ``ffmpeg`` process for each clip's audio (SELD, Temporal)
  and for each window's audio (FAD), as the release's librosa -> audioread and moviepy loaders do; it reads the
  same lossless samples, so only the cost differs. ``in-process`` uses the toolkit's reader instead (no
  process start-ups), the lower bound of the per-metric path.

Both paths compute the same numbers (the table's last columns show them side by side). Calibration controls are
off in both (the release has none). Weights: the embedded SELD / detector defaults when present (else
random-init official-size models, see ``--models``), and for I3D / AudioCLIP the official weights when imported,
else the seeded random-init stand-ins ``savg evaluate`` uses offline; the output says which.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spatial_av_align as spatial_bench  # noqa: E402  (shared: clip making, models, sequential Spatial path)


child_sequential = spatial_bench.child_sequential  # stages 1-3 of the per-metric path, run in a child by name


def _paths(folder: str, count: int) -> list[Path]:
    return sorted(Path(folder).glob("*.mp4"))[:count]


# ----------------------------------------------------------------------------------------------------------
# Children (fresh processes)
# ----------------------------------------------------------------------------------------------------------


def child_single(generated: str, reference: str, count: int, models: dict, threads: int, processes: int) -> dict:
    """``evaluate_suite`` over the first ``count`` clips of each folder."""
    spatial_bench._setup_child(threads)
    from savg_hub.evaluation.suite import SuiteConfig, evaluate_suite

    started = time.perf_counter()
    config = SuiteConfig(seld_weights=models["seld"], detector=models["detector"],
                         detector_weights=models["detector_weights"], calibration=False, feature_cache=False,
                         threads=None if processes == 1 else max(1, (os.cpu_count() or 1) // processes))
    report = evaluate_suite(_paths(generated, count), _paths(reference, count), config, processes=processes)
    seconds = time.perf_counter() - started
    quality, spatial = report.sections["quality"], report.sections["spatial_av_align"]
    return {"seconds": seconds, "peak_rss_mb": spatial_bench._rss_mb(), "num_tp": spatial.num_tp,
            "num_fn": spatial.num_fn, "fvd": quality.fvd, "kvd": quality.kvd, "fad": quality.fad,
            "temporal": report.sections["temporal_av_align"].result.official,
            "weights": [f"{w.role}: {w.source}" for w in report.weights]}


def child_quality(generated: str, reference: str, count: int, threads: int, decoders: str = "in-process") -> dict:
    """The official FVD/KVD/FAD stage: models loaded, each selected window decoded from its file again (frames
    with PyAV as torchvision's ``VideoClips``, audio as :func:`spatial_av_align.read_audio` with ``decoders``:
    moviepy starts one ffmpeg process per window)."""
    spatial_bench._setup_child(threads)
    from savg_hub.evaluation.quality import (
        QualityEvaluator,
        WindowExcerpts,
        load_quality_models,
        quality_result,
        window_excerpts,
    )
    from savg_hub.evaluation.selection import VideoTiming, official_selection
    from savg_hub.media.clip import Clip, read_clip

    started = time.perf_counter()
    i3d, audioclip, records = load_quality_models()
    evaluator = QualityEvaluator(i3d, audioclip, use_cache=False)
    fake, real = _paths(generated, count), _paths(reference, count)
    fake_windows, real_windows = official_selection([VideoTiming(str(p), 20, 4.0) for p in fake],
                                                    [VideoTiming(str(p), 20, 4.0) for p in real])

    def features(paths, windows):
        parts = []
        for window in windows:  # one decode per window, as the official per-window loader
            path = paths[window.video_index]
            clip = read_clip(path)
            if decoders == "official":
                audio = spatial_bench.read_audio(path, decoders)
                clip = Clip(clip.video, audio, clip.fps, clip.sample_rate, clip_id=clip.clip_id)
            parts.append(window_excerpts({window.video_index: clip}, [window]))
        return evaluator.compute_features(WindowExcerpts.concatenate(parts))

    result = quality_result(features(fake, fake_windows), features(real, real_windows))
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": spatial_bench._rss_mb(), "fvd": result.fvd,
            "kvd": result.kvd, "fad": result.fad, "weights": [f"{r.role}: {r.source}" for r in records]}


def child_temporal(generated: str, count: int, threads: int, decoders: str = "in-process") -> dict:
    """The official Temporal AV-Align stage: frames read with OpenCV, audio read on its own (as
    :func:`spatial_av_align.read_audio` with ``decoders``), per clip."""
    spatial_bench._setup_child(threads)
    import cv2

    from savg_hub.evaluation.temporal import temporal_av_align

    started = time.perf_counter()

    def clips():
        for path in _paths(generated, count):
            capture = cv2.VideoCapture(str(path))
            fps, frames = capture.get(cv2.CAP_PROP_FPS), []
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(frame[:, :, ::-1])
            capture.release()
            audio = spatial_bench.read_audio(path, decoders)
            yield path.stem, np.ascontiguousarray(np.stack(frames)), fps, audio, 16_000

    result = temporal_av_align(clips())
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": spatial_bench._rss_mb(),
            "temporal": result.official}


def _run_child(function: str, *args) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import evaluate as b; "
            f"print(json.dumps(b.{function}(*{args!r})))")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started  # including interpreter start and imports
    return result


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-clips", type=int, default=96, help="clips per set (default 96, as the benchmark)")
    parser.add_argument("--generated", type=Path, help="folder of generated mp4 clips (default: synthetic)")
    parser.add_argument("--reference", type=Path, help="folder of reference mp4 clips (default: synthetic)")
    parser.add_argument("--models", choices=("auto", "embedded", "official-size"), default="auto",
                        help="SELD / detector weights (see benchmarks/spatial_av_align.py)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = torch default)")
    parser.add_argument("--processes", type=int, default=1, help="also time the single pass with N processes")
    parser.add_argument("--decoders", choices=("official", "in-process"), default="official",
                        help="audio decoding of the per-metric path: official = a fresh ffmpeg process per clip "
                             "(per window for FAD), as the release's librosa/audioread and moviepy; in-process = "
                             "the toolkit's reader (default: official)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep clips/models/CSVs here (default: a temp folder)")
    args = parser.parse_args()
    count = args.num_clips
    if count < 2:
        raise SystemExit(f"--num-clips must be >= 2, got {count}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="savg-bench-evaluate-"))
    work.mkdir(parents=True, exist_ok=True)
    if (args.generated is None) != (args.reference is None):
        raise SystemExit("give both --generated and --reference, or neither")
    if args.generated is None:
        print(f"making {2 * count} synthetic clips in {work} ...", flush=True)
        both = spatial_bench._make_clips(work / "all-clips", 2 * count, args.seed)
        generated, reference = work / "generated", work / "reference"
        for index, path in enumerate(_paths(str(both), 2 * count)):
            target = (generated if index % 2 == 0 else reference) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(path, target)
    else:
        generated, reference = args.generated, args.reference
    for name, folder in (("generated", generated), ("reference", reference)):
        if len(_paths(str(folder), count)) < count:
            raise SystemExit(f"{name} folder {folder} holds fewer than {count} mp4 files")
    models = spatial_bench._models(args.models, work)
    load = os.getloadavg()
    print(f"SELD / detector: {models['description']}", flush=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start",
          flush=True)

    rows = []
    single = _run_child("child_single", str(generated), str(reference), count, models, args.threads, 1)
    rows.append(("single pass, 1 process", single))
    if args.processes > 1:
        sharded = _run_child("child_single", str(generated), str(reference), count, models, args.threads,
                             args.processes)
        rows.append((f"single pass, {args.processes} processes", sharded))
    seq = _run_child("child_sequential", str(generated), count, models, args.threads, str(work / "csv"),
                     args.decoders)
    quality = _run_child("child_quality", str(generated), str(reference), count, args.threads, args.decoders)
    temporal = _run_child("child_temporal", str(generated), count, args.threads, args.decoders)
    stages = [seq, quality, temporal]
    per_metric = {
        "process_seconds": sum(s["process_seconds"] for s in stages),
        "seconds": sum(s["seconds"] for s in stages),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in stages),
        "num_tp": seq["num_tp"], "num_fn": seq["num_fn"], "fvd": quality["fvd"], "kvd": quality["kvd"],
        "fad": quality["fad"], "temporal": temporal["temporal"],
    }
    rows.append((f"per metric ({args.decoders} decoders)", per_metric))

    print(f"\nfeature weights: {', '.join(single['weights'][-2:])}")
    base = per_metric["process_seconds"]
    header = (f"{'path':<31}{'clips':>6}{'wall s':>9}{'clips/s':>9}{'peak RSS MB':>13}{'speed-up':>10}"
              f"{'TP/FN':>12}{'FVD':>11}{'KVD':>10}{'FAD':>12}{'Temporal':>10}")
    print(header)
    print("-" * len(header))
    for name, row in rows:
        wall = row["process_seconds"]
        print(f"{name:<31}{count:>6}{wall:>9.1f}{count / wall:>9.2f}{row['peak_rss_mb']:>13.0f}{base / wall:>9.2f}x"
              f"{row['num_tp']:>6}/{row['num_fn']:<5}{row['fvd']:>11.3f}{row['kvd']:>10.4f}{row['fad']:>12.4f}"
              f"{(row['temporal'] or float('nan')):>10.4f}")
    print(f"\nper-metric stages (wall s incl. start-up): SELD+detection+matcher {seq['process_seconds']:.1f}, "
          f"FVD/KVD/FAD {quality['process_seconds']:.1f}, Temporal {temporal['process_seconds']:.1f}")
    same = all(np.isclose(single[k], per_metric[k], rtol=0, atol=0) for k in ("fvd", "kvd", "fad")) and \
        (single["num_tp"], single["num_fn"]) == (per_metric["num_tp"], per_metric["num_fn"])
    print(f"same Spatial TP/FN and FVD/KVD/FAD in both paths: {same}; Temporal "
          f"{single['temporal']!r} vs {per_metric['temporal']!r}")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
