"""Benchmark Spatial AV-Align: the batched evaluator against a sequential path that mirrors the official scripts.

    python benchmarks/spatial_av_align.py                       # 8 synthetic clips (built offline in a temp folder)
    python benchmarks/spatial_av_align.py --num-clips 16 --clips DIR   # the first 16 mp4 files of DIR
    python benchmarks/spatial_av_align.py --models official-size       # random-init official-size models

Paths, each measured in a fresh process (peak RSS = that process's ``ru_maxrss``), on the same mp4 files:

* **batched**: :class:`~savg_hub.evaluation.spatial_eval.SpatialAVAlignEvaluator` -- each clip decoded once (in a
  thread pool, ahead of the compute), models resident, the SELD windows of a chunk of clips in shared batches and
  the frames of a chunk in shared detector batches, a chunk's SELD call (single-threaded NumPy STFT + network)
  running beside its detector call; the official score only (no calibration controls), so both paths do the same
  job. More batched rows: the same without that overlap, and with the four calibration controls.
* **sequential (official layout)**: three stages as the official scripts run them -- SELD: model loaded once,
  then per clip an audio-only decode and one forward of its 5 windows in a zero-padded batch of 8, a CSV written;
  detection: model loaded once, then per clip and per frame a seek + decode (OpenCV, as the official code) and one
  forward per frame, a CSV written; then the matcher on the two CSV folders.

Both paths load their models inside the timed region. The floating-point work per clip is counted with
``torch.utils.flop_counter.FlopCounterMode`` on one clip (SELD windows + detector frames; the official batch of 8
counts its 3 zero windows), and the fraction of the machine's peak is the achieved GFLOP/s over a dense float32
matmul measured in the same run with the same thread count.

Models: the embedded default weights when present (``--models auto``), else random-init models of the official
size (the official SELD config and YOLOX-tiny: the same compute as the real weights); the output says which.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEQUENTIAL_SELD_BATCH = 8  # the official --batch-size: one clip's 5 windows + 3 zero windows per forward


# ----------------------------------------------------------------------------------------------------------
# Setup (parent process)
# ----------------------------------------------------------------------------------------------------------


def _make_clips(out: Path, count: int, seed: int) -> Path:
    """``count`` synthetic SVGSA24 clips as mp4 files (H.264 + AAC, no lossless sidecar) in ``out``."""
    from savg_hub.cli.main import main as savg
    from savg_hub.data.hf_dataset import DatasetFolder, example_to_clip
    from savg_hub.media import write_clip

    dataset = out.parent / "dataset"
    if not dataset.exists():
        recordings = max(3, -(-count // 4))  # the generator spreads recordings over dev and eval folds
        code = savg(["build-dataset", "--synthetic", str(recordings), "--out", str(dataset), "--no-progress",
                     "--workers", "2", "--seed", str(seed), "--eval-yaw-step", "15", "--dev-hop", "1",
                     "--dev-yaw-step", "30"])
        if code != 0:
            raise RuntimeError(f"savg build-dataset failed with exit code {code}")
    folder = DatasetFolder(dataset)
    written = 0
    out.mkdir(parents=True, exist_ok=True)
    for split in ("eval", "dev"):
        if split not in folder.splits:
            continue
        for index, meta in enumerate(folder.metadata(split)):
            if written >= count:
                return out
            target = out / f"{meta['clip_id']}.mp4"
            if not target.exists():
                write_clip(target, example_to_clip(folder.row(split, index)), lossless=None)
            written += 1
    if written < count:
        raise RuntimeError(f"the synthetic set has only {written} clips; ask for fewer")
    return out


def _models(kind: str, work: Path) -> dict:
    """What both paths load: registry names of the embedded defaults, or saved random-init official-size models."""
    from savg_hub import weights as registry

    if kind in ("auto", "embedded"):
        seld = [e for e in registry.entries("stereo-seld") if e.embedded and (registry.ASSETS / e.embedded).exists()]
        det = [e for e in registry.entries("ultralytics") if e.embedded and (registry.ASSETS / e.embedded).exists()]
        if seld and det:
            return {"description": f"embedded default weights ({seld[0].name}, {det[0].name}; stand-ins trained on "
                                   "synthetic scenes)",
                    "seld": seld[0].name, "detector": "ultralytics", "detector_weights": det[0].name}
        if kind == "embedded":
            raise SystemExit("embedded default weights are not in savg_hub/assets/weights/ yet")
    import torch

    from savg_hub.models.stereo_seld import StereoSELDModel
    from savg_hub.models.yolox import YOLOXModel

    seld_dir, det_dir = work / "seld-official-size", work / "yolox-tiny-random"
    if not (seld_dir / "config.json").is_file():
        torch.manual_seed(0)
        StereoSELDModel().eval().save_pretrained(str(seld_dir))
        YOLOXModel().eval().save_pretrained(str(det_dir))
    return {"description": "random-init models of the official size (official SELD CNN-MHSA-FC config, "
                           "YOLOX-tiny at 416x416): the compute of the official weights, not their outputs",
            "seld": str(seld_dir), "detector": "yolox-tiny", "detector_weights": str(det_dir)}


# ----------------------------------------------------------------------------------------------------------
# Children (fresh processes)
# ----------------------------------------------------------------------------------------------------------


def _setup_child(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_audio_subprocess(path: str | Path) -> np.ndarray:
    """A clip's stereo audio decoded by a fresh ``ffmpeg`` process, as the release's loaders decode it (librosa ->
    audioread -> ffmpeg for SELD and Temporal AV-Align, moviepy -> ffmpeg for FAD: one process per call).

    Reads the same source as :func:`~savg_hub.evaluation.clips.read_audio_clip` (the lossless sidecar when there
    is one) as float32 at 16 kHz (the clips' rate, so nothing is resampled): the same samples, only the decoding
    cost differs. Returns float32 ``(2, 80000)``.
    """
    import subprocess

    from savg_hub.media.clip import SVGSA24_CLIP, find_sidecar

    path = Path(path)
    source = find_sidecar(path) or path
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(source), "-map", "0:a:0", "-ac", "2",
                          "-ar", str(SVGSA24_CLIP.sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "-"],
                         capture_output=True, check=True)
    audio = np.frombuffer(out.stdout, dtype="<f4").reshape(-1, 2).T
    if audio.shape[1] < SVGSA24_CLIP.num_samples:
        raise ValueError(f"{path}: ffmpeg decoded {audio.shape[1]} samples; expected {SVGSA24_CLIP.num_samples}")
    return np.ascontiguousarray(audio[:, : SVGSA24_CLIP.num_samples])


def read_audio(path: Path, decoders: str) -> np.ndarray:
    """Stereo float32 ``(2, 80000)`` audio of a clip: ``decoders="official"`` through an ffmpeg process per call
    (:func:`read_audio_subprocess`), ``"in-process"`` with the toolkit's reader."""
    if decoders == "official":
        return read_audio_subprocess(path)
    from savg_hub.evaluation.clips import read_audio_clip

    return read_audio_clip(path).audio


def _clip_paths(folder: str, count: int) -> list[Path]:
    return sorted(Path(folder).glob("*.mp4"))[:count]


class _TimedSELD:
    """Forwards to a SELD predictor and adds up the time spent in it (features + network)."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds = inner, 0.0

    def predict(self, audios, sample_rate: int = 16_000):
        started = time.perf_counter()
        try:
            return self.inner.predict(audios, sample_rate)
        finally:
            self.seconds += time.perf_counter() - started


class _TimedDetector:
    """Forwards to a person detector and adds up the time spent in it."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds, self.name = inner, 0.0, getattr(inner, "name", "detector")

    def detect(self, frames):
        started = time.perf_counter()
        try:
            return self.inner.detect(frames)
        finally:
            self.seconds += time.perf_counter() - started


def child_batched(folder: str, count: int, models: dict, threads: int, calibration: bool, chunk: int,
                  overlap: bool = True) -> dict:
    """The batched evaluator; returns time (with the share of SELD and detector calls), peak RSS and the score."""
    _setup_child(threads)
    from savg_hub.evaluation.clips import open_clips
    from savg_hub.evaluation.spatial_eval import SpatialAVAlignEvaluator

    started = time.perf_counter()
    loaded_evaluator = SpatialAVAlignEvaluator.from_pretrained(models["seld"], models["detector"],
                                                               models["detector_weights"])
    loaded = time.perf_counter() - started
    seld, detector = _TimedSELD(loaded_evaluator.seld), _TimedDetector(loaded_evaluator.detector)
    evaluator = SpatialAVAlignEvaluator(seld, detector, calibration=calibration, chunk_size=chunk, overlap=overlap)
    source = open_clips(_clip_paths(folder, count), workers=2, prefetch=chunk)
    result = evaluator.evaluate(source)
    seconds = time.perf_counter() - started
    return {"clips": result.num_clips, "seconds": seconds, "load_seconds": loaded, "peak_rss_mb": _rss_mb(),
            "stages": {"seld": seld.seconds, "detect": detector.seconds},
            "num_tp": result.num_tp, "num_fn": result.num_fn,
            "calibration": result.calibration_scores() if calibration else {}}


def _sequential_seld_rows(model, audio: np.ndarray) -> np.ndarray:
    """The official seld_predictor on one clip: 5 windows in a zero-padded batch of 8, one forward."""
    import torch

    from savg_hub.evaluation import seld as S

    features = S.compute_seld_features(audio, S.SELD_SAMPLE_RATE)
    duration = features.shape[-1] * S.SELD_HOP_SIZE / S.SELD_SAMPLE_RATE
    start_times = S.seld_window_start_times(duration)
    starts = S.seld_window_start_frames(start_times)
    padded = S.loop_pad_features(features)
    windows = np.zeros((max(SEQUENTIAL_SELD_BATCH, len(starts)), *padded.shape[:2], S.SELD_WINDOW_FRAMES), np.float32)
    for w, start in enumerate(starts):
        windows[w] = padded[..., int(start): int(start) + S.SELD_WINDOW_FRAMES]
    with torch.inference_mode():
        output = model(torch.from_numpy(windows))
    margin = slice(S.SELD_WINDOW_MARGIN, S.SELD_WINDOW_MARGIN + S.SELD_WINDOW_HOP_FRAMES)
    sed = output.sed_logits[: len(starts), 0, :, margin].numpy()  # (W, C, 120)
    doa = output.doa[: len(starts), 0, :, margin].numpy()
    sed = np.concatenate(list(sed), axis=-1)  # (C, 120 W), window-major
    doa = np.concatenate(list(doa), axis=-1)
    rows, *_ = S.seld_postprocess(sed, doa, start_times, duration)
    return rows


def child_sequential(folder: str, count: int, models: dict, threads: int, work: str,
                     decoders: str = "in-process") -> dict:
    """The official three-stage layout, one clip (and, for detection, one frame) at a time; SELD audio decoded
    as :func:`read_audio` with ``decoders``."""
    _setup_child(threads)
    import cv2

    from savg_hub.evaluation.csv_io import write_detection_csv, write_seld_csv
    from savg_hub.evaluation.spatial import spatial_av_align_from_csv
    from savg_hub.evaluation.spatial_eval import load_person_detector, load_seld

    paths = _clip_paths(folder, count)
    seld_dir, od_dir = Path(work) / "pred_seld", Path(work) / "pred_od"
    started = time.perf_counter()
    # stage 1: SELD (seld.py -infer): model loaded once, clips one by one, audio decoded on its own
    seld, _ = load_seld(models["seld"])
    model = seld.model
    stage = {}
    for path in paths:
        audio = read_audio(path, decoders)
        write_seld_csv(seld_dir / f"{path.stem}.csv", _sequential_seld_rows(model, audio))
    stage["seld"] = time.perf_counter() - started
    # stage 2: detection (object_detection_svg_infer): model loaded once, every frame seeked, read, detected alone
    detector, _ = load_person_detector(models["detector"], models["detector_weights"], batch_size=1)
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        if int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) != 20 or capture.get(cv2.CAP_PROP_FPS) != 4:
            raise ValueError(f"{path}: expected 20 frames at 4 fps (the official assertion)")
        boxes = []
        for index in range(20):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            if not ok:
                raise ValueError(f"{path}: cannot read frame {index}")
            rgb = np.ascontiguousarray(frame[:, :, ::-1])
            boxes.append(detector.detect(rgb[None])[0][:, :4])
        capture.release()
        write_detection_csv(od_dir / f"{path.stem}.csv", boxes)
    stage["detect"] = time.perf_counter() - started - stage["seld"]
    # stage 3: compute_spatialAValign_metrics.py on the two CSV folders
    result = spatial_av_align_from_csv(seld_dir, od_dir, [p.stem for p in paths])
    seconds = time.perf_counter() - started
    return {"clips": len(paths), "seconds": seconds, "stages": stage, "peak_rss_mb": _rss_mb(),
            "num_tp": result.num_tp, "num_fn": result.num_fn}


