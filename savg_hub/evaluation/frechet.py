"""Fréchet distance (FVD, "FAD") and kernel distance (KVD) from features, as the official code computes them.

Official definitions (SAVGBench commit 04e8d5b, ``evaluations/fvd/fvd.py`` and
``av_quality_evaluation/evaluator.py``; reference §6.7):

* **FVD** = Fréchet distance of I3D logits ``(N, 400)``, computed in torch **float32** with TF-GAN's matrix
  square root: SVD, singular values below 1e-10 kept **un-rooted**, first for √Σ₁, then for √(√Σ₁ Σ₂ √Σ₁);
  ``FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(√Σ₁ Σ₂ √Σ₁)`` with unbiased covariances (divide by N − 1). The
  arguments are ``(fake, real)``; the value is reported as ``.item()`` of the float32 result. The float32 SVD
  (the LAPACK behind torch) depends on the thread count and the machine: at I3D scale the float32 FVD moves by
  up to ~5e-5 relative with the number of CPU threads, which is the precision of the official number itself.
* **FAD** = the same Fréchet distance of AudioCLIP embeddings ``(N, 1024)``, ``.item() * 1000`` (float64).
* **KVD** = unbiased MMD² with scikit-learn's ``polynomial_kernel`` defaults (degree 3, γ = 1/d, coef0 = 1),
  as scikit-learn 1.2.1 + NumPy 1.23.5 run it on float32 features: kernel matrices and their sums in float32
  (NumPy 1.23's chunked pairwise summation, correctly rounded cubes), the divisions by ``m (m − 1)`` and
  ``m n`` promoting to float64. No scaling. The float32 ``X @ Yᵀ`` comes from the BLAS, whose kernels differ
  between machines: the last float32 bits of the kernel sums, about 1e-6 relative of KVD, are platform
  dependent (the official stack itself gives 7.380003 on a machine where the parity fixture says 7.379998).

With N = 96 < d the covariances have rank ≤ 95. At AudioCLIP scale many non-zero singular values of the
product fall below 1e-10 and stay un-rooted, which raises FAD by about 2% over an exact square root
(:func:`frechet_distance_sqrtm`); that is the official definition, so :func:`fad_official` keeps it.

Besides the official float32 functions there are float64 variants of the same algorithms
(:func:`frechet_distance_float64`, :func:`kernel_distance_float64`) and the exact ``scipy.linalg.sqrtm``
route.
Reference statistics can be cached with :func:`feature_statistics` and used with
:func:`frechet_distance_from_statistics` (bit-identical to the feature-level official function).

Example::

    from savg_hub.evaluation.frechet import (
        fad_official, format_results_out_line, frechet_distance_official, kernel_distance_official)
    metrics = {"fvd": frechet_distance_official(i3d_fake, i3d_real),
               "kvd": kernel_distance_official(i3d_fake, i3d_real),
               "fad": fad_official(audioclip_fake, audioclip_real)}
    line = format_results_out_line(metrics)     # "{'fvd': ..., 'kvd': ..., 'fad': ...}"
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.linalg
import torch

# TF-GAN's threshold below which singular values are used as they are instead of square-rooted.
TFGAN_SQRT_EPS = 1e-10
# FAD as the official evaluator reports it: Fréchet distance of AudioCLIP embeddings times this factor.
FAD_SCALE = 1000
RESULTS_OUT_KEYS = ("fvd", "kvd", "fad")


def _features_tensor(features: torch.Tensor | np.ndarray, name: str, dtype: torch.dtype) -> torch.Tensor:
    """Validated ``(N, D)`` features as a CPU tensor of ``dtype`` (a copy only where a cast is needed)."""
    if isinstance(features, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(features))
    elif isinstance(features, torch.Tensor):
        tensor = features.detach()
    else:
        raise ValueError(f"{name} must be a torch.Tensor or np.ndarray, got {type(features).__name__}")
    if tensor.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(tensor.shape)}")
    if tensor.shape[0] < 2 or tensor.shape[1] < 1:
        raise ValueError(f"{name} needs N >= 2 samples of D >= 1 features, got shape {tuple(tensor.shape)}")
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    tensor = tensor.to(device="cpu", dtype=dtype).contiguous()
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def _feature_pair(
    x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets validated (see ``_features_tensor``) and checked to have the same feature size."""
    fake = _features_tensor(x_fake, "x_fake", dtype)
    real = _features_tensor(x_real, "x_real", dtype)
    if fake.shape[1] != real.shape[1]:
        raise ValueError(
            "x_fake and x_real must have the same feature size, "
            f"got {tuple(fake.shape)} and {tuple(real.shape)}"
        )
    return fake, real


