"""Coordinates and their conventions: AC-PC space, Leksell frame and ring/arc, trajectories, placement
errors. May import ``io`` only."""
