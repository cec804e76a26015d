"""Data layer: the STARSS23 reader, synthetic STARSS23-format scenes, the SVGSA24 builder and the HF dataset."""
