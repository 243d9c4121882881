"""DBS targeting logic: pure Python (no ``slicer``, no ``qt``).

IO, AC-PC geometry, Leksell frame math, trajectories, placement errors, segmentation and the
``dbs-plan`` command line. World coordinates are RAS millimetres throughout.
"""
__version__ = "0.1.0"
