"""Synthetic STARSS23-format scenes: the project's embedded default data and test data.

Rooms with people who talk or play instruments (and move), rendered as equirectangular 360° video, with
first-order ambisonics audio of the same scene and 100-ms metadata, written in exactly the STARSS23 release
layout so that the real SVGSA24 builder runs on them::

    from savg_hub.data.synthetic import SyntheticConfig, generate_starss23
    recordings = generate_starss23("synth/", 6, seed=0, config=SyntheticConfig(duration=20.0))

Modules: :mod:`.config` (:class:`SyntheticConfig`), :mod:`.scene` (scene description and sampling),
:mod:`.audio` (synthesis, FOA encoding, room), :mod:`.video` (ray-cast renderer, streaming H.264 writer),
:mod:`.generator` (files).
"""

from savg_hub.data.synthetic.config import SyntheticConfig
from savg_hub.data.synthetic.generator import (
    TEST_SPLIT,
    TRAIN_SPLIT,
    generate_recording,
    generate_starss23,
    plan_recordings,
    recording_paths,
)
from savg_hub.data.synthetic.scene import (
    INSTRUMENTS,
    TARGET_CLASSES,
    Event,
    Fixture,
    Person,
    Room,
    SceneSpec,
    Voice,
    anchor_local,
    sample_scene,
)

__all__ = [
    "INSTRUMENTS",
    "TARGET_CLASSES",
    "TEST_SPLIT",
    "TRAIN_SPLIT",
    "Event",
    "Fixture",
    "Person",
    "Room",
    "SceneSpec",
    "SyntheticConfig",
    "Voice",
    "anchor_local",
    "generate_recording",
    "generate_starss23",
    "plan_recordings",
    "recording_paths",
    "sample_scene",
]
