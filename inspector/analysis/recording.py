"""Recording sidecars: which connections belong to which variant of a workload.

`inspector record` writes `NAME.json` next to `NAME.pcap`.  When it is there,
the analysis labels each connection with its variant (by client port, or by
server port when the variant lists no client ports) so that REST and
WebSocket costs of the same work can be put side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from inspector.capture.sidecar import SIDECAR_FORMAT, sidecar_path



@dataclass(frozen=True)
class Variant:
    name: str
    protocol: str
    server_port: int | None
    client_ports: frozenset[int]


@dataclass(frozen=True)
class Recording:
    scenario: str
    variants: tuple[Variant, ...]
    staleness: list[dict] = field(default_factory=list)


def load_recording(capture: str | Path, warnings: list[str]) -> Recording | None:
    """The sidecar of `capture`, or None; a broken sidecar is a warning, not an error."""
    path = sidecar_path(capture)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.append(f"{path}: recording sidecar ignored: {exc}")
        return None
    if not isinstance(document, dict) or document.get("format") != SIDECAR_FORMAT:
        return None  # some other JSON file that happens to share the name
    try:
        variants = tuple(
            Variant(
                name=str(v["name"]),
                protocol=str(v.get("protocol", "")),
                server_port=int(v["server_port"]) if v.get("server_port") is not None else None,
                client_ports=frozenset(int(p) for p in v.get("client_ports", [])),
            )
            for v in document.get("variants", [])
        )
        staleness = [dict(s) for s in document.get("staleness", [])]
    except (KeyError, TypeError, ValueError) as exc:
        warnings.append(f"{path}: recording sidecar ignored: malformed variants ({exc})")
        return None
    return Recording(scenario=str(document.get("scenario", "")), variants=variants, staleness=staleness)


def label_variants(connections: pd.DataFrame, recording: Recording) -> pd.Series:
    """The variant of each connection: by client port first, then by server port."""
    by_client = {port: v.name for v in recording.variants for port in v.client_ports}
    by_server = {v.server_port: v.name for v in recording.variants if not v.client_ports and v.server_port is not None}
    labels = [by_client.get(client, by_server.get(server, "")) for client, server in zip(connections["client_port"], connections["server_port"])]
    return pd.Series(labels, index=connections.index, dtype="str")


def staleness_rows(recording: Recording, capture: str) -> list[dict]:
    rows = []
    for entry in recording.staleness:
        try:
            published, received = float(entry["published_ts"]), float(entry["received_ts"])
            rows.append({"capture": capture, "variant": str(entry["variant"]), "seq": int(entry["seq"]), "published_ts": published, "received_ts": received, "staleness_s": received - published})
        except (KeyError, TypeError, ValueError):
            continue
    return rows
