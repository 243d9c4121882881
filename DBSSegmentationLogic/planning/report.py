"""Readable plan report: Markdown summary and figures (matplotlib slices, VTK off-screen 3D view).

Image slices are drawn in the radiological convention used by Slicer's slice views: the patient's
right on the left of the picture. Every panel names the sides, so none depends on that convention.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from ..geometry.acpc import AcpcSpace, describe_acpc_point  # noqa: E402
from ..io.figures import grey_window, save_figure  # noqa: E402
from ..io.library_output import captured_native_stderr, quiet_vtk  # noqa: E402
from ..io.staged_output import atomic_output  # noqa: E402
from ..io.volumes import Volume  # noqa: E402
from ..segmentation.labels import STRUCTURES  # noqa: E402

AXIAL_HALF_WIDTH_MM = 32.0
AXIAL_AP_RANGE_MM = (-30.0, 22.0)
PIXEL_MM = 0.25


def _sample(volume: Volume, points_ras: np.ndarray, order: int) -> np.ndarray:
    ijk = volume.ras_to_ijk_points(points_ras)
    kji = ijk[..., ::-1].reshape(-1, 3).T
    values = ndimage.map_coordinates(volume.array.astype(np.float32), kji, order=order, mode="constant", cval=0.0)
    return values.reshape(points_ras.shape[:-1])


def _plane(acpc: AcpcSpace, origin_acpc, u_acpc, v_acpc, u_range, v_range):
    """RAS points of a plane grid in AC-PC space: rows follow v, columns follow u."""
    us = np.arange(u_range[0], u_range[1] + 1e-9, PIXEL_MM)
    vs = np.arange(v_range[0], v_range[1] + 1e-9, PIXEL_MM)
    grid_v, grid_u = np.meshgrid(vs, us, indexing="ij")
    points_acpc = (np.asarray(origin_acpc, float) + grid_u[..., None] * np.asarray(u_acpc, float)
                   + grid_v[..., None] * np.asarray(v_acpc, float))
    return acpc.to_ras(points_acpc)


def _draw_labels(axis, labels_plane: np.ndarray, extent):
    for structure in STRUCTURES:
        mask = labels_plane == structure.code
        if mask.any():
            colour = np.array(structure.colour_rgb) / 255.0
            axis.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2, extent=extent, origin="lower")


def axial_construction_figure(mri: Volume, labels: Volume, acpc: AcpcSpace, plan: dict, path) -> Path:
    """The axial AC-PC plane of the construction: segmentation, red-nucleus line, A, B, targets,
    indirect targets (as in the source study's figures)."""
    direct = plan["direct"]
    level = direct.get("level_mm", -4.0)
    # Radiological: the picture's x axis runs from the patient's right (left of the picture) to left.
    points = _plane(acpc, [0, 0, level], [-1, 0, 0], [0, 1, 0],
                    (-AXIAL_HALF_WIDTH_MM, AXIAL_HALF_WIDTH_MM), AXIAL_AP_RANGE_MM)
    image, label_plane = _sample(mri, points, 1), _sample(labels, points, 0)
    extent = [-AXIAL_HALF_WIDTH_MM, AXIAL_HALF_WIDTH_MM, *AXIAL_AP_RANGE_MM]
    figure, axis = plt.subplots(figsize=(7, 6.2))
    low, high = grey_window(image)
    axis.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent, origin="lower")
    _draw_labels(axis, label_plane, extent)
    to_picture = lambda p: (-p[0], p[1])  # noqa: E731  AC-PC (x, y) -> picture (u, v)
    if direct.get("line_point_acpc"):
        point, direction = np.array(direct["line_point_acpc"][:2]), np.array(direct["line_direction_acpc"][:2])
        ends = [point + t * direction for t in (-60, 60)]
        axis.plot([-e[0] for e in ends], [e[1] for e in ends], color="yellow", lw=1, ls="--", label="RN anterior tangent")
        for side, letter in (("left", "A"), ("right", "B")):
            crossing = direct["sides"][side].get("crossing_acpc")
            if crossing:
                axis.plot(*to_picture(crossing), "o", color="yellow", ms=5)
                axis.annotate(letter, to_picture(crossing), color="yellow", xytext=(4, 4), textcoords="offset points")
    for trajectory in plan["trajectories"]:
        target = trajectory["target_acpc"]
        axis.plot(*to_picture(target), "+", color="cyan", ms=14, mew=2)
        axis.annotate(f"{trajectory['name']} (direct)", to_picture(target), color="cyan", xytext=(6, -12), textcoords="offset points", fontsize=8)
    indirect_name = {"gpi": "gpi"}.get(plan["target_kind"], "stn")
    for side in ("left", "right"):
        point = plan["indirect"][indirect_name][side]["acpc"]
        axis.plot(*to_picture(point), "x", color="magenta", ms=9, mew=2)
    axis.plot([], [], "x", color="magenta", label=f"indirect {indirect_name.upper()} target")
    axis.plot([], [], "+", color="cyan", label="direct target")
    axis.set_xlim(extent[0], extent[1])
    axis.set_ylim(extent[2], extent[3])
    axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{abs(value):g}"))
    axis.set_xlabel("patient RIGHT  ←  lateral (mm from the midline)  →  patient LEFT")
    axis.set_ylabel("posterior ← AP (mm from MCP) → anterior")
    axis.set_title(f"Axial AC-PC plane {level:+.1f} mm (radiological view)")
    axis.text(0.01, 0.98, "R", color="white", transform=axis.transAxes, va="top", fontsize=14, weight="bold")
    axis.text(0.97, 0.98, "L", color="white", transform=axis.transAxes, va="top", fontsize=14, weight="bold")
    axis.legend(loc="lower right", fontsize=7)
    return save_figure(figure, path)


