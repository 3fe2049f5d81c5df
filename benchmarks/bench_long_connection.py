#!/usr/bin/env python3
"""Peak memory of `inspector analyze` on ONE WebSocket connection of N and 4N messages (issue 10).

    python benchmarks/bench_long_connection.py                     # 2M and 8M messages
    python benchmarks/bench_long_connection.py --messages 250000   # quick: 250k and 1M

A long-lived connection used to keep about 160 bytes per message until it ended (its packet
records, stream ranges and items, to split its header bytes among its messages), so its peak
memory grew with it; past long_connections.LONG_CONNECTION_RECORDS they go to disk and the
peak should be flat: the same at N and at 4N messages.

The capture is the `ws` connection of the bundled captures/chat.pcap (real loopback traffic:
the upgrade, 20 request/reply pairs of JSON, the close), its message packets repeated until
it carries N messages, each repetition's sequence and acknowledgement numbers moved on by the
bytes the earlier ones carried (TCP checksums updated, timestamps shifted), then its close:
one connection, valid throughout (tshark reassembles it as one stream).  Files go to
benchmarks/data/ (git ignores it) and are reused.

For each file: `inspector analyze --no-cache --jobs 1` and tshark's field dump of the
WebSocket frames, under GNU time: wall clock, peak RSS of the biggest process (exact) and
summed over the process tree (sampled).  The summary's WebSocket message count is checked.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))

from bench_analyze import _csum_update, _open_pcap, ensure_gnu_time, inspector_cmd, measure, mib  # noqa: E402

BASE = ROOT / "captures" / "chat.pcap"
VARIANT = "ws"
TCP_ACK = 0x10
CLOSE_FRAME = 0x88  # FIN + opcode 8, the first byte of a Close frame


def _packets(path: Path, server_port: int, client_port: int) -> tuple[bytes, str, int, list[tuple]]:
    """The connection's packets: (ticks, orig_len, bytes, tcp offset, payload, from_client)."""
    header, endian, tps, linktype, raw = _open_pcap(path)
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, expected 1 (Ethernet)")
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
        if set(ports) != {server_port, client_port}:
            continue
        payload = data[tcp + (data[tcp + 12] >> 4) * 4:]
        packets.append((sec * tps + frac, orig, data, tcp, payload, ports[1] == server_port))
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
            checksum = _csum_update(checksum, (old >> shift) & 0xFFFF, (new >> shift) & 0xFFFF)
    b[tcp + 16], b[tcp + 17] = checksum >> 8, checksum & 0xFF
    return bytes(b)


def build(out: Path, messages: int) -> dict:
    """One WebSocket connection of at least `messages` messages in `out` (see the docstring)."""
    sidecar = json.loads(BASE.with_suffix(".json").read_text())
    variant = next(v for v in sidecar["variants"] if v["name"] == VARIANT)
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


def tshark_cmd(path: Path, server_port: int) -> list[str]:
    return ["tshark", "-r", str(path), "-d", f"tcp.port=={server_port},http", "-Y", "websocket", "-T", "fields",
            "-e", "frame.number", "-e", "websocket.opcode", "-e", "websocket.payload_length"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000_000, help="N: files of N and 4N messages (default 2,000,000)")
    parser.add_argument("--no-tshark", action="store_true", help="leave tshark out")
    args = parser.parse_args(argv)
    ensure_gnu_time()
    server_port = next(v for v in json.loads(BASE.with_suffix(".json").read_text())["variants"] if v["name"] == VARIANT)["server_port"]
    print(f"{'messages':>10s} {'packets':>11s} {'file':>10s} {'tool':9s} {'wall':>8s} {'peak RSS':>10s} {'tree RSS':>10s}")
    for messages in (args.messages, 4 * args.messages):
        path = DATA / f"long-ws-{messages}.pcap"
        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            meta_path.write_text(json.dumps(build(path, messages)))
        meta = json.loads(meta_path.read_text())
        runs = [("inspector", inspector_cmd(path, jobs=1))] + ([] if args.no_tshark else [("tshark", tshark_cmd(path, server_port))])
        for tool, cmd in runs:
            with_output = DATA / f"long-ws-{messages}.{tool}.out"
            run = measure(cmd, str(with_output))
            if run.rc != 0:
                print(f"{tool} failed ({run.rc}): {run.stderr[-500:]}")
                return 1
            if tool == "inspector":
                counted = re.search(r"WebSocket connections \d+, messages (\d[\d,]*)", with_output.read_text())
                if counted is None or int(counted.group(1).replace(",", "")) != meta["messages"]:
                    print(f"inspector counted {counted and counted.group(1)} WebSocket messages, the file has {meta['messages']}")
                    return 1
            print(f"{meta['messages']:>10,} {meta['packets']:>11,} {meta['bytes'] / 2**20:8.0f}MiB {tool:9s} {run.wall:7.1f}s "
                  f"{mib(run.rss_kib):>10s} {mib(run.tree_rss_kib):>10s}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
