"""Synthetic test data with known truth (post-operative CTs with leads, phantoms) for tests, benchmarks and
the demo. Never imported by the product."""
