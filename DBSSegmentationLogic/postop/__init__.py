"""Post-operative evaluation: CT fusion, lead models, electrode localization and its report. May import
``io`` and ``geometry``."""
