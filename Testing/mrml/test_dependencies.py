"""Dependencies (issue #12, item 3): one requirements file; pip packages through slicer.pydeps.pip_ensure
where it exists, else pip_install after consent; torch only through PyTorchUtils.installTorch with
askConfirmation=True; nothing in batch mode, nothing at import time."""
from __future__ import annotations

import pytest
from DBSTargetingLib import dependencies
from DBSTargetingLib.dependencies import (
    TORCH_REQUIREMENT,
    MissingDependencies,
    ensure_packages,
    ensure_torch,
    read_requirements,
)

from DBSSegmentationLogic.io.exceptions import DBSInputError


@pytest.fixture
def present(monkeypatch):
    """The import names that "exist"; everything else is missing."""
    names = set()
    monkeypatch.setattr(dependencies, "find_spec", lambda name: object() if name in names else None)
    return names


def test_the_one_requirements_file_matches_pyproject():
    import re
    from pathlib import Path

    requirements = {r.requirement: r.import_name for r in read_requirements()}
    assert requirements == {"scipy>=1.9": "scipy", "scikit-image>=0.20": "skimage", "SimpleITK>=2.2": "SimpleITK",
                            "matplotlib>=3.6": "matplotlib"}
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for requirement in requirements:
        assert f'"{requirement}"' in pyproject, requirement
    assert re.search(r'segmentation = \["torch' + re.escape(TORCH_REQUIREMENT) + r'"\]', pyproject)


def test_nothing_happens_when_everything_is_there(present):
    present.update({"scipy", "skimage", "SimpleITK", "matplotlib", "torch"})
    calls = []
    ensure_packages(confirm=calls.append, pip_install=calls.append, pip_ensure=lambda *a, **k: calls.append(a))
    ensure_torch(torch_utils_logic=lambda: calls.append("torch utils"))
    assert calls == []


def test_batch_mode_never_installs_and_is_a_bad_input_error(present):
    present.update({"scipy", "SimpleITK", "matplotlib"})
    calls = []
    with pytest.raises(MissingDependencies, match=r"slicer.util.pip_install\('scikit-image>=0.20'\)") as caught:
        ensure_packages(interactive=False, confirm=lambda q: calls.append(q) or True, pip_install=calls.append,
                        pip_ensure=lambda *a, **k: calls.append(a))
    assert isinstance(caught.value, DBSInputError)  # batch: exit code 2
    with pytest.raises(MissingDependencies, match="PyTorch"):
        ensure_torch(interactive=False, torch_utils_logic=lambda: calls.append("torch utils"))
    assert calls == []


def test_pip_ensure_is_used_where_slicer_has_it(present):
    """Slicer >= 5.11: pip_ensure gets packaging Requirements of the missing packages only (it asks itself)."""
    present.update({"SimpleITK", "matplotlib"})
    received = []

    def pip_ensure(requirements, requester=None):
        received.append(([str(r) for r in requirements], requester))
        present.update({"scipy", "skimage"})

    ensure_packages(pip_ensure=pip_ensure, confirm=lambda q: pytest.fail("pip_ensure asks, not the module"),
                    pip_install=lambda text: pytest.fail("pip_install is the fallback only"))
    assert received == [(["scipy>=1.9", "scikit-image>=0.20"], "DBS Targeting")]


def test_declining_pip_ensure_installs_nothing(present):
    def pip_ensure(requirements, requester=None):
        raise RuntimeError("User declined package installation")

    with pytest.raises(MissingDependencies, match="declined"):
        ensure_packages(pip_ensure=pip_ensure)
    assert not present


def test_older_slicer_asks_then_pip_installs(present):
    installed = []
    with pytest.raises(MissingDependencies, match="not installed"):
        ensure_packages(confirm=lambda q: False, pip_install=installed.append)
    assert installed == []

    present.update({"SimpleITK", "matplotlib"})

    def install(text):
        installed.append(text)
        present.update({"scipy", "skimage"})

    ensure_packages(confirm=lambda q: "scipy>=1.9 scikit-image>=0.20" in q, pip_install=install)
    assert installed == ["scipy>=1.9 scikit-image>=0.20"]


def test_failed_install_says_offline_and_restart(present):
    def offline(text):
        raise OSError("Could not reach pypi.org")

    with pytest.raises(MissingDependencies, match="offline") as caught:
        ensure_packages(confirm=lambda q: True, pip_install=offline)
    assert "Could not reach pypi.org" in str(caught.value) and "restart" in str(caught.value)


class _TorchUtils:
    """Stands in for PyTorchUtils.PyTorchUtilsLogic (the PyTorch extension is not in slicer-core)."""

    def __init__(self, present, accept):
        self.present, self.accept, self.calls = present, accept, []

    def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                     torchvisionVersionRequirement=None):
        self.calls.append({"askConfirmation": askConfirmation, "torchVersionRequirement": torchVersionRequirement})
        if not self.accept:
            return None
        self.present.add("torch")
        return object()


def test_torch_comes_from_pytorch_utils_with_consent(present):
    accepting = _TorchUtils(present, accept=True)
    ensure_torch(torch_utils_logic=lambda: accepting)
    assert accepting.calls == [{"askConfirmation": True, "torchVersionRequirement": ">=2.2"}]
    ensure_torch(torch_utils_logic=lambda: pytest.fail("installed already: not asked again"))


def test_torch_declined_or_extension_missing_is_reported(present):
    declining = _TorchUtils(present, accept=False)
    with pytest.raises(MissingDependencies, match="not installed"):
        ensure_torch(torch_utils_logic=lambda: declining)
    assert declining.calls and "torch" not in present

    def no_extension():
        raise ImportError("No module named 'PyTorchUtils'")

    with pytest.raises(MissingDependencies, match="PyTorch extension"):
        ensure_torch(torch_utils_logic=no_extension)
