"""TLS decryption with logged secrets (parse/tls_decrypt.py, through parse/tls.py's record parser):
real records written by OpenSSL (Python's ssl, in memory, its client logging its secrets), the
RFC 8448 key schedule, and hostile input: wrong key, missing key, unsupported suite, records
cut short."""

from __future__ import annotations

import ssl

import hpack
import pytest
from cryptography.hazmat.primitives import hashes
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.events import Direction, Finding, Http2Frame, HttpRequest, HttpResponse, TlsRecord
from inspector.parse.connection import Kind
from inspector.parse.http2 import CLIENT_PREFACE
from inspector.parse.keylog import KeyLog, Label
from inspector.parse.tls import TlsRecordParser, TlsSession
from inspector.parse.tls_decrypt import hkdf_expand_label, tls12_prf
from tests import h2_factories as h2
from tests.parse.test_connection import Conversation
from tests.tls_factories import conversation

REQUEST = b"GET /items HTTP/1.1\r\nHost: inspector.test\r\n\r\n"
BIG = bytes(range(256)) * 40  # 10,240 bytes: one record
# (TLS version, the client's OpenSSL cipher string): what Python's ssl can be made to choose.
SESSIONS = {
    "tls13-aes256gcm": (ssl.TLSVersion.TLSv1_3, None),
    "tls12-aes128gcm": (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    "tls12-aes256gcm": (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384"),
    "tls12-chacha20": (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305"),
}


class Plaintext:
    """A PlaintextReceiver keeping what it was given."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.gaps: list[int] = []

    def receive_plaintext(self, data: bytes, first_ts_ns: int, last_ts_ns: int) -> None:
        assert first_ts_ns <= last_ts_ns
        self.data += data

    def receive_plaintext_gap(self, length: int, ts_ns: int) -> None:
        self.gaps.append(length)


def talk(tmp_path, name: str, messages=(REQUEST, BIG)):
    version, ciphers = SESSIONS[name]
    keylog_path = tmp_path / f"{name}.keys"
    keylog_path.unlink(missing_ok=True)
    conversation_ = conversation(tmp_path, version, alpn=("http/1.1",), messages=messages, keylog=keylog_path, ciphers=ciphers)
    return conversation_, KeyLog.from_text(keylog_path.read_bytes())


def parse(order, keylog, chunk: int | None = None):
    """Both directions' events and plaintexts, the bytes fed in sending order (`chunk` bytes at a time)."""
    session = TlsSession(keylog)
    plaintexts = (Plaintext(), Plaintext())
    parsers = [TlsRecordParser(Direction(side), session, plaintext=plaintexts[side]) for side in (0, 1)]
    for side, data in order:
        step = chunk or len(data) or 1
        for start in range(0, len(data), step):
            parsers[side].receive_data(data[start:start + step], start)
    for parser in parsers:
        parser.receive_eof(0)
    return [parser.take_events() for parser in parsers], plaintexts, session


def record_starts(stream: bytes):
    """(offset, content type) of each record of a direction's bytes."""
    found, pos = [], 0
    while pos + 5 <= len(stream):
        found.append((pos, stream[pos]))
        pos += 5 + int.from_bytes(stream[pos + 3:pos + 5], "big")
    return found


def records(events):
    return [event for event in events if isinstance(event, TlsRecord)]


def findings(events):
    return [(event.rule, event.detail) for event in events if isinstance(event, Finding)]


@pytest.mark.parametrize("name", SESSIONS)
def test_both_directions_decrypt_to_what_was_sent(tmp_path, name):
    conversation_, keylog = talk(tmp_path, name)
    (client, server), plaintexts, session = parse(conversation_.order, keylog)
    assert findings(client + server) == []
    # The server echoes what the client sent: both directions' plaintext is the messages.
    assert bytes(plaintexts[0].data) == bytes(plaintexts[1].data) == REQUEST + BIG
    for events in (client, server):
        application = [r for r in records(events) if r.decrypted and not r.handshake]
        assert [r.plaintext_bytes for r in application] == [len(REQUEST), len(BIG)]
        assert [r.plaintext_offset for r in application] == [0, len(REQUEST)]
        for record in application:
            assert record.length == record.plaintext_bytes + record.aead_overhead_bytes
        # Every encrypted record was opened: the handshake's, the data, the close_notify alert.
        assert all(r.decrypted for r in records(events) if r.encrypted)
        assert records(events)[-1].messages == "alert warning close_notify" and records(events)[-1].handshake
    tls13 = name.startswith("tls13")
    overhead = {"tls13-aes256gcm": 17, "tls12-aes128gcm": 24, "tls12-aes256gcm": 24, "tls12-chacha20": 16}[name]
    assert {r.aead_overhead_bytes for r in records(client + server) if r.decrypted} == {overhead}
    assert {r.prefix_bytes for r in records(client + server) if r.decrypted} == {8 if "gcm" in name and not tls13 else 0}
    assert session.alpn == "http/1.1"
    if tls13:
        # The encrypted flight is read: its messages are named, ALPN from EncryptedExtensions.
        messages = [r.messages for r in records(server) if r.decrypted and r.handshake]
        assert messages[:4] == ["EncryptedExtensions", "Certificate", "CertificateVerify", "Finished"]
        assert "NewSessionTicket" in messages[4]


def test_any_segmentation_gives_the_same_plaintext(tmp_path):
    conversation_, keylog = talk(tmp_path, "tls13-aes256gcm")
    whole = parse(conversation_.order, keylog)
    for chunk in (1, 7, 1000):
        events, plaintexts, _session = parse(conversation_.order, keylog, chunk)
        assert [bytes(p.data) for p in plaintexts] == [bytes(p.data) for p in whole[1]]
        assert [(r.offset, r.length, r.decrypted, r.plaintext_bytes) for r in records(events[0] + events[1])] == \
               [(r.offset, r.length, r.decrypted, r.plaintext_bytes) for r in records(whole[0][0] + whole[0][1])]


def test_missing_key_is_one_finding_and_records_stay_encrypted(tmp_path):
    conversation_, keylog = talk(tmp_path, "tls13-aes256gcm")
    other = KeyLog.from_text(f"{Label.CLIENT_RANDOM} {'00' * 32} {'11' * 48}\n")
    (client, server), plaintexts, _session = parse(conversation_.order, other)
    (finding,) = findings(client + server)
    assert finding[0] == "tls-no-key" and "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in finding[1]
    assert not any(r.decrypted for r in records(client + server)) and not plaintexts[0].data
    # No key log at all: nothing asked, nothing reported.
    (client, server), _plaintexts, _session = parse(conversation_.order, None)
    assert findings(client + server) == []


@pytest.mark.parametrize("name", ["tls13-aes256gcm", "tls12-aes128gcm"])
def test_wrong_key_fails_once_per_direction_and_the_rest_stays_encrypted(tmp_path, name):
    conversation_, keylog = talk(tmp_path, name)
    wrong = KeyLog()
    for client_random, by_label in keylog.secrets.items():
        wrong.secrets[client_random] = {label: bytes(b ^ 1 for b in secret) for label, secret in by_label.items()}
    (client, server), plaintexts, _session = parse(conversation_.order, wrong)
    rules = [rule for rule, _detail in findings(client + server)]
    assert rules == ["tls-decrypt-failed", "tls-decrypt-failed"]
    assert not any(r.decrypted for r in records(client + server)) and not plaintexts[0].data and not plaintexts[1].data


def test_cbc_suite_is_unsupported(tmp_path):
    keylog_path = tmp_path / "cbc.keys"
    conversation_ = conversation(tmp_path, ssl.TLSVersion.TLSv1_2, alpn=("http/1.1",), keylog=keylog_path,
                                 ciphers="ECDHE-ECDSA-AES128-SHA256")
    (client, server), _plaintexts, _session = parse(conversation_.order, KeyLog.from_text(keylog_path.read_bytes()))
    (finding,) = findings(client + server)
    assert finding[0] == "tls-unsupported-cipher" and "0xC023" in finding[1]


def test_a_record_cut_by_a_gap_is_lost_but_the_next_ones_open(tmp_path):
    """The sequence number of a record not captured whole is still counted."""
    conversation_, keylog = talk(tmp_path, "tls12-aes128gcm", messages=(REQUEST, BIG, REQUEST))
    session = TlsSession(keylog)
    plaintext = Plaintext()
    parsers = [TlsRecordParser(Direction(side), session, plaintext=plaintext if side == 0 else None) for side in (0, 1)]
    client_stream = b"".join(data for side, data in conversation_.order if side == 0)
    big = [start for start, content_type in record_starts(client_stream) if content_type == 23][1]  # BIG's record
    lost = range(big + 100, big + 150)
    position = 0
    for side, data in conversation_.order:
        if side == 1:
            parsers[1].receive_data(data, 0)
            continue
        end = position + len(data)
        if position < lost.start < end:  # the capture missed 50 bytes of BIG's record
            parsers[0].receive_data(data[:lost.start - position], 0)
            parsers[0].receive_gap(len(lost), 0)
            parsers[0].receive_data(data[lost.stop - position:], 0)
        else:
            parsers[0].receive_data(data, 0)
        position = end
    parsers[0].receive_eof(0)
    events = parsers[0].take_events()
    assert findings(events) == []
    assert bytes(plaintext.data) == REQUEST + REQUEST and plaintext.gaps == [len(BIG)]
    lost = [r for r in records(events) if r.missing_bytes]
    assert len(lost) == 1 and not lost[0].decrypted and lost[0].length == len(BIG) + 24


@pytest.fixture(scope="module")
def tls13_talk(tmp_path_factory):
    return talk(tmp_path_factory.mktemp("hostile"), "tls13-aes256gcm")


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=4000), garbage=st.binary(max_size=64), flip=st.integers(min_value=0, max_value=4000))
def test_hostile_bytes_give_findings_never_an_exception(tls13_talk, cut, garbage, flip):
    """The client's bytes with a bit flipped, cut short and followed by garbage: the records
    that fail authentication and the framing lost are findings."""
    conversation_, keylog = tls13_talk
    client = bytearray(b"".join(data for side, data in conversation_.order if side == 0))
    if flip < len(client):
        client[flip] ^= 0x40
    order, position = [], 0
    for side, data in conversation_.order:  # the sending order, the client's bytes taken from the damaged copy
        if side == 0:
            data = bytes(client[position:min(position + len(data), cut)])
            position += len(data)
        order.append((side, data))
    order.append((0, garbage))
    events, _plaintexts, _session = parse(order, keylog)
    assert all(rule.startswith("tls-") for rule, _detail in findings(events[0] + events[1]))


def test_key_schedule_of_rfc_8448():
    """RFC 8448 section 3 (simple 1-RTT handshake): the server's handshake traffic key and IV."""
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label(secret, b"key", b"", 16, hashes.SHA256).hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label(secret, b"iv", b"", 12, hashes.SHA256).hex() == "5d313eb2671276ee13000b30"


def test_tls12_prf_is_p_sha256():
    """P_SHA256 as RFC 5246 section 5 writes it, computed with the standard library's hmac."""
    import hashlib
    import hmac as std_hmac

    secret, seed, label = b"secret" * 8, bytes(range(64)), b"key expansion"
    a, out = label + seed, b""
    while len(out) < 100:
        a = std_hmac.new(secret, a, hashlib.sha256).digest()
        out += std_hmac.new(secret, a + label + seed, hashlib.sha256).digest()
    assert tls12_prf(secret, label, seed, 100, hashes.SHA256) == out[:100]


# --- HTTP/2 inside TLS, in a TcpConnection ---------------------------------------------------------


@pytest.mark.parametrize("alpn", [("h2",), ()], ids=["alpn-h2", "no-alpn"])
@pytest.mark.parametrize("sizes", [None, [1], [3, 700]], ids=["whole", "bytes", "mixed"])
def test_decrypted_http2_goes_to_http2_parsers_by_alpn_or_by_the_preface(tmp_path, alpn, sizes):
    """ALPN h2 hands both sides' plaintext to HTTP/2 parsers; without ALPN the client's preface does."""
    client_encoder, server_encoder = hpack.Encoder(), hpack.Encoder()
    first = h2.exchange(client_encoder, server_encoder, 1, body=b'{"a": 1}')
    second = h2.exchange(client_encoder, server_encoder, 3, body=BIG)
    keylog_path = tmp_path / "h2.keys"
    talk = conversation(tmp_path, alpn=alpn, server_alpn=alpn, keylog=keylog_path,
                        messages=(h2.client_start() + first[0], second[0]),
                        replies=(h2.settings() + h2.settings(ack=True) + first[1], second[1]))
    assert talk.alpn == (alpn[0] if alpn else None)
    connection = Conversation(keylog=KeyLog.from_text(keylog_path.read_bytes()))
    for side, data in talk.order:
        connection.send(side, data, sizes)
    conn = connection.close()
    assert conn.kind == Kind.HTTP2 and conn.tls.alpn == (alpn[0] if alpn else "")
    assert [e.rule for e in conn.events if type(e) is Finding] == []
    messages = [(type(e).__name__, e.stream_id, e.body_bytes) for e in conn.events if type(e) in (HttpRequest, HttpResponse)]
    assert sorted(messages) == [("HttpRequest", 1, 0), ("HttpRequest", 3, 0), ("HttpResponse", 1, 8), ("HttpResponse", 3, len(BIG))]
    frames = [e for e in conn.events if type(e) is Http2Frame]
    plaintext = sum(r.plaintext_bytes for r in conn.events if type(r) is TlsRecord and r.decrypted and not r.handshake)
    assert plaintext == len(CLIENT_PREFACE) + sum(frame.wire_bytes for frame in frames)
