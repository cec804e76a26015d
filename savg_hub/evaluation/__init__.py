"""Evaluators (SELD, person detectors, I3D, AudioCLIP), metrics and protocols."""
