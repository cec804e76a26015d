"""Convert the released AudioCLIP checkpoint (``AudioCLIP-Full-Training.pt``) to a ``save_pretrained`` folder.

The release file (GitHub ``AndreyGuzhov/AudioCLIP``, release v0.1) is the ``state_dict`` of the whole
AudioCLIP model: the CLIP image tower (``visual.*``), the CLIP text tower (``transformer.*``,
``token_embedding.*``, ``positional_embedding``, ``ln_final.*``, ``text_projection``), the logit scales
(``logit_scale``, ``logit_scale_ai``, ``logit_scale_at``) and the audio branch (``audio.*``, 370 entries).
SAVGBench's "FAD" uses only the audio branch, so only ``audio.*`` is converted; the other entries are ignored
by name (and logged). Nothing in the file is unpickled with code execution.

Example::

    from savg_hub.convert.audioclip import convert_audioclip_checkpoint
    convert_audioclip_checkpoint("AudioCLIP-Full-Training.pt", "audioclip-audio/")

    from savg_hub.models.audioclip import AudioCLIPAudioModel
    model = AudioCLIPAudioModel.from_pretrained("audioclip-audio/")
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from savg_hub.convert.common import (
    InertObject,
    inert_class,
    raise_conversion_problems,
    require_tensors,
    save_converted,
)
from savg_hub.models.audioclip import AudioCLIPAudioModel

logger = logging.getLogger(__name__)

AUDIO_PREFIX = "audio."
# Top-level names of the non-audio parts of AudioCLIP (CLIP image and text towers, logit scales).
_IGNORED_PREFIXES = ("visual.", "transformer.", "token_embedding.", "ln_final.")
_IGNORED_NAMES = (
    "positional_embedding",
    "text_projection",
    "logit_scale",
    "logit_scale_ai",
    "logit_scale_at",
)
_WINDOW_KEY = "window"
_FBSP_BIAS_KEY = "fbsp.bias"
_WINDOW_ATOL = 1e-6


def _is_ignored_non_audio_key(key: str) -> bool:
    return key in _IGNORED_NAMES or key.startswith(_IGNORED_PREFIXES)


def convert_audioclip_audio_state_dict(
    state_dict: Mapping[str, torch.Tensor | np.ndarray], config: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Extract and check the audio branch of an AudioCLIP ``state_dict`` for :class:`AudioCLIPAudioModel`.

    Every ``audio.*`` entry is accounted for: ``audio.<name>`` becomes ``<name>`` (the model keeps the
    reference's names); ``audio.window`` (the analysis window, a constant the model rebuilds from its config)
    is compared with the model's window and dropped; ``audio.fbsp.bias`` must be empty (the FBSP layer has no
    bias) and is dropped. The CLIP image/text entries and logit scales are ignored and their count is logged.

    Args:
        state_dict: ``{name: tensor}`` of the full AudioCLIP model (NumPy arrays are accepted too), e.g. from
            :func:`load_audioclip_checkpoint`.
        config: :class:`AudioCLIPAudioModel` keyword arguments the weights are for; ``None`` = the AudioCLIP
            audio branch (the class defaults).

    Returns:
        ``{name: tensor}`` that ``AudioCLIPAudioModel(**config).load_state_dict(..., strict=True)`` accepts:
        contiguous CPU tensors, floating ones as float32.

    Raises:
        ValueError: naming every key that is neither audio nor a known CLIP entry, every ``audio.*`` key the
            model has no place for, every model entry left without a value, and every shape/dtype mismatch, a
            window that differs from the config's, or a non-empty FBSP bias.
    """
    with torch.device("meta"):
        model = AudioCLIPAudioModel(**dict(config or {}))
    reference = model.state_dict()
    expected_window = AudioCLIPAudioModel._make_window(model.config.window, model.config.win_length)
    converted: dict[str, torch.Tensor] = {}
    ignored: Counter[str] = Counter()
    unknown: list[str] = []
    unexpected: list[str] = []
    bad_values: list[str] = []
    dropped: list[str] = []
    for key, value in state_dict.items():
        if not key.startswith(AUDIO_PREFIX):
            if _is_ignored_non_audio_key(key):
                ignored[key.split(".", 1)[0]] += 1
            else:
                unknown.append(key)
            continue
        name = key[len(AUDIO_PREFIX) :]
        if isinstance(value, np.ndarray):
            value = torch.tensor(value)
        if not isinstance(value, torch.Tensor):
            bad_values.append(f"{key} ({type(value).__name__}, not a tensor)")
            continue
        if name == _WINDOW_KEY:
            window = value.detach().to("cpu", torch.float32)
            if window.shape != expected_window.shape:
                bad_values.append(
                    f"{key}: shape {tuple(window.shape)}, expected {tuple(expected_window.shape)}"
                )
            elif not torch.allclose(window, expected_window, rtol=0.0, atol=_WINDOW_ATOL):
                difference = (window - expected_window).abs().max().item()
                bad_values.append(
                    f"{key}: differs from the config's periodic window by up to {difference:.3g}"
                )
            else:
                dropped.append(key)
            continue
        if name == _FBSP_BIAS_KEY:
            if value.numel() != 0:
                bad_values.append(f"{key}: {value.numel()} elements, but the FBSP layer has no bias")
            else:
                dropped.append(key)
            continue
        if name not in reference:
            unexpected.append(key)
            continue
        expected = reference[name]
        if tuple(value.shape) != tuple(expected.shape):
            bad_values.append(f"{key}: shape {tuple(value.shape)}, expected {tuple(expected.shape)}")
            continue
        if value.dtype != expected.dtype:
            if not (value.dtype.is_floating_point and expected.dtype.is_floating_point):
                bad_values.append(f"{key}: dtype {value.dtype}, expected {expected.dtype}")
                continue
            value = value.to(expected.dtype)
        converted[name] = value.detach().to("cpu").contiguous()
    missing = [AUDIO_PREFIX + name for name in reference if name not in converted]
    raise_conversion_problems("AudioCLIP audio state dict", [
        ("keys that are neither 'audio.*' nor AudioCLIP's CLIP entries", unknown),
        ("unexpected audio keys", unexpected),
        ("missing audio keys", missing),
        ("bad values", bad_values),
    ])
    if ignored:
        summary = ", ".join(f"{prefix} ({count})" for prefix, count in sorted(ignored.items()))
        logger.info("ignored %d non-audio AudioCLIP entries: %s", sum(ignored.values()), summary)
    logger.info(
        "converted %d audio entries; checked and dropped %s", len(converted), ", ".join(dropped) or "none"
    )
    return converted


