"""Pure-Python parts of the module panel: button states with their reasons (dependency handling:
test_dependencies.py)."""
from __future__ import annotations

from DBSTargetingLib.widget_state import PanelInputs, button_states


def test_everything_waits_for_its_inputs():
    states = button_states(PanelInputs())
    for name in ("segment", "cancel", "plan", "frame", "postop", "postop_cancel"):
        assert not states[name].enabled, name
        assert states[name].tooltip, name
    assert "pre-operative MRI" in states["segment"].tooltip
    assert "No segmentation is running" in states["cancel"].tooltip


def test_workflow_order_enables_buttons_one_after_the_other():
    assert button_states(PanelInputs(has_mri=True))["segment"].enabled
    assert "automatically" in button_states(PanelInputs(has_mri=True))["segment"].tooltip
    assert "selected points" in button_states(PanelInputs(has_mri=True, has_landmarks=True))["segment"].tooltip
    assert not button_states(PanelInputs(has_mri=True))["plan"].enabled
    assert "Segment the MRI first" in button_states(PanelInputs(has_mri=True))["plan"].tooltip
    assert button_states(PanelInputs(has_mri=True, has_segmentation=True))["plan"].enabled
    assert button_states(PanelInputs(has_landmarks=True))["frame"].enabled


def test_running_segmentation_blocks_segment_and_plan_but_allows_cancel():
    states = button_states(PanelInputs(has_mri=True, has_segmentation=True, segmentation_running=True))
    assert states["cancel"].enabled
    assert not states["segment"].enabled and "cancel it" in states["segment"].tooltip
    assert not states["plan"].enabled


def test_postop_waits_for_the_mri_a_plan_and_the_ct():
    def postop(**inputs):
        return button_states(PanelInputs(**inputs))["postop"]

    assert not postop(has_plan=True, has_postop_ct=True).enabled
    assert "pre-operative MRI" in postop(has_plan=True, has_postop_ct=True).tooltip
    assert not postop(has_mri=True, has_segmentation=True, has_postop_ct=True).enabled
    assert "Plan the case first" in postop(has_mri=True, has_segmentation=True, has_postop_ct=True).tooltip
    assert not postop(has_mri=True, has_plan=True).enabled
    assert "post-operative CT" in postop(has_mri=True, has_plan=True).tooltip
    ready = postop(has_mri=True, has_plan=True, has_postop_ct=True)
    assert ready.enabled and "measure their error against the plan" in ready.tooltip


def test_one_background_process_at_a_time():
    ready = dict(has_mri=True, has_segmentation=True, has_plan=True, has_postop_ct=True)
    running_postop = button_states(PanelInputs(**ready, postop_running=True))
    assert running_postop["postop_cancel"].enabled and "scene is left as it was" in running_postop["postop_cancel"].tooltip
    for name in ("segment", "plan", "postop"):
        assert not running_postop[name].enabled
        assert "post-operative evaluation" in running_postop[name].tooltip and "cancel it" in running_postop[name].tooltip
    assert not running_postop["cancel"].enabled  # the segmentation's cancel: no segmentation runs

    running_segmentation = button_states(PanelInputs(**ready, segmentation_running=True))
    assert not running_segmentation["postop"].enabled and "segmentation" in running_segmentation["postop"].tooltip
    assert not running_segmentation["postop_cancel"].enabled
    assert "No post-operative evaluation is running" in running_segmentation["postop_cancel"].tooltip

