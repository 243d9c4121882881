"""Which buttons of the module panel are usable, and why not (pure Python, so it is tested without Qt).

Every button is disabled until its inputs exist, with a tooltip saying what is missing; the widget
only copies these states onto its buttons.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PanelInputs:
    has_mri: bool = False
    has_landmarks: bool = False  # a point list with AC, PC, midline selected (optional for segmentation)
    has_trajectory_points: bool = False  # target and entry points selected (manual frame settings)
    has_segmentation: bool = False
    has_plan: bool = False
    has_postop_ct: bool = False
    segmentation_running: bool = False
    postop_running: bool = False


@dataclass(frozen=True)
class ButtonState:
    enabled: bool
    tooltip: str


def button_states(inputs: PanelInputs) -> dict[str, ButtonState]:
    """``{button name: ButtonState}`` for the segment, cancel, plan, frame, post-op and post-op cancel
    buttons. One background process at a time: while one runs, the others' buttons wait."""
    if inputs.segmentation_running:
        busy = "Wait for the running segmentation to finish, or cancel it."
    elif inputs.postop_running:
        busy = "Wait for the running post-operative evaluation to finish, or cancel it."
    else:
        busy = ""

    if busy:
        segment = ButtonState(False, busy)
    elif not inputs.has_mri:
        segment = ButtonState(False, "Select the pre-operative MRI in Inputs first.")
    else:
        segment = ButtonState(True, "Segment STN, RN, SN, GPi and GPe on both sides in a background process"
                              + (" (AC, PC and midline from the selected points)." if inputs.has_landmarks
                                 else " (AC, PC and midline found automatically)."))

    cancel = (ButtonState(True, "Stop the segmentation; the scene is left as it was.") if inputs.segmentation_running
              else ButtonState(False, "No segmentation is running."))

    if busy:
        plan = ButtonState(False, busy)
    elif not inputs.has_mri:
        plan = ButtonState(False, "Select the pre-operative MRI in Inputs first.")
    elif not inputs.has_segmentation:
        plan = ButtonState(False, "Segment the MRI first (or select a segmentation with STN, RN, GPi segments).")
    else:
        plan = ButtonState(True, "Compute the direct and indirect targets, trajectories and frame settings.")

    if inputs.has_landmarks or inputs.has_trajectory_points:
        frame = ButtonState(True, "Compute the trajectory and the Leksell frame settings.")
    else:
        frame = ButtonState(False, "Select the point list holding AC, PC, midline, target and entry"
                                   " (target and entry may be in a second list).")

    if busy:
        postop = ButtonState(False, busy)
    elif not inputs.has_mri:
        postop = ButtonState(False, "Select the pre-operative MRI in Inputs first: the CT is fused to it.")
    elif not inputs.has_plan:
        postop = ButtonState(False, "Plan the case first: the electrode error is measured against the plan.")
    elif not inputs.has_postop_ct:
        postop = ButtonState(False, "Select the post-operative CT in Inputs first.")
    else:
        postop = ButtonState(True, "Fuse the post-operative CT to the MRI, find the electrodes and measure their"
                                   " error against the plan, in a background process.")

    postop_cancel = (ButtonState(True, "Stop the post-operative evaluation; the scene is left as it was.")
                     if inputs.postop_running else ButtonState(False, "No post-operative evaluation is running."))

    return {"segment": segment, "cancel": cancel, "plan": plan, "frame": frame, "postop": postop,
            "postop_cancel": postop_cancel}
