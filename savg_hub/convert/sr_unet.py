"""Convert SAVGBench's SR checkpoint (``model_SR_mmdiff_120000.pt``) to a ``save_pretrained`` folder.

The official file is a plain ``torch.save`` of guided-diffusion ``SuperResModel`` weights (``time_embed.*``,
``input_blocks.N.M.*``, ``middle_block.M.*``, ``output_blocks.N.M.*``, ``out.*``; 566 tensors in the
release).
It is read with ``torch.load(weights_only=True)``: nothing in it is unpickled with code execution.

Names map one to one onto :class:`~savg_hub.models.sr_unet.SuperResUNetModel`; no tensor is reshaped:

=====================================  ==========================================
guided-diffusion                       savg_hub
=====================================  ==========================================
``time_embed.{0,2}``                   ``time_embedding.linear_{1,2}``
``input_blocks.0.0``                   ``conv_in``
``input_blocks.N.M`` (N >= 1)          ``down_blocks.{N-1}.<member M>``
``middle_block.M``                     ``mid_block.<member M>``
``output_blocks.N.M``                  ``up_blocks.N.<member M>``
``out.{0,2}``                          ``norm_out``, ``conv_out``
ResBlock ``in_layers.{0,2}``           ``norm1``, ``conv1``
ResBlock ``emb_layers.1``              ``time_emb_proj``
ResBlock ``out_layers.{0,3}``          ``norm2``, ``conv2``
ResBlock ``skip_connection``           ``conv_shortcut``
AttentionBlock ``norm/qkv/proj_out``   same names (``qkv`` keeps its row order)
Downsample ``op`` / Upsample ``conv``  ``conv``
=====================================  ==========================================

``<member M>`` is the M-th entry of the block (``resnet``, ``attention``, ``downsampler``/``upsampler``; in
the middle block ``resnet_1``, ``attention``, ``resnet_2``), as built from the configuration.

Example::

    from savg_hub.convert.sr_unet import convert_sr_unet_checkpoint
    convert_sr_unet_checkpoint("model_SR_mmdiff_120000.pt", "savgbench-sr-unet/")

    from savg_hub.models.sr_unet import SuperResUNetModel
    model = SuperResUNetModel.from_pretrained("savgbench-sr-unet/")
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from savg_hub.convert.common import raise_conversion_problems, require_tensors, save_converted
from savg_hub.models.sr_unet import (
    SRAttentionBlock,
    SRDownsample,
    SRResBlock,
    SRUNetBlock,
    SRUpsample,
    SuperResUNetModel,
)

logger = logging.getLogger(__name__)

_RESBLOCK_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_ATTENTION_NAMES = {"norm": "norm", "qkv": "qkv", "proj_out": "proj_out"}
_DOWNSAMPLE_NAMES = {"conv": "op"}
_UPSAMPLE_NAMES = {"conv": "conv"}
_TOP_LEVEL_NAMES = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "norm_out": "out.0",
    "conv_out": "out.2",
}


def _member_official_name(module: nn.Module, rest: str) -> str:
    """Official name of the parameter ``rest`` of ``module`` inside one ``TimestepEmbedSequential`` member."""
    if isinstance(module, SRResBlock):
        table = _RESBLOCK_NAMES
    elif isinstance(module, SRAttentionBlock):
        table = _ATTENTION_NAMES
    elif isinstance(module, SRDownsample):
        table = _DOWNSAMPLE_NAMES
    elif isinstance(module, SRUpsample):
        table = _UPSAMPLE_NAMES
    else:
        raise TypeError(f"no official naming for {type(module).__name__}")
    layer, _, leaf = rest.rpartition(".")
    return f"{table[layer]}.{leaf}"


def _block_official_name(block: SRUNetBlock, official_prefix: str, rest: str) -> str:
    member, _, inner = rest.partition(".")
    index = list(block.keys()).index(member)
    return f"{official_prefix}.{index}.{_member_official_name(block[member], inner)}"


def sr_unet_key_map(model: SuperResUNetModel) -> dict[str, str]:
    """``{official guided-diffusion name: savg_hub name}`` for every state-dict entry of ``model``.

    Args:
        model: the target network (it may live on the ``meta`` device; only its structure is read).

    Returns:
        One entry per tensor of ``model.state_dict()``, in the model's order.
    """
    mapping: dict[str, str] = {}
    for name in model.state_dict():
        head, _, leaf = name.rpartition(".")
        if head in _TOP_LEVEL_NAMES:
            official = f"{_TOP_LEVEL_NAMES[head]}.{leaf}"
        else:
            group, _, rest = name.partition(".")
            if group == "mid_block":
                official = _block_official_name(model.mid_block, "middle_block", rest)
            elif group in ("down_blocks", "up_blocks"):
                index_text, _, rest = rest.partition(".")
                index = int(index_text)
                if group == "down_blocks":
                    block, prefix = model.down_blocks[index], f"input_blocks.{index + 1}"
                else:
                    block, prefix = model.up_blocks[index], f"output_blocks.{index}"
                official = _block_official_name(block, prefix, rest)
            else:
                raise TypeError(f"no official naming for model entry {name}")
        mapping[official] = name
    return mapping


def convert_sr_unet_state_dict(
    official_sd: Mapping[str, torch.Tensor | np.ndarray], config: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Rename a guided-diffusion ``SuperResModel`` state dict to :class:`SuperResUNetModel` names, checked.

    Args:
        official_sd: ``{official name: tensor}`` (NumPy arrays are accepted too), e.g. the contents of
            ``model_SR_mmdiff_120000.pt`` (566 entries for the release). ``meta`` tensors are accepted (for a
            names-and-shapes check without values).
        config: :class:`SuperResUNetModel` keyword arguments the weights are for; ``None`` = the SAVGBench
            release (the class defaults).

    Returns:
        ``{name: tensor}`` that ``SuperResUNetModel(**config).load_state_dict(..., strict=True)`` accepts: the
        same values, contiguous, floating ones cast to float32, on the device they came on.

    Raises:
        ValueError: naming every official key that maps to nothing (e.g. ``label_emb.weight`` of the
            class-conditional ImageNet upsampler), every model entry left without a value, every shape
            mismatch and every non-tensor value.
    """
    with torch.device("meta"):
        reference_model = SuperResUNetModel(**dict(config or {}))
    reference = reference_model.state_dict()
    key_map = sr_unet_key_map(reference_model)
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    bad_values: list[str] = []
    for key, value in official_sd.items():
        name = key_map.get(key)
        if name is None:
            unexpected.append(key)
            continue
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            bad_values.append(f"{key} ({type(value).__name__}, not a tensor)")
            continue
        expected = reference[name]
        if tuple(value.shape) != tuple(expected.shape):
            bad_values.append(f"{key}: shape {tuple(value.shape)}, expected {tuple(expected.shape)}")
            continue
        if value.dtype != expected.dtype:
            if not value.dtype.is_floating_point:
                bad_values.append(f"{key}: dtype {value.dtype}, expected {expected.dtype}")
                continue
            value = value.to(expected.dtype)
        converted[name] = value.detach().contiguous()
    missing = [official for official, name in key_map.items() if name not in converted]
    raise_conversion_problems("SR U-Net state dict", [
        ("unexpected keys", unexpected),
        ("missing keys", missing),
        ("bad values", bad_values),
    ])
    return converted


