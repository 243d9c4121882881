import locale
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Reproducible property tests in CI; more examples on demand (HYPOTHESIS_PROFILE=thorough).
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SAMPLE_CASE = REPO_ROOT / "Resources" / "SampleCase"
#: CI sets DBS_REQUIRE_SHARED_DATA=1 (.ci/run): there a missing ../shared is an error, never a skip.
REQUIRE_SHARED_DATA = os.environ.get("DBS_REQUIRE_SHARED_DATA") == "1"


def require_shared_data(*parts: str) -> Path:
    """Path under ../shared/data (the full CIT168 atlas, BigBrain, the real head), which a fresh clone
    lacks: skip with the reason (printed by -ra), or fail when DBS_REQUIRE_SHARED_DATA=1."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if REQUIRE_SHARED_DATA:
            pytest.fail(f"DBS_REQUIRE_SHARED_DATA=1 but {path} is missing (../shared/data beside the repository)",
                        pytrace=False)
        pytest.skip(f"needs {path} (../shared/data beside the repository, not part of a clone; "
                    "CI runs it with DBS_REQUIRE_SHARED_DATA=1)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; the test skips (or, in CI, errors) when it is missing."""
    return require_shared_data()


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="module")
def model():
    """The segmentation engine's shipped model on the CPU (two torch threads)."""
    import torch

    from DBSSegmentationLogic.segmentation import engine

    torch.set_num_threads(2)
    return engine.load_model(device="cpu")



_STARTUP_LOCALE = locale.setlocale(locale.LC_ALL)


@pytest.fixture(autouse=True)
def _restore_the_process_locale():
    """GDCM's DICOM writer (used by tests that make DICOM series) leaves the process in the "C" locale,
    after which `subprocess.run(text=True)` decodes child output as ASCII and fails on "°" or "—".
    The product never writes DICOM (and reading one leaves the locale alone); restore it after each test."""
    yield  # (a module-scoped fixture may have written DICOM before this test started: restore to the start-up locale)
    if locale.setlocale(locale.LC_ALL) != _STARTUP_LOCALE:
        locale.setlocale(locale.LC_ALL, _STARTUP_LOCALE)
