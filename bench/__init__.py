"""Benchmarks; each compares Stratus against its anchor in the same run and appends to RESULTS.md."""
