"""The wheel of the package: every subpackage and the resources the logic reads, and a working
``dbs-plan`` in a fresh virtual environment (installs numpy, scipy, SimpleITK from the package index
or pip's cache; about a minute)."""
from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "DBSSegmentationLogic"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(out), str(REPO_ROOT)], check=True, capture_output=True, text=True)
    (path,) = out.glob("dbs_targeting-*.whl")
    return path


def test_wheel_holds_every_subpackage_and_the_resources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    subpackages = sorted(folder.name for folder in PACKAGE_DIR.iterdir() if (folder / "__init__.py").is_file())
    assert len(subpackages) >= 8
    for name in subpackages:
        assert f"DBSSegmentationLogic/{name}/__init__.py" in names, name
    for source in PACKAGE_DIR.rglob("*.py"):
        assert source.relative_to(REPO_ROOT).as_posix() in names, source
    for preset in (PACKAGE_DIR / "frame_registration" / "presets").glob("*.json"):
        assert preset.relative_to(REPO_ROOT).as_posix() in names, preset
    data = [name for name in names if ".data/data/share/dbs-targeting/Resources/" in name]
    for resource in ("Models/manifest.json", "Template/cit168_t1w_2mm.nii.gz", "Template/cit168_landmarks.json"):
        assert any(name.endswith(resource) for name in data), resource


def test_wheel_runs_dbs_plan_in_a_fresh_environment(wheel, tmp_path):
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True,
                   capture_output=True, text=True, timeout=900)
    script = environment / ("Scripts/dbs-plan.exe" if sys.platform == "win32" else "bin/dbs-plan")
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    for command in ("frame", "frame-register", "segment", "plan", "postop"):
        assert command in helped.stdout
    # a real computation from the installed package, away from the checkout: frame settings of a target
    framed = subprocess.run([str(script), "frame", "--ac", "0", "2.4", "-4.2", "--pc", "0", "-25.7", "-2.5",
                             "--midline", "0", "-12", "40", "--target", "-11.1", "-12.7", "-7.6",
                             "--entry", "-35", "20", "55"], capture_output=True, text=True, cwd=tmp_path)
    assert framed.returncode == 0, framed.stderr
    assert "Target side             LEFT hemisphere" in framed.stdout
    assert "Ring" in framed.stdout and "Arc" in framed.stdout
