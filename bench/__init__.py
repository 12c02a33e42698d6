"""Benchmarks behind scripts/bench."""
