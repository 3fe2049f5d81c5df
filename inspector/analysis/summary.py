"""Roll connections and message costs up per connection kind."""

from __future__ import annotations

import pandas as pd

from inspector.analysis.payload import payload_columns
from inspector.analysis.tables import BYTE_CATEGORIES, make_table

MESSAGE_ITEMS = ("exchange", "ws_message")


def overhead_table(connections: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """One row per connection kind and variant: bytes by category, messages, payload and efficiency."""
    rows = []
    variant_of = connections.set_index("conn_id")["variant"]
    costs = costs.assign(variant=costs["conn_id"].map(variant_of).fillna(""))
    for (kind, variant), group in connections.groupby(["kind", "variant"], sort=True):
        kind_costs = costs[(costs["kind"] == kind) & (costs["variant"] == variant)]
        messages = int(kind_costs["item"].isin(MESSAGE_ITEMS).sum())
        payload_messages = int(kind_costs["payload_messages"].sum())
        wire = int(group["wire_bytes"].sum())
        payload = payload_columns(app=int(group["app_payload_bytes"].sum()), sent=int(group["wire_payload_bytes"].sum()),
                                  undecoded=int(group["undecoded_payload_bytes"].sum()), wire=wire)
        rows.append(
            {
                "kind": kind,
                "variant": variant,
                "connections": len(group),
                "messages": messages,
                "payload_messages": payload_messages,
                "packets": int(group["packets"].sum()),
                "wire_bytes": wire,
                **{name: int(group[name].sum()) for name in BYTE_CATEGORIES},
                **payload,
                "setup_bytes": float(group["setup_bytes"].sum()),
                "teardown_bytes": float(group["teardown_bytes"].sum()),
                "wire_bytes_per_message": wire / messages if messages else float("nan"),
                "wire_bytes_per_payload_message": wire / payload_messages if payload_messages else float("nan"),
            }
        )
    return make_table("overhead", rows)
