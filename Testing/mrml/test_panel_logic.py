"""Pure-Python parts of the module panel: button states with their reasons, and dependency handling
(never installs without consent, never in batch mode, clear messages when offline or failing)."""
from __future__ import annotations

import pytest
from DBSTargetingLib.dependencies import (
    MissingDependencies,
    ensure_packages,
    missing_packages,
)
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


def _finder(present):
    return lambda name: object() if name in present else None


def test_nothing_happens_when_everything_is_there():
    calls = []
    ensure_packages(needs_torch=True, confirm=calls.append, pip_install=calls.append,
                    find_spec=_finder({"torch", "scipy", "skimage", "SimpleITK"}))
    assert calls == []


def test_missing_torch_points_to_the_pytorch_extension_and_never_pip():
    calls = []
    with pytest.raises(MissingDependencies, match="PyTorch extension"):
        ensure_packages(needs_torch=True, confirm=lambda q: True, pip_install=calls.append,
                        find_spec=_finder({"scipy", "skimage", "SimpleITK"}))
    assert calls == []


def test_batch_mode_never_installs():
    calls = []
    with pytest.raises(MissingDependencies, match=r"slicer.util.pip_install\('scikit-image>=0.20'\)"):
        ensure_packages(interactive=False, confirm=lambda q: calls.append(q) or True, pip_install=calls.append,
                        find_spec=_finder({"scipy", "SimpleITK"}))
    assert calls == []


def test_install_only_after_consent():
    installed = []
    with pytest.raises(MissingDependencies, match="Not installed"):
        ensure_packages(confirm=lambda q: False, pip_install=installed.append, find_spec=_finder({"SimpleITK"}))
    assert installed == []

    present = {"SimpleITK"}

    def install(requirements):
        installed.append(requirements)
        present.update({"scipy", "skimage"})

    ensure_packages(confirm=lambda q: "scipy>=1.9 scikit-image>=0.20" in q, pip_install=install, find_spec=lambda n: object() if n in present else None)
    assert installed == ["scipy>=1.9 scikit-image>=0.20"]


def test_failed_install_says_offline_and_restart():
    def offline(requirements):
        raise OSError("Could not reach pypi.org")

    with pytest.raises(MissingDependencies, match="offline") as caught:
        ensure_packages(confirm=lambda q: True, pip_install=offline, find_spec=_finder(set()))
    assert "Could not reach pypi.org" in str(caught.value) and "restart" in str(caught.value)


def test_matplotlib_is_asked_for_only_by_the_steps_that_draw_figures():
    present = _finder({"scipy", "skimage", "SimpleITK"})
    ensure_packages(interactive=False, find_spec=present)  # segmentation and planning: no figures
    with pytest.raises(MissingDependencies, match=r"slicer.util.pip_install\('matplotlib>=3.6'\)"):
        ensure_packages(interactive=False, find_spec=present, needs_figures=True)


def test_missing_packages_lists_torch_first():
    assert missing_packages(needs_torch=True, find_spec=_finder(set()))[0] == "torch"
