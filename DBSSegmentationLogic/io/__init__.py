"""Input and output at the boundary: volumes (RAS geometry), markups, transforms' files, staged output,
figures, and the exceptions that map to exit codes. Imports nothing else of this package."""
