"""The app's "Generate" view: sample one clip (stereo audio + video) from a SAVGBench pipeline, then score it with
Spatial AV-Align and render its overlay video. No model code here: it calls the pipelines and the Score view's
resident evaluator (:meth:`~savg_hub.app.score.ScoreView.score_clips`).

Pipelines load on first use and stay resident, one per spec. When no pipeline is available (no embedded default
installed yet, no official weights imported, no ``--model`` given) the view says so instead of failing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from savg_hub.app.score import ScoreView
from savg_hub.media.clip import SVGSA24_CLIP, Clip

logger = logging.getLogger(__name__)

MAX_STEPS = 1000
#: SR-stage DDIM steps of joint pipelines unless asked otherwise (the release uses 25; 10 keeps a CPU clip near
#: a minute with the embedded pipeline)
DEFAULT_SR_STEPS = 10
MAX_SEED = 2**63 - 1
SAMPLERS: dict[str, str | None] = {"default": None, "dpmsolver": "dpmsolver", "official": "official"}
"""Sampler choices of the tab -> the pipelines' ``sampler`` argument (``None``: the pipeline's own scheduler)."""

NO_MODEL_HELP = (
    "No generation model is available: the embedded default pipeline is not installed yet (expected "
    "`savg_hub/assets/weights/{embedded}/`). Start the app with `--model FOLDER` (a pipeline saved with "
    "`save_pretrained`), or import the official weights with `savg weights import SAVGBench_PretrainedModels_V1.zip` "
    "to use `savgbench`."
)


def _official_available() -> bool:
    """The official joint pipeline's weights are in the local weights cache (checked without loading)."""
    from savg_hub import weights as registry

    names = ("stereo-mm-diffusion-savgbench", "sr-savgbench")
    return all((registry.cache_dir() / name / "config.json").is_file() for name in names)


def parse_seed(seed: Any) -> int:
    """A seed from a form value (int, integral float or digit string) as a non-negative ``int``.

    Raises:
        ValueError: not a non-negative integer below 2**63 (the message names the value).
    """
    value: Any = seed
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.lstrip("-").isdigit() else value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= MAX_SEED:
        raise ValueError(f"seed must be a non-negative integer below 2**63; got {seed!r}")
    return int(value)


def parse_steps(steps: Any, name: str = "steps") -> int:
    """Inference steps from a form value as an ``int`` in ``1..MAX_STEPS`` (``name`` is used in the message).

    Raises:
        ValueError: not an integer in range (the message names the value).
    """
    value: Any = steps
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= MAX_STEPS:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_STEPS}; got {steps!r}")
    return int(value)


def _size_text(frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int) -> str:
    return (f"{frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} at {fps:g} fps, "
            f"{audio.shape[0]}-channel audio of {audio.shape[1]} samples at {sample_rate} Hz")


