"""Synthetic-set person detector: ground-truth boxes, offline Ultralytics training, the shipped embedded model."""

from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pytest

from savg_hub.data.builder import BuilderConfig
from savg_hub.data.synthetic import SyntheticConfig, sample_scene
from savg_hub.data.synthetic.boxes import PersonBoxRenderer, clip_frame_time, person_boxes
from savg_hub.data.synthetic.video import EquirectRenderer
from savg_hub.training.detector import (
    PersonDataConfig,
    PersonDetectorConfig,
    PersonModelConfig,
    PersonTrainConfig,
    box_iou,
    build_person_dataset,
    detection_scores,
    label_hit_fraction,
    render_scene_frames,
    train_person_detector,
)

ultralytics = pytest.importorskip("ultralytics")

CONFIG = SyntheticConfig(duration=12.0)
BUILDER = BuilderConfig()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (Ultralytics must not download anything)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _talking_moment(scene):
    """A (person, time) in the middle of a speech turn of a person in the room."""
    for event in scene.events:
        if event.emitter == "person" and event.anchor == "mouth" and event.cls in (0, 1) and event.duration > 1:
            return event, (event.start + event.end) / 2
    return None, None


def test_gt_boxes_cover_the_rendered_people_and_the_mouth_label():
    for seed in range(20):
        scene = sample_scene(seed, CONFIG)
        event, time_s = _talking_moment(scene)
        if event is not None:
            break
    assert event is not None, "no talking person in 20 scenes"
    time_s = round(time_s * 10 - 0.5) / 10 + 0.05  # a metadata frame centre: where the label is defined
    person = scene.people[event.index]
    view = BUILDER.view(float(person.polar(time_s)[0]) + 7.0)
    renderer = PersonBoxRenderer(scene, CONFIG.video_width, CONFIG.video_height)
    equirect, _ = renderer.render(time_s)
    frame = view.letterbox(renderer.perspective(view)(equirect))
    empty = EquirectRenderer(dataclasses.replace(scene, people=()), CONFIG.video_width, CONFIG.video_height)
    background = view.letterbox(renderer.perspective(view)(empty.render(time_s)))
    person_pixels = np.abs(frame.astype(int) - background.astype(int)).max(axis=-1) > 12

    boxes = renderer.boxes(time_s, view)
    assert boxes == person_boxes(scene, view, time_s)
    assert event.index in [b.index for b in boxes]
    covered = np.zeros_like(person_pixels)
    for box in boxes:
        assert 0 <= box.x0 < box.x1 <= 256 and 56 <= box.y0 < box.y1 <= 200
        covered[int(box.y0) - 1 : int(box.y1) + 1, max(0, int(box.x0) - 1) : int(box.x1) + 1] = True
        inside = person_pixels[int(box.y0) : int(box.y1), int(box.x0) : int(box.x1)]
        assert inside.sum() >= 0.5 * box.pixels  # the box is the person, not the room
        # tight: the person reaches each edge of its box (within a pixel)
        rows, cols = np.nonzero(inside)
        assert rows.min() <= 1 and rows.max() >= inside.shape[0] - 2
        assert cols.min() <= 1 and cols.max() >= inside.shape[1] - 2
    assert not (person_pixels & ~covered).any(), "person pixels outside every box"

    # the dataset's label of the talker (metadata: integer degrees at the frame centre) lies inside its box
    az, el, _ = scene.directions(event, np.array([time_s]))
    x, y, on_screen = view.project(np.round(az), np.round(el))
    talker = next(b for b in boxes if b.index == event.index)
    assert on_screen[0]
    assert talker.x0 - 1 <= x[0] <= talker.x1 + 1 and talker.y0 - 1 <= y[0] <= talker.y1 + 1


def test_clip_frame_time_follows_the_builder():
    from fractions import Fraction

    rate = Fraction(30000, 1001)
    assert clip_frame_time(Fraction(5, 2), 0, rate) == pytest.approx(float(75 / rate))
    assert clip_frame_time(0, 3, rate) == pytest.approx(float(22 / rate))  # floor(0.75 * 29.97 + 0.5) = 22
    with pytest.raises(ValueError, match="frame"):
        clip_frame_time(0, -1, rate)


