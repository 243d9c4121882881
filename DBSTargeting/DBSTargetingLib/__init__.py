"""Slicer-side helpers of the DBS Targeting module that need MRML classes but neither Qt nor ``slicer.util``."""
