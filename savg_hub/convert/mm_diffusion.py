"""Convert the official Stereo MM-Diffusion checkpoint (``model330011.pt``) to a ``save_pretrained`` folder.

The official file (inside ``SAVGBench_PretrainedModels_V1.zip``) is a flat ``torch.save`` mapping from
``MultimodalUNet`` parameter names to float32 tensors: 1046 entries, 133,676,293 parameters for the SAVGBench
configuration. It is read with ``torch.load(weights_only=True)``: no pickled code ever runs.

Naming (official -> :class:`~savg_hub.models.mm_diffusion_unet.CoupledUNetModel`); the mapping does not depend
on the configuration and every tensor keeps its shape:

* ``time_embed.{0,2}`` -> ``time_embedding.linear_{1,2}``;
* ``input_blocks.0.0.{video_conv.video_conv_spatial, video_conv.video_conv_temporal, audio_conv.audio_conv}``
  -> ``conv_in.{video_conv.spatial, video_conv.temporal, audio_conv}``;
* ``input_blocks.{n}.0`` (n >= 1) -> ``down_blocks.{n-1}.resnet``, ``input_blocks.{n}.1`` ->
  ``.cross_attention``;
* ``middle_blocks.0`` -> ``mid_block.resnets.0``, the cross-attention ``middle_blocks.1`` ->
  ``mid_block.cross_attention``, the second residual block (``.2``, or ``.1`` without cross-attention) ->
  ``mid_block.resnets.1``;
* ``output_blocks.{n}.0`` -> ``up_blocks.{n}.resnet``, its cross-attention ``.1`` -> ``.cross_attention``, its
  upsampling residual block (``.2``, or ``.1`` without cross-attention) -> ``.upsampler``;
* inside a residual block: ``{video,audio}_in_layers.0.GroupNorm`` -> ``{video,audio}_norm1``,
  ``video_in_layers.2.video_conv_{spatial,temporal}`` -> ``video_conv1.{spatial,temporal}``,
  ``audio_in_layers.2.audio_conv`` -> ``audio_conv1``, ``emb_layers.1`` -> ``time_emb_proj``,
  ``{video,audio}_out_layers.0.GroupNorm`` -> ``{video,audio}_norm2``, ``video_out_layers.3.video_conv`` ->
  ``video_conv2``, ``audio_out_layers.3.audio_conv`` -> ``audio_conv2``,
  ``{video,audio}_skip_connection.{video,audio}_conv`` -> ``{video,audio}_conv_shortcut``,
  ``{spatial,temporal,audio}_attention_block.{norm.GroupNorm,qkv,proj_out}`` ->
  ``{spatial,temporal,audio}_attention.{norm,qkv,proj_out}``;
* inside a cross-attention: ``{v,a}_norm.GroupNorm`` -> ``{video,audio}_norm``, ``{v,a}_qkv`` ->
  ``{video,audio}_qkv``, ``{video,audio}_proj_out.{video,audio}_conv`` -> ``{video,audio}_proj_out``;
* heads: ``{video,audio}_out.0.GroupNorm`` -> ``{video,audio}_norm_out``, ``video_out.2.video_conv`` ->
  ``video_conv_out``, ``audio_out.2.audio_conv`` -> ``audio_conv_out``.

Example::

    from savg_hub.convert.mm_diffusion import convert_mm_diffusion_checkpoint
    convert_mm_diffusion_checkpoint("model330011.pt", "stereo-mm-diffusion/")

    from savg_hub.models.mm_diffusion_unet import CoupledUNetModel
    model = CoupledUNetModel.from_pretrained("stereo-mm-diffusion/")
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from savg_hub.convert.common import raise_conversion_problems, require_tensors, save_converted
from savg_hub.models.mm_diffusion_unet import CoupledUNetModel

logger = logging.getLogger(__name__)

_PARAM = r"(weight|bias)"
_RESNET_LEAVES = {
    "video_in_layers.0.GroupNorm": "video_norm1",
    "video_in_layers.2.video_conv_spatial": "video_conv1.spatial",
    "video_in_layers.2.video_conv_temporal": "video_conv1.temporal",
    "audio_in_layers.0.GroupNorm": "audio_norm1",
    "audio_in_layers.2.audio_conv": "audio_conv1",
    "emb_layers.1": "time_emb_proj",
    "video_out_layers.0.GroupNorm": "video_norm2",
    "video_out_layers.3.video_conv": "video_conv2",
    "audio_out_layers.0.GroupNorm": "audio_norm2",
    "audio_out_layers.3.audio_conv": "audio_conv2",
    "video_skip_connection.video_conv": "video_conv_shortcut",
    "audio_skip_connection.audio_conv": "audio_conv_shortcut",
    **{
        f"{kind}_attention_block.{member}": f"{kind}_attention.{ours}"
        for kind in ("spatial", "temporal", "audio")
        for member, ours in (("norm.GroupNorm", "norm"), ("qkv", "qkv"), ("proj_out", "proj_out"))
    },
}
_CROSS_ATTENTION_LEAVES = {
    "v_norm.GroupNorm": "video_norm",
    "a_norm.GroupNorm": "audio_norm",
    "v_qkv": "video_qkv",
    "a_qkv": "audio_qkv",
    "video_proj_out.video_conv": "video_proj_out",
    "audio_proj_out.audio_conv": "audio_proj_out",
}
_TOP_LEVEL = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "input_blocks.0.0.video_conv.video_conv_spatial": "conv_in.video_conv.spatial",
    "input_blocks.0.0.video_conv.video_conv_temporal": "conv_in.video_conv.temporal",
    "input_blocks.0.0.audio_conv.audio_conv": "conv_in.audio_conv",
    "video_out.0.GroupNorm": "video_norm_out",
    "video_out.2.video_conv": "video_conv_out",
    "audio_out.0.GroupNorm": "audio_norm_out",
    "audio_out.2.audio_conv": "audio_conv_out",
}
_BLOCK = re.compile(r"(input_blocks|middle_blocks|output_blocks)\.(?:(\d+)\.)?(\d+)\.(.+)")


def official_mm_diffusion_key_to_savg(key: str) -> str | None:
    """Name in :class:`CoupledUNetModel` of an official ``MultimodalUNet`` state-dict key; ``None`` if
    unknown.

    The module docstring lists the rules. ``middle_blocks`` keys have one index (``middle_blocks.{i}.*``), the
    others two (``input_blocks.{n}.{i}.*``).
    """
    module, sep, param = key.rpartition(".")
    if not sep or not re.fullmatch(_PARAM, param):
        return None
    if module in _TOP_LEVEL:
        return f"{_TOP_LEVEL[module]}.{param}"
    match = _BLOCK.fullmatch(module)
    if match is None:
        return None
    group, block, position, leaf = match.groups()
    position = int(position)
    if (group == "middle_blocks") != (block is None):
        return None
    if leaf in _RESNET_LEAVES:
        is_resnet, leaf_name = True, _RESNET_LEAVES[leaf]
    elif leaf in _CROSS_ATTENTION_LEAVES:
        is_resnet, leaf_name = False, _CROSS_ATTENTION_LEAVES[leaf]
    else:
        return None
    role: str | None
    if group == "input_blocks":
        if int(block) < 1:
            return None
        prefix = f"down_blocks.{int(block) - 1}"
        if is_resnet:
            role = "resnet" if position == 0 else None
        else:
            role = "cross_attention" if position == 1 else None
    elif group == "middle_blocks":
        prefix = "mid_block"
        if is_resnet:
            role = "resnets.0" if position == 0 else "resnets.1" if position <= 2 else None
        else:
            role = "cross_attention" if position == 1 else None
    else:
        prefix = f"up_blocks.{int(block)}"
        if is_resnet:
            role = "resnet" if position == 0 else "upsampler" if position <= 2 else None
        else:
            role = "cross_attention" if position == 1 else None
    if role is None:
        return None
    return f"{prefix}.{role}.{leaf_name}.{param}"


def convert_mm_diffusion_state_dict(
    official_sd: Mapping[str, torch.Tensor | np.ndarray], config: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Rename an official MM-Diffusion state dict to :class:`CoupledUNetModel` names, checking every key.

    A pure rename: no tensor is copied or reshaped (floating tensors in another float dtype are cast to the
    model's float32; NumPy arrays become tensors). Works on ``meta`` tensors too, so a key list can be checked
    without the weights.

    Args:
        official_sd: ``{official name: tensor}``, e.g. ``torch.load("model330011.pt", weights_only=True)``.
        config: :class:`CoupledUNetModel` keyword arguments the weights are for; ``None`` = the SAVGBench
            configuration (the class defaults).

    Returns:
        ``{name: tensor}`` that ``CoupledUNetModel(**config).load_state_dict(..., strict=True)`` accepts.

    Raises:
        ValueError: naming every official key that maps to nothing (or to an entry the configured model does
            not have), every model entry left without a value, every shape mismatch and every non-tensor
            value.
    """
    with torch.device("meta"):
        reference = CoupledUNetModel(**dict(config or {})).state_dict()
    converted: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    unexpected: list[str] = []
    bad_values: list[str] = []
    for key, value in official_sd.items():
        name = official_mm_diffusion_key_to_savg(str(key))
        if name is None or name not in reference:
            unexpected.append(str(key))
            continue
        if name in converted:
            unexpected.append(f"{key} (maps to {name}, already given by {sources[name]})")
            continue
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            bad_values.append(f"{key} ({type(value).__name__}, not a tensor)")
            continue
        expected = reference[name]
        if tuple(value.shape) != tuple(expected.shape):
            bad_values.append(
                f"{key}: shape {tuple(value.shape)}, expected {tuple(expected.shape)} for {name}"
            )
            continue
        if value.dtype != expected.dtype:
            if not value.dtype.is_floating_point:
                bad_values.append(f"{key}: dtype {value.dtype}, expected {expected.dtype}")
                continue
            value = value.to(expected.dtype)
        converted[name] = value.detach()
        sources[name] = str(key)
    missing = [name for name in reference if name not in converted]
    raise_conversion_problems("MM-Diffusion state dict", [
        ("unexpected keys", unexpected),
        ("model entries with no official key", missing),
        ("bad values", bad_values),
    ])
    return {name: converted[name] for name in reference}


