"""Turn one finished connection into rows of every table."""

from __future__ import annotations

import ipaddress

from inspector.analysis.accounting import ConnectionAccount
from inspector.analysis.overhead import ITEM_SETUP, ITEM_UNATTRIBUTED, ITEM_WS_CONTROL, attribute_packets
from inspector.events import Direction, Finding, HttpRequest, HttpResponse, WsFrame, WsHandshake, WsMessage
from inspector.parse.connection import Kind

NS = 1e-9
# Table previews stay short: a million frames must fit in memory.
PREVIEW_TEXT_CHARS = 200  # messages and HTTP bodies
FRAME_PREVIEW_TEXT_CHARS = 80  # frames: their message row has the longer preview
PREVIEW_HEX_BYTES = 32
OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


def _exchange_ids(messages: list) -> list[int]:
    """FIFO pairing (RFC 9112 9.3.2): the i-th request and the i-th final
    response form exchange i; interim (1xx but 101) responses join the next."""
    ids = []
    requests = responses = 0
    for message in messages:
        if isinstance(message, HttpRequest):
            ids.append(requests)
            requests += 1
        else:
            ids.append(responses)
            if not (100 <= message.status < 200) or message.status == 101:
                responses += 1
    return ids


def connection_rows(account: ConnectionAccount) -> dict[str, list[dict]]:
    builder = _ConnectionRows(account)
    return builder.build()


def _ip_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def payload_text(data: bytes, limit: int = PREVIEW_TEXT_CHARS) -> str:
    """Hostile payload as plain text: never evaluated, bad bytes replaced."""
    return data[: limit * 4].decode("utf-8", errors="replace")[:limit]


