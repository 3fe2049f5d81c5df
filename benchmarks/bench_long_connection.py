#!/usr/bin/env python3
"""Peak memory of `inspector analyze` on ONE WebSocket connection of N and 4N messages (issue 10).

    python benchmarks/bench_long_connection.py                     # 2M and 8M messages
    python benchmarks/bench_long_connection.py --messages 250000   # quick: 250k and 1M

A long-lived connection used to keep about 160 bytes per message until it ended (its packet
records, stream ranges and items, to split its header bytes among its messages), so its peak
memory grew with it; past long_connections.LONG_CONNECTION_RECORDS they go to disk and the
peak should be flat: the same at N and at 4N messages.

The capture is the `ws` connection of the bundled captures/chat.pcap repeated until it carries
N messages (tests/long_connection.py: sequence numbers moved on, checksums updated; one valid
connection).  Files go to benchmarks/data/ (git ignores it) and are reused.

For each file: `inspector analyze --no-cache --jobs 1` and tshark's field dump of the
WebSocket frames, under GNU time: wall clock, peak RSS of the biggest process (exact) and
summed over the process tree (sampled).  The summary's WebSocket message count is checked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
sys.path[:0] = [str(HERE), str(ROOT)]

from bench_analyze import ensure_gnu_time, inspector_cmd, measure, mib  # noqa: E402
from tests.long_connection import build, server_port  # noqa: E402


def tshark_cmd(path: Path, port: int) -> list[str]:
    return ["tshark", "-r", str(path), "-d", f"tcp.port=={port},http", "-Y", "websocket", "-T", "fields",
            "-e", "frame.number", "-e", "websocket.opcode", "-e", "websocket.payload_length"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000_000, help="N: files of N and 4N messages (default 2,000,000)")
    parser.add_argument("--no-tshark", action="store_true", help="leave tshark out")
    args = parser.parse_args(argv)
    ensure_gnu_time()
    print(f"{'messages':>10s} {'packets':>11s} {'file':>10s} {'tool':9s} {'wall':>8s} {'peak RSS':>10s} {'tree RSS':>10s}")
    for messages in (args.messages, 4 * args.messages):
        path = DATA / f"long-ws-{messages}.pcap"
        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            meta_path.write_text(json.dumps(build(path, messages)))
        meta = json.loads(meta_path.read_text())
        runs = [("inspector", inspector_cmd(path, jobs=1))] + ([] if args.no_tshark else [("tshark", tshark_cmd(path, server_port()))])
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
