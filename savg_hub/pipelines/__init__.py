"""``DiffusionPipeline`` subclasses for the SAVGBench baselines."""
