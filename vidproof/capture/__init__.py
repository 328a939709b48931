"""Capture: sources of coded frames and the worker that records them."""
