"""Gradio Blocks of the savg_hub app. No model code here: views call the library and show its outputs."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from savg_hub.app.generate import DEFAULT_SR_STEPS, SAMPLERS, GenerateView
from savg_hub.app.score import CALIBRATION_LABELS, TABLE_HEADERS, EvaluatorOptions, ScoreView
from savg_hub.data.hf_dataset import DatasetFolder, example_to_clip
from savg_hub.data.visualize import draw_labels
from savg_hub.media.io import write_mp4

HEADER = """# savg_hub — Spatially Aligned Audio-Video Generation
Clips of 5 s: 256x256 video at 4 fps with **stereo** sound at 16 kHz, where every sound comes from where its
source is on screen (SAVGBench / SVGSA24). Use headphones: the left/right difference is the point."""


class DatasetView:
    """Renders dataset rows as playable mp4s (H.264 + AAC stereo) with optional label overlays.

    Args:
        folder: a dataset folder.
        workdir: where rendered mp4s are written.
    """

    def __init__(self, folder: str | Path, workdir: str | Path) -> None:
        self.dataset = DatasetFolder(folder)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def choices(self, split: str) -> list[tuple[str, int]]:
        """Dropdown choices ``(label, row index)`` of a split."""
        return [(meta["clip_id"], i) for i, meta in enumerate(self.dataset.metadata(split))]

    def render(self, split: str, index: int, show_labels: bool) -> tuple[str, dict]:
        """``(mp4 path, clip info)`` for one row."""
        row = self.dataset.row(split, int(index))
        clip = example_to_clip(row)
        frames = draw_labels(clip.video, row["labels"], clip.fps) if show_labels else clip.video
        path = self.workdir / f"{split}-{int(index):05d}-{'labels' if show_labels else 'plain'}.mp4"
        if not path.exists():
            write_mp4(path, frames, clip.fps, clip.audio, clip.sample_rate)
        left, right = np.sqrt(np.mean(clip.audio.astype(np.float64) ** 2, axis=1))
        classes = sorted({("speech", "instrument")[c] for c in row["labels"]["class"] if c in (0, 1)})
        info = {
            "clip_id": row["clip_id"],
            "source": f"{row['source_dataset']}: {row['source_recording']}",
            "start_time_s": row["start_time"],
            "view_yaw_deg": row["yaw"],
            "classes": classes,
            "labelled_events": len(row["labels"]["frame"]),
            "rms_left_dB": round(20 * np.log10(left + 1e-12), 1),
            "rms_right_dB": round(20 * np.log10(right + 1e-12), 1),
        }
        return str(path), info


def build_demo(
    dataset: str | Path,
    *,
    workdir: str | Path | None = None,
    evaluator: Any | None = None,
    evaluator_options: EvaluatorOptions | None = None,
    models: Sequence[str] | None = None,
    pipelines: Mapping[str, Any] | None = None,
    device: str = "cpu",
):
    """The app's ``gr.Blocks``.

    Args:
        dataset: an SVGSA24-format dataset folder (the embedded synthetic set by default in ``app.py``).
        workdir: folder for rendered videos (default: a new temporary folder).
        evaluator: a ready Spatial AV-Align evaluator for the Score tab (e.g. tiny models in tests); by default
            one is built from ``evaluator_options`` on the first Score click and kept resident.
        evaluator_options: weights specs for that evaluator (default: the registry defaults).
        models: extra pipeline specs for the Generate tab (saved pipeline folders, Hub repo ids), offered besides
            the embedded default and ``savgbench`` (when their weights are present).
        pipelines: ready pipelines by spec for the Generate tab (e.g. tiny ones in tests).
        device: torch device for the Generate tab's pipelines.
    """
    import gradio as gr

    workdir = Path(workdir or tempfile.mkdtemp(prefix="savg-app-"))
    view = DatasetView(dataset, workdir)
    scorer = ScoreView(workdir / "score", evaluator=evaluator, options=evaluator_options, dataset=view.dataset)
    generator = GenerateView(workdir / "generate", scorer=scorer, models=models or (), pipelines=pipelines,
                             device=device)
    first_split = view.dataset.splits[0]

    def _select_split(split: str):
        choices = view.choices(split)
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

    with gr.Blocks(title="savg_hub") as demo:
        gr.Markdown(HEADER)
        with gr.Tab("Dataset"):
            gr.Markdown(f"Dataset folder: `{Path(dataset).name}` — splits {', '.join(view.dataset.splits)}, "
                        f"{len(view.dataset)} clips. Markers show the labelled sound sources "
                        "(cyan: speech, orange: instrument).")
            with gr.Row():
                split = gr.Dropdown(view.dataset.splits, value=first_split, label="split", scale=1)
                clip = gr.Dropdown(view.choices(first_split), value=0, label="clip", scale=3)
                show_labels = gr.Checkbox(value=True, label="draw labels", scale=1)
            with gr.Row():
                video = gr.Video(label="clip with stereo audio", elem_id="dataset-video", interactive=False,
                                 loop=True)
                info = gr.JSON(label="clip info", elem_id="dataset-info")
        split.change(_select_split, inputs=split, outputs=clip)
        gr.on([clip.change, show_labels.change, demo.load], view.render, inputs=[split, clip, show_labels],
              outputs=[video, info])
        _generate_tab(gr, generator)
        _score_tab(gr, scorer)
    return demo


def _generate_tab(gr, generator_view: GenerateView) -> None:
    """The "Generate" tab: one clip from a chosen model and seed, its Spatial AV-Align score and overlay video."""
    choices = generator_view.model_choices()
    with gr.Tab("Generate", id="generate-tab") as tab:
        gr.Markdown("Sample a 5-s clip with stereo sound from a SAVGBench pipeline, then score it with Spatial "
                    "AV-Align (the Score tab's models). The same model, seed, steps and sampler give the same clip.")
        status = gr.Markdown(generator_view.status(), elem_id="generate-status")
        with gr.Row():
            model = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="model",
                                elem_id="generate-model", scale=3)
            seed = gr.Number(value=0, precision=0, minimum=0, label="seed", elem_id="generate-seed", scale=1)
            steps = gr.Number(value=25, precision=0, minimum=1, maximum=1000, label="steps",
                              elem_id="generate-steps", scale=1)
            sr_steps = gr.Number(value=DEFAULT_SR_STEPS, precision=0, minimum=1, maximum=1000, label="SR steps",
                                 elem_id="generate-sr-steps", scale=1)
            sampler = gr.Dropdown(list(SAMPLERS), value="default", label="sampler", elem_id="generate-sampler",
                                  scale=1)
            button = gr.Button("Generate", variant="primary", elem_id="generate-button", scale=1)
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="generated clip with stereo audio", elem_id="generate-video",
                                 interactive=False, loop=True)
                info = gr.JSON(label="generation info", elem_id="generate-info")
            with gr.Column():
                score = gr.Markdown(elem_id="generate-score")
                overlay = gr.Video(label="overlay: person boxes, SELD position with its ±40 px band (green hit, "
                                         "red miss)", elem_id="generate-overlay", interactive=False, loop=True)

        def _refresh(current):
            options = generator_view.model_choices()
            specs = [spec for _, spec in options]
            value = current if current in specs else (specs[0] if specs else None)
            return gr.Dropdown(choices=options, value=value), generator_view.status()

        def _generate(spec, seed_value, steps_value, sampler_value, sr_steps_value):
            path, details, text, overlay_path = generator_view.generate(spec, seed_value, steps_value, sampler_value,
                                                                        sr_steps_value)
            if "error" in details:
                note = f"**Cannot generate:** {details['error']}"
            else:
                note = f"Generated with `{details['pipeline']}` in {details['seconds']} s."
            return path, details, text, overlay_path, note

        tab.select(_refresh, inputs=model, outputs=[model, status])
        button.click(_generate, inputs=[model, seed, steps, sampler, sr_steps], outputs=[video, info, score, overlay, status])


def _score_tab(gr, scorer: ScoreView) -> None:
    """The "Score" tab: Spatial AV-Align per clip, calibration controls and overlay videos."""
    with gr.Tab("Score", id="score-tab"):
        gr.Markdown("Spatial AV-Align (SAVGBench, official protocol): each 100-ms sound event the stereo SELD "
                    "model hears is a hit when a detected person box lies within ±40 px of its position (±1 video "
                    "frame). Upload 5-s clips (256x256, 4 fps, stereo 16 kHz) or pick dataset examples.")
        status = gr.Markdown(scorer.status(), elem_id="score-status")
        with gr.Row():
            files = gr.File(label="mp4 clips", file_count="multiple", file_types=[".mp4"], type="filepath",
                            elem_id="score-files", scale=2)
            with gr.Column(scale=2):
                examples = gr.Dropdown(scorer.example_choices(), value=[], multiselect=True,
                                       label="dataset examples", elem_id="score-examples")
                controls = gr.CheckboxGroup([(label, name) for name, label in CALIBRATION_LABELS.items()],
                                            value=list(CALIBRATION_LABELS), label="calibration controls",
                                            elem_id="score-controls")
                button = gr.Button("Score", variant="primary", elem_id="score-button")
        with gr.Row():
            with gr.Column(scale=3):
                summary = gr.Markdown(elem_id="score-summary")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="per clip (score = TP / (TP + FN))",
                                     interactive=False, elem_id="score-table")
            with gr.Column(scale=2):
                which = gr.Dropdown([], label="overlay of clip", elem_id="score-which")
                overlay = gr.Video(label="overlay: person boxes, SELD position with its ±40 px band (green hit, "
                                         "red miss), stereo audio", elem_id="score-video", interactive=False,
                                   loop=True)
        videos = gr.State({})

        def _score(file_paths, refs, chosen):
            text, rows, paths = scorer.score(file_paths, refs, chosen)
            first = next(iter(paths), None)
            return (text, rows, paths, gr.Dropdown(choices=list(paths), value=first),
                    paths.get(first) if first else None, scorer.status())

        def _pick(clip_id, paths):
            return paths.get(clip_id) if clip_id else None

        button.click(_score, inputs=[files, examples, controls],
                     outputs=[summary, table, videos, which, overlay, status])
        which.input(_pick, inputs=[which, videos], outputs=overlay)
