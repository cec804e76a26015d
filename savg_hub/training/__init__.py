"""Training pieces shared by the scripts under ``training/``: typed configs, datasets, schedules, evaluation.

Names are imported lazily so that ``import savg_hub.training`` stays cheap (no torch import).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SELDModelConfig": "savg_hub.training.seld",
    "SELDTrainingConfig": "savg_hub.training.seld",
    "SELDCropDataset": "savg_hub.training.seld",
    "seld_learning_rate": "savg_hub.training.seld",
    "seld_loss": "savg_hub.training.seld",
    "update_batch_norm": "savg_hub.training.seld",
    "evaluate_seld": "savg_hub.training.seld",
    "render_seld_model_card": "savg_hub.training.card",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'savg_hub.training' has no attribute {name!r}")
