"""The app's Score tab: Spatial AV-Align of an uploaded clip and a dataset example, with calibration controls and a
playable overlay video, in headless Chromium; plus the view's behaviour without weights.

The evaluator is injected (tiny random-weight SELD network and YOLOX model: real components, tiny sizes).
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from savg_hub.app import build_demo
from savg_hub.app.score import EvaluatorOptions, ScoreView, weights_availability
from savg_hub.data.hf_dataset import DatasetFolder
from savg_hub.evaluation.detectors import YOLOXTinyDetector
from savg_hub.evaluation.seld import SELDInference
from savg_hub.evaluation.spatial_eval import SpatialAVAlignEvaluator, WeightsRecord
from savg_hub.media import Clip, write_clip
from savg_hub.models.stereo_seld import StereoSELDModel
from savg_hub.models.yolox import YOLOXModel

from test_spatial_eval import TINY_SELD, one_torch_thread  # noqa: F401  (one_torch_thread: autouse fixture)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def app_page(demo):
    """Launch ``demo`` on a free local port and yield a headless-Chromium page open on it; both closed after."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                yield page
            finally:
                browser.close()
    finally:
        demo.close()


def loaded_video(page, selector: str) -> dict:
    """Wait until the ``<video>`` at ``selector`` has data; ``{"duration": s, "w": pixels}``."""
    return page.wait_for_function(
        f"""() => {{ const v = document.querySelector({selector!r});
                    return v && v.readyState >= 2 && v.duration > 0
                           ? {{duration: v.duration, w: v.videoWidth}} : null; }}""",
        timeout=60_000,
    ).json_value()


def tiny_evaluator() -> SpatialAVAlignEvaluator:
    """Tiny random-weight SELD network (positions inside the frame) and YOLOX model, flagged as stand-ins."""
    torch.manual_seed(0)
    seld = StereoSELDModel(**TINY_SELD)
    with torch.no_grad():
        for stitch in seld.cross_stitch:
            stitch.weight.normal_(0.5, 0.3)
        seld.doa_head.weight.mul_(0.3)
        seld.doa_head.bias.fill_(0.5)
        seld.sed_head.bias.fill_(3.0)  # active everywhere: every 100-ms frame is a SELD detection
    yolox = YOLOXModel(widen_factor=0.125, neck_out_channels=16, head_feat_channels=16).eval()
    records = [WeightsRecord(role="seld", kind="stereo-seld", source="embedded", name="stereo-seld-synthetic"),
               WeightsRecord(role="detector", kind="object", name="tiny-yolox")]
    return SpatialAVAlignEvaluator(SELDInference(seld.eval(), batch_size=16), YOLOXTinyDetector(yolox, batch_size=20),
                                   weights=records)


def bright_clip(seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    video = np.zeros((20, 256, 256, 3), np.uint8)
    video[:, 56:200] = rng.integers(20, 120, (1, 144, 256, 3), dtype=np.uint8)
    video[:, 90:180, 40:80] = 255
    audio = np.stack([rng.standard_normal(80_000) * 0.2, rng.standard_normal(80_000) * 0.02]).astype(np.float32)
    return Clip(video, np.clip(audio, -1, 1), 4.0, 16000, clip_id="upload")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """A one-clip dataset folder, imported from an official-format release (MP3-in-MP4 + metadata CSV)."""
    from savg_hub.data.importer import import_svgsa24

    root = tmp_path_factory.mktemp("score-app")
    name = "fold4_room1_mix001_deg000_start0000"
    write_clip(root / "release" / "video_eval" / f"{name}.mp4", bright_clip(1), lossless=None, audio_codec="mp3")
    (root / "release" / "metadata_eval").mkdir(parents=True)
    (root / "release" / "metadata_eval" / f"{name}.csv").write_text("0,0,60,120\n")
    import_svgsa24(root / "release", root / "ds", progress=False)
    return root / "ds"


def test_score_view_without_weights_says_what_is_missing(tiny_dataset, tmp_path):
    options = EvaluatorOptions(seld_weights=str(tmp_path / "no-such-seld"), detector="yolox-tiny",
                               detector_weights=str(tmp_path / "no-such-yolox"))
    available, message = weights_availability(options)
    assert not available and "no-such-seld" in message and "savg weights import" in message
    view = ScoreView(tmp_path / "work", options=options, dataset=DatasetFolder(tiny_dataset))
    assert "Scoring unavailable" in view.status()
    ref = view.example_choices()[0][1]
    text, rows, videos = view.score(None, [ref])
    assert "Scoring unavailable" in text and "savg weights import" in text and rows == [] and videos == {}
    assert "Upload" in view.score(None, None)[0]
    build_demo(tiny_dataset, workdir=tmp_path / "app", evaluator_options=options)  # the app still builds


def test_score_view_scores_an_example_with_the_injected_evaluator(tiny_dataset, tmp_path):
    view = ScoreView(tmp_path / "work", evaluator=tiny_evaluator(), dataset=DatasetFolder(tiny_dataset))
    ref = view.example_choices()[0][1]
    text, rows, videos = view.score(None, [ref], ["swap_lr", "mono"])
    clip_id = rows[0][0]
    assert "Spatial AV-Align:" in text and "swap L/R" in text and "flip video:" not in text
    assert "stand-in" in text and rows[0][1] == 0 and rows[0][2] > 0  # random YOLOX finds no person: all misses
    assert rows[0][4] == "0.000" and rows[0][5] == "–"  # swap computed, flip not
    assert Path(videos[clip_id]).stat().st_size > 1000
    with_dup = view.score(None, [ref, ref])
    assert "given twice" in with_dup[0]


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")
def test_score_tab_in_the_browser(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    upload = write_clip(tmp_path / "my_clip.mp4", bright_clip(), lossless=None)[0]
    demo = build_demo(tiny_dataset, workdir=tmp_path / "app", evaluator=tiny_evaluator())
    with app_page(demo) as page:
        page.get_by_role("tab", name="Score").click(timeout=60_000)
        assert "stand-in" in page.inner_text("#score-status")
        page.set_input_files("#score-files input[type=file]", str(upload))
        page.wait_for_function(
            "() => document.querySelector('#score-files').innerText.includes('my_clip')", timeout=30_000)
        # one dataset example too
        page.click("#score-examples input")
        page.get_by_role("option").first.click()
        page.keyboard.press("Escape")
        page.click("#score-button")
        page.wait_for_function(
            "() => document.querySelector('#score-summary').innerText.includes('Spatial AV-Align:')",
            timeout=120_000)
        summary = page.inner_text("#score-summary")
        assert "2 clip(s)" in summary and "swap L/R" in summary and "mono" in summary
        assert "stand-in" in summary
        assert "my_clip" in page.inner_text("#score-table")
        state = loaded_video(page, "#score-video video")
        assert abs(state["duration"] - 5.0) < 0.3 and state["w"] == 256
        played = page.evaluate(
            """async () => { const v = document.querySelector('#score-video video'); v.muted = true;
                             await v.play(); await new Promise(r => setTimeout(r, 800));
                             return v.currentTime; }""")
        assert played > 0.2
