"""Pieces shared by the checkpoint converters."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def coerce_tensor(key: str, value: object, expected: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
    """Check one checkpoint value against the entry it fills: ``(tensor, None)`` or ``(None, problem)``.

    NumPy arrays are copied into tensors (0-d stays 0-d); the shape must match exactly; a floating-point value is
    cast to a floating-point ``expected`` dtype, any other dtype difference is a problem. The tensor comes back
    detached, on the CPU, contiguous.
    """
    if isinstance(value, np.ndarray):
        value = torch.tensor(value)  # copies; keeps 0-d arrays 0-d
    if not isinstance(value, torch.Tensor):
        return None, f"{key} ({type(value).__name__}, not a tensor)"
    if tuple(value.shape) != tuple(expected.shape):
        return None, f"{key}: shape {tuple(value.shape)}, expected {tuple(expected.shape)}"
    if value.dtype != expected.dtype:
        if not (value.dtype.is_floating_point and expected.dtype.is_floating_point):
            return None, f"{key}: dtype {value.dtype}, expected {expected.dtype}"
        value = value.to(expected.dtype)
    return value.detach().to("cpu").contiguous(), None


def name_list(names: Sequence[str], limit: int = 12) -> str:
    """``names`` joined by commas, cut after ``limit`` with the total count (for error messages)."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


def raise_conversion_problems(what: str, groups: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Raise one ``ValueError("cannot convert the <what>; <label>: <names>; ...")`` naming every non-empty group of
    offending keys (``(label, names)`` pairs, in order); return quietly when all are empty."""
    problems = [f"{label}: {name_list(names)}" for label, names in groups if names]
    if problems:
        raise ValueError(f"cannot convert the {what}; " + "; ".join(problems))


def require_tensors(path: str | os.PathLike, state: Mapping[Any, Any], what: str = "entries") -> dict:
    """``dict(state)`` after checking that every value is a tensor (``ValueError`` naming the others)."""
    not_tensors = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"{path}: {what} that are not tensors: {name_list(not_tensors)}")
    return dict(state)


class InertObject:
    """Stand-in for a pickled Python object a converter does not need: it keeps the arguments and state the
    unpickler hands it and runs none of its code."""

    _qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        instance = object.__new__(cls)
        instance.args = args
        instance.state = None
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<not loaded: {self._qualified_name}>"


def inert_class(qualified_name: str) -> type:
    """A subclass of :class:`InertObject` standing in for the pickled global ``qualified_name``."""
    return type(f"NotLoaded[{qualified_name}]", (InertObject,), {"_qualified_name": qualified_name})


def save_converted(model: torch.nn.Module, out_dir: str | os.PathLike, source: str | os.PathLike) -> Path:
    """``model.save_pretrained(out_dir)`` (safetensors) through a staging folder, so the files in ``out_dir``
    appear complete or not at all; logs ``source -> out_dir``. Returns ``out_dir`` as a :class:`Path`."""
    from savg_hub.utils.files import staged_into

    out_dir = Path(out_dir)
    with staged_into(out_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)
    logger.info("converted %s -> %s", source, out_dir)
    return out_dir
