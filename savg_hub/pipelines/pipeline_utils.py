"""Shared pieces of the SAVGBench pipelines: Hub-loadable serialization, default schedulers, postprocessing.

**Serialization.** A saved pipeline folder is the usual diffusers layout (``model_index.json`` + one sub-folder
per component) plus a one-line ``pipeline.py`` that imports the real class from ``savg_hub``;
``model_index.json`` names it as ``"_class_name": ["pipeline", "ClassName"]``. Then both

* ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` (diffusers runs ``pipeline.py``, which
  imports the class and, through it, the component modules) and
* ``ClassName.from_pretrained(folder)`` (no remote code: the class is already known)

load it. Component entries are ``["savg_hub.models.mm_diffusion_unet", "CoupledUNetModel"]`` and so on, which
diffusers resolves from the already imported module.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from savg_hub.utils.files import atomic_write_text

#: file name (without ``.py``) of the custom-pipeline stub written next to ``model_index.json``
PIPELINE_MODULE = "pipeline"


class SAVGPipelineMixin:
    """Mixed into every SAVGBench pipeline (before ``DiffusionPipeline``): ``save_pretrained`` writes the
    ``pipeline.py`` stub and the ``["pipeline", ClassName]`` entry, atomically; the class's own
    ``from_pretrained`` reads such a folder without needing ``trust_remote_code``."""

    @classmethod
    def _dict_from_json_file(cls, json_file: str | os.PathLike) -> dict:
        config = super()._dict_from_json_file(json_file)
        name = config.get("_class_name")
        if Path(json_file).name == "model_index.json" and isinstance(name, (list, tuple)) and len(name) == 2:
            # loading with this very class: use it instead of the stub (which diffusers would only run with
            # trust_remote_code=True)
            config["_class_name"] = name[1]
        return config

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """Save every component, ``model_index.json`` and the ``pipeline.py`` stub to ``save_directory``.

        The folder is first written next to the destination and then moved into place, so an interrupted save
        leaves an existing folder as it was. ``push_to_hub=True`` uploads the folder afterwards (``repo_id``,
        ``token``, ``commit_message``, ``private``, ``create_pr`` as in diffusers).
        """
        target = Path(save_directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            super().save_pretrained(
                staging, safe_serialization=safe_serialization, variant=variant, max_shard_size=max_shard_size
            )
            module = type(self).__module__
            name = type(self).__name__
            (staging / f"{PIPELINE_MODULE}.py").write_text(f"from {module} import {name}  # noqa: F401\n")
            index_path = staging / "model_index.json"
            index = json.loads(index_path.read_text())
            index["_class_name"] = [PIPELINE_MODULE, name]
            atomic_write_text(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
            _move_into(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if push_to_hub:
            from huggingface_hub import create_repo

            token = kwargs.pop("token", None)
            repo_id = kwargs.pop("repo_id", target.name)
            repo_id = create_repo(repo_id, exist_ok=True, private=kwargs.pop("private", None), token=token).repo_id
            self._upload_folder(
                str(target), repo_id, token=token, commit_message=kwargs.pop("commit_message", None),
                create_pr=kwargs.pop("create_pr", False),
            )


def _move_into(staging: Path, target: Path) -> None:
    """Move the staged folder's entries onto ``target`` (replacing entries of the same name)."""
    if not target.exists():
        os.replace(staging, target)
        return
    if not target.is_dir():
        raise ValueError(f"save_directory {target} exists and is not a folder")
    for entry in sorted(staging.iterdir(), key=lambda p: p.name == "model_index.json"):  # index last
        dest = target / entry.name
        old = None
        if dest.is_dir() and not dest.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=target))
            os.replace(dest, old / entry.name)
        os.replace(entry, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def stereo_mm_diffusion_dpmsolver_scheduler(
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    prediction_type: str = "epsilon",
) -> DPMSolverMultistepScheduler:
    """The fast approximate sampler of the joint model (``reference/baselines.md`` §2.3): DPM-Solver++ order 2
    on the linear ε-prediction schedule, dynamic thresholding at p = 0.995 with ``sample_max_value=1e4`` (the
    release has no upper bound on the threshold; diffusers' default 1.0 would reduce it to clipping).
    ``prediction_type="v_prediction"`` for a model trained to predict v (not the release)."""
    return DPMSolverMultistepScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule="linear",
        solver_order=2,
        prediction_type=prediction_type,
        thresholding=True,
        dynamic_thresholding_ratio=0.995,
        sample_max_value=1e4,
        algorithm_type="dpmsolver++",
        solver_type="midpoint",
        lower_order_final=True,
        timestep_spacing="linspace",
    )