def feature_statistics(
    features: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance of features, with the official operations (torch, CPU).

    ``μ = x.mean(0)``; ``Σ = 1/(N−1) · (xᵀ − mean) (xᵀ − mean)ᵀ``, the centring done on the transposed view
    as the reference does, so that float32 results are bit-identical to it.

    Args:
        features (`torch.Tensor` or `np.ndarray` of shape `(N, D)`): N >= 2 finite feature vectors.
        dtype (`torch.dtype`, *optional*, defaults to `torch.float32`):
            computation dtype (float32 = official); the features are cast to it.

    Returns:
        ``(mu, sigma)``: CPU tensors of ``dtype``, shapes ``(D,)`` and ``(D, D)``.

    Raises:
        ValueError: ``features`` is not a finite 2-D array with N >= 2.
    """
    x = _features_tensor(features, "features", dtype)
    mu = x.mean(dim=0)
    x_t = x.t()
    factor = 1.0 / (x_t.size(1) - 1)
    centred = x_t - torch.mean(x_t, dim=1, keepdim=True)
    sigma = factor * centred.matmul(centred.t())
    return mu, sigma


def _tfgan_symmetric_sqrt(matrix: torch.Tensor, eps: float = TFGAN_SQRT_EPS) -> torch.Tensor:
    """TF-GAN's square root of a symmetric PSD matrix: ``U diag(s') Vᵀ``, ``s' = s if s < eps else √s``."""
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    s_root = torch.where(s < eps, s, torch.sqrt(s))
    return torch.matmul(torch.matmul(u, torch.diag(s_root)), vh)


def frechet_distance_from_statistics(
    mu_fake: torch.Tensor, sigma_fake: torch.Tensor, mu_real: torch.Tensor, sigma_real: torch.Tensor
) -> torch.Tensor:
    """Fréchet distance with TF-GAN's thresholded-SVD square root, in the dtype of the statistics.

    ``(tr(Σ₁ + Σ₂) − 2 tr √(√Σ₁ Σ₂ √Σ₁)) + ‖μ₁ − μ₂‖²`` in the official order of operations (1 = fake).

    Args:
        mu_fake, sigma_fake: ``(D,)`` and ``(D, D)`` statistics of the generated set
            (:func:`feature_statistics`).
        mu_real, sigma_real: the same for the reference set.

    Returns:
        0-d tensor (same dtype and device as the inputs).

    Raises:
        ValueError: the shapes do not fit together.
    """
    dim = mu_fake.shape[0] if mu_fake.ndim == 1 else -1
    for name, value, shape in (
        ("mu_fake", mu_fake, (dim,)),
        ("sigma_fake", sigma_fake, (dim, dim)),
        ("mu_real", mu_real, (dim,)),
        ("sigma_real", sigma_real, (dim, dim)),
    ):
        if dim < 1 or tuple(value.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} (D from mu_fake), got {tuple(value.shape)}")
    sqrt_sigma = _tfgan_symmetric_sqrt(sigma_fake)
    product = torch.matmul(sqrt_sigma, torch.matmul(sigma_real, sqrt_sigma))
    trace_sqrt = torch.trace(_tfgan_symmetric_sqrt(product))
    trace = torch.trace(sigma_fake + sigma_real) - 2.0 * trace_sqrt
    mean_term = torch.sum((mu_fake - mu_real) ** 2)
    return trace + mean_term


def frechet_distance_official(x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray) -> float:
    """The official FVD: TF-GAN Fréchet distance in float32 torch on the CPU, as a Python float (``.item()``).

    Args:
        x_fake (`torch.Tensor` or `np.ndarray` of shape `(N, D)`): features of the generated clips (official:
            96 I3D logits of 400); cast to float32.
        x_real (`torch.Tensor` or `np.ndarray` of shape `(M, D)`): features of the reference clips.

    Returns:
        `float`: the float32 result converted exactly (e.g. ``5564.2041015625``).

    Raises:
        ValueError: bad shapes or non-finite values.
    """
    fake, real = _feature_pair(x_fake, x_real, torch.float32)
    stats_fake = feature_statistics(fake, torch.float32)
    stats_real = feature_statistics(real, torch.float32)
    return frechet_distance_from_statistics(*stats_fake, *stats_real).item()


def frechet_distance_float64(x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray) -> float:
    """The official algorithm (TF-GAN thresholded SVD, unbiased covariances) run in float64.

    Removes float32 rounding but keeps the thresholding quirk. Arguments as :func:`frechet_distance_official`.
    """
    fake, real = _feature_pair(x_fake, x_real, torch.float64)
    stats_fake = feature_statistics(fake, torch.float64)
    stats_real = feature_statistics(real, torch.float64)
    return frechet_distance_from_statistics(*stats_fake, *stats_real).item()


