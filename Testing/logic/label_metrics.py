"""Label-map metrics shared by the segmentation tests."""
import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (0 when both are empty)."""
    return 2.0 * np.sum(a & b) / max(1, np.sum(a) + np.sum(b))
