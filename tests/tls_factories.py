"""Real TLS bytes for tests: a self-signed certificate and conversations made by Python's ssl.

`certificate(folder)` writes a self-signed certificate and key (made with the
`cryptography` package) for 127.0.0.1 and localhost; `server_context` and
`client_context` make ssl contexts for one TLS version with ALPN set.
`conversation(...)` runs a client and a server against each other in memory
(ssl.MemoryBIO, no sockets): the bytes each side sent, in the order they were
sent, as OpenSSL wrote them.  `record(...)` builds one record by hand.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from inspector.workloads.tls import write_certificate

SERVER_NAME = "inspector.test"


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (EC P-256) for SERVER_NAME, localhost and 127.0.0.1: (cert, key) paths
    (made once per folder)."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    return write_certificate(folder, SERVER_NAME)


def _pin(context: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLContext:
    context.minimum_version = context.maximum_version = version
    return context


def server_context(folder: Path, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate(folder))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return _pin(context, version)


def client_context(version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3, alpn: tuple[str, ...] = ("http/1.1",),
                   ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if ciphers:
        context.set_ciphers(ciphers)
    return _pin(context, version)


@dataclass
class Conversation:
    """What each side sent, as a list of writes (in order), and what the session negotiated."""

    client: list[bytes] = field(default_factory=list)
    server: list[bytes] = field(default_factory=list)
    order: list[tuple[int, bytes]] = field(default_factory=list)  # (side: 0 client, 1 server, bytes) in sending order
    version: str = ""
    cipher: str = ""
    alpn: str | None = None

    @property
    def client_bytes(self) -> bytes:
        return b"".join(self.client)

    @property
    def server_bytes(self) -> bytes:
        return b"".join(self.server)


def conversation(folder: Path, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3, *, alpn: tuple[str, ...] = ("h2", "http/1.1"),
                 server_alpn: tuple[str, ...] = ("http/1.1",), messages: tuple[bytes, ...] = (b"GET / HTTP/1.1\r\n\r\n",),
                 server_name: str | None = SERVER_NAME, close: bool = True, keylog: Path | None = None,
                 ciphers: str | None = None, replies: tuple[bytes, ...] | None = None) -> Conversation:
    """A handshake, each of `messages` sent by the client and echoed by the server (or answered
    with the reply of the same index), then close_notify both ways (when `close`).  keylog: the
    client writes its secrets there (NSS key log format); ciphers: the client's OpenSSL cipher
    string (TLS 1.2)."""
    bios = [(ssl.MemoryBIO(), ssl.MemoryBIO()), (ssl.MemoryBIO(), ssl.MemoryBIO())]  # (incoming, outgoing) by side
    context = client_context(version, alpn, ciphers)
    if keylog is not None:
        context.keylog_filename = str(keylog)
    client = context.wrap_bio(*bios[0], server_hostname=server_name)
    server = server_context(folder, version, server_alpn).wrap_bio(*bios[1], server_side=True)
    talk = Conversation()

    def move() -> bool:
        moved = False
        for side in (0, 1):
            data = bios[side][1].read()
            if data:
                (talk.client, talk.server)[side].append(data)
                talk.order.append((side, data))
                bios[1 - side][0].write(data)
                moved = True
        return moved

    def step(endpoint: ssl.SSLObject, action) -> None:
        try:
            action()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass

    for _ in range(20):
        step(client, client.do_handshake)
        step(server, server.do_handshake)
        if not move() and _done(client) and _done(server):
            break
    for index, message in enumerate(messages):
        client.write(message)
        move()
        received = server.read(len(message) + 1024)
        answer = received if replies is None else replies[index]
        server.write(answer)
        move()
        client.read(len(answer) + 1024)
        move()
    if close:
        step(client, client.unwrap)
        move()
        step(server, server.unwrap)
        move()
    talk.version = client.version()
    talk.cipher = client.cipher()[0]
    talk.alpn = client.selected_alpn_protocol()
    return talk


def _done(endpoint: ssl.SSLObject) -> bool:
    try:
        endpoint.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    return True


def record(content_type: int, payload: bytes, version: int = 0x0303, length: int | None = None) -> bytes:
    """One TLS record: header (its length field `length` if given) and payload."""
    size = len(payload) if length is None else length
    return bytes([content_type, version >> 8, version & 0xFF]) + size.to_bytes(2, "big") + payload


def handshake(message_type: int, body: bytes) -> bytes:
    """One handshake message: type, 24-bit length, body."""
    return bytes([message_type]) + len(body).to_bytes(3, "big") + body
