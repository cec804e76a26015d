"""Convert the FVD I3D checkpoint (``i3d_pretrained_400.pt``) to a ``save_pretrained`` folder.

The official SAVGBench evaluator loads ``i3d_pretrained_400.pt`` from the TATS repository
(``songweige/TATS``, ``tats/fvd/``), a conversion of the TF-Hub Kinetics-400 I3D. The file is a plain
``torch.save`` of a ``{name: tensor}`` dict in the names of :class:`~savg_hub.models.i3d.InceptionI3DModel`.
It was built from the TF variables, so it has no ``*.bn.num_batches_tracked`` entries (PyTorch fills those
with 0 when it loads such a dict; so does this converter). It is read with ``torch.load(weights_only=True)``:
no pickled code runs.

Example::

    from savg_hub.convert.i3d import convert_i3d_checkpoint
    convert_i3d_checkpoint("i3d_pretrained_400.pt", "i3d-kinetics400/")

    from savg_hub.models.i3d import InceptionI3DModel
    model = InceptionI3DModel.from_pretrained("i3d-kinetics400/").eval()
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from savg_hub.convert.common import coerce_tensor, raise_conversion_problems, require_tensors, save_converted
from savg_hub.models.i3d import InceptionI3DModel

logger = logging.getLogger(__name__)

_NUM_BATCHES_TRACKED = ".num_batches_tracked"


def convert_i3d_state_dict(
    state_dict: Mapping[str, torch.Tensor | np.ndarray], config: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Check an official I3D state dict against :class:`InceptionI3DModel` and return it ready to load.

    The names are the same on both sides; every key is accounted for. Missing ``*.num_batches_tracked``
    entries (absent from the released file) are filled with 0, as ``torch.nn.BatchNorm3d`` does for such
    dicts; they do not affect eval-mode outputs. Floating values are cast to the model's dtype (float32).

    Args:
        state_dict: ``{name: tensor}`` (NumPy arrays are accepted too): 287 entries for the released file,
            344 when ``num_batches_tracked`` is included.
        config: :class:`InceptionI3DModel` keyword arguments the weights are for; ``None`` = the official
            network (400 classes, RGB).

    Returns:
        ``{name: tensor}`` in the model's state-dict order, contiguous CPU tensors, that
        ``InceptionI3DModel(**config).load_state_dict(..., strict=True)`` accepts.

    Raises:
        ValueError: naming every unexpected key, every missing entry, every shape or dtype mismatch and every
            value that is not a tensor.
    """
    with torch.device("meta"):
        reference = InceptionI3DModel(**dict(config or {})).state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    bad_values: list[str] = []
    for key, value in state_dict.items():
        if key not in reference:
            unexpected.append(str(key))
            continue
        tensor, problem = coerce_tensor(str(key), value, reference[key])
        if problem is not None:
            bad_values.append(problem)
            continue
        converted[key] = tensor
    filled = []
    for key, expected in reference.items():
        if key not in converted and key.endswith(_NUM_BATCHES_TRACKED) and key not in state_dict:
            converted[key] = torch.zeros((), dtype=expected.dtype)
            filled.append(key)
    if filled:
        logger.debug("filled %d absent num_batches_tracked entries with 0", len(filled))
    missing = [key for key in reference if key not in converted and key not in state_dict]
    raise_conversion_problems("I3D state dict", [
        ("unexpected keys", unexpected),
        ("missing keys", missing),
        ("bad values", bad_values),
    ])
    return {key: converted[key] for key in reference}


def load_i3d_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read ``i3d_pretrained_400.pt`` (a plain ``{name: tensor}`` dict) without running pickled code.

    Uses ``torch.load(path, weights_only=True, map_location="cpu")``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a dict of tensors (a full training checkpoint is not expected here).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"I3D checkpoint not found: {path}")
    state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return require_tensors(path, state)


def convert_i3d_checkpoint(path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert ``i3d_pretrained_400.pt`` into a ``save_pretrained`` folder (``config.json`` + safetensors).

    Args:
        path: the official checkpoint.
        out_dir: destination folder (created; files in it with the same names are replaced). The folder is
            written into a temporary sibling first, so a failed conversion leaves it untouched.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`; load it with ``InceptionI3DModel.from_pretrained(out_dir)``.
    """
    state = convert_i3d_state_dict(load_i3d_checkpoint(path))
    model = InceptionI3DModel()
    model.load_state_dict(state, strict=True)
    return save_converted(model, out_dir, path)
