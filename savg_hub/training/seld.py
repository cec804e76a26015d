"""Training the stereo SELD network: typed config, crop dataset, LR schedule, loss, SWA BN update, evaluation.

The defaults of :class:`SELDTrainingConfig` are the recipe of the released SAVGBench checkpoint
(``seld_trainer.py``/``args.py`` of SonyResearch/SAVGBench 04e8d5b): Adam (lr 1e-3, weight decay 1e-6), batch 8,
40,000 iterations in pseudo-epochs of 1000, a per-pseudo-epoch cosine schedule with a linear warm-up prefix,
stochastic weight averaging after pseudo-epoch 30 with the BatchNorm statistics re-estimated on 10 training
batches (cumulative average), loss ``0.5 BCE-with-logits(activity) + 0.5 masked MSE(x / 256)``, random 1.27-s
crops (128 STFT frames) and 10-fps labels repeated to the 100-fps frame rate of the network.

Frame alignment. A clip's labels cover 100-ms frames ``k = 0..49``; net frame ``t`` (10 ms) belongs to label
frame ``t // 10``. The training STFT (``center=True``, reflect padding, as the official trainer) centres frame
``t`` on sample ``160 t``; the official inference STFT (:func:`~savg_hub.evaluation.seld.compute_seld_features`)
centres it on sample ``160 t - 96``. Either way frame ``t`` lies inside label frame ``t // 10``, so a crop of
frames ``[s, s + 128)`` is paired with the labels of net frames ``[s, s + 128)``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from savg_hub.evaluation.seld import (
    SELD_CSV_FRAME_RATE,
    SELD_FFT_SIZE,
    SELD_FRAME_WIDTH,
    SELD_HOP_SIZE,
    SELD_NET_FRAMES_PER_CSV_FRAME,
    SELD_SAMPLE_RATE,
    SELD_WINDOW_FRAMES,
    SELDInference,
    compute_seld_features,
)
from savg_hub.evaluation.seld_metrics import SPATIAL_AV_ALIGN_TOLERANCE, seld_frame_scores
from savg_hub.models.stereo_seld import StereoSELDModel
from savg_hub.training.config import TrainingConfigIO

logger = logging.getLogger(__name__)

CLASS_NAMES = ("speech", "instrument")
EVALUATION_PROTOCOL = "savg_hub-seld-frame-v1"
"""Name of the DCASE-style frame-level evaluation of :func:`evaluate_seld` (not the official SAVGBench metric)."""


# ------------------------------------------------------------------------------------------------------------
# Config


@dataclass
class SELDModelConfig:
    """Network size (:class:`~savg_hub.models.stereo_seld.StereoSELDModel` arguments); defaults = ``net_small``.

    Args:
        class_num: sound classes (2: speech, instrument).
        block_out_channels: output channels of the 4 convolution stages; the last is the Transformer width.
        pool_sizes: ``(time, frequency)`` average pooling after each stage; the time factors must multiply to a
            divisor of 128 so that a 128-frame window gives 128 output frames.
        num_layers: Transformer layers per branch.
        num_attention_heads: attention heads (must divide the width).
        feedforward_dim: feed-forward hidden size.
        dropout: Transformer dropout.
    """

    class_num: int = 2
    block_out_channels: tuple[int, ...] = (64, 128, 256, 512)
    pool_sizes: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (1, 2), (1, 2))
    num_layers: int = 2
    num_attention_heads: int = 8
    feedforward_dim: int = 1024
    dropout: float = 0.2

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        self.pool_sizes = tuple(tuple(int(p) for p in pool) for pool in self.pool_sizes)
        factor = math.prod(p[0] for p in self.pool_sizes) if self.pool_sizes else 1
        if SELD_WINDOW_FRAMES % factor:
            raise ValueError(
                f"pool_sizes {self.pool_sizes} reduce time by {factor}, which does not divide the "
                f"{SELD_WINDOW_FRAMES}-frame window: the official windowing needs 128 output frames"
            )

    def build(self) -> StereoSELDModel:
        """A freshly initialised network of this size."""
        return StereoSELDModel(
            class_num=self.class_num,
            block_out_channels=self.block_out_channels,
            pool_sizes=self.pool_sizes,
            num_layers=self.num_layers,
            num_attention_heads=self.num_attention_heads,
            feedforward_dim=self.feedforward_dim,
            dropout=self.dropout,
        )


@dataclass
class SELDTrainingConfig(TrainingConfigIO):
    """Everything a stereo SELD training run depends on. Defaults: the official SAVGBench recipe.

    Args:
        model: network size.
        dataset: SVGSA24 dataset folder (``savg build-dataset`` output); relative paths resolve against the
            current directory, ``~`` and ``$VARS`` are expanded.
        train_split: split to train on.
        eval_split: split of the final (and periodic) evaluation.
        max_train_clips: use only the first N clips of ``train_split`` (``None``: all).
        learning_rate: Adam peak learning rate.
        weight_decay: Adam (L2) weight decay.
        batch_size: crops per iteration.
        max_steps: training iterations.
        steps_per_epoch: iterations per pseudo-epoch (the unit of the schedule and of SWA).
        warmup_epochs: linear warm-up pseudo-epochs before the cosine (timm ``warmup_t``, ``warmup_prefix``).
        cosine_epochs: length of the cosine decay in pseudo-epochs (timm ``t_initial``); afterwards the rate
            stays at its minimum.
        warmup_lr_ratio: warm-up start rate / peak (timm ``warmup_lr_init = 0.2 lr``).
        min_lr_ratio: cosine floor / peak (timm ``lr_min = 0.5 lr``; also the SWA rate).
        swa_start_epoch: weights are averaged at the end of every pseudo-epoch whose 1-based number is greater
            than this (official: 30, i.e. at iterations 31k..40k); ``None`` disables SWA.
        bn_update_batches: training batches used to re-estimate BatchNorm statistics of the SWA model.
        sed_loss_weight: weight of the activity BCE.
        doa_loss_weight: weight of the masked position MSE.
        crop_frames: frames per training crop (128 = 1.27 s, the inference window).
        swap_probability: probability of mirroring a crop (left/right channels swapped, phase difference negated,
            ``x -> 255 - x``); not part of the official recipe (0).
        train_stft_center: ``True`` (official trainer): ``center=True`` reflect-padded STFT for training crops;
            ``False``: the official inference features.
        seed: seed of model initialisation, crops and data order.
        num_workers: DataLoader worker processes.
        checkpoint_every: save a resumable checkpoint every N iterations (and at the end).
        checkpoints_total_limit: keep only the newest N checkpoints (``None``: all).
        log_every: iterations between loss logs.
        eval_every: evaluate on ``eval_max_clips`` clips of ``eval_split`` every N iterations (``None``: only at
            the end).
        eval_max_clips: clips of the periodic evaluation (the final one uses ``final_eval_max_clips``).
        final_eval_max_clips: clips of the final evaluation (``None``: the whole split).
        eval_batch_size: windows per inference batch.
        x_tolerance: location threshold of the evaluation in pixels (the Spatial AV-Align 40 px).
        mixed_precision: Accelerate mixed precision (``no``, ``fp16``, ``bf16``).
    """

    model: SELDModelConfig = field(default_factory=SELDModelConfig)
    dataset: str | None = None
    train_split: str = "dev"
    eval_split: str = "eval"
    max_train_clips: int | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 1e-6
    batch_size: int = 8
    max_steps: int = 40_000
    steps_per_epoch: int = 1000
    warmup_epochs: int = 5
    cosine_epochs: int = 25
    warmup_lr_ratio: float = 0.2
    min_lr_ratio: float = 0.5
    swa_start_epoch: int | None = 30
    bn_update_batches: int = 10
    sed_loss_weight: float = 0.5
    doa_loss_weight: float = 0.5
    crop_frames: int = SELD_WINDOW_FRAMES
    swap_probability: float = 0.0
    train_stft_center: bool = True
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 1000
    checkpoints_total_limit: int | None = 3
    log_every: int = 50
    eval_every: int | None = None
    eval_max_clips: int | None = 64
    final_eval_max_clips: int | None = None
    eval_batch_size: int = 64
    x_tolerance: float = SPATIAL_AV_ALIGN_TOLERANCE
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = _dataclass_from_dict(SELDModelConfig, self.model, "model")
        positive = ("batch_size", "max_steps", "steps_per_epoch", "cosine_epochs", "crop_frames", "checkpoint_every",
                    "log_every", "eval_batch_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_epochs", "bn_update_batches", "num_workers"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_train_clips", "eval_every", "eval_max_clips", "final_eval_max_clips",
                     "checkpoints_total_limit"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {value}")
        if self.swa_start_epoch is not None and self.swa_start_epoch < 0:
            raise ValueError(f"swa_start_epoch must be >= 0 or null, got {self.swa_start_epoch}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("warmup_lr_ratio", "min_lr_ratio", "swap_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.x_tolerance > 0:
            raise ValueError(f"x_tolerance must be > 0 pixels, got {self.x_tolerance}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        if self.train_split == self.eval_split:
            logger.warning("train_split and eval_split are both %r", self.train_split)

    # -- (de)serialisation --------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SELDTrainingConfig":
        """Build from a dict (e.g. parsed YAML); unknown keys raise ``ValueError``."""
        return _dataclass_from_dict(cls, data, "config")

    @property
    def num_epochs(self) -> int:
        """Pseudo-epochs in the run (the last one may be partial)."""
        return math.ceil(self.max_steps / self.steps_per_epoch)


def _dataclass_from_dict(cls, data: dict[str, Any], what: str):
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known: {sorted(names)}")
    return cls(**data)


# ------------------------------------------------------------------------------------------------------------
# Schedule


def seld_learning_rate(step: int, config: SELDTrainingConfig) -> float:
    """Learning rate of iteration ``step`` (0-based), constant within a pseudo-epoch.

    With ``e = step // steps_per_epoch``, ``W = warmup_epochs``, ``C = cosine_epochs``, peak ``lr``, floor
    ``m = min_lr_ratio * lr`` and warm-up start ``w = warmup_lr_ratio * lr`` (timm's ``CosineLRScheduler`` with
    ``warmup_prefix=True``, ``cycle_limit=1``, stepped per pseudo-epoch):

    * ``e < W``: ``w + e (lr - w) / W``;
    * ``W <= e < W + C``: ``m + (lr - m) (1 + cos(pi (e - W) / C)) / 2``;
    * afterwards ``m`` (the official SWA rate 0.5 lr is the same value).

    Official values: e 0..4 -> 2e-4, 3.6e-4, 5.2e-4, 6.8e-4, 8.4e-4; e 5 -> 1e-3; e 30.. -> 5e-4.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    epoch = step // config.steps_per_epoch
    peak = config.learning_rate
    floor = config.min_lr_ratio * peak
    if epoch < config.warmup_epochs:
        start = config.warmup_lr_ratio * peak
        return start + epoch * (peak - start) / config.warmup_epochs
    t = epoch - config.warmup_epochs
    if t >= config.cosine_epochs:
        return floor
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * t / config.cosine_epochs))


