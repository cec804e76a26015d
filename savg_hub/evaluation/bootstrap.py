"""Bootstrap confidence intervals for two-sample statistics (Fréchet distance, MMD) and per-clip means."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapInterval:
    """A statistic with its percentile bootstrap interval.

    Attributes:
        value: the statistic on the data as given.
        low: lower end of the interval.
        high: upper end of the interval.
        std: standard deviation of the bootstrap replicates.
        level: coverage (e.g. 0.95).
        num_resamples: bootstrap replicates drawn.
    """

    value: float
    low: float
    high: float
    std: float
    level: float
    num_resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check(num_resamples: int, level: float) -> None:
    if int(num_resamples) != num_resamples or num_resamples < 10:
        raise ValueError(f"num_resamples must be an integer >= 10, got {num_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _interval(value: float, replicates: np.ndarray, level: float) -> BootstrapInterval:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return BootstrapInterval(float(value), float(low), float(high), float(replicates.std(ddof=1)), float(level),
                             int(replicates.size))


def bootstrap_two_sample(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile interval of ``statistic(x, y)``, resampling the rows of ``x`` and of ``y`` independently.

    Args:
        statistic: a function of two ``(N, D)`` feature arrays (e.g. ``frechet_distance_exact``).
        x: ``(m, D)`` features of the first set (generated clips).
        y: ``(n, D)`` features of the second set (reference clips).
        num_resamples: replicates (>= 10).
        level: coverage in (0, 1).
        seed: seed of the resampling (NumPy ``default_rng``).
    """
    _check(num_resamples, level)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x and y must be (N >= 2, D) arrays, got {x.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    replicates = np.empty(int(num_resamples))
    for r in range(int(num_resamples)):
        replicates[r] = statistic(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))])
    return _interval(statistic(x, y), replicates, level)


def bootstrap_mean(values: np.ndarray, *, num_resamples: int = 1000, level: float = 0.95,
                   seed: int = 0) -> BootstrapInterval:
    """Percentile interval of the mean of per-clip values (NaN values are left out)."""
    _check(num_resamples, level)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError(f"need at least 2 finite values for a bootstrap interval, got {values.size}")
    rng = np.random.default_rng(seed)
    replicates = values[rng.integers(0, values.size, (int(num_resamples), values.size))].mean(axis=1)
    return _interval(values.mean(), replicates, level)
