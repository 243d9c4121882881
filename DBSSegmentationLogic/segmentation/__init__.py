"""Segmentation of STN, RN, SN, GPi and GPe: label codes, template and region of interest, localization,
the engine, its model and quality flags. May import ``io`` and ``geometry``; never ``training``/``simulation``."""