class _ConnectionRows:
    def __init__(self, account: ConnectionAccount) -> None:
        self.account = account
        self.conn = account.connection
        self.conn_id = account.conn_id
        if self.conn.client_side is None:
            # No SYN, no payload: the side with the higher port is the client.
            ports = [endpoint[1] for endpoint in account.endpoints]
            self.conn.client_side = 0 if ports[0] > ports[1] else 1
        self.client_side = self.conn.client_side
        self.rows: dict[str, list[dict]] = {name: [] for name in ("connections", "http_messages", "ws_frames", "ws_messages", "findings", "message_costs")}
        # Per-item accounting: index -> [app_header, app_payload]
        self.items: list[dict] = [
            self._item("setup", -1, "", account.start_ns),
            self._item("teardown", -1, "", account.end_ns),
            self._item("ws_control", -1, "", account.start_ns),
            self._item("unattributed", -1, "", account.start_ns),
        ]
        self.spans: list[list[tuple[int, int, int]]] = [[], []]
        self.categories = dict.fromkeys(("http_header_bytes", "http_chunk_framing_bytes", "http_body_bytes", "ws_frame_header_bytes", "ws_control_payload_bytes", "ws_data_payload_bytes"), 0)

    @staticmethod
    def _item(name: str, index: int, direction: str, ts_ns: int) -> dict:
        return {"item": name, "item_index": index, "direction": direction, "ts_ns": ts_ns, "header": 0, "payload": 0, "payload_messages": 0}

    def side_of(self, direction: Direction) -> int:
        return self.client_side if direction is Direction.CLIENT else 1 - self.client_side

    # -- events ------------------------------------------------------------------

    def build(self) -> dict[str, list[dict]]:
        events = self.conn.events
        handshake = next((e for e in events if isinstance(e, WsHandshake)), None)
        self._http_rows([e for e in events if isinstance(e, (HttpRequest, HttpResponse))], handshake)
        self._ws_rows([e for e in events if isinstance(e, (WsFrame, WsMessage))])
        for event in events:
            if isinstance(event, Finding):
                self._finding_row(event)
        for finding in self._reassembly_findings():
            self._finding_row(finding)
        self._cost_rows()
        self._connection_row(handshake)
        return self.rows

    def _http_rows(self, messages: list, handshake: WsHandshake | None) -> None:
        exchanges = _exchange_ids(messages)
        upgrade_exchange = -1
        if handshake is not None:
            upgrade_exchange = next((x for m, x in zip(messages, exchanges) if isinstance(m, HttpResponse) and m.status == 101), -1)
        item_of_exchange: dict[int, int] = {}
        for message, exchange in zip(messages, exchanges):
            self._http_row(message, exchange)
            if exchange == upgrade_exchange:
                item = ITEM_SETUP
            elif exchange not in item_of_exchange:
                item = item_of_exchange[exchange] = len(self.items)
                self.items.append(self._item("exchange", exchange, "client", message.ts_ns))
            else:
                item = item_of_exchange[exchange]
            if item != ITEM_SETUP and message.body_bytes > 0:
                self.items[item]["payload_messages"] += 1  # a request or response with a body: work done
            body = message.body_wire_bytes - message.chunk_framing_bytes - message.missing_bytes
            self.items[item]["header"] += message.header_bytes + message.chunk_framing_bytes
            self.items[item]["payload"] += body
            self.categories["http_header_bytes"] += message.header_bytes
            self.categories["http_chunk_framing_bytes"] += message.chunk_framing_bytes
            self.categories["http_body_bytes"] += body
            self.spans[self.side_of(message.direction)].append((message.offset, message.offset + message.wire_bytes, item))

    def _http_row(self, message, exchange: int) -> None:
        is_request = isinstance(message, HttpRequest)
        self.rows["http_messages"].append(
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

    def _ws_rows(self, events: list) -> None:
        pending_frames: dict[Direction, list[int]] = {Direction.CLIENT: [], Direction.SERVER: []}
        frame_rows = self.rows["ws_frames"]
        message_id = 0
        for event in events:
            if isinstance(event, WsFrame):
                frame_rows.append(self._frame_row(event, len(frame_rows)))
                side = self.side_of(event.direction)
                captured_payload = event.payload_length - event.missing_bytes
                self.categories["ws_frame_header_bytes"] += event.header_bytes
                if event.is_control:
                    self.categories["ws_control_payload_bytes"] += captured_payload
                    self.items[ITEM_WS_CONTROL]["header"] += event.header_bytes
                    self.items[ITEM_WS_CONTROL]["payload"] += captured_payload
                    self.spans[side].append((event.offset, event.offset + event.wire_bytes, ITEM_WS_CONTROL))
                else:
                    self.categories["ws_data_payload_bytes"] += captured_payload
                    pending_frames[event.direction].append(len(frame_rows) - 1)
                continue
            item = len(self.items)
            self.items.append(self._item("ws_message", message_id, event.direction.label, event.ts_ns))
            frames = pending_frames[event.direction][: event.frames]
            del pending_frames[event.direction][: event.frames]
            side = self.side_of(event.direction)
            for index in frames:
                row = frame_rows[index]
                row["message_id"] = message_id
                self.items[item]["header"] += row["header_bytes"]
                self.items[item]["payload"] += row["payload_length"] - row["missing_bytes"]
                self.spans[side].append((row["offset"], row["offset"] + row["header_bytes"] + row["payload_length"], item))
            self.items[item]["payload_messages"] = int(self.items[item]["payload"] > 0)
            self.rows["ws_messages"].append(self._message_row(event, message_id))
            message_id += 1
        # Data frames never closed into a message (stream cut) still count as data.
        for direction, leftover in pending_frames.items():
            for index in leftover:
                row = frame_rows[index]
                self.spans[self.side_of(direction)].append((row["offset"], row["offset"] + row["header_bytes"] + row["payload_length"], ITEM_UNATTRIBUTED))
                self.items[ITEM_UNATTRIBUTED]["header"] += row["header_bytes"]
                self.items[ITEM_UNATTRIBUTED]["payload"] += row["payload_length"] - row["missing_bytes"]

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

    def _finding_row(self, finding: Finding) -> None:
        self.rows["findings"].append(
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
        transport, acks = attribute_packets(self.account, self.spans, len(self.items))
        unparsed = self.unparsed_bytes() - self.account.extra_unparsed_bytes
        kind = self._kind()
        for index, item in enumerate(self.items):
            extra_unparsed = unparsed if index == ITEM_UNATTRIBUTED else 0
            wire = item["header"] + item["payload"] + extra_unparsed + transport[index] + acks[index]
            if wire == 0 and index in (ITEM_WS_CONTROL, ITEM_UNATTRIBUTED):
                continue  # rows that carry nothing would only pad the table
            self.rows["message_costs"].append(
                {
                    "conn_id": self.conn_id,
                    "kind": kind,
                    "item": item["item"],
                    "item_index": item["item_index"],
                    "direction": item["direction"],
                    "ts": item["ts_ns"] * NS,
                    "app_header_bytes": item["header"] + extra_unparsed,
                    "app_payload_bytes": item["payload"],
                    "payload_messages": item["payload_messages"],
                    "transport_bytes": float(transport[index]),
                    "ack_bytes": float(acks[index]),
                    "wire_bytes": float(wire),
                    "efficiency": item["payload"] / wire if wire else 0.0,
                }
            )
        costs = self.rows["message_costs"]
        self.setup_bytes = next(r["wire_bytes"] for r in costs if r["item"] == "setup")
        self.teardown_bytes = next(r["wire_bytes"] for r in costs if r["item"] == "teardown")

    def _kind(self) -> str:
        if self.conn.kind == Kind.WEBSOCKET:
            return Kind.WEBSOCKET
        if self.conn.kind == Kind.REST and self.rows["http_messages"]:
            return Kind.REST
        return Kind.OTHER

    def _connection_row(self, handshake: WsHandshake | None) -> None:
        account = self.account
        client = account.endpoints[self.client_side]
        server = account.endpoints[1 - self.client_side]
        payload = self.categories["http_body_bytes"] + self.categories["ws_data_payload_bytes"]
        http = self.rows["http_messages"]
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
                "payload_bytes": payload,
                "efficiency": payload / account.wire_bytes if account.wire_bytes else 0.0,
                "setup_bytes": self.setup_bytes,
                "teardown_bytes": self.teardown_bytes,
                "handshake_seen": any(s.syn_seen for s in self.conn.streams),
                "gap_bytes": sum(s.gap_bytes for s in self.conn.streams),
                "http_requests": sum(1 for m in http if m["method"] is not None),
                "http_responses": sum(1 for m in http if m["status"] is not None),
                "ws_messages": len(self.rows["ws_messages"]),
                "ws_accept_valid": None if handshake is None else handshake.accept_valid,
                "ws_version": "" if handshake is None else handshake.version,
                "ws_subprotocol": "" if handshake is None else handshake.subprotocol,
                "ws_extensions": "" if handshake is None else handshake.extensions,
                "ws_deflate": bool(handshake is not None and handshake.deflate is not None),
            }
        )
