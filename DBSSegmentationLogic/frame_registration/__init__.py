"""Frame registration: find the stereotactic localizer's N-localizer rods in a frame CT or MRI and fit the
rigid image-to-frame transform (localizer geometry and presets, rod detection, rigid fit, report figure).
May import ``io`` and ``geometry`` only; the command line lives in ``cli.frame_register``.
"""
from .localizer_geometry import PRESETS, LocalizerGeometry, NLocalizer, load_localizer
from .registration import FrameRegistration, register_frame

__all__ = ["PRESETS", "FrameRegistration", "LocalizerGeometry", "NLocalizer", "load_localizer", "register_frame"]
