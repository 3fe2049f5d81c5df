"""The table schemas: one place that says what every exported column means.

Every table is a pandas DataFrame with exactly these columns, in this order
(exported files use the same names).  Text columns are pandas' Arrow-backed
`str` dtype; `Int64` and `boolean` are pandas' nullable types.  `ts` columns are float seconds since the
epoch; `direction` is "client" or "server" (the side that sent it); booleans
are true/false.  The README's table section is generated from this module's
docstrings and must stay in step with it (a test checks).
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
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
    "http_body_bytes": "HTTP body bytes as sent (still content-encoded; HTTP/2: the data of DATA frames, without padding)",
    "ws_frame_header_bytes": "WebSocket frame headers, extended lengths and masking keys",
    "ws_control_payload_bytes": "payload of WebSocket close, ping and pong frames",
    "ws_data_payload_bytes": "payload of WebSocket text, binary and continuation frames (as sent)",
    "tls_record_header_bytes": "TLS record headers (5 bytes each)",
    "tls_handshake_bytes": "payload of TLS handshake, ChangeCipherSpec and alert records, and of the encrypted handshake records of TLS 1.3 (told from application data by their place: the server's records until the client's first encrypted one, and that one)",
    "tls_aead_overhead_bytes": "payload of decrypted TLS application data records that is not plaintext: TLS 1.2's explicit nonce, the AEAD tag, TLS 1.3's inner content type and padding (the plaintext is in the HTTP and WebSocket categories, or unparsed)",
    "tls_encrypted_bytes": "payload of TLS application data records that could not be decrypted (TLS 1.3's post-handshake messages and alerts included: they look the same)",
    "http2_frame_header_bytes": "HTTP/2 frame headers (9 bytes each)",
    "http2_hpack_bytes": "HTTP/2 header blocks as sent, HPACK-encoded: the fragments of HEADERS, CONTINUATION and PUSH_PROMISE frames (HTTP/2 DATA frames' data counts in http_body_bytes)",
    "http2_control_bytes": "the HTTP/2 client connection preface and the payload of HTTP/2 control frames: SETTINGS, PING, WINDOW_UPDATE, PRIORITY, RST_STREAM, GOAWAY, unknown types, and HEADERS' priority fields and PUSH_PROMISE's promised stream id",
    "http2_padding_bytes": "HTTP/2 padding: the Pad Length field and padding of DATA, HEADERS and PUSH_PROMISE frames",
    "unparsed_bytes": "payload not framed as HTTP, HTTP/2, WebSocket or TLS: other protocols, tunnels, bytes around gaps, bytes that came late for a hole already reported as a gap, bytes not captured (snaplen), bogus frame lengths",
}

# Payload and efficiency of a connection or an overhead row: (dtype, meaning).
# Efficiency counts the application payload (decoded), never the payload as sent:
# compression would otherwise look like waste.  See inspector/analysis/payload.py.
PAYLOAD_COLUMNS: dict[str, tuple[str, str]] = {
    "app_payload_bytes": ("int64", "application payload: HTTP bodies decoded (gzip, deflate), WebSocket data messages decompressed (permessage-deflate), the data of Server-Sent Events (a text/event-stream body's field names, line ends and keep-alive comments are not payload); a message whose decoded size is unknown counts as sent"),
    "efficiency": ("float64", "app_payload_bytes / wire_bytes: application payload per byte on the wire (over 1 when compression delivers more payload than the bytes it sends)"),
    "wire_payload_bytes": ("int64", "payload as sent: HTTP bodies still content-encoded, WebSocket data still compressed, Server-Sent Events' data (content-coded: its share of the compressed bytes) (http_body_bytes + ws_data_payload_bytes, less the rest of text/event-stream bodies: sse_events' wire_payload_bytes that are not data)"),
    "wire_payload_efficiency": ("float64", "wire_payload_bytes / wire_bytes: payload as sent per byte on the wire (below efficiency when compression saved bytes)"),
    "compression_saved_bytes": ("int64", "app_payload_bytes - wire_payload_bytes: payload bytes compression kept off the wire (negative if it added some)"),
    "compression_ratio": ("float64", "app_payload_bytes / wire_payload_bytes: 1.0 when nothing was compressed, empty without payload"),
    "undecoded_payload_bytes": ("int64", "payload counted as sent in app_payload_bytes because its decoded size is unknown (decompression failed or hit its cap, body or message incomplete, a coding not decoded such as br); when not 0, efficiency is a lower bound"),
}
_PAYLOAD_SCHEMA = {name: dtype for name, (dtype, _meaning) in PAYLOAD_COLUMNS.items()}

SCHEMAS: dict[str, dict[str, str]] = {
    "captures": {
        "capture": "str",
        "format": "str",
        "link_types": "str",
        "packets": "int64",
        "tcp_packets": "int64",
        "non_tcp_packets": "int64",
        "non_tcp_detail": "str",
        "wire_bytes": "int64",
        "connections": "int64",
        "truncated": "bool",
        "warnings": "str",
        "scenario": "str",
    },
    "connections": {
        "conn_id": "int64",
        "capture": "str",
        "client_ip": "str",
        "client_port": "int64",
        "server_ip": "str",
        "server_port": "int64",
        "kind": "str",
        "variant": "str",
        "start_ts": "float64",
        "end_ts": "float64",
        "first_frame": "int64",
        "packets": "int64",
        "wire_bytes": "int64",
        **{name: "int64" for name in BYTE_CATEGORIES},
        **_PAYLOAD_SCHEMA,
        "setup_bytes": "float64",
        "teardown_bytes": "float64",
        "handshake_seen": "bool",
        "gap_bytes": "int64",
        "http_requests": "int64",
        "http_responses": "int64",
        "ws_messages": "int64",
        "sse_events": "int64",
        "ws_accept_valid": "boolean",
        "ws_version": "str",
        "ws_subprotocol": "str",
        "ws_extensions": "str",
        "ws_deflate": "bool",
        "tls_records": "int64",
        "tls_version": "str",
        "tls_cipher": "str",
        "tls_sni": "str",
        "tls_alpn": "str",
        "tls_alpn_offered": "str",
    },
    "http_messages": {
        "conn_id": "int64",
        "exchange_id": "int64",
        "stream_id": "Int64",
        "direction": "str",
        "ts": "float64",
        "end_ts": "float64",
        "method": "str",
        "target": "str",
        "status": "Int64",
        "reason": "str",
        "version": "str",
        "header_bytes": "int64",
        "http1_header_bytes": "Int64",
        "body_bytes": "int64",
        "body_wire_bytes": "int64",
        "chunk_framing_bytes": "int64",
        "missing_bytes": "int64",
        "content_encoding": "str",
        "decompressed_bytes": "Int64",
        "complete": "bool",
        "offset": "int64",
        "body_text": "str",
        "headers": "str",
    },
    "ws_frames": {
        "conn_id": "int64",
        "frame_id": "int64",
        "message_id": "Int64",
        "direction": "str",
        "ts": "float64",
        "fin": "bool",
        "rsv1": "bool",
        "rsv2": "bool",
        "rsv3": "bool",
        "opcode": "int64",
        "opcode_name": "str",
        "masked": "bool",
        "mask_key": "str",
        "payload_length": "int64",
        "header_bytes": "int64",
        "missing_bytes": "int64",
        "close_code": "Int64",
        "close_reason": "str",
        "offset": "int64",
        "payload_text": "str",
        "payload_hex": "str",
    },
    "ws_messages": {
        "conn_id": "int64",
        "message_id": "int64",
        "direction": "str",
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
        "payload_text": "str",
        "payload_hex": "str",
    },
    "sse_events": {
        "conn_id": "int64",
        "item_id": "int64",
        "exchange_id": "int64",
        "stream_id": "Int64",
        "direction": "str",
        "ts": "float64",
        "kind": "str",
        "control": "str",
        "event_type": "str",
        "last_event_id": "str",
        "retry_ms": "Int64",
        "lines": "int64",
        "data_bytes": "int64",
        "data_chars": "int64",
        "data_text": "str",
        "text_valid": "boolean",
        "truncated": "bool",
        "decoded_bytes": "int64",
        "framing_bytes": "int64",
        "wire_payload_bytes": "int64",
        "missing_bytes": "int64",
        "wire_bytes": "int64",
        "offset": "int64",
    },
    "tls_records": {
        "conn_id": "int64",
        "record_id": "int64",
        "direction": "str",
        "ts": "float64",
        "content_type": "int64",
        "content_name": "str",
        "version": "int64",
        "length": "int64",
        "header_bytes": "int64",
        "missing_bytes": "int64",
        "encrypted": "bool",
        "counted_as": "str",
        "messages": "str",
        "offset": "int64",
        "decrypted": "bool",
        "plaintext_bytes": "int64",
        "aead_overhead_bytes": "int64",
    },
    "findings": {
        "conn_id": "Int64",
        "capture": "str",
        "ts": "float64",
        "direction": "str",
        "rule": "str",
        "detail": "str",
    },
    "message_costs": {
        "conn_id": "int64",
        "kind": "str",
        "item": "str",
        "item_index": "int64",
        "direction": "str",
        "ts": "float64",
        "app_header_bytes": "int64",
        "wire_payload_bytes": "int64",
        "tls_overhead_bytes": "int64",
        "transport_bytes": "float64",
        "ack_bytes": "float64",
        "wire_bytes": "float64",
        "app_payload_bytes": "int64",
        "undecoded_payload_bytes": "int64",
        "payload_messages": "int64",
        "efficiency": "float64",
    },
    "overhead": {
        "kind": "str",
        "variant": "str",
        "connections": "int64",
        "messages": "int64",
        "payload_messages": "int64",
        "packets": "int64",
        "wire_bytes": "int64",
        **{name: "int64" for name in BYTE_CATEGORIES},
        **_PAYLOAD_SCHEMA,
        "setup_bytes": "float64",
        "teardown_bytes": "float64",
        "wire_bytes_per_message": "float64",
        "wire_bytes_per_payload_message": "float64",
    },
}

SCHEMAS["staleness"] = {
    "capture": "str",
    "variant": "str",
    "seq": "int64",
    "published_ts": "float64",
    "received_ts": "float64",
    "staleness_s": "float64",
}

SCHEMAS["sse_reconnections"] = {
    "capture": "str",
    "conn_id": "int64",
    "exchange_id": "int64",
    "stream_id": "Int64",
    "ts": "float64",
    "last_event_id": "str",
    "previous_conn_id": "Int64",
    "previous_exchange_id": "Int64",
    "previous_last_event_id": "str",
    "previous_last_ts": "float64",
    "previous_end_ts": "float64",
    "first_ts": "float64",
    "first_event_id": "str",
    "gap_s": "float64",
    "gap_from_end_s": "float64",
    "id_check": "str",
}

TABLE_DOCS: dict[str, str] = {
    "captures": "one row per capture file: format, link types, packet counts, non-TCP packets by reason, warnings, and the scenario its recording sidecar names (chat, feed, bulk, idle; empty without one)",
    "connections": "one row per TCP connection (first_frame: the number of its first packet in the capture, from 1, as Wireshark numbers frames), with one column per byte category (they sum to wire_bytes) and the payload and efficiency columns; sse_events counts the Server-Sent Events its text/event-stream responses dispatched (control items aside); for a TLS connection (kind tls), tls_version and tls_cipher as the ServerHello chose them, tls_sni and tls_alpn_offered (comma-separated) from the ClientHello, tls_alpn as chosen when the ServerHello says it (TLS 1.2; TLS 1.3 sends it encrypted: seen when decrypted), empty when not seen; a TLS connection decrypted with logged secrets (inspector analyze --keylog, or a pcapng's decryption secrets) whose plaintext is HTTP/1.1 is kind rest, or websocket after an upgrade, and whose plaintext is HTTP/2 (ALPN h2, or the client preface) kind http2, like its cleartext twin, its TLS columns filled (tls_version not empty tells it from cleartext)",
    "http_messages": "one row per HTTP request and per response; exchange_id pairs them within a connection: HTTP/1.1 FIFO, HTTP/2 by stream (stream_id; empty for HTTP/1.1, and for the HTTP/1.1 request of an h2c upgrade, whose response comes on stream 1 with its exchange_id); direction is who sent it, so a request a server promised (PUSH_PROMISE) is a server row with a method, on the promised stream, paired with the pushed response. For HTTP/2 (version HTTP/2), header_bytes is the HPACK header blocks (trailers included), body_wire_bytes the DATA frames whole, chunk_framing_bytes their 9-byte headers and padding, body_bytes their data; ts and end_ts are the first byte of the message's first frame and the capture time of its last. http1_header_bytes is what the headers take (HTTP/1.1) or would take (HTTP/2) as HTTP/1.1 text: start line from the pseudo-headers, Host from :authority, cookies joined, one `Name: value` line each and the blank line (empty when a header block could not be decoded); http1_header_bytes - header_bytes is what HPACK saved. headers is the message's header lines after the start line, one `Name: value` a line: HTTP/1.1's as sent (bytes as latin-1 text, line ends kept), HTTP/2's decoded fields as HTTP/1.1 would send them (no pseudo-headers: Host from :authority, cookies joined); every value cut to 8,192 characters (texts.MAX_HEADER_VALUE_CHARS), since they are hostile text",
    "ws_frames": "one row per WebSocket frame; payload shown as text (U+FFFD for bad bytes) and hex, cut to a preview",
    "ws_messages": "one row per WebSocket data message (fragments assembled; control frames are not messages); payload_text previews the payload (decompressed) as text, payload_hex is the hex of a binary message's first 200 bytes (empty for text messages)",
    "sse_events": "one row per Server-Sent Event and per control item of a text/event-stream response (HTTP/1.1: chunked, Content-Length or read to the close, decoded from gzip or deflate; HTTP/2: its DATA frames), as its body arrives, in stream order per connection (item_id): kind event (dispatched by a blank line, WHATWG HTML 9.2.6) or control (control: comment lines, the keep-alives servers send; empty: blank lines or fields that dispatch nothing; unterminated: an event the stream ended before its blank line; end: the last chunk and trailers after the last item; lost: a capture gap and the bytes after it up to the next blank line, not read; undecoded: content-coded bytes that could not be decoded). exchange_id (and stream_id for HTTP/2) is the response's, so the rows join http_messages. ts is the capture time of the packet that completed the item. event_type (message unless an event field said otherwise), last_event_id (the stream's last event ID after the event, as EventSource's lastEventId: what a reconnecting client sends as Last-Event-ID) and retry_ms are the event's; data_bytes and data_chars measure its data as dispatched (data lines joined by LF; of what was read, when a line was longer than the parser holds: truncated), data_text previews it (200 characters; U+FFFD for bad bytes: text_valid false), event_type and last_event_id are cut to 200 characters. Bytes: decoded_bytes its lines in the decoded body; on the stream, wire_payload_bytes of the body as sent (content-coded: its share of the compressed bytes, see the README), framing_bytes of chunk framing (HTTP/2: DATA frame headers and padding) and missing_bytes not captured, together wire_bytes, from stream offset offset; message_costs has its row (item sse_event or sse_control, item_index the item_id) with its share of the packets",
    "tls_records": "one row per TLS record (kind tls connections): content_type and version as in the record header (content_name: change_cipher_spec, alert, handshake, application_data, heartbeat), length its payload (missing_bytes of it not captured), encrypted when the payload is not readable without keys, counted_as the byte category of its payload (handshake, encrypted, or application: decrypted application data, whose plaintext_bytes went to the HTTP/WebSocket parsers and aead_overhead_bytes to tls_aead_overhead_bytes), messages the handshake messages or alert read in clear or decrypted; decrypted when opened with logged secrets (then content type 23 records of TLS 1.3 are counted by their inner content type)",
    "findings": "protocol conformance findings (never fatal): rule and detail",
    "message_costs": "one row per application message (REST exchange, WebSocket data message, Server-Sent Event: item sse_event, item_index its sse_events item_id) plus setup, teardown, WebSocket control and unattributed rows per connection, and one per SSE control item (sse_control: keep-alive comments, blank lines, the end of a stream; a text/event-stream response's exchange row has its request and the response's head, its body's bytes are its items'); for an SSE item app_header_bytes is its chunk framing and the lines of it that are not an event's data, wire_payload_bytes an event's data (as sent); wire_bytes is app_header_bytes + wire_payload_bytes (payload as sent) + tls_overhead_bytes (the record headers and AEAD overhead of the decrypted TLS records carrying it: a record's header and explicit nonce go to the message of its first plaintext byte, its tag, inner content type and padding to that of its last) + transport_bytes + ack_bytes, and a connection's rows add up to its wire_bytes; app_payload_bytes is the row's application payload (decoded; undecoded_payload_bytes of it counted as sent) and efficiency app_payload_bytes / wire_bytes, as in connections (control frames and SSE control items carry none, but lost and undecoded ones, whose bytes count as payload as sent); payload_messages counts the HTTP requests and responses whose decoded body is not empty (a text/event-stream response's body is its events'), the WebSocket message if its decoded payload is not, or the event if its data is not, of the row: the work it did",
    "overhead": "one row per connection kind (rest, websocket, http2, tls, other) and recorded variant: bytes by category, the payload and efficiency columns (as in connections); messages counts REST exchanges, WebSocket data messages and Server-Sent Events, payload_messages the requests, responses, WebSocket messages and events that carry payload (an empty poll or a 204 carries none: its bytes are cost), and wire_bytes_per_payload_message divides all wire bytes, setup included, by those",
    "staleness": "for recorded feed workloads: when each update was published and when the client saw it",
    "sse_reconnections": "one row per request with a Last-Event-ID header whose response is a text/event-stream (ts: the request's time; last_event_id: the ID it sent): an EventSource reconnecting, which goes on with the latest stream before it from the same client address to the same server address, port and target (previous_conn_id and previous_exchange_id, empty when the capture has none; on another connection, or on the same one after its response ended). previous_last_event_id and previous_last_ts are that stream's last event's, previous_end_ts its response's last byte; first_ts and first_event_id the first event after the reconnection; gap_s = first_ts - previous_last_ts and gap_from_end_s = first_ts - previous_end_ts. id_check says what the IDs show, only where the ID sent and the first ID after it are numbers and both streams' IDs are numbers that never go down: next (the first ID is the one after the ID sent), repeats (not above it: events the client had are sent again; finding sse-resume-repeats-ids), skips (more than one past it while both streams' IDs go up by one; finding sse-resume-skips-ids), after (more than one past it, IDs that do not go up by one), empty when not judged",
}

TABLE_NAMES = tuple(SCHEMAS)
# The version of these schemas in a store (inspector/store): any change of a table, a column or
# its dtype, or of what a column means or counts, bumps it, so that a store written before is
# analysed again rather than misread.
SCHEMA_VERSION = 8
# The tables whose rows are made per connection, from its events as they come (analysis/rows.py),
# and carry its conn_id; the others are per capture (captures, staleness) or summed over
# connections (overhead).
CONNECTION_TABLES = ("connections", "http_messages", "ws_frames", "ws_messages", "sse_events", "tls_records", "findings", "message_costs")


def make_table(name: str, rows: list[dict] | None = None) -> pd.DataFrame:
    """A DataFrame with the named table's columns and dtypes, from row dicts."""
    schema = SCHEMAS[name]
    rows = rows or []
    # Typed arrays per column: much faster than pandas' conversion of dicts,
    # and Arrow-backed strings are compact and cheap to send between processes.
    names = list(schema)
    if rows:
        # itemgetter + zip transpose the rows in C, not in a Python loop per column.
        values_by_column = list(zip(*map(itemgetter(*names), rows))) if len(names) > 1 else [[r[names[0]] for r in rows]]
    else:
        values_by_column = [[] for _ in names]
    columns = {}
    for column, values in zip(names, values_by_column):
        dtype = schema[column]
        columns[column] = np.array(values, dtype=dtype) if dtype in _NUMPY_DTYPES else pd.array(list(values), dtype=dtype)
    return pd.DataFrame(columns, copy=False)


_NUMPY_DTYPES = ("int64", "float64", "bool")