def sr_ddim_scheduler(num_train_timesteps: int = 1100, prediction_type: str = "epsilon") -> DDIMScheduler:
    """The SR sampler as released (``reference/baselines.md`` §3.3): DDIM on a linear schedule of
    ``num_train_timesteps`` steps whose β endpoints are scaled by ``1000 / num_train_timesteps`` (1100 as
    released; 1000 matches the SR model's training), x̂0 clipped to [-1, 1], ᾱ_prev = 1 at the last step,
    "leading" spacing (25 steps on 1100 give {1056, ..., 44, 0}). ``prediction_type``: ``"epsilon"`` as
    released, ``"v_prediction"`` for a model trained to predict v."""
    scale = 1000.0 / num_train_timesteps
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=1e-4 * scale,
        beta_end=0.02 * scale,
        beta_schedule="linear",
        clip_sample=True,
        clip_sample_range=1.0,
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing="leading",
        prediction_type=prediction_type,
    )


def check_output_type(output_type: str) -> None:
    if output_type not in ("np", "pt", "latent"):
        raise ValueError(f"output_type must be 'np', 'pt' or 'latent'; got {output_type!r}")


def postprocess_video(video: torch.Tensor, output_type: str) -> np.ndarray | torch.Tensor:
    """Model-space video ``(B, T, 3, H, W)`` in [-1, 1] to the output layout ``(B, T, H, W, 3)``.

    ``"np"``: uint8 ``(x + 1) * 127.5`` clamped to [0, 255] and truncated (as the release writes frames);
    ``"pt"``: float32 in [0, 1]; ``"latent"``: unchanged.
    """
    check_output_type(output_type)
    if output_type == "latent":
        return video
    channels_last = video.float().permute(0, 1, 3, 4, 2)
    if output_type == "pt":
        return ((channels_last + 1.0) / 2.0).clamp(0.0, 1.0)
    return ((channels_last + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()


def postprocess_audio(audio: torch.Tensor, output_type: str) -> np.ndarray | torch.Tensor:
    """Model-space waveform ``(B, 2, N)`` to float32 clipped to [-1, 1] (numpy for ``"np"``), or unchanged for
    ``"latent"``."""
    check_output_type(output_type)
    if output_type == "latent":
        return audio
    audio = audio.float().clamp(-1.0, 1.0)
    return audio.cpu().numpy() if output_type == "np" else audio


def preprocess_video(video: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Frames ``(B, T, H, W, 3)``, uint8 in [0, 255] or float in [0, 1], to model space ``(B, T, 3, H, W)``
    float32 in [-1, 1]."""
    video = torch.as_tensor(video)
    if video.ndim != 5 or video.shape[-1] != 3:
        raise ValueError(f"video must have shape (B, T, H, W, 3); got {tuple(video.shape)}")
    if video.dtype == torch.uint8:
        video = video.float() / 127.5 - 1.0
    elif video.is_floating_point():
        low, high = float(video.min()), float(video.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"float video must be in [0, 1] (got values in [{low:.3f}, {high:.3f}]); pass model-space "
                "samples in [-1, 1] as video_latents instead"
            )
        video = video.float() * 2.0 - 1.0
    else:
        raise ValueError(f"video must be uint8 or float; got {video.dtype}")
    return video.permute(0, 1, 4, 2, 3).contiguous()