def trajectory_figure(mri: Volume, labels: Volume, acpc: AcpcSpace, trajectory: dict, path) -> Path:
    """Two planes containing the trajectory: one seen from the side (sagittal), one from the front."""
    target = np.array(trajectory["target_acpc"])
    entry = np.array(trajectory["entry_acpc"])
    along = (entry - target) / np.linalg.norm(entry - target)
    figure, axes = plt.subplots(1, 2, figsize=(11, 6))
    views = (("sagittal (seen from the patient's right)", np.array([0.0, 1.0, 0.0]), "posterior", "anterior"),
             ("coronal (seen from the front, radiological)", np.array([-1.0, 0.0, 0.0]), "patient right", "patient left"))
    for axis, (title, across_hint, low_name, high_name) in zip(axes, views):
        across = across_hint - np.dot(across_hint, along) * along
        across /= np.linalg.norm(across)
        length = np.linalg.norm(entry - target)
        points = _plane(acpc, target, across, along, (-25, 25), (-15, length + 5))
        image, label_plane = _sample(mri, points, 1), _sample(labels, points, 0)
        extent = [-25, 25, -15, length + 5]
        low, high = grey_window(image)
        axis.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent, origin="lower")
        _draw_labels(axis, label_plane, extent)
        axis.plot([0, 0], [0, length], color="cyan", lw=1.5)
        axis.plot(0, 0, "+", color="cyan", ms=14, mew=2)
        axis.set_title(f"{trajectory['name']}: {title}", fontsize=9)
        axis.set_xlabel(f"{low_name} ← mm → {high_name}")
        axis.set_ylabel("mm above the target along the trajectory")
    return save_figure(figure, path)


def offscreen_render_window(vtk):
    """A VTK render window that draws without an X server, or the reason there is none.

    Measured with the vtk 9.7 wheel on Linux without DISPLAY: a plain vtkRenderWindow first tries X
    (logging "bad X server connection" on stderr) and then falls back to EGL; asking for the EGL window
    directly skips the X attempt. Without DISPLAY and without EGL (or OSMesa) libraries there is nothing
    to draw with, and VTK may crash trying, so the 3D view is skipped instead."""
    import ctypes.util

    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if not headless:
        return vtk.vtkRenderWindow(), None
    if hasattr(vtk, "vtkEGLRenderWindow") and ctypes.util.find_library("EGL"):
        return vtk.vtkEGLRenderWindow(), None
    if hasattr(vtk, "vtkOSOpenGLRenderWindow") and ctypes.util.find_library("OSMesa"):
        return vtk.vtkOSOpenGLRenderWindow(), None
    return None, "no display and no off-screen OpenGL (EGL or OSMesa) library to draw with"