def swa_update_due(step: int, config: SELDTrainingConfig) -> bool:
    """Whether the SWA model averages the weights after ``step`` iterations have been completed (1-based).

    True at the end of each pseudo-epoch whose 1-based number exceeds ``swa_start_epoch`` (official: 31k..40k).
    """
    if config.swa_start_epoch is None or step % config.steps_per_epoch:
        return False
    return step // config.steps_per_epoch > config.swa_start_epoch


# ------------------------------------------------------------------------------------------------------------
# Data


def decode_flac_audio(value: dict, clip_id: str = "") -> np.ndarray:
    """Decode a dataset row's ``audio`` cell (``{"bytes": ...}``, lossless) to ``float32 (2, N)`` at 16 kHz."""
    import soundfile as sf

    data = value.get("bytes") if isinstance(value, dict) else None
    if not data:
        raise ValueError(f"audio of clip {clip_id!r} has no bytes")
    pcm, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    if rate != SELD_SAMPLE_RATE or pcm.shape[1] != 2:
        raise ValueError(
            f"audio of clip {clip_id!r} is {pcm.shape[1]}-channel at {rate} Hz; SELD needs stereo at "
            f"{SELD_SAMPLE_RATE} Hz"
        )
    return np.ascontiguousarray(pcm.T)


