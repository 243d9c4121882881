"""Figure output shared by every report: off-screen matplotlib (Agg, no X server), grey window, atomic PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .staged_output import atomic_output  # noqa: E402


def grey_window(image: np.ndarray) -> tuple[float, float]:
    """Display window of an image slice: 1st to 99.5th percentile of its non-zero pixels."""
    values = image[image != 0]
    if values.size == 0:
        return 0.0, 1.0
    return float(np.percentile(values, 1)), float(np.percentile(values, 99.5))


def save_figure(figure, path) -> Path:
    """Write ``figure`` as a PNG atomically (a failed run never leaves half a picture) and close it."""
    path = Path(path)
    with atomic_output(path, ".png") as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)
    return path
