"""Planning a case: direct (Bejjani, GPi) and indirect targets, trajectories, the quality-gated plan and
its report. May import ``io``, ``geometry`` and ``segmentation``."""
