"""Rebuild the deterministic "formula" state dicts of the official parity fixtures (fixtures/README.md §1).

A tensor named ``k`` with ``n`` elements gets ``base[i] = sin(0.7 i + 6.283 s)``, ``s = (crc32(k) mod 1000)/1000``,
then a value by kind (``weight_kinds.json``) and gain ``a`` (``formula_params.json``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

_FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16}


def _base(name: str, n: int) -> np.ndarray:
    s = (zlib.crc32(name.encode("utf-8")) % 1000) / 1000.0
    return np.sin(0.7 * np.arange(n, dtype=np.float64) + 6.283 * s)


def _weight_gain(params: dict) -> Callable[[str], float]:
    a = params.get("a_weight", 1.0)
    if isinstance(a, (int, float)):
        return lambda name: float(a)
    # SELD: {"keys containing '_conv_block'": 3.0, "all other weight tensors": 0.5}
    rules = []
    default = None
    for rule, value in a.items():
        if rule.startswith("keys containing"):
            rules.append((rule.split("'")[1], float(value)))
        else:
            default = float(value)
    def gain(name: str) -> float:
        for needle, value in rules:
            if needle in name:
                return value
        if default is None:
            raise KeyError(f"no weight gain rule for {name}")
        return default
    return gain


def formula_tensor(name: str, shape: list[int], kind: str, gain: float) -> np.ndarray | None:
    """The formula value of one tensor as float64, or ``None`` for kinds kept as constructed."""
    n = int(np.prod(shape)) if shape else 1
    base = _base(name, n)
    if kind == "weight":
        fan_in = n / shape[0] if len(shape) >= 2 else 1.0
        value = base * gain / np.sqrt(fan_in)
    elif kind == "bias":
        value = base * 0.1
    elif kind == "norm_weight":
        value = 1.0 + 0.1 * base
    elif kind in ("norm_bias", "bn_running_mean"):
        value = 0.1 * base
    elif kind == "bn_running_var":
        value = 1.0 + 0.5 * base**2
    elif kind == "other":
        value = 0.5 * base
    elif kind == "fbsp_m":
        value = 0.01 * base
    elif kind == "fbsp_fb":
        value = 1.0 + 0.1 * base
    elif kind == "fbsp_fc":
        value = np.arange(n, dtype=np.float64) + 0.5 * base
    elif kind in ("int_buffer", "keep"):
        return None
    else:
        raise ValueError(f"unknown weight kind {kind!r} for {name}")
    return value.reshape(shape)


def formula_state_dict(model_dir: str | Path, keys_dir: str | Path | None = None) -> dict[str, np.ndarray | None]:
    """``{name: array}`` in reference order; ``None`` for tensors kept as the reference constructs them.

    Args:
        model_dir: folder with ``weight_kinds.json`` and ``formula_params.json``.
        keys_dir: folder with ``keys.json`` (defaults to ``model_dir``; AudioCLIP keeps it one level up).
    """
    model_dir = Path(model_dir)
    keys_dir = Path(keys_dir) if keys_dir is not None else model_dir
    keys = json.loads((keys_dir / "keys.json").read_text())
    kinds = dict(json.loads((model_dir / "weight_kinds.json").read_text()))
    params = json.loads((model_dir / "formula_params.json").read_text())
    gain = _weight_gain(params)
    out: dict[str, np.ndarray | None] = {}
    for name, shape, dtype in keys:
        kind = kinds[name]
        value = formula_tensor(name, list(shape), kind, gain(name) if kind == "weight" else 1.0)
        if value is None:
            out[name] = np.zeros(shape, dtype=np.int64) if dtype == "int64" else None
        else:
            out[name] = value.astype(_FLOAT_DTYPES[dtype])
    return out


def check_checksums(state: dict[str, np.ndarray | None], model_dir: str | Path, atol: float = 1e-6) -> list[str]:
    """Names whose regenerated values disagree with ``weight_checksums.json`` (empty list when all agree)."""
    bad = []
    for name, total, first, last in json.loads((Path(model_dir) / "weight_checksums.json").read_text()):
        value = state.get(name)
        if value is None or value.size == 0:
            continue
        flat = value.reshape(-1)
        if (abs(float(flat.astype(np.float64).sum()) - total) > atol * max(1.0, abs(total))
                or (first is not None and float(flat[0]) != first) or (last is not None and float(flat[-1]) != last)):
            bad.append(name)
    return bad
