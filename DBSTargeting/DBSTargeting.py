"""DBS Targeting: deep brain stimulation planning in 3D Slicer.

Four classes, as in Slicer's scripted module template: the module (metadata), the widget (GUI only),
the logic (callable without the GUI, from batch scripts and tests) and the test. All science lives in
the pure-Python package ``DBSSegmentationLogic``; ``DBSTargetingLib.mrml_glue`` converts between MRML
nodes and that package's plain types.
"""
import json
import logging
import os
import shutil
import sys
from typing import Annotated, Optional

import ctk  # noqa: F401  (Slicer's Qt and CTK bindings, imported as in the module template)
import qt  # noqa: F401
import slicer
import vtk
from DBSTargetingLib.logic_path import ensure_logic_importable

# From a source checkout only this folder is on Slicer's path; the logic package sits one level up.
ensure_logic_importable(os.path.dirname(os.path.abspath(__file__)))

from DBSTargetingLib import (  # noqa: E402  (after the logic package became importable)
    case_pipeline,
    dependencies,
    mrml_glue,
    plan_nodes,
    postop_nodes,
    slicer_compat,
)
from DBSTargetingLib.frame_registration_job import (  # noqa: E402
    DEFAULT_LOCALIZER,
    FrameRegistrationJob,
    localizer_presets,
)
from DBSTargetingLib.job_panel import JobPanel  # noqa: E402
from DBSTargetingLib.postop_job import PostopJob  # noqa: E402
from DBSTargetingLib.segmentation_job import DEVICES, SegmentationJob  # noqa: E402
from DBSTargetingLib.widget_state import PanelInputs, button_states  # noqa: E402
from slicer import (  # noqa: E402
    vtkMRMLLinearTransformNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper  # noqa: E402
from slicer.ScriptedLoadableModule import (  # noqa: E402
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin  # noqa: E402

# Light parts of the logic only (scipy, scikit-image, matplotlib and torch are imported where they are
# used, after ensureDependencies): the module loads even before its packages are installed.
from DBSSegmentationLogic.geometry.frame import MOUNTINGS  # noqa: E402
from DBSSegmentationLogic.io.exceptions import DBSInputError  # noqa: E402
from DBSSegmentationLogic.postop.leads import DEFAULT_LEAD, LEAD_MODELS  # noqa: E402

TARGET_KINDS = ("stn", "psa", "gpi")

#
# DBSTargeting
#


class DBSTargeting(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module panel and help."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DBS Targeting"
        self.parent.categories = ["Neuroimaging"]
        self.parent.dependencies = []
        # No individual author has been named for this project yet: the maintainers of its repository.
        self.parent.contributors = ["SlicerDBSTargeting maintainers (see the repository history)"]
        self.parent.helpText = """
Deep brain stimulation planning, in workflow order: <b>Inputs</b> (pre-operative MRI; optional CTs and
AC/PC/midline points), <b>Segment</b> (STN, RN, SN, GPi, GPe on both sides in a background process, with
progress and cancel), <b>Plan</b> (Bejjani STN/PSA or GPi direct targets beside the indirect AC-PC targets,
trajectories, Leksell X/Y/Z and ring/arc for the chosen arc mounting), <b>Post-op</b> (the post-operative
CT fused to the MRI, or to the pre-operative CT, in a background process; the leads found, shown as models
with their contacts, and their error against the plan in the table "Post-op errors"). Results go into
one subject-hierarchy folder per case; running a step again replaces that step's results. Without a frame
registration the virtual frame is used: AC-PC aligned, with the mid-commissural point at the frame centre
(100, 100, 100); with an <b>image-to-frame transform</b> (a linear transform from a frame registration that
moves the MRI into the frame) Leksell coordinates, ring and arc are those of the real frame. Each trajectory
is also a transform: <i>Reslice</i> shows the probe's-eye view in the red slice view.
<b>Frame registration</b> (optional) finds the localizer in a frame CT or MRI in a background process and
makes that transform ("Image to frame") with a table of the fiducial residuals.
<br><br>
For frame settings of a hand-placed trajectory, label the control points <b>AC</b>, <b>PC</b>,
<b>midline</b> (a point of the midsagittal plane above the AC-PC line), <b>target</b> and <b>entry</b>,
in one point list or in two.
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
    """The module's inputs and choices, saved with the scene.

    preoperativeVolume - pre-operative MRI (segmented and planned on; the points were placed on it).
    preoperativeCT, postoperativeCT - optional CTs; post-op evaluation fuses the post-operative CT to the
        pre-operative CT when one is selected (it must be registered to the MRI), else to the MRI.
    landmarksMarkups - point list with AC, PC and midline (it may also hold target and entry).
    trajectoryMarkups - point list with target and entry; optional when landmarksMarkups holds them.
    segmentation - the segmentation planned on (made by Segment, or corrected by the user).
    outputSegmentation - where Segment writes (reused on every run; a new "Structures" node when empty).
    imageToFrameTransform - optional linear transform from a frame registration that moves the MRI into the
        frame (its "to parent" matrix maps image RAS to frame RAS); empty: the virtual AC-PC frame.
    showUncertainty - overlay the segmentation's uncertainty map on the slice views when it exists.
    frameImage, frameLocalizer - the frame CT or MRI (with the localizer) and the localizer geometry of the
        frame registration, whose result becomes imageToFrameTransform.
    targetKind, useCustomRatios, dRatio, eRatio - the direct target and the Bejjani ratios.
    mounting - arc mounting of the Leksell frame, which sets how ring and arc are read.
    device - where the network runs (auto: GPU when there is one).
    leadModel - the implanted lead (contact layout and diameter used to find and show the leads).
    caseName - the subject-hierarchy folder holding the case's results.
    """

    preoperativeVolume: vtkMRMLScalarVolumeNode
    preoperativeCT: vtkMRMLScalarVolumeNode
    postoperativeCT: vtkMRMLScalarVolumeNode
    landmarksMarkups: vtkMRMLMarkupsFiducialNode
    trajectoryMarkups: vtkMRMLMarkupsFiducialNode
    segmentation: vtkMRMLSegmentationNode
    outputSegmentation: vtkMRMLSegmentationNode
    imageToFrameTransform: vtkMRMLLinearTransformNode
    showUncertainty: bool = True
    frameImage: vtkMRMLScalarVolumeNode
    frameLocalizer: Annotated[str, Choice(localizer_presets())] = DEFAULT_LOCALIZER
    targetKind: Annotated[str, Choice(list(TARGET_KINDS))] = "stn"
    useCustomRatios: bool = False
    dRatio: float = 0.1  # 20:2
    eRatio: float = 0.05  # 20:1
    mounting: Annotated[str, Choice(list(MOUNTINGS))] = MOUNTINGS[0]
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    leadModel: Annotated[str, Choice(list(LEAD_MODELS))] = DEFAULT_LEAD
    caseName: str = "Case"


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
        self._lastPlan = None
        # the background jobs' panels (JobPanel: progress, log, poll timer, cancel)
        self._segmentationPanel = None
        self._postopPanel = None
        self._framePanel = None

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
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.planButton.connect("clicked(bool)", self.onPlanButton)
        self.ui.postopButton.connect("clicked(bool)", self.onPostopButton)
        self.ui.postopCancelButton.connect("clicked(bool)", self.onPostopCancelButton)
        self.ui.resliceButton.connect("clicked(bool)", self.onResliceButton)
        self.ui.frameRegisterButton.connect("clicked(bool)", self.onFrameRegisterButton)
        self.ui.frameCancelButton.connect("clicked(bool)", self.onFrameCancelButton)

        self._segmentationPanel = JobPanel("segmentation", self.ui.segmentationProgressBar,
                                           self.ui.segmentationLogTextEdit, self._finishSegmentation, self._updateButtons)
        self._postopPanel = JobPanel("post-operative evaluation", self.ui.postopProgressBar, self.ui.postopLogTextEdit,
                                     self._finishPostop, self._updateButtons)
        self._framePanel = JobPanel("frame registration", self.ui.frameProgressBar, self.ui.frameLogTextEdit,
                                    self._finishFrameRegistration, self._updateButtons)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        for panel in self._jobPanels():
            panel.close()
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
        for panel in self._jobPanels():
            panel.cancel()
        self._lastPlan = None
        self.setParameterNode(None)

    def _jobPanels(self) -> list:
        return [panel for panel in (self._segmentationPanel, self._postopPanel, self._framePanel) if panel is not None]

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        # Save the user a few clicks
        if not self._parameterNode.preoperativeVolume:
            self._parameterNode.preoperativeVolume = mrml_glue.first_input_volume(slicer.mrmlScene)
        if not self._parameterNode.landmarksMarkups:
            # Only a list that holds AC, PC and midline, never one the module made (e.g. "Targets").
            self._parameterNode.landmarksMarkups = mrml_glue.first_landmarks_node(slicer.mrmlScene)

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
        """What a shown frame plan was computed from, to tell when it no longer matches the inputs."""
        if not self._parameterNode:
            return None
        transform = self._parameterNode.imageToFrameTransform
        return (tuple(node.GetID() for node in self._selectedMarkups()), self._parameterNode.mounting,
                transform.GetID() if transform else None)

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._observeSelectedMarkups()
        if self._shownPlanInputs is not None and self._shownPlanInputs != self._planInputs():
            self._clearResult("Inputs changed: compute the frame settings again.")
        self._updateButtons()
        if self._parameterNode:
            self._showSegmentationWarnings()

    def _updateButtons(self) -> None:
        """Every button enabled only when its inputs exist, with a tooltip saying why (widget_state)."""
        node = self._parameterNode
        inputs = PanelInputs(
            has_mri=bool(node and node.preoperativeVolume),
            has_landmarks=bool(node and node.landmarksMarkups),
            has_trajectory_points=bool(node and node.trajectoryMarkups),
            has_segmentation=bool(node and node.segmentation),
            has_plan=self._currentPlan() is not None,
            has_postop_ct=bool(node and node.postoperativeCT),
            segmentation_running=bool(self._segmentationPanel and self._segmentationPanel.running),
            postop_running=bool(self._postopPanel and self._postopPanel.running),
        )
        buttons = {"segment": self.ui.segmentButton, "cancel": self.ui.cancelButton, "plan": self.ui.planButton,
                   "frame": self.ui.computeFrameButton, "postop": self.ui.postopButton,
                   "postop_cancel": self.ui.postopCancelButton}
        for name, state in button_states(inputs).items():
            buttons[name].enabled = state.enabled
            buttons[name].toolTip = state.tooltip
        frameRunning = bool(self._framePanel and self._framePanel.running)
        self.ui.frameRegisterButton.enabled = bool(node and node.frameImage) and not frameRunning
        self.ui.frameRegisterButton.toolTip = (
            "Wait for the running frame registration, or cancel it." if frameRunning else
            "Find the localizer's rods and fit the image-to-frame transform, in a background process."
            if node and node.frameImage else "Select the frame CT or MRI (with the localizer) first.")
        self.ui.frameCancelButton.enabled = frameRunning
        custom = bool(node and node.useCustomRatios and node.targetKind != "gpi")
        self.ui.dRatioSpinBox.enabled = custom
        self.ui.eRatioSpinBox.enabled = custom

    def _currentPlan(self) -> Optional[dict]:
        """The plan post-op is measured against: the one just computed, else the case's plan kept in
        the scene (e.g. from a reloaded .mrb)."""
        if self._lastPlan is not None:
            return self._lastPlan
        if not self._parameterNode:
            return None
        return case_pipeline.plan_in_scene(slicer.mrmlScene, self._parameterNode.caseName)

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
                    imageToFrame=self.logic.frameSpace(self._parameterNode.imageToFrameTransform,
                                                       self._parameterNode.preoperativeVolume),
                )
        except DBSInputError as error:  # already shown to the user by tryWithErrorDisplay
            self.ui.resultTextEdit.placeholderText = f"Cannot compute: {error}"
            return
        self.ui.resultTextEdit.setPlainText(self.logic.framePlanText(plan))
        self._shownPlanInputs = self._planInputs()

    # --- background segmentation ------------------------------------------------------------------

    def onSegmentButton(self) -> None:
        node = self._parameterNode

        def start():
            self.logic.ensureDependencies(interactive=True, needsTorch=True)
            return self.logic.startSegmentation(node.preoperativeVolume, node.landmarksMarkups, node.device)

        self._segmentationPanel.start(start, (node.preoperativeVolume, node.caseName, node.outputSegmentation,
                                              node.showUncertainty))

    def _finishSegmentation(self, job, inputs) -> None:
        """The segmentation job succeeded: make its nodes and show what it flagged."""
        mriNode, caseName, outputNode, showUncertainty = inputs
        segmentation = self.logic.finishSegmentation(job, mriNode, caseName, outputNode, showUncertainty)
        self._parameterNode.outputSegmentation = segmentation
        self._parameterNode.segmentation = segmentation
        self._showSegmentationWarnings()

    def _showSegmentationWarnings(self) -> None:
        """The warning line under the segmentation: structures the segment command flagged."""
        node = self._parameterNode.segmentation if self._parameterNode else None
        warnings = case_pipeline.segmentation_warnings(case_pipeline.segmentation_report(node))
        self.ui.segmentationWarningLabel.text = ("Check these structures: " + "; ".join(warnings)) if warnings else ""
        self.ui.segmentationWarningLabel.visible = bool(warnings)

    def onCancelButton(self) -> None:
        self._segmentationPanel.cancel()

    # --- planning ---------------------------------------------------------------------------------

    def onPlanButton(self) -> None:
        node = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay("Failed to plan the case.", waitCursor=True):
                self.logic.ensureDependencies(interactive=True, needsTorch=False)
                plan = self.logic.planCase(
                    node.preoperativeVolume, node.segmentation, node.landmarksMarkups, self.planSettings(), node.caseName,
                    imageToFrameTransform=node.imageToFrameTransform,
                )
        except Exception:  # shown by tryWithErrorDisplay
            return
        self._lastPlan = plan
        self.ui.resultTextEdit.setPlainText(self.logic.casePlanText(plan))
        if plan["trajectories"]:  # the probe's-eye view of the first trajectory is one click away
            self.ui.trajectoryTransformSelector.setCurrentNode(slicer.mrmlScene.GetFirstNodeByName(
                plan["trajectories"][0]["name"] + plan_nodes.TRANSFORM_SUFFIX))
        self._updateButtons()

    # --- post-operative evaluation ------------------------------------------------------------------

    def onPostopButton(self) -> None:
        node = self._parameterNode
        plan = self._currentPlan()

        def start():
            self.logic.ensureDependencies(interactive=True, needsTorch=False)
            return self.logic.startPostop(node.preoperativeVolume, node.postoperativeCT, plan, node.preoperativeCT,
                                          leadModel=node.leadModel)

        self._postopPanel.start(start, (node.postoperativeCT, node.caseName))

    def _finishPostop(self, job, inputs) -> None:
        """The post-operative job succeeded: make its nodes and show the leads and the errors."""
        ctNode, caseName = inputs
        postop = self.logic.finishPostop(job, caseName, ctNode)
        self._postopPanel.log(self.logic.postopText(postop))

    def onPostopCancelButton(self) -> None:
        self._postopPanel.cancel()

    # --- frame registration ------------------------------------------------------------------------

    def onFrameRegisterButton(self) -> None:
        node = self._parameterNode

        def start():
            self.logic.ensureDependencies(interactive=True, needsTorch=False)
            return self.logic.startFrameRegistration(node.frameImage, node.frameLocalizer)

        self._framePanel.start(start, (node.caseName, node.imageToFrameTransform))

    def _finishFrameRegistration(self, job, inputs) -> None:
        """The frame registration succeeded: make its transform and table, select the transform."""
        caseName, transformNode = inputs
        nodes = self.logic.finishFrameRegistration(job, caseName, transformNode)
        self._parameterNode.imageToFrameTransform = nodes["transform"]
        self._framePanel.log(nodes["table"].GetDescription())

    def onFrameCancelButton(self) -> None:
        self._framePanel.cancel()

    def onResliceButton(self) -> None:
        """Probe's-eye view: the red slice view perpendicular to the selected trajectory, at its target."""
        with slicer.util.tryWithErrorDisplay("Cannot reslice along the trajectory.", waitCursor=True):
            transform = self.ui.trajectoryTransformSelector.currentNode()
            if transform is None:
                raise DBSInputError("plan the case first, then select one of its trajectory transforms")
            sliceNode = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode()
            plan_nodes.reslice_along_trajectory(sliceNode, transform)

    def planSettings(self) -> case_pipeline.PlanSettings:
        node = self._parameterNode
        custom = node.useCustomRatios and node.targetKind != "gpi"
        return case_pipeline.PlanSettings(
            target_kind=node.targetKind, mounting=node.mounting,
            d_ratio=node.dRatio if custom else None, e_ratio=node.eRatio if custom else None,
        )


#
# DBSTargetingLogic
#


class DBSTargetingLogic(ScriptedLoadableModuleLogic):
    """All processing, callable without the GUI (batch scripts, tests). Qt-free work lives in
    ``DBSTargetingLib.case_pipeline``; this class adds Slicer's scene, Python and dialogs."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self) -> DBSTargetingParameterNode:
        return DBSTargetingParameterNode(super().getParameterNode())

    @staticmethod
    def ensureDependencies(interactive: bool = True, needsTorch: bool = True) -> None:
        """Check the Python packages of ``Resources/requirements.txt`` (and torch with ``needsTorch``).
        Inside the GUI, missing ones are installed after the user agreed: pip packages through
        ``slicer.pydeps.pip_ensure`` (Slicer 5.11+) or ``slicer.util.pip_install``, torch through the
        PyTorch extension's ``installTorch(askConfirmation=True)``. In batch mode nothing is installed.
        Raises ``dependencies.MissingDependencies`` (a ``DBSInputError``) with a message for the user."""
        pipEnsure = slicer_compat.pip_ensure_function() if interactive else None
        dependencies.ensure_packages(
            interactive=interactive, pip_ensure=pipEnsure,
            confirm=slicer.util.confirmOkCancelDisplay if interactive else None,
            pip_install=slicer.util.pip_install if interactive else None,
        )
        if needsTorch:
            dependencies.ensure_torch(interactive=interactive,
                                      torch_utils_logic=dependencies.pytorch_utils_logic if interactive else None)

    @staticmethod
    def frameSpace(imageToFrameTransform, mriNode=None):
        """The real frame of an image-to-frame transform node (``FrameSpace``), or ``None`` (virtual frame)."""
        return mrml_glue.frame_space_from_transform_node(imageToFrameTransform, mriNode)

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's own Python launcher for the child process (PythonSlicer), else this interpreter."""
        return shutil.which("PythonSlicer") or sys.executable

    @staticmethod
    def landmarksFromMarkups(landmarksMarkups) -> Optional[dict]:
        """``{"ac", "pc", "midline"}`` RAS points of a point list, or ``None`` (automatic localization)."""
        if landmarksMarkups is None:
            return None
        return mrml_glue.landmarks_from_nodes([landmarksMarkups], required=("ac", "pc", "midline"))

    def startSegmentation(self, mriNode, landmarksMarkups=None, device: str = "auto", command=None) -> SegmentationJob:
        """Start segmenting ``mriNode`` in a child process and return the job at once (non-blocking):
        poll it from a timer, then call :meth:`finishSegmentation`; or ``job.cancel()``."""
        if mriNode is None:
            raise DBSInputError("select the pre-operative MRI first")
        job = SegmentationJob(
            mrml_glue.volume_from_volume_node(mriNode), device=device,
            landmarks_ras=self.landmarksFromMarkups(landmarksMarkups),
            python_executable=self.pythonExecutable(), command=command,
        )
        logging.info("Segmenting '%s' in a child process (%s)", mriNode.GetName(), device)
        return job.start()

    def finishSegmentation(self, job: SegmentationJob, mriNode, caseName: str = "Case", outputNode=None,
                           showUncertainty: bool = False):
        """The segmentation of a succeeded job in the case folder (``outputNode``, else the case's earlier
        one, else a new "Structures"), with its closed surfaces, terminology, the command's report (the
        localization reused by planning, quality flags) and, when the command wrote one, the uncertainty
        map "Structures uncertainty" (over the slice views with ``showUncertainty``). Scratch folder removed."""
        try:
            labels, report = job.outputs()
            uncertainty = job.uncertainty()
        finally:
            job.cleanup()
        node = case_pipeline.segmentation_to_scene(
            slicer.mrmlScene, caseName, labels, mriNode, output_node=outputNode, report=report, uncertainty=uncertainty,
            terminology_logic=slicer_compat.terminology_logic())
        uncertaintyNode = case_pipeline.uncertainty_node(slicer.mrmlScene, caseName)
        if showUncertainty and uncertaintyNode is not None:
            mrml_glue.show_as_foreground(slicer.mrmlScene, uncertaintyNode)
        return node

    def segment(self, mriNode, landmarksMarkups=None, device: str = "auto", caseName: str = "Case",
                onLine=None, command=None, outputNode=None):
        """Blocking segmentation (batch, tests): returns the segmentation node; raises on failure."""
        job = self.startSegmentation(mriNode, landmarksMarkups, device, command=command)
        try:
            result = job.wait(on_line=onLine)
            if not result.succeeded:
                raise DBSInputError(f"segmentation {result.status}: {result.reason}")
            return self.finishSegmentation(job, mriNode, caseName, outputNode)
        finally:
            job.cleanup()

    def planCase(self, mriNode, segmentationNode, landmarksMarkups, settings: case_pipeline.PlanSettings,
                 caseName: str = "Case", imageToFrameTransform=None, allowRegistration: bool = False) -> dict:
        """Plan from the segmentation (segments matched by name) and show the targets, trajectories (lines
        and transforms) and coordinate table in the case folder, replacing an earlier plan of the case.
        Returns the plan dict (as ``plan.json``).

        AC, PC and midline come from ``landmarksMarkups``, else from the localization the segmentation job
        computed (kept on the segmentation node): the template registration is never run again here, so
        the GUI thread never runs it. ``allowRegistration`` (batch mode only, where no GUI waits) lets a
        segmentation without that record be localized by registration. ``imageToFrameTransform``: the
        real frame (see :meth:`frameSpace`); ``None``: the virtual AC-PC frame."""
        from DBSTargetingLib.segmentation_nodes import labels_from_segmentation_node

        if mriNode is None or segmentationNode is None:
            raise DBSInputError("select the pre-operative MRI and a segmentation first")
        frame = self.frameSpace(imageToFrameTransform, mriNode)
        labels = labels_from_segmentation_node(slicer.mrmlScene, segmentationNode, mriNode)
        report = case_pipeline.segmentation_report(segmentationNode) or {}
        localization = report.get("localization")
        mri = mrml_glue.volume_from_volume_node(mriNode) if (allowRegistration and landmarksMarkups is None
                                                              and localization is None) else None
        plan = case_pipeline.plan_dict(labels, self.landmarksFromMarkups(landmarksMarkups), settings,
                                       localization=localization, mri=mri, frame=frame)
        plan["mri"] = mriNode.GetName()
        if imageToFrameTransform is not None:
            plan["frame_source"] = f"transform node '{imageToFrameTransform.GetName()}'"
        case_pipeline.plan_to_scene(slicer.mrmlScene, caseName, plan)
        return plan

    def startFrameRegistration(self, imageNode, localizer: str = DEFAULT_LOCALIZER, command=None) -> FrameRegistrationJob:
        """Start ``frame-register`` on a frame CT or MRI in a child process and return the job at once:
        poll it, then call :meth:`finishFrameRegistration`; or ``job.cancel()``."""
        if imageNode is None:
            raise DBSInputError("select the frame CT or MRI (with the localizer) first")
        job = FrameRegistrationJob(mrml_glue.volume_from_volume_node(imageNode), localizer,
                                   python_executable=self.pythonExecutable(), command=command)
        logging.info("Registering the %s localizer on '%s' in a child process", localizer, imageNode.GetName())
        return job.start()

    def finishFrameRegistration(self, job: FrameRegistrationJob, caseName: str = "Case", transformNode=None) -> dict:
        """The transform "Image to frame" (the real-frame input of planning and post-op) and the residual
        table from a succeeded job. Returns ``{"transform", "table"}``."""
        try:
            report = job.outputs()
        finally:
            job.cleanup()
        return case_pipeline.frame_registration_to_scene(slicer.mrmlScene, caseName, report, transformNode)

    def frameRegistration(self, imageNode, localizer: str = DEFAULT_LOCALIZER, caseName: str = "Case", onLine=None,
                          command=None) -> dict:
        """Blocking frame registration (batch, tests): ``{"transform", "table"}``; raises on failure."""
        job = self.startFrameRegistration(imageNode, localizer, command=command)
        try:
            job.wait(on_line=onLine)
            return self.finishFrameRegistration(job, caseName)
        finally:
            job.cleanup()

    def startPostop(self, mriNode, ctNode, plan: dict, preopCTNode=None, leadModel: Optional[str] = None,
                    sources=None, command=None) -> PostopJob:
        """Start the post-operative evaluation of ``ctNode`` against ``plan`` in a child process and
        return the job at once (non-blocking): poll it from a timer, then call :meth:`finishPostop`; or
        ``job.cancel()``. The CT is fused to ``preopCTNode`` when given (registered to the MRI), else
        to ``mriNode``. ``leadModel``: the implanted lead (``DBSSegmentationLogic.postop.leads.LEAD_MODELS``;
        the command's default when ``None``). ``sources``: what the result names as its ``plan``, ``ct``,
        ``mri`` and ``preop_ct`` (default "plan.json" and the nodes' names)."""
        if mriNode is None:
            raise DBSInputError("select the pre-operative MRI first")
        if ctNode is None:
            raise DBSInputError("select the post-operative CT first")
        if not plan:
            raise DBSInputError("plan the case first: the electrode error is measured against the plan")
        job = case_pipeline.postop_job(plan, ctNode, mriNode, preopCTNode, sources=sources, lead_model=leadModel,
                                       python_executable=self.pythonExecutable(), command=command)
        logging.info("Evaluating post-operative CT '%s' in a child process", ctNode.GetName())
        return job.start()

    def finishPostop(self, job: PostopJob, caseName: str = "Case", ctNode=None) -> dict:
        """Lead models, contacts, tips, error table and fusion transform from a succeeded job (replacing
        the case's earlier ones; ``ctNode`` goes under the fusion transform). Returns the postop dict."""
        try:
            postop = job.outputs()
        finally:
            job.cleanup()
        case_pipeline.postop_to_scene(slicer.mrmlScene, caseName, postop, ctNode)
        return postop

    def postop(self, mriNode, ctNode, plan: dict, preopCTNode=None, caseName: str = "Case", onLine=None,
               leadModel: Optional[str] = None, sources=None, command=None) -> dict:
        """Blocking post-operative evaluation (batch, tests): returns the postop dict (as
        ``postop.json``) after showing it in the case folder; raises on failure."""
        job = self.startPostop(mriNode, ctNode, plan, preopCTNode, leadModel=leadModel, sources=sources, command=command)
        try:
            job.wait(on_line=onLine)
            return self.finishPostop(job, caseName, ctNode)
        finally:
            job.cleanup()

    @staticmethod
    def postopText(postop: dict) -> str:
        """The fusion, each lead's error and the warnings, in a few lines."""
        return postop_nodes.postop_summary(postop)

    @staticmethod
    def saveCase(plan: dict, outDir, caseName: str = "Case", postop: Optional[dict] = None) -> dict:
        """``plan.json``, ``postop.json`` (when given) and ``<case>.mrb`` (the whole scene) in ``outDir``."""
        return case_pipeline.save_case(slicer.mrmlScene, plan, outDir, caseName, postop)

    @staticmethod
    def casePlanText(plan: dict) -> str:
        """Frame settings per planned side (as set on the frame), then the sides that failed."""
        lines = []
        for t in plan["trajectories"]:
            x, y, z = t["set_target_leksell"]
            lines.append(f"{t['name']}: X {x:.1f}  Y {y:.1f}  Z {z:.1f} mm, ring {t['set_ring_deg']:.1f}°, "
                         f"arc {t['set_arc_deg']:.1f}° ({plan['mounting']}); direct-indirect {t['direct_to_indirect_mm']:.1f} mm")
            lines += [f"  warning: {warning}" for warning in t["warnings"]]
        lines += [f"{side.upper()} side not planned: {reason}" for side, reason in plan["failures"].items()]
        return "\n".join(lines)

    def computeFramePlan(self, landmarksMarkups, trajectoryMarkups=None, mounting: str = MOUNTINGS[0], imageToFrame=None):
        """Frame plan (``DBSSegmentationLogic.geometry.frameplan.FramePlan``) from labelled points of one or two markups nodes.

        :param landmarksMarkups: markups node with AC, PC and midline (and possibly target and entry).
        :param trajectoryMarkups: optional markups node with target and entry.
        :param mounting: one of ``DBSSegmentationLogic.geometry.frame.MOUNTINGS``.
        :param imageToFrame: ``DBSSegmentationLogic.geometry.frame.FrameSpace`` from a frame registration; ``None``
            uses the virtual (AC-PC aligned) frame.
        :raises DBSInputError: a point is missing, given twice, or the geometry cannot be planned on.
        """
        from DBSSegmentationLogic.geometry.frameplan import compute_frame_plan

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
        self.setUp()
        self.test_ButtonsSayWhyTheyWait()
        self.setUp()
        self.test_CancelLeavesTheSceneAsItWas()
        self.setUp()
        self.test_CancelButtonEndsTheRunningJob()
        self.setUp()
        self.test_PlanNodesInOneCaseFolder()
        self.setUp()
        self.test_PostopNodesInOneCaseFolder()
        self.setUp()
        self.test_ReplanReplacesThePlanAndCodesTheSegments()

    def _pointList(self, points, name="points"):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        for label, ras in points.items():
            node.AddControlPoint(vtk.vtkVector3d(*ras), label)
        return node

    def test_FramePlanFromMarkups(self):
        import numpy as np

        from DBSSegmentationLogic.geometry.frameplan import compute_frame_plan

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

        from DBSSegmentationLogic.io.volumes import Volume

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

    def test_ButtonsSayWhyTheyWait(self):
        self.delayDisplay("Buttons say why they wait")
        widget = slicer.modules.dbstargeting.widgetRepresentation().self()
        slicer.util.selectModule("DBSTargeting")
        parameterNode = widget.logic.getParameterNode()
        parameterNode.preoperativeVolume = None
        parameterNode.segmentation = None
        for button in (widget.ui.segmentButton, widget.ui.cancelButton, widget.ui.planButton, widget.ui.postopButton,
                       widget.ui.postopCancelButton):
            self.assertFalse(button.enabled)
            self.assertTrue(button.toolTip)
        self.assertIn("pre-operative MRI", widget.ui.segmentButton.toolTip)

        parameterNode.preoperativeVolume = self._smallVolume()
        self.assertTrue(widget.ui.segmentButton.enabled)
        self.assertFalse(widget.ui.planButton.enabled)
        self.assertIn("Segment the MRI first", widget.ui.planButton.toolTip)

    def _smallVolume(self):
        import numpy as np

        from DBSSegmentationLogic.io.volumes import Volume

        return mrml_glue.volume_node_from_volume(slicer.mrmlScene, Volume(np.zeros((8, 8, 8), np.float32), np.eye(4)), "MRI")

    def test_CancelLeavesTheSceneAsItWas(self):
        """A stand-in for the segment command (no network needed) that sleeps: cancel ends it within
        2 s, adds no node and leaves no scratch folder."""
        import tempfile
        import time
        from pathlib import Path

        self.delayDisplay("Cancel leaves the scene as it was")
        script = Path(tempfile.mkdtemp()) / "sleeper.py"
        script.write_text("import time\nprint('PROGRESS 0.10 sleeping', flush=True)\ntime.sleep(60)\n")
        logic = DBSTargetingLogic()
        mri = self._smallVolume()
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()

        job = logic.startSegmentation(mri, command=[logic.pythonExecutable(), str(script)])
        deadline = time.monotonic() + 30
        while job.progress[0] < 0.1 and time.monotonic() < deadline:
            job.poll()
            slicer.app.processEvents()
        started = time.monotonic()
        job.cancel()
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertTrue(job.result.cancelled)
        self.assertFalse(job.scratch.exists())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)

    def test_CancelButtonEndsTheRunningJob(self):
        """Through the panel (JobPanel): the progress shows, Cancel ends the child, frees the buttons, says so
        in the log and adds no node."""
        import tempfile
        import time
        from pathlib import Path

        self.delayDisplay("The Cancel button ends the running job")
        widget = slicer.modules.dbstargeting.widgetRepresentation().self()
        slicer.util.selectModule("DBSTargeting")
        script = Path(tempfile.mkdtemp()) / "sleeper.py"
        script.write_text("import time\nprint('PROGRESS 0.10 sleeping', flush=True)\ntime.sleep(60)\n")
        mri = self._smallVolume()
        widget.logic.getParameterNode().preoperativeVolume = mri
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        panel = widget._segmentationPanel
        panel.start(lambda: widget.logic.startSegmentation(mri, command=[widget.logic.pythonExecutable(), str(script)]),
                    (mri, "Case", None, False))
        self.assertTrue(panel.running)
        self.assertTrue(widget.ui.cancelButton.enabled)
        self.assertFalse(widget.ui.segmentButton.enabled)
        deadline = time.monotonic() + 30
        while widget.ui.segmentationProgressBar.value < 10 and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.02)
        self.assertEqual(widget.ui.segmentationProgressBar.value, 10)
        job = panel.job
        widget.ui.cancelButton.click()
        self.assertTrue(job.result.cancelled)
        self.assertFalse(panel.running)
        self.assertFalse(widget.ui.cancelButton.enabled)
        self.assertTrue(widget.ui.segmentButton.enabled)
        self.assertIn("Cancelled: the scene is unchanged.", widget.ui.segmentationLogTextEdit.toPlainText())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)

    def test_PlanNodesInOneCaseFolder(self):
        from DBSTargetingLib import plan_nodes
        from DBSTargetingLib.subject_hierarchy import folder_of

        self.delayDisplay("Plan nodes in one case folder")
        trajectory = {
            "name": "L STN", "side": "left", "target_kind": "stn", "target_ras": [-12.0, -2.5, -4.0],
            "target_acpc": [-12.0, -2.5, -4.0], "entry_ras": [-35.0, 20.0, 60.0], "entry_acpc": [-35.0, 20.0, 60.0],
            "target_leksell": [112.0, 97.5, 104.0], "entry_leksell": [135.0, 120.0, 40.0], "ring_deg": 70.6,
            "arc_deg": 110.2, "set_ring_deg": 70.5, "set_arc_deg": 110.0, "set_target_leksell": [112.0, 97.5, 104.0],
        }
        plan = {"mounting": "lateral-right", "trajectories": [trajectory], "failures": {},
                "indirect": {"stn": {"left": {"acpc": [-12, -2.5, -4], "ras": [-12.0, -2.5, -4.0]}}},
                "acpc": {"ac_ras": [0, 12.5, 0], "pc_ras": [0, -12.5, 0], "midline_ras": [0, 0, 40], "mcp_ras": [0, 0, 0]}}
        nodes = case_pipeline.plan_to_scene(slicer.mrmlScene, "Test case", plan)
        self.assertEqual(nodes["targets"].GetNthControlPointLabel(0), "L STN")
        position = nodes["targets"].GetNthControlPointPositionWorld(0)
        for got, expected in zip(position, trajectory["target_ras"]):
            self.assertAlmostEqual(got, expected, delta=0.01)
        self.assertEqual(nodes["trajectories"][0].GetName(), "L STN trajectory")
        self.assertEqual(plan_nodes.table_rows(nodes["table"])[0]["Leksell X (mm)"], 112.0)
        for node in (nodes["targets"], nodes["table"], *nodes["trajectories"]):
            self.assertEqual(folder_of(slicer.mrmlScene, node), "Test case")
        self.delayDisplay("Test passed")

    def test_PostopNodesInOneCaseFolder(self):
        import numpy as np
        from DBSTargetingLib import postop_nodes
        from DBSTargetingLib.subject_hierarchy import folder_of

        from DBSSegmentationLogic.postop.leads import LEAD_MODELS

        self.delayDisplay("Post-op nodes in one case folder")
        tip, direction = np.array([-12.0, -3.0, -5.0]), np.array([-0.28, 0.52, 0.81]) / np.linalg.norm([-0.28, 0.52, 0.81])
        lead = {"side": "left", "model": "medtronic-3389", "tip_ras": tip.tolist(), "direction_ras": direction.tolist(),
                "contact_centres_ras": (tip + np.outer(LEAD_MODELS["medtronic-3389"].contact_centres_from_tip_mm(), direction)).tolist(),
                "axis_point_ras": tip.tolist(), "source": "automatic"}
        errors = {"euclidean_mm": 1.2, "depth_mm": 0.5, "radial_mm": 1.1, "radial_at_target_plane_mm": 1.0, "angular_deg": 2.0,
                  "ras_mm": [0.5, -0.3, 1.0], "acpc_mm": [0.5, -0.3, 1.0], "frame_mm": [-0.5, -0.3, -1.0]}
        matrix = np.eye(4)
        matrix[:3, 3] = [1.0, -2.0, 3.0]
        postop = {"format": "dbs-postop/1", "plan": "plan.json", "ct": "ct", "leads": [lead], "errors": {"left": errors},
                  "fusion": {"method": "test", "ct_to_mri_ras": matrix.tolist(), "metric": -0.5, "overlap": 1.0, "seconds": 1.0},
                  "warnings": []}
        ct = self._smallVolume()
        case_pipeline.postop_to_scene(slicer.mrmlScene, "Test case", postop, ct)
        case_pipeline.postop_to_scene(slicer.mrmlScene, "Test case", postop, ct)  # replaces, never piles up
        self.assertEqual(len(slicer.util.getNodes("L lead*")), 1)
        nodes = {name: slicer.mrmlScene.GetFirstNodeByName(name) for name in
                 ("L lead", "L contacts", postop_nodes.TIPS_NODE, postop_nodes.TABLE_NODE, postop_nodes.TRANSFORM_NODE)}
        for name, node in nodes.items():
            self.assertEqual(folder_of(slicer.mrmlScene, node), "Test case", name)
        self.assertEqual(nodes["L contacts"].GetNthControlPointLabel(3), "L C3")
        self.assertIs(ct.GetParentTransformNode(), nodes[postop_nodes.TRANSFORM_NODE])
        self.assertAlmostEqual(postop_nodes.error_rows(postop)[0]["Euclidean (mm)"], 1.2)
        self.delayDisplay("Test passed")

    def test_ReplanReplacesThePlanAndCodesTheSegments(self):
        """Issue #12 in the application: a second plan replaces the first; the segments carry the module's
        terminology, loaded into Slicer's own Terminologies module; "Targets" is never preselected."""
        import numpy as np

        from DBSSegmentationLogic.io.volumes import Volume

        self.delayDisplay("Re-plan replaces the plan; segments carry the terminology")
        trajectory = {
            "name": "L STN", "side": "left", "target_kind": "stn", "target_ras": [-12.0, -2.5, -4.0],
            "target_acpc": [-12.0, -2.5, -4.0], "entry_ras": [-35.0, 20.0, 60.0], "entry_acpc": [-35.0, 20.0, 60.0],
            "target_leksell": [112.0, 97.5, 104.0], "entry_leksell": [135.0, 120.0, 40.0], "ring_deg": 70.6,
            "arc_deg": 110.2, "set_ring_deg": 70.5, "set_arc_deg": 110.0, "set_target_leksell": [112.0, 97.5, 104.0],
        }
        plan = {"mounting": "lateral-right", "trajectories": [trajectory], "failures": {}, "indirect": {},
                "acpc": {"ac_ras": [0, 12.5, 0], "pc_ras": [0, -12.5, 0], "midline_ras": [0, 0, 40], "mcp_ras": [0, 0, 0]}}
        case_pipeline.plan_to_scene(slicer.mrmlScene, "Test case", plan)
        case_pipeline.plan_to_scene(slicer.mrmlScene, "Test case", plan)
        self.assertEqual(len(slicer.util.getNodes("Targets*")), 1)
        self.assertEqual(len(slicer.util.getNodes("L STN trajectory transform*")), 1)
        self.assertIsNone(mrml_glue.first_landmarks_node(slicer.mrmlScene))

        array = np.zeros((6, 6, 6), np.uint8)
        array[1:3, 1:3, 1:3] = 1  # STN_left
        segmentation = case_pipeline.segmentation_to_scene(
            slicer.mrmlScene, "Test case", Volume(array, np.eye(4)), show_3d=False,
            terminology_logic=slicer_compat.terminology_logic())
        segment = segmentation.GetSegmentation().GetNthSegment(0)
        self.assertIn("FMA^62035^Subthalamic nucleus", slicer_compat.segment_terminology(segment))
        self.delayDisplay("Test passed")
