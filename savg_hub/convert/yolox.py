"""Convert an mmdetection YOLOX checkpoint (e.g. ``yolox_tiny_8x8_300e_coco_20211124_171234-b4047906.pth``).

The official SAVGBench evaluation loads the OpenMMLab model-zoo YOLOX-tiny COCO checkpoint with mmdetection
3.3. That file is a ``torch.save`` dict with ``state_dict`` (462 tensors in mmdetection module names, e.g.
``backbone.stem.conv.conv.weight``) and ``meta`` (training metadata: versions, config text, class names, ...).
This module renames every tensor to :class:`~savg_hub.models.yolox.YOLOXModel`, checks names and shapes, and
writes a ``save_pretrained`` folder (``config.json`` + safetensors). Nothing in the file is unpickled with
code execution (see :func:`load_mmdet_checkpoint`).

Example::

    from savg_hub.convert.yolox import convert_yolox_checkpoint
    convert_yolox_checkpoint("yolox_tiny_8x8_300e_coco_20211124_171234-b4047906.pth", "yolox-tiny/")

    from savg_hub.models.yolox import YOLOXModel
    model = YOLOXModel.from_pretrained("yolox-tiny/")

Name mapping (mmdetection -> this project; every ConvModule's ``bn`` becomes ``norm``):

* ``backbone.stem.conv.*`` -> ``backbone.stem.conv.*``
* ``backbone.stage{k}.0.*`` -> ``backbone.stages.{k-1}.downsample.*``; in the stage with the SPP bottleneck
  ``.1.*`` -> ``.spp.*`` and ``.2.*`` -> ``.csp.*``, elsewhere ``.1.*`` -> ``.csp.*``
* ``neck.*`` -> ``neck.*`` (same module names: reduce_layers, top_down_blocks, downsamples, bottom_up_blocks,
  out_convs)
* ``bbox_head.multi_level_{cls,reg}_convs.{l}.{i}.*`` -> ``head.{l}.{cls,reg}_convs.{i}.*``
* ``bbox_head.multi_level_conv_{cls,reg,obj}.{l}.*`` -> ``head.{l}.{cls,reg,obj}_pred.*``

Training checkpoints written with mmdetection's EMA hook also hold an ``ema_<name with _>`` copy of every
tensor; mmdetection's own (non-strict) loading ignores those, and so does
:func:`convert_yolox_mmdet_state_dict` by default.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from savg_hub.convert.common import inert_class, raise_conversion_problems, require_tensors, save_converted
from savg_hub.models.yolox import _P5_STAGES, YOLOXModel

logger = logging.getLogger(__name__)

_STEM = re.compile(r"backbone\.stem\.(.+)")
_STAGE = re.compile(r"backbone\.stage(\d+)\.(\d+)\.(.+)")
_NECK = re.compile(r"neck\.((?:reduce_layers|top_down_blocks|downsamples|bottom_up_blocks|out_convs)\..+)")
_HEAD_CONVS = re.compile(r"bbox_head\.multi_level_(cls|reg)_convs\.(\d+)\.(.+)")
_HEAD_PRED = re.compile(r"bbox_head\.multi_level_conv_(cls|reg|obj)\.(\d+)\.(weight|bias)")
# mmcv ConvModule's norm layer is called "bn"; ours is "norm".
_BN = re.compile(r"(^|\.)bn\.")

# Globals a weights file has no business referencing: a pickle naming one of these modules (or builtins) is
# refused as hostile instead of being loaded with an inert placeholder in its place.
_REFUSED_MODULES = frozenset(
    (
        "os posix nt sys subprocess shutil importlib runpy socket pickle marshal ctypes code codeop pty "
        "webbrowser io"
    ).split()
)
_REFUSED_BUILTINS = frozenset(
    (
        "eval exec compile open getattr setattr delattr __import__ globals locals vars input breakpoint exit "
        "quit"
    ).split()
)
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+) was not an allowed global")
_MAX_STAND_INS = 64


def _rename_bn(rest: str) -> str:
    return _BN.sub(lambda match: f"{match.group(1)}norm.", rest)


def mmdet_yolox_key_to_savg(key: str) -> str | None:
    """Name in :class:`YOLOXModel` of an mmdetection YOLOX (CSPDarknet-P5) state-dict key, else ``None``."""
    if match := _STEM.fullmatch(key):
        return f"backbone.stem.{_rename_bn(match.group(1))}"
    if match := _STAGE.fullmatch(key):
        stage, position, rest = int(match.group(1)), int(match.group(2)), match.group(3)
        if not 1 <= stage <= len(_P5_STAGES):
            return None
        has_spp = _P5_STAGES[stage - 1][4]
        parts = ["downsample", "spp", "csp"] if has_spp else ["downsample", "csp"]
        if position >= len(parts):
            return None
        return f"backbone.stages.{stage - 1}.{parts[position]}.{_rename_bn(rest)}"
    if match := _NECK.fullmatch(key):
        return f"neck.{_rename_bn(match.group(1))}"
    if match := _HEAD_CONVS.fullmatch(key):
        branch, level, rest = match.groups()
        return f"head.{level}.{branch}_convs.{_rename_bn(rest)}"
    if match := _HEAD_PRED.fullmatch(key):
        kind, level, leaf = match.groups()
        return f"head.{level}.{kind}_pred.{leaf}"
    return None


def _ema_name(key: str) -> str:
    return "ema_" + key.replace(".", "_")


def convert_yolox_mmdet_state_dict(
    mmdet_sd: Mapping[str, torch.Tensor | np.ndarray],
    config: Mapping[str, Any] | None = None,
    ignore_ema: bool = True,
) -> dict[str, torch.Tensor]:
    """Rename an mmdetection YOLOX ``state_dict`` to :class:`YOLOXModel` names, checking every key and shape.

    Args:
        mmdet_sd: ``{mmdetection name: tensor}`` (NumPy arrays accepted), e.g. the ``state_dict`` of the
            model-zoo ``.pth`` (462 entries for YOLOX-tiny, BatchNorm ``num_batches_tracked`` included).
        config: :class:`YOLOXModel` keyword arguments the weights are for; ``None`` = YOLOX-tiny.
        ignore_ema: drop the ``ema_*`` copies an mmdetection EMA hook leaves in training checkpoints (each
            must correspond to a regular key); mmdetection ignores them when it loads the checkpoint.

    Returns:
        ``{YOLOXModel name: tensor}`` covering every entry of ``YOLOXModel(**config).state_dict()``; float
        tensors keep their dtype, ``num_batches_tracked`` stays int64.

    Raises:
        ValueError: naming keys that are not YOLOX keys (or do not exist in a model of this config), model
            entries missing from ``mmdet_sd``, shape mismatches, or values that are not tensors.
    """
    with torch.device("meta"):  # names and shapes only, nothing allocated
        expected = {
            name: tuple(value.shape) for name, value in YOLOXModel(**dict(config or {})).state_dict().items()
        }
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    shape_mismatch: list[str] = []
    bad_values: list[str] = []
    ema_keys = [key for key in mmdet_sd if key.startswith("ema_")] if ignore_ema else []
    ema_targets = {_ema_name(key) for key in mmdet_sd if not key.startswith("ema_")}
    for key in ema_keys:
        if key not in ema_targets:
            unexpected.append(key)
    if ema_keys:
        logger.info("ignoring %d EMA copies (ema_*) as mmdetection does", len(ema_keys))
    for key, value in mmdet_sd.items():
        if ignore_ema and key.startswith("ema_"):
            continue
        name = mmdet_yolox_key_to_savg(key)
        if name is None or name not in expected:
            unexpected.append(key)
            continue
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            bad_values.append(f"{key} ({type(value).__name__})")
            continue
        if tuple(value.shape) != expected[name]:
            shape_mismatch.append(f"{key} {tuple(value.shape)} != {expected[name]}")
            continue
        converted[name] = value
    missing = [name for name in expected if name not in converted]
    raise_conversion_problems("YOLOX state dict", [
        ("unexpected keys", unexpected),
        ("model entries with no mmdetection key", missing),
        ("shape mismatches", shape_mismatch),
        ("values that are not tensors", bad_values),
    ])
    return converted


class MMDetCheckpoint(NamedTuple):
    """An mmdetection checkpoint read without running code from it.

    Attributes:
        state_dict: ``{mmdetection name: CPU tensor}``.
        meta: the ``meta`` dict (empty when absent); objects the weights-only unpickler does not allow are
            inert placeholders whose ``repr`` names the original class.
        replaced_globals: qualified names of the pickled globals that were replaced by placeholders.
    """

    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    replaced_globals: tuple[str, ...]


def _stand_in(qualified_name: str) -> tuple[type, str]:
    return inert_class(qualified_name), qualified_name


def _check_not_refused(path: Path, qualified_name: str) -> None:
    module, _, attribute = qualified_name.rpartition(".")
    root = module.split(".")[0]
    if root in _REFUSED_MODULES or (root in ("builtins", "__builtin__") and attribute in _REFUSED_BUILTINS):
        raise ValueError(
            f"{path}: refusing a checkpoint whose pickle references {qualified_name!r} "
            "(a weights file has no business calling it)"
        )


def _torch_load_restricted(path: Path) -> tuple[Any, tuple[str, ...]]:
    """``torch.load(weights_only=True)``, replacing non-allowlisted globals by inert placeholders.

    mmdetection's ``meta`` may hold objects (NumPy scalars/arrays, config or dataset classes) that the
    weights-only unpickler refuses. Rather than widen the allowlist to real classes, each refused name is
    registered (``torch.serialization.safe_globals``) as a fresh, empty placeholder class, so the unpickler
    "constructs" an inert object and no function or constructor named in the file ever runs. The refused names
    come from ``get_unsafe_globals_in_checkpoint`` for zip files, or one at a time from the unpickler's own
    error for the legacy (non-zip) format that mmdetection's ``publish_model`` writes. Names from modules such
    as ``os``/``builtins``/``subprocess`` make the file be refused outright.
    """
    stand_ins: dict[str, tuple[type, str]] = {}
    if zipfile.is_zipfile(path):
        for name in torch.serialization.get_unsafe_globals_in_checkpoint(path):
            _check_not_refused(path, name)
            stand_ins[name] = _stand_in(name)
    # legacy (non-zip) format: the names are discovered one at a time from the unpickler's errors below
    for _ in range(_MAX_STAND_INS + 1):
        try:
            with torch.serialization.safe_globals(list(stand_ins.values())):
                return torch.load(path, weights_only=True, map_location="cpu"), tuple(stand_ins)
        except pickle.UnpicklingError as error:
            match = _UNSUPPORTED_GLOBAL.search(str(error))
            if match is None or match.group(1) in stand_ins:
                raise ValueError(
                    f"{path}: the weights-only unpickler refused this file (see the chained error); "
                    "it is not loaded"
                ) from error
            _check_not_refused(path, match.group(1))
            stand_ins[match.group(1)] = _stand_in(match.group(1))
    raise ValueError(f"{path}: more than {_MAX_STAND_INS} non-tensor globals; not an mmdetection checkpoint?")


def load_mmdet_checkpoint(path: str | os.PathLike) -> MMDetCheckpoint:
    """Read an mmdetection ``.pth`` (``{"state_dict": ..., "meta": ...}`` or a bare state dict) safely.

    Loaded with ``torch.load(weights_only=True, map_location="cpu")``; objects in ``meta`` that the
    weights-only unpickler refuses are replaced by inert placeholders (see :func:`_torch_load_restricted`),
    never executed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a dict of tensors / a dict with a ``state_dict`` of tensors, or it
            references modules such as ``os`` or ``subprocess``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mmdetection checkpoint not found: {path}")
    checkpoint, replaced = _torch_load_restricted(path)
    if replaced:
        logger.info(
            "%s: %d pickled globals outside the weights replaced by placeholders: %s",
            path,
            len(replaced),
            ", ".join(replaced),
        )
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path}: expected a dict, got {type(checkpoint).__name__}")
    if "state_dict" in checkpoint:
        state, meta = checkpoint["state_dict"], checkpoint.get("meta") or {}
    else:
        state, meta = checkpoint, {}
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: 'state_dict' is a {type(state).__name__}, not a dict")
    require_tensors(path, state, "state_dict entries")
    return MMDetCheckpoint(dict(state), dict(meta) if isinstance(meta, Mapping) else {}, replaced)


