"""The TLS record parser on real TLS bytes (Python's ssl, in memory) and on hostile ones."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.events import Direction, Finding, TlsClientHello, TlsRecord, TlsServerHello
from inspector.parse.tls import (
    MAX_HELLO_BYTES,
    MAX_RECORD_LENGTH,
    ContentType,
    HandshakeType,
    TlsRecordParser,
    TlsSession,
    cipher_suite_name,
    looks_like_tls_records,
    starts_with_client_hello,
    version_name,
)
from inspector.parse.connection import Kind
from tests.parse.test_connection import CLIENT, Conversation
from tests.tls_factories import SERVER_NAME, conversation, handshake, record


@pytest.fixture(scope="module")
def talks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    return {version: conversation(folder, version) for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)}


def parse(order, cut=None):
    """Both sides' bytes, in the order sent (each write cut in pieces of `cut` bytes): the events and parsers."""
    session, events = TlsSession(), []
    parsers = [TlsRecordParser(Direction.CLIENT, session, events=events), TlsRecordParser(Direction.SERVER, session, events=events)]
    for side, data in order:
        step = cut or len(data)
        for start in range(0, len(data), step):
            parsers[side].receive_data(data[start:start + step], 0)
    for parser in parsers:
        parser.receive_eof(0)
    return events, parsers


def records(events, direction=None):
    return [e for e in events if type(e) is TlsRecord and (direction is None or e.direction == direction)]


