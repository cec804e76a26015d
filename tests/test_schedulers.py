"""The official adaptive multimodal DPM-Solver++ (reference/baselines.md §2.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from savg_hub.schedulers import AdaptiveDPMSolverScheduler

N = 1000


def _log_alpha_table() -> np.ndarray:
    betas = np.linspace(1e-4, 0.02, N, dtype=np.float64)
    return 0.5 * np.log(np.cumprod(1.0 - betas).astype(np.float32)).astype(np.float64)


def test_schedule_functions_match_hand_computed_values() -> None:
    scheduler = AdaptiveDPMSolverScheduler()
    log_alpha = _log_alpha_table()
    # on the grid t_n = (n + 1) / N
    got = scheduler.marginal_log_mean_coeff(torch.tensor([0.001, 0.5, 1.0])).double().numpy()
    np.testing.assert_allclose(got, [log_alpha[0], log_alpha[499], log_alpha[999]], rtol=1e-5)
    # halfway between t_1 = 0.001 and t_2 = 0.002: the mean of the two grid values
    mid = float(scheduler.marginal_log_mean_coeff(torch.tensor(0.0015)))
    assert mid == pytest.approx(0.5 * (log_alpha[0] + log_alpha[1]), rel=1e-5)
    # linear extrapolation below the first grid point
    below = float(scheduler.marginal_log_mean_coeff(torch.tensor(0.0005)))
    assert below == pytest.approx(log_alpha[0] - 0.5 * (log_alpha[1] - log_alpha[0]), rel=1e-4)
    # sigma and lambda from log alpha
    la = log_alpha[499]
    sigma = math.sqrt(1.0 - math.exp(2 * la))
    assert float(scheduler.marginal_std(torch.tensor(0.5))) == pytest.approx(sigma, rel=1e-5)
    assert float(scheduler.marginal_lambda(torch.tensor(0.5))) == pytest.approx(la - math.log(sigma), rel=1e-5)
    # at t = 1 the release starts from lambda = -5.0588 (alpha_bar_999 = 4.04e-5)
    assert float(scheduler.marginal_lambda(torch.tensor(1.0))) == pytest.approx(
        0.5 * math.log(np.cumprod(1 - np.linspace(1e-4, 0.02, N))[-1]) - 0.5 * math.log(
            1 - np.cumprod(1 - np.linspace(1e-4, 0.02, N))[-1]), abs=1e-4)


def test_inverse_lambda_round_trips_and_model_time_truncates_in_float32() -> None:
    scheduler = AdaptiveDPMSolverScheduler()
    t = torch.tensor([1e-3, 0.0123, 0.25, 0.5, 0.777, 1.0])
    back = scheduler.inverse_lambda(scheduler.marginal_lambda(t))
    torch.testing.assert_close(back, t, rtol=2e-4, atol=2e-6)
    times = np.array([1.0, 0.5, 0.0015, 1e-3, 0.25], dtype=np.float32)
    expected = ((times - np.float32(1.0 / N)) * np.float32(N)).astype(np.int64)
    assert scheduler.model_time(torch.from_numpy(times)).tolist() == expected.tolist()
    assert scheduler.model_time(torch.tensor([1.0, 1e-3])).tolist() == [999, 0]


def _optimal_eps(x: torch.Tensor, t_in: torch.Tensor, alphas_cumprod: torch.Tensor, modes: tuple[float, float],
                 std: float = 0.1) -> torch.Tensor:
    """E[ε | x_t] at discrete step ``t_in`` for data x0 drawn element-wise from an equal mixture of
    N(modes[0], std²) and N(modes[1], std²) (closed form: posterior component weights times each component's
    linear Gaussian posterior mean)."""
    abar = alphas_cumprod[t_in].double()
    a, s, x = abar.sqrt(), (1 - abar).sqrt(), x.double()
    var = abar * std**2 + s**2
    weights = torch.softmax(torch.stack([-((x - a * m) ** 2) / (2 * var) for m in modes]), dim=0)
    x0 = sum(w * (m + a * std**2 * (x - a * m) / var) for w, m in zip(weights, modes))
    return ((x - a * x0) / s).float()


MODES = [(-0.5, 0.5), (-0.2, 0.6)]  # the "video" and the "audio" modality


def _solve(batch: int = 4, **config):
    scheduler = AdaptiveDPMSolverScheduler(**config)
    alphas_cumprod = torch.from_numpy(np.cumprod(1 - np.linspace(1e-4, 0.02, N)))
    generator = torch.Generator().manual_seed(0)
    sample = (torch.randn(batch, 4, 3, 8, 8, generator=generator), torch.randn(batch, 2, 4000, generator=generator))
    scheduler.set_timesteps()
    calls = 0
    while not scheduler.is_finished:
        model_input = scheduler.model_input(sample)
        t = scheduler.timestep
        eps = tuple(_optimal_eps(x, t, alphas_cumprod, modes) for x, modes in zip(model_input, MODES))
        sample = scheduler.step(eps, t, sample).prev_sample
        calls += 1
        assert calls < 1000, "the adaptive solver did not terminate"
    return scheduler, sample


def test_adaptive_solver_reaches_the_mixture_target_in_a_bounded_number_of_steps() -> None:
    scheduler, sample = _solve()
    assert scheduler.time == pytest.approx(1e-3, abs=1e-5)
    assert scheduler.num_model_evaluations == 2 * (scheduler.num_accepted + scheduler.num_rejected)
    assert 5 <= scheduler.num_accepted <= 100 and scheduler.num_rejected <= 50
    for x, (low, high) in zip(sample, MODES):
        x = x.flatten()
        # every sample lands on one of the two modes, in equal shares, with the modes' spread
        near_low, near_high = (x - low).abs() < 0.3, (x - high).abs() < 0.3
        assert float((near_low | near_high).float().mean()) > 0.98
        assert float(near_high.float().mean()) == pytest.approx(0.5, abs=0.05)
        assert float(x[near_high].mean()) == pytest.approx(high, abs=0.02)
        assert float(x[near_high].std()) == pytest.approx(0.1, rel=0.2)


def test_tighter_tolerance_takes_more_steps() -> None:
    loose, _ = _solve(batch=2)
    tight, _ = _solve(batch=2, atol=0.0078 / 4, rtol=0.05 / 4)
    assert tight.num_accepted > loose.num_accepted


def test_dynamic_thresholding_per_sample_with_floor_one() -> None:
    scheduler = AdaptiveDPMSolverScheduler()
    t = torch.tensor([0.5])
    alpha = scheduler.marginal_alpha(t)
    x0 = torch.zeros(2, 1000)
    x0[0] = torch.linspace(-0.9, 0.9, 1000)  # q < 1: s = 1, unchanged
    x0[1] = torch.linspace(-4.0, 4.0, 1000)  # q > 1: clamp to ±q and divide by q
    out = scheduler.data_prediction(alpha * x0, torch.zeros_like(x0), t)
    torch.testing.assert_close(out[0], x0[0], rtol=1e-5, atol=1e-6)
    q = torch.quantile(x0[1].abs(), 0.995)
    torch.testing.assert_close(out[1], torch.clamp(x0[1], -q, q) / q, rtol=1e-5, atol=1e-6)
    assert float(out[1].abs().max()) == pytest.approx(1.0)
    off = AdaptiveDPMSolverScheduler(thresholding=False).data_prediction(alpha * x0, torch.zeros_like(x0), t)
    torch.testing.assert_close(off, x0, rtol=1e-5, atol=1e-5)


def test_bad_configuration_and_misuse_raise() -> None:
    with pytest.raises(ValueError, match="solver_order"):
        AdaptiveDPMSolverScheduler(solver_order=3)
    with pytest.raises(ValueError, match="beta_schedule"):
        AdaptiveDPMSolverScheduler(beta_schedule="cosine")
    scheduler = AdaptiveDPMSolverScheduler()
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler.set_timesteps(25)
    scheduler.set_timesteps()
    x = (torch.zeros(1, 3),)
    with pytest.raises(ValueError, match="modalities"):
        scheduler.step((torch.zeros(1, 3), torch.zeros(1, 3)), None, x)
    with pytest.raises(ValueError, match="requested model timestep"):
        scheduler.step((torch.zeros(1, 3),), 5, x)


def test_config_round_trip(tmp_path) -> None:
    scheduler = AdaptiveDPMSolverScheduler(atol=0.01)
    scheduler.save_config(tmp_path)
    loaded = AdaptiveDPMSolverScheduler.from_pretrained(tmp_path)
    assert loaded.config.atol == 0.01 and loaded.config.joint_error_norm == "max_over_batch_and_modalities"
