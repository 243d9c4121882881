"""Figure of a frame registration: the detected fiducials over the localizer model, and one slice.

Left: the model's rods (grey) in Leksell coordinates, seen from the front and from the side, with every
fiducial mapped into the frame by the fitted transform, coloured by its residual. Right: one axial slice
of the image with the detected dots (circles) and where the fitted model puts each rod (crosses).
matplotlib with the Agg backend: no display needed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..geometry.frame import leksell_from_frame_ras  # noqa: E402
from .registration import FrameRegistration  # noqa: E402


def registration_figure(registration: FrameRegistration, path) -> Path:
    """Write the figure (PNG) and return its path."""
    geometry = registration.geometry
    fiducials = registration.fiducial_set
    matrix = registration.image_to_frame_ras
    residuals = fiducials.residuals(matrix)
    mapped = leksell_from_frame_ras(fiducials.image_ras @ matrix[:3, :3].T + matrix[:3, 3])
    figure, axes = plt.subplots(1, 3, figsize=(16, 5.6))
    vmax = max(0.5, float(np.percentile(residuals, 99)))
    for axis, (first, second, title) in zip(axes[:2], ((0, 2, "front view (Leksell X, Z)"),
                                                       (1, 2, "side view (Leksell Y, Z)"))):
        for ends in geometry.rods_leksell().values():
            axis.plot(ends[:, first], ends[:, second], color="0.6", linewidth=2.5, zorder=1)
        scatter = axis.scatter(mapped[:, first], mapped[:, second], c=residuals, cmap="viridis", vmin=0, vmax=vmax,
                               s=9, zorder=2)
        axis.set_xlabel("XYZ"[first] + " (mm)")
        axis.set_ylabel("Z (mm)")
        axis.invert_yaxis()  # Leksell Z grows downwards (inferior)
        if first == 0:
            axis.invert_xaxis()  # X grows to the patient's left: show the patient's right on the left
        axis.set_aspect("equal")
        axis.set_title(title)
    figure.colorbar(scatter, ax=axes[:2], shrink=0.8, label="fiducial residual (mm)")
    _slice_panel(axes[2], registration)
    figure.suptitle(f"Frame registration — {registration.localizer}\nRMS residual {registration.rms_residual_mm:.2f} mm, "
                    f"max {registration.max_residual_mm:.2f} mm, {len(fiducials)} fiducials on "
                    f"{registration.slices_used} slices; N-localizers: {', '.join(registration.n_localizers_found)}",
                    fontsize=10)
    path = Path(path)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _slice_panel(axis, registration: FrameRegistration) -> None:
    stack, dots, fiducials = registration.stack, registration.dots, registration.fiducial_set
    used = np.unique(fiducials.slice)
    k = int(used[len(used) // 2])
    image = stack.array[k].astype(float)
    low, high = np.percentile(image, [1, 99.9])
    # Pixel (i, j) -> mm in the slice, as stored (no resampling): i right-wards, j down-wards on screen.
    si, sj = stack.in_plane_mm
    extent = (-0.5 * si, (image.shape[1] - 0.5) * si, (image.shape[0] - 0.5) * sj, -0.5 * sj)
    axis.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent)
    in_slice = dots.slice == k
    axis.scatter(dots.ijk[in_slice, 0] * si, dots.ijk[in_slice, 1] * sj, s=40, facecolors="none",
                 edgecolors="orange", linewidths=0.8, label="bright dots")
    used_dots = fiducials.dot[fiducials.slice == k]
    axis.scatter(dots.ijk[used_dots, 0] * si, dots.ijk[used_dots, 1] * sj, s=60, facecolors="none",
                 edgecolors="red", linewidths=1.2, label="fiducials")
    # Where the fitted model crosses this slice's central plane.
    inverse = np.linalg.inv(registration.image_to_frame_ras)
    ras_to_ijk = np.linalg.inv(stack.ijk_to_ras)
    normal = stack.slice_normal
    plane_point = stack.ijk_to_ras[:3, :3] @ np.array([0.0, 0.0, k]) + stack.ijk_to_ras[:3, 3]
    crossings = []
    for ends in registration.geometry.rods.values():
        ends_image = ends @ inverse[:3, :3].T + inverse[:3, 3]
        heights = (ends_image - plane_point) @ normal
        if heights[0] == heights[1] or np.sign(heights[0]) == np.sign(heights[1]):
            continue
        point = ends_image[0] + heights[0] / (heights[0] - heights[1]) * (ends_image[1] - ends_image[0])
        crossings.append(ras_to_ijk[:3, :3] @ point + ras_to_ijk[:3, 3])
    if crossings:
        crossings = np.array(crossings)
        axis.scatter(crossings[:, 0] * si, crossings[:, 1] * sj, marker="+", s=80, color="cyan",
                     linewidths=1.2, label="fitted model")
    axis.set_title(f"slice {k} (as stored; mm)")
    axis.legend(loc="lower right", fontsize=7)
