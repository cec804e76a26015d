"""The Gradio app (a Hugging Face Space): browse the dataset and score clips with Spatial AV-Align."""

from savg_hub.app.ui import build_demo

__all__ = ["build_demo"]
