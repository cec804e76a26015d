"""Resolve what ``savg generate --model`` (and the app) accept into a loaded SAVGBench pipeline.

A *pipeline spec* is one of:

* a saved pipeline folder (``model_index.json`` naming one of this package's pipeline classes), loaded with that
  class's own ``from_pretrained`` (no remote code runs);
* ``"savgbench"``: the official SAVGBench weights from the weights registry (``stereo-mm-diffusion-savgbench`` +
  ``sr-savgbench``, after ``savg weights import SAVGBench_PretrainedModels_V1.zip``), assembled into a
  :class:`SAVGBenchJointPipeline` with the default samplers;
* a Hub repo id ``owner/name`` holding a saved pipeline (online only).

With no spec, the embedded default (a small pipeline trained on the synthetic set, shipped in
``savg_hub/assets/weights/``) is used once it exists.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from diffusers import DiffusionPipeline

from savg_hub.weights import ASSETS, pipeline_class_name

logger = logging.getLogger(__name__)

#: registry-backed name of the official joint pipeline
OFFICIAL_PIPELINE = "savgbench"
#: folder of the embedded default pipeline under the package's weights assets (trained on the synthetic set)
EMBEDDED_PIPELINE = "savgbench-joint-synthetic"

_CLASSES = {
    "StereoMMDiffusionPipeline": "savg_hub.pipelines.pipeline_stereo_mm_diffusion",
    "SAVGBenchJointPipeline": "savg_hub.pipelines.pipeline_savgbench_joint",
    "SuperResolutionPipeline": "savg_hub.pipelines.pipeline_super_resolution",
}
_GENERATORS = ("StereoMMDiffusionPipeline", "SAVGBenchJointPipeline")


def embedded_pipeline_path() -> Path | None:
    """The embedded default pipeline folder, or ``None`` while none ships with the package."""
    folder = ASSETS / EMBEDDED_PIPELINE
    return folder if (folder / "model_index.json").is_file() else None


def default_pipeline_spec() -> str:
    """The spec used when none is given: the embedded default.

    Raises:
        ValueError: no embedded pipeline is installed; the message says what to pass instead.
    """
    folder = embedded_pipeline_path()
    if folder is None:
        raise ValueError(
            f"no embedded default pipeline is installed (expected {ASSETS / EMBEDDED_PIPELINE}); pass --model "
            f"with a saved pipeline folder (save_pretrained), a Hub repo id, or '{OFFICIAL_PIPELINE}' after "
            "`savg weights import SAVGBench_PretrainedModels_V1.zip`"
        )
    return str(folder)


def _class_of(folder: Path) -> type[DiffusionPipeline]:
    import importlib

    name = pipeline_class_name(folder)
    if name not in _CLASSES:
        raise ValueError(f"{folder} holds a {name!r} pipeline; expected one of {sorted(_CLASSES)}")
    return getattr(importlib.import_module(_CLASSES[name]), name)


def _official_pipeline() -> DiffusionPipeline:
    from savg_hub.models.mm_diffusion_unet import CoupledUNetModel
    from savg_hub.models.sr_unet import SuperResUNetModel
    from savg_hub.pipelines.pipeline_savgbench_joint import SAVGBenchJointPipeline
    from savg_hub.pipelines.pipeline_utils import sr_ddim_scheduler, stereo_mm_diffusion_dpmsolver_scheduler
    from savg_hub.weights import resolve_weights

    unet = CoupledUNetModel.from_pretrained(str(resolve_weights("stereo-mm-diffusion-savgbench", "mm-diffusion")))
    sr_unet = SuperResUNetModel.from_pretrained(str(resolve_weights("sr-savgbench", "sr-unet")))
    return SAVGBenchJointPipeline(
        unet=unet.eval(), scheduler=stereo_mm_diffusion_dpmsolver_scheduler(), sr_unet=sr_unet.eval(),
        sr_scheduler=sr_ddim_scheduler(),
    )


def load_pipeline(spec: str | os.PathLike | None = None, *, device: str = "cpu",
                  generators_only: bool = True) -> DiffusionPipeline:
    """Load the pipeline ``spec`` names (see the module docstring) onto ``device``.

    Args:
        spec: folder, ``"savgbench"``, Hub repo id, or ``None`` for the embedded default.
        device: torch device.
        generators_only: refuse pipelines that do not generate clips (the SR stage alone).

    Raises:
        ValueError: the spec names nothing loadable (the message names it and what would work).
    """
    spec = default_pipeline_spec() if spec is None else str(spec)
    path = Path(spec)
    if spec == OFFICIAL_PIPELINE:
        pipe = _official_pipeline()
    else:
        if not path.exists() and spec.count("/") == 1 and not spec.startswith((".", "/")):
            if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
                raise ValueError(f"{spec!r} is not a local folder and the Hub is offline (HF_HUB_OFFLINE)")
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(spec))
        if not path.is_dir():
            raise ValueError(
                f"--model {spec!r} is neither a saved pipeline folder, '{OFFICIAL_PIPELINE}', nor a Hub repo id"
            )
        if not (path / "model_index.json").is_file():
            raise ValueError(f"{path} has no model_index.json; expected a folder written by save_pretrained")
        cls = _class_of(path)
        if generators_only and cls.__name__ not in _GENERATORS:
            raise ValueError(f"{path} holds a {cls.__name__}, which does not generate clips")
        pipe = cls.from_pretrained(str(path))
    return pipe.to(device)
