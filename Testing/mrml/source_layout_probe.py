"""Run by test_slicer_releases.py in a fresh interpreter (``python -I -S``): imports DBSTargeting.py the way
Slicer does from a source checkout, with only the module folder on the path (issue #12, item 1).

    python -I -S source_layout_probe.py <module folder> <site-packages>

``-S`` keeps site (and so the editable install of this repository) out; the slicer-core site-packages
folder is appended by hand, without its .pth files. Qt-side modules that slicer-core lacks (qt, ctk,
ScriptedLoadableModule, parameterNodeWrapper) are minimal stand-ins, needed only to import the file. The
pip packages the module installs on demand (scipy, scikit-image, matplotlib) and torch are made
unimportable: the module must load without them. Prints one JSON line.
"""
import importlib.abc
import importlib.util
import json
import sys
import types
import unittest

module_dir, site_packages = sys.argv[1], sys.argv[2]
sys.path.insert(0, module_dir)
sys.path.append(site_packages)

BLOCKED = ("torch", "scipy", "skimage", "matplotlib", "PyTorchUtils")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed (blocked by the probe)")
        return None


sys.meta_path.insert(0, _Blocker())
before = importlib.util.find_spec("DBSSegmentationLogic") is not None

scripted = types.ModuleType("slicer.ScriptedLoadableModule")
scripted.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {})
scripted.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (), {"getParameterNode": lambda self: None})
scripted.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
scripted.ScriptedLoadableModuleTest = unittest.TestCase
wrapper = types.ModuleType("slicer.parameterNodeWrapper")
wrapper.Choice = lambda choices: tuple(choices)
wrapper.parameterNodeWrapper = lambda cls: cls
sys.modules.update({"qt": types.ModuleType("qt"), "ctk": types.ModuleType("ctk"),
                    "slicer.ScriptedLoadableModule": scripted, "slicer.parameterNodeWrapper": wrapper})

import DBSTargeting  # noqa: E402,F401  (the module file, as Slicer imports it; it makes the logic importable)

DBSSegmentationLogic = importlib.import_module("DBSSegmentationLogic")  # only now: found through the module

print(json.dumps({
    "importable_before": before,
    "logic_file": DBSSegmentationLogic.__file__,
    "heavy_loaded": sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED),
    "path_tail": sys.path[-1],
}))
