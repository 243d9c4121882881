"""Pure-Python parts of the module panel: button states with their reasons, and dependency handling
(never installs without consent, never in batch mode, clear messages when offline or failing)."""
from __future__ import annotations

import pytest

from DBSTargetingLib.dependencies import MissingDependencies, ensure_packages, missing_packages
from DBSTargetingLib.widget_state import PanelInputs, button_states


def test_everything_waits_for_its_inputs():
    states = button_states(PanelInputs())
    for name in ("segment", "cancel", "plan", "frame", "postop"):
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


def test_postop_says_why_it_is_off():
    states = button_states(PanelInputs(has_mri=True, has_plan=True, has_postop_ct=True))
    assert not states["postop"].enabled and "not available" in states["postop"].tooltip


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


def test_missing_packages_lists_torch_first():
    assert missing_packages(needs_torch=True, find_spec=_finder(set()))[0] == "torch"
