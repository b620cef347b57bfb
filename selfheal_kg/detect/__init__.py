"""Streaming statistical detectors, vectorised over many series."""
