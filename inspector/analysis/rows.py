"""Turn connections' events into rows of every table, as they come.

A worker writes the rows of all its connections into one column sink per
table (`ShardRows`, see sinks.py): a connection's events are taken from it
after every packet (`ShardRows.take_events`) and written straight into the
sinks' columns, and what the overhead attribution of the connection's last
moment needs is kept as compact arrays per connection (`_ConnectionRows`).
So a million WebSocket frames in one connection cost what their table rows
cost, not a million event objects, and no row is ever a dict.

Rows of a table are in the order they were written, connections interleaved;
within a connection they are in event order, and the pipeline sorts by
connection (stably) when it merges workers.
"""

from __future__ import annotations

import ipaddress
import struct
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache, partial

import numpy as np
import pandas as pd

from inspector.analysis import long_connections
from inspector.analysis.accounting import RECORD_FIELDS, ConnectionAccount
from inspector.analysis.long_connections import FloatTotals, SpilledConnection
from inspector.analysis.overhead import (ITEM_SETUP, ITEM_TEARDOWN, ITEM_UNATTRIBUTED, ITEM_WS_CONTROL, Spans, attribute_packets, attribute_spilled,
                                         pack_range)
from inspector.analysis.payload import http_app_payload, payload_columns, ws_app_payload
from inspector.analysis.sinks import MISSING, Codes, Seconds, TableSink, columns_of, numbers_of, provisional
from inspector.analysis.tables import CONNECTION_TABLES
from inspector.analysis.texts import FrameTexts, HttpTexts, MessageTexts
from inspector.events import (Direction, Finding, Http2Frame, Http2Preface, HttpRequest, HttpResponse, SseEvent, SseItem, TlsClientHello, TlsRecord,
                              TlsServerHello, WsFrame, WsHandshake, WsMessage, WsOneFrameMessage)
from inspector.parse.connection import Kind
from inspector.parse.http2 import FrameType
from inspector.parse.tls import ContentType, cipher_suite_name, version_name

# A worker's rows of one table become a DataFrame chunk this often.
CHUNK_ROWS = 16_384
# Sinks are checked for a full chunk after this many events (an event writes a row or
# two) and after every connection's last rows.
CHECK_FULL_EVENTS = 256
# Findings of one rule listed per connection; the rest are counted in one
# last finding of that rule ("N more ... not listed").
MAX_FINDINGS_PER_RULE = 100
# A data frame waiting for its message, as a flat record of this many numbers: its
# ws_frames row, offset, header bytes, payload length, missing bytes, and whether it
# starts a compressed message (FRAME_CONTINUES for a continuation frame, which carries
# no such bit).
FRAME_RECORD = 6
FRAME_CONTINUES = -1
# A connection whose packets bring many messages each (Server-Sent Events: thousands in a 64 KiB
# segment) is looked at as its items pass this many, not only every few sweeps of packets.
SPILL_CHECK_ITEMS = 2 * long_connections.LONG_CONNECTION_RECORDS
# ... and its rows are handed on (to the store being written) after this many of its events,
# not only at sweeps, which come every so many packets.
HAND_ON_EVENTS = 65_536
# Taken records are dropped from the front of the waiting ones past this many.
PENDING_COMPACT_RECORDS = 4096

# Short repeated strings are written as codes: a Direction's value, or NO_DIRECTION.
DIRECTIONS = ("client", "server", "")
NO_DIRECTION = 2
CLIENT = Direction.CLIENT  # looked up once: reading an Enum member costs 85 ns
KINDS = (Kind.REST, Kind.WEBSOCKET, Kind.OTHER, Kind.TLS, Kind.HTTP2)
# tls_records.content_name by content type (the first is 20), and what a record's payload counts as.
CONTENT_NAMES = tuple(content_type.name.lower() for content_type in ContentType)
FIRST_CONTENT_TYPE = min(ContentType)
# By TlsRecord.handshake, then "application" for decrypted application data (its plaintext goes to
# the HTTP and WebSocket categories, the rest of its payload to tls_aead_overhead_bytes).
COUNTED_AS = ("encrypted", "handshake", "application")
COUNTED_AS_APPLICATION = 2
# Where the frames of HTTP/2 stream 0 go in message_costs: the connection's SETTINGS are its
# setup, GOAWAY its teardown, PING, WINDOW_UPDATE and unknown frames no message's.
STREAM_0_ITEMS = {FrameType.SETTINGS: ITEM_SETUP, FrameType.GOAWAY: ITEM_TEARDOWN}
# An HTTP/2 stream gets its exchange with its first HEADERS or PUSH_PROMISE.
OPENS_STREAM = (FrameType.HEADERS, FrameType.PUSH_PROMISE)
# The map of HTTP/2 streams to exchanges drops the finished ones when it grows past this.
PRUNE_STREAMS_AT = 1024
# What a message_costs row stands for: its first four items are always
# ITEM_SETUP..ITEM_UNATTRIBUTED (overhead.py), in this order; MERGED rows
# (an exchange that turned out to be part of the setup) are not shown.
ITEMS = ("setup", "teardown", "ws_control", "unattributed", "exchange", "ws_message", "merged", "sse_event", "sse_control")
ITEM_EXCHANGE, ITEM_WS_MESSAGE, MERGED, ITEM_SSE_EVENT, ITEM_SSE_CONTROL = 4, 5, 6, 7, 8
# The first item of a message (those before are always there: setup to unattributed).
FIRST_MESSAGE_ITEM = ITEM_UNATTRIBUTED + 1
# sse_events: kind, and a control item's kind (SseControl.kind; "" for an event).
SSE_KINDS = ("event", "control")
SSE_CONTROLS = ("", "comment", "empty", "unterminated", "end", "lost", "undecoded")
# SSE control items that stand for body bytes not read as events: counted as payload, as an
# HTTP body is (content-coded ones as undecoded: their decoded size is unknown).
SSE_UNREAD = {"lost": False, "undecoded": True}
# An event's type and ID are kept to this many characters (they are hostile text).
MAX_SSE_FIELD_CHARS = 200