def frechet_distance_sqrtm_from_statistics(
    mu_fake: np.ndarray | torch.Tensor,
    sigma_fake: np.ndarray | torch.Tensor,
    mu_real: np.ndarray | torch.Tensor,
    sigma_real: np.ndarray | torch.Tensor,
) -> float:
    """Fréchet distance with an exact matrix square root (``scipy.linalg.sqrtm``), float64.

    ``‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr Re(sqrtm(Σ₁ Σ₂))``. Not the official definition (see the module
    notes).

    Raises:
        ValueError: the shapes do not fit together.
    """
    mu1, s1, mu2, s2 = (np.asarray(torch.as_tensor(v).cpu(), dtype=np.float64)
                        for v in (mu_fake, sigma_fake, mu_real, sigma_real))
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, value, shape in (("mu_fake", mu1, (dim,)), ("sigma_fake", s1, (dim, dim)),
                               ("mu_real", mu2, (dim,)), ("sigma_real", s2, (dim, dim))):
        if dim < 1 or value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (D from mu_fake), got {value.shape}")
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    trace_sqrt = float(np.trace(covmean).real)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def frechet_distance_sqrtm(x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance of features in float64 with an exact ``scipy.linalg.sqrtm`` (not the official method).

    Arguments as :func:`frechet_distance_official`.
    """
    fake, real = _feature_pair(x_fake, x_real, torch.float64)
    return frechet_distance_sqrtm_from_statistics(
        *feature_statistics(fake, torch.float64), *feature_statistics(real, torch.float64)
    )


def frechet_distance_exact(x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray) -> float:
    """Exact Fréchet distance in float64 through the small cross-Gram matrix (not the official method).

    With centred features ``A (m, D)`` and ``B (n, D)``, ``Σ₁ = AᵀA/(m−1)`` and ``Σ₂ = BᵀB/(n−1)``, the
    eigenvalues of ``Σ₁Σ₂`` are the squared singular values of ``A Bᵀ / √((m−1)(n−1))``, so
    ``tr √(Σ₁Σ₂) = Σ σᵢ(A Bᵀ) / √((m−1)(n−1))``: an ``(m, n)`` SVD instead of ``(D, D)`` square roots. Equal to
    :func:`frechet_distance_sqrtm` up to float64 rounding, and fast enough for bootstrap resampling.

    Arguments as :func:`frechet_distance_official`.
    """
    fake, real = _feature_pair(x_fake, x_real, torch.float64)
    a = fake.numpy() - fake.numpy().mean(axis=0)
    b = real.numpy() - real.numpy().mean(axis=0)
    scale = np.sqrt((a.shape[0] - 1) * (b.shape[0] - 1))
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / scale
    diff = fake.numpy().mean(axis=0) - real.numpy().mean(axis=0)
    traces = (a * a).sum() / (a.shape[0] - 1) + (b * b).sum() / (b.shape[0] - 1)
    return float(diff @ diff + traces - 2.0 * trace_sqrt)


def fad_official(x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray) -> float:
    """The official "FAD": :func:`frechet_distance_official` of AudioCLIP embeddings × 1000.

    As the reference: the float32 result's ``.item()`` (a Python float) times 1000 in float64.

    Args:
        x_fake (`(N, D)`): embeddings of the generated clips (official: 96 raw AudioCLIP audio embeddings of
            1024).
        x_real (`(M, D)`): embeddings of the reference clips.
    """
    return frechet_distance_official(x_fake, x_real) * FAD_SCALE


# NumPy 1.23.5 reduces a contiguous array in buffered chunks of this many elements: pairwise summation inside
# a chunk, then plain accumulation of the chunk sums (the 96x96 kernel matrices: 8192 + 1024). NumPy 2's
# ``sum`` is one pairwise summation over all elements, which can differ in the last float32 bits.
_NUMPY_123_REDUCE_CHUNK = 8192


def _sum_float32_like_numpy_123(values: np.ndarray) -> np.float32:
    """``values.sum()`` as NumPy 1.23.5 computes it for a C-contiguous float32 array (float32 accumulator)."""
    flat = values.reshape(-1)
    total = np.float32(0)
    for start in range(0, flat.size, _NUMPY_123_REDUCE_CHUNK):
        total = np.float32(total + flat[start : start + _NUMPY_123_REDUCE_CHUNK].sum(dtype=np.float32))
    return total


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scikit-learn's ``polynomial_kernel(x, y)`` defaults (degree 3, γ = 1/d, coef0 = 1), in ``x``'s dtype.

    ``k = x @ yᵀ; k *= γ; k += 1; k **= 3``. With ``y is x`` NumPy computes ``x @ xᵀ`` as a symmetric
    product, as scikit-learn does for ``polynomial_kernel(X)``. In float32 the cube is the correctly rounded
    one (computed in float64 and rounded once), as NumPy 1.23.5's float32 ``power`` gave it; NumPy 2's own
    float32 ``power`` differs in the last bit for about 20% of the entries.
    """
    kernel = x @ y.T
    kernel *= x.dtype.type(1.0 / x.shape[1])
    kernel += x.dtype.type(1)
    if kernel.dtype == np.float32:
        wide = kernel.astype(np.float64)
        return (wide * wide * wide).astype(np.float32)
    kernel **= 3
    return kernel


def _unbiased_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two feature sets of one dtype (float32: the official arithmetic; float64: plain)."""
    m, n = x.shape[0], y.shape[0]
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    if x.dtype == np.float32:
        full_sum = _sum_float32_like_numpy_123
    else:
        def full_sum(values: np.ndarray) -> np.floating:
            return values.sum()
    # The diagonal sums are short strided reductions (one pairwise block). Sums stay in the kernels' dtype;
    # the divisions are float64 (NumPy 1.23 promoted ``float32 scalar / int`` to float64).
    xx = np.float64(full_sum(k_xx) - np.diagonal(k_xx).sum()) / (m * (m - 1))
    yy = np.float64(full_sum(k_yy) - np.diagonal(k_yy).sum()) / (n * (n - 1))
    xy = np.float64(full_sum(k_xy)) / (m * n)
    return float(xx + yy - 2 * xy)


def kernel_distance_official(x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray) -> float:
    """The official KVD: unbiased polynomial-kernel MMD², float32 kernels and sums, float64 divisions.

    ``[Σ_{i≠j} k(x_i, x_j)]/(m(m−1)) + [Σ_{i≠j} k(y_i, y_j)]/(n(n−1)) − 2 Σ k(x_i, y_j)/(mn)`` with
    ``k(a, b) = (a·b / d + 1)³``, computed as scikit-learn 1.2.1 + NumPy 1.23.5 did on float32 features.

    Args:
        x_fake (`(m, D)`): features of the generated clips (official: 96 I3D logits of 400).
        x_real (`(n, D)`): features of the reference clips.

    Returns:
        `float` (the reference's float64 value; no scaling).

    Raises:
        ValueError: bad shapes or non-finite values.
    """
    fake, real = _feature_pair(x_fake, x_real, torch.float32)
    return _unbiased_mmd(fake.numpy(), real.numpy())


def kernel_distance_float64(x_fake: torch.Tensor | np.ndarray, x_real: torch.Tensor | np.ndarray) -> float:
    """The same unbiased polynomial-kernel MMD², entirely in float64.

    Arguments as :func:`kernel_distance_official`.
    """
    fake, real = _feature_pair(x_fake, x_real, torch.float64)
    return _unbiased_mmd(fake.numpy(), real.numpy())


def format_results_out_line(metrics: Mapping[str, float]) -> str:
    """The line the official evaluator appends to ``results.out`` (without the trailing newline).

    ``str(dict)`` of ``{'fvd': ..., 'kvd': ..., 'fad': ...}`` with Python float reprs, e.g.
    ``{'fvd': 1218.8477783203125, 'kvd': 55.60466751187866, 'fad': 9.357064962387085}``.

    Args:
        metrics: a mapping with exactly the keys ``fvd``, ``kvd`` and ``fad`` (numbers; NumPy/torch scalars
            are converted to Python floats so that their repr is the reference's).

    Raises:
        ValueError: keys missing or extra, or a value that is not a real number.
    """
    keys = set(metrics)
    if keys != set(RESULTS_OUT_KEYS):
        raise ValueError(f"metrics must have exactly the keys {list(RESULTS_OUT_KEYS)}, got {sorted(keys)}")
    values = {}
    for key in RESULTS_OUT_KEYS:
        value = metrics[key]
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"metrics[{key!r}] must be a scalar, got a tensor of shape {tuple(value.shape)}"
                )
            value = value.item()
        is_number = isinstance(value, (int, float, np.integer, np.floating))
        if isinstance(value, (bool, np.bool_)) or not is_number:
            raise ValueError(f"metrics[{key!r}] must be a real number, got {value!r}")
        values[key] = float(value)
    return str(values)
