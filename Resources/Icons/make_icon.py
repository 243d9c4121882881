"""Draw the DBS Targeting icon (128 x 128 PNG): a coronal brain under a stereotactic arc, with a lead
whose four contacts reach a deep target.

Writes the extension icon (Resources/Icons/DBSTargeting.png) and the module icon
(DBSTargeting/Resources/Icons/DBSTargeting.png), which are the same picture:

    python Resources/Icons/make_icon.py
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Arc, Ellipse  # noqa: E402

SIZE_PX = 128
REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = (
    REPO_ROOT / "Resources" / "Icons" / "DBSTargeting.png",
    REPO_ROOT / "DBSTargeting" / "Resources" / "Icons" / "DBSTargeting.png",
)

BRAIN = "#f2c6c2"
BRAIN_EDGE = "#b5676a"
SULCUS = "#cf8f8f"
ARC = "#3b6ea8"
LEAD = "#5b5b66"
CONTACT = "#e8e8ee"
TARGET = "#f28c28"


def draw(path: Path) -> None:
    figure = plt.figure(figsize=(1, 1), dpi=SIZE_PX)
    axes = figure.add_axes([0, 0, 1, 1])
    axes.set_xlim(-0.55, 0.55)
    axes.set_ylim(-0.5, 0.6)
    axes.set_aspect("equal")
    axes.axis("off")

    # Stereotactic arc over the head
    axes.add_patch(Arc((0, -0.02), 1.0, 1.0, theta1=10, theta2=170, color=ARC, linewidth=5.0))

    # Brain in coronal view: two hemispheres with a few sulci
    for side in (-1.0, 1.0):
        axes.add_patch(
            Ellipse((side * 0.21, -0.04), 0.42, 0.66, facecolor=BRAIN, edgecolor=BRAIN_EDGE, linewidth=2.2)
        )
        for height, reach in ((0.2, 0.16), (0.04, 0.22), (-0.16, 0.18)):
            t = np.linspace(0.0, 1.0, 20)
            x = side * (0.08 + reach * t)
            y = height + 0.035 * np.sin(2 * np.pi * t)
            axes.plot(x, y, color=SULCUS, linewidth=1.3, solid_capstyle="round")

    # Deep target (subthalamic nucleus)
    target = np.array([0.13, -0.17])
    axes.add_patch(Ellipse(target, 0.17, 0.10, angle=-25, facecolor=TARGET, edgecolor="#b3570f", linewidth=1.2))

    # Lead from above the arc to the target, with four ring contacts at its tip
    entry = np.array([0.30, 0.56])
    direction = (target - entry) / np.linalg.norm(target - entry)
    axes.plot(*np.column_stack([entry, target]), color=LEAD, linewidth=4.5, solid_capstyle="round")
    for step in range(4):
        start = target - direction * (0.012 + 0.05 * step)
        end = start - direction * 0.026
        axes.plot(*np.column_stack([start, end]), color=CONTACT, linewidth=3.0, solid_capstyle="butt")

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=SIZE_PX, transparent=True)
    plt.close(figure)


def main() -> None:
    for output in OUTPUTS:
        draw(output)
        print(output)


if __name__ == "__main__":
    main()
