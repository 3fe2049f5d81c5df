"""Where a recording's JSON sidecar lives and which format it declares.

Shared by `inspector record` (which writes it) and the analysis (which reads
it); kept free of heavy imports so both can use it.
"""

from __future__ import annotations

from pathlib import Path

SIDECAR_FORMAT = "inspector-recording/1"


def sidecar_path(capture: str | Path) -> Path:
    """`chat.pcap` -> `chat.json`, next to the capture."""
    return Path(capture).with_suffix(".json")


def keylog_path(capture: str | Path) -> Path:
    """`chat.pcap` -> `chat.keylog`: where `inspector record --tls` writes the TLS key log."""
    return Path(capture).with_suffix(".keylog")
