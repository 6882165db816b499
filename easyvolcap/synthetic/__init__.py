"""Synthetic data for tests, benchmarks and the demo: weights of the official key layouts
(:mod:`.weights`), a small capture (:mod:`.capture`) and a calibrated scene with mask faults (:mod:`.scene`).

Nothing in the tools imports this package; it sits above the library and imports no runner or CLI.
"""
