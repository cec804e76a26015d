"""The app's Generate tab: the view's model choices, input checks and determinism on a tiny saved pipeline, and the
tab in headless Chromium (pick a saved model, set the seed, generate, see the clip, its score and the overlay).

Pipelines are real components at tiny sizes, saved with ``save_pretrained`` and loaded through the app's loading
path. The browser test's pipeline makes SVGSA24-size clips (20 frames of 256x256, stereo 80 000 samples at 16 kHz)
so that they can be scored; the unit tests' one makes 4 frames of 32x32, which the view declines to score.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_app_score_browser import (  # noqa: F401  (one_torch_thread: autouse; tiny_dataset: fixture)
    CHROMIUM,
    app_page,
    loaded_video,
    one_torch_thread,
    tiny_dataset,
    tiny_evaluator,
)
from test_pipelines import get_dummy_components

from savg_hub.app import build_demo
from savg_hub.app.generate import GenerateView, parse_seed, parse_steps
from savg_hub.app.score import ScoreView
from savg_hub.models.mm_diffusion_unet import CoupledUNetModel
from savg_hub.pipelines import (
    SAVGBenchJointPipeline,
    StereoMMDiffusionPipeline,
    loading,
    stereo_mm_diffusion_dpmsolver_scheduler,
)

# SVGSA24-size base stage at tiny width: 8 channels, no video self-attention (~5 s per step on one thread)
CONTRACT_UNET = dict(
    video_size=(20, 3, 256, 256), audio_size=(2, 80000), model_channels=8, channel_mult=(1, 1, 1, 1),
    num_res_blocks=1, video_attention_resolutions=(), audio_attention_resolutions=(), cross_attention_resolutions=(8,),
    cross_attention_windows=(1,), num_heads=1, num_head_channels=-1, norm_num_groups=8,
)


@pytest.fixture(scope="module")
def small_pipeline(tmp_path_factory) -> Path:
    """A tiny joint (base + SR) pipeline folder: 4 frames of 32x32, 1024 stereo samples at 8 kHz."""
    folder = tmp_path_factory.mktemp("generate") / "tiny-joint"
    SAVGBenchJointPipeline(**get_dummy_components()).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def contract_pipeline(tmp_path_factory) -> Path:
    """A tiny base pipeline folder whose clips meet the SVGSA24 contract."""
    torch.manual_seed(0)
    unet = CoupledUNetModel(**CONTRACT_UNET).eval()
    folder = tmp_path_factory.mktemp("generate") / "tiny-svgsa24"
    StereoMMDiffusionPipeline(unet=unet, scheduler=stereo_mm_diffusion_dpmsolver_scheduler()).save_pretrained(
        str(folder))
    return folder


@pytest.fixture
def no_embedded(monkeypatch, tmp_path):
    """No embedded pipeline and an empty weights cache, whatever is installed on this machine."""
    monkeypatch.setattr(loading, "embedded_pipeline_path", lambda: None)
    monkeypatch.setenv("SAVG_HOME", str(tmp_path / "savg-home"))


def test_model_choices_with_and_without_embedded(no_embedded, small_pipeline, tmp_path, monkeypatch):
    view = GenerateView(tmp_path / "none")
    assert view.model_choices() == []
    assert "Generation unavailable" in view.status() and "--model" in view.status()
    mp4, info, text, overlay = view.generate(None, 0, 1)
    assert mp4 is None and overlay is None and "not installed" in info["error"] and "Cannot generate" in text

    view = GenerateView(tmp_path / "extra", models=[str(small_pipeline)])
    assert [spec for _, spec in view.model_choices()] == [str(small_pipeline)]
    assert "not installed yet" in view.status()

    monkeypatch.setattr(loading, "embedded_pipeline_path", lambda: small_pipeline)
    choices = view.model_choices()
    assert choices[0][0].startswith("embedded:") and [s for _, s in choices] == [str(small_pipeline)]  # no duplicate
    for name in ("stereo-mm-diffusion-savgbench", "sr-savgbench"):  # official weights imported into the cache
        (tmp_path / "savg-home" / "weights" / name).mkdir(parents=True)
        (tmp_path / "savg-home" / "weights" / name / "config.json").write_text("{}")
    assert view.model_choices()[-1][1] == loading.OFFICIAL_PIPELINE


def test_bad_input_and_missing_model_name_the_value(no_embedded, small_pipeline, tmp_path):
    view = GenerateView(tmp_path / "work", models=[str(small_pipeline)])
    spec = str(small_pipeline)
    for seed in (-1, 1.5, "abc", True, 2**64):
        _, info, text, _ = view.generate(spec, seed, 1)
        assert "seed" in info["error"] and repr(seed) in info["error"] and "Cannot generate" in text
    for steps in (0, 1001, 2.5, "many"):
        _, info, _, _ = view.generate(spec, 0, steps)
        assert "steps" in info["error"] and repr(steps) in info["error"]
    assert "bogus" in view.generate(spec, 0, 1, "bogus")[1]["error"]
    assert "SR steps must be an integer" in view.generate(spec, 0, 1, "default", 0)[1]["error"]
    missing = str(tmp_path / "no-such-model")
    assert "no-such-model" in view.generate(missing, 0, 1)[1]["error"]
    assert (parse_seed(3.0), parse_seed("7"), parse_steps("25")) == (3, 7, 25)


def test_same_seed_same_clip_and_small_clips_are_not_scored(no_embedded, small_pipeline, tmp_path):
    view = GenerateView(tmp_path / "work", scorer=ScoreView(tmp_path / "score", evaluator=tiny_evaluator()))
    spec = str(small_pipeline)
    first = view.generate(spec, 7, 1, sr_steps=2)
    again = view.generate(spec, 7, 1, sr_steps=2)
    other = view.generate(spec, 8, 1, sr_steps=2)
    assert view.pipeline(spec) is view.pipeline(spec)  # resident
    mp4, info, text, overlay = first
    assert info["pipeline"] == "SAVGBenchJointPipeline" and info["seed"] == 7 and "32x32" in info["clip"]
    assert info["sr_num_inference_steps"] == 2
    assert Path(mp4).stat().st_size > 0 and Path(mp4) != Path(again[0])
    flac = [Path(r[1]["lossless_audio"]).read_bytes() for r in (first, again, other)]
    assert flac[0] == flac[1] and flac[0] != flac[2]
    a, b = view.sample(spec, 7, 1), view.sample(spec, 7, 1)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert overlay is None and "Not scored" in text and "4 frames of 32x32" in text and "256x256" in text


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")
def test_generate_tab_in_the_browser(no_embedded, tiny_dataset, contract_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_demo(tiny_dataset, workdir=tmp_path / "app", evaluator=tiny_evaluator(),
                      models=[str(tmp_path / "not-this-one"), str(contract_pipeline)])
    with app_page(demo) as page:
        page.get_by_role("tab", name="Generate").click(timeout=60_000)
        assert "2 model(s) available" in page.inner_text("#generate-status")
        page.click("#generate-model input")
        page.get_by_role("option", name="tiny-svgsa24").click()
        page.fill("#generate-seed input", "3")
        page.fill("#generate-steps input", "1")
        page.keyboard.press("Tab")
        page.click("#generate-button")
        src = page.wait_for_function(
            "() => { const v = document.querySelector('#generate-video video'); return v && v.src; }",
            timeout=120_000).json_value()
        assert "seed3" in src
        page.wait_for_function(
            "() => document.querySelector('#generate-score').innerText.includes('FN')", timeout=60_000)
        score = page.inner_text("#generate-score")
        assert "TP 0" in score and "Spatial AV-Align:" in score and "stand-in" in score
        state = loaded_video(page, "#generate-overlay video")
        assert abs(state["duration"] - 5.0) < 0.3 and state["w"] == 256
        assert "StereoMMDiffusionPipeline" in page.inner_text("#generate-status")
        info = page.inner_text("#generate-info")
        assert "seed" in info and "tiny-svgsa24" in info
    assert os.path.isdir(tmp_path / "app" / "generate")