def check_accounting(events, parsers, fed):
    """Every byte fed is in exactly one record or unparsed, per direction."""
    for direction, parser in zip(Direction, parsers):
        total = sum(r.header_bytes + r.length for r in records(events, direction)) + parser.unparsed_bytes
        assert total == fed[direction], direction


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["1.2", "1.3"])
def test_a_real_conversation_whole_and_byte_by_byte(talks, version):
    talk = talks[version]
    whole, parsers = parse(talk.order)
    assert not [e for e in whole if type(e) is Finding]
    check_accounting(whole, parsers, {Direction.CLIENT: len(talk.client_bytes), Direction.SERVER: len(talk.server_bytes)})
    for cut in (1, 7):
        events, _ = parse(talk.order, cut)
        assert records(events) == records(whole)
    hello = next(e for e in whole if type(e) is TlsClientHello)
    assert hello.server_name == SERVER_NAME and hello.alpn == ("h2", "http/1.1")
    chosen = next(e for e in whole if type(e) is TlsServerHello)
    assert cipher_suite_name(chosen.cipher_suite) == talk.cipher.replace("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
    assert version_name(chosen.version) == talk.version.replace("TLSv", "TLS ")
    first = records(whole)[0]
    assert (first.content_type, first.messages, first.encrypted) == (ContentType.HANDSHAKE, "ClientHello", False)
    if version is ssl.TLSVersion.TLSv1_2:
        assert chosen.alpn == "http/1.1"
        assert [r.messages for r in records(whole, Direction.SERVER)][:4] == ["ServerHello", "Certificate", "ServerKeyExchange", "ServerHelloDone"]
    else:
        assert chosen.alpn == "" and hello.supported_versions == (0x0304,)
        # The server's encrypted flight and the client's Finished count as handshake; the
        # echoed message and the rest as encrypted data.
        server = records(whole, Direction.SERVER)
        assert [r.handshake for r in server[:3]] == [True, True, True] and not server[-1].handshake
        client = records(whole, Direction.CLIENT)
        assert [(r.content_type, r.handshake) for r in client[:4]] == [(22, True), (20, True), (23, True), (23, False)]


def test_gap_inside_a_record_keeps_sync_outside_loses_it():
    data = record(23, b"a" * 100) + record(23, b"b" * 50)
    parser = TlsRecordParser(Direction.SERVER)
    parser.receive_data(data[:5 + 10], 1)
    parser.receive_gap(80, 2)
    parser.receive_data(data[5 + 90:], 3)
    events = parser.take_events()
    assert [(r.length, r.missing_bytes) for r in events] == [(100, 80), (50, 0)]
    parser.receive_gap(3, 4)  # at a record boundary: where the next one starts is unknown
    parser.receive_data(record(23, b"c"), 5)
    parser.receive_eof(6)
    events = parser.take_events()
    assert [type(e) for e in events] == [Finding] and events[0].rule == "tls-lost-sync"
    assert parser.unparsed_bytes == 3 + 6


def test_a_gap_before_the_first_record_is_a_missed_start():
    parser = TlsRecordParser(Direction.SERVER)
    parser.receive_gap(100, 1)
    parser.receive_data(record(23, b"x" * 10), 2)
    assert [e.length for e in parser.take_events()] == [10] and parser.unparsed_bytes == 100


@pytest.mark.parametrize("header, problem", [
    (bytes([25, 3, 3, 0, 5]), "content type 25"),
    (bytes([23, 2, 0, 0, 5]), "version 0x0200"),
    (bytes([23, 3, 3, 0xFF, 0xFF]), f"length 65535 over {MAX_RECORD_LENGTH}"),
])
def test_a_bad_record_header_loses_sync(header, problem):
    parser = TlsRecordParser(Direction.CLIENT)
    parser.receive_data(record(22, handshake(HandshakeType.FINISHED, b"f" * 12)) + header + b"\0" * 1000, 1)
    events = parser.take_events()
    assert [type(e) for e in events] == [TlsRecord, Finding]
    assert events[1].rule == "tls-lost-sync" and problem in events[1].detail
    assert parser.unparsed_bytes == 1005


def test_handshake_messages_split_across_records_and_a_huge_one():
    body = bytes.fromhex("0303") + b"r" * 32 + b"\0" + b"\x00\x02\x13\x01" + b"\x01\x00"
    message = handshake(HandshakeType.CLIENT_HELLO, body)
    huge = bytes([HandshakeType.CERTIFICATE]) + ((1 << 24) - 1).to_bytes(3, "big")  # claims 16 MiB
    huge_hello = bytes([HandshakeType.CLIENT_HELLO]) + (MAX_HELLO_BYTES + 1).to_bytes(3, "big")
    stream = record(22, message[:3]) + record(22, message[3:20]) + record(22, message[20:] + huge) + record(22, b"z" * 1000)
    parser = TlsRecordParser(Direction.CLIENT)
    parser.receive_data(stream, 1)
    events = parser.take_events()
    hello = next(e for e in events if type(e) is TlsClientHello)
    assert hello.cipher_suites == (0x1301,) and hello.server_name == "" and hello.alpn == ()
    assert [r.messages for r in records(events)] == ["", "", "ClientHello, Certificate", ""]
    other = TlsRecordParser(Direction.CLIENT)
    other.receive_data(record(22, huge_hello + b"x" * 100), 1)
    findings = [e for e in other.take_events() if type(e) is Finding]
    assert [f.rule for f in findings] == ["tls-malformed-handshake"]


def test_malformed_hellos_are_findings():
    for body in (b"", b"\x03\x03", bytes.fromhex("0303") + b"r" * 32 + b"\x20", bytes.fromhex("0303") + b"r" * 32 + b"\0\xff\xff"):
        for message_type in (HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO):
            parser = TlsRecordParser(Direction.CLIENT)
            parser.receive_data(record(22, handshake(message_type, body)), 1)
            events = parser.take_events()
            assert [type(e) for e in events] == [Finding, TlsRecord]
            assert events[0].rule == "tls-malformed-handshake"


def test_alerts_in_clear_and_encrypted():
    parser = TlsRecordParser(Direction.SERVER)
    parser.receive_data(record(21, b"\x02\x28") + record(20, b"\x01") + record(21, b"e" * 26), 1)
    alert, ccs, encrypted = parser.take_events()
    assert alert.messages == "alert fatal handshake_failure" and not alert.encrypted
    assert ccs.content_type == 20 and encrypted.encrypted and encrypted.messages == ""


def test_detection():
    hello = record(22, handshake(HandshakeType.CLIENT_HELLO, b"x" * 40), version=0x0301)
    assert starts_with_client_hello(hello) is True
    assert starts_with_client_hello(hello[:2]) is None and starts_with_client_hello(b"G") is False
    assert starts_with_client_hello(b"GET / HTTP/1.1\r\n") is False
    assert starts_with_client_hello(record(22, handshake(HandshakeType.SERVER_HELLO, b"x"))) is False
    assert starts_with_client_hello(bytes([22, 3, 9])) is False
    assert looks_like_tls_records(record(23, b"a" * 10) + record(23, b"b" * 100)[:20])
    assert not looks_like_tls_records(record(23, b"a" * 10)[:12])  # no whole record
    assert not looks_like_tls_records(b"\x81\x05hello")  # a WebSocket frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=64), st.integers(0, 40_000)), max_size=20), st.booleans())
def test_hostile_input_never_raises_and_every_byte_is_counted(pieces, hello_first):
    """Garbage, gaps and bogus lengths: events or findings, and exact accounting."""
    parser = TlsRecordParser(Direction.CLIENT)
    fed = 0
    if hello_first:
        start = record(22, handshake(HandshakeType.CLIENT_HELLO, b"\x03\x03"), length=16000)[:9]
        parser.receive_data(start, 0)
        fed += len(start)
    for piece in pieces:
        if isinstance(piece, int):
            parser.receive_gap(piece, 1)
            fed += piece
        else:
            parser.receive_data(piece, 1)
            fed += len(piece)
    parser.receive_eof(2)
    events = parser.take_events()
    assert sum(r.header_bytes + r.length for r in records(events)) + parser.unparsed_bytes == fed


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=30), st.binary(min_size=1, max_size=2000))
def test_any_segmentation_gives_the_same_records(cuts, payload):
    body = bytes.fromhex("0303") + b"r" * 32 + b"\0" + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
    stream = (record(22, handshake(HandshakeType.CLIENT_HELLO, body)) + record(20, b"\x01")
              + b"".join(record(23, payload[i:i + 700]) for i in range(0, len(payload), 700)))
    expected, _ = parse([(0, stream)])
    parser = TlsRecordParser(Direction.CLIENT, events=[])
    pos = 0
    for cut in cuts * (len(stream) // sum(cuts) + 1):
        if pos >= len(stream):
            break
        parser.receive_data(stream[pos:pos + cut], 0)
        pos += cut
    parser.receive_eof(0)
    assert parser._events == expected


# --- detection in a TcpConnection -----------------------------------------------------------


def _feed(talk, conversation, sizes=None, skip_client_hello=False):
    for side, data in talk.order:
        if skip_client_hello and side == CLIENT and data is talk.order[0][1]:
            conversation.skip(side, len(data))
            continue
        conversation.send(side, data, sizes)
    return conversation.close()


@pytest.mark.parametrize("sizes", [None, [1], [3, 700]], ids=["whole", "bytes", "mixed"])
def test_a_connection_starting_with_a_client_hello_is_tls_however_segmented(talks, sizes):
    talk = talks[ssl.TLSVersion.TLSv1_3]
    conn = _feed(talk, Conversation(syn=False), sizes)
    assert conn.kind == Kind.TLS and conn.client_side == CLIENT
    tls_records = records(conn.events)
    assert sum(r.wire_bytes for r in tls_records) == len(talk.client_bytes) + len(talk.server_bytes)
    assert conn.tls.server_hello.version == 0x0304 and conn.tls.client_hello.server_name == SERVER_NAME


def test_a_capture_that_missed_the_client_hello_is_still_tls(talks):
    """Mid-stream: the server's first bytes are a ServerHello, so it is the server."""
    talk = talks[ssl.TLSVersion.TLSv1_2]
    conn = _feed(talk, Conversation(syn=False), skip_client_hello=True)
    assert conn.kind == Kind.TLS and conn.client_side == CLIENT
    assert not [e for e in conn.events if type(e) is Finding and e.rule != "tcp-client-guessed"]
    assert conn.tls.server_hello is not None and conn.tls.client_hello is None
