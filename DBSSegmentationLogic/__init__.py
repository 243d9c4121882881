"""DBS targeting logic: pure Python (no ``slicer``, no ``qt``). World coordinates are RAS millimetres.

Subpackages, one concept each (dependencies point one way: io <- geometry <- segmentation/planning/postop
<- cli): ``io``, ``geometry``, ``segmentation``, ``planning``, ``postop``, ``cli``; apart from the product,
``training`` and ``simulation``. See docs/architecture.md.
"""
__version__ = "0.1.0"
