#!/usr/bin/env python3
"""Regenerate the bundled captures in this folder, their sidecars, and its README.md.

    python captures/make_captures.py            # from the repo root, as root

Each capture is made by `inspector record SCENARIO` (real aiohttp / websockets
servers and clients on 127.0.0.1, captured live on `lo` by the inspector's own
capture module), which writes NAME.pcap and its sidecar NAME.json.  The
README is rewritten from the sidecars (what the scenarios sent: their ground
truth, never taken from parsing the capture) and from capinfos / tshark
statistics of the new files, so it always matches them.  Ports, timestamps
and packet counts change from run to run (ephemeral ports, ACK timing);
messages and payload bytes do not.

Needs root (live capture), capinfos and tshark (the last two for the README
numbers only).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (file name, `inspector record` arguments after the file, one-line summary)
BUNDLE: list[tuple[str, list[str], str]] = [
    ("chat.pcap", ["chat", "--messages", "20"],
     "20 chat messages (120-byte JSON) and their 120-byte JSON replies over each of rest-keepalive, "
     "rest-per-request, ws and ws-deflate."),
    ("feed.pcap", ["feed", "--messages", "20", "--rate", "20", "--variants", "rest-polling,rest-h2,rest-long-polling,sse,ws,ws-deflate"],
     "20 updates (200-byte JSON) published at 20/s over every variant: rest-polling every 50 ms over HTTP/1.1, then over "
     "HTTP/2 (rest-h2, h2c with prior knowledge: a stream per poll), rest-long-polling (each GET held until the next update, "
     "50 ms at most, else a 204), sse (Server-Sent Events: the stream is dropped after update 10 and resumed on a second "
     "connection with Last-Event-ID: 10), then pushed over ws and ws-deflate; the sidecar says when each was published and seen."),
    ("bulk.pcap", ["bulk", "--messages", "3", "--size", "100,1000,70000", "--variants", "rest-keepalive,ws,ws-deflate"],
     "3 documents of 100, 1,000 and 70,000 bytes (7-, 16- and 64-bit WebSocket lengths), each fetched by a small "
     "JSON ask, over rest-keepalive, ws and ws-deflate."),
    ("idle.pcap", ["idle", "--messages", "10", "--rate", "2", "--variants", "rest-polling,rest-h2,rest-long-polling,sse,ws,ws-deflate"],
     "5 idle seconds kept fresh to 0.5 s over every variant: rest-polling over HTTP/1.1 and rest-h2 over HTTP/2 (h2c with "
     "prior knowledge; 10 polls each, 204 each), rest-long-polling (10 GETs, each held 0.5 s, then 204), sse (one stream "
     "of 10 `: keep-alive` comments, one each 0.5 s), ws and ws-deflate (10 ping/pongs each)."),
    ("h2.pcap", ["chat", "--messages", "10", "--variants", "rest-keepalive,rest-h2"],
     "10 chat messages (120-byte JSON) and their replies over rest-keepalive (HTTP/1.1) and rest-h2 (HTTP/2 in the clear, "
     "h2c with prior knowledge: one connection, every ask on its own stream)."),
    ("tls.pcap", ["chat", "--tls", "--messages", "10", "--variants", "rest-keepalive,rest-h2,ws,ws-deflate"],
     "10 chat messages (120-byte JSON) and their replies over TLS 1.3: rest-keepalive (HTTPS), rest-h2 (h2 by ALPN), "
     "ws and ws-deflate (WSS); the clients' TLS key log is tls.keylog, which the sidecar names, so the capture decrypts."),
]


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def capinfos(path: Path) -> dict[str, str]:
    out = run(["capinfos", "-T", "-m", "-c", "-s", "-d", "-u", "-E", "-l", "-t", str(path)])
    header, values = out.splitlines()[:2]
    return dict(zip(header.split(","), values.split(",")))


def tcp_conversations(path: Path) -> int:
    out = run(["tshark", "-r", str(path), "-n", "-q", "-z", "conv,tcp"])
    return sum(1 for line in out.splitlines() if re.match(r"^\d+\.\d+\.\d+\.\d+:\d+\s+<->", line))


def tool_versions() -> dict[str, str]:
    ts = run(["tshark", "--version"]).splitlines()[0]
    return {
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "websockets": version("websockets"),
        "httpx": version("httpx"),
        "httpx-sse": version("httpx-sse"),
        "tshark": ts.replace("TShark (Wireshark) ", "").split(" ")[0],
        "kernel": platform.release(),
    }


def compact_json(value: Any, indent: int = 0, width: int = 200) -> str:
    """JSON with every list/dict that fits in `width` columns on one line."""
    flat = json.dumps(value)
    if len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(str(k))}: {compact_json(v, indent + 2, width)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + compact_json(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def describe(sidecar: dict[str, Any]) -> list[str]:
    """Human summary of a recording's sidecar."""
    lines = [f"- Parameters: {json.dumps(sidecar['parameters'])}"]
    for v in sidecar["variants"]:
        sent, payload = v["messages_sent"], v["payload_bytes"]
        ports = v["client_ports"]
        lines.append(
            f"- `{v['name']}` ({v['protocol']}, server port {v['server_port']}): {len(ports)} TCP "
            f"connection{'s' if len(ports) != 1 else ''} (client port{'s' if len(ports) != 1 else ''} "
            f"{', '.join(map(str, ports))}); messages client->server {sent['client']}, server->client "
            f"{sent['server']}; payload bytes client->server {payload['client']:,}, server->client {payload['server']:,}"
        )
        for stream in v.get("sse", {}).get("streams", []):
            resumed = "no Last-Event-ID" if stream["last_event_id"] is None else f"Last-Event-ID: {stream['last_event_id']}"
            lines.append(
                f"  - stream on client port {stream['client_port']} ({resumed}): {len(stream['events'])} events, "
                f"{stream['keepalives']} keep-alives, {stream['body_bytes']:,} body bytes{', dropped by the server' if stream['dropped'] else ''}"
            )
    if sidecar["staleness"]:
        by_variant: dict[str, list[float]] = {}
        for s in sidecar["staleness"]:
            by_variant.setdefault(s["variant"], []).append(s["received_ts"] - s["published_ts"])
        lines.append("- Staleness (received - published), mean / max: " + "; ".join(
            f"`{name}` {1000 * sum(v) / len(v):.2f} / {1000 * max(v):.2f} ms" for name, v in by_variant.items()))
    return lines