def _class_names(meta: Mapping[str, Any]) -> list[str] | None:
    """Class names in an mmdetection ``meta`` (``CLASSES`` in 2.x, ``dataset_meta["classes"]`` in 3.x)."""
    classes = meta.get("CLASSES")
    dataset_meta = meta.get("dataset_meta")
    if classes is None and isinstance(dataset_meta, Mapping):
        classes = dataset_meta.get("classes")
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        return list(classes)
    return None


def load_yolox_from_mmdet_checkpoint(
    path: str | os.PathLike, config: Mapping[str, Any] | None = None
) -> YOLOXModel:
    """Build a :class:`YOLOXModel` (eval mode, CPU) from an mmdetection ``.pth``, in memory (no files).

    Raises:
        ValueError: as :func:`load_mmdet_checkpoint` and :func:`convert_yolox_mmdet_state_dict`, or when the
            checkpoint names its classes and class 0 is not ``person``.
    """
    checkpoint = load_mmdet_checkpoint(path)
    classes = _class_names(checkpoint.meta)
    if classes is not None and classes[0] != "person":
        raise ValueError(f"{path}: class 0 is {classes[0]!r}, not 'person'; not a COCO person detector")
    state = convert_yolox_mmdet_state_dict(checkpoint.state_dict, config)
    model = YOLOXModel(**dict(config or {}))
    model.load_state_dict(state, strict=True)
    return model.eval()


def convert_yolox_checkpoint(
    path: str | os.PathLike, out_dir: str | os.PathLike, config: Mapping[str, Any] | None = None
) -> Path:
    """Convert an mmdetection YOLOX ``.pth`` into a ``save_pretrained`` folder (config.json + safetensors).

    Args:
        path: the mmdetection checkpoint (e.g. ``yolox_tiny_8x8_300e_coco_20211124_171234-b4047906.pth``).
        out_dir: destination folder (created; files in it with the same names are replaced, each atomically).
        config: :class:`YOLOXModel` keyword arguments; ``None`` = YOLOX-tiny.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`; load it with ``YOLOXModel.from_pretrained(out_dir)``.
    """
    model = load_yolox_from_mmdet_checkpoint(path, config)
    return save_converted(model, out_dir, path)
