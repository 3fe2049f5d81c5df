"""One WebSocket connection of N messages, made from the real one of captures/chat.pcap.

The `ws` connection of the bundled chat recording (loopback traffic: its upgrade, 20
request/reply pairs of JSON, its close) with its message packets repeated until it carries N
messages, each repetition's sequence and acknowledgement numbers moved on by the bytes the
earlier ones carried (TCP checksums updated), timestamps shifted, then its close: one valid
connection, as long as wanted (tshark reassembles it as one stream).  For the long-connection
tests and benchmarks/bench_long_connection.py.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BASE = Path(__file__).resolve().parents[1] / "captures" / "chat.pcap"
VARIANT = "ws"
TCP_ACK = 0x10
CLOSE_FRAME = 0x88  # FIN + opcode 8, the first byte of a Close frame
# pcap magic numbers: (byte order, timestamp ticks per second)
_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
          b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000)}


def server_port() -> int:
    return _variant()["server_port"]


def _variant() -> dict:
    return next(v for v in json.loads(BASE.with_suffix(".json").read_text())["variants"] if v["name"] == VARIANT)


def _checksum_moved(checksum: int, old: int, new: int) -> int:
    """A 16-bit one's complement checksum after a word of what it covers went from old to new (RFC 1624)."""
    total = (~checksum & 0xFFFF) + (~old & 0xFFFF) + new
    total = (total & 0xFFFF) + (total >> 16)
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF


def _packets(path: Path, server: int, client: int) -> tuple[bytes, str, int, list[tuple]]:
    """The connection's packets: (ticks, orig_len, bytes, tcp offset, payload, from_client)."""
    raw = path.read_bytes()
    endian, tps = _MAGIC[raw[:4]]
    header, linktype = raw[:24], struct.unpack(endian + "I", raw[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, expected 1 (Ethernet)")
    record = struct.Struct(endian + "IIII")
    packets = []
    offset = 24
    while offset + 16 <= len(raw):
        sec, frac, incl, orig = record.unpack_from(raw, offset)
        data = raw[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        if data[12:14] != b"\x08\x00" or data[23] != 6:
            continue
        tcp = 14 + (data[14] & 0x0F) * 4
        ports = struct.unpack_from("!HH", data, tcp)
        if set(ports) != {server, client}:
            continue
        payload = data[tcp + (data[tcp + 12] >> 4) * 4:]
        packets.append((sec * tps + frac, orig, data, tcp, payload, ports[1] == server))
    return header, endian, tps, packets


def _message_packets(packets: list[tuple]) -> tuple[int, int]:
    """[first, end) of the packets carrying the messages: after the 101, before the Close."""
    first = next(i for i, p in enumerate(packets) if p[4].startswith(b"HTTP/1.1 101")) + 1
    end = next(i for i, p in enumerate(packets) if p[4][:1] == bytes([CLOSE_FRAME]))
    return first, end


def _moved(data: bytes, tcp: int, seq_by: int, ack_by: int) -> bytes:
    """The packet with its sequence number moved on by seq_by and its acknowledgement (if it
    acknowledges) by ack_by, its TCP checksum updated (RFC 1624, a 16-bit word at a time)."""
    b = bytearray(data)
    checksum = (b[tcp + 16] << 8) | b[tcp + 17]
    fields = [(tcp + 4, seq_by)] + ([(tcp + 8, ack_by)] if b[tcp + 13] & TCP_ACK else [])
    for at, by in fields:
        old = struct.unpack_from("!I", b, at)[0]
        new = (old + by) & 0xFFFFFFFF
        struct.pack_into("!I", b, at, new)
        for shift in (16, 0):
            checksum = _checksum_moved(checksum, (old >> shift) & 0xFFFF, (new >> shift) & 0xFFFF)
    b[tcp + 16], b[tcp + 17] = checksum >> 8, checksum & 0xFF
    return bytes(b)


def build(out: Path, messages: int) -> dict:
    """One WebSocket connection of at least `messages` messages in `out` (see the docstring): its
    messages, packets and size in bytes."""
    variant = _variant()
    header, endian, tps, packets = _packets(BASE, variant["server_port"], variant["client_ports"][0])
    first, end = _message_packets(packets)
    body = packets[first:end]
    per_cycle = sum(1 for p in body if p[4][:1] in (b"\x81", b"\x82"))  # a message a data frame (text or binary, FIN)
    sent = {True: sum(len(p[4]) for p in body if p[5]), False: sum(len(p[4]) for p in body if not p[5])}
    period = body[-1][0] - body[0][0] + tps // 1000
    cycles = -(-messages // per_cycle)
    record = struct.Struct(endian + "IIII").pack
    tmp = out.with_suffix(".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(tmp, "wb", buffering=8 << 20) as f:
        f.write(header)

        def write(part: list[tuple], cycle: int) -> None:
            nonlocal written
            chunk = []
            for ticks, orig, data, tcp, _payload, from_client in part:
                ticks += cycle * period
                if cycle:
                    data = _moved(data, tcp, cycle * sent[from_client], cycle * sent[not from_client])
                chunk += [record(ticks // tps, ticks % tps, len(data), orig), data]
            f.write(b"".join(chunk))
            written += len(part)

        write(packets[:first], 0)
        for cycle in range(cycles):
            write(body, cycle)
        write(packets[end:], cycles - 1)  # the close, after the last repetition
    tmp.replace(out)
    return {"messages": cycles * per_cycle, "packets": written, "bytes": out.stat().st_size}
