"""DBS Targeting: deep brain stimulation planning in 3D Slicer.

Four classes, as in Slicer's scripted module template: the module (metadata), the widget (GUI only),
the logic (callable without the GUI, from batch scripts and tests) and the test. All science lives in
the pure-Python package ``DBSSegmentationLogic``; ``DBSTargetingLib.mrml_glue`` converts between MRML
nodes and that package's plain types.
"""
import json
import logging
from typing import Annotated, Optional

import ctk  # noqa: F401  (Slicer's Qt and CTK bindings, imported as in the module template)
import qt  # noqa: F401
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from DBSSegmentationLogic.exceptions import DBSInputError
from DBSSegmentationLogic.frame import MOUNTINGS
from DBSTargetingLib import mrml_glue

#
# DBSTargeting
#


class DBSTargeting(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module panel and help."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DBS Targeting"
        self.parent.categories = ["Neurosurgery"]
        self.parent.dependencies = []
        self.parent.contributors = ["DBS Targeting contributors"]
        self.parent.helpText = """
Deep brain stimulation planning: from AC, PC and a midline point, a target and an entry point, computes
the trajectory in AC-PC coordinates and the Leksell frame settings (X, Y, Z; ring and arc for the chosen
arc mounting). Without a frame registration the virtual frame is used: AC-PC aligned, with the
mid-commissural point at the frame centre (100, 100, 100).
<br><br>
Label the control points <b>AC</b>, <b>PC</b>, <b>midline</b> (a point of the midsagittal plane above the
AC-PC line), <b>target</b> and <b>entry</b>, in one point list or in two.
<br><br>
Research software: every value must be checked by the surgical team before use.
See the <a href="https://github.com/dbs-targeting/SlicerDBSTargeting">project page</a>.
"""
        self.parent.acknowledgementText = """
Structure definitions and the template used by the segmentation come from the CIT168 subcortical atlas:
Pauli WM, Nili AN, Tyszka JM. A high-resolution probabilistic in vivo atlas of human subcortical brain
nuclei. Sci Data 5:180063 (2018), doi:10.1038/sdata.2018.63, distributed under the
Creative Commons Attribution 4.0 International licence (CC BY 4.0).
Built on 3D Slicer's scripted module template (Jean-Christophe Fillion-Robin, Kitware Inc.;
Andras Lasso, PerkLab; Steve Pieper, Isomics, Inc.).
"""


#
# DBSTargetingParameterNode
#


@parameterNodeWrapper
class DBSTargetingParameterNode:
    """The module's inputs, saved with the scene.

    preoperativeVolume - pre-operative MRI the points were placed on.
    landmarksMarkups - point list with AC, PC and midline (it may also hold target and entry).
    trajectoryMarkups - point list with target and entry; optional when landmarksMarkups holds them.
    mounting - arc mounting of the Leksell frame, which sets how ring and arc are read.
    """

    preoperativeVolume: vtkMRMLScalarVolumeNode
    landmarksMarkups: vtkMRMLMarkupsFiducialNode
    trajectoryMarkups: vtkMRMLMarkupsFiducialNode
    mounting: Annotated[str, Choice(list(MOUNTINGS))] = MOUNTINGS[0]


#
# DBSTargetingWidget
#


class DBSTargetingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI only: every computation is a call into DBSTargetingLogic."""

    #: Markups events after which a shown frame plan no longer matches the points.
    _POINT_EVENTS = (
        slicer.vtkMRMLMarkupsNode.PointAddedEvent,
        slicer.vtkMRMLMarkupsNode.PointRemovedEvent,
        slicer.vtkMRMLMarkupsNode.PointModifiedEvent,
        slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
        slicer.vtkMRMLMarkupsNode.PointPositionUndefinedEvent,
        slicer.vtkMRMLTransformableNode.TransformModifiedEvent,
    )

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedMarkups = []
        self._shownPlanInputs = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        # Widgets come from the .ui file; those with a SlicerParameterName property are bound to the
        # parameter node by connectGui().
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DBSTargeting.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DBSTargetingLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.computeFrameButton.connect("clicked(bool)", self.onComputeFrameButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # Stop updating the GUI from the parameter node; the point lists stay observed, so a plan shown
        # before leaving the module is still cleared if its points change meanwhile.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        # Save the user a few clicks
        if not self._parameterNode.preoperativeVolume:
            self._parameterNode.preoperativeVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not self._parameterNode.landmarksMarkups:
            self._parameterNode.landmarksMarkups = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLMarkupsFiducialNode")

    def setParameterNode(self, inputParameterNode: Optional[DBSTargetingParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def _selectedMarkups(self) -> list:
        if not self._parameterNode:
            return []
        selected = []
        for node in (self._parameterNode.landmarksMarkups, self._parameterNode.trajectoryMarkups):
            if node is not None and not any(node is other for other in selected):
                selected.append(node)
        return selected

    def _planInputs(self):
        """What a shown plan was computed from, to tell when it no longer matches the inputs."""
        if not self._parameterNode:
            return None
        return (tuple(node.GetID() for node in self._selectedMarkups()), self._parameterNode.mounting)

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._observeSelectedMarkups()
        if self._shownPlanInputs is not None and self._shownPlanInputs != self._planInputs():
            self._clearResult("Inputs changed: compute the frame settings again.")
        if self._selectedMarkups():
            self.ui.computeFrameButton.enabled = True
            self.ui.computeFrameButton.toolTip = "Compute the trajectory and the Leksell frame settings."
        else:
            self.ui.computeFrameButton.enabled = False
            self.ui.computeFrameButton.toolTip = (
                "Select the point list holding AC, PC, midline, target and entry"
                " (target and entry may be in a second list)."
            )

    def _observeSelectedMarkups(self) -> None:
        selected = self._selectedMarkups()
        for node in self._observedMarkups:
            for event in self._POINT_EVENTS:
                self.removeObserver(node, event, self._onPointsModified)
        for node in selected:
            for event in self._POINT_EVENTS:
                self.addObserver(node, event, self._onPointsModified)
        self._observedMarkups = selected

    def _onPointsModified(self, caller=None, event=None) -> None:
        if self._shownPlanInputs is not None:
            self._clearResult("Points changed: compute the frame settings again.")

    def _clearResult(self, reason: str) -> None:
        self._shownPlanInputs = None
        self.ui.resultTextEdit.clear()
        self.ui.resultTextEdit.placeholderText = reason

    def onComputeFrameButton(self) -> None:
        self._clearResult("")
        try:
            with slicer.util.tryWithErrorDisplay("Failed to compute the frame settings.", waitCursor=True):
                plan = self.logic.computeFramePlan(
                    self._parameterNode.landmarksMarkups,
                    self._parameterNode.trajectoryMarkups,
                    mounting=self._parameterNode.mounting,
                )
        except DBSInputError as error:  # already shown to the user by tryWithErrorDisplay
            self.ui.resultTextEdit.placeholderText = f"Cannot compute: {error}"
            return
        self.ui.resultTextEdit.setPlainText(self.logic.framePlanText(plan))
        self._shownPlanInputs = self._planInputs()


#
# DBSTargetingLogic
#


class DBSTargetingLogic(ScriptedLoadableModuleLogic):
    """All processing, callable without the GUI (batch scripts, tests)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self) -> DBSTargetingParameterNode:
        return DBSTargetingParameterNode(super().getParameterNode())

    def computeFramePlan(self, landmarksMarkups, trajectoryMarkups=None, mounting: str = MOUNTINGS[0], imageToFrame=None):
        """Frame plan (``DBSSegmentationLogic.frameplan.FramePlan``) from labelled points of one or two markups nodes.

        :param landmarksMarkups: markups node with AC, PC and midline (and possibly target and entry).
        :param trajectoryMarkups: optional markups node with target and entry.
        :param mounting: one of ``DBSSegmentationLogic.frame.MOUNTINGS``.
        :param imageToFrame: ``DBSSegmentationLogic.frame.FrameSpace`` from a frame registration; ``None``
            uses the virtual (AC-PC aligned) frame.
        :raises DBSInputError: a point is missing, given twice, or the geometry cannot be planned on.
        """
        from DBSSegmentationLogic.frameplan import compute_frame_plan

        points = mrml_glue.landmarks_from_nodes([landmarksMarkups, trajectoryMarkups])
        logging.info("Computing frame plan (%s mounting)", mounting)
        return compute_frame_plan(
            points["ac"], points["pc"], points["midline"], points["target"], points["entry"],
            mounting=mounting, image_to_frame=imageToFrame,
        )

    @staticmethod
    def framePlanText(plan) -> str:
        """A short summary (frame settings to 0.5, as set on the frame) followed by the plan as JSON."""
        data = plan.to_dict()
        target = data["target"]
        leksell = target["leksell"]
        summary = [
            f"Target ({target['side']}): X {leksell['set_X_mm']:.1f}  Y {leksell['set_Y_mm']:.1f}"
            f"  Z {leksell['set_Z_mm']:.1f} mm",
            f"Ring {data['set_ring_deg']:.1f}°  Arc {data['set_arc_deg']:.1f}°  ({data['mounting']} mounting)",
            f"Trajectory length {data['trajectory_length_mm']:.1f} mm; frame: {data['frame']}",
            "",
            json.dumps(data, indent=2),
        ]
        return "\n".join(summary)


