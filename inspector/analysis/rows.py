"""Turn a connection's events into rows of every table, as they come.

A connection's events are taken from it after every packet (`take_events`)
and kept only as what the tables need: row dicts that become DataFrame
chunks every CHUNK_ROWS rows, and compact arrays for the byte attribution of
the connection's last moment (`connection_rows`).  So a million WebSocket
frames in one connection cost what their table rows cost, not a million event
objects plus a million dicts.
"""

from __future__ import annotations

import ipaddress
import math
from array import array
from collections import Counter

import pandas as pd

from inspector.analysis.accounting import ConnectionAccount
from inspector.analysis.overhead import ITEM_SETUP, ITEM_TEARDOWN, ITEM_UNATTRIBUTED, ITEM_WS_CONTROL, Spans, attribute_packets
from inspector.analysis.payload import AppPayload, http_app_payload, payload_columns, ws_app_payload
from inspector.analysis.tables import CONNECTION_TABLES, make_table
from inspector.events import Direction, Finding, HttpRequest, HttpResponse, WsFrame, WsHandshake, WsMessage
from inspector.parse.connection import Kind

NS = 1e-9
# Table previews stay short: a million frames must fit in memory.
PREVIEW_TEXT_CHARS = 200  # messages and HTTP bodies
FRAME_PREVIEW_TEXT_CHARS = 80  # frames: their message row has the longer preview
PREVIEW_HEX_BYTES = 32
OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
# A connection's rows of one table become a DataFrame chunk this often.
CHUNK_ROWS = 4096
# Findings of one rule listed per connection; the rest are counted in one
# last finding of that rule ("N more ... not listed").
MAX_FINDINGS_PER_RULE = 100
# A data frame waiting for its message, as a flat record of this many numbers: frame id,
# offset, header bytes, payload length, missing bytes, and whether it starts a compressed
# message (FRAME_CONTINUES for a continuation frame, which carries no such bit).
FRAME_RECORD = 6
FRAME_CONTINUES = -1


def take_events(account: ConnectionAccount) -> None:
    """Turn the events the connection produced since the last call into rows."""
    events = account.connection.events
    if events:
        if account.rows is None:
            account.rows = _ConnectionRows(account)
        account.rows.add_events(events)
        events.clear()


def connection_rows(account: ConnectionAccount) -> tuple[dict[str, list[dict]], dict[str, list[pd.DataFrame]]]:
    """All rows of a connection that is over: (row dicts, DataFrame chunks) per table."""
    take_events(account)
    builder = account.rows if account.rows is not None else _ConnectionRows(account)
    account.rows = None
    return builder.finish()


def _ip_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def payload_text(data: bytes, limit: int = PREVIEW_TEXT_CHARS) -> str:
    """Hostile payload as plain text: never evaluated, bad bytes replaced."""
    return data[: limit * 4].decode("utf-8", errors="replace")[:limit]


class _Items:
    """What each message of a connection carries (setup, teardown, ... first), as arrays:
    header and payload bytes as sent, application payload (decoded) and how much of it is
    counted as sent because its decoded size is unknown."""

    __slots__ = ("names", "indexes", "directions", "ts_ns", "header", "payload", "app_payload", "undecoded", "payload_messages")

    def __init__(self) -> None:
        self.names: list[str | None] = []  # None: merged into another item
        self.indexes = array("q")
        self.directions: list[str] = []
        self.ts_ns = array("q")
        self.header = array("q")
        self.payload = array("q")
        self.app_payload = array("q")
        self.undecoded = array("q")
        self.payload_messages = array("q")

    def __len__(self) -> int:
        return len(self.names)

    def add(self, name: str, index: int, direction: str, ts_ns: int) -> int:
        self.names.append(name)
        self.indexes.append(index)
        self.directions.append(direction)
        self.ts_ns.append(ts_ns)
        self.header.append(0)
        self.payload.append(0)
        self.app_payload.append(0)
        self.undecoded.append(0)
        self.payload_messages.append(0)
        return len(self.names) - 1

    def merge_into(self, item: int, target: int) -> None:
        """`item` turned out to be part of `target` (its work is not counted)."""
        for column in (self.header, self.payload, self.app_payload, self.undecoded):
            column[target] += column[item]
            column[item] = 0
        self.names[item] = None

    def add_app_payload(self, item: int, app: AppPayload) -> None:
        self.app_payload[item] += app.size
        self.undecoded[item] += app.undecoded


