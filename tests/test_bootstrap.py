"""Bootstrap intervals of two-sample statistics and of per-clip means."""

from __future__ import annotations

import numpy as np
import pytest

from savg_hub.evaluation.bootstrap import bootstrap_mean, bootstrap_two_sample
from savg_hub.evaluation.frechet import frechet_distance_exact


def test_two_sample_interval_brackets_the_value_and_is_seeded():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((60, 4)), rng.standard_normal((60, 4)) + 1.0  # true FD = 4
    first = bootstrap_two_sample(frechet_distance_exact, x, y, num_resamples=200, seed=3)
    again = bootstrap_two_sample(frechet_distance_exact, x, y, num_resamples=200, seed=3)
    assert first == again
    assert first.low < first.value < first.high and first.std > 0 and first.num_resamples == 200
    assert first.low < 4.0 < first.high
    narrow = bootstrap_two_sample(frechet_distance_exact, x, y, num_resamples=200, level=0.5, seed=3)
    assert narrow.high - narrow.low < first.high - first.low
    with pytest.raises(ValueError, match="num_resamples"):
        bootstrap_two_sample(frechet_distance_exact, x, y, num_resamples=5)
    with pytest.raises(ValueError, match="level"):
        bootstrap_two_sample(frechet_distance_exact, x, y, level=1.5)


def test_mean_interval_ignores_undefined_values():
    values = np.array([0.2, 0.4, np.nan, 0.6, 0.8, 1.0])
    interval = bootstrap_mean(values, num_resamples=500)
    assert interval.value == pytest.approx(0.6)
    assert 0.2 <= interval.low < 0.6 < interval.high <= 1.0
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_mean(np.array([np.nan, 1.0]))
