"""``savg generate`` on a tiny saved pipeline folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from savg_hub.cli.main import main
from savg_hub.media.clip import ClipSpec, read_clip
from savg_hub.pipelines import SAVGBenchJointPipeline
from savg_hub.schedulers import AdaptiveDPMSolverScheduler

from test_pipelines import FPS, SAMPLE_RATE, get_dummy_components  # noqa: E402

SPEC = ClipSpec(num_frames=4, height=32, width=32, fps=FPS, sample_rate=SAMPLE_RATE, num_samples=1024,
                pad_top=0, pad_bottom=0)


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe") / "savgbench-tiny"
    SAVGBenchJointPipeline(**get_dummy_components()).save_pretrained(folder)
    return folder


def _generate(folder, out, *extra: str) -> int:
    return main(["generate", "--model", str(folder), "--num-clips", "3", "--seed", "5", "--steps", "1",
                 "--sr-steps", "1", "--batch-size", "2", "--out", str(out), "--device", "cpu", "--no-progress",
                 *extra])


def test_generate_writes_clips_that_read_clip_accepts(pipeline_folder, tmp_path, capsys) -> None:
    out = tmp_path / "generated"
    assert _generate(pipeline_folder, out) == 0
    clips = sorted(out.glob("*.mp4"))
    assert [p.name for p in clips] == ["clip_00000.mp4", "clip_00001.mp4", "clip_00002.mp4"]
    for path in clips:
        clip = read_clip(path, SPEC)
        assert clip.audio.shape == (2, 1024) and clip.meta["audio_codec"] == "flac"
    manifest = json.loads((out / "generation.json").read_text())
    assert manifest["seeds"] == [5, 6, 7] and manifest["pipeline"] == "SAVGBenchJointPipeline"
    assert "3/3 clips" in capsys.readouterr().out
    # the same command again refuses to overwrite; the same seeds in another folder reproduce the clips
    assert _generate(pipeline_folder, out) == 2
    first = read_clip(clips[0], SPEC).audio
    again = tmp_path / "again"
    assert _generate(pipeline_folder, again) == 0
    np.testing.assert_array_equal(read_clip(again / "clip_00000.mp4", SPEC).audio, first)


def test_generate_with_the_adaptive_sampler_and_clear_errors(tmp_path, capsys, monkeypatch) -> None:
    # a pipeline saved with the official adaptive scheduler (loose tolerances keep the random tiny model fast)
    components = {**get_dummy_components(), "scheduler": AdaptiveDPMSolverScheduler(atol=0.5, rtol=0.5, h_init=2.0)}
    folder = tmp_path / "adaptive"
    SAVGBenchJointPipeline(**components).save_pretrained(folder)
    out = tmp_path / "official"
    assert main(["generate", "--model", str(folder), "--num-clips", "1", "--sr-steps", "1", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    assert json.loads((out / "generation.json").read_text())["sampler"] == "AdaptiveDPMSolverScheduler"
    read_clip(out / "clip_00000.mp4", SPEC)
    pipeline_folder = folder
    capsys.readouterr()
    # no --model and no embedded pipeline: the error names what to pass
    monkeypatch.setattr("savg_hub.pipelines.loading.ASSETS", tmp_path / "no-assets")
    assert main(["generate", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no embedded default pipeline" in err and "--model" in err and "savg weights import" in err
    assert main(["generate", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "y")]) == 2
    assert "neither a saved pipeline folder" in capsys.readouterr().err
    assert main(["generate", "--model", str(pipeline_folder), "--num-clips", "0", "--out", str(tmp_path)]) == 2
    assert "--num-clips must be at least 1" in capsys.readouterr().err


def test_generate_without_model_uses_the_embedded_pipeline_and_evaluate_reads_its_clips(tmp_path, monkeypatch,
                                                                                        capsys) -> None:
    """The shipped savg_hub/assets/weights/savgbench-joint-synthetic: `savg generate` with no --model writes
    SVGSA24-shape clips (20 x 256 x 256 at 4 fps, stereo 80 000 at 16 kHz) that `savg evaluate` scores."""
    import torch

    from savg_hub.pipelines.loading import EMBEDDED_PIPELINE, embedded_pipeline_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    folder = embedded_pipeline_path()
    assert folder is not None and folder.name == EMBEDDED_PIPELINE, "the embedded pipeline is not installed"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "generated"
        assert main(["generate", "--num-clips", "1", "--seed", "0", "--steps", "2", "--sr-steps", "1",
                     "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
        manifest = json.loads((out / "generation.json").read_text())
        assert manifest["model"] == str(folder) and manifest["pipeline"] == "SAVGBenchJointPipeline"
        clip = read_clip(out / "clip_00000.mp4")  # the SVGSA24 contract
        assert clip.video.shape == (20, 256, 256, 3) and clip.audio.shape == (2, 80_000)
        results = tmp_path / "scores"
        assert main(["evaluate", str(out), "--metrics", "spatial", "--no-calibration", "--out", str(results),
                     "--threads", "1"]) == 0
        section = json.loads((results / "results.json").read_text())["sections"]["spatial_av_align"]
        assert section["num_clips"] == 1
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