class ShardRows:
    """The rows of every connection one worker parses: one sink per table.

    spill_folder: where long connections' records go (long_connections.py; None: the system's
    temporary folder).  hand_on: called with the sinks when a long connection's rows filled
    sinks' chunks (to hand them on: a connection's message_costs rows are all written at its end).
    arrow_chunks: the sinks' chunks are Arrow record batches (streamed rows, which go to disk as
    Arrow), not DataFrames."""

    def __init__(self, spill_folder: str | None = None, hand_on: Callable[[dict[str, TableSink]], None] | None = None,
                 arrow_chunks: bool = False) -> None:
        self.spill_folder = spill_folder
        self.hand_on = hand_on
        direction = Codes(DIRECTIONS)
        # The big tables: numbers packed per row, what their texts are made of taken from the
        # event as the row is written (`hold_...`; made per chunk, see texts.py): a frame's from
        # its WsFrame or the WsOneFrameMessage that stands for it, a message's from its payload.
        self.http_messages = TableSink("http_messages", {**columns_of("http_messages", exclude=HttpTexts.derived, direction=direction, ts=Seconds(), end_ts=Seconds()),
                                                         **HttpTexts.held},
                                       packed=HTTP_PACKED, derived=HttpTexts.derived, chunk_rows=CHUNK_ROWS, arrow=arrow_chunks)
        self.ws_frames = TableSink("ws_frames", {**columns_of("ws_frames", exclude=FrameTexts.derived, direction=direction, ts=Seconds()),
                                                   **FrameTexts.held},
                                   packed=FRAME_PACKED, derived=FrameTexts.derived, late=("message_id",), chunk_rows=CHUNK_ROWS, arrow=arrow_chunks)
        self.ws_messages = TableSink("ws_messages", {**columns_of("ws_messages", exclude=MessageTexts.derived, direction=direction, ts=Seconds(), end_ts=Seconds()),
                                                     **MessageTexts.held},
                                     packed=MESSAGE_PACKED, derived=MessageTexts.derived, chunk_rows=CHUNK_ROWS, arrow=arrow_chunks)
        self.sse_events = TableSink("sse_events", columns_of("sse_events", direction=direction, ts=Seconds(), kind=Codes(SSE_KINDS),
                                                             control=Codes(SSE_CONTROLS)),
                                    packed=SSE_PACKED, chunk_rows=CHUNK_ROWS, arrow=arrow_chunks)
        self.tls_records = TableSink("tls_records", columns_of("tls_records", direction=direction, ts=Seconds(), content_name=Codes(CONTENT_NAMES),
                                                               counted_as=Codes(COUNTED_AS)),
                                     packed=TLS_PACKED, chunk_rows=CHUNK_ROWS, arrow=arrow_chunks)
        self.findings = TableSink("findings", columns_of("findings", direction=direction, ts=Seconds()), chunk_rows=CHUNK_ROWS, arrow=arrow_chunks)
        # A connection's message_costs rows are written at once, from its items' records
        # and the transport and ACK bytes attributed to them (conn_id and kind per block).
        self.message_costs = TableSink("message_costs", columns_of("message_costs", exclude=("wire_bytes", "efficiency"), kind=Codes(KINDS),
                                                                   item=Codes(ITEMS), direction=direction, ts=Seconds()),
                                       derived={"wire_bytes": _cost_wire_bytes, "efficiency": _cost_efficiency},
                                       keep=_costs_shown, chunk_rows=CHUNK_ROWS, arrow=arrow_chunks,
                                       blocks=((ITEM_FIELDS, "q"), (("transport_bytes",), "d"), (("ack_bytes",), "d")))
        connection_columns = columns_of("connections", kind=Codes(KINDS), start_ts=Seconds(), end_ts=Seconds())
        self.connections = TableSink("connections", connection_columns, packed=numbers_of(connection_columns), chunk_rows=CHUNK_ROWS, arrow=arrow_chunks)
        self.sinks = {name: getattr(self, name) for name in CONNECTION_TABLES}
        self.hold_http_message = HttpTexts.holder(self.http_messages.values)
        self.hold_frame = FrameTexts.holder(self.ws_frames.values)
        self.hold_message_payload = MessageTexts.holder(self.ws_messages.values)
        self.events_until_check = CHECK_FULL_EVENTS
        self.events_since_hand_on = 0  # events of packets that brought many (see HAND_ON_EVENTS)

    def take_events(self, account: ConnectionAccount) -> None:
        """Write the events the connection produced since the last call as rows."""
        events = account.connection.events
        if events:
            if account.rows is None:
                account.rows = _ConnectionRows(account, self)
            count = len(events)
            if count < self.events_until_check:
                self.events_until_check -= count
                rows = account.rows
                write = WRITERS
                for event in events:  # rows.add_events(events), without the call
                    write[type(event)](rows, event)
            else:
                # Sinks hold what their rows' texts are made of until the chunk is made: a
                # packet of thousands of small frames is written a slice at a time.
                for start in range(0, count, CHECK_FULL_EVENTS):
                    account.rows.add_events(events[start:start + CHECK_FULL_EVENTS])
                    self._flush_full()
                if len(account.rows.items) > SPILL_CHECK_ITEMS * ITEM_SIZE:
                    self.spill_long((account,))
                self.events_since_hand_on += count
                if self.events_since_hand_on >= HAND_ON_EVENTS and self.hand_on is not None:
                    self.events_since_hand_on = 0
                    self.hand_on(self.sinks)
            events.clear()

    def finish(self, account: ConnectionAccount) -> None:
        """Write the rest of the rows of a connection that is over."""
        self.take_events(account)
        builder = account.rows if account.rows is not None else _ConnectionRows(account, self)
        account.rows = None
        if account.spilled is None and held_records(account, builder) > long_connections.LONG_CONNECTION_RECORDS:
            # Long, though it grew so between two looks (spill_long): attributed from disk all
            # the same, so that which way a connection goes depends on its size only.
            account.spilled = SpilledConnection(self.spill_folder, ITEM_SIZE)
        try:
            builder.finish()
        finally:
            if account.spilled is not None:
                account.spilled.close()
                account.spilled = None
        self._flush_full()

    def spill_long(self, accounts: Iterable[ConnectionAccount]) -> None:
        """Move what the long ones of these connections (holding more than
        long_connections.LONG_CONNECTION_RECORDS records) keep for their last rows to disk."""
        least = long_connections.LONG_CONNECTION_RECORDS
        for account in accounts:
            rows = account.rows
            # A cheap test first (every open connection is looked at): had that many packets or items.
            if account.packets <= least and (rows is None or len(rows.items) <= least * ITEM_SIZE):
                continue
            if held_records(account, rows) <= least:
                continue
            if account.spilled is None:
                account.spilled = SpilledConnection(self.spill_folder, ITEM_SIZE)
            account.spilled.take_records(account)
            if rows is not None:
                rows.spill(account.spilled)

    def hand_on_full(self) -> None:
        """Make full sinks' rows into chunks, and hand them on."""
        self._flush_full()
        if self.hand_on is not None:
            self.hand_on(self.sinks)

    def _flush_full(self) -> None:
        self.events_until_check = CHECK_FULL_EVENTS
        for sink in self.sinks.values():
            if sink.full():
                sink.flush()

    def chunks(self) -> dict[str, list[pd.DataFrame]]:
        """Every table as its chunks (the sinks are empty afterwards; see chunked.assemble_table)."""
        return {name: sink.take_chunks() for name, sink in self.sinks.items()}


def held_records(account: ConnectionAccount, rows: "_ConnectionRows | None") -> int:
    """The packet records, stream ranges and items a connection holds in memory."""
    records = (len(account.data_packets or ()) + len(account.control_packets or ())) // RECORD_FIELDS
    if rows is not None:
        records += len(rows.items) // ITEM_SIZE + len(rows.spans[0]) + len(rows.spans[1])
    return records


def _bytes_of(values: np.ndarray) -> memoryview:
    """A numpy array's bytes, as a sink's block takes them (a bytearray cannot add an array)."""
    return memoryview(np.ascontiguousarray(values)).cast("B")


def _cost_wire_bytes(built: dict, held: dict) -> np.ndarray:
    # As the sum of the row's parts in Python: the integers first, then the floats.
    return ((built["app_header_bytes"] + built["wire_payload_bytes"] + built["tls_overhead_bytes"]).astype(np.float64) + built["transport_bytes"]
            + built["ack_bytes"])


def _cost_efficiency(built: dict, held: dict) -> np.ndarray:
    wire = built["wire_bytes"]
    return np.divide(built["app_payload_bytes"].astype(np.float64), wire, out=np.full(len(wire), np.nan), where=wire != 0)


def _costs_shown(built: dict, held: dict) -> np.ndarray:
    """Merged items are not rows, nor setup-less control or unattributed ones that carry nothing."""
    items = np.array(held["item"], dtype=np.int8)
    empty = (built["wire_bytes"] == 0) & ((items == ITEM_WS_CONTROL) | (items == ITEM_UNATTRIBUTED))
    return (items != MERGED) & ~empty


@lru_cache(maxsize=4096)  # a capture's connections share few addresses
def _ip_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


# Number columns of the big tables, in the order their rows pack them.
HTTP_PACKED = ("conn_id", "exchange_id", "stream_id", "direction", "ts", "end_ts", "status", "header_bytes", "http1_header_bytes", "body_bytes",
               "body_wire_bytes", "chunk_framing_bytes", "missing_bytes", "decompressed_bytes", "complete", "offset")
FRAME_PACKED = ("conn_id", "frame_id", "direction", "ts", "fin", "rsv1", "rsv2", "rsv3", "opcode", "masked", "payload_length",
                "header_bytes", "missing_bytes", "close_code", "offset")
