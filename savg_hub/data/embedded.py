"""The embedded default dataset: synthetic STARSS23-format scenes run through the real SVGSA24 builder.

Nothing is downloaded: the first use generates the recordings, builds the dataset into the user cache
(``$SAVG_HOME``, default ``~/.cache/savg_hub``) and later uses reuse it. The build is deterministic, keyed by a
fingerprint of its settings, and guarded by a file lock so concurrent first uses do not collide.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from savg_hub.utils.files import savg_home


@dataclass(frozen=True)
class EmbeddedDatasetSpec:
    """How an embedded synthetic set is made.

    Args:
        name: folder name prefix.
        num_recordings: synthetic recordings generated.
        duration: seconds per recording.
        width: equirect width of the synthetic 360° video.
        height: equirect height.
        seed: generator seed.
        builder: :class:`~savg_hub.data.builder.BuilderConfig` overrides.
    """

    name: str
    num_recordings: int
    duration: float
    width: int = 960
    height: int = 480
    seed: int = 0
    builder: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


EMBEDDED_PREVIEW = EmbeddedDatasetSpec(
    name="svgsa24-synthetic-preview",
    num_recordings=3,
    duration=16.0,
    builder={"dev_window_hop": 2.0, "dev_yaw_step": 20.0, "eval_window_hop": 2.0, "eval_yaw_step": 20.0},
)
"""A small set for the app's dataset view (same builder, sparser windows and angles than the paper's recipe)."""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def embedded_dataset_path(spec: EmbeddedDatasetSpec = EMBEDDED_PREVIEW, root: str | os.PathLike | None = None) -> Path:
    """Where ``spec``'s dataset folder lives (it may not be built yet)."""
    base = Path(root) if root is not None else savg_home() / "datasets"
    return base / f"{spec.name}-{spec.fingerprint()}"


def ensure_embedded_dataset(
    spec: EmbeddedDatasetSpec = EMBEDDED_PREVIEW, root: str | os.PathLike | None = None, *, progress: bool = True
) -> Path:
    """Return the folder of ``spec``'s dataset, generating and building it first if needed."""
    from savg_hub.data.builder import BuilderConfig, build_svgsa24
    from savg_hub.data.starss23 import find_recordings
    from savg_hub.data.synthetic import SyntheticConfig, generate_starss23

    out = embedded_dataset_path(spec, root)
    if (out / "README.md").is_file():
        return out
    with _locked(out.with_name(out.name + ".lock")):
        if (out / "README.md").is_file():
            return out
        recordings_root = out.with_name(out.name + ".recordings")
        config = SyntheticConfig(duration=spec.duration, video_width=spec.width, video_height=spec.height)
        generate_starss23(recordings_root, spec.num_recordings, seed=spec.seed, config=config, progress=progress)
        build_svgsa24(find_recordings(recordings_root), out, BuilderConfig(**spec.builder),
                      name=spec.name, source_dataset="synthetic STARSS23-format", restart=True, progress=progress,
                      provenance={"embedded_spec": asdict(spec)})
        shutil.rmtree(recordings_root, ignore_errors=True)
    return out
