"""Dash dashboard over the analysis tables: `create_app` in dashboard.app; reads only the tables."""
