"""Readable post-operative report: fusion-quality figure, planned-versus-actual lead figures, Markdown.

All figures are drawn in the MRI's (planning) RAS space, on planes oriented by AC-PC axes, in the
radiological convention of Slicer's slice views (the patient's right on the left of the picture);
every panel names its sides. The CT is shown through the fusion (``ct_to_mri_ras``).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from ..geometry.acpc import AcpcSpace, describe_acpc_point  # noqa: E402
from ..io.figures import grey_window, save_figure  # noqa: E402
from ..io.volumes import Volume  # noqa: E402

FUSION_HALF_WIDTH_MM = 95.0
FUSION_PIXEL_MM = 0.5
TRAJECTORY_PIXEL_MM = 0.25
BONE_HU = 400.0
METAL_CONTOUR_HU = 2000.0
CHECKER_TILE_MM = 20.0
CHECKER_CT_WINDOW_HU = (-10.0, 90.0)
TRAJECTORY_CT_WINDOW_HU = (-100.0, 2500.0)
CT_SLAB_HALF_MM = 4.0


def sample(volume: Volume, points_ras: np.ndarray, order: int = 1, outside: float = 0.0) -> np.ndarray:
    """Values of ``volume`` at RAS points (..., 3), without copying the whole array to float."""
    ijk = volume.ras_to_ijk_points(points_ras)
    coordinates = ijk[..., ::-1].reshape(-1, 3).T
    values = ndimage.map_coordinates(volume.array, coordinates, order=order, mode="constant", cval=outside,
                                     output=np.float32)
    return values.reshape(points_ras.shape[:-1])


def _plane_ras(origin_ras, u_ras, v_ras, u_range, v_range, pixel_mm):
    """RAS points of a plane grid: rows follow v (upwards with origin='lower'), columns follow u."""
    us = np.arange(u_range[0], u_range[1] + 1e-9, pixel_mm)
    vs = np.arange(v_range[0], v_range[1] + 1e-9, pixel_mm)
    grid_v, grid_u = np.meshgrid(vs, us, indexing="ij")
    return (np.asarray(origin_ras, float) + grid_u[..., None] * np.asarray(u_ras, float)
            + grid_v[..., None] * np.asarray(v_ras, float))


def _ct_points(points_mri_ras: np.ndarray, ct_to_mri_ras: np.ndarray) -> np.ndarray:
    mri_to_ct = np.linalg.inv(ct_to_mri_ras)
    return points_mri_ras @ mri_to_ct[:3, :3].T + mri_to_ct[:3, 3]


def _project(points_ras, origin_ras, u_ras, v_ras) -> np.ndarray:
    relative = np.atleast_2d(points_ras) - origin_ras
    return np.column_stack([relative @ u_ras, relative @ v_ras])


def _side_labels(axis, left_text: str, right_text: str) -> None:
    axis.text(0.01, 0.98, left_text, color="white", transform=axis.transAxes, va="top", fontsize=12, weight="bold")
    axis.text(0.99, 0.98, right_text, color="white", transform=axis.transAxes, va="top", ha="right", fontsize=12,
              weight="bold")


def _checkerboard(first: np.ndarray, second: np.ndarray, tile_px: int) -> np.ndarray:
    rows, columns = np.indices(first.shape)
    return np.where(((rows // tile_px) + (columns // tile_px)) % 2 == 0, first, second)


def _normalised(image: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0)


def fusion_figure(mri: Volume, ct: Volume, ct_to_mri_ras: np.ndarray, acpc: AcpcSpace, centre_ras, leads: list,
                  path, metal_threshold_hu: float = 800.0, title: str = "") -> Path:
    """Three AC-PC-oriented planes through ``centre_ras`` (a target). Top: the MRI with the fused CT's
    bone (yellow) and metal (red) contours; a misfusion shows as skull contours off the brain's or
    head's edge. Bottom: a checkerboard of MRI and fused CT tiles; edges must run on across tiles."""
    x_axis, y_axis, z_axis = acpc.axes_ras
    views = (
        ("axial", -x_axis, y_axis, ("R", "L"), "patient right ← mm → patient left", "posterior ← mm → anterior"),
        ("coronal", -x_axis, z_axis, ("R", "L"), "patient right ← mm → patient left", "inferior ← mm → superior"),
        ("sagittal", y_axis, z_axis, ("P", "A"), "posterior ← mm → anterior", "inferior ← mm → superior"),
    )
    span = (-FUSION_HALF_WIDTH_MM, FUSION_HALF_WIDTH_MM)
    extent = [span[0], span[1], span[0], span[1]]
    figure, axes = plt.subplots(2, 3, figsize=(16, 11))
    centre = np.asarray(centre_ras, float)
    metal_level = max(METAL_CONTOUR_HU, metal_threshold_hu)
    for column, (name, u, v, sides, u_label, v_label) in enumerate(views):
        points = _plane_ras(centre, u, v, span, span, FUSION_PIXEL_MM)
        image = sample(mri, points, 1)
        ct_plane = sample(ct, _ct_points(points, ct_to_mri_ras), 1, outside=-1000.0)
        low, high = grey_window(image)
        axis = axes[0, column]
        axis.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent, origin="lower")
        if (ct_plane > BONE_HU).any():
            axis.contour(ct_plane, levels=[BONE_HU], colors=["yellow"], linewidths=0.7, extent=extent, origin="lower")
        if (ct_plane > metal_level).any():
            axis.contour(ct_plane, levels=[metal_level], colors=["red"], linewidths=1.0, extent=extent, origin="lower")
        for lead in leads:
            axis.plot(*_project(lead["tip_ras"], centre, u, v)[0], "x", color="red", ms=7, mew=1.5)
        axis.plot(0, 0, "+", color="lime", ms=12, mew=1.5)
        axis.set_title(f"{name}: MRI + CT contours (AC-PC oriented, through the target)", fontsize=9)
        board = _checkerboard(_normalised(image, low, high), _normalised(ct_plane, *CHECKER_CT_WINDOW_HU),
                              int(round(CHECKER_TILE_MM / FUSION_PIXEL_MM)))
        axes[1, column].imshow(board, cmap="gray", vmin=0, vmax=1, extent=extent, origin="lower")
        axes[1, column].set_title(f"{name}: checkerboard MRI / fused CT ({CHECKER_TILE_MM:g} mm tiles)", fontsize=9)
        for row in range(2):
            axes[row, column].set_xlim(*span)
            axes[row, column].set_ylim(*span)
            axes[row, column].set_xlabel(u_label, fontsize=8)
            axes[row, column].set_ylabel(v_label, fontsize=8)
            _side_labels(axes[row, column], *sides)
    axes[0, 0].plot([], [], color="yellow", label=f"CT bone ({BONE_HU:.0f} HU)")
    axes[0, 0].plot([], [], color="red", label=f"CT metal ({metal_level:.0f} HU)")
    axes[0, 0].plot([], [], "x", color="red", label="lead tips")
    axes[0, 0].plot([], [], "+", color="lime", label="planned target")
    axes[0, 0].legend(loc="lower right", fontsize=7)
    figure.suptitle(title or "Fusion quality: planning MRI and the fused post-operative CT", fontsize=11)
    figure.tight_layout()
    return save_figure(figure, path)


