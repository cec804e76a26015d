"""``savg evaluate``, ``savg seld``, ``savg detect`` and ``savg spatial-align``.

    savg evaluate generated/ --reference svgsa24/:eval --out results/ # all five metrics, one pass, one JSON
    savg evaluate generated/ --metrics spatial --out results/          # results.json + per_clip.csv + summary
    savg evaluate demo-set/:eval --visualize --results-out results.out  # a dataset split; overlay videos
    savg seld generated/ --out pred_seld/ [--weights W]                 # official per-clip SELD CSVs
    savg detect generated/ --out pred_od/ [--detector yolox-tiny --weights W]
    savg spatial-align --seld pred_seld/ --detections pred_od/ [--list list_path_video.txt]

CLIPS is a folder of mp4 (lossless .flac/.wav sidecars preferred), mp4 files, or a dataset (a dataset folder or a
``load_dataset`` id, with ``:split``). Weights (``--seld-weights``, ``--detector-weights``, ``--weights``) are an
official checkpoint file, a converted folder or a registry name (``savg weights list``); by default the official
weights when imported (``savg weights import``), else the embedded stand-ins trained on synthetic scenes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path



def _clips_arg(values: list[str]):
    return values[0] if len(values) == 1 else [Path(v) for v in values]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", help="dataset split (or write CLIPS as DATASET:SPLIT)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default: 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None:
        import torch

        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


def register(commands: argparse._SubParsersAction) -> None:
    """Add the evaluation commands to the ``savg`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    ev = commands.add_parser("evaluate", help="score clips: Spatial + Temporal AV-Align, FVD, KVD, FAD",
                             description=__doc__, formatter_class=fmt)
    ev.add_argument("clips", nargs="+", metavar="CLIPS", help="folder, mp4 files, or dataset[:split]")
    ev.add_argument("--metrics", help="comma list of spatial, temporal, fvd, kvd, fad, or 'all' (default: all with "
                                      "--reference, else spatial,temporal)")
    ev.add_argument("--reference", metavar="REF", help="reference clips for FVD/KVD/FAD: folder or dataset[:split]")
    ev.add_argument("--reference-split", help="dataset split of --reference (or write REF as DATASET:SPLIT)")
    ev.add_argument("--i3d-weights", metavar="W", help="I3D weights (official i3d_pretrained_400.pt, folder, name)")
    ev.add_argument("--audioclip-weights", metavar="W",
                    help="AudioCLIP weights (official AudioCLIP-Full-Training.pt, folder, registry name)")
    ev.add_argument("--audioclip-mode", choices=("official", "corrected"), default="official",
                    help="official: train-mode BatchNorm and [-1, 1] input as released; corrected: eval mode, "
                         "int16 level (not comparable with published numbers)")
    ev.add_argument("--no-stand-in", action="store_true",
                    help="fail instead of using random-init I3D/AudioCLIP stand-ins when their weights are missing")
    ev.add_argument("--no-feature-cache", action="store_true",
                    help="compute the reference set's I3D/AudioCLIP features again instead of reusing the cache")
    ev.add_argument("--whole-clip", action="store_true",
                    help="also whole-clip FVD/KVD/FAD (+ mid/side FAD) over all clips with bootstrap intervals")
    ev.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap replicates (default 1000)")
    ev.add_argument("--processes", type=int, default=1, help="worker processes (same numbers as 1 process at "
                                                             "equal --threads)")
    ev.add_argument("--seld-weights", metavar="W", help="SELD weights: official .pth, folder or registry name")
    ev.add_argument("--detector", default="default",
                    help="default | yolox-tiny | ultralytics:FILE | ultralytics (default: official YOLOX-tiny when "
                         "imported, else the embedded detector)")
    ev.add_argument("--detector-weights", metavar="W", help="detector weights (with yolox-tiny / ultralytics)")
    ev.add_argument("--out", type=Path, default=Path("savg_results"), help="output folder (default: savg_results)")
    ev.add_argument("--results-out", type=Path, metavar="FILE", help="also write the official results.out text")
    ev.add_argument("--append", action="store_true", help="append to --results-out as the official scripts do")
    ev.add_argument("--csv", action="store_true",
                    help="also write the official per-clip CSVs (OUT/pred_seld, OUT/pred_od)")
    ev.add_argument("--visualize", action="store_true", help="write overlay videos to OUT/visualize/")
    ev.add_argument("--no-calibration", action="store_true", help="skip the calibration controls")
    ev.add_argument("--batch-size", type=int, default=64, help="SELD windows per forward pass (default: 64)")
    ev.add_argument("--detector-batch-size", type=int, default=16, help="frames per detector pass (default: 16)")
    ev.add_argument("--chunk-size", type=int, default=16, help="clips processed together (default: 16)")
    _common(ev)
    ev.set_defaults(func=run_evaluate)

    seld = commands.add_parser("seld", help="official per-clip SELD CSVs (frame, class, x)", description=__doc__,
                               formatter_class=fmt)
    seld.add_argument("clips", nargs="+", metavar="CLIPS", help="folder, mp4/wav files, or dataset[:split]")
    seld.add_argument("--out", type=Path, required=True, help="folder for <clip>.csv files")
    seld.add_argument("--weights", metavar="W", help="SELD weights: official .pth, folder or registry name")
    seld.add_argument("--batch-size", type=int, default=64, help="windows per forward pass (default: 64)")
    seld.add_argument("--chunk-size", type=int, default=32, help="clips per batch of windows (default: 32)")
    _common(seld)
    seld.set_defaults(func=run_seld)

    det = commands.add_parser("detect", help="official per-clip person-detection CSVs", description=__doc__,
                              formatter_class=fmt)
    det.add_argument("clips", nargs="+", metavar="CLIPS", help="folder, mp4 files, or dataset[:split]")
    det.add_argument("--out", type=Path, required=True, help="folder for <clip>.csv files")
    det.add_argument("--detector", default="default", help="default | yolox-tiny | ultralytics:FILE | ultralytics")
    det.add_argument("--weights", metavar="W", help="detector weights (official .pth, folder, registry name, file)")
    det.add_argument("--batch-size", type=int, default=16, help="frames per forward pass (default: 16)")
    det.add_argument("--chunk-size", type=int, default=8, help="clips per detector call (default: 8)")
    _common(det)
    det.set_defaults(func=run_detect)

    sa = commands.add_parser("spatial-align", help="Spatial AV-Align from official per-clip CSVs",
                             description=__doc__, formatter_class=fmt)
    sa.add_argument("--seld", type=Path, required=True, metavar="DIR", help="folder of SELD CSVs")
    sa.add_argument("--detections", type=Path, required=True, metavar="DIR", help="folder of detection CSVs")
    sa.add_argument("--list", type=Path, metavar="FILE", help="official list file (default: every SELD CSV)")
    sa.add_argument("--results-out", type=Path, metavar="FILE", help="append the two lines here, as official")
    sa.set_defaults(func=run_spatial_align)


def _command_line() -> list[str] | None:
    """The command line when run as the ``savg`` console script (``None`` when called from Python)."""
    return ["savg", *sys.argv[1:]] if sys.argv and Path(sys.argv[0]).name == "savg" else None


def _fmt(score: float | None) -> str:
    return "undefined" if score is None else f"{score:.4f}"


def summary_text(report, written: dict) -> str:
    """The short table ``savg evaluate`` prints."""
    lines = [f"savg evaluate ({report.protocol}, {report.protocol_version}) on {report.num_clips} clips "
             f"in {report.seconds:.1f} s"]
    spatial = report.sections.get("spatial_av_align")
    if spatial is not None:
        lines.append(f"  {'Spatial AV-Align':<22}{_fmt(spatial.score):>10}   TP {spatial.num_tp} / "
                     f"{spatial.official.num_detections} SELD detections")
        if spatial.calibration:
            lines.append("    calibration (same clips; swap and flip should lower the score, swap+flip should not):")
            for variant, score in spatial.calibration_scores().items():
                delta = "" if score is None or spatial.score is None else f"   ({score - spatial.score:+.4f})"
                lines.append(f"      {variant:<18}{_fmt(score):>10}{delta}")
    temporal = report.sections.get("temporal_av_align")
    if temporal is not None:
        result = temporal.result
        lines.append(f"  {'Temporal AV-Align':<22}{_fmt(result.official):>10}   corrected {_fmt(result.corrected)}"
                     + (f", {result.num_undefined} clips undefined" if result.num_undefined else ""))
    quality = report.sections.get("quality")
    if quality is not None:
        lines.append(f"  {'FVD':<22}{quality.fvd:>10.2f}   {quality.num_fake_windows} vs {quality.num_real_windows} "
                     "official 2-s windows")
        lines.append(f"  {'KVD':<22}{quality.kvd:>10.3f}")
        lines.append(f"  {'FAD (AudioCLIP x1000)':<22}{quality.fad:>10.3f}")
        for name, entry in quality.whole_clip.items():
            lines.append(f"  {name:<22}{entry['value']:>10.3f}   {entry['level']:.0%} CI "
                         f"[{entry['low']:.3f}, {entry['high']:.3f}]")
    for record in report.weights:
        tag = {"embedded": " [embedded stand-in]", "stand-in": " [random-init stand-in]"}.get(record.source,
                                                                                           f" [{record.source}]")
        lines.append(f"  {record.role} weights: {record.name or record.spec}{tag}"
                     + (f" sha256 {record.sha256[:12]}" if record.sha256 else ""))
    if report.stand_in_weights:
        lines.append("  NOTE: stand-in weights (synthetic-data or random-init); not comparable with published numbers")
    lines.append("  wrote " + ", ".join(str(p) for p in written.values()))
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    from savg_hub.evaluation.suite import METRICS, SuiteConfig, evaluate_suite, parse_metrics

    if args.metrics:
        metrics = parse_metrics(args.metrics)
    else:
        metrics = METRICS if args.reference is not None else ("spatial", "temporal")
    config = SuiteConfig(
        metrics=metrics, seld_weights=args.seld_weights, detector=args.detector,
        detector_weights=args.detector_weights, i3d_weights=args.i3d_weights,
        audioclip_weights=args.audioclip_weights, device=args.device, threads=args.threads,
        calibration=not args.no_calibration, chunk_size=args.chunk_size, seld_batch_size=args.batch_size,
        detector_batch_size=args.detector_batch_size, audioclip_mode=args.audioclip_mode,
        allow_stand_in=not args.no_stand_in, whole_clip=args.whole_clip, num_resamples=args.bootstrap,
        visualize_dir=str(args.out / "visualize") if args.visualize else None,
        feature_cache=not args.no_feature_cache,
    )
    if args.reference is not None and not config.quality:
        raise ValueError(f"--reference is only used by fvd, kvd and fad, and --metrics {args.metrics} has none; "
                         "drop --reference or add them")
    report = evaluate_suite(_clips_arg(args.clips), args.reference, config, generated_split=args.split,
                            reference_split=args.reference_split, processes=args.processes,
                            progress=not args.no_progress, workers=args.workers, command=_command_line())
    if args.csv and "spatial_av_align" in report.sections:
        report.sections["spatial_av_align"].write_official_csvs(args.out / "pred_seld", args.out / "pred_od")
    written = report.write(args.out, results_out=args.results_out, append_results_out=args.append)
    if args.visualize:
        written["visualize"] = args.out / "visualize"
    print(summary_text(report, written))
    print(report.results_out_text(), end="")
    return 0


def run_seld(args: argparse.Namespace) -> int:
    _set_threads(args)
    from savg_hub.evaluation.clips import open_clips
    from savg_hub.evaluation.csv_io import write_seld_csv
    from savg_hub.evaluation.spatial_eval import load_seld, predict_seld_rows

    source = open_clips(_clips_arg(args.clips), split=args.split, video=False, workers=args.workers)
    seld, record = load_seld(args.weights, device=args.device, batch_size=args.batch_size)
    count = rows = 0
    for clip_id, clip_rows in predict_seld_rows(seld, source, chunk_size=args.chunk_size,
                                                progress=not args.no_progress):
        write_seld_csv(args.out / f"{clip_id}.csv", clip_rows)
        count += 1
        rows += len(clip_rows)
    tag = " (embedded stand-in weights)" if record.stand_in else ""
    print(f"wrote {count} SELD CSVs ({rows} detections) to {args.out} with {record.name or record.spec}{tag}")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    _set_threads(args)
    from savg_hub.evaluation.clips import open_clips
    from savg_hub.evaluation.spatial_eval import detect_rows, load_person_detector, write_detection_rows_csv

    source = open_clips(_clips_arg(args.clips), split=args.split, workers=args.workers)
    detector, record = load_person_detector(args.detector, args.weights, device=args.device,
                                            batch_size=args.batch_size)
    count = boxes = 0
    for clip_id, rows in detect_rows(detector, source, chunk_size=args.chunk_size, progress=not args.no_progress):
        write_detection_rows_csv(args.out / f"{clip_id}.csv", rows)
        count += 1
        boxes += len(rows)
    tag = " (embedded stand-in weights)" if record.stand_in else ""
    print(f"wrote {count} detection CSVs ({boxes} person boxes) to {args.out} with {record.name or record.spec}{tag}")
    return 0


def run_spatial_align(args: argparse.Namespace) -> int:
    from savg_hub.evaluation.spatial import read_list_file, spatial_av_align_from_csv
    from savg_hub.utils.files import atomic_write_text

    clip_ids = read_list_file(args.list) if args.list is not None else None
    result = spatial_av_align_from_csv(args.seld, args.detections, clip_ids)
    if not result.defined:
        print(f"Spatial AV-Align undefined: no SELD detections in {len(result.per_clip)} clips "
              "(the official script divides by zero here)", file=sys.stderr)
        return 1
    lines = result.official_lines()
    print(lines, end="")
    if args.results_out is not None:
        previous = args.results_out.read_text(encoding="utf-8") if args.results_out.is_file() else ""
        atomic_write_text(args.results_out, previous + lines)
    return 0
