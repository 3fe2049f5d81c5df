"""Raw protocol bytes for tests, built independently of the parsers."""

from __future__ import annotations

import base64
import hashlib
import zlib


def ws_frame(
    payload: bytes = b"",
    *,
    opcode: int = 1,
    fin: bool = True,
    masked: bool = False,
    mask_key: bytes = b"\x01\x02\x03\x04",
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    length_bits: int | None = None,
) -> bytes:
    """One WebSocket frame (RFC 6455 5.2); `payload` is given unmasked.

    length_bits (7, 16 or 64) forces a length encoding, minimal or not.
    """
    size = len(payload)
    if length_bits is None:
        length_bits = 7 if size < 126 else 16 if size < 65536 else 64
    first = (fin << 7) | (rsv1 << 6) | (rsv2 << 5) | (rsv3 << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if length_bits == 7:
        assert size < 126, "a 7-bit length holds at most 125"
        header = bytes([first, mask_bit | size])
    elif length_bits == 16:
        header = bytes([first, mask_bit | 126]) + size.to_bytes(2, "big")
    elif length_bits == 64:
        header = bytes([first, mask_bit | 127]) + size.to_bytes(8, "big")
    else:
        raise ValueError(f"length_bits must be 7, 16 or 64, not {length_bits}")
    if masked:
        header += mask_key
        payload = bytes(byte ^ mask_key[index % 4] for index, byte in enumerate(payload))
    return header + payload


def deflate_message(data: bytes, compressor=None) -> bytes:
    """permessage-deflate payload of one message (RFC 7692 7.2.1).

    Pass the same `compressor` (zlib.compressobj(wbits=-15 or -N)) for
    several messages to compress with context takeover.
    """
    if compressor is None:
        compressor = zlib.compressobj(wbits=-15)
    compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert compressed.endswith(b"\x00\x00\xff\xff")
    return compressed[:-4]


def chunks(data: bytes, size: int) -> list[bytes]:
    """`data` cut into pieces of `size` bytes (the last one shorter)."""
    return [data[start:start + size] for start in range(0, len(data), size)]


# --- HTTP/1.1 -----------------------------------------------------------------


def http_request(method: str = "GET", target: str = "/", *, headers: dict[str, str] | None = None, body: bytes = b"", chunked: list[bytes] | None = None, version: str = "HTTP/1.1") -> bytes:
    """Raw request bytes; `chunked` sends the body as these chunks."""
    return _http_message(f"{method} {target} {version}", headers, body, chunked)


def http_response(status: int = 200, reason: str = "OK", *, headers: dict[str, str] | None = None, body: bytes = b"", chunked: list[bytes] | None = None, version: str = "HTTP/1.1", content_length: bool = True) -> bytes:
    """Raw response bytes; content_length=False leaves the length out."""
    return _http_message(f"{version} {status} {reason}", headers, body, chunked, content_length)


def chunked_body(chunks: list[bytes], *, extension: str = "", trailers: dict[str, str] | None = None) -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(c), extension.encode(), c) for c in chunks if c)
    out += b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in (trailers or {}).items()) + b"\r\n"
    return out


def _http_message(start: str, headers, body: bytes, chunked, content_length: bool = True) -> bytes:
    lines = [start]
    headers = dict(headers or {})
    if chunked is not None:
        headers.setdefault("Transfer-Encoding", "chunked")
        body = chunked_body(chunked)
    elif body and content_length:
        headers.setdefault("Content-Length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- capture files --------------------------------------------------------------

import struct as _struct  # noqa: E402


def pcap_file(frames: list[tuple[int, bytes]], *, link_type: int = 1, nano: bool = False, big_endian: bool = False, snaplen: int = 262144, wire_lens: list[int] | None = None) -> bytes:
    """A classic pcap file; frames are (ts_ns, bytes)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(_struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type))
    for i, (ts_ns, frame) in enumerate(frames):
        sec, rest = divmod(ts_ns, 1_000_000_000)
        frac = rest if nano else rest // 1000
        wire = wire_lens[i] if wire_lens else len(frame)
        out += _struct.pack(e + "IIII", sec, frac, len(frame), wire) + frame
    return bytes(out)


def pcapng_file(interfaces: list[tuple[int, int]], packets: list[tuple[int, int, bytes]], *, big_endian: bool = False) -> bytes:
    """A pcapng file; interfaces are (link_type, tsresol byte), packets (iface, ts units, frame)."""
    e = ">" if big_endian else "<"

    def block(block_type: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        length = 12 + len(body)
        return _struct.pack(e + "II", block_type, length) + body + _struct.pack(e + "I", length)

    out = block(0x0A0D0D0A, _struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    for link_type, tsresol in interfaces:
        options = _struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\x00\x00\x00" + _struct.pack(e + "HH", 0, 0)
        out += block(1, _struct.pack(e + "HHI", link_type, 0, 0) + options)
    for iface, units, frame in packets:
        out += block(6, _struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    return out


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def tcp_connection(client_port: int, talk: list[tuple[str, bytes]], t0_ns: int, isn: tuple[int, int] = (1000, 5000)) -> list[tuple[int, bytes]]:
    """(ts_ns, Ethernet frame) of one TCP connection to 10.0.0.2:8080: handshake, each
    (sender, bytes) of `talk` in one segment and its ACK, then FIN both ways; isn: the client's
    and the server's initial sequence numbers."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    ends = {"client": ("10.0.0.1", client_port), "server": ("10.0.0.2", 8080)}
    seq = {"client": isn[0], "server": isn[1]}
    frames: list[tuple[int, bytes]] = []

    def send(sender: str, flags: str, data: bytes = b"") -> None:
        other = "server" if sender == "client" else "client"
        (src, sport), (dst, dport) = ends[sender], ends[other]
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq[sender], ack=seq[other] if "A" in flags else 0)
        frames.append((t0_ns + len(frames) * 1_000_000, bytes(Ether() / IP(src=src, dst=dst) / tcp / data)))
        seq[sender] += len(data) + ("S" in flags or "F" in flags)

    send("client", "S")
    send("server", "SA")
    send("client", "A")
    for sender, data in talk:
        send(sender, "PA", data)
        send("server" if sender == "client" else "client", "A")
    send("client", "FA")
    send("server", "FA")
    send("client", "A")
    return frames

def tcp_frame(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """Ethernet + IPv4 + TCP (no options, checksums left zero) around `payload`.

    Packs the headers directly: scapy takes ~100x longer, too slow for the
    tens of thousands of packets a test of a limit needs.  flags: TCP flag bits
    (SYN 0x02, ACK 0x10, PSH 0x08, FIN 0x01, RST 0x04).
    """
    tcp = _struct.pack("!HHIIBBHHH", src[1], dst[1], seq % (1 << 32), ack % (1 << 32), 5 << 4, flags, 65535, 0, 0)
    ip = _struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, _ipv4(src[0]), _ipv4(dst[0]))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload


def _ipv4(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


def gzip_bomb(path, inflated: int) -> int:
    """A pcap header and then zeros up to `inflated` bytes, gzip-compressed (about 1000:1);
    returns the compressed size."""
    header = pcap_file([])
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with open(path, "wb") as out:
        out.write(compressor.compress(header))
        left = inflated - len(header)
        while left > 0:
            out.write(compressor.compress(zeros[:left]))
            left -= len(zeros)
        out.write(compressor.flush())
    return path.stat().st_size
