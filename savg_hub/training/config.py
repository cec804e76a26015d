"""Reading and writing typed training configs (dataclasses) as JSON / YAML, shared by every trainer."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any


class TrainingConfigIO:
    """Mixin for dataclass training configs: ``to_dict``/``to_json``/``to_yaml``, ``load`` from a file, and the
    dataset path. Subclasses implement ``from_dict`` (validation of keys and values) and have a ``dataset`` field.
    """

    dataset: str | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a ``.yaml``/``.yml``/``.json`` config file.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file does not hold a mapping, or ``from_dict`` rejects it.
        """
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
        return cls.from_dict(data)

    def dataset_path(self) -> Path:
        """:attr:`dataset` with ``~`` and ``$VARS`` expanded."""
        if not self.dataset:
            raise ValueError("config.dataset is not set: give the SVGSA24 dataset folder (or --dataset DIR)")
        return Path(os.path.expandvars(os.path.expanduser(self.dataset)))
