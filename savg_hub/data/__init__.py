"""Data layer: the STARSS23 reader, synthetic STARSS23-format scenes, the SVGSA24 builder and the HF dataset.

Names are imported lazily so that ``import savg_hub.data`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Recording": "savg_hub.data.starss23",
    "find_recordings": "savg_hub.data.starss23",
    "read_metadata": "savg_hub.data.starss23",
    "write_metadata": "savg_hub.data.starss23",
    "BuilderConfig": "savg_hub.data.builder",
    "build_svgsa24": "savg_hub.data.builder",
    "DatasetFolder": "savg_hub.data.hf_dataset",
    "DatasetInfo": "savg_hub.data.hf_dataset",
    "example_to_clip": "savg_hub.data.hf_dataset",
    "load_svgsa24": "savg_hub.data.hf_dataset",
    "push_to_hub": "savg_hub.data.hf_dataset",
    "import_svgsa24": "savg_hub.data.importer",
    "render_dataset_card": "savg_hub.data.card",
    "ensure_embedded_dataset": "savg_hub.data.embedded",
    "SyntheticConfig": "savg_hub.data.synthetic",
    "generate_starss23": "savg_hub.data.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'savg_hub.data' has no attribute {name!r}")
