"""Application payloads of the workloads: deterministic bytes of exact sizes.

Every variant of a scenario carries these very bytes, as HTTP bodies or as
WebSocket messages, so that the application payload is equal across variants
and only the protocol overhead differs.  A payload depends on its sequence
number and size only; a reply depends on its request only.
"""

from __future__ import annotations

import json
import random

WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
)


def filler(seed: int, length: int) -> str:
    """`length` characters of ASCII words (no JSON escapes), the same for the same seed."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < length:
        word = rng.choice(WORDS) + " "
        parts.append(word)
        total += len(word)
    return "".join(parts)[:length]


def _compact(fields: dict) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


def padded_json(fields: dict, size: int, seed: int) -> bytes:
    """Compact JSON of `fields` plus a ``text`` member that makes it exactly `size` bytes."""
    room = size - len(_compact({**fields, "text": ""}))
    if room < 0:
        raise ValueError(f"{size} bytes is too small for this message (at least {size - room})")
    return _compact({**fields, "text": filler(seed, room)})


def chat_request(seq: int, size: int) -> bytes:
    """Message `seq` of the chat, `size` bytes of JSON."""
    return padded_json({"seq": seq, "from": "client"}, size, seed=seq)


def chat_reply(request: bytes) -> bytes:
    """The server's answer to a chat message: JSON of the same size."""
    seq = json.loads(request)["seq"]
    return padded_json({"seq": seq, "from": "server"}, len(request), seed=-seq)


def bulk_request(seq: int, size: int) -> bytes:
    """The client's ask for bulk document `seq` of `size` bytes."""
    return _compact({"seq": seq, "size": size})


def bulk_body(seq: int, size: int) -> bytes:
    """Bulk document `seq`: CSV rows (compressible, as real exports are), exactly `size` bytes."""
    rng = random.Random(seq)
    rows = [b"seq,row,name,price,quantity\n"]
    total = len(rows[0])
    row = 0
    while total < size:
        line = f"{seq},{row},{rng.choice(WORDS)}-{rng.randrange(1000)},{rng.randrange(100000) / 100:.2f},{rng.randrange(500)}\n".encode()
        rows.append(line)
        total += len(line)
        row += 1
    return b"".join(rows)[:size]


def bulk_reply(request: bytes) -> bytes:
    ask = json.loads(request)
    return bulk_body(int(ask["seq"]), int(ask["size"]))


def feed_update(seq: int, size: int) -> bytes:
    """Update `seq` of the feed, `size` bytes of JSON."""
    rng = random.Random(seq)
    return padded_json({"seq": seq, "topic": "ticker", "price": rng.randrange(10000, 99999) / 100}, size, seed=seq)


def seq_of(payload: bytes | str) -> int:
    """The ``seq`` member of a JSON payload."""
    return int(json.loads(payload)["seq"])
