"""Benchmarks, run by hand or as `python -m bench NAME --json` (see bench/__main__.py)."""
