"""Schedulers diffusers does not have: the official adaptive multimodal DPM-Solver++ of SAVGBench."""

from savg_hub.schedulers.scheduling_adaptive_dpmsolver import (
    AdaptiveDPMSolverScheduler,
    AdaptiveDPMSolverSchedulerOutput,
)

__all__ = ["AdaptiveDPMSolverScheduler", "AdaptiveDPMSolverSchedulerOutput"]
