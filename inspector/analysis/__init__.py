"""Analysis layer: capture files -> pandas tables with a fixed schema."""
