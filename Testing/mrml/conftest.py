"""A bare MRML scene built from Slicer's real classes (the ``slicer-core`` package), without Qt.

Run with ``Testing/mrml/run_mrml_tests.sh``: ``slicer-core`` pins its own ``vtk`` and so lives in its own
virtual environment per Slicer release (``.venv-mrml-5.12``, ``.venv-mrml-5.13``), apart from the logic's.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The module's helper package (DBSTargetingLib) is found beside DBSTargeting.py inside Slicer; here too.
for folder in (REPO_ROOT / "DBSTargeting", REPO_ROOT):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


class MrmlApp:
    """A scene with the application logic and the module logics the glue needs.

    Module logics register their node classes and default display/storage behaviour with the scene;
    the subject hierarchy logic keeps the hierarchy in step with added nodes, as the Slicer app does.
    """

    def __init__(self, cache_dir=None):
        import tempfile

        import slicer

        self.scene = slicer.vtkMRMLScene()
        # Reading an .mrb unpacks it into the remote-IO cache folder, which the Slicer app provides.
        self._cache_dir = tempfile.TemporaryDirectory(prefix="mrml-cache-") if cache_dir is None else None
        cache = slicer.vtkCacheManager()
        cache.SetRemoteCacheDirectory(str(cache_dir or self._cache_dir.name))
        data_io = slicer.vtkDataIOManager()
        data_io.SetCacheManager(cache)
        self.scene.SetCacheManager(cache)
        self.scene.SetDataIOManager(data_io)
        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)
        color_logic = self.app_logic.GetColorLogic()
        color_logic.SetMRMLScene(self.scene)
        color_logic.AddDefaultColorNodes()  # volume display nodes refer to the default grey/label tables
        self.logics = {}
        for module_name, logic_class in (
            ("SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic),
            ("Volumes", slicer.vtkSlicerVolumesLogic),
            ("Markups", slicer.vtkSlicerMarkupsLogic),
            ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
            ("Models", slicer.vtkSlicerModelsLogic),
            ("Tables", slicer.vtkSlicerTablesLogic),
        ):
            logic = logic_class()
            logic.SetMRMLApplicationLogic(self.app_logic)
            logic.SetMRMLScene(self.scene)
            self.app_logic.SetModuleLogic(module_name, logic)
            self.logics[module_name] = logic

    def close(self):
        for logic in self.logics.values():
            logic.SetMRMLScene(None)
        self.app_logic.SetMRMLScene(None)
        self.scene.Clear(1)
        if self._cache_dir is not None:
            self._cache_dir.cleanup()


@pytest.fixture
def mrml():
    app = MrmlApp()
    yield app
    app.close()


@pytest.fixture
def make_mrml():
    """Factory for further scenes (e.g. to reload a saved one into a fresh scene)."""
    apps = []

    def make():
        apps.append(MrmlApp())
        return apps[-1]

    yield make
    for app in apps:
        app.close()
