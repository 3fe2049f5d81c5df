"""WebSocket frame vocabulary (RFC 6455 sections 5 and 7.4): opcodes, header
layout, close codes and masking.

Pure constants and functions; the parser that uses them is
inspector.parse.websocket.
"""

from __future__ import annotations

import enum

import numpy


class Opcode(enum.IntEnum):
    """RFC 6455 section 5.2 frame opcodes; 3-7 and 0xB-0xF are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """RFC 6455 section 7.4.1 status codes."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved without a meaning.
    NO_STATUS_RECEIVED = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    TLS_HANDSHAKE = 1015


# Plain ints for the hot path: comparing against IntEnum members costs an
# attribute lookup each time.
CONTINUATION = int(Opcode.CONTINUATION)
TEXT = int(Opcode.TEXT)
BINARY = int(Opcode.BINARY)
CLOSE = int(Opcode.CLOSE)
KNOWN_CONTROL_OPCODES = frozenset({int(Opcode.CLOSE), int(Opcode.PING), int(Opcode.PONG)})

# RFC 6455 section 5.2: the first header byte.
FIN_BIT = 0x80
RSV1_BIT = 0x40
RSV2_BIT = 0x20
RSV3_BIT = 0x10
OPCODE_BITS = 0x0F
# Opcodes from 0x8 up are control frames.
CONTROL_BIT = 0x08

# The second header byte.
MASK_BIT = 0x80
LENGTH_BITS = 0x7F
# 7-bit length values announcing a 16-bit and a 64-bit extended length.
LENGTH_16 = 126
LENGTH_64 = 127

# RFC 6455 section 5.5: control frame payloads are at most 125 bytes.
MAX_CONTROL_PAYLOAD = 125

# 2 base bytes + 8 extended length bytes + 4 masking key bytes.
MAX_HEADER_BYTES = 14

# RFC 6455 section 7.4.1: these codes exist for APIs to report a condition
# and must never be sent in a Close frame.
LOCAL_ONLY_CLOSE_CODES = frozenset({
    int(CloseCode.NO_STATUS_RECEIVED), int(CloseCode.ABNORMAL_CLOSURE), int(CloseCode.TLS_HANDSHAKE),
})
# 1004 is in the table of section 7.4.1 as "Reserved", with no meaning yet.
RESERVED_CLOSE_CODE = 1004

# RFC 6455 section 7.4.2 ranges.  Codes of 1000-2999 without an entry in
# 7.4.1 are reserved for future revisions of the protocol; 3000-4999 belong
# to libraries, frameworks and applications.
MIN_CLOSE_CODE = int(CloseCode.NORMAL_CLOSURE)
MAX_PROTOCOL_CLOSE_CODE = 2999
MAX_CLOSE_CODE = 4999
# Above the highest code 7.4.1 defines, the rest of the protocol range.
_FIRST_UNASSIGNED_PROTOCOL_CODE = max(CloseCode) + 1


# Up to about this size a big-integer XOR is quicker than numpy's call
# overhead; above it numpy's XOR of 4-byte words wins (at 8 KB 4.7 against
# 15-22 us, at 64 KiB 10 against 130-220 us, measured on the project machine).
_BIG_INT_UNMASK_LIMIT = 1024
# Read once: `int.from_bytes` is a classmethod, bound anew at each read, which cost as
# much as the conversion of a 40-byte payload (unmask of one: 1.5 -> 0.9 us).
_from_bytes = int.from_bytes


def close_code_problem(code: int) -> str | None:
    """Why `code` may not appear in a Close frame (RFC 6455 7.4), or None if it may."""
    if code < MIN_CLOSE_CODE:
        return "codes below 1000 are unused"
    if code in LOCAL_ONLY_CLOSE_CODES:
        return "reserved for local use, never sent"
    if code == RESERVED_CLOSE_CODE:
        return "reserved"
    if _FIRST_UNASSIGNED_PROTOCOL_CODE <= code <= MAX_PROTOCOL_CLOSE_CODE:
        return "reserved for future protocol use"
    if code > MAX_CLOSE_CODE:
        return "outside the ranges defined by RFC 6455 7.4.2"
    return None


def unmask(data: bytes | bytearray | memoryview, key: bytes, phase: int = 0) -> bytes:
    """XOR `data` with the masking key, starting at key byte `phase` (RFC 6455 5.3)."""
    size = len(data)
    if not size:
        return b""
    if phase:
        key = key[phase:] + key[:phase]
    if size <= _BIG_INT_UNMASK_LIMIT:
        # One big-integer XOR; little-endian so the repeated key needs no
        # cutting to size before the XOR, only the result after it.
        words = (size + 3) // 4
        return (_from_bytes(data, "little") ^ _from_bytes(key * words, "little")).to_bytes(
            words * 4, "little")[:size]
    unmasked = bytearray(data)
    whole = size // 4
    words = numpy.frombuffer(unmasked, dtype=numpy.uint32, count=whole)  # a writable view
    words ^= numpy.frombuffer(key, dtype=numpy.uint32)
    for index in range(whole * 4, size):
        unmasked[index] ^= key[index % 4]
    return bytes(unmasked)