def trajectory_figure(mri: Volume, ct: Volume, ct_to_mri_ras: np.ndarray, acpc: AcpcSpace, trajectory: dict,
                      lead: dict, error: dict | None, path) -> Path:
    """Planned trajectory (cyan) and the actual lead (red axis, orange contacts, red tip) in two planes
    containing the planned trajectory (side view and front view), on the MRI (top) and the fused CT (bottom).
    The actual lead is projected onto each plane; its distance from the plane is in the legend."""
    target = np.array(trajectory["target_ras"], float)
    entry = np.array(trajectory["entry_ras"], float)
    length = float(np.linalg.norm(entry - target))
    along = (entry - target) / length
    x_axis, y_axis, _ = acpc.axes_ras
    views = (("side view, from the patient's right", y_axis, "posterior", "anterior"),
             ("front view, radiological", -x_axis, "patient right", "patient left"))
    tip = np.asarray(lead["tip_ras"], float)
    direction = np.asarray(lead["direction_ras"], float)
    contacts = np.asarray(lead["contact_centres_ras"], float)
    lead_line = tip + np.outer([0.0, length], direction)
    u_range, v_range = (-25.0, 25.0), (-15.0, length + 5.0)
    extent = [*u_range, *v_range]
    figure, axes = plt.subplots(2, 2, figsize=(11, 12))
    for column, (title, hint, low_name, high_name) in enumerate(views):
        across = hint - np.dot(hint, along) * along
        across /= np.linalg.norm(across)
        points = _plane_ras(target, across, along, u_range, v_range, TRAJECTORY_PIXEL_MM)
        normal = np.cross(across, along)
        # The CT as a maximum-intensity projection of a slab around the plane: the lead shows even when
        # it runs a few millimetres off the planned trajectory's plane.
        slab = np.max([sample(ct, _ct_points(points + offset * normal, ct_to_mri_ras), 1, outside=-1000.0)
                       for offset in np.arange(-CT_SLAB_HALF_MM, CT_SLAB_HALF_MM + 1e-9, 0.5)], axis=0)
        for row, (image_name, image, window) in enumerate((
                ("MRI", sample(mri, points, 1), None),
                (f"CT ±{CT_SLAB_HALF_MM:g} mm MIP", slab, TRAJECTORY_CT_WINDOW_HU))):
            axis = axes[row, column]
            low, high = window or grey_window(image)
            axis.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent, origin="lower")
            axis.plot([0, 0], [0, length], color="cyan", lw=1.3, label="planned trajectory")
            axis.plot(0, 0, "+", color="cyan", ms=14, mew=2, label="planned target")
            projected = _project(lead_line, target, across, along)
            axis.plot(projected[:, 0], projected[:, 1], color="red", lw=1.0, ls="--", label="actual lead axis")
            projected_contacts = _project(contacts, target, across, along)
            axis.plot(projected_contacts[:, 0], projected_contacts[:, 1], "o", color="orange", ms=4, mfc="none",
                      label="contacts")
            projected_tip = _project(tip, target, across, along)[0]
            out_of_plane = float(np.dot(tip - target, normal))
            axis.plot(*projected_tip, "x", color="red", ms=9, mew=2, label=f"tip ({out_of_plane:+.1f} mm off the plane)")
            axis.set_xlim(*u_range)
            axis.set_ylim(*v_range)
            axis.set_title(f"{trajectory['name']} — {image_name}: {title}", fontsize=9)
            axis.set_xlabel(f"{low_name} ← mm → {high_name}", fontsize=8)
            axis.set_ylabel("mm above the planned target along the trajectory", fontsize=8)
            if row == 0 and column == 0:
                axis.legend(loc="upper right", fontsize=7)
    if error:
        figure.suptitle(f"{trajectory['name']}: Euclidean {error['euclidean_mm']:.1f} mm, depth {error['depth_mm']:+.1f} mm, "
                        f"radial {error['radial_mm']:.1f} mm, angle {error['angular_deg']:.1f}°", fontsize=11)
    return save_figure(figure, path)