def test_scores_and_label_hits():
    gt = [np.array([[10, 60, 40, 150]], np.float32), np.zeros((0, 4), np.float32)]
    pred = [np.array([[11, 61, 41, 149, 0.9], [100, 60, 130, 150, 0.5]], np.float32),
            np.array([[0, 0, 5, 5, 0.2]], np.float32)]
    scores = detection_scores(pred, gt)
    assert scores["recall"] == 1.0 and scores["precision"] == 0.5 and scores["ap50"] == pytest.approx(1.0)
    assert box_iou(gt[0], gt[0])[0, 0] == pytest.approx(1.0)
    frames = [np.zeros((0, 5), np.float32)] * 20
    frames[4] = np.array([[100, 60, 120, 150, 0.9]], np.float32)
    # label frame 12 -> video frame round(4.8) = 5; frame 4 is within ±1; x = 150 is 30 px from the box
    labels = {"frame": [12, 12, 40], "x": [150.7, 170.0, 110.0]}
    result = label_hit_fraction([frames], [labels])
    assert (result["hits"], result["labels"]) == (1, 3)


def test_tiny_training_run_offline_loads_as_detector(tmp_path, no_network):
    from savg_hub.evaluation.detectors import UltralyticsDetector

    data = PersonDataConfig(seed=3, train_scenes=2, val_scenes=1, frames_per_scene=4, duration=8.0,
                            equirect_width=480)
    data_yaml, held_out, counts = build_person_dataset(tmp_path / "data", data)
    assert counts["train_images"] == 8 and counts["val_images"] == 4 and counts["train_boxes"] > 0
    assert held_out.frames.shape == (4, 256, 256, 3)
    # the black bars, as in dataset frames (H.264 leaves a few levels of ringing next to the picture)
    assert held_out.frames[:, :52].max() <= 16 and held_out.frames[:, 204:].max() <= 16
    config = PersonDetectorConfig(data=data, model=PersonModelConfig(width=0.0625, depth=0.33),
                                  train=PersonTrainConfig(epochs=1, batch=4, mosaic=0.0, close_mosaic=0))
    best = train_person_detector(data_yaml, tmp_path / "runs", config)
    assert best.is_file() and str(best).startswith(str(tmp_path))
    detector = UltralyticsDetector(best, imgsz=256, conf=0.001)
    boxes = detector.detect(held_out.frames)
    assert len(boxes) == 4 and all(b.dtype == np.float32 and b.shape[1:] == (5,) for b in boxes)
    assert PersonDetectorConfig.from_dict(config.to_dict()) == config


def test_embedded_model_loads_offline_and_finds_the_person(tmp_path, monkeypatch, no_network):
    from savg_hub.evaluation.detectors import default_detector_weights, load_detector
    from savg_hub.weights import ASSETS, REGISTRY

    monkeypatch.setenv("SAVG_HOME", str(tmp_path))  # an empty cache: no imported official weights
    entry = REGISTRY["yolo-person-synthetic"]
    assert entry.kind == "ultralytics" and "AGPL" in entry.licence
    path = ASSETS / entry.embedded
    assert path.is_file() and path.stat().st_size < 10e6
    assert default_detector_weights("ultralytics") == path

    detector = load_detector("ultralytics:yolo-person-synthetic")
    assert detector.predict_args["imgsz"] == 256
    assert load_detector("default").name == detector.name

    scene = sample_scene(987_654, SyntheticConfig(duration=30.0))
    views = [(3.0, float(p.polar(3.0)[0])) for p in scene.people]
    frames, gt = render_scene_frames(scene, views)
    matched = 0
    for frame_boxes, found in zip(gt, detector.detect(frames)):
        assert len(frame_boxes) >= 1
        centre = min(frame_boxes, key=lambda b: abs((b.x0 + b.x1) / 2 - 128))
        ious = box_iou(np.array([centre.xyxy]), found[:, :4])
        matched += bool(ious.size and ious.max() > 0.5)
    assert matched == len(views), f"the person in the middle found in {matched}/{len(views)} frames"


def test_detection_keeps_the_callers_torch_thread_count():
    """Ultralytics resets torch's threads on CPU device selection; the detector restores them."""
    import torch

    from savg_hub.evaluation.detectors import load_detector

    detector = load_detector("default")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        detector.detect(np.zeros((2, 256, 256, 3), np.uint8))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
