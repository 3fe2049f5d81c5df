"""HTTP/2 frames for parser tests, serialised by hyperframe, header blocks encoded by hpack."""

from __future__ import annotations

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, PriorityFrame, PushPromiseFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from inspector.parse.http2 import CLIENT_PREFACE

REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "example.test"), (":path", "/items?page=2"),
           ("user-agent", "factory/1.0"), ("accept", "application/json")]
RESPONSE = [(":status", "200"), ("content-type", "application/json"), ("server", "factory")]


def _flagged(frame, flags):
    for flag in flags:
        frame.flags.add(flag)
    return frame


def headers(stream_id: int, block: bytes, *flags: str, pad_length: int = 0, depends_on: int | None = None) -> bytes:
    frame = _flagged(HeadersFrame(stream_id, data=block), flags)
    if pad_length:
        frame.flags.add("PADDED")
        frame.pad_length = pad_length
    if depends_on is not None:
        frame.flags.add("PRIORITY")
        frame.depends_on, frame.stream_weight = depends_on, 15
    return frame.serialize()


def continuation(stream_id: int, block: bytes, *flags: str) -> bytes:
    return _flagged(ContinuationFrame(stream_id, data=block), flags).serialize()


def push_promise(stream_id: int, promised: int, block: bytes) -> bytes:
    return _flagged(PushPromiseFrame(stream_id, promised_stream_id=promised, data=block), ("END_HEADERS",)).serialize()


def data(stream_id: int, payload: bytes, *flags: str, pad_length: int = 0) -> bytes:
    frame = _flagged(DataFrame(stream_id, data=payload), flags)
    if pad_length:
        frame.flags.add("PADDED")
        frame.pad_length = pad_length
    return frame.serialize()


def settings(ack: bool = False, **values: int) -> bytes:
    frame = SettingsFrame(0, settings={getattr(SettingsFrame, name.upper()): value for name, value in values.items()})
    if ack:
        frame.flags.add("ACK")
    return frame.serialize()


def rst_stream(stream_id: int, error_code: int = 8) -> bytes:
    return RstStreamFrame(stream_id, error_code=error_code).serialize()


def goaway(last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> bytes:
    return GoAwayFrame(0, last_stream_id=last_stream_id, error_code=error_code, additional_data=debug).serialize()


def ping(payload: bytes = b"12345678") -> bytes:
    return PingFrame(0, opaque_data=payload).serialize()


def priority(stream_id: int, depends_on: int) -> bytes:
    return PriorityFrame(stream_id, depends_on=depends_on, stream_weight=15).serialize()


def window_update(stream_id: int, increment: int) -> bytes:
    return WindowUpdateFrame(stream_id, window_increment=increment).serialize()


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes, length: int | None = None) -> bytes:
    """A frame header with any fields (a length that lies, a type on the wrong stream), then payload."""
    length = len(payload) if length is None else length
    return length.to_bytes(3, "big") + bytes((frame_type, flags)) + stream_id.to_bytes(4, "big") + payload


def exchange(encoder: hpack.Encoder, server_encoder: hpack.Encoder, stream_id: int, body: bytes = b"{}") -> tuple[bytes, bytes]:
    """(client bytes, server bytes) of one GET and its 200 with `body`."""
    return (headers(stream_id, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM"),
            headers(stream_id, server_encoder.encode(RESPONSE), "END_HEADERS") + data(stream_id, body, "END_STREAM"))


def client_start() -> bytes:
    return CLIENT_PREFACE + settings()