def load_mm_diffusion_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of an official MM-Diffusion ``.pt`` file (CPU tensors, official names).

    Loaded with ``torch.load(weights_only=True, map_location="cpu")``: a file that holds anything but tensors
    and plain containers is refused by the unpickler, never executed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a flat mapping from names to tensors.
        pickle.UnpicklingError: the file holds objects the weights-only unpickler does not allow.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MM-Diffusion checkpoint not found: {path}")
    state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a flat mapping of names to tensors, got {type(state).__name__}")
    return require_tensors(path, state)


def convert_mm_diffusion_checkpoint(
    path: str | os.PathLike, out_dir: str | os.PathLike, config: Mapping[str, Any] | None = None
) -> Path:
    """Convert an official MM-Diffusion ``.pt`` into a ``save_pretrained`` folder (``config.json`` +
    safetensors).

    Args:
        path: the official checkpoint (e.g. ``model330011.pt``).
        out_dir: destination folder (created; files in it with the same names are replaced, each appearing
            complete or not at all).
        config: :class:`CoupledUNetModel` keyword arguments; ``None`` = the SAVGBench configuration.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`; load it with ``CoupledUNetModel.from_pretrained(out_dir)``.
    """
    state = convert_mm_diffusion_state_dict(load_mm_diffusion_checkpoint(path), config)
    model = CoupledUNetModel(**dict(config or {}))
    model.load_state_dict(state, strict=True)
    return save_converted(model, out_dir, path)
