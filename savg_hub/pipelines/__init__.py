"""``DiffusionPipeline`` subclasses for the SAVGBench baselines (imported lazily)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SAVGPipelineOutput": "savg_hub.pipelines.pipeline_output",
    "StereoMMDiffusionPipeline": "savg_hub.pipelines.pipeline_stereo_mm_diffusion",
    "SuperResolutionPipeline": "savg_hub.pipelines.pipeline_super_resolution",
    "SAVGBenchJointPipeline": "savg_hub.pipelines.pipeline_savgbench_joint",
    "export_to_clips": "savg_hub.pipelines.export",
    "stereo_mm_diffusion_dpmsolver_scheduler": "savg_hub.pipelines.pipeline_utils",
    "sr_ddim_scheduler": "savg_hub.pipelines.pipeline_utils",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'savg_hub.pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