README_HEAD = """\
# Bundled captures

Small captures of real loopback traffic for the inspector's tests and demos,
each with its recording sidecar (`NAME.json`).  Every file was recorded by
`captures/make_captures.py`, which runs

    inspector record SCENARIO -o captures/NAME.pcap [options]

that is: real servers (aiohttp for REST and Server-Sent Events, hypercorn
for HTTP/2, `websockets` for WebSocket) and real clients (aiohttp, httpx,
httpx-sse, `websockets`) on 127.0.0.1 (ephemeral ports, one server per
variant), the same logical work over each variant one after another,
captured live on `lo` by the inspector's capture module (kernel filter on
the servers' ports, nanosecond pcap).  `inspector analyze` reads the sidecar
next to a capture and labels each connection with its variant.

This README is generated by that script; do not edit it by hand.  To
regenerate the files and this README (as root, from the repository root):

    python captures/make_captures.py

Ports, timestamps and packet counts change from run to run (ephemeral ports,
ACK timing); messages and payload bytes do not.  The "ground truth" block of
each file is its sidecar, written by the scenario itself (the clients' ledger
of every port they used and every application message they sent or received,
checked against the servers' own logs), not taken from parsing the capture.
`messages_sent` counts application messages per direction (REST: requests
and responses; SSE: a request per stream and the events; WebSocket: data
messages), `payload_bytes` their payload (HTTP body bytes as sent; an event's
data; WebSocket payload before permessage-deflate); the `sse` variant also
lists its streams (one per connection: the Last-Event-ID sent, the events
received and when, the server's keep-alives and body bytes).  See
`inspector/record.py` for the format and
`inspector/workloads/scenarios.py` for the scenarios and variants.

tshark decodes the HTTP on these ports heuristically; to be safe pass
`-d tcp.port==PORT,http` for every server port listed (WebSocket too: the
dissector finds WebSocket from the HTTP Upgrade handshake).

"""


