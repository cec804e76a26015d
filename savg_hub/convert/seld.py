"""Convert the official SAVGBench stereo SELD checkpoint (``params_swa_*.pth``) to safetensors + config.

The official file is a ``torch.save`` dict with ``model_state_dict`` (the network weights, SWA inner-module
names, no ``module.`` prefix), ``optimizer_state_dict``, ``scheduler_state_dict``, ``rng_state`` and
``cuda_rng_state``; only ``model_state_dict`` is used. Nothing in it is unpickled with code execution.

Example::

    from savg_hub.convert.seld import convert_seld_checkpoint
    convert_seld_checkpoint("params_swa_20240912162834_0040000.pth", "stereo-seld/")

    from savg_hub.models.stereo_seld import StereoSELDModel
    model = StereoSELDModel.from_pretrained("stereo-seld/")
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from savg_hub.convert.common import (
    coerce_tensor,
    inert_class,
    raise_conversion_problems,
    require_tensors,
    save_converted,
)
from savg_hub.models.stereo_seld import StereoSELDModel

logger = logging.getLogger(__name__)

_CONV_BLOCK = re.compile(r"(sed|doa)_conv_block(\d+)\.0\.double_conv\.(\d+)\.(\w+)")
_CONV_BLOCK_LAYERS = {"0": "conv1", "1": "norm1", "3": "conv2", "4": "norm2"}
_STITCH = re.compile(r"stitch(\d+)")
_TRANSFORMER = re.compile(r"(sed|doa)_trans_track1\.(layers\.\d+\..+)")
_HEAD = re.compile(r"fc_(sed|doa)_track1\.(weight|bias)")


def official_seld_key_to_savg(key: str) -> str | None:
    """Name in :class:`StereoSELDModel` of an official ``CNN_MHSA_FC`` state-dict key, ``None`` if unknown.

    ``stitch{k}`` -> ``cross_stitch.{k-1}.weight``;
    ``{b}_conv_block{i}.0.double_conv.{0,1,3,4}.*`` -> ``{b}_blocks.{i-1}.{conv1,norm1,conv2,norm2}.*``;
    ``{b}_trans_track1.layers.*`` -> ``{b}_transformer.layers.*``; ``fc_{b}_track1.*`` -> ``{b}_head.*``.
    """
    if match := _STITCH.fullmatch(key):
        index = int(match.group(1))
        return f"cross_stitch.{index - 1}.weight" if index >= 1 else None
    if match := _CONV_BLOCK.fullmatch(key):
        branch, block, layer, leaf = match.groups()
        if int(block) < 1 or layer not in _CONV_BLOCK_LAYERS:
            return None
        return f"{branch}_blocks.{int(block) - 1}.{_CONV_BLOCK_LAYERS[layer]}.{leaf}"
    if match := _TRANSFORMER.fullmatch(key):
        return f"{match.group(1)}_transformer.{match.group(2)}"
    if match := _HEAD.fullmatch(key):
        return f"{match.group(1)}_head.{match.group(2)}"
    return None


def convert_seld_state_dict(
    official_sd: Mapping[str, torch.Tensor | np.ndarray], config: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Rename an official SELD ``model_state_dict`` to :class:`StereoSELDModel` names, checking every key.

    Args:
        official_sd: ``{official name: tensor}`` (NumPy arrays are accepted too), e.g. the
            ``model_state_dict`` of the official ``.pth`` (151 entries for the released network).
        config: :class:`StereoSELDModel` keyword arguments the weights are for; ``None`` = the official
            network (the class defaults).

    Returns:
        ``{name: tensor}`` that ``StereoSELDModel(**config).load_state_dict(..., strict=True)`` accepts;
        contiguous CPU tensors, floating ones in the model's dtype (float32).

    Raises:
        ValueError: naming every official key that maps to nothing, every model entry left without a value,
            every shape mismatch and every non-numeric value.
    """
    with torch.device("meta"):
        reference = StereoSELDModel(**dict(config or {})).state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    bad_values: list[str] = []
    for key, value in official_sd.items():
        name = official_seld_key_to_savg(key)
        if name is None or name not in reference:
            unexpected.append(key)
            continue
        if name in converted:
            unexpected.append(f"{key} (duplicate of {name})")
            continue
        tensor, problem = coerce_tensor(key, value, reference[name])
        if problem is not None:
            bad_values.append(problem)
            continue
        converted[name] = tensor
    missing = [name for name in reference if name not in converted]
    raise_conversion_problems("SELD state dict", [
        ("unexpected keys", unexpected),
        ("model entries with no official key", missing),
        ("bad values", bad_values),
    ])
    return converted


def _load_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)``; non-allowlisted globals become inert stand-ins instead of failing.

    A training checkpoint may hold objects that the weights-only unpickler refuses (e.g. NumPy scalars or
    optimizer/scheduler classes in ``scheduler_state_dict``). Their names are listed without unpickling
    (``torch.serialization.get_unsafe_globals_in_checkpoint``) and each is replaced by an inert class that
    only stores its arguments, so no function or constructor from the file is ever called. The weights-only
    unpickler still refuses everything else (e.g. the ``os``/``sys`` modules).
    """
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (RuntimeError, ValueError):  # not a zip-format checkpoint: nothing more can be done safely
            raise error from None
        if not names:
            raise
        logger.info(
            "%s: %d non-tensor globals replaced by inert stand-ins: %s", path, len(names), ", ".join(names)
        )
        stand_ins = [(inert_class(name), name) for name in names]
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, weights_only=True, map_location="cpu")


def load_official_seld_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``model_state_dict`` of an official SELD ``.pth`` (CPU tensors, official names).

    Loaded with ``torch.load(weights_only=True, map_location="cpu")``; entries the weights-only unpickler does
    not allow (outside ``model_state_dict``) are replaced by inert stand-ins and ignored, never executed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a dict with a ``model_state_dict`` of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SELD checkpoint not found: {path}")
    checkpoint = _load_weights_only(path)
    if not isinstance(checkpoint, Mapping) or "model_state_dict" not in checkpoint:
        keys = list(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise ValueError(f"{path}: expected a dict with 'model_state_dict', got {keys}")
    state = checkpoint["model_state_dict"]
    if not isinstance(state, Mapping):
        kind = type(state).__name__
        raise ValueError(f"{path}: 'model_state_dict' is a {kind}, not a dict")  # noqa: TRY004
    return require_tensors(path, state, "'model_state_dict' entries")


def convert_seld_checkpoint(
    path: str | os.PathLike, out_dir: str | os.PathLike, config: Mapping[str, Any] | None = None
) -> Path:
    """Convert an official SELD ``.pth`` into a ``save_pretrained`` folder (``config.json`` + safetensors).

    Args:
        path: the official checkpoint (e.g. ``params_swa_20240912162834_0040000.pth``).
        out_dir: destination folder (created; files in it with the same names are replaced).
        config: :class:`StereoSELDModel` keyword arguments; ``None`` = the official network.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`; load it with ``StereoSELDModel.from_pretrained(out_dir)``.
    """
    state = convert_seld_state_dict(load_official_seld_checkpoint(path), config)
    model = StereoSELDModel(**dict(config or {}))
    model.load_state_dict(state, strict=True)
    return save_converted(model, out_dir, path)
