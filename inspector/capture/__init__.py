"""Capture layer: reading capture files (and, later, live capture)."""
