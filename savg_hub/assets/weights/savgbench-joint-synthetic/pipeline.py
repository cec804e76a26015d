from savg_hub.pipelines.pipeline_savgbench_joint import SAVGBenchJointPipeline  # noqa: F401
