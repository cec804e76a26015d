"""savg_hub: the open toolkit for Spatially Aligned Audio-Video Generation (SAVGBench, SVGSA24).

Importing the package has no side effects; heavy submodules (torch models, Gradio app) load on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