def render_3d_or_reason(labels: Volume, trajectories: list, path, size=(900, 700)):
    """(path, None) when the 3D view was rendered, else (None, reason): VTK missing (the ``report``
    extra), no off-screen OpenGL, or a rendering failure. Never prints to stderr."""
    try:
        import vtk  # noqa: F401
    except ImportError:
        return None, 'VTK is not installed (pip install "dbs-targeting[report]")'
    try:
        return render_3d(labels, trajectories, path, size), None
    except Offscreen3DUnavailable as error:
        return None, str(error)


class Offscreen3DUnavailable(RuntimeError):
    """The 3D view cannot be drawn here (no off-screen OpenGL, or an empty picture)."""


def render_3d(labels: Volume, trajectories: list, path, size=(900, 700)) -> Path:
    """Surfaces of the segmented nuclei and the trajectories, rendered off-screen with VTK (no X server
    needed; VTK's messages go to the debug log, never to stderr)."""
    import vtk
    from vtk.util import numpy_support

    quiet_vtk(vtk)
    window, reason = offscreen_render_window(vtk)
    if window is None:
        raise Offscreen3DUnavailable(reason)

    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.08, 0.08, 0.12)
    image = vtk.vtkImageData()
    k, j, i = labels.array.shape
    image.SetDimensions(i, j, k)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(labels.array.ravel().astype(np.uint8), deep=True))
    to_ras = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            to_ras.SetElement(row, column, labels.ijk_to_ras[row, column])
    transform = vtk.vtkTransform()
    transform.SetMatrix(to_ras)
    for structure in STRUCTURES:
        if not np.any(labels.array == structure.code):
            continue
        surface = vtk.vtkDiscreteFlyingEdges3D()
        surface.SetInputData(image)
        surface.SetValue(0, structure.code)
        smooth = vtk.vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(surface.GetOutputPort())
        smooth.SetNumberOfIterations(15)
        placed = vtk.vtkTransformFilter()
        placed.SetInputConnection(smooth.GetOutputPort())
        placed.SetTransform(transform)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(placed.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*(np.array(structure.colour_rgb) / 255.0))
        renderer.AddActor(actor)
    for trajectory in trajectories:
        line = vtk.vtkLineSource()
        line.SetPoint1(*trajectory["entry_ras"])
        line.SetPoint2(*trajectory["target_ras"])
        tube = vtk.vtkTubeFilter()
        tube.SetInputConnection(line.GetOutputPort())
        tube.SetRadius(0.65)
        tube.SetNumberOfSides(16)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(tube.GetOutputPort())
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.85, 0.85, 0.9)
        renderer.AddActor(actor)
    camera = renderer.GetActiveCamera()
    renderer.ResetCamera()
    camera.SetViewUp(0, 0, 1)
    focal = np.array(camera.GetFocalPoint())
    camera.SetPosition(*(focal + np.array([0.0, 200.0, 90.0])))  # from the front, slightly above
    renderer.ResetCamera()
    camera.Zoom(1.3)
    # Seen from the front, the patient's right is on the viewer's left.
    for text, x_fraction in (("R", 0.03), ("L", 0.95)):
        label = vtk.vtkTextActor()
        label.SetInput(text)
        label.GetTextProperty().SetFontSize(28)
        label.GetTextProperty().BoldOn()
        label.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        label.SetPosition(x_fraction, 0.92)
        renderer.AddViewProp(label)
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(*size)
    with captured_native_stderr():
        window.Render()
        grabber = vtk.vtkWindowToImageFilter()
        grabber.SetInput(window)
        grabber.Update()
    pixels = grabber.GetOutput().GetPointData().GetScalars()
    if pixels is None or pixels.GetNumberOfTuples() == 0 or pixels.GetRange(0)[0] == pixels.GetRange(0)[1]:
        raise Offscreen3DUnavailable("the off-screen OpenGL drew an empty picture")
    path = Path(path)
    with atomic_output(path, ".png") as temporary:
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(temporary))
        writer.SetInputConnection(grabber.GetOutputPort())
        writer.Write()
    return path


