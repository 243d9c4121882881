"""The segmentation network: a small 3D U-Net (instance norm, LeakyReLU, 3 poolings).

Its input is the normalised ROI image plus three channels holding each voxel's position in the ROI
(x, y, z scaled to [-1, 1]): the ROI is aligned to the template, so position is a strong prior (like an
atlas) that the image then refines; without it the network sat for hundreds of steps in the
all-background minimum.
"""
from __future__ import annotations

import torch
from torch import nn


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
    )


class UNet3D(nn.Module):
    """Input (N, 1, D, H, W) with D, H, W divisible by 2**levels; output logits (N, classes, D, H, W)."""

    def __init__(self, num_classes: int, base_channels: int = 8, levels: int = 3, in_channels: int = 4):
        super().__init__()
        self.architecture = {"name": "UNet3D", "num_classes": num_classes, "base_channels": base_channels,
                             "levels": levels, "in_channels": in_channels}
        channels = [base_channels * 2**level for level in range(levels + 1)]
        self.encoders = nn.ModuleList()
        previous = in_channels
        for c in channels:
            self.encoders.append(_block(previous, c))
            previous = c
        self.pool = nn.MaxPool3d(2)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(levels)):
            self.upsamplers.append(nn.ConvTranspose3d(channels[level + 1], channels[level], 2, stride=2))
            self.decoders.append(_block(2 * channels[level], channels[level]))
        self.head = nn.Conv3d(channels[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, encoder in enumerate(self.encoders):
            x = encoder(x)
            if index < len(self.encoders) - 1:
                skips.append(x)
                x = self.pool(x)
        for upsample, decoder in zip(self.upsamplers, self.decoders):
            x = upsample(x)
            x = decoder(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


def build_model(architecture: dict) -> UNet3D:
    if architecture.get("name") != "UNet3D":
        raise ValueError(f"unknown architecture {architecture.get('name')!r}")
    return UNet3D(architecture["num_classes"], architecture["base_channels"], architecture["levels"],
                  architecture.get("in_channels", 1))


def network_input(image: torch.Tensor, in_channels: int = 4) -> torch.Tensor:
    """(D, H, W) normalised ROI image -> (1, in_channels, D, H, W): the image, then x, y, z in [-1, 1],
    then (in_channels 14) the ten atlas prior channels of :func:`template.roi_prior`."""
    if in_channels == 1:
        return image[None, None]
    depth, height, width = image.shape
    z, y, x = torch.meshgrid(torch.linspace(-1, 1, depth), torch.linspace(-1, 1, height),
                             torch.linspace(-1, 1, width), indexing="ij")
    channels = [image[None], x[None], y[None], z[None]]
    if in_channels == 14:
        from ..segmentation.template import roi_prior

        channels.append(torch.from_numpy(roi_prior()))
    elif in_channels != 4:
        raise ValueError(f"unsupported number of input channels: {in_channels}")
    return torch.cat(channels)[None]
