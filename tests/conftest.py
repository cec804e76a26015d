"""Shared test setup: offline settings, fixture locations."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))

REPO_ROOT = Path(__file__).resolve().parents[1]


def _find_official_fixtures() -> Path | None:
    candidates = [os.environ.get("SAVG_FIXTURES_DIR"), REPO_ROOT.parent / "shared" / "fixtures",
                  REPO_ROOT / "shared" / "fixtures"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "README.md").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def official_fixtures() -> Path:
    """Folder of the parity fixtures computed by the official SAVGBench code (``../shared/fixtures``).

    Skips when absent, unless ``SAVG_REQUIRE_FIXTURES=1`` makes that a failure.
    """
    found = _find_official_fixtures()
    if found is None:
        message = "official parity fixtures not found (set SAVG_FIXTURES_DIR or place them at ../shared/fixtures)"
        if os.environ.get("SAVG_REQUIRE_FIXTURES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found
