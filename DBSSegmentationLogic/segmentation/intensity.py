"""Intensity normalisation of an MRI region of interest, shared by inference and the training generator."""
from __future__ import annotations

import torch


def normalize_intensity(image: torch.Tensor, low_percentile: float = 1.0,
                        high_percentile: float = 99.0) -> torch.Tensor:
    """Robust min-max: the given percentiles of all voxels map to 0 and 1, clipped to [-0.5, 1.5]."""
    flat = image.reshape(-1).float()
    if flat.numel() > 200_000:  # percentiles on a fixed subsample are plenty and fast
        flat = flat[:: flat.numel() // 200_000 + 1]
    low = torch.quantile(flat, low_percentile / 100.0)
    high = torch.quantile(flat, high_percentile / 100.0)
    scale = torch.clamp(high - low, min=1e-6)
    return torch.clamp((image - low) / scale, -0.5, 1.5)
