"""Plain-text summary of an analysis, as `inspector analyze` prints it."""

from __future__ import annotations


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


def format_summary(analysis) -> str:
    tables = analysis.tables
    captures, connections, overhead = tables["captures"], tables["connections"], tables["overhead"]
    http, ws_messages, findings = tables["http_messages"], tables["ws_messages"], tables["findings"]
    lines = []
    for row in captures.itertuples():
        non_tcp = f", non-TCP {row.non_tcp_packets} ({row.non_tcp_detail})" if row.non_tcp_packets else ""
        lines.append(f"{printable(row.capture)}: {row.format}, {row.packets:,} packets, {_size(row.wire_bytes)}, {row.connections} TCP connections{non_tcp}")
    # WebSocket upgrades are HTTP too, but they are connection setup, not REST.
    rest = http[http["conn_id"].isin(connections.loc[connections["kind"] == "rest", "conn_id"])]
    requests = int(rest["method"].notna().sum())
    responses = int(rest["status"].notna().sum())
    exchanges = int(rest.groupby(["conn_id", "exchange_id"]).ngroups) if len(rest) else 0
    upgrades = int((connections["kind"] == "websocket").sum())
    lines.append("")
    lines.append(f"connections {len(connections)}  REST exchanges {exchanges} ({requests} requests, {responses} responses)  WebSocket connections {upgrades}, messages {len(ws_messages)}  findings {len(findings)}")
    lines.append("")
    # "per message" divides by the messages carrying payload, as the dashboard does: an
    # empty poll or a 204 is cost, not work, so polling and push compare per update.
    header = (f"{'kind':<16} {'conns':>6} {'exch/msgs':>9} {'w/ payload':>10} {'wire bytes':>14} {'payload':>14} "
              f"{'per message':>12} {'efficiency':>10}")
    lines.append(header)
    lines.append("-" * len(header))
    for row in overhead.itertuples():
        per_message = "-" if row.payload_messages == 0 else f"{row.wire_bytes_per_payload_message:,.0f}"
        # A recorded variant (rest-keepalive, ws-deflate, ...) says more than its kind.
        label = printable(row.variant or row.kind)
        lines.append(f"{label:<16} {row.connections:>6} {row.messages:>9} {row.payload_messages:>10} {row.wire_bytes:>14,} "
                     f"{row.payload_bytes:>14,} {per_message:>12} {row.efficiency:>9.1%}")
    lines.append("(exch/msgs: REST exchanges or WebSocket data messages; w/ payload: requests, responses and WebSocket")
    lines.append(" messages with payload; per message: all wire bytes, setup included, per message with payload)")
    lines.append("")
    lines.append("bytes by category:")
    from inspector.analysis.tables import BYTE_CATEGORIES

    total = int(connections["wire_bytes"].sum()) if len(connections) else 0
    for name in BYTE_CATEGORIES:
        value = int(connections[name].sum()) if len(connections) else 0
        share = value / total if total else 0
        lines.append(f"  {name.removesuffix('_bytes'):<24} {value:>14,} {share:>7.1%}")
    if len(findings):
        lines.append("")
        lines.append("findings by rule:")
        for rule, count in findings["rule"].value_counts().sort_index().items():
            lines.append(f"  {rule:<32} {count:>6}")
    return "\n".join(lines)
