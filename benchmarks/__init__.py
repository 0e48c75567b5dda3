"""Reproducible performance measurements: `python -m benchmarks.<name>` from the project root (they use tests/support/)."""
