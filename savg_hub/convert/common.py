"""Pieces shared by the checkpoint converters."""

from __future__ import annotations

import numpy as np
import torch


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
