"""The WebSocket opening handshake seen from the wire (RFC 6455 section 4,
RFC 7692 section 7): the accept value a server must answer with, and the
permessage-deflate parameters a 101 response negotiated.

parse/connection.py checks a handshake with these; the negotiated
DeflateParams then configure the two WebSocketParsers.
"""

from __future__ import annotations

import base64
import hashlib

from inspector.events import DeflateParams

# RFC 6455 section 1.3: the GUID the server appends to Sec-WebSocket-Key.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    try:
        # Header values are decoded as latin-1 upstream; this gives back the wire bytes.
        key_bytes = key.encode("latin-1")
    except UnicodeEncodeError:
        key_bytes = key.encode("utf-8", "replace")
    return base64.b64encode(hashlib.sha1(key_bytes + _ACCEPT_GUID).digest()).decode("ascii")


def parse_deflate_offer(extensions_header: str) -> DeflateParams | None:
    """Negotiated permessage-deflate from a 101 response's Sec-WebSocket-Extensions.

    Returns None when the response did not accept permessage-deflate or
    accepted it with parameters a conforming client rejects (RFC 7692
    section 7.1: unknown or duplicated parameter, invalid value), since the
    client then fails the connection and nothing is ever compressed.
    """
    if not isinstance(extensions_header, str):
        return None
    accepted: DeflateParams | None = None
    for element in _split_outside_quotes(extensions_header, ","):
        name, *params = _split_outside_quotes(element, ";")
        if name.strip().lower() != "permessage-deflate":
            continue
        if accepted is not None:
            # A server accepts at most one offer; two answers are ambiguous.
            return None
        accepted = _deflate_params(params)
        if accepted is None:
            return None
    return accepted


def _deflate_params(params: list[str]) -> DeflateParams | None:
    """DeflateParams from `name[=value]` strings, or None if any is invalid."""
    values: dict[str, bool | int] = {}
    for param in params:
        name, has_value, value = param.partition("=")
        name = name.strip().lower()
        if not name and not has_value:
            continue  # a stray ";" carries nothing
        if name in values:
            return None
        value = _unquote(value.strip())
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if has_value:
                return None
            values[name] = True
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if not has_value:
                # RFC 7692 7.1.2.2: a bare client_max_window_bits leaves the
                # client at its default of 15; the server one needs a value.
                if name == "server_max_window_bits":
                    return None
                values[name] = 15
                continue
            bits = _window_bits(value)
            if bits is None:
                return None
            values[name] = bits
        else:
            return None
    return DeflateParams(**values)  # type: ignore[arg-type]


def _window_bits(value: str) -> int | None:
    """RFC 7692 section 7.1.2: 8..15 as plain decimal without leading zeros."""
    if len(value) > 2 or not (value.isascii() and value.isdigit()) or value.startswith("0"):
        return None  # never int() of thousands of digits (ValueError past Python's int-string limit)
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split at `separator` except inside quoted-strings (RFC 9110 section 5.6.4)."""
    parts = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts
