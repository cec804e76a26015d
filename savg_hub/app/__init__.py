"""The Gradio app (a Hugging Face Space): browse the dataset, generate clips and score them with Spatial AV-Align."""

from savg_hub.app.ui import build_demo

__all__ = ["build_demo"]