#
# DBSTargetingTest
#


class DBSTargetingTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test, or ctest through CMake). Cheap CPU paths only."""

    # AC-PC aligned landmarks, so AC-PC coordinates equal RAS and the virtual frame is simple to check:
    # the mid-commissural point is at the origin.
    LANDMARKS_RAS = {
        "AC": (0.0, 12.5, 0.0),
        "PC": (0.0, -12.5, 0.0),
        "midline": (0.0, 0.0, 40.0),
        "target": (-12.0, -2.5, -4.0),  # left hemisphere: smaller R than the midline
        "entry": (-35.0, 20.0, 60.0),
    }

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FramePlanFromMarkups()
        self.setUp()
        self.test_SidesFollowTheAnatomy()
        self.setUp()
        self.test_MissingPointIsReported()
        self.setUp()
        self.test_VolumeGlueRoundTrip()
        self.setUp()
        self.test_ComputeButtonNeedsMarkups()

    def _pointList(self, points, name="points"):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        for label, ras in points.items():
            node.AddControlPoint(vtk.vtkVector3d(*ras), label)
        return node

    def test_FramePlanFromMarkups(self):
        import numpy as np

        from DBSSegmentationLogic.frameplan import compute_frame_plan

        self.delayDisplay("Frame plan from markups")
        logic = DBSTargetingLogic()
        node = self._pointList(self.LANDMARKS_RAS)

        plan = logic.computeFramePlan(node, mounting="lateral-right").to_dict()

        # Virtual frame: X = 100 - R, Y = 100 + A, Z = 100 - S with the MCP at the frame centre
        leksell = plan["target"]["leksell"]
        self.assertAlmostEqual(leksell["X_mm"], 112.0, places=3)
        self.assertAlmostEqual(leksell["Y_mm"], 97.5, places=3)
        self.assertAlmostEqual(leksell["Z_mm"], 104.0, places=3)
        self.assertEqual(plan["target"]["side"], "left")
        # Same numbers as the logic called directly on the points
        points = {label: np.array(ras) for label, ras in self.LANDMARKS_RAS.items()}
        direct = compute_frame_plan(
            points["AC"], points["PC"], points["midline"], points["target"], points["entry"], mounting="lateral-right"
        ).to_dict()
        self.assertEqual(plan, direct)
        # Two point lists give the same plan as one
        acpc = self._pointList({k: self.LANDMARKS_RAS[k] for k in ("AC", "PC", "midline")}, "acpc")
        trajectory = self._pointList({k: self.LANDMARKS_RAS[k] for k in ("target", "entry")}, "trajectory")
        split = logic.computeFramePlan(acpc, trajectory, mounting="lateral-right").to_dict()
        self.assertEqual(split, plan)
        self.assertIn('"ring_deg"', logic.framePlanText(logic.computeFramePlan(node)))

    def test_SidesFollowTheAnatomy(self):
        self.delayDisplay("Sides follow the anatomy")
        mirrored = {label: (-r, a, s) for label, (r, a, s) in self.LANDMARKS_RAS.items()}
        plan = DBSTargetingLogic().computeFramePlan(self._pointList(mirrored)).to_dict()
        self.assertEqual(plan["target"]["side"], "right")
        self.assertAlmostEqual(plan["target"]["leksell"]["X_mm"], 88.0, places=3)

    def test_MissingPointIsReported(self):
        self.delayDisplay("Missing point is reported")
        incomplete = {k: v for k, v in self.LANDMARKS_RAS.items() if k != "entry"}
        with self.assertRaisesRegex(DBSInputError, "entry"):
            DBSTargetingLogic().computeFramePlan(self._pointList(incomplete))

    def test_VolumeGlueRoundTrip(self):
        import numpy as np

        from DBSSegmentationLogic.imageio import Volume

        self.delayDisplay("Volume glue round trip")
        ijk_to_ras = np.array([[0.0, -1.5, 0.0, 10.0], [0.8, 0.0, 0.0, -20.0], [0.0, 0.0, 2.5, 30.0], [0, 0, 0, 1]])
        volume = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), ijk_to_ras)
        node = mrml_glue.volume_node_from_volume(slicer.mrmlScene, volume, "glue")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), volume.array)
        back = mrml_glue.volume_from_volume_node(node)
        np.testing.assert_allclose(back.ijk_to_ras, ijk_to_ras, atol=1e-9)
        # voxel (i, j, k) = (4, 3, 2) lands where the matrix says, by Slicer's own matrix
        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        np.testing.assert_allclose(matrix.MultiplyPoint((4, 3, 2, 1))[:3], ijk_to_ras[:3] @ (4, 3, 2, 1), atol=0.01)

    def test_ComputeButtonNeedsMarkups(self):
        self.delayDisplay("Compute button needs markups")
        widget = slicer.modules.dbstargeting.widgetRepresentation().self()
        slicer.util.selectModule("DBSTargeting")
        parameterNode = widget.logic.getParameterNode()
        parameterNode.landmarksMarkups = None
        parameterNode.trajectoryMarkups = None
        self.assertFalse(widget.ui.computeFrameButton.enabled)
        self.assertIn("Select the point list", widget.ui.computeFrameButton.toolTip)

        parameterNode.landmarksMarkups = self._pointList(self.LANDMARKS_RAS)
        self.assertTrue(widget.ui.computeFrameButton.enabled)
        widget.ui.computeFrameButton.click()
        self.assertIn('"arc_deg"', widget.ui.resultTextEdit.toPlainText())
        # A moved point makes the shown settings stale: they are cleared
        parameterNode.landmarksMarkups.SetNthControlPointPosition(3, -13.0, -2.5, -4.0)
        self.assertEqual(widget.ui.resultTextEdit.toPlainText(), "")
        self.delayDisplay("Test passed")
