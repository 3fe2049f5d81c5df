"""Plain-text summary of an analysis, as `inspector analyze` prints it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def printable(text: str) -> str:
    """`text` with every character that is not printable written as an escape (\\x1b, \\n, \\u202e).

    File names, sidecar variant names and warnings about them are untrusted: printed raw,
    ESC ] 0 ; ... retitles the terminal, ESC [ 2 J clears it, a line break forges an output
    line and U+202E reverses what follows.  A file name that is not UTF-8 (lone surrogates
    for Python, which stdout cannot even encode) shows its bytes, as \\xff."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    if "\udc80" <= char <= "\udcff":  # a byte of a file name that is not UTF-8 (surrogateescape)
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n}"


def _row_label(row) -> str:
    """An overhead row's name: a recorded variant (rest-keepalive, ws-deflate, ...) says more than its kind.
    Variant names come from a sidecar file: printed escaped."""
    return printable(row.variant or row.kind)


def _efficiency(value: float, undecoded: int) -> str:
    """A share as a percentage; ">=" when undecoded payload makes it a lower bound."""
    if math.isnan(value):  # no wire bytes
        return "-"
    return f"{'>=' if undecoded else ''}{value:.1%}"


def _compression_lines(overhead) -> list[str]:
    """Payload as sent and what compression saved, per row: only when something was compressed
    or could not be decoded (otherwise the payload as sent is the application payload)."""
    if not ((overhead["compression_saved_bytes"] != 0) | (overhead["undecoded_payload_bytes"] > 0)).any():
        return []
    header = f"  {'kind':<16} {'payload sent':>14} {'saved':>14} {'ratio':>8} {'as-sent efficiency':>19} {'undecoded':>12}"
    lines = ["", "payload as sent and what compression saved (saved = app payload - payload sent):", header]
    for row in overhead.itertuples():
        ratio = "-" if math.isnan(row.compression_ratio) else f"{row.compression_ratio:.2f}x"  # no payload
        lines.append(f"  {_row_label(row):<16} {row.wire_payload_bytes:>14,} {row.compression_saved_bytes:>14,} {ratio:>8} "
                     f"{_efficiency(row.wire_payload_efficiency, 0):>19} {row.undecoded_payload_bytes:>12,}")
    if (overhead["undecoded_payload_bytes"] > 0).any():
        lines.append("(undecoded: payload whose decoded size is unknown (decompression failed or capped, incomplete, a coding")
        lines.append(" not decoded such as br), counted as sent: efficiency marked >= is a lower bound)")
    return lines


@dataclass(frozen=True)
class SummaryFigures:
    """What the summary shows: the small tables whole, the big ones as counts and sums."""

    captures: Any  # the captures table: a row per capture
    overhead: Any  # the overhead table: a row per connection kind and variant
    connections: int
    rest_exchanges: int  # (conn_id, exchange_id) pairs of the HTTP messages of REST connections
    rest_requests: int
    rest_responses: int
    websocket_connections: int
    ws_messages: int
    findings: int
    wire_bytes: int  # summed over connections, as is each of BYTE_CATEGORIES in `categories`
    categories: dict[str, int]
    findings_by_rule: dict[str, int]  # sorted by rule
    sse_events: int = 0  # Server-Sent Events dispatched (sse_events rows of kind event)
    sse_streams: int = 0  # text/event-stream responses: (conn_id, exchange_id) pairs of sse_events
    sse_reconnections: int = 0


# Connection kinds whose HTTP messages are REST exchanges: HTTP/1.1 and HTTP/2 (an h2c upgrade's
# HTTP/1.1 request and 101 count with its connection, as the request's exchange).
REST_KINDS = ("rest", "http2")