def load_sr_unet_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an official SR checkpoint (guided-diffusion names, CPU).

    Loaded with ``torch.load(weights_only=True, map_location="cpu")``: pickled code is never run.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a weights-only loadable dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SR U-Net checkpoint not found: {path}")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: not loadable as plain tensors (weights_only=True): {error}") from error
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return require_tensors(path, state)


def convert_sr_unet_checkpoint(
    path: str | os.PathLike, out_dir: str | os.PathLike, config: Mapping[str, Any] | None = None
) -> Path:
    """Convert an official SR ``.pt`` into a ``save_pretrained`` folder (``config.json`` + safetensors).

    The model is assembled on the ``meta`` device and takes the loaded tensors directly, so the peak memory is
    about one copy of the weights (1.24 GB for the release).

    Args:
        path: the official checkpoint (e.g. ``model_SR_mmdiff_120000.pt``).
        out_dir: destination folder (created; files in it with the same names are replaced, each atomically).
        config: :class:`SuperResUNetModel` keyword arguments; ``None`` = the SAVGBench release.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`; load it with ``SuperResUNetModel.from_pretrained(out_dir)``.
    """
    state = convert_sr_unet_state_dict(load_sr_unet_checkpoint(path), config)
    with torch.device("meta"):
        model = SuperResUNetModel(**dict(config or {}))
    model.load_state_dict(state, strict=True, assign=True)
    return save_converted(model, out_dir, path)
