"""End-to-end: app.py serves the dataset view; headless Chromium loads it and plays the clip."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from starss_factory import Event, make_recording

from savg_hub.data.builder import BuilderConfig, build_svgsa24
from savg_hub.data.starss23 import find_recordings

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("app")
    make_recording(root / "src", "dev-train-x", "fold3_room1_mix001", [Event(0, 6, 0, 20.0, 5.0)], width=480, height=240)
    make_recording(root / "src", "dev-test-x", "fold4_room1_mix001", [Event(0, 6, 9, -30.0)], width=480, height=240)
    config = BuilderConfig(dev_yaw_step=60.0, eval_yaw_step=60.0, video_preset="ultrafast", num_workers=1)
    return build_svgsa24(find_recordings(root / "src"), root / "ds", config, progress=False).out


@pytest.fixture(scope="module")
def app_url(tiny_dataset, tmp_path_factory):
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio")))
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--dataset", str(tiny_dataset), "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app.py did not come up in 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_dataset_view_plays_a_clip(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(app_url, wait_until="domcontentloaded")
            page.wait_for_selector("#dataset-video video", timeout=60_000)
            state = page.wait_for_function(
                """() => { const v = document.querySelector('#dataset-video video');
                           return v && v.readyState >= 2 && v.duration > 0 ? {duration: v.duration, w: v.videoWidth}
                                                                            : null; }""",
                timeout=60_000,
            ).json_value()
            assert abs(state["duration"] - 5.0) < 0.3 and state["w"] == 256
            played = page.evaluate(
                """async () => { const v = document.querySelector('#dataset-video video'); v.muted = true;
                                 await v.play(); await new Promise(r => setTimeout(r, 800));
                                 return v.currentTime; }"""
            )
            assert played > 0.2
            assert "fold3_room1_mix001" in page.inner_text("#dataset-info")
        finally:
            browser.close()