def _fmt(values, digits=1) -> str:
    return ", ".join(f"{v:+.{digits}f}" for v in values)


def _plain(values, digits=1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def acpc_reading(acpc_mm, side: str) -> str:
    """A tip offset in AC-PC axes read clinically: medial/lateral for the lead's side, anterior/posterior,
    superior/inferior."""
    x, y, z = (float(v) for v in acpc_mm)
    lateral = -x if side == "left" else x
    return (f"{abs(lateral):.1f} mm {'lateral' if lateral >= 0 else 'medial'}, "
            f"{abs(y):.1f} mm {'anterior' if y >= 0 else 'posterior'}, "
            f"{abs(z):.1f} mm {'superior' if z >= 0 else 'inferior'}")


def markdown_report(result: dict, figures: dict, acpc: AcpcSpace, trajectories: dict) -> str:
    """The readable post-operative report: fusion, per side tip, contacts and errors, warnings, figures."""
    fusion = result["fusion"]
    metric = fusion["metric"]
    lines = [
        "# DBS post-operative lead placement", "",
        "Research software: every value must be checked against the images by the surgical team.", "",
        f"- Plan: `{result['plan']}`; post-operative CT: `{result['ct']}`; MRI: `{result.get('mri', '')}`",
        f"- Fusion: {fusion['method']}; overlap {100 * fusion['overlap']:.0f}%"
        + (f"; metric {metric:.4f}" if metric is not None else "") + f"; {fusion['seconds']:.1f} s",
        "- Coordinates: RAS mm of the planning MRI; AC-PC: x right, y anterior, z superior from the MCP; "
        "frame: Leksell X (left), Y (anterior), Z (inferior).",
        "- Errors (DESIGN §6): depth positive = too deep; radial = distance of the tip from the planned line; "
        "per-axis = actual tip minus planned target.", "",
    ]
    for warning in result["warnings"]:
        lines += [f"> **Warning**: {warning}", ""]
    for lead in result["leads"]:
        side = lead["side"]
        clinical = describe_acpc_point(acpc.to_acpc(lead["tip_ras"]))
        lines += [f"## {side.capitalize()} lead ({lead['source']}, {lead['model']})", "",
                  "| | value |", "|---|---|",
                  f"| Tip RAS (mm) | {_plain(lead['tip_ras'])} |",
                  f"| Tip AC-PC | {clinical['lateral_mm']:.1f} mm {clinical['side']}, AP {clinical['ap_mm']:+.1f}, "
                  f"vertical {clinical['vertical_mm']:+.1f} |",
                  f"| Direction (tip → entry, RAS) | {_plain(lead['direction_ras'], 3)} |"]
        for index, contact in enumerate(lead["contact_centres_ras"]):
            lines.append(f"| Contact {index} centre RAS (mm) | {_plain(contact)} |")
        lines.append("")
        error = result["errors"].get(side)
        trajectory = trajectories.get(side)
        if error and trajectory:
            at_plane = error["radial_at_target_plane_mm"]
            lines += [f"Against the plan **{trajectory['name']}** (target RAS {_plain(trajectory['target_ras'])}):", "",
                      "| error | value |", "|---|---|",
                      f"| Euclidean (mm) | {error['euclidean_mm']:.2f} |",
                      f"| Depth (mm, + too deep) | {error['depth_mm']:+.2f} |",
                      f"| Radial (mm) | {error['radial_mm']:.2f} |",
                      f"| Radial at the target plane (mm) | {'—' if at_plane is None else f'{at_plane:.2f}'} |",
                      f"| Angular (°) | {error['angular_deg']:.2f} |",
                      f"| RAS R / A / S (mm) | {_fmt(error['ras_mm'], 2)} |",
                      f"| AC-PC x (right) / y (anterior) / z (superior) (mm) | {_fmt(error['acpc_mm'], 2)} |",
                      f"| AC-PC reading | {acpc_reading(error['acpc_mm'], side)} |",
                      f"| Frame X / Y / Z (mm) | {'—' if error['frame_mm'] is None else _fmt(error['frame_mm'], 2)} |",
                      ""]
        else:
            lines += ["No planned trajectory on this side: no error computed.", ""]
    lines += ["## Figures", ""]
    lines += [f"![{name}]({Path(path).name})" for name, path in figures.items()]
    return "\n".join(lines) + "\n"
