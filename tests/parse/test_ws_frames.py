"""Tests for inspector.parse.ws_frames: masking and close codes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.parse.ws_frames import CloseCode, close_code_problem, unmask


def xor_byte_by_byte(data: bytes, key: bytes, phase: int) -> bytes:
    return bytes(byte ^ key[(index + phase) % 4] for index, byte in enumerate(data))


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1023, 1024, 1025, 1026, 1027, 1028, 70_001])
@pytest.mark.parametrize("phase", [0, 1, 2, 3])
def test_unmask_at_every_size_and_key_phase(size, phase):
    # Sizes on both sides of the switch from big-integer to numpy XOR, with
    # every remainder of 4.
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    key = b"\x37\xfa\x21\x3d"
    assert unmask(data, key, phase) == xor_byte_by_byte(data, key, phase)
    assert unmask(memoryview(data), key, phase) == xor_byte_by_byte(data, key, phase)
    assert unmask(bytearray(data), key, phase) == xor_byte_by_byte(data, key, phase)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), key=st.binary(min_size=4, max_size=4), phase=st.integers(0, 3))
def test_unmask_undoes_masking(data, key, phase):
    masked = unmask(data, key, phase)
    assert isinstance(masked, bytes)
    assert unmask(masked, key, phase) == data
    assert masked == xor_byte_by_byte(data, key, phase)


@pytest.mark.parametrize(("code", "problem"), [
    (999, "codes below 1000 are unused"),
    (1004, "reserved"),
    (1005, "reserved for local use, never sent"),
    (1006, "reserved for local use, never sent"),
    (1015, "reserved for local use, never sent"),
    (1016, "reserved for future protocol use"),
    (2999, "reserved for future protocol use"),
    (5000, "outside the ranges defined by RFC 6455 7.4.2"),
])
def test_close_codes_that_may_not_be_sent(code, problem):
    assert close_code_problem(code) == problem


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 3999, 4000, 4999])
def test_close_codes_that_may_be_sent(code):
    assert close_code_problem(code) is None


def test_every_defined_close_code_that_is_not_local_only_may_be_sent():
    local_only = {CloseCode.NO_STATUS_RECEIVED, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE}
    for code in CloseCode:
        assert (close_code_problem(code) is None) == (code not in local_only)