def table_figures(tables) -> SummaryFigures:
    """The figures of in-memory tables (an Analysis's)."""
    from inspector.analysis.tables import BYTE_CATEGORIES

    connections, http, findings = tables["connections"], tables["http_messages"], tables["findings"]
    # WebSocket upgrades are HTTP too, but they are connection setup, not REST.
    rest = http[http["conn_id"].isin(connections.loc[connections["kind"].isin(REST_KINDS), "conn_id"])]
    return SummaryFigures(
        captures=tables["captures"],
        overhead=tables["overhead"],
        connections=len(connections),
        rest_exchanges=int(rest.groupby(["conn_id", "exchange_id"]).ngroups) if len(rest) else 0,
        rest_requests=int(rest["method"].notna().sum()),
        rest_responses=int(rest["status"].notna().sum()),
        websocket_connections=int((connections["kind"] == "websocket").sum()),
        ws_messages=len(tables["ws_messages"]),
        findings=len(findings),
        wire_bytes=int(connections["wire_bytes"].sum()) if len(connections) else 0,
        categories={name: int(connections[name].sum()) if len(connections) else 0 for name in BYTE_CATEGORIES},
        findings_by_rule={rule: int(count) for rule, count in findings["rule"].value_counts().sort_index().items()},
        sse_events=int((tables["sse_events"]["kind"] == "event").sum()),
        sse_streams=int(tables["sse_events"].groupby(["conn_id", "exchange_id"]).ngroups) if len(tables["sse_events"]) else 0,
        sse_reconnections=len(tables["sse_reconnections"]),
    )


def store_figures(store) -> SummaryFigures:
    """The figures of a store (inspector.store.Store), counted and summed by DuckDB: only the
    captures and overhead tables, a row per capture and per connection kind, are read whole."""
    from inspector.analysis.tables import BYTE_CATEGORIES

    sums = ", ".join(f'coalesce(sum("{name}"), 0) AS "{name}"' for name in ("wire_bytes", *BYTE_CATEGORIES))
    connections = store.sql(f"SELECT count(*) AS connections, count(*) FILTER (WHERE kind = $websocket) AS websocket, {sums} "
                            "FROM connections", {"websocket": "websocket"}).iloc[0]
    # The HTTP messages of REST connections; WebSocket upgrades are HTTP too, but connection setup.
    rest = store.sql("WITH rest AS (SELECT conn_id, exchange_id, method, status FROM http_messages "
                     "WHERE conn_id IN (SELECT conn_id FROM connections WHERE kind IN ($rest, $http2))) "
                     "SELECT count(method) AS requests, count(status) AS responses, "
                     "(SELECT count(*) FROM (SELECT DISTINCT conn_id, exchange_id FROM rest)) AS exchanges FROM rest",
                     dict(zip(("rest", "http2"), REST_KINDS))).iloc[0]
    counts = store.sql("SELECT (SELECT count(*) FROM ws_messages) AS ws_messages, (SELECT count(*) FROM findings) AS findings, "
                       "(SELECT count(*) FILTER (WHERE kind = $event) FROM sse_events) AS sse_events, "
                       "(SELECT count(*) FROM (SELECT DISTINCT conn_id, exchange_id FROM sse_events)) AS sse_streams, "
                       "(SELECT count(*) FROM sse_reconnections) AS sse_reconnections", {"event": "event"}).iloc[0]
    rules = store.sql("SELECT rule, count(*) AS n FROM findings WHERE rule IS NOT NULL GROUP BY rule")
    return SummaryFigures(
        captures=store.table("captures"),
        overhead=store.table("overhead"),
        connections=int(connections["connections"]),
        rest_exchanges=int(rest["exchanges"]),
        rest_requests=int(rest["requests"]),
        rest_responses=int(rest["responses"]),
        websocket_connections=int(connections["websocket"]),
        ws_messages=int(counts["ws_messages"]),
        findings=int(counts["findings"]),
        wire_bytes=int(connections["wire_bytes"]),
        categories={name: int(connections[name]) for name in BYTE_CATEGORIES},
        # sorted as pandas sorts text (by code point), not by DuckDB's collation
        findings_by_rule=dict(sorted(zip(rules["rule"].tolist(), map(int, rules["n"])))),
        sse_events=int(counts["sse_events"]),
        sse_streams=int(counts["sse_streams"]),
        sse_reconnections=int(counts["sse_reconnections"]),
    )


def format_summary(analysis) -> str:
    """The summary of an in-memory analysis."""
    return format_figures(table_figures(analysis.tables))


def store_summary(store) -> str:
    """The summary of a store: the same text as format_summary of the analysis it holds."""
    return format_figures(store_figures(store))