class GenerateView:
    """State and actions of the Generate tab.

    Args:
        workdir: where generated clips (mp4 + FLAC) and overlays are written.
        scorer: the Score view whose resident evaluator scores generated clips (``None``: no scoring).
        models: extra pipeline specs offered besides the embedded default and ``savgbench`` (saved pipeline
            folders, Hub repo ids).
        pipelines: ready pipelines by spec (e.g. tiny ones in tests); offered first and never reloaded.
        device: torch device for loaded pipelines.
        loader: loads a spec (default: :func:`~savg_hub.pipelines.loading.load_pipeline`).
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        scorer: ScoreView | None = None,
        models: Sequence[str | os.PathLike] = (),
        pipelines: Mapping[str, Any] | None = None,
        device: str = "cpu",
        loader: Callable[..., Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scorer = scorer
        self.models = [str(m) for m in models]
        self.device = device
        self._pipelines: dict[str, Any] = dict(pipelines or {})
        self._injected = list(self._pipelines)
        self._loader = loader
        self._lock = threading.Lock()

    # -- choices ------------------------------------------------------------------------------------------

    def model_choices(self) -> list[tuple[str, str]]:
        """Dropdown choices ``(label, spec)``: injected pipelines, the embedded default when installed, the
        ``--model`` folders, and ``savgbench`` when its weights are in the local cache."""
        from savg_hub.pipelines import loading

        choices = [(f"{spec} (loaded)", spec) for spec in self._injected]
        embedded = loading.embedded_pipeline_path()
        if embedded is not None:
            choices.append((f"embedded: {embedded.name} (small, trained on synthetic scenes)", str(embedded)))
        for spec in self.models:
            path = Path(spec)
            choices.append((f"{path.name or spec} ({spec})" if path.exists() else spec, spec))
        if _official_available():
            choices.append((f"{loading.OFFICIAL_PIPELINE} (official SAVGBench weights)", loading.OFFICIAL_PIPELINE))
        seen: set[str] = set()
        return [c for c in choices if not (c[1] in seen or seen.add(c[1]))]

    def status(self) -> str:
        """Markdown shown when the tab opens: what can be used, or what is missing."""
        from savg_hub.pipelines import loading

        choices = self.model_choices()
        if not choices:
            return "**Generation unavailable:** " + NO_MODEL_HELP.format(embedded=loading.EMBEDDED_PIPELINE)
        note = ("" if loading.embedded_pipeline_path() is not None else
                " (the embedded default pipeline is not installed yet)")
        return (f"{len(choices)} model(s) available{note}. A model loads on its first **Generate** and stays "
                "resident; the clip is then scored with Spatial AV-Align.")

    # -- models -------------------------------------------------------------------------------------------

    def pipeline(self, spec: str) -> Any:
        """The resident pipeline of ``spec``, loaded on first use.

        Raises:
            ValueError: the spec names nothing loadable (the message says what would work).
        """
        from savg_hub.pipelines import loading

        with self._lock:
            if spec not in self._pipelines:
                loader = self._loader or loading.load_pipeline
                try:
                    pipe = loader(spec, device=self.device)
                except (ValueError, OSError, ModuleNotFoundError) as error:
                    raise ValueError(f"cannot load model {spec!r}: {error}") from error
                pipe.set_progress_bar_config(disable=True)
                self._pipelines[spec] = pipe
                logger.info("Generate view: %s loaded from %s", type(pipe).__name__, spec)
            return self._pipelines[spec]

    # -- generation ---------------------------------------------------------------------------------------

    def sample(self, spec: str, seed: int, steps: int, sampler: str | None = None,
               sr_steps: int = DEFAULT_SR_STEPS) -> Any:
        """One clip as a ``SAVGPipelineOutput`` with ``frames`` (1, T, H, W, 3) uint8 and ``audio`` (1, 2, N)
        float32 in [-1, 1]; deterministic for a given ``(spec, seed, steps, sampler, sr_steps)`` on CPU."""
        import torch

        from savg_hub.pipelines.pipeline_savgbench_joint import SAVGBenchJointPipeline

        pipe = self.pipeline(spec)
        extra = {"sr_num_inference_steps": sr_steps} if isinstance(pipe, SAVGBenchJointPipeline) else {}
        generator = [torch.Generator("cpu").manual_seed(seed)]
        return pipe(batch_size=1, num_inference_steps=steps, sampler=sampler, generator=generator,
                    output_type="np", **extra)

    def generate(self, spec: str | None, seed: Any, steps: Any, sampler: str | None = "default",
                 sr_steps: Any = DEFAULT_SR_STEPS) -> tuple[str | None, dict[str, Any], str, str | None]:
        """Generate one clip, write it and score it.

        Args:
            spec: a pipeline spec from :meth:`model_choices`.
            seed: non-negative integer seed of the clip's random stream.
            steps: base-stage inference steps, 1..1000 (ignored by the adaptive ``official`` sampler).
            sampler: a key of :data:`SAMPLERS` (``"default"`` or ``None``: the pipeline's scheduler).
            sr_steps: DDIM steps of the super-resolution stage of joint pipelines, 1..1000 (default 10: on a CPU
                the SR stage costs 20 frames x steps U-Net passes at 256x256).

        Returns:
            ``(mp4 path, clip info, score markdown, overlay mp4 path)``. Bad input, a missing model or a clip that
            cannot be scored come back as text (``info["error"]`` and the score markdown), with ``None`` paths.
        """
        try:
            if not spec:
                raise ValueError("pick a model first" if self.model_choices() else NO_MODEL_HELP.format(
                    embedded=_embedded_name()))
            seed, steps, sr_steps = parse_seed(seed), parse_steps(steps), parse_steps(sr_steps, "SR steps")
            if sampler not in SAMPLERS and sampler is not None:
                raise ValueError(f"sampler must be one of {list(SAMPLERS)}; got {sampler!r}")
            started = time.perf_counter()
            output = self.sample(str(spec), seed, steps, SAMPLERS.get(sampler) if sampler else None, sr_steps)
            seconds = time.perf_counter() - started
        except ValueError as error:
            return None, {"error": str(error)}, f"**Cannot generate:** {error}", None
        return self._finish(str(spec), seed, steps, sampler or "default", output, seconds, sr_steps)

    def _finish(self, spec: str, seed: int, steps: int, sampler: str, output: Any, seconds: float,
                sr_steps: int = DEFAULT_SR_STEPS) -> tuple[str | None, dict[str, Any], str, str | None]:
        from savg_hub.pipelines.export import export_to_clips

        pipe = self._pipelines[spec]
        out_dir = self.workdir / uuid.uuid4().hex[:12]
        mp4 = export_to_clips(output, out_dir, f"seed{seed}")[0]
        frames, audio = np.asarray(output.frames[0]), np.asarray(output.audio[0], np.float32)
        fps, sample_rate = float(output.fps), int(output.sample_rate)
        left, right = np.sqrt(np.mean(audio.astype(np.float64) ** 2, axis=1))[:2]
        info: dict[str, Any] = {
            "model": spec,
            "pipeline": type(pipe).__name__,
            "seed": seed,
            "num_inference_steps": steps,
            "sr_num_inference_steps": sr_steps if type(pipe).__name__ == "SAVGBenchJointPipeline" else None,
            "sampler": sampler,
            "seconds": round(seconds, 2),
            "clip": _size_text(frames, fps, audio, sample_rate),
            "rms_left_dB": round(float(20 * np.log10(left + 1e-12)), 1),
            "rms_right_dB": round(float(20 * np.log10(right + 1e-12)), 1),
            "lossless_audio": str(mp4.with_suffix(".flac")),
        }
        clip = Clip(frames, audio, fps, sample_rate, clip_id=mp4.stem)
        text, overlay = self._score(clip)
        return str(mp4), info, text, overlay

    def _score(self, clip: Clip) -> tuple[str, str | None]:
        spec = SVGSA24_CLIP
        if self.scorer is None:
            return "Scoring is off in this app.", None
        if (clip.video.shape[:3] != (spec.num_frames, spec.height, spec.width) or clip.fps != spec.fps
                or clip.sample_rate != spec.sample_rate or clip.audio.shape != (spec.num_channels, spec.num_samples)):
            return (f"**Not scored:** this model makes {_size_text(clip.video, clip.fps, clip.audio, clip.sample_rate)}"
                    f"; Spatial AV-Align needs SVGSA24 clips ({spec.num_frames} frames of {spec.width}x{spec.height} "
                    f"at {spec.fps:g} fps, stereo audio of {spec.num_samples} samples at {spec.sample_rate} Hz).",
                    None)
        # the lossless arrays are scored (the mp4's AAC track is for playback only)
        summary, rows, videos = self.scorer.score_clips([(clip.clip_id, clip)])
        if not rows:
            return summary, None
        tp, fn = rows[0][1], rows[0][2]
        return f"TP {tp} · FN {fn} (this clip)\n\n{summary}", videos.get(clip.clip_id)


def _embedded_name() -> str:
    from savg_hub.pipelines.loading import EMBEDDED_PIPELINE

    return EMBEDDED_PIPELINE


__all__ = ["DEFAULT_SR_STEPS", "GenerateView", "MAX_STEPS", "SAMPLERS", "parse_seed", "parse_steps"]