MESSAGE_PACKED = ("conn_id", "message_id", "direction", "ts", "end_ts", "opcode", "frames", "header_bytes", "wire_payload_bytes",
                  "payload_bytes", "compressed", "text_valid", "complete")
SSE_PACKED = ("conn_id", "item_id", "exchange_id", "stream_id", "direction", "ts", "kind", "control", "retry_ms", "lines", "data_bytes",
              "data_chars", "text_valid", "truncated", "decoded_bytes", "framing_bytes", "wire_payload_bytes", "missing_bytes", "wire_bytes",
              "offset")
TLS_PACKED = ("conn_id", "record_id", "direction", "ts", "content_type", "content_name", "version", "length", "header_bytes",
              "missing_bytes", "encrypted", "counted_as", "offset", "decrypted", "plaintext_bytes", "aead_overhead_bytes")


# What each message of a connection carries (setup, teardown, ... first), one flat
# record of ITEM_FIELDS numbers each in one array: what it is (an ITEMS code), its
# number and direction (a DIRECTIONS code), header and payload bytes as sent,
# application payload (decoded), how much of it is counted as sent because its decoded
# size is unknown, the messages with payload, and the TLS record headers and AEAD overhead of
# the decrypted records that carried it (set when the connection is over).  A record is added
# with one struct call.
ITEM_FIELDS = ("item", "item_index", "direction", "ts", "app_header_bytes", "wire_payload_bytes", "app_payload_bytes",
               "undecoded_payload_bytes", "payload_messages", "tls_overhead_bytes")
I_CODE, I_INDEX, I_DIRECTION, I_TS, I_HEADER, I_PAYLOAD, I_APP, I_UNDECODED, I_MESSAGES, I_TLS = range(len(ITEM_FIELDS))
# The fields of an item a merged item gives to the one it merges into.
_MERGED_FIELDS = (I_HEADER, I_PAYLOAD, I_APP, I_UNDECODED, I_TLS)
# A decrypted application data record of a direction, as a flat record of this many numbers:
# where its plaintext starts in the direction's plaintext and its length, where the record
# starts in the stream, the bytes before its plaintext (header, explicit nonce) and after (tag,
# TLS 1.3 inner content type, padding).
PLAIN_RECORD = 5
ITEM_SIZE = len(ITEM_FIELDS)
_pack_item = struct.Struct(f"<{ITEM_SIZE}q").pack
NUMBER_BYTES = 8  # of one number of an items array ("q")
# The five sums of an item, I_HEADER to I_MESSAGES, read and written in place with one call
# each (a fifth of the time of five `items[i] += n`).
_SUMS = struct.Struct("<5q")
_unpack_sums, _pack_sums_into = _SUMS.unpack_from, _SUMS.pack_into


def _new_items(start_ns: int) -> array:
    items = array("q")
    for code in (ITEM_SETUP, ITEM_TEARDOWN, ITEM_WS_CONTROL, ITEM_UNATTRIBUTED):
        items.frombytes(_pack_item(code, -1, NO_DIRECTION, start_ns, 0, 0, 0, 0, 0, 0))
    return items


def _merge_item(items: array, item: int, target: int) -> None:
    """`item` turned out to be part of `target` (its work is not counted)."""
    for field in _MERGED_FIELDS:
        items[target * ITEM_SIZE + field] += items[item * ITEM_SIZE + field]
        items[item * ITEM_SIZE + field] = 0
    items[item * ITEM_SIZE + I_CODE] = MERGED


