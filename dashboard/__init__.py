"""Dash dashboard (to come: see the dashboard issue); reads only the analysis tables."""
