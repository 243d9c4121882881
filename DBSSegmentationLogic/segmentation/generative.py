"""The generative model fitted to one case (after FreeSurfer's SAMSEG): atlas priors deformed onto the
image, times a Gaussian intensity model per class estimated from the image, normalised into posteriors.

All in the template-space ROI (template.py), on the image already resampled there through the
localization's affine. Steps, on a 2 mm working grid (the ROI averaged 2 x 2 x 2):

1. EM estimate of the class Gaussians under the prior (intensity_model.fit_gaussians);
2. affine stage: the priors through an affine that maximises the mixture likelihood of the image
   (Adam; a few rounds, the Gaussians re-estimated between rounds);
3. optional deformation stage (``deformation_rounds``, 0 as shipped: it measured no better than the
   affine stage alone, docs/segmentation.md): a dense displacement (Gaussian-smoothed parameters,
   membrane penalty) that maximises the same likelihood, Gaussians re-estimated between rounds;
4. on the 1 mm ROI: the priors through the affine (+ displacement); the Gaussians refined, then re-estimated
   from the pure voxels only (prior >= ``gaussian_purity`` for some class: partial-volume voxels at the
   boundaries would widen a nucleus's Gaussian and make it grow, intensity_model.fit_gaussians_to_pure_voxels);
   posterior of every class = prior x likelihood, normalised; summed per output label (SNc + SNr = SN; the
   rest background).

Where a nucleus has no contrast (the STN on T1) its likelihood equals its neighbours' and its posterior
stays the deformed prior: the atlas shape, carried by the anatomy around it that does show.
Deterministic: no random draw anywhere (fixed start, full-batch optimisation).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import deformation
from .intensity_model import fit_gaussians, fit_gaussians_to_pure_voxels, log_gaussian, normalise_roi
from .priors import AtlasPrior


@dataclass
class Fit:
    posterior: np.ndarray  # (11, k, j, i) per output label, ROI grid
    prior: np.ndarray  # (11, k, j, i) the undeformed prior per output label (atlas through the localization)
    min_jacobian: float
    affine: np.ndarray  # 3 x 4, normalised ROI coordinates
    max_displacement_mm: float
    means: list
    seconds: float
    log: list = field(default_factory=list)
    affine_prior: np.ndarray | None = None  # (11, k, j, i) the prior through the engine's affine stage only
    atlas_information_nats: float = 0.0  # how much the atlas's layout explains the image (atlas_information_nats)


def _group_sum(probabilities: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    out = torch.zeros((count,) + tuple(probabilities.shape[1:]), dtype=probabilities.dtype,
                      device=probabilities.device)
    return out.index_add_(0, groups, probabilities)


def _mixture_nll(warped_groups: torch.Tensor, log_likelihood: torch.Tensor) -> torch.Tensor:
    return -torch.logsumexp(torch.log(warped_groups + 1e-6) + log_likelihood, 0).mean()


class _Adam:
    """Adam on a list of tensors (torch.optim would import torch._dynamo on first use: 2.5 s)."""

    def __init__(self, variables, rate: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.variables, self.rate, self.betas, self.eps, self.t = variables, rate, betas, eps, 0
        self.m = [torch.zeros_like(v) for v in variables]
        self.v = [torch.zeros_like(v) for v in variables]

    def zero_grad(self):
        for variable in self.variables:
            variable.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for variable, m, v in zip(self.variables, self.m, self.v):
            m.mul_(b1).add_(variable.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(variable.grad, variable.grad, value=1 - b2)
            step = self.rate * (m / (1 - b1 ** self.t)) / ((v / (1 - b2 ** self.t)).sqrt() + self.eps)
            variable.sub_(step)


def atlas_information_nats(prior_groups: torch.Tensor, group_likelihood: torch.Tensor) -> float:
    """Mean log-likelihood gain per voxel (nats) of the mixture with the atlas's spatial priors over the
    same mixture with the priors' average everywhere: how much *where* the atlas puts each class explains
    the image. Near 0 when the atlas lies elsewhere than the anatomy (a failed localization); the classes'
    Gaussians are the same in both, so a contrast without tissue differences also scores low."""
    spatial = torch.logsumexp(torch.log(prior_groups + 1e-6) + group_likelihood, 0)
    flat_prior = prior_groups.mean(1, keepdim=True)
    flat = torch.logsumexp(torch.log(flat_prior + 1e-6) + group_likelihood, 0)
    return float((spatial - flat).mean())


def fit_case(image_roi: np.ndarray, inside: np.ndarray, prior: AtlasPrior, device: torch.device,
             parameters: dict | None = None, deform: bool = True) -> Fit:
    """Fit the model to the ROI image (array [k, j, i]); ``inside``: ROI voxels inside the field of view.
    ``deform`` False: no affine or deformation stage (the atlas through the localization).

    On the CPU it runs on one thread: its tensors are small (a few hundred thousand voxels), and with
    several threads on a busy machine the thread synchronisation cost ten times the work (measured:
    0.8 s on one thread, 10 s on two with other jobs running)."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _fit_case(image_roi, inside, prior, device, parameters, deform)
    finally:
        torch.set_num_threads(threads)