def _module_state_dict(obj: InertObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """``state_dict()`` of a pickled ``nn.Module``, read from its stand-in's attributes without running code.

    Follows ``nn.Module.state_dict``'s default rules: ``_parameters`` that are not ``None``, ``_buffers`` that
    are not ``None`` and not in ``_non_persistent_buffers_set``, recursively through ``_modules``. Custom
    ``_save_to_state_dict`` overrides and state-dict hooks of the pickled classes are not run.
    """
    state = obj.state
    if not isinstance(state, Mapping) or "_parameters" not in state or "_modules" not in state:
        raise ValueError(f"pickled object {obj!r} at {prefix or '<root>'!r} is not an nn.Module")
    out: dict[str, torch.Tensor] = {}
    for name, value in state["_parameters"].items():
        if value is not None:
            out[prefix + name] = value.detach() if isinstance(value, torch.Tensor) else value
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for name, value in state.get("_buffers", {}).items():
        if value is not None and name not in non_persistent:
            out[prefix + name] = value
    for name, child in state["_modules"].items():
        if child is not None:
            out.update(_module_state_dict(child, f"{prefix}{name}."))
    return out


def _load_pickled_module_state(path: Path, error: pickle.UnpicklingError) -> dict[str, torch.Tensor]:
    """State of a pickled whole ``nn.Module`` that ``weights_only`` refused, read through inert stand-ins."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) format: its globals cannot be listed without unpickling
        names = None
    if names is None:
        raise ValueError(
            f"{path}: not loadable as weights only ({error}); it is not a zip-format torch checkpoint, "
            "so its Python objects cannot be inspected safely. Re-save it as a state_dict in a trusted "
            "environment: torch.save(model.state_dict(), path)"
        )
    if not names:
        raise ValueError(f"{path}: not loadable as weights only: {error}")
    logger.info("%s holds pickled Python objects, read through inert stand-ins: %s", path, ", ".join(names))
    with torch.serialization.safe_globals([(inert_class(name), name) for name in names]):
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(checkpoint, InertObject):
        raise ValueError(
            f"{path}: holds pickled objects ({', '.join(names)}) but its top level is a "
            f"{type(checkpoint).__name__}, neither a state_dict nor an nn.Module"
        )
    state = _module_state_dict(checkpoint)
    logger.info("%s: a pickled model, not a state_dict; took its %d state entries", path, len(state))
    return state


def load_audioclip_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an AudioCLIP checkpoint (CPU tensors, reference names like ``audio.fc.weight``).

    The file is read with ``torch.load(weights_only=True, map_location="cpu")``, which only rebuilds tensors
    and plain containers. The release file is a plain ``state_dict`` and loads that way. If instead the file
    holds a whole pickled model (``torch.save(model)``), unpickling it normally would import and run the
    classes named in the file; here every such class is replaced by an inert stand-in that only records the
    pickled attributes, and the tensors are collected from the module tree the way ``state_dict()`` would (see
    :func:`_module_state_dict`). No code from the file runs in either case.

    Args:
        path: the checkpoint, e.g. ``AudioCLIP-Full-Training.pt``.

    Returns:
        ``{name: tensor}``, all entries tensors.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is neither a ``{name: tensor}`` dict nor a pickled ``nn.Module``, or it cannot be
            read without running code (e.g. the legacy non-zip format with non-tensor objects).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AudioCLIP checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        checkpoint = _load_pickled_module_state(path, error)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f"{path}: expected a state_dict ({{name: tensor}}), got a {type(checkpoint).__name__}"
        )
    return require_tensors(path, checkpoint)


def convert_audioclip_checkpoint(
    path: str | os.PathLike, out_dir: str | os.PathLike, config: Mapping[str, Any] | None = None
) -> Path:
    """Convert an AudioCLIP ``.pt`` into a ``save_pretrained`` folder of its audio branch.

    Args:
        path: the AudioCLIP checkpoint (``AudioCLIP-Full-Training.pt``).
        out_dir: destination folder (created; ``config.json`` and the safetensors file in it are replaced;
            they appear complete or not at all).
        config: :class:`AudioCLIPAudioModel` keyword arguments; ``None`` = the AudioCLIP audio branch.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`; load it with ``AudioCLIPAudioModel.from_pretrained``.
    """
    state = convert_audioclip_audio_state_dict(load_audioclip_checkpoint(path), config)
    model = AudioCLIPAudioModel(**dict(config or {}))
    model.load_state_dict(state, strict=True)
    return save_converted(model, out_dir, path)