def readme_sections(readme: Path) -> dict[str, str]:
    """The README's section of each capture, by file name (none when there is no README)."""
    if not readme.exists():
        return {}
    parts = readme.read_text(encoding="utf-8").split("\n## ")[1:]
    return {part.split("\n", 1)[0]: "## " + part for part in parts}


def record(prefix: list[str], made: Path, dest: Path, record_args: list[str]) -> None:
    """`inspector record` into `made`, then moved to `dest` with its sidecar (and key log)."""
    proc = subprocess.run([*prefix, "record", record_args[0], "-o", str(made), *record_args[1:]], capture_output=True, text=True)
    if proc.returncode != 0 or proc.stderr:
        sys.exit(f"inspector record {' '.join(record_args)} failed ({proc.returncode}):\n{proc.stderr}")
    for suffix in (dest.suffix, ".json", ".keylog"):
        if made.with_suffix(suffix).exists():
            shutil.move(str(made.with_suffix(suffix)), dest.with_suffix(suffix))
            dest.with_suffix(suffix).chmod(0o644)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE,
                    help="where to write the captures (README only when this is captures/)")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=[name for name, _args, _summary in BUNDLE],
                    help="record only these (the README still describes every capture, from the files)")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    inspector = shutil.which("inspector")
    prefix = [inspector] if inspector else [sys.executable, "-m", "inspector.cli"]

    versions = tool_versions()
    sections: list[str] = []
    kept = readme_sections(out / "README.md") if out == HERE else {}
    with tempfile.TemporaryDirectory(prefix="make-captures-") as tmp:
        for name, record_args, summary in BUNDLE:
            dest = out / name
            dest_json = dest.with_suffix(".json")
            if args.only is not None and name not in args.only and name in kept:
                sections.append(kept[name])  # not recorded again: its section (tools and all) stays
                continue
            record(prefix, Path(tmp) / name, dest, record_args)
            sidecar = json.loads(dest_json.read_text(encoding="utf-8"))
            info = capinfos(dest)
            size = dest.stat().st_size
            connections = sum(len(v["client_ports"]) for v in sidecar["variants"])
            print(f"{name}: {info['Number of packets']} packets, {size} bytes, {connections} TCP connections, "
                  f"variants {', '.join(v['name'] for v in sidecar['variants'])}")
            command = " ".join(["inspector", "record", record_args[0], "-o", f"captures/{name}", *record_args[1:]])
            sections.append("\n".join([
                f"## {name}",
                "",
                summary,
                "",
                f"- Made by: `{command}` (via `python captures/make_captures.py`); sidecar `{dest_json.name}`",
                f"- Tools: Python {versions['python']}, aiohttp {versions['aiohttp']}, "
                f"websockets {versions['websockets']}, httpx {versions['httpx']}, httpx-sse {versions['httpx-sse']}, "
                f"`inspector record` live capture, Linux {versions['kernel']}",
                f"- File: {size} bytes, {info['Number of packets']} packets, "
                f"{info['Data size (bytes)']} bytes of packet data, "
                f"duration {float(info['Capture duration (seconds)']):.3f} s, "
                f"encapsulation {info['File encapsulation']}, snaplen {info['Packet size limit']}, "
                f"format {info['File type']}",
                f"- `tshark -z conv,tcp`: {tcp_conversations(dest)} TCP conversations "
                f"(tshark {versions['tshark']}); the sidecar's variants list {connections}",
                *describe(sidecar),
                *([f"- TLS key log: `{sidecar['tls']['keylog']}` (NSS format, named in the sidecar, so `inspector analyze` decrypts "
                   f"without flags); tshark: `-o tls.keylog_file:captures/{sidecar['tls']['keylog']}`"] if sidecar.get("tls") else []),
                "",
                f"<details><summary>Ground truth (the sidecar, <code>{dest_json.name}</code>)</summary>",
                "",
                "```json",
                compact_json(sidecar),
                "```",
                "",
                "</details>",
                "",
            ]))

    if out == HERE:
        (HERE / "README.md").write_text(README_HEAD + "\n".join(sections))
        print(f"wrote {HERE / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