class _ConnectionRows:
    def __init__(self, account: ConnectionAccount) -> None:
        self.account = account
        self.conn = account.connection
        self.conn_id = account.conn_id
        # The parser's to decide: it has by a connection's first event, and at the latest
        # when closed (by the caller's hint if nothing else tells; the pipeline's hint is the
        # higher port), which is before its last rows are made.
        self.client_side: int = self.conn.client_side
        self.rows: dict[str, list[dict]] = {name: [] for name in CONNECTION_TABLES}
        self.chunks: dict[str, list[pd.DataFrame]] = {name: [] for name in CONNECTION_TABLES}
        self.items = _Items()
        for name in ("setup", "teardown", "ws_control", "unattributed"):
            self.items.add(name, -1, "", account.start_ns)
        self.spans = (Spans(), Spans())
        self.categories = dict.fromkeys(("http_header_bytes", "http_chunk_framing_bytes", "http_body_bytes", "ws_frame_header_bytes", "ws_control_payload_bytes", "ws_data_payload_bytes"), 0)
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
        # WebSocket: frames wait for their message per direction, as flat
        # records (frame id, offset, header bytes, payload length, missing bytes).
        self.frame_count = 0
        self.frame_message_ids = array("q")  # per frame id, -1: in no message
        self.pending_frames = {Direction.CLIENT: array("q"), Direction.SERVER: array("q")}
        self.pending_head = {Direction.CLIENT: 0, Direction.SERVER: 0}
        self.ws_message_count = 0
        self.findings_per_rule: Counter = Counter()
        self.last_unlisted: dict[str, Finding] = {}

    def side_of(self, direction: Direction) -> int:
        return self.client_side if direction is Direction.CLIENT else 1 - self.client_side

    def _append(self, table: str, row: dict) -> None:
        rows = self.rows[table]
        rows.append(row)
        if len(rows) >= CHUNK_ROWS:
            self.chunks[table].append(make_table(table, rows))
            self.rows[table] = []

    # -- events ------------------------------------------------------------------

    def add_events(self, events: list) -> None:
        for event in events:
            kind = type(event)
            if kind is WsFrame:
                self._ws_frame(event)
            elif kind is WsMessage:
                self._ws_message(event)
            elif kind is Finding:
                self._finding(event)
            elif kind is HttpRequest or kind is HttpResponse:
                self._http_message(event)
            elif kind is WsHandshake and self.handshake is None:
                self.handshake = event
                self.deflate = event.deflate is not None
                if self.upgrade_item is not None:
                    self.items.merge_into(self.upgrade_item, ITEM_SETUP)
                    for spans in self.spans:
                        spans.relabel(self.upgrade_item, ITEM_SETUP)

    def finish(self) -> tuple[dict[str, list[dict]], dict[str, list[pd.DataFrame]]]:
        for finding in self._reassembly_findings():
            self._finding(finding)
        self._unlisted_findings()
        self._unfinished_frames()
        self._set_frame_message_ids()
        self._cost_rows()
        self._connection_row(self.handshake)
        return self.rows, self.chunks

    def _http_message(self, message) -> None:
        if isinstance(message, HttpRequest):
            exchange = self.http_requests
            self.http_requests += 1
        else:
            exchange = self.final_responses
            self.http_responses += 1
            if not (100 <= message.status < 200) or message.status == 101:
                self.final_responses += 1
        self._http_row(message, exchange)
        item = self.item_of_exchange.get(exchange)
        if item is None:
            item = self.item_of_exchange[exchange] = self.items.add("exchange", exchange, "client", message.ts_ns)
            self._forget_done_exchanges()
        if isinstance(message, HttpResponse) and message.status == 101 and self.upgrade_item is None:
            self.upgrade_item = item
        body = message.body_wire_bytes - message.chunk_framing_bytes - message.missing_bytes
        app = http_app_payload(message, body)
        if app.carries:
            self.items.payload_messages[item] += 1  # a request or response with a body: work done
        self.items.header[item] += message.header_bytes + message.chunk_framing_bytes
        self.items.payload[item] += body
        self.items.add_app_payload(item, app)
        self.categories["http_header_bytes"] += message.header_bytes
        self.categories["http_chunk_framing_bytes"] += message.chunk_framing_bytes
        self.categories["http_body_bytes"] += body
        self.spans[self.side_of(message.direction)].add(message.offset, message.offset + message.wire_bytes, item)

    def _forget_done_exchanges(self) -> None:
        # Later messages belong to exchanges from min(requests, responses) on.
        # Pruned each time the map doubles: linear even when nothing can go.
        if len(self.item_of_exchange) > self.prune_exchanges_at:
            first_open = min(self.http_requests, self.final_responses)
            self.item_of_exchange = {x: i for x, i in self.item_of_exchange.items() if x >= first_open}
            self.prune_exchanges_at = max(64, 2 * len(self.item_of_exchange))

    def _http_row(self, message, exchange: int) -> None:
        is_request = isinstance(message, HttpRequest)
        self._append(
            "http_messages",
            {
                "conn_id": self.conn_id,
                "exchange_id": exchange,
                "direction": message.direction.label,
                "ts": message.ts_ns * NS,
                "end_ts": message.end_ts_ns * NS,
                "method": message.method if is_request else None,
                "target": message.target if is_request else None,
                "status": None if is_request else message.status,
                "reason": None if is_request else message.reason,
                "version": message.version,
                "header_bytes": message.header_bytes,
                "body_bytes": message.body_bytes,
                "body_wire_bytes": message.body_wire_bytes,
                "chunk_framing_bytes": message.chunk_framing_bytes,
                "missing_bytes": message.missing_bytes,
                "content_encoding": message.content_encoding,
                "decompressed_bytes": message.decompressed_bytes,
                "complete": message.complete,
                "offset": message.offset,
                "body_text": payload_text(message.body_preview),
            }
        )

    def _ws_frame(self, frame: WsFrame) -> None:
        frame_id = self.frame_count
        self.frame_count += 1
        self.frame_message_ids.append(-1)
        self._append("ws_frames", self._frame_row(frame, frame_id))
        captured_payload = frame.payload_length - frame.missing_bytes
        self.categories["ws_frame_header_bytes"] += frame.header_bytes
        if frame.is_control:
            self.categories["ws_control_payload_bytes"] += captured_payload
            self.items.header[ITEM_WS_CONTROL] += frame.header_bytes
            self.items.payload[ITEM_WS_CONTROL] += captured_payload
            self.spans[self.side_of(frame.direction)].add(frame.offset, frame.offset + frame.wire_bytes, ITEM_WS_CONTROL)
        else:
            self.categories["ws_data_payload_bytes"] += captured_payload
            starts_compressed = FRAME_CONTINUES if frame.opcode == 0 else int(self.deflate and frame.rsv1)
            self.pending_frames[frame.direction].extend((frame_id, frame.offset, frame.header_bytes, frame.payload_length,
                                                         frame.missing_bytes, starts_compressed))

    def _ws_message(self, message: WsMessage) -> None:
        message_id = self.ws_message_count
        self.ws_message_count += 1
        item = self.items.add("ws_message", message_id, message.direction.label, message.ts_ns)
        # The message's frames are the oldest data frames of its direction still waiting.
        header, payload = self._take_pending(message.direction, message.frames, item, message_id)
        self.items.header[item] += header
        self.items.payload[item] += payload
        app = ws_app_payload(message, payload)
        self.items.payload_messages[item] = int(app.carries)
        self.items.add_app_payload(item, app)
        self._append("ws_messages", self._message_row(message, message_id))

    def _take_pending(self, direction: Direction, count: int, item: int, message_id: int = -1) -> tuple[int, int]:
        """Give the first `count` (or fewer) waiting data frames to `item` and
        `message_id`; return their header bytes and captured payload bytes."""
        pending = self.pending_frames[direction]
        head = self.pending_head[direction]
        spans = self.spans[self.side_of(direction)]
        with memoryview(pending) as view:  # strided views: no copy of a million records
            taken = view[head:head + FRAME_RECORD * count]
            message_ids = self.frame_message_ids
            for frame_id in taken[0::FRAME_RECORD]:
                message_ids[frame_id] = message_id
            headers, lengths = taken[2::FRAME_RECORD], taken[3::FRAME_RECORD]
            for offset, header, length in zip(taken[1::FRAME_RECORD], headers, lengths):
                spans.add(offset, offset + header + length, item)
            header_bytes, payload_bytes = sum(headers), sum(lengths) - sum(taken[4::FRAME_RECORD])
            head += len(taken)
            del taken, headers, lengths
        if head == len(pending):
            del pending[:]
            head = 0
        elif head > FRAME_RECORD * CHUNK_ROWS:
            del pending[:head]
            head = 0
        self.pending_head[direction] = head
        return header_bytes, payload_bytes

    def _unfinished_frames(self) -> None:
        """Data frames never closed into a message (stream cut) still count as data;
        compressed ones were never decompressed: counted as sent."""
        for direction, pending in self.pending_frames.items():
            self._add_unfinished_app_payload(pending[self.pending_head[direction]:])
            header, payload = self._take_pending(direction, (len(pending) - self.pending_head[direction]) // FRAME_RECORD, ITEM_UNATTRIBUTED)
            self.items.header[ITEM_UNATTRIBUTED] += header
            self.items.payload[ITEM_UNATTRIBUTED] += payload

    def _add_unfinished_app_payload(self, records: array) -> None:
        compressed = False
        for start in range(0, len(records), FRAME_RECORD):
            length, missing, starts_compressed = records[start + 3:start + FRAME_RECORD]
            if starts_compressed != FRAME_CONTINUES:  # a message's first frame says whether it is compressed
                compressed = bool(starts_compressed)
            sent = length - missing
            self.items.add_app_payload(ITEM_UNATTRIBUTED, AppPayload(sent, sent if compressed else 0, sent > 0))

    def _set_frame_message_ids(self) -> None:
        ids = self.frame_message_ids
        first = 0
        for chunk in self.chunks["ws_frames"]:
            values = ids[first:first + len(chunk)]
            chunk["message_id"] = pd.array([None if v < 0 else v for v in values], dtype="Int64")
            first += len(chunk)
        for row in self.rows["ws_frames"]:
            message_id = ids[row["frame_id"]]
            row["message_id"] = None if message_id < 0 else message_id

    def _frame_row(self, frame: WsFrame, frame_id: int) -> dict:
        return {
            "conn_id": self.conn_id,
            "frame_id": frame_id,
            "message_id": None,
            "direction": frame.direction.label,
            "ts": frame.ts_ns * NS,
            "fin": frame.fin,
            "rsv1": frame.rsv1,
            "rsv2": frame.rsv2,
            "rsv3": frame.rsv3,
            "opcode": frame.opcode,
            "opcode_name": OPCODE_NAMES.get(frame.opcode, f"reserved-{frame.opcode}"),
            "masked": frame.masked,
            "mask_key": frame.mask_key.hex(),
            "payload_length": frame.payload_length,
            "header_bytes": frame.header_bytes,
            "missing_bytes": frame.missing_bytes,
            "close_code": frame.close_code,
            "close_reason": frame.close_reason if frame.opcode == 8 else None,
            "offset": frame.offset,
            "payload_text": payload_text(frame.payload, FRAME_PREVIEW_TEXT_CHARS),
            "payload_hex": frame.payload[:PREVIEW_HEX_BYTES].hex(" "),
        }

    def _message_row(self, message: WsMessage, message_id: int) -> dict:
        return {
            "conn_id": self.conn_id,
            "message_id": message_id,
            "direction": message.direction.label,
            "ts": message.ts_ns * NS,
            "end_ts": message.end_ts_ns * NS,
            "opcode": message.opcode,
            "frames": message.frames,
            "header_bytes": message.header_bytes,
            "wire_payload_bytes": message.wire_payload_bytes,
            "payload_bytes": message.payload_bytes,
            "compressed": message.compressed,
            "text_valid": message.text_valid,
            "complete": message.complete,
            "payload_text": payload_text(message.payload),
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
        self._append(
            "findings",
            {
                "conn_id": self.conn_id,
                "capture": self.account.capture,
                "ts": (finding.ts_ns or self.account.start_ns) * NS,
                "direction": finding.direction.label if finding.direction is not None else "",
                "rule": finding.rule,
                "detail": finding.detail,
            }
        )

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

    def unparsed_bytes(self) -> int:
        account = self.account
        return account.new_payload_bytes - sum(self.categories.values()) + account.extra_unparsed_bytes

    def _cost_rows(self) -> None:
        items = self.items
        items.ts_ns[1] = self.account.end_ns  # teardown: the connection's last moment
        transport, acks = attribute_packets(self.account, self.spans, len(items))
        unparsed = self.unparsed_bytes() - self.account.extra_unparsed_bytes
        kind = self._kind()
        for index, name in enumerate(items.names):
            if name is None:
                continue  # merged into another item
            extra_unparsed = unparsed if index == ITEM_UNATTRIBUTED else 0
            header, payload = items.header[index], items.payload[index]
            wire = header + payload + extra_unparsed + transport[index] + acks[index]
            if index == ITEM_SETUP:
                self.setup_bytes = float(wire)
            elif index == ITEM_TEARDOWN:
                self.teardown_bytes = float(wire)
            if wire == 0 and index in (ITEM_WS_CONTROL, ITEM_UNATTRIBUTED):
                continue  # rows that carry nothing would only pad the table
            self._append(
                "message_costs",
                {
                    "conn_id": self.conn_id,
                    "kind": kind,
                    "item": name,
                    "item_index": items.indexes[index],
                    "direction": items.directions[index],
                    "ts": items.ts_ns[index] * NS,
                    "app_header_bytes": header + extra_unparsed,
                    "wire_payload_bytes": payload,
                    "transport_bytes": float(transport[index]),
                    "ack_bytes": float(acks[index]),
                    "wire_bytes": float(wire),
                    "app_payload_bytes": items.app_payload[index],
                    "undecoded_payload_bytes": items.undecoded[index],
                    "payload_messages": items.payload_messages[index],
                    "efficiency": items.app_payload[index] / wire if wire else math.nan,
                }
            )

    def _kind(self) -> str:
        if self.conn.kind == Kind.WEBSOCKET:
            return Kind.WEBSOCKET
        if self.conn.kind == Kind.REST and self.http_requests + self.http_responses:
            return Kind.REST
        return Kind.OTHER

    def _connection_row(self, handshake: WsHandshake | None) -> None:
        account = self.account
        client = account.endpoints[self.client_side]
        server = account.endpoints[1 - self.client_side]
        sent = self.categories["http_body_bytes"] + self.categories["ws_data_payload_bytes"]
        # merge_into emptied the merged items: every item's bytes count once
        app, undecoded = sum(self.items.app_payload), sum(self.items.undecoded)
        self.rows["connections"].append(
            {
                "conn_id": self.conn_id,
                "capture": account.capture,
                "client_ip": _ip_text(client[0]),
                "client_port": client[1],
                "server_ip": _ip_text(server[0]),
                "server_port": server[1],
                "kind": self._kind(),
                "variant": "",
                "start_ts": account.start_ns * NS,
                "end_ts": account.end_ns * NS,
                "packets": account.packets,
                "wire_bytes": account.wire_bytes,
                "link_header_bytes": account.link_header_bytes,
                "ip_header_bytes": account.ip_header_bytes,
                "tcp_header_bytes": account.tcp_header_bytes,
                "tcp_control_bytes": account.tcp_control_bytes,
                "retransmitted_bytes": account.retransmitted_bytes,
                **self.categories,
                "unparsed_bytes": self.unparsed_bytes(),
                **payload_columns(app, sent, undecoded, account.wire_bytes),
                "setup_bytes": self.setup_bytes,
                "teardown_bytes": self.teardown_bytes,
                "handshake_seen": any(s.syn_seen for s in self.conn.streams),
                "gap_bytes": sum(s.gap_bytes for s in self.conn.streams),
                "http_requests": self.http_requests,
                "http_responses": self.http_responses,
                "ws_messages": self.ws_message_count,
                "ws_accept_valid": None if handshake is None else handshake.accept_valid,
                "ws_version": "" if handshake is None else handshake.version,
                "ws_subprotocol": "" if handshake is None else handshake.subprotocol,
                "ws_extensions": "" if handshake is None else handshake.extensions,
                "ws_deflate": bool(handshake is not None and handshake.deflate is not None),
            }
        )
