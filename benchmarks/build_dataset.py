"""Benchmark the SVGSA24 builder against a naive path, at the real STARSS23 resolution.

    python benchmarks/build_dataset.py                    # 3 x 60-s recordings, 1920x960 at 29.97 fps, 24 kHz FOA
    python benchmarks/build_dataset.py --seconds 30 --recordings 2 --naive-clips 24

Both paths produce the same clips (same curation plan); the naive path renders each clip the obvious way: open
the 360° video and seek to the window for every clip, decode its frames, and call ``py360convert.e2p`` on each of
the 20 frames it keeps. The builder decodes each video once, renders every frame once per angle that needs it, and
streams. Peak memory is the resident set of a fresh process per measurement; it is also measured for recordings of
two lengths to show it does not grow with length.

Prints a table: clips, seconds, clips/s, peak RSS and the speed ratio, plus a frame-equality check of both paths.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def _generate(root: Path, count: int, seconds: float, width: int, height: int, seed: int) -> None:
    from savg_hub.data.synthetic import SyntheticConfig, generate_recording

    config = SyntheticConfig(duration=seconds, video_width=width, video_height=height, fps=Fraction(30000, 1001))
    for i in range(count):
        generate_recording(root, "dev-train-synth", f"fold3_room{i + 1}_mix001", seed + i, config)


def _child_build(src: str, out: str, workers: int) -> dict:
    """Runs in a fresh process: build and report time and peak RSS."""
    from savg_hub.data.builder import BuilderConfig, build_svgsa24
    from savg_hub.data.starss23 import find_recordings

    started = time.perf_counter()
    result = build_svgsa24(find_recordings(src), out, BuilderConfig(num_workers=workers), progress=False)
    seconds = time.perf_counter() - started
    clips = sum(s["num_clips"] for s in result.info.splits.values())
    return {"clips": clips, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child_naive(src: str, limit: int) -> dict:
    """Runs in a fresh process: the naive path on the first ``limit`` planned clips; returns timing + frames."""
    import av
    import py360convert

    from savg_hub.data.builder import BuilderConfig, RecordingRenderer, plan_recording
    from savg_hub.data.starss23 import find_recordings
    from savg_hub.media.io import encode_audio_bytes, encode_mp4_bytes

    config = BuilderConfig()
    clips_done, digests = 0, []
    started = time.perf_counter()
    for recording in find_recordings(src):
        plan = plan_recording(recording, "dev", config)
        renderer = RecordingRenderer(plan, config, "naive")  # only for its audio path
        for clip in sorted(plan.clips, key=lambda c: (c.start_frame, c.yaw)):  # the builder's order
            if clips_done >= limit:
                break
            view = config.view(clip.yaw)
            wanted = set(clip.source_frames)
            pictures = {}
            with av.open(str(recording.video_path)) as container:  # every clip decodes its own window
                stream = container.streams.video[0]
                first = min(wanted)
                container.seek(int(first / stream.average_rate / stream.time_base), stream=stream, backward=True)
                for frame in container.decode(stream):
                    index = int(round(float(frame.pts * stream.time_base * stream.average_rate)))
                    if index in wanted:
                        equirect = frame.to_ndarray(format="rgb24")
                        pictures[index] = py360convert.e2p(equirect, (view.hfov_deg, view.vertical_fov_deg),
                                                           view.u_deg, 0, (view.height, view.width))
                    if index >= max(wanted):
                        break
            frames = view.letterbox(np.stack([pictures[i] for i in clip.source_frames]))
            audio = renderer.audio.stereo(renderer.audio.prepare(renderer.reader, clip.start_seconds), clip.yaw)
            audio = audio.astype(np.float32)
            encode_mp4_bytes(frames, config.fps, audio, config.sample_rate, crf=config.video_crf,
                             preset=config.video_preset)
            encode_audio_bytes(audio, config.sample_rate)
            digests.append(frames.astype(np.int64).sum(axis=(1, 2, 3)).tolist())
            clips_done += 1
        if clips_done >= limit:
            break
    seconds = time.perf_counter() - started
    return {"clips": clips_done, "seconds": seconds, "digests": digests,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child_ours_digests(src: str, limit: int) -> dict:
    """Runs in a fresh process: per-frame sums of the builder's frames for the first clips (by window, angle)."""
    from savg_hub.data.builder import BuilderConfig, RecordingRenderer, plan_recording
    from savg_hub.data.starss23 import find_recordings

    config = BuilderConfig()
    digests = []
    for recording in find_recordings(src):
        plan = plan_recording(recording, "dev", config)
        for _, frames, _ in RecordingRenderer(plan, config, "ours").rendered():  # (window, angle) order
            if len(digests) >= limit:
                break
            digests.append(frames.astype(np.int64).sum(axis=(1, 2, 3)).tolist())
        if len(digests) >= limit:
            break
    return {"digests": digests}


