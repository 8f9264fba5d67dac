"""Executors that run a planned simulation."""
