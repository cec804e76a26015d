"""The Gradio app (a Hugging Face Space): browse the dataset; later issues add generation and scoring views."""

from savg_hub.app.ui import build_demo

__all__ = ["build_demo"]
