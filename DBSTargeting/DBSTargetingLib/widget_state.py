"""Which buttons of the module panel are usable, and why not (pure Python, so it is tested without Qt).

Every button is disabled until its inputs exist, with a tooltip saying what is missing; the widget
only copies these states onto its buttons.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Post-operative evaluation needs the logic's CT fusion and lead localization, not wired yet.
POSTOP_AVAILABLE = False


@dataclass(frozen=True)
class PanelInputs:
    has_mri: bool = False
    has_landmarks: bool = False  # a point list with AC, PC, midline selected (optional for segmentation)
    has_trajectory_points: bool = False  # target and entry points selected (manual frame settings)
    has_segmentation: bool = False
    has_plan: bool = False
    has_postop_ct: bool = False
    segmentation_running: bool = False


@dataclass(frozen=True)
class ButtonState:
    enabled: bool
    tooltip: str


def button_states(inputs: PanelInputs) -> dict[str, ButtonState]:
    """``{button name: ButtonState}`` for the segment, cancel, plan, frame and post-op buttons."""
    running = inputs.segmentation_running
    busy = "Wait for the running segmentation to finish, or cancel it."

    if running:
        segment = ButtonState(False, busy)
    elif not inputs.has_mri:
        segment = ButtonState(False, "Select the pre-operative MRI in Inputs first.")
    else:
        segment = ButtonState(True, "Segment STN, RN, SN, GPi and GPe on both sides in a background process"
                              + (" (AC, PC and midline from the selected points)." if inputs.has_landmarks
                                 else " (AC, PC and midline found automatically)."))

    cancel = (ButtonState(True, "Stop the segmentation; the scene is left as it was.") if running
              else ButtonState(False, "No segmentation is running."))

    if running:
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

    if not POSTOP_AVAILABLE:
        postop = ButtonState(False, "Post-operative evaluation is not available in this version of the module.")
    elif not inputs.has_postop_ct:
        postop = ButtonState(False, "Select the post-operative CT in Inputs first.")
    elif not inputs.has_plan:
        postop = ButtonState(False, "Plan the case first: the electrode error is measured against the plan.")
    else:
        postop = ButtonState(True, "Find the electrodes on the post-operative CT and measure their error.")

    return {"segment": segment, "cancel": cancel, "plan": plan, "frame": frame, "postop": postop}