def child_flops(folder: str, models: dict, threads: int) -> dict:
    """FLOPs per clip of the SELD forward (5 windows; 8 in the official batch) and the detector (20 frames)."""
    _setup_child(threads)
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from savg_hub.evaluation.clips import open_clips
    from savg_hub.evaluation.spatial_eval import load_person_detector, load_seld

    seld, _ = load_seld(models["seld"])
    detector, _ = load_person_detector(models["detector"], models["detector_weights"], batch_size=20)
    _, clip = next(iter(open_clips(_clip_paths(folder, 1), workers=0)))
    counts = {}
    with FlopCounterMode(display=False) as counter:
        seld.predict([clip.audio])
    counts["seld_batched"] = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        _sequential_seld_rows(seld.model, clip.audio)
    counts["seld_sequential"] = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        detector.detect(clip.video)
    counts["detector"] = counter.get_total_flops()
    counts["threads"] = torch.get_num_threads()
    return counts


def child_matmul(threads: int, size: int = 2048, seconds: float = 3.0) -> dict:
    """Dense float32 matmul throughput (best of repeated ``size``-square products)."""
    _setup_child(threads)
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return {"gflops": 2 * size**3 / best / 1e9, "threads": torch.get_num_threads()}


def _run_child(function: str, *args) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import spatial_av_align as b; "
            f"print(json.dumps(b.{function}(*{args!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-clips", type=int, default=8)
    parser.add_argument("--clips", type=Path, help="a folder of mp4 clips (default: synthetic clips made here)")
    parser.add_argument("--models", choices=("auto", "embedded", "official-size"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every path (0 = torch default)")
    parser.add_argument("--chunk-size", type=int, default=16, help="clips per batched chunk")
    parser.add_argument("--no-calibration-row", action="store_true", help="skip the batched + controls row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep clips/models/CSVs here (default: a temp folder)")
    args = parser.parse_args()
    if args.num_clips < 1:
        raise SystemExit(f"--num-clips must be >= 1, got {args.num_clips}")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="savg-bench-spatial-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.clips is not None:
        folder = args.clips
        if len(_clip_paths(str(folder), args.num_clips)) < args.num_clips:
            raise SystemExit(f"{folder} holds fewer than {args.num_clips} mp4 files")
    else:
        print(f"making {args.num_clips} synthetic clips in {work} ...", flush=True)
        folder = _make_clips(work / "clips", args.num_clips, args.seed)
    models = _models(args.models, work)
    load = os.getloadavg()
    print(f"models: {models['description']}", flush=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start",
          flush=True)

    matmul = _run_child("child_matmul", args.threads)
    flops = _run_child("child_flops", str(folder), models, args.threads)
    print(f"dense float32 matmul: {matmul['gflops']:.1f} GFLOP/s on {matmul['threads']} threads (measured again at "
          "the end; the table uses the better one)", flush=True)
    batched = _run_child("child_batched", str(folder), args.num_clips, models, args.threads, False, args.chunk_size)
    print(f"  batched: {batched['seconds']:.1f} s", flush=True)
    serial = _run_child("child_batched", str(folder), args.num_clips, models, args.threads, False, args.chunk_size,
                        False)
    print(f"  batched, SELD not overlapped with detection: {serial['seconds']:.1f} s", flush=True)
    sequential = _run_child("child_sequential", str(folder), args.num_clips, models, args.threads,
                            str(work / f"sequential-{os.getpid()}"))
    print(f"  sequential: {sequential['seconds']:.1f} s", flush=True)
    controls = None
    if not args.no_calibration_row:
        controls = _run_child("child_batched", str(folder), args.num_clips, models, args.threads, True,
                              args.chunk_size)
    load_end = os.getloadavg()
    again = _run_child("child_matmul", args.threads)  # the machine is shared: keep the best of two measurements
    matmul = max(matmul, again, key=lambda m: m["gflops"])

    det = flops["detector"] / 1e9
    seld_b, seld_s = flops["seld_batched"] / 1e9, flops["seld_sequential"] / 1e9
    # the controls rerun SELD twice (swapped, mono) and the detector once (flipped frames)
    rows = [("batched (SpatialAVAlignEvaluator)", batched, seld_b + det),
            ("batched, SELD/detector not overlapped", serial, seld_b + det),
            ("sequential (official layout)", sequential, seld_s + det)]
    if controls is not None:
        rows.insert(2, ("batched + 4 calibration controls", controls, 3 * seld_b + 2 * det))
    base = sequential["clips"] / sequential["seconds"]
    print(f"\nSpatial AV-Align on {args.num_clips} clips (256x256, 20 frames, stereo 16 kHz) from {folder}")
    print(f"{'path':<36} {'clips':>5} {'seconds':>8} {'clips/s':>8} {'peak RSS MB':>11} {'speed-up':>8} "
          f"{'GFLOP/clip':>10} {'% of peak':>9}")
    for name, data, gflop in rows:
        rate = data["clips"] / data["seconds"]
        print(f"{name:<36} {data['clips']:>5} {data['seconds']:>8.1f} {rate:>8.3f} {data['peak_rss_mb']:>11.0f} "
              f"{rate / base:>7.2f}x {gflop:>10.1f} {100 * gflop * rate / matmul['gflops']:>8.1f}%")
    print(f"\nGFLOP per clip: SELD {seld_b:.1f} (5 windows; {seld_s:.1f} in the official zero-padded batch of 8), "
          f"detector {det:.1f} (20 frames)")
    print(f"machine peak: dense float32 matmul {matmul['gflops']:.1f} GFLOP/s, best of start and end "
          f"({matmul['threads']} torch threads); load average {load[0]:.1f} at start, {load_end[0]:.1f} at end "
          "(shared machine: other processes count)")
    stages = serial["stages"]
    rest = serial["seconds"] - sum(stages.values()) - serial["load_seconds"]
    print(f"sequential stages: SELD {sequential['stages']['seld']:.1f} s, detection "
          f"{sequential['stages']['detect']:.1f} s (each with its decoding); batched without overlap: SELD calls "
          f"{stages['seld']:.1f} s, detector calls {stages['detect']:.1f} s, model loading "
          f"{serial['load_seconds']:.1f} s, the rest (waiting for decodes, matching) {rest:.1f} s; with overlap the "
          f"SELD calls ({batched['stages']['seld']:.1f} s) run alongside the detector calls "
          f"({batched['stages']['detect']:.1f} s)")
    same = (batched["num_tp"], batched["num_fn"]) == (sequential["num_tp"], sequential["num_fn"])
    print(f"same result from both paths: {same} (batched TP/FN {batched['num_tp']}/{batched['num_fn']}, "
          f"sequential {sequential['num_tp']}/{sequential['num_fn']})")
    if controls is not None:
        print("calibration scores: " + ", ".join(f"{k} {v if v is None else round(v, 3)}"
                                                 for k, v in controls["calibration"].items()))


if __name__ == "__main__":
    main()
