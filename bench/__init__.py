"""Benchmarks of the hub against the ceilings of what it is built on (`python -m bench.<name>`)."""