def _run_child(function: str, *args) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import build_dataset as b; "
            f"print(json.dumps(b.{function}(*{args!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=960)
    parser.add_argument("--naive-clips", type=int, default=40, help="clips rendered by the (slow) naive path")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep recordings/outputs here (default: a temp folder)")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="savg-bench-"))
    long_src, short_src = work / "long", work / "short"
    print(f"generating {args.recordings} x {args.seconds:.0f}-s recordings at {args.width}x{args.height}, "
          f"29.97 fps, 24 kHz FOA in {work} ...", flush=True)
    t0 = time.perf_counter()
    if not long_src.exists():
        _generate(long_src, args.recordings, args.seconds, args.width, args.height, args.seed)
    if not short_src.exists():
        _generate(short_src, 1, max(10.0, args.seconds / 3), args.width, args.height, args.seed)
    print(f"  generated in {time.perf_counter() - t0:.0f} s", flush=True)

    ours = _run_child("_child_build", str(long_src), str(work / "out-long"), args.workers)
    short = _run_child("_child_build", str(short_src), str(work / "out-short"), args.workers)
    naive = _run_child("_child_naive", str(long_src), args.naive_clips)
    check = _run_child("_child_ours_digests", str(long_src), args.naive_clips)

    ours_rate = ours["clips"] / ours["seconds"]
    naive_rate = naive["clips"] / naive["seconds"]
    same = check["digests"] == naive["digests"]
    total_minutes = args.recordings * args.seconds / 60
    rows = [
        ("builder (decode once, stream)", ours["clips"], ours["seconds"], ours_rate, ours["peak_rss_mb"], ours_rate / naive_rate),
        ("naive (seek per clip, py360convert.e2p per frame)", naive["clips"], naive["seconds"], naive_rate,
         naive["peak_rss_mb"], 1.0),
    ]
    print(f"\nSVGSA24 build from {args.recordings} synthetic recordings ({total_minutes:.1f} min of 360° video, "
          f"{args.width}x{args.height} @ 29.97 fps, FOA 24 kHz); dev recipe (0.5 s x 10°)")
    print(f"{'path':<52} {'clips':>6} {'seconds':>9} {'clips/s':>9} {'peak RSS MB':>12} {'speed-up':>9}")
    for name, clips, seconds, rate, rss, ratio in rows:
        print(f"{name:<52} {clips:>6} {seconds:>9.1f} {rate:>9.2f} {rss:>12.0f} {ratio:>8.1f}x")
    print(f"\nsame frames from both paths on the first {len(naive['digests'])} clips: {same}")
    print("peak RSS of the builder vs recording length:")
    print(f"  1 x {max(10.0, args.seconds / 3):.0f} s: {short['peak_rss_mb']:.0f} MB ({short['clips']} clips)")
    print(f"  {args.recordings} x {args.seconds:.0f} s: {ours['peak_rss_mb']:.0f} MB ({ours['clips']} clips)")


if __name__ == "__main__":
    main()
