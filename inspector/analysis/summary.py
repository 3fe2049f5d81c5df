"""Roll connections and message costs up per connection kind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from inspector.analysis.payload import payload_columns
from inspector.analysis.tables import BYTE_CATEGORIES, make_table

MESSAGE_ITEMS = ("exchange", "ws_message", "sse_event")
# Whole-number columns of connections summed per kind and variant.
SUMMED_COLUMNS = ("packets", "wire_bytes", *BYTE_CATEGORIES, "app_payload_bytes", "wire_payload_bytes", "undecoded_payload_bytes")
# Fractional ones (shares of ACK bytes): summed at the end, in connection order, so the
# sum does not depend on how the rows came in (one table, or parts of a streamed one).
FRACTIONAL_COLUMNS = ("setup_bytes", "teardown_bytes")


def overhead_table(connections: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """One row per connection kind and variant: bytes by category, messages, payload and efficiency."""
    totals = OverheadTotals()
    totals.add_connections(connections)
    totals.add_costs(costs, connections.set_index("conn_id")["variant"])
    return totals.table()


@dataclass
class _KindTotals:
    connections: int = 0
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMED_COLUMNS, 0))
    conn_ids: list[np.ndarray] = field(default_factory=list)
    fractional: dict[str, list[np.ndarray]] = field(default_factory=lambda: {name: [] for name in FRACTIONAL_COLUMNS})


class OverheadTotals:
    """The overhead table, summed from connections and message costs given in any number of
    parts (`add_connections`, `add_costs`): the same table as from the whole tables at once."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, str], _KindTotals] = {}
        self._messages: dict[tuple[str, str], list[int]] = {}  # [messages, payload_messages]

    def add_connections(self, connections: pd.DataFrame) -> None:
        for key, group in connections.groupby(["kind", "variant"], sort=False):
            totals = self._kinds.setdefault(key, _KindTotals())
            totals.connections += len(group)
            for name in SUMMED_COLUMNS:
                totals.sums[name] += int(group[name].sum())
            totals.conn_ids.append(group["conn_id"].to_numpy())
            for name in FRACTIONAL_COLUMNS:
                totals.fractional[name].append(group[name].to_numpy(dtype=np.float64))

    def add_costs(self, costs: pd.DataFrame, variant_of: Mapping[int, str] | pd.Series | None) -> None:
        """Rows of message_costs; variant_of: the variant of connections that have one (None: none has)."""
        variants = costs["conn_id"].map(variant_of).fillna("") if variant_of is not None and len(variant_of) else ""
        counted = costs[["kind"]].assign(variant=variants, message=costs["item"].isin(MESSAGE_ITEMS),
                                         payload_messages=costs["payload_messages"])
        for key, group in counted.groupby(["kind", "variant"], sort=False):
            totals = self._messages.setdefault(key, [0, 0])
            totals[0] += int(group["message"].sum())
            totals[1] += int(group["payload_messages"].sum())

    def merge(self, other: "OverheadTotals") -> None:
        """Add the totals of `other` (other parts of the same tables) to these."""
        for key, theirs in other._kinds.items():
            totals = self._kinds.setdefault(key, _KindTotals())
            totals.connections += theirs.connections
            for name in SUMMED_COLUMNS:
                totals.sums[name] += theirs.sums[name]
            totals.conn_ids += theirs.conn_ids
            for name in FRACTIONAL_COLUMNS:
                totals.fractional[name] += theirs.fractional[name]
        for key, (messages, payload_messages) in other._messages.items():
            totals = self._messages.setdefault(key, [0, 0])
            totals[0] += messages
            totals[1] += payload_messages

    def table(self) -> pd.DataFrame:
        return make_table("overhead", [self._row(key, self._kinds[key]) for key in sorted(self._kinds)])

    def _row(self, key: tuple[str, str], totals: _KindTotals) -> dict:
        kind, variant = key
        messages, payload_messages = self._messages.get(key, (0, 0))
        sums = totals.sums
        wire = sums["wire_bytes"]
        order = np.argsort(np.concatenate(totals.conn_ids), kind="stable")
        fractional = {name: float(pd.Series(np.concatenate(parts)[order]).sum()) for name, parts in totals.fractional.items()}
        return {
            "kind": kind,
            "variant": variant,
            "connections": totals.connections,
            "messages": messages,
            "payload_messages": payload_messages,
            "packets": sums["packets"],
            "wire_bytes": wire,
            **{name: sums[name] for name in BYTE_CATEGORIES},
            **payload_columns(app=sums["app_payload_bytes"], sent=sums["wire_payload_bytes"],
                              undecoded=sums["undecoded_payload_bytes"], wire=wire),
            **fractional,
            "wire_bytes_per_message": wire / messages if messages else float("nan"),
            "wire_bytes_per_payload_message": wire / payload_messages if payload_messages else float("nan"),
        }
