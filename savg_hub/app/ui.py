"""Gradio Blocks of the savg_hub app. No model code here: views call the library and show its outputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

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


def build_demo(dataset: str | Path, *, workdir: str | Path | None = None):
    """The app's ``gr.Blocks``.

    Args:
        dataset: an SVGSA24-format dataset folder (the embedded synthetic set by default in ``app.py``).
        workdir: folder for rendered videos (default: a new temporary folder).
    """
    import gradio as gr

    view = DatasetView(dataset, workdir or tempfile.mkdtemp(prefix="savg-app-"))
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
    return demo
