"""Benchmark clip generation with the end-to-end SAVGBench pipeline (base Stereo MM-Diffusion + per-frame SR).

    python benchmarks/generate.py                          # small config, all samplers; full config (see below)
    python benchmarks/generate.py --configs small --clips 2
    python benchmarks/generate.py --configs full --full-cpu-run --steps 10    # really run 1 full clip on a CPU

Configurations (random weights, seeded; every parameter slightly perturbed so that the zero-initialised output
heads do not make ε identically 0):

* ``full``: the released sizes: 20 x 3 x 64 x 64 video + 2 x 80 000 audio (133.7M-parameter U-Net), SR 64 -> 256
  (311M parameters), 25 SR steps;
* ``small``: a benchmark-sized config: 8 x 3 x 16 x 16 video + 2 x 5 120 audio, SR 16 -> 64, 25 SR steps;
* ``embedded``: the shipped default pipeline (``savg_hub/assets/weights/savgbench-joint-synthetic``, trained
  weights): 20 x 3 x 32 x 32 video + 2 x 80 000 audio, SR 32 -> 256 (``--configs embedded --sr-steps 10``).

Samplers: diffusers' DPM-Solver++ (the default scheduler) at 10/25/50 steps and the official adaptive DPM-Solver++
(its step count depends on the model; with random weights it is not the trained model's count). Ratios are the time
per clip against DPM-Solver++ at 25 steps measured in the same run.

Each measurement runs in a fresh process: seconds per clip (end to end, and the base/SR split), base-model
evaluations (NFE), peak memory (CUDA ``max_memory_allocated`` on a GPU; peak resident set of the process on a CPU,
weights included). On a CPU the full configuration is out of reach (one joint forward takes tens of seconds, one SR
frame-step seconds, so one clip takes more than an hour): unless ``--full-cpu-run`` is given, it measures one base
forward and one SR frame forward and *estimates* the time per clip from them, and says so in the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = {
    "full": dict(
        unet=dict(),
        sr=dict(),
        fps=4.0,
        sample_rate=16000,
    ),
    "small": dict(
        unet=dict(video_size=(8, 3, 16, 16), audio_size=(2, 5120), model_channels=32, channel_mult=(1, 2, 3, 4),
                  num_res_blocks=1, num_head_channels=32),
        sr=dict(image_size=64, small_size=16, model_channels=32, channel_mult=(1, 1, 2, 2),
                attention_resolutions=(4, 8), num_res_blocks=1),
        fps=4.0,
        sample_rate=2560,
    ),
}


def _build(config: str, device: str):
    import torch

    from savg_hub.models.mm_diffusion_unet import CoupledUNetModel
    from savg_hub.models.sr_unet import SuperResUNetModel

    if config == "embedded":  # the shipped, trained pipeline (its real step counts for the adaptive sampler)
        from savg_hub.pipelines.loading import default_pipeline_spec, load_pipeline

        pipe = load_pipeline(default_pipeline_spec(), device=device)
        spec = dict(fps=float(pipe.config.fps), sample_rate=int(pipe.config.sample_rate))
        return pipe.unet.eval(), pipe.sr_unet.eval(), spec
    spec = CONFIGS[config]
    torch.manual_seed(0)
    unet = CoupledUNetModel(**spec["unet"])
    sr_unet = SuperResUNetModel(**spec["sr"])
    with torch.no_grad():
        for model in (unet, sr_unet):
            for parameter in model.parameters():
                parameter.add_(0.01 * torch.randn_like(parameter))
    return unet.eval().to(device), sr_unet.eval().to(device), spec


def _peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_run(config: str, sampler: str, steps: int, clips: int, batch_size: int, sr_steps: int, device: str) -> dict:
    """Generate ``clips`` clips end to end and time them (runs in a fresh process)."""
    import torch

    from savg_hub.pipelines import SAVGBenchJointPipeline, sr_ddim_scheduler, stereo_mm_diffusion_dpmsolver_scheduler
    from savg_hub.schedulers import AdaptiveDPMSolverScheduler

    unet, sr_unet, spec = _build(config, device)
    scheduler = AdaptiveDPMSolverScheduler() if sampler == "official" else stereo_mm_diffusion_dpmsolver_scheduler()
    pipe = SAVGBenchJointPipeline(unet=unet, scheduler=scheduler, sr_unet=sr_unet, sr_scheduler=sr_ddim_scheduler(),
                                  fps=spec["fps"], sample_rate=spec["sample_rate"])
    pipe.set_progress_bar_config(disable=True)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    stamps: list[tuple[str, float]] = []

    def callback(stage, step, timestep, kwargs):
        stamps.append((type(stage).__name__, time.perf_counter()))
        return {}

    nfe, base_seconds, total = 0, 0.0, 0.0
    for first in range(0, clips, batch_size):
        count = min(batch_size, clips - first)
        stamps.clear()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        pipe(batch_size=count, num_inference_steps=steps, sr_num_inference_steps=sr_steps, output_type="np",
             generator=torch.Generator(device).manual_seed(first), callback_on_step_end=callback,
             callback_on_step_end_tensor_inputs=[])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        end = time.perf_counter()
        total += end - start
        base_end = max(t for name, t in stamps if name == "StereoMMDiffusionPipeline")
        base_seconds += base_end - start
        nfe += pipe.scheduler.num_model_evaluations if sampler == "official" else steps
    return dict(
        config=config, sampler=sampler, steps=steps if sampler != "official" else None, nfe=nfe / -(-clips // batch_size),
        clips=clips, batch_size=batch_size, seconds_per_clip=total / clips, base_seconds_per_clip=base_seconds / clips,
        sr_seconds_per_clip=(total - base_seconds) / clips, peak_memory_mb=_peak_memory_mb(device), device=device,
        estimated=False,
    )


def child_estimate(config: str, sr_steps: int, device: str) -> dict:
    """Time one base forward (batch 1) and one SR forward (1 frame) of the configuration (fresh process)."""
    import torch

    unet, sr_unet, _ = _build(config, device)
    frames, channels, height, width = unet.config.video_size
    generator = torch.Generator(device).manual_seed(0)
    video = torch.randn(1, frames, channels, height, width, generator=generator, device=device)
    audio = torch.randn(1, *unet.config.audio_size, generator=generator, device=device)
    size = sr_unet.config.image_size
    with torch.no_grad():
        start = time.perf_counter()
        unet(video, audio, torch.tensor([500], device=device))
        base = time.perf_counter() - start
        start = time.perf_counter()
        sr_unet(torch.randn(1, 3, size, size, device=device), 500, video[:, 0])
        sr = time.perf_counter() - start
    return dict(config=config, base_forward_seconds=base, sr_frame_forward_seconds=sr, frames=frames,
                sr_steps=sr_steps, peak_memory_mb=_peak_memory_mb(device), device=device)


def _spawn(kind: str, **kwargs) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(dict(kind=kind, **kwargs))]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({kind} {kwargs}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    header = ("config", "device", "sampler", "steps", "base NFE", "clips", "s/clip", "base s/clip", "SR s/clip",
              "vs dpm-25", "peak MB", "note")
    lines = [header]
    reference = {r["config"]: r["seconds_per_clip"] for r in rows if r["sampler"] == "dpmsolver" and r["steps"] == 25}
    for r in rows:
        known = r["seconds_per_clip"] is not None and r["config"] in reference
        ratio = r["seconds_per_clip"] / reference[r["config"]] if known else float("nan")
        lines.append((
            r["config"], r["device"], r["sampler"], "-" if r["steps"] is None else str(r["steps"]),
            "n/a" if r["nfe"] is None else f"{r['nfe']:.0f}", str(r["clips"]),
            f"{r['seconds_per_clip']:.2f}" if r["seconds_per_clip"] is not None else "n/a",
            f"{r['base_seconds_per_clip']:.2f}" if r["base_seconds_per_clip"] is not None else "n/a",
            f"{r['sr_seconds_per_clip']:.2f}" if r["sr_seconds_per_clip"] is not None else "n/a",
            f"{ratio:.2f}x" if ratio == ratio else "n/a", f"{r['peak_memory_mb']:.0f}",
            "ESTIMATED from 1 forward each" if r["estimated"] else "",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=sorted([*CONFIGS, "embedded"]), default=["small", "full"])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50], help="DPM-Solver++ step counts")
    parser.add_argument("--no-official", action="store_true", help="skip the official adaptive sampler")
    parser.add_argument("--clips", type=int, default=1, help="clips per measurement (default: 1)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per pipeline call (default: 1)")
    parser.add_argument("--sr-steps", type=int, default=25, help="SR DDIM steps (default: 25, as released)")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--full-cpu-run", action="store_true",
                        help="on a CPU, really run the full configuration (more than an hour per clip)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        spec = json.loads(args.child)
        kind = spec.pop("kind")
        print(json.dumps(child_run(**spec) if kind == "run" else child_estimate(**spec)))
        return 0

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    samplers = [("dpmsolver", steps) for steps in args.steps] + ([] if args.no_official else [("official", 0)])
    rows = []
    for config in args.configs:
        if config == "full" and not device.startswith("cuda") and not args.full_cpu_run:
            est = _spawn("estimate", config=config, sr_steps=args.sr_steps, device=device)
            sr = est["sr_steps"] * est["frames"] * est["sr_frame_forward_seconds"]
            for sampler, steps in samplers:
                base = steps * est["base_forward_seconds"] if sampler == "dpmsolver" else None
                rows.append(dict(
                    config=config, device=device, sampler=sampler, steps=steps if sampler == "dpmsolver" else None,
                    nfe=steps if sampler == "dpmsolver" else None, clips=0,
                    seconds_per_clip=None if base is None else base + sr, base_seconds_per_clip=base,
                    sr_seconds_per_clip=sr, peak_memory_mb=est["peak_memory_mb"], estimated=True,
                ))
            print(f"full config on {device}: one base forward {est['base_forward_seconds']:.1f} s, one SR frame "
                  f"forward {est['sr_frame_forward_seconds']:.1f} s (batch 1); per-clip times below are estimates "
                  f"(steps x base forward + {est['sr_steps']} SR steps x {est['frames']} frames x SR forward)",
                  flush=True)
            continue
        for sampler, steps in samplers:
            row = _spawn("run", config=config, sampler=sampler, steps=max(steps, 1), clips=args.clips,
                         batch_size=args.batch_size, sr_steps=args.sr_steps, device=device)
            rows.append(row)
            print(f"{config} {sampler} {steps or 'adaptive'}: {row['seconds_per_clip']:.2f} s/clip, "
                  f"base NFE {row['nfe']:.0f}, peak {row['peak_memory_mb']:.0f} MB", flush=True)
    rows.sort(key=lambda r: (r["config"], r["sampler"] != "dpmsolver", r["steps"] or 0))
    print()
    print(_table(rows))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; full/small: random "
          "weights (the official sampler's NFE is that of a random model), embedded: the trained pipeline")
    if args.json:
        from pathlib import Path

        from savg_hub.utils.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