def _fit_case(image_roi, inside, prior: AtlasPrior, device, parameters, deform) -> Fit:
    started = time.perf_counter()
    p = {**prior.manifest["parameters"], **(parameters or {})}
    log = []
    groups = torch.from_numpy(prior.groups).to(device)
    count = prior.number_of_groups
    probabilities = torch.from_numpy(prior.probabilities).to(device)
    image = torch.from_numpy(np.ascontiguousarray(image_roi, dtype=np.float32)).to(device)
    mask = torch.from_numpy(np.ascontiguousarray(inside)).to(device)
    image = normalise_roi(image, mask)
    shape1 = tuple(image.shape)
    floor = float(p["variance_floor"])

    image2 = F.avg_pool3d(image[None, None], 2)[0, 0]
    mask2 = (F.avg_pool3d(mask[None, None].float(), 2)[0, 0] > 0.99).reshape(-1)
    probabilities2 = F.avg_pool3d(probabilities[None], 2)[0]
    prior_groups2 = _group_sum(probabilities2, groups, count)
    shape2 = tuple(image2.shape)
    voxels2 = image2.reshape(-1)[mask2]
    identity = torch.eye(3, 4, device=device)
    theta = torch.zeros(3, 4, device=device, requires_grad=True)
    displacement = torch.zeros((3,) + shape2, device=device, requires_grad=True)
    smoothing_vox = float(p["deformation_smoothing_mm"]) / 2.0
    mean = variance = None

    def stage_prior(stage: str) -> torch.Tensor:
        if stage == "affine":
            base = deformation.affine_base_grid(identity + theta, shape2)
            return deformation.warp(prior_groups2, None, base).reshape(count, -1)[:, mask2]
        field_ = deformation.gaussian_smooth(displacement, smoothing_vox)
        base = deformation.affine_base_grid(identity + theta.detach(), shape2)
        return deformation.warp(prior_groups2, field_, base).reshape(count, -1)[:, mask2]

    stages = [("affine", p["affine_rounds"], p["affine_steps"], p["affine_learning_rate"], theta),
              ("deformation", p["deformation_rounds"], p["deformation_steps"], p["deformation_learning_rate"],
               displacement)]
    for stage, rounds, steps, rate, variable in (stages if deform else []):
        voxels = voxels2
        for round_index in range(int(rounds)):
            with torch.no_grad():
                mean, variance = fit_gaussians(voxels, stage_prior(stage), mean, variance,
                                               8 if mean is None else 4, floor)
            likelihood = log_gaussian(voxels, mean, variance)
            optimiser = _Adam([variable], float(rate))
            for _ in range(int(steps)):
                optimiser.zero_grad()
                loss = _mixture_nll(stage_prior(stage), likelihood)
                if stage == "deformation":
                    loss = loss + float(p["deformation_regularisation"]) * deformation.membrane_energy(
                        deformation.gaussian_smooth(displacement, smoothing_vox))
                loss.backward()
                optimiser.step()
            log.append({"stage": stage, "round": round_index, "loss": round(float(loss.detach()), 5)})

    with torch.no_grad():
        base1 = deformation.affine_base_grid(identity + theta, shape1)
        affine1 = deformation.warp(probabilities, None, base1)  # (K, k, j, i)
        field1 = deformation.upsample_displacement(deformation.gaussian_smooth(displacement, smoothing_vox), shape1)
        warped = deformation.warp(probabilities, field1, base1) if deform and int(p["deformation_rounds"]) > 0 \
            else affine1
        mask1 = mask.reshape(-1)
        voxels1 = image.reshape(-1)[mask1]
        warped_flat = warped.reshape(warped.shape[0], -1)
        group_prior = _group_sum(warped_flat[:, mask1], groups, count)
        mean, variance = fit_gaussians(voxels1, group_prior, mean, variance, 2 if deform else 8, floor)
        if float(p["gaussian_purity"]) > 0:
            mean, variance = fit_gaussians_to_pure_voxels(voxels1, group_prior, mean, variance,
                                                          float(p["gaussian_purity"]), variance_floor=floor)
        group_likelihood = log_gaussian(voxels1, mean, variance)
        log_posterior = torch.log(warped_flat + 1e-6)
        log_posterior[:, mask1] += group_likelihood[groups]
        information = atlas_information_nats(group_prior, group_likelihood)
        posterior = torch.softmax(log_posterior, 0)
        labels = torch.from_numpy(prior.output_labels).to(device)
        per_label = torch.zeros((int(labels.max()) + 1, posterior.shape[1]), device=device)
        per_label.index_add_(0, labels, posterior)
        per_label = per_label.reshape((-1,) + shape1)
        affine_per_label = torch.zeros_like(per_label).reshape(per_label.shape[0], -1)
        affine_per_label.index_add_(0, labels, affine1.reshape(affine1.shape[0], -1))
        min_jacobian = float(deformation.jacobian_determinant(field1).min())
        affine = (identity + theta).detach()
        max_displacement_mm = float(field1.abs().max())
    return Fit(per_label.cpu().numpy(), prior.output_prior(), min_jacobian, affine.cpu().numpy(),
               max_displacement_mm, mean.cpu().numpy().round(4).tolist(), time.perf_counter() - started, log,
               affine_per_label.reshape(per_label.shape).cpu().numpy(), information)
