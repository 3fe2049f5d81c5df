"""Application payload: what a message carried for the application, decoded.

Efficiency divides this by the wire bytes.  Dividing the payload *as sent*
instead would count compression as waste: a permessage-deflate message of
120 bytes sent in 40 would look a third as efficient as the same message
sent plain.  So a message's application payload is its HTTP body after
content decoding (gzip, deflate) or its WebSocket data after
permessage-deflate; the bytes as sent stay a figure of their own.

When the decoded size is unknown (decompression failed or hit its cap, the
body or message is incomplete, a content coding the parser does not decode
such as br or zstd) the message counts with its bytes as sent, and those
bytes are reported as `undecoded`.  Compressed data almost always decodes
to more than it was sent as, so with undecoded bytes an efficiency is a
lower bound, and says so, rather than unknown: one damaged message at the
end of a capture would otherwise leave the whole variant without a number.
"""

from __future__ import annotations

import math

from inspector.events import HttpRequest, HttpResponse, WsMessage

# Content codings that leave the body as it is (RFC 9110 8.4.1); the empty string: no header.
IDENTITY_CODINGS = ("", "identity")


# One message's application payload, as counted: (size, undecoded, carries).
#   size: application payload bytes (the bytes as sent when not decoded).
#   undecoded: bytes of `size` counted as sent because the decoded size is unknown.
#   carries: the message carried payload, the work it did (an empty poll, a
#       204 or a compressed empty message carries none).
# A plain tuple: made once per message, where a NamedTuple's constructor would cost
# more than the rest of the function.
AppPayload = tuple[int, int, bool]


def http_app_payload(message: HttpRequest | HttpResponse, sent: int) -> AppPayload:
    """`sent`: the body bytes captured as sent (chunk framing and missing bytes excluded)."""
    if sent == 0 or message.content_encoding in IDENTITY_CODINGS:
        return sent, 0, message.body_bytes > 0
    decompressed = message.decompressed_bytes
    if decompressed is not None:
        return decompressed, 0, decompressed > 0
    return sent, sent, True


def ws_app_payload(message: WsMessage, sent: int) -> AppPayload:
    """`sent`: the data frames' payload bytes captured as sent (missing bytes excluded)."""
    if not message.compressed:
        return sent, 0, message.wire_payload_bytes > 0
    decoded = message.payload_bytes
    if decoded is not None:
        return decoded, 0, decoded > 0
    return sent, sent, message.wire_payload_bytes > 0


def payload_columns(app: int, sent: int, undecoded: int, wire: int) -> dict[str, int | float]:
    """The payload and efficiency columns of a connection or an overhead row, from its sums."""
    return {
        "app_payload_bytes": app,
        "efficiency": app / wire if wire else math.nan,
        "wire_payload_bytes": sent,
        "wire_payload_efficiency": sent / wire if wire else math.nan,
        "compression_saved_bytes": app - sent,
        "compression_ratio": app / sent if sent else math.nan,
        "undecoded_payload_bytes": undecoded,
    }