def iter_split_audio(folder: str | os.PathLike, split: str, limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield every clip's stereo audio ``float32 (2, N)`` of a dataset folder split, in :class:`DatasetFolder`
    row order, reading only the ``audio`` column of each parquet shard.

    Args:
        folder: SVGSA24 dataset folder.
        split: ``dev`` or ``eval``.
        limit: stop after this many clips.
    """
    import pyarrow.parquet as pq

    from savg_hub.data.hf_dataset import DATA_DIR

    count = 0
    for shard in sorted((Path(folder) / DATA_DIR / split).glob("*.parquet")):
        parquet = pq.ParquetFile(shard)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=["clip_id", "audio"])
            for clip_id, value in zip(table.column("clip_id").to_pylist(), table.column("audio").to_pylist()):
                if limit is not None and count >= limit:
                    return
                yield decode_flac_audio(value, clip_id)
                count += 1


def label_rows(labels: dict[str, list]) -> np.ndarray:
    """A row's ``labels`` as ``float64 (G, 3)`` ``(frame, class, x_pixels)`` (what the metric compares with)."""
    return np.stack(
        [np.asarray(labels["frame"], np.float64), np.asarray(labels["class"], np.float64),
         np.asarray(labels["x"], np.float64)], axis=1,
    ) if len(labels["frame"]) else np.zeros((0, 3))


def frame_targets(labels: dict[str, list], num_frames: int = 50, class_num: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per-class activity and position at the 10-fps label rate.

    Returns:
        ``activity`` float32 ``(class_num, num_frames)`` in {0, 1} and ``x`` float32 ``(class_num, num_frames)``:
        position / 256 (mean of the events of that class in the frame), 0 where inactive.
    """
    activity = np.zeros((class_num, num_frames), np.float32)
    total = np.zeros((class_num, num_frames), np.float64)
    for frame, cls, x in zip(labels["frame"], labels["class"], labels["x"]):
        if not 0 <= cls < class_num:
            raise ValueError(f"label class {cls} outside 0..{class_num - 1}")
        if 0 <= frame < num_frames:
            activity[cls, frame] += 1
            total[cls, frame] += x
    x_norm = np.where(activity > 0, total / np.maximum(activity, 1) / SELD_FRAME_WIDTH, 0.0).astype(np.float32)
    return np.minimum(activity, 1.0), x_norm


def training_features(audio: np.ndarray, center: bool = True) -> np.ndarray:
    """STFT features of a whole clip, ``float32 (3, 257, T)`` (100 frames/s).

    Args:
        audio: float stereo ``(2, N)`` at 16 kHz.
        center: ``True``: the official trainer's ``center=True`` reflect-padded STFT (``T = N // 160 + 1``, frame
            ``t`` centred on sample ``160 t``); ``False``: the official inference features
            (:func:`~savg_hub.evaluation.seld.compute_seld_features`, ``T = N // 160``).
    """
    if not center:
        return compute_seld_features(audio)
    return _stft_features(audio, center=True)


def _stft_features(audio: np.ndarray, center: bool) -> np.ndarray:
    signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    window = torch.hann_window(SELD_FFT_SIZE, periodic=True, dtype=torch.float32)
    spectrum = torch.stft(signal, SELD_FFT_SIZE, SELD_HOP_SIZE, window=window, center=center, pad_mode="reflect",
                          return_complex=True)  # (2, 257, T)
    magnitude = spectrum.abs()
    difference = torch.angle(spectrum[1]) - torch.angle(spectrum[0])
    difference = torch.where(difference < 0, difference + 2 * math.pi, difference)
    return torch.cat([magnitude, difference[None]], dim=0).numpy()


class SELDCropDataset(torch.utils.data.Dataset):
    """Random fixed-length crops of one split of an SVGSA24 dataset folder, with frame-level targets.

    The split's audio is decoded once into memory (``2 x 80000`` float32 per clip, 640 kB); each item draws a
    crop start ``s`` uniformly from ``[0, 500 - crop_frames]`` with the torch global RNG (seed it, e.g. with
    ``accelerate.utils.set_seed``) and returns

    * ``features`` float32 ``(3, 257, crop_frames)``: STFT frames ``[s, s + crop_frames)``;
    * ``activity`` float32 ``(class_num, crop_frames)`` in {0, 1}: label of net frame ``t`` = label frame
      ``t // 10``;
    * ``x`` float32 ``(class_num, crop_frames)``: position / 256 (0 where inactive);
    * ``mask`` float32 ``(class_num, crop_frames)``: 1 where the position is a target (= ``activity``);
    * ``start`` int64: ``s``; ``index`` int64: the clip; ``swapped`` bool: whether the crop was mirrored.

    With ``swap_probability > 0`` a crop is mirrored at that rate: left and right swapped (magnitudes exchanged,
    phase difference ``d -> (2 pi - d) mod 2 pi``) and ``x -> 255 - x`` pixels (the view is symmetric about
    pixel 127.5, and the FOA-to-stereo pair ``W +- Y`` swaps under ``azimuth -> -azimuth``).

    Args:
        folder: dataset folder (``savg build-dataset`` output).
        split: split name.
        crop_frames: frames per crop (128 = 1.27 s).
        center: STFT of :func:`training_features`.
        max_clips: keep only the first N clips.
        class_num: classes.
        swap_probability: rate of mirrored crops.
    """

    def __init__(self, folder: str | os.PathLike, split: str = "dev", crop_frames: int = SELD_WINDOW_FRAMES,
                 center: bool = True, max_clips: int | None = None, class_num: int = 2,
                 swap_probability: float = 0.0) -> None:
        from savg_hub.data.hf_dataset import DatasetFolder

        reader = DatasetFolder(folder)
        metadata = reader.metadata(split)
        if max_clips is not None:
            metadata = metadata[:max_clips]
        if not metadata:
            raise ValueError(f"split {split!r} of {folder} has no clips")
        self.folder, self.split = Path(folder), split
        self.crop_frames, self.center, self.class_num = int(crop_frames), bool(center), int(class_num)
        if not 0.0 <= swap_probability <= 1.0:
            raise ValueError(f"swap_probability must be in [0, 1], got {swap_probability}")
        self.swap_probability = float(swap_probability)
        self.clip_ids = [row["clip_id"] for row in metadata]
        audios = list(iter_split_audio(folder, split, limit=len(metadata)))
        if len(audios) != len(metadata):
            raise ValueError(f"split {split!r}: read {len(audios)} audio cells for {len(metadata)} rows")
        lengths = {a.shape[1] for a in audios}
        if len(lengths) != 1:
            raise ValueError(f"clips of split {split!r} differ in length: {sorted(lengths)} samples")
        self.audio = np.stack(audios)  # (N, 2, samples)
        self.num_label_frames = self.audio.shape[2] // (SELD_SAMPLE_RATE // SELD_CSV_FRAME_RATE)
        self.num_net_frames = self.num_label_frames * SELD_NET_FRAMES_PER_CSV_FRAME
        if not 1 <= self.crop_frames <= self.num_net_frames:
            raise ValueError(f"crop_frames={crop_frames} must be in [1, {self.num_net_frames}] for these clips")
        targets = [frame_targets(row["labels"], self.num_label_frames, class_num) for row in metadata]
        self.activity10 = np.stack([t[0] for t in targets])  # (N, C, 50)
        self.x10 = np.stack([t[1] for t in targets])
        logger.info("SELD crops: %d clips of %s/%s in memory (%.0f MB)", len(self), folder, split,
                    self.audio.nbytes / 2**20)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def targets(self, index: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """``(activity, x)`` float32 ``(class_num, crop_frames)`` of net frames ``[start, start + crop_frames)``."""
        frames = np.arange(start, start + self.crop_frames) // SELD_NET_FRAMES_PER_CSV_FRAME
        return self.activity10[index][:, frames], self.x10[index][:, frames]

    def _crop_features(self, index: int, start: int) -> np.ndarray:
        audio = self.audio[index]
        if self.center:
            # frames [start, start + crop) of the centred STFT read samples [160 start - 256, 160 (end - 1) + 256):
            # away from the clip's edges that is a plain (uncentred) STFT of just this segment
            first = start * SELD_HOP_SIZE - SELD_FFT_SIZE // 2
            last = (start + self.crop_frames - 1) * SELD_HOP_SIZE + SELD_FFT_SIZE // 2
            if first >= 0 and last <= audio.shape[1]:
                return _stft_features(audio[:, first:last], center=False)
        return training_features(audio, self.center)[..., start : start + self.crop_frames]

    def crop(self, index: int, start: int, swap: bool = False) -> dict[str, torch.Tensor]:
        """The item for clip ``index``, crop start ``start``, mirrored when ``swap`` (see the class docstring)."""
        if not 0 <= start <= self.num_net_frames - self.crop_frames:
            raise ValueError(f"start={start} outside [0, {self.num_net_frames - self.crop_frames}]")
        features = np.ascontiguousarray(self._crop_features(index, start), dtype=np.float32)
        activity, x = self.targets(index, start)
        if swap:
            features = mirror_features(features)
            x = np.where(activity > 0, (SELD_FRAME_WIDTH - 1) / SELD_FRAME_WIDTH - x, 0.0).astype(np.float32)
        return {
            "features": torch.from_numpy(features),
            "activity": torch.from_numpy(activity),
            "x": torch.from_numpy(np.ascontiguousarray(x)),
            "mask": torch.from_numpy(activity.copy()),
            "start": torch.tensor(start, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
            "swapped": torch.tensor(bool(swap)),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = int(torch.randint(0, self.num_net_frames - self.crop_frames + 1, ()).item())
        swap = self.swap_probability > 0 and bool(torch.rand(()) < self.swap_probability)
        return self.crop(index, start, swap)


def mirror_features(features: np.ndarray) -> np.ndarray:
    """Left/right mirror of ``(3, F, T)`` features: magnitudes swapped, phase difference ``(2 pi - d) mod 2 pi``."""
    difference = features[2]
    mirrored = np.where(difference > 0, np.float32(2 * np.pi) - difference, np.float32(0.0))
    return np.stack([features[1], features[0], mirrored.astype(np.float32)])


# ------------------------------------------------------------------------------------------------------------
# Loss, BN update


def seld_loss(
    sed_logits: torch.Tensor,
    doa: torch.Tensor,
    activity: torch.Tensor,
    x: torch.Tensor,
    mask: torch.Tensor,
    sed_weight: float = 0.5,
    doa_weight: float = 0.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``sed_weight * BCE-with-logits(activity) + doa_weight * masked MSE(x / 256)``, frame-level means.

    Args:
        sed_logits: ``(N, 1, C, T)`` or ``(N, C, T)`` network logits.
        doa: same shape, predicted position / 256.
        activity: ``(N, C, T)`` targets in {0, 1}.
        x: ``(N, C, T)`` target position / 256.
        mask: ``(N, C, T)``: 1 where ``x`` is a target; the MSE is averaged over these entries (0 if none).

    Returns:
        ``(loss, {"sed": ..., "doa": ...})``.
    """
    if sed_logits.ndim == 4:
        sed_logits, doa = sed_logits[:, 0], doa[:, 0]
    if sed_logits.shape != activity.shape or doa.shape != x.shape or mask.shape != x.shape:
        raise ValueError(
            f"shape mismatch: sed_logits {tuple(sed_logits.shape)}, activity {tuple(activity.shape)}, "
            f"doa {tuple(doa.shape)}, x {tuple(x.shape)}, mask {tuple(mask.shape)}"
        )
    sed_loss = nn.functional.binary_cross_entropy_with_logits(sed_logits.float(), activity.float())
    squared = (doa.float() - x.float()) ** 2 * mask
    doa_loss = squared.sum() / mask.sum().clamp_min(1.0)
    loss = sed_weight * sed_loss + doa_weight * doa_loss
    return loss, {"sed": float(sed_loss.detach()), "doa": float(doa_loss.detach())}


@torch.no_grad()
def update_batch_norm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm's running statistics as the cumulative average over ``batches``.

    Running statistics are reset and momentum set to ``None`` (cumulative averaging) while the feature batches
    ``(N, 3, 257, T)`` go through the network in train mode; momentum and mode are restored afterwards.

    Returns:
        the number of batches used (0 leaves the statistics untouched).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    batches = list(batches)
    if not norms or not batches:
        return 0
    momenta = {}
    for norm in norms:
        momenta[norm] = norm.momentum
        norm.reset_running_stats()
        norm.momentum = None
    was_training = model.training
    model.train()
    try:
        for features in batches:
            model(features)
    finally:
        for norm in norms:
            norm.momentum = momenta[norm]
        model.train(was_training)
    return len(batches)


# ------------------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_seld(
    model: StereoSELDModel,
    folder: str | os.PathLike,
    split: str = "eval",
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    max_clips: int | None = None,
    x_tolerance: float = SPATIAL_AV_ALIGN_TOLERANCE,
    chunk_clips: int = 64,
) -> dict[str, Any]:
    """DCASE-style frame-level evaluation of a SELD network on a dataset split, through the official inference.

    Every clip goes through :class:`~savg_hub.evaluation.seld.SELDInference` (official features, windows and
    post-processing, threshold 0.2); its ``(frame, class, x)`` rows are compared with the clip's labels by
    :func:`~savg_hub.evaluation.seld_metrics.seld_frame_scores` (TP: class active at that 100-ms frame and
    ``|x_pred - x_gt| <= x_tolerance``).

    Args:
        model: the network (its mode is restored afterwards).
        folder: SVGSA24 dataset folder.
        split: split to score.
        device: where inference runs.
        batch_size: windows per forward pass.
        max_clips: score only the first N clips.
        x_tolerance: location threshold in pixels.
        chunk_clips: clips decoded and run together.

    Returns:
        JSON-serialisable dict: ``per_class`` (``speech``/``instrument``: ``f_score``, ``precision``,
        ``recall``, ``location_independent_f_score``, ``position_error_px``, counts), ``overall``, ``split``,
        ``num_clips``, ``protocol``, ``seconds``.
    """
    from savg_hub.data.hf_dataset import DatasetFolder

    started = time.perf_counter()
    metadata = DatasetFolder(folder).metadata(split)
    if max_clips is not None:
        metadata = metadata[:max_clips]
    if not metadata:
        raise ValueError(f"split {split!r} of {folder} has no clips")
    was_training = model.training
    inference = SELDInference(model, device=device, batch_size=batch_size)
    predictions, references, num_frames = [], [], []
    audio_iter = iter_split_audio(folder, split, limit=len(metadata))
    try:
        for begin in range(0, len(metadata), chunk_clips):
            rows = metadata[begin : begin + chunk_clips]
            audios = [next(audio_iter) for _ in rows]
            for result, row in zip(inference.predict(audios), rows):
                predictions.append(result.rows)
                references.append(label_rows(row["labels"]))
                num_frames.append(result.num_csv_frames)
    finally:
        model.train(was_training)
    class_num = model.config.class_num
    scores = seld_frame_scores(predictions, references, class_num, x_tolerance, num_frames)
    names = CLASS_NAMES if class_num == len(CLASS_NAMES) else [str(c) for c in range(class_num)]
    result = scores.to_dict(names)
    result.update(
        protocol=EVALUATION_PROTOCOL,
        inference="official SELDInference (windows of 128 frames every 1.2 s, kept [4, 124), threshold 0.2)",
        split=split,
        dataset=Path(folder).name,
        seconds=time.perf_counter() - started,
    )
    return result


def min_class_f_score(evaluation: dict[str, Any]) -> float:
    """The smallest per-class location-dependent F-score of an :func:`evaluate_seld` result."""
    return min(scores["f_score"] for scores in evaluation["per_class"].values())