class _ConnectionRows:
    """One connection's part of the rows: what it writes as events come, and the
    state its last rows (message_costs, connections) are made of when it is over."""

    __slots__ = ("account", "conn", "conn_id", "client_side", "sinks", "items", "spans", "spans_of",
                 "http_header_bytes", "http_chunk_framing_bytes", "http_body_bytes", "ws_frame_header_bytes",
                 "ws_control_payload_bytes", "ws_data_payload_bytes", "handshake", "deflate", "http_requests",
                 "http_responses", "final_responses", "item_of_exchange", "prune_exchanges_at", "upgrade_item", "upgrade_exchange",
                 "frame_count", "message_ids", "pending_frames", "pending_head", "newest_frame", "ws_message_count",
                 "findings_per_rule", "last_unlisted", "setup_bytes", "teardown_bytes", "tls_record_header_bytes", "tls_handshake_bytes",
                 "tls_encrypted_bytes", "tls_aead_overhead_bytes", "tls_record_count", "client_hello", "server_hello", "plain_records",
                 "http2_frame_header_bytes", "http2_hpack_bytes", "http2_control_bytes", "http2_padding_bytes", "h2_streams", "h2_done_streams",
                 "h2_next_exchange", "h2_last_opened", "sse_count", "sse_event_count", "sse_responses", "sse_syntax_bytes")

    def __init__(self, account: ConnectionAccount, sinks: ShardRows) -> None:
        self.account = account
        self.conn = account.connection
        self.conn_id = account.conn_id
        # The parser's to decide: it has by a connection's first event, and at the latest
        # when closed (by the caller's hint if nothing else tells; the pipeline's hint is the
        # higher port), which is before its last rows are made.
        self.client_side: int = self.conn.client_side
        self.sinks = sinks
        self.items = _new_items(account.start_ns)
        self.spans = (Spans(), Spans())  # by side
        self.spans_of = (self.spans[self.client_side], self.spans[1 - self.client_side])  # by Direction
        self.http_header_bytes = self.http_chunk_framing_bytes = self.http_body_bytes = 0
        self.ws_frame_header_bytes = self.ws_control_payload_bytes = self.ws_data_payload_bytes = 0
        self.handshake: WsHandshake | None = None
        self.deflate = False  # permessage-deflate negotiated: RSV1 marks a compressed message
        # HTTP: FIFO pairing (RFC 9112 9.3.2): the i-th request and the i-th final
        # response form exchange i; interim (1xx but 101) responses join the next.
        self.http_requests = 0
        self.http_responses = 0
        self.final_responses = 0
        self.item_of_exchange: dict[int, int] = {}
        self.prune_exchanges_at = 64
        self.upgrade_item: int | None = None  # the exchange of the first 101
        self.upgrade_exchange = MISSING
        # WebSocket: data frames wait for their message per direction, as flat records.
        self.frame_count = 0
        # The held ws_frames rows' message_ids: a data frame's is provisional until its message
        # completes (set_message_id), so no value is kept per frame once its chunk is made.
        self.message_ids = sinks.ws_frames.column("message_id")
        # By Direction: the newest waiting frame as a tuple (most messages are one
        # frame: it never goes into the array), the older ones in the array from its head.
        self.pending_frames = (array("q"), array("q"))
        self.pending_head = [0, 0]
        self.newest_frame: list[tuple | None] = [None, None]
        self.ws_message_count = 0
        self.findings_per_rule: Counter = Counter()
        self.last_unlisted: dict[str, Finding] = {}
        self.setup_bytes = self.teardown_bytes = 0.0
        self.tls_record_header_bytes = self.tls_handshake_bytes = self.tls_encrypted_bytes = self.tls_record_count = 0
        self.tls_aead_overhead_bytes = 0
        # By Direction: its decrypted application data records (PLAIN_RECORD numbers each), once it
        # has one; from then on the direction's spans (spans_of) are ranges of its plaintext.
        self.plain_records: list[array | None] = [None, None]
        self.client_hello: TlsClientHello | None = None
        self.server_hello: TlsServerHello | None = None
        self.http2_frame_header_bytes = self.http2_hpack_bytes = self.http2_control_bytes = self.http2_padding_bytes = 0
        # HTTP/2: exchanges by stream, made at a connection's first frame (_h2_start).
        self.h2_streams: dict[int, tuple[int, int]] | None = None  # stream id -> (exchange, item)
        self.h2_done_streams: list[int] = []
        self.h2_next_exchange = 0
        self.h2_last_opened = [0, 0]  # by parity of the stream id (even: server push, odd: the client's)
        # Server-Sent Events: sse_events rows (events and control items), events, and the
        # text/event-stream responses being read, by their stream offset: (exchange, stream id).
        self.sse_count = self.sse_event_count = 0
        self.sse_responses: dict[int, tuple[int, int | None]] = {}
        # Body bytes of SSE items that are not event data: field names, line ends, comments (the
        # connection's payload as sent leaves them out, as WebSocket frame headers).
        self.sse_syntax_bytes = 0

    # -- events ------------------------------------------------------------------

    def add_events(self, events: list) -> None:
        write = WRITERS
        for event in events:
            write[type(event)](self, event)

    def _handshake(self, handshake: WsHandshake) -> None:
        if self.handshake is not None:
            return  # the first one counts
        self.handshake = handshake
        self.deflate = handshake.deflate is not None
        if self.upgrade_item is not None:
            _merge_item(self.items, self.upgrade_item, ITEM_SETUP)
            for spans in {*self.spans, *self.spans_of}:  # the streams', and a decrypted direction's plaintext's
                spans.relabel(self.upgrade_item, ITEM_SETUP)
            spilled = self.account.spilled
            if spilled is not None:
                spilled.relabel(self.upgrade_item + spilled.items.count, ITEM_SETUP)

    def finish(self) -> None:
        for finding in self._reassembly_findings():
            self._finding(finding)
        self._unlisted_findings()
        self._unfinished_frames()
        categories = self.categories()  # final now: the last rows only read them
        unparsed = self.unparsed_bytes(categories)
        self._cost_rows(unparsed)
        self._connection_row(self.handshake, categories, unparsed)

    def _http_message(self, message: HttpRequest | HttpResponse) -> None:
        if message.stream_id is not None:
            self._http2_message(message)
            return
        streamed = False
        if type(message) is HttpRequest:
            exchange = self.http_requests
            self.http_requests = exchange + 1
            code = MISSING
        else:
            exchange = self.final_responses
            self.http_responses += 1
            code = message.status
            if not (100 <= code < 200) or code == 101:
                self.final_responses = exchange + 1
            streamed = self.sse_responses.pop(message.offset, None) is not None
        header = message.header_bytes
        wire = message.body_wire_bytes
        framing = message.chunk_framing_bytes
        missing = message.missing_bytes
        start = message.offset
        ts = message.ts_ns
        decompressed = message.decompressed_bytes
        sinks = self.sinks
        sink = sinks.http_messages
        sink.rows += sink.pack(self.conn_id, exchange, MISSING, message.direction, ts, message.end_ts_ns, code, header, header, message.body_bytes,
                               wire, framing, missing, MISSING if decompressed is None else decompressed, message.complete, start)
        sinks.hold_http_message(message)

        body = wire - framing - missing
        self.http_header_bytes += header
        self.http_chunk_framing_bytes += framing
        self.http_body_bytes += body
        if streamed:
            return  # a text/event-stream body: its items own its bytes, its head went to the exchange with its first
        size, undecoded, carries = http_app_payload(message, body)
        items = self.items
        item = self.item_of_exchange.get(exchange)
        if item is None:
            # carries: a request or response with a body, work done
            item = self.item_of_exchange[exchange] = len(items) // ITEM_SIZE
            items.frombytes(_pack_item(ITEM_EXCHANGE, exchange, CLIENT, ts, header + framing, body, size, undecoded, carries, 0))
            self.spans_of[message.direction].add_packed(pack_range(start, start + header + wire, item))
            if len(self.item_of_exchange) > self.prune_exchanges_at:
                self._forget_done_exchanges()
        else:
            at = (item * ITEM_SIZE + I_HEADER) * NUMBER_BYTES
            header_sum, payload_sum, app_sum, undecoded_sum, messages = _unpack_sums(items, at)
            _pack_sums_into(items, at, header_sum + header + framing, payload_sum + body, app_sum + size, undecoded_sum + undecoded,
                            messages + carries)
            self.spans_of[message.direction].add(start, start + header + wire, item)
        if code == 101 and self.upgrade_item is None:
            self.upgrade_item = item
            self.upgrade_exchange = exchange

    # -- HTTP/2 ----------------------------------------------------------------------

    def _http2_preface(self, preface: Http2Preface) -> None:
        """The client preface is HTTP/2 control bytes, and the connection's setup."""
        self.http2_control_bytes += preface.length
        self.items[ITEM_SETUP * ITEM_SIZE + I_HEADER] += preface.length
        self.spans_of[preface.direction].add(preface.offset, preface.offset + preface.length, ITEM_SETUP)

    def _http2_frame(self, frame: Http2Frame) -> None:
        """A frame's bytes by category, and to its stream's exchange (stream 0: STREAM_0_ITEMS)."""
        block, padding, data, control = frame.header_block_bytes, frame.padding_bytes, frame.data_bytes, frame.control_bytes
        self.http2_frame_header_bytes += Http2Frame.HEADER_BYTES
        self.http2_hpack_bytes += block
        self.http2_padding_bytes += padding
        self.http2_control_bytes += control
        self.http_body_bytes += data
        if frame.sse:
            return  # a DATA frame of a text/event-stream: its SSE items own its bytes
        stream_id = frame.promised_stream_id or frame.stream_id  # a promise's bytes carry the promised stream's request
        if stream_id:
            item = self._stream_item(stream_id, frame.ts_ns, frame.frame_type in OPENS_STREAM)
        else:
            item = STREAM_0_ITEMS.get(frame.frame_type, ITEM_UNATTRIBUTED)
        items = self.items
        items[item * ITEM_SIZE + I_HEADER] += Http2Frame.HEADER_BYTES + block + padding + control
        items[item * ITEM_SIZE + I_PAYLOAD] += data
        self.spans_of[frame.direction].add(frame.offset, frame.offset + Http2Frame.HEADER_BYTES + frame.length, item)

    def _h2_start(self) -> dict[int, tuple[int, int]]:
        """The stream map, at the first HTTP/2 frame: exchanges go on from the HTTP/1.1 ones; after an
        h2c upgrade, stream 1 is the upgrade's exchange (RFC 7540 3.2)."""
        streams = self.h2_streams = {}
        self.h2_next_exchange = max(self.http_requests, self.final_responses)
        if self.upgrade_item is not None and self.handshake is None:
            streams[1] = (self.upgrade_exchange, self.upgrade_item)
            self.h2_last_opened[1] = 1
        return streams

    def _stream_item(self, stream_id: int, ts_ns: int, opens: bool) -> int:
        """The item of a stream's exchange; a stream's first HEADERS or PUSH_PROMISE makes it. Frames
        of a stream never opened, or finished and forgotten, are no message's."""
        streams = self.h2_streams if self.h2_streams is not None else self._h2_start()
        known = streams.get(stream_id)
        if known is not None:
            return known[1]
        parity = stream_id & 1
        if not opens or stream_id <= self.h2_last_opened[parity]:
            return ITEM_UNATTRIBUTED
        self.h2_last_opened[parity] = stream_id
        return self._new_stream_exchange(streams, stream_id, ts_ns)[1]

    def _new_stream_exchange(self, streams: dict[int, tuple[int, int]], stream_id: int, ts_ns: int) -> tuple[int, int]:
        exchange = self.h2_next_exchange
        self.h2_next_exchange = exchange + 1
        items = self.items
        item = len(items) // ITEM_SIZE
        items.frombytes(_pack_item(ITEM_EXCHANGE, exchange, CLIENT, ts_ns, 0, 0, 0, 0, 0, 0))
        known = streams[stream_id] = (exchange, item)
        if len(streams) > PRUNE_STREAMS_AT and len(self.h2_done_streams) > PRUNE_STREAMS_AT // 2:
            for done in self.h2_done_streams:
                streams.pop(done, None)
            self.h2_done_streams.clear()
        return known

    def _http2_message(self, message: HttpRequest | HttpResponse) -> None:
        """A row of http_messages paired by stream; its frames brought its bytes to its exchange
        already, the message brings its application payload."""
        stream_id = message.stream_id
        streams = self.h2_streams if self.h2_streams is not None else self._h2_start()
        known = streams.get(stream_id)
        if known is None:  # its frames were forgotten (a message whose stream was pruned): an exchange of its own
            known = self._new_stream_exchange(streams, stream_id, message.ts_ns)
        exchange, item = known
        if type(message) is HttpRequest:
            self.http_requests += 1
            code = MISSING
        else:
            self.http_responses += 1
            code = MISSING if message.status is None else message.status
            if not 100 <= code < 200:
                self.h2_done_streams.append(stream_id)
        wire, framing, missing = message.body_wire_bytes, message.chunk_framing_bytes, message.missing_bytes
        decompressed, http1 = message.decompressed_bytes, message.http1_header_bytes
        sinks = self.sinks
        sink = sinks.http_messages
        sink.rows += sink.pack(self.conn_id, exchange, stream_id, message.direction, message.ts_ns, message.end_ts_ns, code, message.header_bytes,
                               MISSING if http1 is None else http1, message.body_bytes, wire, framing, missing,
                               MISSING if decompressed is None else decompressed, message.complete, message.offset)
        sinks.hold_http_message(message)
        if type(message) is HttpResponse and self.sse_responses.pop(message.offset, None) is not None:
            return  # a text/event-stream response: its events carry its payload
        size, undecoded, carries = http_app_payload(message, wire - framing - missing)
        at = item * ITEM_SIZE
        items = self.items
        items[at + I_APP] += size
        items[at + I_UNDECODED] += undecoded
        items[at + I_MESSAGES] += carries

    def _forget_done_exchanges(self) -> None:
        # Later messages belong to exchanges from min(requests, responses) on.
        # Pruned each time the map doubles: linear even when nothing can go.
        first_open = min(self.http_requests, self.final_responses)
        self.item_of_exchange = {x: i for x, i in self.item_of_exchange.items() if x >= first_open}
        self.prune_exchanges_at = max(64, 2 * len(self.item_of_exchange))

    # -- Server-Sent Events --------------------------------------------------------------

    def _sse_item(self, sse: SseItem) -> None:
        """A row of sse_events and an item of its own: an event's data is its payload (as the data
        of a WebSocket message), the rest of its lines and the chunk framing around them its
        headers; control items (keep-alives) carry none, but for bytes not read as events."""
        known = self.sse_responses.get(sse.message_offset)
        if known is None:
            known = self.sse_responses[sse.message_offset] = self._sse_response(sse)
        exchange, stream_id = known
        item_id = self.sse_count
        self.sse_count = item_id + 1
        event = sse.item
        sent, decoded = sse.sent_bytes, sse.decoded_bytes
        if type(event) is SseEvent:
            self.sse_event_count += 1
            code = ITEM_SSE_EVENT
            app = event.data_bytes
            payload = sent * app // decoded if decoded else 0  # the data's share of the bytes as sent
            undecoded, carries, control = 0, app > 0, 0
            texts = (event.event_type[:MAX_SSE_FIELD_CHARS], event.last_event_id[:MAX_SSE_FIELD_CHARS], event.data)
            numbers = (MISSING if event.retry_ms is None else event.retry_ms, event.lines, app, event.data_chars, event.text_valid,
                       event.truncated)
        else:
            code = ITEM_SSE_CONTROL
            control = SSE_CONTROLS.index(event.kind)
            coded = SSE_UNREAD.get(event.kind)
            payload = app = sent if coded is not None else 0
            undecoded, carries = sent if coded else 0, payload > 0
            texts = ("", "", "")
            numbers = (MISSING, event.lines, 0, 0, MISSING, False)
        direction, ranges = sse.direction, sse.ranges
        items = self.items
        item = len(items) // ITEM_SIZE
        items.frombytes(_pack_item(code, item_id, direction, sse.ts_ns, sse.framing_bytes + sent - payload, payload, app, undecoded,
                                   carries, 0))
        spans = self.spans_of[direction]
        for index in range(0, len(ranges), 2):
            spans.add_packed(pack_range(ranges[index], ranges[index + 1], item))
        self.sse_syntax_bytes += sent - payload
        sink = self.sinks.sse_events
        sink.rows += sink.pack(self.conn_id, item_id, exchange, MISSING if stream_id is None else stream_id, direction, sse.ts_ns, code != ITEM_SSE_EVENT,
                               control, *numbers, decoded, sse.framing_bytes, sent, sse.missing_bytes,
                               sse.framing_bytes + sent + sse.missing_bytes, ranges[0])
        for append, text in zip(sink.appends, texts):
            append(text)

    def _sse_response(self, sse: SseItem) -> tuple[int, int | None]:
        """(exchange, stream id) of the response whose body an SSE item is in, at its first item.
        An HTTP/1.1 response's head goes to its exchange then: its body's items own the rest of
        it, and once its request is written too nothing changes the exchange's item any more."""
        stream_id = sse.stream_id
        if stream_id is not None:
            streams = self.h2_streams if self.h2_streams is not None else self._h2_start()
            known = streams.get(stream_id) or self._new_stream_exchange(streams, stream_id, sse.ts_ns)
            return known[0], stream_id
        exchange = self.final_responses  # the response being read is the next final one
        items = self.items
        item = self.item_of_exchange.get(exchange)
        if item is None:  # no request seen (a capture started mid-connection)
            item = self.item_of_exchange[exchange] = len(items) // ITEM_SIZE
            items.frombytes(_pack_item(ITEM_EXCHANGE, exchange, CLIENT, sse.ts_ns, 0, 0, 0, 0, 0, 0))
        items[item * ITEM_SIZE + I_HEADER] += sse.ranges[0] - sse.message_offset
        self.spans_of[sse.direction].add(sse.message_offset, sse.ranges[0], item)
        return exchange, None

    def _ws_frame(self, frame: WsFrame) -> None:
        frame_id = self.frame_count
        self.frame_count = frame_id + 1
        sink = self.sinks.ws_frames
        row = sink.flushed_rows + len(self.message_ids)
        side = frame.direction
        code = frame.opcode
        self.message_ids.append(MISSING if code >= 0x8 else provisional(row))  # a data frame's, set when its message completes
        length = frame.payload_length
        header = frame.header_bytes
        missing = frame.missing_bytes
        start = frame.offset
        close = frame.close_code
        sink.rows += sink.pack(self.conn_id, frame_id, side, frame.ts_ns, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, code,
                               frame.masked, length, header, missing, MISSING if close is None else close, start)
        self.sinks.hold_frame(frame)
        self.ws_frame_header_bytes += header
        if code >= 0x8:  # control
            self.ws_control_payload_bytes += length - missing
            items = self.items
            items[ITEM_WS_CONTROL * ITEM_SIZE + I_HEADER] += header
            items[ITEM_WS_CONTROL * ITEM_SIZE + I_PAYLOAD] += length - missing
            self.spans_of[side].add(start, start + header + length, ITEM_WS_CONTROL)
        else:
            self.ws_data_payload_bytes += length - missing
            starts_compressed = FRAME_CONTINUES if code == 0 else int(self.deflate and frame.rsv1)
            older = self.newest_frame[side]
            if older is not None:
                self.pending_frames[side].extend(older)
            self.newest_frame[side] = (row, start, header, length, missing, starts_compressed)

    def _ws_message(self, message: WsMessage) -> None:
        message_id = self.ws_message_count
        self.ws_message_count = message_id + 1
        side = message.direction
        items = self.items
        item = len(items) // ITEM_SIZE
        # The message's frames are the oldest data frames of its direction still waiting.
        newest = self.newest_frame[side]
        if not self.pending_frames[side] and newest is not None and message.frames > 0:
            # The common case (a message of one frame): only the newest frame waits.
            row, start, header, length, missing, _starts_compressed = newest
            self.sinks.ws_frames.set_late("message_id", row, message_id)
            self.spans_of[side].add(start, start + header + length, item)
            payload = length - missing
            self.newest_frame[side] = None
        else:
            header, payload = self._take_pending(side, message.frames, item, message_id)
        size, undecoded, carries = ws_app_payload(message, payload)
        items.frombytes(_pack_item(ITEM_WS_MESSAGE, message_id, side, message.ts_ns, header, payload, size, undecoded, carries, 0))
        decoded = message.payload_bytes
        valid = message.text_valid
        sink = self.sinks.ws_messages
        sink.rows += sink.pack(self.conn_id, message_id, side, message.ts_ns, message.end_ts_ns, message.opcode, message.frames,
                               message.header_bytes, message.wire_payload_bytes, MISSING if decoded is None else decoded,
                               message.compressed, MISSING if valid is None else valid, message.complete)
        self.sinks.hold_message_payload(message.payload)

    def _one_frame_record(self, record: WsOneFrameMessage) -> None:
        """`_ws_frame` then `_ws_message` of the two events a record stands for, in one
        go: the frame never waits for its message."""
        (side, ts, start, opcode, compressed, masked, mask_key, length, header, payload, decoded, valid,
         message_payload) = record
        if self.newest_frame[side] is not None:
            # Older frames wait (a continuation with no message open): the message takes them first.
            frame, message = record.events()
            self._ws_frame(frame)
            self._ws_message(message)
            return
        frame_id = self.frame_count
        self.frame_count = frame_id + 1
        message_id = self.ws_message_count
        self.ws_message_count = message_id + 1
        self.message_ids.append(message_id)
        conn_id = self.conn_id
        sinks = self.sinks
        sink = sinks.ws_frames
        sink.rows += sink.pack(conn_id, frame_id, side, ts, True, compressed, False, False, opcode, masked, length, header, 0, MISSING,
                               start)
        sinks.hold_frame(record)
        self.ws_frame_header_bytes += header
        self.ws_data_payload_bytes += length
        items = self.items
        item = len(items) // ITEM_SIZE
        self.spans_of[side].add_packed(pack_range(start, start + header + length, item))
        # ws_app_payload of a whole message: its decoded size is known (the wire size when
        # not compressed), nothing is undecoded.
        items.frombytes(_pack_item(ITEM_WS_MESSAGE, message_id, side, ts, header, length, decoded, 0, decoded > 0, 0))
        sink = sinks.ws_messages
        sink.rows += sink.pack(conn_id, message_id, side, ts, ts, opcode, 1, header, length, decoded, compressed,
                               MISSING if valid is None else valid, True)
        sinks.hold_message_payload(message_payload)

    def _take_pending(self, direction: Direction, count: int, item: int, message_id: int = MISSING) -> tuple[int, int]:
        """Give the first `count` (or fewer) waiting data frames to `item` and
        `message_id`; return their header bytes and captured payload bytes."""
        pending = self.pending_frames[direction]
        head = self.pending_head[direction]
        add_span = self.spans_of[direction].add
        set_message_id = partial(self.sinks.ws_frames.set_late, "message_id")
        header_bytes = payload_bytes = 0
        if head < len(pending):
            end = min(head + FRAME_RECORD * count, len(pending))
            for start in range(head, end, FRAME_RECORD):
                row, offset, header, length, missing = pending[start:start + 5]
                set_message_id(row, message_id)
                add_span(offset, offset + header + length, item)
                header_bytes += header
                payload_bytes += length - missing
            count -= (end - head) // FRAME_RECORD
            if end == len(pending):
                del pending[:]
                end = 0
            elif end > FRAME_RECORD * PENDING_COMPACT_RECORDS:
                del pending[:end]
                end = 0
            self.pending_head[direction] = end
        newest = self.newest_frame[direction]
        if count > 0 and newest is not None and not pending:
            row, offset, header, length, missing, _starts_compressed = newest
            set_message_id(row, message_id)
            add_span(offset, offset + header + length, item)
            header_bytes += header
            payload_bytes += length - missing
            self.newest_frame[direction] = None
        return header_bytes, payload_bytes

    def _unfinished_frames(self) -> None:
        """Data frames never closed into a message (stream cut) still count as data;
        compressed ones were never decompressed: counted as sent."""
        for direction in (Direction.CLIENT, Direction.SERVER):
            pending, head, newest = self.pending_frames[direction], self.pending_head[direction], self.newest_frame[direction]
            if newest is None and head == len(pending):
                continue  # no frame waits (a REST connection's sides, most WebSocket ones)
            records = pending[head:] + array("q", newest or ())
            self._add_unfinished_app_payload(records)
            header, payload = self._take_pending(direction, len(records) // FRAME_RECORD, ITEM_UNATTRIBUTED)
            self.items[ITEM_UNATTRIBUTED * ITEM_SIZE + I_HEADER] += header
            self.items[ITEM_UNATTRIBUTED * ITEM_SIZE + I_PAYLOAD] += payload

    def _add_unfinished_app_payload(self, records: array) -> None:
        compressed = False
        items = self.items
        for start in range(0, len(records), FRAME_RECORD):
            length, missing, starts_compressed = records[start + 3:start + FRAME_RECORD]
            if starts_compressed != FRAME_CONTINUES:  # a message's first frame says whether it is compressed
                compressed = bool(starts_compressed)
            sent = length - missing
            items[ITEM_UNATTRIBUTED * ITEM_SIZE + I_APP] += sent
            items[ITEM_UNATTRIBUTED * ITEM_SIZE + I_UNDECODED] += sent if compressed else 0

    def _tls_record(self, record: TlsRecord) -> None:
        """A row of tls_records; its bytes go to the connection's setup when they are handshake
        (the spans give setup the packets that carried them), else to its unattributed bytes."""
        record_id = self.tls_record_count
        self.tls_record_count = record_id + 1
        start, header, length = record.offset, record.header_bytes, record.length
        captured = length - record.missing_bytes
        sink = self.sinks.tls_records
        application = record.decrypted and not record.handshake
        sink.rows += sink.pack(self.conn_id, record_id, record.direction, record.ts_ns, record.content_type,
                               record.content_type - FIRST_CONTENT_TYPE, record.version, length, header, record.missing_bytes,
                               record.encrypted, COUNTED_AS_APPLICATION if application else record.handshake, start, record.decrypted,
                               record.plaintext_bytes, record.aead_overhead_bytes)
        sink.appends[0](record.messages)
        self.tls_record_header_bytes += header
        if application:
            self._decrypted_record(record)
        elif record.handshake:
            self.tls_handshake_bytes += captured
            self.items[ITEM_SETUP * ITEM_SIZE + I_HEADER] += header + captured
            self.spans_of[record.direction].add(start, start + header + length, ITEM_SETUP)
        else:
            self.tls_encrypted_bytes += captured
            self.items[ITEM_UNATTRIBUTED * ITEM_SIZE + I_HEADER] += header + captured

    def _decrypted_record(self, record: TlsRecord) -> None:
        """Decrypted application data: its plaintext is the HTTP/WebSocket parsers' (their spans are
        plaintext ranges, mapped onto the stream when the connection is over: _map_plaintext_spans)."""
        direction = record.direction
        self.tls_aead_overhead_bytes += record.aead_overhead_bytes
        records = self.plain_records[direction]
        if records is None:
            records = self.plain_records[direction] = array("q")
            spans_of = list(self.spans_of)
            spans_of[direction] = Spans()
            self.spans_of = tuple(spans_of)
        before = record.header_bytes + record.prefix_bytes
        records.extend((record.plaintext_offset, record.plaintext_bytes, record.offset, before,
                        record.aead_overhead_bytes - record.prefix_bytes))

    def _map_plaintext_spans(self) -> None:
        """Give each decrypted record's stream bytes to the items of its plaintext: a plaintext
        range to its item, the record's header and explicit nonce to the item of its first
        plaintext byte, its tag, inner content type and padding to the item of its last (those
        two counted as the items' tls_overhead_bytes too); nobody's plaintext is unattributed."""
        items = self.items
        client_side = self.client_side
        for direction in (Direction.CLIENT, Direction.SERVER):
            records = self.plain_records[direction]
            if records is None:
                continue
            stream = self.spans[client_side if direction is Direction.CLIENT else 1 - client_side]
            ranges = list(self.spans_of[direction].in_order())
            count = len(ranges)
            index = 0
            fields = iter(records)
            for plain_start, plain_bytes, record_start, before, after in zip(fields, fields, fields, fields, fields):
                plain_end = plain_start + plain_bytes
                while index < count and ranges[index][1] <= plain_start:
                    index += 1
                pieces = []
                scan = index
                while scan < count and ranges[scan][0] < plain_end:
                    start, end, item = ranges[scan]
                    pieces.append((max(start, plain_start), min(end, plain_end), item))
                    if end > plain_end:
                        break  # the range goes on in the next record
                    scan += 1
                index = scan
                first = pieces[0][2] if pieces and pieces[0][0] == plain_start else ITEM_UNATTRIBUTED
                last = pieces[-1][2] if pieces and pieces[-1][1] == plain_end else ITEM_UNATTRIBUTED
                shift = record_start + before - plain_start  # a plaintext offset + shift = its stream offset
                stream.add(record_start, record_start + before, first)
                for start, end, item in pieces:
                    if end > start:
                        stream.add(start + shift, end + shift, item)
                stream.add(plain_end + shift, plain_end + shift + after, last)
                items[first * ITEM_SIZE + I_TLS] += before
                items[last * ITEM_SIZE + I_TLS] += after

    def _client_hello(self, hello: TlsClientHello) -> None:
        if self.client_hello is None:
            self.client_hello = hello

    def _server_hello(self, hello: TlsServerHello) -> None:
        self.server_hello = hello  # the last (after a HelloRetryRequest, the real one)

    def _tls_columns(self) -> dict[str, str]:
        client, server = self.client_hello, self.server_hello
        return {
            "tls_records": self.tls_record_count,
            "tls_version": "" if server is None else version_name(server.version),
            "tls_cipher": "" if server is None else cipher_suite_name(server.cipher_suite),
            "tls_sni": "" if client is None else client.server_name,
            "tls_alpn": self.conn.tls.alpn if self.conn.tls is not None else "" if server is None else server.alpn,
            "tls_alpn_offered": "" if client is None else ",".join(client.alpn),
        }

    def _finding(self, finding: Finding) -> None:
        """List a finding, or only count it once its rule has enough listed."""
        listed = self.findings_per_rule[finding.rule]
        self.findings_per_rule[finding.rule] = listed + 1
        if listed < MAX_FINDINGS_PER_RULE:
            self._finding_row(finding)
        else:
            self.last_unlisted[finding.rule] = finding

    def _unlisted_findings(self) -> None:
        for rule, last in self.last_unlisted.items():
            unlisted = self.findings_per_rule[rule] - MAX_FINDINGS_PER_RULE
            self._finding_row(Finding(last.ts_ns, last.direction, rule,
                                      f"{unlisted} more {rule} findings on this connection are not listed "
                                      f"(the first {MAX_FINDINGS_PER_RULE} are; this row has the last one's time)"))

    def _finding_row(self, finding: Finding) -> None:
        self.sinks.findings.append_row({
            "conn_id": self.conn_id,
            "capture": self.account.capture,
            "ts": finding.ts_ns or self.account.start_ns,
            "direction": NO_DIRECTION if finding.direction is None else finding.direction,
            "rule": finding.rule,
            "detail": finding.detail,
        })

    def _reassembly_findings(self) -> list[Finding]:
        """What the reordering buffer gave up, per direction, with the late bytes' fate."""
        findings = []
        for side, stream in enumerate(self.conn.streams):
            direction = self.conn.direction_of(side)
            if stream.reorder_limit_hits:
                findings.append(Finding(stream.reorder_limit_ts_ns, direction, "tcp-reorder-limit",
                                        f"reordering buffer full ({stream.max_buffered} bytes or {stream.max_runs} runs out of order) "
                                        f"{stream.reorder_limit_hits} times: holes given up as gaps; {stream.late_bytes} bytes "
                                        "that came later for them are counted as unparsed"))
            elif stream.late_bytes:
                findings.append(Finding(stream.late_ts_ns, direction, "tcp-late-data",
                                        f"{stream.late_bytes} bytes came after the peer had acknowledged past them "
                                        "(already reported as a gap): counted as unparsed"))
        return findings

    # -- bytes ---------------------------------------------------------------------

    def categories(self) -> dict[str, int]:
        """The connection's application byte categories (tables.BYTE_CATEGORIES)."""
        return {"http_header_bytes": self.http_header_bytes, "http_chunk_framing_bytes": self.http_chunk_framing_bytes,
                "http_body_bytes": self.http_body_bytes, "ws_frame_header_bytes": self.ws_frame_header_bytes,
                "ws_control_payload_bytes": self.ws_control_payload_bytes, "ws_data_payload_bytes": self.ws_data_payload_bytes,
                "tls_record_header_bytes": self.tls_record_header_bytes, "tls_handshake_bytes": self.tls_handshake_bytes,
                "tls_aead_overhead_bytes": self.tls_aead_overhead_bytes, "tls_encrypted_bytes": self.tls_encrypted_bytes,
                "http2_frame_header_bytes": self.http2_frame_header_bytes,
                "http2_hpack_bytes": self.http2_hpack_bytes, "http2_control_bytes": self.http2_control_bytes,
                "http2_padding_bytes": self.http2_padding_bytes}

    def unparsed_bytes(self, categories: dict[str, int]) -> int:
        """The connection's payload bytes in none of its `categories`."""
        account = self.account
        return account.new_payload_bytes - sum(categories.values()) + account.extra_unparsed_bytes

    def _cost_rows(self, unparsed: int) -> None:
        """One message_costs row per item, all written as one block (a block per chunk of
        items read back, for a long connection); rows that are not shown (merged, or
        carrying nothing) are dropped with the chunk."""
        items = self.items
        items[ITEM_TEARDOWN * ITEM_SIZE + I_TS] = self.account.end_ns  # the connection's last moment
        if self.plain_records != [None, None]:
            self._map_plaintext_spans()
        spilled = self.account.spilled
        if spilled is None:
            count = len(items) // ITEM_SIZE
            transport, acks = attribute_packets(self.account, self.spans, count)
        else:
            spilled.take_records(self.account)
            self.spill(spilled, everything=True)
            totals = attribute_spilled(spilled, (self.conn.streams[0].fin_offset, self.conn.streams[1].fin_offset),
                                       FIRST_MESSAGE_ITEM + spilled.items.count)
            transport, acks = totals[0].values, totals[1].values
        items[ITEM_UNATTRIBUTED * ITEM_SIZE + I_HEADER] += unparsed - self.account.extra_unparsed_bytes
        self.setup_bytes, self.teardown_bytes = (items[index * ITEM_SIZE + I_HEADER] + items[index * ITEM_SIZE + I_PAYLOAD]
                                                 + items[index * ITEM_SIZE + I_TLS] + float(transport[index]) + float(acks[index])
                                                 for index in (ITEM_SETUP, ITEM_TEARDOWN))
        per_block = (self.conn_id, KINDS.index(self._kind()))
        if spilled is None:
            self.sinks.message_costs.write_block(count, per_block, items, transport, acks)
            return
        try:
            self._spilled_cost_rows(spilled, per_block, totals)
        finally:
            for side_totals in totals:
                side_totals.close()

    def _spilled_cost_rows(self, spilled: SpilledConnection, per_block: tuple, totals: tuple[FloatTotals, FloatTotals]) -> None:
        """The message_costs rows of a long connection: its first items' (in memory), then those
        read back, a block each, its sinks' chunks handed on as they fill."""
        transport, acks = totals[0].values, totals[1].values
        sink = self.sinks.message_costs
        sink.write_block(FIRST_MESSAGE_ITEM, per_block, self.items, _bytes_of(transport[:FIRST_MESSAGE_ITEM]), _bytes_of(acks[:FIRST_MESSAGE_ITEM]))
        start = FIRST_MESSAGE_ITEM
        for items in spilled.items.chunks():
            end = start + len(items)
            sink.write_block(len(items), per_block, _bytes_of(items), _bytes_of(transport[start:end]), _bytes_of(acks[start:end]))
            start = end
            for side_totals in totals:
                side_totals.release()  # the pages just read
            if sink.full():
                self.sinks.hand_on_full()

    def spill(self, spilled: SpilledConnection, everything: bool = False) -> None:
        """Move the stream spans and the finished items to `spilled` (all of them once the
        connection is over); the items kept are numbered on from the last one moved.

        Finished: all but those of HTTP exchanges and HTTP/2 streams still open, of an upgrade
        whose WebSocket handshake may still come, and of the ranges `Spans.add` may still
        extend.  A decrypted TLS connection keeps its items to the end (its plaintext ranges
        are mapped onto the stream, and its items get their TLS overhead, then)."""
        moved = spilled.items.count  # an item kept is item + moved of the connection's
        items = self.items
        count = len(items) // ITEM_SIZE
        if everything:
            first_kept = count
        elif self.plain_records != [None, None]:
            first_kept = FIRST_MESSAGE_ITEM
        else:
            first_kept = self._first_unfinished_item(count)
        for side, spans in enumerate(self.spans):
            # The last range stays for `add` to extend, unless its item goes (a streaming SSE
            # exchange's request: nothing extends it, and its number changes with the move).
            last = spans.last_item() if len(spans) else ITEM_SETUP
            ranges = spans.take(keep_last=not everything and (last < FIRST_MESSAGE_ITEM or last >= first_kept))
            ranges[ranges[:, 2] >= FIRST_MESSAGE_ITEM, 2] += moved
            spilled.spans[side].add(ranges)
        if first_kept <= FIRST_MESSAGE_ITEM:
            return
        spilled.add_items(np.array(items[FIRST_MESSAGE_ITEM * ITEM_SIZE:first_kept * ITEM_SIZE], np.int64).reshape(-1, ITEM_SIZE))
        del items[FIRST_MESSAGE_ITEM * ITEM_SIZE:first_kept * ITEM_SIZE]
        self._renumber_items(first_kept, first_kept - FIRST_MESSAGE_ITEM)

    def _first_unfinished_item(self, count: int) -> int:
        """The first item that may still change, or count (see `spill`)."""
        first_open = min(self.http_requests, self.final_responses)
        # A text/event-stream response's exchange is done once its request is: its body's items own the
        # rest, and nothing extends the range of its request (`spill` moves it with the item).
        streaming = {exchange for exchange, stream_id in self.sse_responses.values() if stream_id is None and exchange < self.http_requests}
        unfinished = [item for exchange, item in self.item_of_exchange.items() if exchange >= first_open and exchange not in streaming]
        if self.h2_streams:
            unfinished += [item for _exchange, item in self.h2_streams.values()]
        if self.upgrade_item is not None and self.handshake is None:
            unfinished.append(self.upgrade_item)
        done = {self.item_of_exchange.get(exchange) for exchange in streaming}
        unfinished += [spans.last_item() for spans in self.spans if len(spans) and spans.last_item() not in done]
        return min((item for item in unfinished if item >= FIRST_MESSAGE_ITEM), default=count)

    def _renumber_items(self, first_kept: int, shift: int) -> None:
        """Items first_kept... are now items first_kept - shift...; those before went to disk."""
        self.item_of_exchange = {exchange: item - shift for exchange, item in self.item_of_exchange.items() if item >= first_kept}
        if self.h2_streams:
            self.h2_streams = {stream: (exchange, item - shift) for stream, (exchange, item) in self.h2_streams.items()}
        if self.upgrade_item is not None:
            # One that went to disk is merged already: from then on it is only told from None.
            self.upgrade_item = self.upgrade_item - shift if self.upgrade_item >= first_kept else MISSING
        for spans in self.spans:
            if len(spans) and spans.last_item() >= first_kept:
                spans.relabel(spans.last_item(), spans.last_item() - shift)

    def _kind(self) -> str:
        if self.conn.kind == Kind.WEBSOCKET:
            return Kind.WEBSOCKET
        if self.conn.kind == Kind.TLS:
            return Kind.TLS
        if self.conn.kind == Kind.HTTP2:
            return Kind.HTTP2
        if self.conn.kind == Kind.REST and self.http_requests + self.http_responses:
            return Kind.REST
        return Kind.OTHER

    def _connection_row(self, handshake: WsHandshake | None, categories: dict[str, int], unparsed: int) -> None:
        account = self.account
        client = account.endpoints[self.client_side]
        server = account.endpoints[1 - self.client_side]
        sent = self.http_body_bytes + self.ws_data_payload_bytes - self.sse_syntax_bytes
        # merge_into emptied the merged items: every item's bytes count once
        app, undecoded = sum(self.items[I_APP::ITEM_SIZE]), sum(self.items[I_UNDECODED::ITEM_SIZE])
        if account.spilled is not None:
            app += int(account.spilled.item_sums[I_APP])
            undecoded += int(account.spilled.item_sums[I_UNDECODED])
        streams = self.conn.streams  # by side
        self.sinks.connections.append_row({
            "conn_id": self.conn_id,
            "capture": account.capture,
            "client_ip": _ip_text(client[0]),
            "client_port": client[1],
            "server_ip": _ip_text(server[0]),
            "server_port": server[1],
            "kind": KINDS.index(self._kind()),
            "variant": "",
            "start_ts": account.start_ns,
            "end_ts": account.end_ns,
            "first_frame": account.first_index + 1,
            "packets": account.packets,
            "wire_bytes": account.wire_bytes,
            "link_header_bytes": account.link_header_bytes,
            "ip_header_bytes": account.ip_header_bytes,
            "tcp_header_bytes": account.tcp_header_bytes,
            "tcp_control_bytes": account.tcp_control_bytes,
            "retransmitted_bytes": account.retransmitted_bytes,
            **categories,
            "unparsed_bytes": unparsed,
            **payload_columns(app, sent, undecoded, account.wire_bytes),
            "setup_bytes": self.setup_bytes,
            "teardown_bytes": self.teardown_bytes,
            "handshake_seen": streams[0].syn_seen or streams[1].syn_seen,
            "gap_bytes": streams[0].gap_bytes + streams[1].gap_bytes,
            "http_requests": self.http_requests,
            "http_responses": self.http_responses,
            "ws_messages": self.ws_message_count,
            "sse_events": self.sse_event_count,
            "ws_accept_valid": MISSING if handshake is None else handshake.accept_valid,
            "ws_version": "" if handshake is None else handshake.version,
            "ws_subprotocol": "" if handshake is None else handshake.subprotocol,
            "ws_extensions": "" if handshake is None else handshake.extensions,
            "ws_deflate": bool(handshake is not None and handshake.deflate is not None),
            **self._tls_columns(),
        })


# The handler of each kind of event a connection makes: one lookup, not a chain of type tests.
WRITERS = {
    WsOneFrameMessage: _ConnectionRows._one_frame_record,
    HttpRequest: _ConnectionRows._http_message,
    HttpResponse: _ConnectionRows._http_message,
    WsFrame: _ConnectionRows._ws_frame,
    WsMessage: _ConnectionRows._ws_message,
    Finding: _ConnectionRows._finding,
    WsHandshake: _ConnectionRows._handshake,
    TlsRecord: _ConnectionRows._tls_record,
    TlsClientHello: _ConnectionRows._client_hello,
    TlsServerHello: _ConnectionRows._server_hello,
    Http2Frame: _ConnectionRows._http2_frame,
    Http2Preface: _ConnectionRows._http2_preface,
    SseItem: _ConnectionRows._sse_item,
}
