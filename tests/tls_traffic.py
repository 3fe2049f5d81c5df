"""Record real TLS traffic on loopback: an asyncio TLS server and clients of TLS 1.2 and 1.3.

`record_tls(out_dir)` starts an asyncio server on 127.0.0.1 (Python's ssl, the
self-signed certificate of tests/tls_factories.py, ALPN http/1.1) and runs one
client connection per entry of CLIENTS: each sends HTTP/1.1-looking requests
and reads the echoed replies (one of 40 KB, several records), then closes
(close_notify).  tcpdump captures it on `lo` (tests/traffic.py).  The
Recording's `expected` is what each client's ssl object negotiated, by client
port: version, cipher, ALPN, SNI.  Needs root (or CAP_NET_RAW) for tcpdump.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

from tests.tls_factories import SERVER_NAME, client_context, server_context
from tests.traffic import tcpdump_capture
from inspector.workloads.servers import HOST, LoopThread

# (TLS version, ALPN offered, OpenSSL cipher string or None, SNI or None) per connection.
CLIENTS = (
    (ssl.TLSVersion.TLSv1_3, ("h2", "http/1.1"), None, SERVER_NAME),
    (ssl.TLSVersion.TLSv1_2, ("http/1.1",), "ECDHE-ECDSA-CHACHA20-POLY1305", SERVER_NAME),
    (ssl.TLSVersion.TLSv1_2, (), "ECDHE-ECDSA-AES128-GCM-SHA256", None),
)
REQUEST_SIZES = (20, 300, 40_000, 5)


@dataclass
class TlsRecording:
    path: Path
    server_port: int
    expected: dict[int, dict]  # client port -> version, cipher, alpn, sni


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            size = int(line.split(b" ")[1])
            body = await reader.readexactly(size)
            writer.write(b"ok %d\n" % size + body[::-1])
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def _client(port: int, version: ssl.TLSVersion, alpn: tuple[str, ...], ciphers: str | None, sni: str | None) -> tuple[int, dict]:
    context = client_context(version, alpn, ciphers)
    reader, writer = await asyncio.open_connection(HOST, port, ssl=context, server_hostname=sni or "")
    ssl_object = writer.get_extra_info("ssl_object")
    for size in REQUEST_SIZES:
        writer.write(b"put %d\n" % size + bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        await writer.drain()
        await reader.readline()
        await reader.readexactly(size)
    client_port = writer.get_extra_info("sockname")[1]
    expected = {"version": ssl_object.version(), "cipher": ssl_object.cipher()[0], "alpn": ssl_object.selected_alpn_protocol() or "",
                "sni": sni or "", "alpn_offered": ",".join(alpn)}
    writer.close()
    await writer.wait_closed()
    return client_port, expected


def record_tls(out_dir: Path) -> TlsRecording:
    path = out_dir / "tls.pcap"
    context = server_context(out_dir, ssl.TLSVersion.TLSv1_3, ("http/1.1",))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with LoopThread("tls-loop") as loop:
        server = loop.run(asyncio.start_server(_serve, HOST, 0, ssl=context))
        port = server.sockets[0].getsockname()[1]
        expected = {}
        with tcpdump_capture(path, [port]):
            for version, alpn, ciphers, sni in CLIENTS:
                client_port, negotiated = loop.run(_client(port, version, alpn, ciphers, sni))
                expected[client_port] = negotiated
        server.close()
        loop.run(server.wait_closed())
    return TlsRecording(path, port, expected)
