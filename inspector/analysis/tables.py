"""The table schemas: one place that says what every exported column means.

Every table is a pandas DataFrame with exactly these columns, in this order
(exported files use the same names).  `ts` columns are float seconds since the
epoch; `direction` is "client" or "server" (the side that sent it); booleans
are true/false.  The README's table section is generated from this module's
docstrings and must stay in step with it (a test checks).
"""

from __future__ import annotations

import pandas as pd

# Byte categories of a connection, in the order they are shown.  For every
# connection they add up exactly to `wire_bytes` (tshark's frame.len summed).
BYTE_CATEGORIES: dict[str, str] = {
    "link_header_bytes": "link-layer headers and trailers (Ethernet, SLL, NULL, padding) of packets with payload",
    "ip_header_bytes": "IPv4/IPv6 headers (with extension headers) of packets with payload",
    "tcp_header_bytes": "TCP headers (with options) of packets with payload",
    "tcp_control_bytes": "whole frames of TCP packets without payload: handshake, pure ACKs, FIN, RST",
    "retransmitted_bytes": "payload bytes already seen earlier in the stream (retransmissions, overlaps)",
    "http_header_bytes": "HTTP start lines, header lines and the blank line ending them",
    "http_chunk_framing_bytes": "HTTP chunked framing: chunk-size lines, CRLFs, last chunk, trailers",
    "http_body_bytes": "HTTP body bytes as sent (still content-encoded)",
    "ws_frame_header_bytes": "WebSocket frame headers, extended lengths and masking keys",
    "ws_control_payload_bytes": "payload of WebSocket close, ping and pong frames",
    "ws_data_payload_bytes": "payload of WebSocket text, binary and continuation frames (as sent)",
    "unparsed_bytes": "payload not framed as HTTP or WebSocket: other protocols, tunnels, bytes around gaps, bytes not captured (snaplen), bogus frame lengths",
}

SCHEMAS: dict[str, dict[str, str]] = {
    "captures": {
        "capture": "object",
        "format": "object",
        "link_types": "object",
        "packets": "int64",
        "tcp_packets": "int64",
        "non_tcp_packets": "int64",
        "non_tcp_detail": "object",
        "wire_bytes": "int64",
        "connections": "int64",
        "truncated": "bool",
        "warnings": "object",
    },
    "connections": {
        "conn_id": "int64",
        "capture": "object",
        "client_ip": "object",
        "client_port": "int64",
        "server_ip": "object",
        "server_port": "int64",
        "kind": "object",
        "variant": "object",
        "start_ts": "float64",
        "end_ts": "float64",
        "packets": "int64",
        "wire_bytes": "int64",
        **{name: "int64" for name in BYTE_CATEGORIES},
        "payload_bytes": "int64",
        "efficiency": "float64",
        "setup_bytes": "float64",
        "teardown_bytes": "float64",
        "handshake_seen": "bool",
        "gap_bytes": "int64",
        "http_requests": "int64",
        "http_responses": "int64",
        "ws_messages": "int64",
        "ws_accept_valid": "boolean",
        "ws_version": "object",
        "ws_subprotocol": "object",
        "ws_extensions": "object",
        "ws_deflate": "bool",
    },
    "http_messages": {
        "conn_id": "int64",
        "exchange_id": "int64",
        "direction": "object",
        "ts": "float64",
        "end_ts": "float64",
        "method": "object",
        "target": "object",
        "status": "Int64",
        "reason": "object",
        "version": "object",
        "header_bytes": "int64",
        "body_bytes": "int64",
        "body_wire_bytes": "int64",
        "chunk_framing_bytes": "int64",
        "missing_bytes": "int64",
        "content_encoding": "object",
        "decompressed_bytes": "Int64",
        "complete": "bool",
        "offset": "int64",
        "body_text": "object",
    },
    "ws_frames": {
        "conn_id": "int64",
        "frame_id": "int64",
        "message_id": "Int64",
        "direction": "object",
        "ts": "float64",
        "fin": "bool",
        "rsv1": "bool",
        "rsv2": "bool",
        "rsv3": "bool",
        "opcode": "int64",
        "opcode_name": "object",
        "masked": "bool",
        "mask_key": "object",
        "payload_length": "int64",
        "header_bytes": "int64",
        "missing_bytes": "int64",
        "close_code": "Int64",
        "close_reason": "object",
        "offset": "int64",
        "payload_text": "object",
        "payload_hex": "object",
    },
    "ws_messages": {
        "conn_id": "int64",
        "message_id": "int64",
        "direction": "object",
        "ts": "float64",
        "end_ts": "float64",
        "opcode": "int64",
        "frames": "int64",
        "header_bytes": "int64",
        "wire_payload_bytes": "int64",
        "payload_bytes": "Int64",
        "compressed": "bool",
        "text_valid": "boolean",
        "complete": "bool",
        "payload_text": "object",
    },
    "findings": {
        "conn_id": "Int64",
        "capture": "object",
        "ts": "float64",
        "direction": "object",
        "rule": "object",
        "detail": "object",
    },
    "message_costs": {
        "conn_id": "int64",
        "kind": "object",
        "item": "object",
        "item_index": "int64",
        "direction": "object",
        "ts": "float64",
        "app_header_bytes": "int64",
        "app_payload_bytes": "int64",
        "transport_bytes": "float64",
        "ack_bytes": "float64",
        "wire_bytes": "float64",
        "efficiency": "float64",
    },
    "overhead": {
        "kind": "object",
        "connections": "int64",
        "messages": "int64",
        "packets": "int64",
        "wire_bytes": "int64",
        **{name: "int64" for name in BYTE_CATEGORIES},
        "payload_bytes": "int64",
        "setup_bytes": "float64",
        "teardown_bytes": "float64",
        "wire_bytes_per_message": "float64",
        "efficiency": "float64",
    },
}

TABLE_DOCS: dict[str, str] = {
    "captures": "one row per capture file: format, link types, packet counts, non-TCP packets by reason, warnings",
    "connections": "one row per TCP connection, with one column per byte category (they sum to wire_bytes)",
    "http_messages": "one row per HTTP request and per response; exchange_id pairs them FIFO within a connection",
    "ws_frames": "one row per WebSocket frame; payload shown as text (U+FFFD for bad bytes) and hex, cut to a preview",
    "ws_messages": "one row per WebSocket data message (fragments assembled; control frames are not messages)",
    "findings": "protocol conformance findings (never fatal): rule and detail",
    "message_costs": "one row per application message (REST exchange, WebSocket data message) plus setup, teardown, WebSocket control and unattributed rows per connection; wire_bytes of a connection's rows add up to its wire_bytes",
    "overhead": "one row per connection kind (rest, websocket, other): bytes by category, payload, efficiency",
}

TABLE_NAMES = tuple(SCHEMAS)


def make_table(name: str, rows: list[dict] | None = None) -> pd.DataFrame:
    """A DataFrame with the named table's columns and dtypes, from row dicts."""
    schema = SCHEMAS[name]
    rows = rows or []
    # Column lists first: much faster than pandas' own conversion of dicts.
    frame = pd.DataFrame({column: [row[column] for row in rows] for column in schema})
    return frame.astype(schema)