def format_figures(figures: SummaryFigures) -> str:
    lines = []
    for row in figures.captures.itertuples():
        non_tcp = f", non-TCP {row.non_tcp_packets} ({row.non_tcp_detail})" if row.non_tcp_packets else ""
        lines.append(f"{printable(row.capture)}: {row.format}, {row.packets:,} packets, {_size(row.wire_bytes)}, {row.connections} TCP connections{non_tcp}")
    lines.append("")
    lines.append(f"connections {figures.connections}  REST exchanges {figures.rest_exchanges} ({figures.rest_requests} requests, "
                 f"{figures.rest_responses} responses)  WebSocket connections {figures.websocket_connections}, messages "
                 f"{figures.ws_messages}  findings {figures.findings}")
    if figures.sse_streams:
        lines.append(f"Server-Sent Events {figures.sse_events} (text/event-stream responses {figures.sse_streams}, "
                     f"reconnections with Last-Event-ID {figures.sse_reconnections})")
    lines.append("")
    # "per message" divides by the messages carrying payload, as the dashboard does: an
    # empty poll or a 204 is cost, not work, so polling and push compare per update.
    header = (f"{'kind':<16} {'conns':>6} {'exch/msgs':>9} {'w/ payload':>10} {'wire bytes':>14} {'app payload':>14} "
              f"{'per message':>12} {'efficiency':>10}")
    lines.append(header)
    lines.append("-" * len(header))
    overhead = figures.overhead
    for row in overhead.itertuples():
        per_message = "-" if row.payload_messages == 0 else f"{row.wire_bytes_per_payload_message:,.0f}"
        lines.append(f"{_row_label(row):<16} {row.connections:>6} {row.messages:>9} {row.payload_messages:>10} {row.wire_bytes:>14,} "
                     f"{row.app_payload_bytes:>14,} {per_message:>12} {_efficiency(row.efficiency, row.undecoded_payload_bytes):>10}")
    lines.append("(exch/msgs: REST exchanges, WebSocket data messages or Server-Sent Events; w/ payload: requests,")
    lines.append(" responses, WebSocket messages and events with payload; per message: all wire bytes, setup included,")
    lines.append(" per message with payload; app payload: HTTP bodies decoded, WebSocket messages decompressed, events'")
    lines.append(" data; efficiency: app payload / wire bytes, over 100% when compression delivers more payload than the")
    lines.append(" bytes it sends)")
    lines += _compression_lines(overhead)
    lines.append("")
    lines.append("bytes by category:")
    total = figures.wire_bytes
    for name, value in figures.categories.items():
        share = value / total if total else 0
        lines.append(f"  {name.removesuffix('_bytes'):<24} {value:>14,} {share:>7.1%}")
    if figures.findings:
        lines.append("")
        lines.append("findings by rule:")
        for rule, count in figures.findings_by_rule.items():
            lines.append(f"  {rule:<32} {count:>6}")
    return "\n".join(lines)


# A query's cells are cut to this many characters on the terminal (payload previews run long);
# `inspector query -o` writes them whole.
MAX_CELL_CHARS = 80


def format_rows(frame) -> str:
    """A query result as an aligned text table: a header, a rule, one line per row, then the
    row count.  Numbers are right-aligned, NULL shows as NULL, booleans as true/false, and
    every value is text escaped by `printable` (payload text is captured traffic: it never
    reaches the terminal as it is) and cut to MAX_CELL_CHARS."""
    import pandas as pd

    headers = [_cut(printable(str(name))) for name in frame.columns]
    cells = [[_cell(value) for value in frame.iloc[:, index].tolist()] for index in range(frame.shape[1])]
    right = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) for dtype in frame.dtypes]
    widths = [max([len(header), *map(len, column)]) for header, column in zip(headers, cells)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    lines = [line(headers), "  ".join("-" * w for w in widths)]
    lines += [line(list(row)) for row in zip(*cells)]
    lines.append(f"({len(frame):,} row{'' if len(frame) == 1 else 's'})")
    return "\n".join(lines)


def _cell(value) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, (str, bytes)) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return _cut(value.hex())
    return _cut(printable(str(value)))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "\u2026"

