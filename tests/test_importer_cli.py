"""The official-release importer, the `savg` dataset commands and the cache-free dataset-folder reader."""

from __future__ import annotations

import numpy as np
import pytest
from starss_factory import Event, make_recording

from savg_hub.cli.main import main
from savg_hub.data.hf_dataset import DatasetFolder, example_to_clip, load_svgsa24
from savg_hub.data.importer import import_svgsa24, metadata_path_for
from savg_hub.data.visualize import draw_labels, label_frame_for_video_frame
from savg_hub.media import Clip, MediaError, read_clip, write_clip


def _official_clip(seed: int) -> Clip:
    rng = np.random.default_rng(seed)
    video = np.zeros((20, 256, 256, 3), np.uint8)
    video[:, 56:200] = rng.integers(30, 200, (1, 144, 256, 3))
    audio = (rng.standard_normal((2, 80000)) * 0.05).astype(np.float32)
    return Clip(video, audio, 4.0, 16000)


def _make_release(root):
    # the official layout: video_<split>/ clips (MP3-in-MP4, as moviepy writes) + metadata_<split>/ label CSVs
    write_clip(root / "video_dev" / "fold3_room21_mix001_deg010_start0100.mp4", _official_clip(0), lossless=None,
               audio_codec="mp3")
    (root / "metadata_dev").mkdir(parents=True)
    (root / "metadata_dev" / "fold3_room21_mix001_deg010_start0100.csv").write_text("0,0,120,60\n1,0,121,61\n2,9,30,70\n")
    write_clip(root / "video_eval" / "fold4_room1_mix002_deg200_start0040.mp4", _official_clip(1), lossless=None)
    (root / "metadata_eval").mkdir(parents=True)
    (root / "metadata_eval" / "fold4_room1_mix002_deg200_start0040.csv").write_text("5,1,200,10\n")


def test_import_official_release(tmp_path):
    root = tmp_path / "release"
    _make_release(root)
    assert metadata_path_for(root / "video_dev" / "a.mp4", root) == root / "metadata_dev" / "a.csv"
    info = import_svgsa24(root, tmp_path / "out", progress=False)
    assert info.splits["dev"]["num_clips"] == 1 and info.splits["eval"]["num_clips"] == 1
    ds = load_svgsa24(str(tmp_path / "out"))
    dev = ds["dev"][0]
    assert dev["labels"]["frame"] == [0, 1, 2]
    assert dev["labels"]["class"] == [0, 0, 1] and dev["labels"]["starss23_class"] == [0, 0, 9]
    assert dev["labels"]["y"] == [116.0, 117.0, 126.0]  # picture row + 56
    assert dev["source_dataset"] == "SVGSA24 official release"
    clip = example_to_clip(dev)
    assert clip.audio.shape == (2, 80000)
    raw = (root / "video_dev" / "fold3_room21_mix001_deg010_start0100.mp4").read_bytes()
    assert DatasetFolder(tmp_path / "out").row("dev", 0)["video"]["bytes"] == raw  # stored unchanged
    assert "official" in (tmp_path / "out" / "README.md").read_text()


def test_import_refuses_bad_clips_and_writes_nothing(tmp_path):
    root = tmp_path / "release"
    _make_release(root)
    (root / "metadata_eval" / "fold4_room1_mix002_deg200_start0040.csv").unlink()
    with pytest.raises(ValueError, match="no label CSV"):
        import_svgsa24(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    (root / "metadata_eval" / "fold4_room1_mix002_deg200_start0040.csv").write_text("5,1,200,10\n")
    bad = _official_clip(2)
    bad.video = bad.video[:10]
    write_clip(root / "video_eval" / "short.mp4", bad, spec=None, lossless=None)
    (root / "metadata_eval" / "short.csv").write_text("")
    with pytest.raises(MediaError, match="10 frames"):
        import_svgsa24(root, tmp_path / "out", progress=False)


def test_cli_build_and_import(tmp_path, capsys):
    src = tmp_path / "src"
    make_recording(src, "dev-train-x", "fold3_room1_mix001", [Event(0, 6, 0, 20.0)], width=480, height=240)
    make_recording(src, "dev-test-x", "fold4_room1_mix001", [Event(0, 6, 9, 0.0)], width=480, height=240)
    out = tmp_path / "ds"
    code = main(["build-dataset", "--starss23", str(src), "--out", str(out), "--no-progress", "--workers", "1",
                 "--dev-yaw-step", "40", "--eval-yaw-step", "40"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "dev:" in printed and "eval:" in printed and "offscreen" in printed
    ds = load_svgsa24(f"{out}:eval")
    assert len(ds) > 0
    # an existing output is refused with a clear message and exit code 2
    assert main(["build-dataset", "--starss23", str(src), "--out", str(out), "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    release = tmp_path / "release"
    _make_release(release)
    assert main(["import-svgsa24", str(release), "--out", str(tmp_path / "imp"), "--no-progress"]) == 0
    # a split as clip files: the stored mp4 and flac bytes, which read back as the same clips
    assert main(["export-clips", f"{out}:eval", "--out", str(tmp_path / "clips"), "--limit", "2",
                 "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    mp4s = sorted((tmp_path / "clips").glob("*.mp4"))
    assert len(mp4s) == min(2, len(ds)) and all(p.with_suffix(".flac").is_file() for p in mp4s)
    folder = DatasetFolder(out)
    first = example_to_clip(folder.row("eval", 0))
    exported = read_clip(tmp_path / "clips" / f"{first.clip_id}.mp4")
    assert np.array_equal(exported.audio, first.audio) and np.array_equal(exported.video, first.video)
    assert main(["export-clips", str(out), "--out", str(tmp_path / "x"), "--limit", "0"]) == 2


def test_dataset_folder_reader_and_overlay(tmp_path):
    src = tmp_path / "src"
    make_recording(src, "dev-train-x", "fold3_room1_mix001", [Event(0, 6, 9, 0.0)], width=480, height=240)
    main(["build-dataset", "--starss23", str(src), "--out", str(tmp_path / "ds"), "--no-progress",
          "--dev-yaw-step", "90"])
    folder = DatasetFolder(tmp_path / "ds")
    assert folder.splits == ["dev"] and folder.num_rows("dev") == len(folder.metadata("dev")) > 0
    row = folder.row("dev", 0)
    clip = example_to_clip(row)
    drawn = draw_labels(clip.video, row["labels"])
    assert drawn.shape == clip.video.shape and (drawn != clip.video).any()
    assert [label_frame_for_video_frame(k, 4.0) for k in range(5)] == [0, 2, 5, 7, 10]
    with pytest.raises(ValueError, match="split 'eval'"):
        folder.row("eval", 0)
