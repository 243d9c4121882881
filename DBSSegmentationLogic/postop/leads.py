"""DBS lead models: contact layout along the lead, measured from the tip (mm).

Nominal geometry of common leads (contact length and spacing as commonly published: 4 ring
contacts 1.5 mm long at 0.5 or 1.5 mm spacing, 8 ring contacts, directional 1-3-3-1). The insulated
tip length is nominal: check it against the implanted model's specification sheet. Directional
leads have segmented middle levels; their contact *levels* are listed here (the three segments of a
level share its centre on the axis).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LeadModel:
    name: str
    diameter_mm: float
    tip_to_first_contact_mm: float  # insulated tip before the deepest contact (0 for a tip contact)
    contact_length_mm: float
    contact_spacing_mm: float  # insulation between consecutive contacts
    levels: int
    segmented_levels: tuple = ()  # indices (0 = deepest) of levels split into three segments

    def contact_centres_from_tip_mm(self) -> np.ndarray:
        """Distance from the tip to each contact level's centre, deepest first."""
        pitch = self.contact_length_mm + self.contact_spacing_mm
        return self.tip_to_first_contact_mm + self.contact_length_mm / 2 + pitch * np.arange(self.levels)


LEAD_MODELS = {
    model.name: model
    for model in (
        LeadModel("medtronic-3389", 1.27, 1.5, 1.5, 0.5, 4),
        LeadModel("medtronic-3387", 1.27, 1.5, 1.5, 1.5, 4),
        LeadModel("boston-vercise-8", 1.3, 1.1, 1.5, 0.5, 8),
        LeadModel("directional-1-3-3-1", 1.3, 1.5, 1.5, 0.5, 4, segmented_levels=(1, 2)),
    )
}
DEFAULT_LEAD = "medtronic-3389"
