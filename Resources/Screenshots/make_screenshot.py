"""Render the extension's screenshot from a real run of the module pipeline on the bundled sample case.

The sample label map goes through the module's case pipeline into a real MRML scene (slicer-core):
segmentation node -> closed surfaces -> model nodes; plan -> target points, trajectory lines, table.
Those nodes' own polydata and coordinates are drawn off-screen with VTK, with the frame settings.

    .venv-mrml-5.13/bin/python Resources/Screenshots/make_screenshot.py   # -> Resources/Screenshots/DBSTargeting1.png
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "DBSTargeting"), str(REPO), str(REPO / "Testing" / "mrml")]

import vtk  # noqa: E402

from conftest import MrmlApp  # noqa: E402
from DBSSegmentationLogic.io.volumes import read_volume  # noqa: E402
from DBSSegmentationLogic.io.markups import find_landmarks, read_markups_points  # noqa: E402
from DBSTargetingLib import case_pipeline, plan_nodes, segmentation_nodes, subject_hierarchy  # noqa: E402
from DBSTargetingLib.mrml_glue import markups_points_from_node, volume_node_from_volume  # noqa: E402

SAMPLE = REPO / "Resources" / "SampleCase"


def main(out=Path(__file__).with_name("DBSTargeting1.png")) -> Path:
    app = MrmlApp()
    scene = app.scene
    mri_node = volume_node_from_volume(scene, read_volume(SAMPLE / "sample_t1w.nii.gz"), "MRI")
    labels = read_volume(SAMPLE / "sample_labels.nii.gz")
    points = find_landmarks(read_markups_points(SAMPLE / "landmarks.mrk.json"))
    landmarks = {name: points[name] for name in ("ac", "pc", "midline")}
    segmentation = case_pipeline.segmentation_to_scene(scene, "Sample", labels, mri_node)
    # The module shows each structure once, as the segmentation's closed surface; for drawing here off-screen
    # those surfaces are exported as model nodes of this throwaway scene.
    segmentation_nodes.export_models(scene, segmentation, subject_hierarchy.case_folder(scene, "Sample"))
    plan = case_pipeline.plan_dict(labels, landmarks, case_pipeline.PlanSettings(target_kind="stn"))
    nodes = case_pipeline.plan_to_scene(scene, "Sample", plan)

    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.08, 0.09, 0.12)
    renderer.SetBackground2(0.25, 0.27, 0.33)
    renderer.GradientBackgroundOn()
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLModelNode")):
        model = scene.GetNthNodeByClass(n, "vtkMRMLModelNode")
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(model.GetPolyData())
        mapper.ScalarVisibilityOff()  # colour from the model's display node, not its point data
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(model.GetDisplayNode().GetColor())
        actor.GetProperty().SetOpacity(0.85)
        renderer.AddActor(actor)
    for line in nodes["trajectories"]:
        ends = markups_points_from_node(line)
        source = vtk.vtkLineSource()
        source.SetPoint1(*ends["entry"])
        source.SetPoint2(*ends["target"])
        tube = vtk.vtkTubeFilter()
        tube.SetInputConnection(source.GetOutputPort())
        tube.SetRadius(0.6)
        tube.SetNumberOfSides(16)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(tube.GetOutputPort())
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.95, 0.95, 0.3)
        renderer.AddActor(actor)
    for label, position in markups_points_from_node(nodes["targets"]).items():
        sphere = vtk.vtkSphereSource()
        sphere.SetCenter(*position)
        sphere.SetRadius(1.2)
        sphere.SetThetaResolution(24)
        sphere.SetPhiResolution(24)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(sphere.GetOutputPort())
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(1.0, 1.0, 1.0)
        renderer.AddActor(actor)
    text = vtk.vtkTextActor()
    rows = ["DBS Targeting - sample case, Bejjani STN (20:2 / 20:1)"]
    rows += [row["Point"] + ": " + row["Frame setting"] for row in plan_nodes.table_rows(nodes["table"]) if row["Frame setting"]]
    text.SetInput("\n".join(rows))
    text.GetTextProperty().SetFontSize(18)
    text.GetTextProperty().SetColor(0.95, 0.95, 0.95)
    text.SetDisplayPosition(16, 16)
    renderer.AddViewProp(text)

    camera = renderer.GetActiveCamera()
    mcp = plan["acpc"]["mcp_ras"]
    camera.SetFocalPoint(mcp[0], mcp[1], mcp[2] + 18)
    camera.SetPosition(mcp[0] - 90, mcp[1] + 150, mcp[2] + 80)
    camera.SetViewUp(0, 0, 1)
    renderer.ResetCameraClippingRange()
    camera.Zoom(1.5)

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(1200, 800)
    window.SetMultiSamples(8)
    window.AddRenderer(renderer)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(out))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    app.close()
    return out


if __name__ == "__main__":
    print(main())
