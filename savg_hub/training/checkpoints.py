"""Resumable training runs: the loop's counters, checkpoint folders and the config written next to them.

A run folder holds ``checkpoints/checkpoint-<step>`` (Accelerate state + ``training_config.{json,yaml}``), each
written in a temporary folder next to its destination and renamed into place, so an interrupted save leaves no
half-written checkpoint behind. Used by every training script (SELD, Stereo MM-Diffusion, super-resolution).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from savg_hub.utils.files import atomic_dir, atomic_write_text

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"


class SerializableConfig(Protocol):
    """A typed training config: text forms and how many checkpoints to keep."""

    checkpoints_total_limit: int | None

    def to_json(self) -> str: ...

    def to_yaml(self) -> str: ...


class TrainerState:
    """The loop's own resumable counters (registered with Accelerate's checkpointing)."""

    def __init__(self) -> None:
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "elapsed": self.elapsed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.elapsed = int(state["step"]), float(state.get("elapsed", 0.0))


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(step, folder)]`` of the complete checkpoints under ``output_dir/checkpoints``, oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = []
    if root.is_dir():
        for path in root.iterdir():
            suffix = path.name[len(CHECKPOINT_PREFIX):]
            if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit():
                found.append((int(suffix), path))
    return sorted(found)


def write_config(folder: str | os.PathLike, config: SerializableConfig) -> None:
    """``training_config.json`` and ``.yaml`` into ``folder`` (atomically)."""
    atomic_write_text(Path(folder) / "training_config.json", config.to_json())
    atomic_write_text(Path(folder) / "training_config.yaml", config.to_yaml())


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int, config: SerializableConfig) -> Path:
    """Accelerate state + config into ``checkpoints/checkpoint-<step>`` (written aside, then renamed); keeps
    only the newest ``config.checkpoints_total_limit`` checkpoints when that is set."""
    final = Path(output_dir) / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:07d}"
    with atomic_dir(final) as work:
        accelerator.save_state(str(work))
        write_config(work, config)
    if config.checkpoints_total_limit is not None:
        for _, old in list_checkpoints(output_dir)[: -config.checkpoints_total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    logger.info("saved %s", final)
    return final
