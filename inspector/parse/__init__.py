"""Sans-IO protocol parsers: bytes in, immutable events out."""
