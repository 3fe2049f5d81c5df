"""What the tests' ASGI apps (served by hypercorn) share: a listening socket to hand hypercorn
(as fd://, so the port is known before it serves) and the lifespan and body handling."""

from __future__ import annotations

import socket

from inspector.workloads.servers import HOST


def listening_socket() -> socket.socket:
    """A socket listening on 127.0.0.1 and a free port, inheritable (hypercorn's fd:// bind)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


async def request_body(scope, receive, send) -> bytes | None:
    """The whole body of an HTTP request; None for the lifespan scope, answered here."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return None
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)
