#!/usr/bin/env python3
"""Regenerate the bundled captures in this folder, and its README.md.

    sudo python captures/make_captures.py            # from the repo root, as root

Each capture is one scenario of tests/traffic.py (real aiohttp / websockets
servers and clients on 127.0.0.1, recorded by tcpdump on `lo`).  The README
is rewritten from the scenarios' ground truth (`Recording.expected`) and from
capinfos / tshark statistics of the new files, so it always matches them.
Ports, timestamps and packet counts change from run to run (ephemeral ports,
ACK timing); requests, messages, frames and their sizes do not.

Needs tcpdump, capinfos and tshark (the last two only for the README numbers).
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
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests import traffic  # noqa: E402

# (file name, recorder, one-line summary)
BUNDLE: list[tuple[str, Callable[[Path], traffic.Recording], str]] = [
    ("rest-keepalive.pcap", traffic.record_rest_keepalive,
     "10 REST requests on one persistent HTTP/1.1 connection (aiohttp client and server)."),
    ("rest-per-request.pcap", traffic.record_rest_per_request,
     "The same 10 REST requests, each on its own TCP connection (http.client, `Connection: close`)."),
    ("websocket-chat.pcap", traffic.record_ws_plain,
     "One uncompressed WebSocket connection: echoes of 7/16/64-bit lengths, pings both ways, "
     "fragmented messages both ways, close 1000."),
    ("websocket-deflate.pcap", traffic.record_ws_deflate,
     "Two WebSocket connections with permessage-deflate: library defaults (context takeover), "
     "then server_/client_no_context_takeover."),
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
    td = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True).stdout.splitlines()
    ts = run(["tshark", "--version"]).splitlines()[0]
    return {
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "websockets": version("websockets"),
        "tcpdump": td[0].replace("tcpdump version ", "") if td else "?",
        "libpcap": td[1].replace("libpcap version ", "") if len(td) > 1 else "?",
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


def describe(exp: dict[str, Any]) -> list[str]:
    """Human summary of a scenario's ground truth."""
    lines = [f"- TCP connections: {exp['tcp_connections']} "
             f"(client ports {', '.join(map(str, exp['client_ports']))}; "
             f"server ports: http={exp['server_ports']['http']}, ws={exp['server_ports']['ws']})"]
    if exp["requests"]:
        lines.append(f"- HTTP requests: {exp['http_requests']} "
                     f"(methods {exp['http_methods']}, statuses {exp['http_statuses']})")
        for i, r in enumerate(exp["requests"], 1):
            lines.append(f"  {i}. `{r['method']} {r['path']}` -> {r['status']} "
                         f"(client port {r['client_port']})")
    for c in exp["ws_connections"]:
        lines.append(f"- WebSocket connection from client port {c['client_port']} to "
                     f"{c['server_port']}: extensions `{c['extensions']}`; "
                     f"messages client->server {c['messages']['client']}, "
                     f"server->client {c['messages']['server']}; close {c['close']['code']} "
                     f"{c['close']['reason']!r} by the {c['close']['initiator']}")
        for side in ("client", "server"):
            sizes = [f["size"] for f in c["frames"][side] if f["opcode"] in (1, 2) and f["fin"]]
            lines.append(f"  - {side} frames: {len(c['frames'][side])}; "
                         f"unfragmented data payload sizes {sizes}")
    if exp["ws_connections"]:
        lines.append(f"- WebSocket frame totals: {exp['ws_frames']}")
    return lines


README_HEAD = """\
# Bundled captures

Small pcap files of real loopback traffic for the inspector's tests and demos.
Every file was recorded by `captures/make_captures.py`, which runs a scenario
of `tests/traffic.py`: real servers (aiohttp for REST, `websockets` for
WebSocket) and real clients talking on 127.0.0.1 (ephemeral ports), captured by

    tcpdump -i lo -w FILE -U -s 0 --immediate-mode -n -B 65536 'tcp port P [or tcp port Q]'

This README is generated by that script; do not edit it by hand.  To
regenerate the files and this README (as root, from the repository root):

    python captures/make_captures.py

Ports, timestamps and packet counts change from run to run (ephemeral ports,
ACK timing); requests, messages, frames and payload sizes do not.  The
"ground truth" block of each file is the scenario's `Recording.expected`: what
the clients sent and the servers answered, taken from the scenario itself
(client assertions, server-side logs, the `websockets` close handshake state),
not from parsing the capture.  Key meanings are documented at the top of
`tests/traffic.py`; frame `size` is the application payload length (before
permessage-deflate compression), `rsv1` marks compressed messages.

tshark decodes the HTTP on these ports heuristically; to be safe pass
`-d tcp.port==PORT,http` for every server port listed (WebSocket too: the
dissector finds WebSocket from the HTTP Upgrade handshake).

"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE,
                    help="where to write the captures (README only when this is captures/)")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    versions = tool_versions()
    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="make-captures-") as tmp:
        for name, recorder, summary in BUNDLE:
            rec = recorder(Path(tmp))
            dest = out / name
            shutil.move(str(rec.path), dest)
            dest.chmod(0o644)
            info = capinfos(dest)
            exp = dict(rec.expected)
            size = dest.stat().st_size
            print(f"{name}: {info['Number of packets']} packets, {size} bytes, "
                  f"{exp['tcp_connections']} TCP connections, {exp['http_requests']} HTTP requests, "
                  f"WS frames {exp['ws_frames'] if exp['ws_connections'] else '-'}")
            sections.append("\n".join([
                f"## {name}",
                "",
                summary,
                "",
                f"- Made by: `traffic.{recorder.__name__}()` via `python captures/make_captures.py`",
                f"- Tools: Python {versions['python']}, aiohttp {versions['aiohttp']}, "
                f"websockets {versions['websockets']}, tcpdump {versions['tcpdump']} "
                f"({versions['libpcap']}), Linux {versions['kernel']}",
                f"- File: {size} bytes, {info['Number of packets']} packets, "
                f"{info['Data size (bytes)']} bytes of packet data, "
                f"duration {float(info['Capture duration (seconds)']):.3f} s, "
                f"encapsulation {info['File encapsulation']} (tcpdump link type "
                f"{exp['link_type']}, DLT {exp['dlt']}), snaplen {info['Packet size limit']}, "
                f"format {info['File type']}",
                f"- `tshark -z conv,tcp`: {tcp_conversations(dest)} TCP conversations "
                f"(tshark {versions['tshark']})",
                *describe(exp),
                "",
                "<details><summary>Ground truth (<code>Recording.expected</code>)</summary>",
                "",
                "```json",
                compact_json(exp),
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
