"""Model cards of networks trained by the scripts under ``training/``, rendered from their config and measured scores."""

from __future__ import annotations

import math
from typing import Any

from savg_hub.pipelines.cards import SAVGBENCH_CITATION
from savg_hub.training.seld import SELDTrainingConfig


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def render_seld_model_card(
    config: SELDTrainingConfig,
    evaluation: dict[str, Any],
    *,
    name: str,
    dataset_info: dict[str, Any] | None = None,
    train_command: str,
    eval_command: str,
    model_bytes: int | None = None,
    licence: str = "apache-2.0",
    training_note: str | None = None,
) -> str:
    """Markdown model card (with Hub YAML front matter) of a stereo SELD network.

    Args:
        config: the run's training config.
        evaluation: :func:`~savg_hub.training.seld.evaluate_seld` result, with ``num_parameters``,
            ``training_seconds``, ``step``, ``swa_models_averaged`` and ``train_clips`` as the training script adds.
        name: registry / folder name of the weights.
        dataset_info: the training set's ``meta/info.json`` (:class:`~savg_hub.data.hf_dataset.DatasetInfo` dict).
        train_command: the command that trained the network.
        eval_command: the command that measured ``evaluation``.
        model_bytes: size of the safetensors file.
        licence: Hub licence id of the weights.
        training_note: an extra sentence on how the run went (e.g. that it was resumed).
    """
    model = config.model
    per_class = evaluation["per_class"]
    lines = [
        "---",
        f"license: {licence}",
        "library_name: diffusers",
        "tags: [savgbench, sound-event-localization-and-detection, seld, stereo, spatial-audio, synthetic]",
        "---",
        "",
        f"# {name}",
        "",
        "A **small stereo SELD network** (sound event localisation and detection) in the architecture of the "
        "SAVGBench evaluator (CNN + multi-head self-attention + FC, `StereoSELDModel`), trained by savg_hub's "
        "own training script on a **synthetic** SVGSA24-format dataset. For every 100-ms frame of a 5-s stereo clip "
        "it says whether speech and/or an instrument is heard and at which horizontal pixel (0-256) of the video "
        "frame. It is the embedded default of the Spatial AV-Align metric when the official SAVGBench weights "
        "(`stereo-seld-savgbench`) are not available; it is **not** the official evaluator and its scores are "
        "not comparable with published SAVGBench numbers.",
        "",
        "## Use",
        "",
        "```python",
        "from savg_hub.models.stereo_seld import StereoSELDModel",
        "from savg_hub.evaluation.seld import SELDInference",
        "from savg_hub.weights import resolve_weights",
        "",
        f'model = StereoSELDModel.from_pretrained(resolve_weights("{name}", "stereo-seld"))',
        "prediction = SELDInference(model).predict([audio])[0]   # audio: float32 (2, 80000) at 16 kHz, L/R",
        "prediction.rows                                          # (frame, class, x_pixels) per detection",
        "```",
        "",
        "`savg_hub.weights.default_weights(\"stereo-seld\")` returns it when no official weights are in the cache "
        "and the Hub is offline.",
        "",
        "## Network",
        "",
        f"- stages `block_out_channels={list(model.block_out_channels)}`, pooling "
        f"`{[list(p) for p in model.pool_sizes]}`, {model.num_layers} Transformer layers per branch, "
        f"{model.num_attention_heads} heads, feed-forward {model.feedforward_dim}, dropout {model.dropout}",
        f"- {evaluation.get('num_parameters', 0):,} parameters"
        + (f", {model_bytes / 2**20:.1f} MiB float32 safetensors" if model_bytes else "")
        + " (the official network: 17,788,996)",
        "- input: official `amp_phasediff` STFT features (3, 257, 128), 128 output frames per 128-frame window, "
        "so the official windowed inference (windows every 1.2 s, frames [4, 124) kept, threshold 0.2) runs unchanged",
        "",
        "## Training data",
        "",
    ]
    if dataset_info:
        splits = dataset_info.get("splits", {})
        synthetic = dataset_info.get("provenance", {})
        dev, ev = splits.get(config.train_split, {}), splits.get(config.eval_split, {})
        lines += [
            f"- `{dataset_info.get('name', 'synthetic')}` ({dataset_info.get('source', 'synthetic')}), built by "
            "`savg build-dataset --synthetic` (see the training config for the exact command): synthetic "
            "STARSS23-format rooms with people who talk or play instruments, run through the real SVGSA24 builder "
            "(curation, FOA -> stereo, 100° perspective views)",
            f"- train split `{config.train_split}`: {dev.get('num_clips', '?')} clips of 5 s from "
            f"{len(dev.get('recordings', []))} recordings ({evaluation.get('train_clips', '?')} used); "
            f"eval split `{config.eval_split}`: {ev.get('num_clips', '?')} clips from "
            f"{len(ev.get('recordings', []))} other recordings (other rooms, people and sounds)",
            f"- generator seed {synthetic.get('synthetic_seed', '?')}",
        ]
    lines += [
        "",
        "## Recipe",
        "",
        f"The official recipe (`training/configs/seld_official.yaml`) scaled down: Adam lr {config.learning_rate:g}, "
        f"weight decay {config.weight_decay:g}, batch {config.batch_size}, {config.max_steps} iterations in "
        f"pseudo-epochs of {config.steps_per_epoch}; cosine schedule per pseudo-epoch with a "
        f"{config.warmup_epochs}-epoch linear warm-up from {config.warmup_lr_ratio:g}·lr, decaying over "
        f"{config.cosine_epochs} epochs to {config.min_lr_ratio:g}·lr; "
        + (f"SWA of the weights at the end of pseudo-epochs > {config.swa_start_epoch} "
           f"({evaluation.get('swa_models_averaged', 0)} averaged), BatchNorm re-estimated on "
           f"{config.bn_update_batches} training batches; " if config.swa_start_epoch is not None else "")
        + f"loss {config.sed_loss_weight:g}·BCE(activity) + {config.doa_loss_weight:g}·masked MSE(x/256); random "
        f"{config.crop_frames}-frame crops, {'center=True' if config.train_stft_center else 'official'} STFT"
        + (f", {config.swap_probability:.0%} of them mirrored left/right (x -> 255 - x; not in the official "
           "recipe)" if config.swap_probability else "")
        + f"; seed {config.seed}.",
        "",
        f"Trained for {evaluation.get('step', config.max_steps)} iterations in "
        f"{evaluation.get('training_seconds', float('nan')) / 60:.1f} min on one CPU thread:",
        "",
        "```bash",
        train_command,
        "```",
        "",
        *([training_note, ""] if training_note else []),
        "## Measured scores",
        "",
        f"DCASE-style frame-level scores on the `{evaluation['split']}` split ({evaluation['num_clips']} clips), "
        f"through the official inference path (protocol `{evaluation.get('protocol')}`): a detection of class c at "
        f"100-ms frame f is a true positive when c is active at f in the labels and |x_pred - x_gt| <= "
        f"{evaluation['x_tolerance_px']:g} px (the Spatial AV-Align tolerance); the location-independent F-score "
        "ignores x; the position error is the mean |x_pred - x_gt| over detected active frames.",
        "",
        "| class | F-score | precision | recall | F (location-independent) | position error (px) |",
        "|---|---|---|---|---|---|",
    ]
    for label, scores in [*per_class.items(), ("all (micro)", evaluation["overall"])]:
        lines.append(
            f"| {label} | {_fmt(scores['f_score'])} | {_fmt(scores['precision'])} | {_fmt(scores['recall'])} | "
            f"{_fmt(scores['location_independent_f_score'])} | {_fmt(scores['position_error_px'], 2)} |"
        )
    lines += [
        "",
        "Measured with:",
        "",
        "```bash",
        eval_command,
        "```",
        "",
        "## Limits",
        "",
        "- Trained and measured on synthetic scenes only (synthesised speech and instrument tones, ray-cast rooms); "
        "on real recordings or generated clips it is far less reliable than the official evaluator.",
        "- Scores above are this project's frame-level metric on held-out synthetic recordings, not the official "
        "SAVGBench Spatial AV-Align score and not comparable with published numbers; use the official weights "
        "(`savg weights import SAVGBench_PretrainedModels_V1.zip`) for benchmark results.",
        "- Two classes (speech, instrument), one event per class and frame, horizontal position only.",
        "",
        "## Licence",
        "",
        f"Weights: {licence} (trained by savg_hub on data it generates itself). The architecture follows the "
        "SAVGBench stereo SELD network.",
        "",
        "## Citation",
        "",
        "```bibtex",
        SAVGBENCH_CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)