def _fmt(values, digits=1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def markdown_report(plan: dict, figures: dict, quality: list | None = None) -> str:
    """The readable plan: one table per trajectory, failures, warnings and figures."""
    acpc = plan["acpc"]
    lines = [
        "# DBS plan", "",
        "Research software: every value must be checked against the images by the surgical team.", "",
        f"- Target: **{plan['target_kind'].upper()}**; mounting **{plan['mounting']}**; {plan['frame']}",
        f"- AC (RAS) {_fmt(acpc['ac_ras'])}; PC {_fmt(acpc['pc_ras'])}; midline point {_fmt(acpc['midline_ras'])}",
        f"- AC-PC length **{acpc['acpc_length_mm']:.1f} mm**; MCP (RAS) {_fmt(acpc['mcp_ras'])}", "",
    ]
    for side, reason in plan["failures"].items():
        lines += [f"> **{side.upper()} side not planned**: {reason}", ""]
    for t in plan["trajectories"]:
        clinical = describe_acpc_point(t["target_acpc"])
        lines += [
            f"## {t['name']} ({t['side']} hemisphere)", "",
            "| | exact | set |", "|---|---|---|",
            f"| Target RAS (mm) | {_fmt(t['target_ras'])} | |",
            f"| Target AC-PC | {clinical['lateral_mm']:.1f} mm {clinical['side']}, AP {clinical['ap_mm']:+.1f}, vertical {clinical['vertical_mm']:+.1f} | |",
            f"| Leksell X / Y / Z (mm) | {_fmt(t['target_leksell'])} | {_fmt(t['set_target_leksell'])} |",
            f"| Ring (°) | {t['ring_deg']:.2f} | {t['set_ring_deg']:.1f} |",
            f"| Arc (°) | {t['arc_deg']:.2f} | {t['set_arc_deg']:.1f} |",
            f"| Entry RAS (mm) | {_fmt(t['entry_ras'])} | |",
            f"| Entry Leksell X / Y / Z (mm) | {_fmt(t['entry_leksell'])} | |",
            f"| Trajectory length (mm) | {t['length_mm']:.1f} | |",
            f"| Indirect target RAS (mm) | {_fmt(t['indirect_target_ras'])} | |",
            f"| Direct ↔ indirect (mm) | {t['direct_to_indirect_mm']:.1f} | |", "",
            f"Entry: {t['entry_source']}.", "",
        ]
        sensitivity = plan["direct"].get("level_sensitivity_mm", {}).get(t["side"])
        if sensitivity:
            moves = ", ".join(f"{shift} mm level: {'construction fails' if v is None else f'{v:.1f} mm'}" for shift, v in sensitivity.items())
            lines += [f"Target movement with the construction plane ({moves}).", ""]
        closest = sorted(t["structure_distances_mm"].items(), key=lambda item: item[1])[:4]
        lines += ["Closest structures to the trajectory: " + ", ".join(f"{n} {d:.1f} mm" for n, d in closest) + ".", ""]
        for warning in t["warnings"]:
            lines += [f"> **Warning**: {warning}", ""]
    if quality:
        lines += ["## Segmentation", "", "| structure | volume (mm³) | flags |", "|---|---|---|"]
        lines += [f"| {s['name']} | {s['volume_mm3']:.0f} | {', '.join(s['flags']) or '—'} |" for s in quality]
        lines += [""]
    if plan["target_kind"] == "gpi":
        lines += [f"GPi rule: {plan['direct']['rule']}", ""]
    lines += ["## Figures", ""]
    lines += [f"![{name}]({Path(path).name})" for name, path in figures.items()]
    for note in plan.get("report_notes", []):
        lines += ["", f"> **Note**: {note}"]
    return "\n".join(lines) + "\n"
