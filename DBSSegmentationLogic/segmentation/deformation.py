"""Smooth deformations of the atlas priors in the ROI (torch, so a GPU speeds them up).

Two stages, both moving the priors onto the case: an affine (12 parameters, in the ROI's normalised
coordinates) that corrects the residual error of the localization, then a dense displacement field on
the working grid, made smooth by a Gaussian filter of its parameters and a membrane penalty (squared
gradient), so it cannot fold in practice; the Jacobian determinant is checked afterwards
(:func:`jacobian_determinant`). Displacements are in voxels of the grid they live on, in (i, j, k) order.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_smooth(field: torch.Tensor, sigma_vox: float) -> torch.Tensor:
    """Separable Gaussian filter of a (C, D, H, W) tensor, replicated borders."""
    if sigma_vox <= 0:
        return field
    radius = max(1, int(math.ceil(2.5 * sigma_vox)))
    x = torch.arange(-radius, radius + 1, dtype=field.dtype, device=field.device)
    kernel = torch.exp(-0.5 * (x / sigma_vox) ** 2)
    kernel = kernel / kernel.sum()
    channels = field.shape[0]
    out = field[None]
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), kernel.reshape(shape).repeat(channels, 1, 1, 1, 1),
                       groups=channels)
    return out[0]


def affine_base_grid(theta: torch.Tensor, shape) -> torch.Tensor:
    """(D, H, W, 3) sampling grid of the affine ``theta`` (3 x 4, normalised coordinates, align_corners)."""
    return F.affine_grid(theta[None], (1, 1) + tuple(shape), align_corners=True)[0]


def warp(volume: torch.Tensor, displacement_vox: torch.Tensor | None, base_grid: torch.Tensor) -> torch.Tensor:
    """Sample ``volume`` (C, D, H, W) at base grid + displacement (3, D, H, W, voxels, i/j/k order)."""
    grid = base_grid
    if displacement_vox is not None:
        depth, height, width = volume.shape[1:]
        scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1), 2.0 / (depth - 1)],
                             dtype=volume.dtype, device=volume.device)
        grid = base_grid + displacement_vox.permute(1, 2, 3, 0) * scale
    return F.grid_sample(volume[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]


def membrane_energy(displacement: torch.Tensor) -> torch.Tensor:
    """Mean squared finite difference of the displacement along each axis."""
    return sum((displacement.diff(dim=axis) ** 2).mean() for axis in (1, 2, 3))


def upsample_displacement(displacement: torch.Tensor, shape) -> torch.Tensor:
    """A displacement (voxels of a coarse grid spanning the same extent) onto a finer grid of ``shape``."""
    coarse = displacement.shape[1:]
    factors = torch.tensor([(shape[2] - 1) / (coarse[2] - 1), (shape[1] - 1) / (coarse[1] - 1),
                            (shape[0] - 1) / (coarse[0] - 1)], dtype=displacement.dtype,
                           device=displacement.device).reshape(3, 1, 1, 1)
    return F.interpolate(displacement[None], size=tuple(shape), mode="trilinear", align_corners=True)[0] * factors


def jacobian_determinant(displacement_vox: torch.Tensor) -> torch.Tensor:
    """Determinant of the Jacobian of x -> x + u(x) (u in voxels, (3, D, H, W), i/j/k order)."""
    rows = []
    for component in range(3):
        u = displacement_vox[component]
        rows.append(torch.stack([torch.gradient(u, dim=2)[0], torch.gradient(u, dim=1)[0],
                                 torch.gradient(u, dim=0)[0]], -1))
    jacobian = torch.stack(rows, -2) + torch.eye(3, dtype=displacement_vox.dtype, device=displacement_vox.device)
    return torch.linalg.det(jacobian)
