"""Micro-benchmark: WebSocketParser alone, in microseconds per frame.

    PYTHONPATH=. python benchmarks/bench_websocket.py [--messages N] [--repeat R]

Builds the two directions of an echo connection with tests/factories.py: the
client's frames masked, the server's not, plain and permessage-deflate (with
context takeover, as the `websockets` library negotiates by default).  The
message mix copies the benchmark capture's WebSocket traffic: small JSON text
messages (median payload 39 bytes), a few binary ones and about 1 in 20 of a
few kilobytes, each in one frame.  Each frame is fed as its own chunk, as a
loopback capture delivers them (`--frames-per-chunk` coalesces several), and
events are taken after every chunk as parse/connection.py does (from the
event list it gives the parser; from next_event for a parser without one).

Prints the best of `--repeat` runs of CPU time per frame for each stream.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path

# After PYTHONPATH and the installed package: tests/factories.py from this checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from inspector.events import NEED_DATA, DeflateParams, Direction  # noqa: E402
from inspector.parse.websocket import WebSocketParser  # noqa: E402
from tests.factories import deflate_message, ws_frame  # noqa: E402


def _payloads(count: int, rng: random.Random) -> list[tuple[int, bytes]]:
    """(opcode, payload) pairs shaped like the benchmark capture's messages."""
    messages = []
    for index in range(count):
        roll = rng.random()
        if roll < 0.05:
            body = json.dumps({"seq": index, "blob": "x" * rng.randint(1000, 7900)}).encode()
            messages.append((1, body))
        elif roll < 0.11:
            messages.append((2, rng.randbytes(rng.randint(16, 64))))
        elif roll < 0.35:
            messages.append((1, json.dumps({"seq": index}).encode()))
        else:
            messages.append((1, json.dumps({"seq": index, "text": "hello wörld"[: rng.randint(5, 11)]}).encode()))
    return messages


def _frames(messages: list[tuple[int, bytes]], *, masked: bool, deflate: bool) -> list[bytes]:
    compressor = zlib.compressobj(wbits=-15) if deflate else None
    rng = random.Random(7)
    frames = []
    for opcode, payload in messages:
        if deflate:
            payload = deflate_message(payload, compressor)
        key = rng.randbytes(4)
        frames.append(ws_frame(payload, opcode=opcode, masked=masked, mask_key=key, rsv1=deflate))
    return frames


def _chunks(frames: list[bytes], per_chunk: int) -> list[bytes]:
    return [b"".join(frames[i:i + per_chunk]) for i in range(0, len(frames), per_chunk)]


def _run(chunks: list[bytes], direction: Direction, deflate: DeflateParams | None) -> tuple[float, int]:
    options = {"deflate": deflate, "extensions_negotiated": deflate is not None}
    sink: list = []
    try:
        parser = WebSocketParser(direction, events=sink, **options)
    except TypeError:  # a parser from before event lists: drained one event at a time
        return _run_pulled(chunks, WebSocketParser(direction, **options))
    events = 0
    started = time.process_time()
    for ts, chunk in enumerate(chunks):
        parser.receive_data(chunk, ts)
        # As parse/connection.py does: the events land in the connection's list,
        # which the table rows take (and clear) after every packet.
        events += len(sink)
        sink.clear()
    parser.receive_eof(len(chunks))
    events += len(sink)
    return time.process_time() - started, events


def _run_pulled(chunks: list[bytes], parser: WebSocketParser) -> tuple[float, int]:
    events = 0
    started = time.process_time()
    for ts, chunk in enumerate(chunks):
        parser.receive_data(chunk, ts)
        while parser.next_event() is not NEED_DATA:
            events += 1
    parser.receive_eof(len(chunks))
    while parser.next_event() is not NEED_DATA:
        events += 1
    return time.process_time() - started, events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--frames-per-chunk", type=int, default=1)
    args = parser.parse_args(argv)
    messages = _payloads(args.messages, random.Random(1))
    total = 0.0
    for deflated in (False, True):
        deflate = DeflateParams() if deflated else None
        for direction in (Direction.CLIENT, Direction.SERVER):
            frames = _frames(messages, masked=direction is Direction.CLIENT, deflate=deflated)
            chunks = _chunks(frames, args.frames_per_chunk)
            best, events = min(_run(chunks, direction, deflate) for _ in range(args.repeat))
            total += best
            label = f"{'deflate' if deflated else 'plain'} {direction.label}"
            print(f"{label:16} {1e6 * best / len(frames):6.2f} us/frame  ({len(frames)} frames, {events} events)")
    print(f"{'mean':16} {1e6 * total / (4 * len(messages)):6.2f} us/frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
