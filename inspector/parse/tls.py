"""TLS records of one direction, read without keys (RFC 8446, RFC 5246; sans-IO).

Hand a TlsRecordParser the bytes one side sent with `receive_data`, capture
holes with `receive_gap` and the end with `receive_eof`; it makes a TlsRecord
per record, and a TlsClientHello or TlsServerHello for each hello it reads in
clear, plus Findings.  The two directions of a connection share one TlsSession,
which says what the hellos negotiated, and which records are encrypted.

What is read: every record header (content type, version, length); handshake
messages while they are in clear (their types, and the contents of ClientHello
and ServerHello); ChangeCipherSpec; alerts in clear.  What is not: anything
encrypted (application data, TLS 1.3's handshake after the ServerHello, TLS 1.2's
Finished and later alerts): counted, never buffered.

TLS 1.3 encrypts the handshake after the ServerHello into records of content type
application_data (RFC 8446 section 5: "opaque_type" 23), so without keys they
are told from application data by their place: the server's records up to the
client's first encrypted record, and that record (the client's Finished), are
the handshake.  Client certificates in more than one record, early data sent
after the ServerHello, and NewSessionTicket messages after the handshake are
counted as application data by this rule.

Hostile input: a record header with an unknown content type, a version other
than 3.x, or a length over 2^14 + 2048 (RFC 5246 6.2.3, the largest
TLSCiphertext) loses sync, as does a gap outside a record's payload: the rest
of the direction is unparsed, with a `tls-lost-sync` finding.  A record's
payload is never held; a hello is held up to MAX_HELLO_BYTES (bigger ones are
skipped with a `tls-malformed-handshake` finding), other handshake messages
only counted.  A malformed hello is a finding too.

Byte accounting is exact, as in the WebSocket parser: every byte fed belongs
either to exactly one TlsRecord (its header_bytes + length, missing bytes
included) or to `unparsed_bytes`, which only ever come after the last record.
A record cut short by the end of the stream is not emitted: its bytes are unparsed.
"""

from __future__ import annotations

import enum

from inspector.errors import ParseError
from inspector.events import Direction, Finding, TlsClientHello, TlsRecord, TlsServerHello
from inspector.parse.keylog import KeyLog
from inspector.parse.pending import PendingEvents
from inspector.parse.tls_decrypt import DecryptError, DirectionDecrypter, NoKey, Opened, UnsupportedCipher, session_keys

__all__ = [
    "ContentType", "HandshakeType", "TlsRecordParser", "TlsSession", "cipher_suite_name", "starts_with_client_hello",
    "looks_like_tls_records", "version_name",
]

RECORD_HEADER_BYTES = 5
# RFC 5246 6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048 (RFC 8446 5.2: 2^14 + 256).
MAX_RECORD_LENGTH = (1 << 14) + 2048
# A ClientHello or ServerHello is held whole to be read; one bigger than this is skipped
# (a real one is under 2 KiB; post-quantum key shares make them a few KiB).
MAX_HELLO_BYTES = 64 * 1024
HANDSHAKE_HEADER_BYTES = 4
# Text read from a hello (SNI, ALPN names) is cut to this many bytes each.
MAX_NAME_BYTES = 255
# ALPN names and cipher suites kept per hello (a hostile one may list 30,000).
MAX_LISTED = 64


class ContentType(enum.IntEnum):
    """RFC 8446 section 5.1 (heartbeat: RFC 6520)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


class HandshakeType(enum.IntEnum):
    """RFC 8446 section 4 and RFC 5246 section 7.4."""

    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    HELLO_RETRY_REQUEST = 6
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_URL = 21
    CERTIFICATE_STATUS = 22
    KEY_UPDATE = 24
    MESSAGE_HASH = 254


class ExtensionType(enum.IntEnum):
    SERVER_NAME = 0  # RFC 6066 section 3
    APPLICATION_LAYER_PROTOCOL_NEGOTIATION = 16  # RFC 7301
    SUPPORTED_VERSIONS = 43  # RFC 8446 section 4.2.1


_CONTENT_TYPES = frozenset(ContentType)
_HANDSHAKE_NAMES = {t.value: "".join(word.capitalize() for word in t.name.split("_")) for t in HandshakeType}
_HANDSHAKE_NAMES[HandshakeType.CLIENT_HELLO] = "ClientHello"
_HANDSHAKE_NAMES[HandshakeType.SERVER_HELLO] = "ServerHello"

TLS_1_2 = 0x0303
TLS_1_3 = 0x0304
_VERSION_NAMES = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", TLS_1_2: "TLS 1.2", TLS_1_3: "TLS 1.3"}
# RFC 8446 4.1.3: the random of a HelloRetryRequest, SHA-256 of "HelloRetryRequest".
HELLO_RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

# RFC 8446 section 6: alert levels and descriptions.
_ALERT_LEVELS = {1: "warning", 2: "fatal"}
_ALERT_DESCRIPTIONS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed", 22: "record_overflow",
    30: "decompression_failure", 40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error", 51: "decrypt_error",
    60: "export_restriction", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 111: "certificate_unobtainable", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 114: "bad_certificate_hash_value", 115: "unknown_psk_identity",
    116: "certificate_required", 120: "no_application_protocol",
}

# IANA TLS Cipher Suites registry: the ones met in practice (others are shown as 0xNNNN).
CIPHER_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256", 0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV", 0x5600: "TLS_FALLBACK_SCSV",
}


def cipher_suite_name(suite: int) -> str:
    return CIPHER_SUITES.get(suite) or f"0x{suite:04X}"


def version_name(version: int) -> str:
    return _VERSION_NAMES.get(version) or f"0x{version:04X}"


def _is_grease(value: int) -> bool:
    """RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA, reserved to keep peers honest."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def _header_problem(content_type: int, major: int, minor: int, length: int) -> str:
    """Why a record header cannot be one ("" when it can)."""
    if content_type not in _CONTENT_TYPES:
        return f"content type {content_type}"
    if major != 3 or minor > 4:
        return f"version 0x{major:02X}{minor:02X}"
    if length > MAX_RECORD_LENGTH:
        return f"length {length} over {MAX_RECORD_LENGTH}"
    return ""


def starts_with_client_hello(data: bytes | bytearray) -> bool | None:
    """Whether `data`, a side's first bytes, starts with a handshake record carrying a
    ClientHello; None while fewer than 6 bytes tell nothing against it."""
    expected = (ContentType.HANDSHAKE, 3)
    for index, value in enumerate(expected):
        if index < len(data) and data[index] != value:
            return False
    if len(data) < 6:
        return None if len(data) < 3 or data[2] <= 4 else False
    length = (data[3] << 8) | data[4]
    return data[2] <= 4 and HANDSHAKE_HEADER_BYTES <= length <= MAX_RECORD_LENGTH and data[5] == HandshakeType.CLIENT_HELLO


def looks_like_tls_records(data: bytes | bytearray) -> bool:
    """Whether `data` (a side's first bytes) is a run of TLS records: every header sane and
    at least one record whole (the last may be cut where the evidence ends)."""
    pos = 0
    whole = 0
    n = len(data)
    while pos + RECORD_HEADER_BYTES <= n:
        length = (data[pos + 3] << 8) | data[pos + 4]
        if _header_problem(data[pos], data[pos + 1], data[pos + 2], length):
            return False
        pos += RECORD_HEADER_BYTES + length
        if pos <= n:
            whole += 1
    return whole > 0


class TlsSession:
    """What both directions of one TLS connection know: the hellos, and so which
    records are encrypted (the parsers of both sides share it); with a key log, the
    keys that open them."""

    __slots__ = ("client_hello", "server_hello", "client_finished", "keylog", "encrypted_alpn", "_keys", "_keys_made", "_problem")

    def __init__(self, keylog: KeyLog | None = None) -> None:
        self.client_hello: TlsClientHello | None = None
        self.server_hello: TlsServerHello | None = None
        # TLS 1.3: the client sent its first encrypted record (its Finished): the handshake is over.
        self.client_finished = False
        # Secrets to decrypt with (read when the first encrypted record comes: a capture's own
        # secrets may be added while it is read); None or empty: no decryption is tried.
        self.keylog = keylog
        self.encrypted_alpn = ""  # TLS 1.3: the protocol the decrypted EncryptedExtensions chose
        self._keys = None
        self._keys_made = False
        self._problem: tuple[str, str] | None = None

    @property
    def alpn(self) -> str:
        """The application protocol chosen (ALPN), "" when unknown or none."""
        hello = self.server_hello
        return (hello.alpn if hello is not None else "") or self.encrypted_alpn

    def decrypter(self, direction: Direction) -> DirectionDecrypter | None:
        """`direction`'s decrypter, None when its records cannot be decrypted (why: take_problem)."""
        if not self._keys_made:
            self._keys_made = True
            self._keys = self._make_keys()
        if self._keys is None:
            return None
        return self._keys.client if direction is Direction.CLIENT else self._keys.server

    def take_problem(self) -> tuple[str, str] | None:
        """Why the records are not decrypted, as (rule, detail), once per connection."""
        problem, self._problem = self._problem, None
        return problem

    def _make_keys(self):
        if not self.keylog:
            return None  # nothing asked for: no finding
        client, server = self.client_hello, self.server_hello
        if client is None or server is None or server.retry_request:
            self._problem = ("tls-no-key", "the ClientHello or ServerHello was not captured: their randoms find the keys")
            return None
        try:
            return session_keys(self.keylog, client.random, server.random, server.version, server.cipher_suite)
        except NoKey as error:
            self._problem = ("tls-no-key", str(error))
        except UnsupportedCipher as error:
            self._problem = ("tls-unsupported-cipher", str(error))
        return None

    @property
    def version(self) -> int | None:
        """The negotiated version (the ServerHello's), None before one is seen."""
        return None if self.server_hello is None else self.server_hello.version

    @property
    def tls13(self) -> bool:
        return self.version == TLS_1_3


class _Record:
    __slots__ = ("ts_ns", "last_ts_ns", "offset", "content_type", "version", "length", "done", "missing", "encrypted", "handshake", "alert",
                 "messages", "body", "opened")

    def __init__(self, ts_ns: int, offset: int, content_type: int, version: int, length: int, encrypted: bool, handshake: bool) -> None:
        self.ts_ns = ts_ns
        self.offset = offset
        self.content_type = content_type
        self.version = version
        self.length = length
        self.done = 0  # payload bytes fed, missing ones included
        self.missing = 0
        self.encrypted = encrypted
        self.handshake = handshake
        self.alert = bytearray() if content_type == ContentType.ALERT and not encrypted else None
        self.messages: list[str] = []
        self.last_ts_ns = ts_ns  # of the chunk that brought its last byte so far
        self.body: bytearray | None = None  # an encrypted payload held to be decrypted
        self.opened: Opened | None = None


class PlaintextReceiver:
    """Where a TlsRecordParser hands the decrypted application data of its direction, in order
    (TcpConnection passes the HTTP/WebSocket parser of that side).  Offsets are in the
    direction's plaintext, which starts at 0."""

    def receive_plaintext(self, data: bytes, first_ts_ns: int, last_ts_ns: int) -> None:
        """The plaintext of one record: its first byte came at first_ts_ns, its last at last_ts_ns."""

    def receive_plaintext_gap(self, length: int, ts_ns: int) -> None:
        """About `length` plaintext bytes were lost (a record not captured whole)."""


class TlsRecordParser(PendingEvents):
    """TLS records of one direction.  Events go to `events` when given (the caller reads
    them from there, as TcpConnection does), else `next_event()` / `take_events()` hand them out.
    With a session holding a key log, encrypted records are decrypted: each record's
    decrypted application data goes to `plaintext` (after the record's TlsRecord event)."""

    def __init__(self, direction: Direction, session: TlsSession | None = None, *, start_offset: int = 0,
                 events: list | None = None, plaintext: PlaintextReceiver | None = None) -> None:
        self._direction = direction
        self.session = session if session is not None else TlsSession()
        self._events: list = [] if events is None else events
        self._handed = 0
        self._offset = start_offset  # next byte not yet part of a record or unparsed
        self._header = bytearray()  # a record header split across chunks
        self._header_ts = 0
        self._record: _Record | None = None
        self._handshake = _HandshakeReader()
        self._ccs_sent = False
        self._unparsed = 0
        self._lost_sync = False
        self._started = False  # a record header was seen: a gap before that is only a missed start
        self._ended = False
        self._plaintext = plaintext
        self._plaintext_offset = 0  # where the next decrypted application data starts in the plaintext
        self._decrypter: DirectionDecrypter | None = None  # while this direction's records open
        self._decrypter_asked = False
        # Handshake messages decrypted (TLS 1.3's flight, post-handshake messages): their types
        # say when keys change; EncryptedExtensions is read for ALPN.
        self._secret_handshake = _HandshakeReader(wanted=(HandshakeType.ENCRYPTED_EXTENSIONS,))

    @property
    def unparsed_bytes(self) -> int:
        return self._unparsed

    @property
    def offset(self) -> int:
        return self._offset

    # --- input ---------------------------------------------------------------------

    def receive_data(self, data: bytes, ts_ns: int) -> None:
        if self._ended:
            raise ParseError(f"TLS {self._direction.label}: data after the end of the stream")
        end = len(data)
        pos = 0
        while pos < end:
            if self._lost_sync:
                self._skip(end - pos)
                return
            record = self._record
            if record is None:
                header = self._header
                if not header:
                    self._header_ts = ts_ns
                take = min(RECORD_HEADER_BYTES - len(header), end - pos)
                header += data[pos:pos + take]
                pos += take
                if len(header) == RECORD_HEADER_BYTES:
                    self._start_record()
                continue
            take = min(record.length - record.done, end - pos)
            self._payload(record, data, pos, pos + take, ts_ns)
            pos += take
            if record.done == record.length:
                self._finish_record(record)

    def receive_gap(self, length: int, ts_ns: int) -> None:
        """`length` bytes of the stream were never captured."""
        if self._ended:
            raise ParseError(f"TLS {self._direction.label}: gap after the end of the stream")
        if length < 0:
            raise ParseError(f"TLS {self._direction.label}: negative gap length {length}")
        record = self._record
        if record is not None and not self._lost_sync:
            # The record's length is known, so its end is: skip its missing bytes, stay in sync.
            taken = min(length, record.length - record.done)
            record.done += taken
            record.missing += taken
            self._offset += taken
            length -= taken
            if record.content_type == ContentType.HANDSHAKE and not record.encrypted:
                self._handshake.lose()
            if record.done == record.length:
                self._finish_record(record)
        if not length:
            return
        if self._lost_sync or not self._started and not self._header:
            self._skip(length)  # nothing to lose: already lost, or the capture missed the start
            return
        self._lose_sync(ts_ns, f"a capture gap of {length} bytes outside a record's payload")
        self._skip(length)

    def receive_eof(self, ts_ns: int) -> None:
        """End of this direction: FIN, RST or end of capture.  Repeating it is harmless."""
        if self._ended:
            return
        self._ended = True
        record = self._record
        if record is not None:
            # A record cut short is not emitted: its header and payload so far are unparsed.
            self._record = None
            self._unparsed += RECORD_HEADER_BYTES + record.done
        self._skip(len(self._header))
        self._header.clear()

    # --- records -----------------------------------------------------------------

    def _start_record(self) -> None:
        header = self._header
        content_type, major, minor = header[0], header[1], header[2]
        length = (header[3] << 8) | header[4]
        problem = _header_problem(content_type, major, minor, length)
        if problem:
            self._lose_sync(self._header_ts, f"not a TLS record header ({problem})")
            self._skip(RECORD_HEADER_BYTES)
            header.clear()
            return
        self._started = True
        header.clear()
        encrypted, handshake = self._classify(content_type)
        record = _Record(self._header_ts, self._offset, content_type, (major << 8) | minor, length, encrypted, handshake)
        if encrypted and self._decrypting(record.ts_ns):
            record.body = bytearray()
        self._offset += RECORD_HEADER_BYTES
        self._record = record
        if not length:
            self._finish_record(record)

    def _classify(self, content_type: int) -> tuple[bool, bool]:
        """(encrypted, counted as handshake) for a record of `content_type` starting now."""
        session = self.session
        if content_type == ContentType.APPLICATION_DATA:
            if not session.tls13 or session.client_finished:
                return True, False
            # TLS 1.3's encrypted handshake: the server's records until the client's
            # first encrypted one, which is its Finished.
            if self._direction is Direction.CLIENT:
                session.client_finished = True
            return True, True
        # TLS 1.3 sends no handshake, alert or heartbeat record under encryption with its
        # own content type (they are opaque_type 23); its ChangeCipherSpec is a dummy.
        encrypted = content_type != ContentType.CHANGE_CIPHER_SPEC and self._ccs_sent and not session.tls13
        return encrypted, True

    def _payload(self, record: _Record, data: bytes, start: int, end: int, ts_ns: int) -> None:
        record.done += end - start
        self._offset += end - start
        if record.encrypted:
            if record.body is not None:
                record.body += data[start:end]
                record.last_ts_ns = ts_ns
            return
        if record.content_type == ContentType.HANDSHAKE:
            self._take_handshake(record, data[start:end])
        elif record.alert is not None and len(record.alert) < 2:
            record.alert += data[start:min(end, start + 2 - len(record.alert))]

    def _take_handshake(self, record: _Record, chunk: bytes) -> None:
        for message_type, body in self._handshake.feed(chunk):
            record.messages.append(_HANDSHAKE_NAMES.get(message_type) or f"handshake type {message_type}")
            if body is _TOO_LONG:
                self._finding(record.ts_ns, "tls-malformed-handshake",
                              f"{record.messages[-1]} of more than {MAX_HELLO_BYTES} bytes: skipped, not read")
            elif body is not None:
                self._hello(record.ts_ns, message_type, body)

    def _hello(self, ts_ns: int, message_type: int, body: bytes) -> None:
        try:
            if message_type == HandshakeType.CLIENT_HELLO:
                hello = _client_hello(self._direction, ts_ns, body)
                if self.session.client_hello is None:
                    self.session.client_hello = hello
            else:
                hello = _server_hello(self._direction, ts_ns, body)
                self.session.server_hello = hello
        except _Malformed as error:
            name = _HANDSHAKE_NAMES[message_type]
            self._finding(ts_ns, "tls-malformed-handshake", f"{name} of {len(body)} bytes: {error}")
            return
        self._events.append(hello)

    def _finish_record(self, record: _Record) -> None:
        self._record = None
        content_type = record.content_type
        if record.body is not None:
            self._open(record)
        if content_type == ContentType.CHANGE_CIPHER_SPEC:
            self._ccs_sent = True
        elif record.alert is not None and len(record.alert) == 2:
            self._alert_message(record)
        opened = record.opened
        if opened is None:
            self._events.append(TlsRecord(self._direction, record.ts_ns, record.offset, content_type, record.version, record.length,
                                          RECORD_HEADER_BYTES, record.missing, record.encrypted, record.handshake,
                                          ", ".join(record.messages)))
            return
        application = opened.content_type == ContentType.APPLICATION_DATA
        plaintext_offset = self._plaintext_offset
        self._events.append(TlsRecord(self._direction, record.ts_ns, record.offset, content_type, record.version, record.length,
                                      RECORD_HEADER_BYTES, 0, True, not application, ", ".join(record.messages), True,
                                      plaintext_offset if application else -1, len(opened.plaintext) if application else 0,
                                      opened.prefix_bytes, opened.overhead_bytes))
        if application and opened.plaintext:
            self._plaintext_offset = plaintext_offset + len(opened.plaintext)
            if self._plaintext is not None:
                self._plaintext.receive_plaintext(opened.plaintext, record.ts_ns, record.last_ts_ns)

    def _alert_message(self, record: _Record) -> None:
        level, description = record.alert[:2]
        record.messages.append(f"alert {_ALERT_LEVELS.get(level, level)} {_ALERT_DESCRIPTIONS.get(description, description)}")

    # --- decryption -------------------------------------------------------------------

    def _decrypting(self, ts_ns: int) -> bool:
        """Whether this direction's encrypted records are decrypted (the first one asks for the keys)."""
        if not self._decrypter_asked:
            self._decrypter_asked = True
            self._decrypter = self.session.decrypter(self._direction)
            problem = self.session.take_problem()
            if problem is not None:
                self._finding(ts_ns, *problem)
        return self._decrypter is not None

    def _open(self, record: _Record) -> None:
        """Decrypt `record`; a record not captured whole cannot be: the next one still might (its
        sequence number is known), its plaintext is a gap.  One that fails ends decryption."""
        decrypter = self._decrypter
        body, record.body = record.body, None
        if decrypter is None:
            return  # decryption ended while the record came
        if record.missing:
            decrypter.skip()
            if record.content_type == ContentType.APPLICATION_DATA:
                # What its plaintext was at most (TLS 1.3: it may have been padding, or a handshake message).
                lost = max(0, record.length - decrypter.least_overhead)
                self._plaintext_offset += lost
                if self._plaintext is not None:
                    self._plaintext.receive_plaintext_gap(lost, record.last_ts_ns)
            return
        header = bytes((record.content_type, record.version >> 8, record.version & 0xFF, record.length >> 8, record.length & 0xFF))
        try:
            opened = decrypter.open(header, bytes(body))
        except DecryptError as error:
            self._decrypter = None
            self._finding(record.ts_ns, "tls-decrypt-failed", f"record at offset {record.offset} ({record.length} bytes): {error}; "
                          "the rest of this direction is left encrypted")
            return
        record.opened = opened
        inner = opened.content_type
        if inner == ContentType.HANDSHAKE:
            self._take_secret_handshake(record, decrypter, opened.plaintext)
        elif inner == ContentType.ALERT and len(opened.plaintext) >= 2:
            record.alert = bytearray(opened.plaintext[:2])
        elif inner != ContentType.APPLICATION_DATA:
            record.messages.append(f"content type {inner}")

    def _take_secret_handshake(self, record: _Record, decrypter: DirectionDecrypter, plaintext: bytes) -> None:
        finished = key_update = False
        for message_type, body in self._secret_handshake.feed(plaintext):
            record.messages.append(_HANDSHAKE_NAMES.get(message_type) or f"handshake type {message_type}")
            finished |= message_type == HandshakeType.FINISHED
            key_update |= message_type == HandshakeType.KEY_UPDATE
            if message_type == HandshakeType.ENCRYPTED_EXTENSIONS and isinstance(body, bytes):
                self.session.encrypted_alpn = _encrypted_extensions_alpn(body)
        # RFC 8446 5.1: a key change comes at a record boundary, after the message that makes it.
        if finished:
            decrypter.finish_handshake()
        if key_update:
            decrypter.update_key()

    # --- sync ----------------------------------------------------------------------

    def _skip(self, count: int) -> None:
        self._unparsed += count
        self._offset += count

    def _lose_sync(self, ts_ns: int, reason: str) -> None:
        if self._lost_sync:
            return
        self._lost_sync = True
        self._finding(ts_ns, "tls-lost-sync", f"{reason}; record framing lost, stream from offset {self._offset} on left unparsed")

    def _finding(self, ts_ns: int, rule: str, detail: str) -> None:
        self._events.append(Finding(ts_ns, self._direction, rule, detail))


# --- handshake messages ---------------------------------------------------------------

_TOO_LONG = object()  # a hello over MAX_HELLO_BYTES: skipped


class _HandshakeReader:
    """Handshake messages in the clear handshake bytes of one direction, across records.

    `feed` gives (type, body) for each message whose header it completes: the body for a
    ClientHello or ServerHello once whole, _TOO_LONG for one over MAX_HELLO_BYTES, None for
    other messages (only skipped).  A gap in them (`lose`) ends the reading."""

    __slots__ = ("_header", "_type", "_remaining", "_body", "_lost", "_wanted")

    def __init__(self, wanted: tuple[int, ...] = (HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO)) -> None:
        self._wanted = wanted  # the message types whose bodies are held and given
        self._header = bytearray()
        self._type = -1
        self._remaining = 0  # body bytes of the current message still to come
        self._body: bytearray | None = None  # a hello's body so far
        self._lost = False

    def lose(self) -> None:
        self._lost = True
        self._body = None

    def feed(self, chunk: bytes) -> list[tuple[int, object]]:
        found: list[tuple[int, object]] = []
        if self._lost:
            return found
        pos, end = 0, len(chunk)
        while pos < end:
            if self._remaining:
                take = min(self._remaining, end - pos)
                if self._body is not None:
                    self._body += chunk[pos:pos + take]
                self._remaining -= take
                pos += take
                if not self._remaining and self._body is not None:
                    found.append((self._type, bytes(self._body)))
                    self._body = None
                continue
            header = self._header
            take = min(HANDSHAKE_HEADER_BYTES - len(header), end - pos)
            header += chunk[pos:pos + take]
            pos += take
            if len(header) < HANDSHAKE_HEADER_BYTES:
                break
            message_type = header[0]
            length = int.from_bytes(header[1:4], "big")
            header.clear()
            self._type = message_type
            self._remaining = length
            hello = message_type in self._wanted
            if hello and length > MAX_HELLO_BYTES:
                found.append((message_type, _TOO_LONG))
            elif hello:
                self._body = bytearray()
                if not length:
                    found.append((message_type, b""))
                    self._body = None
            else:
                found.append((message_type, None))
        return found


class _Malformed(Exception):
    """A hello that does not parse (internal: becomes a finding)."""


class _Reader:
    """Bounds-checked big-endian reads of a hello's body."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, count: int) -> bytes:
        if self.pos + count > self.end:
            raise _Malformed(f"{count} bytes wanted at {self.pos}, {self.end - self.pos} left")
        value = self.data[self.pos:self.pos + count]
        self.pos += count
        return value

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> "_Reader":
        """The vector that follows (its length in `length_size` bytes), as a reader of its own."""
        length = self.number(length_size)
        start = self.pos
        self.take(length)
        return _Reader(self.data, start, start + length)

    @property
    def left(self) -> int:
        return self.end - self.pos


def _extensions(reader: _Reader) -> list[tuple[int, _Reader]]:
    """The extensions block, if there is one (RFC 5246 7.4.1.2: it may be absent)."""
    if not reader.left:
        return []
    block = reader.vector(2)
    extensions = []
    while block.left:
        extension_type = block.number(2)
        extensions.append((extension_type, block.vector(2)))
    return extensions


def _text(raw: bytes) -> str:
    return raw[:MAX_NAME_BYTES].decode("utf-8", "replace")


def _client_hello(direction: Direction, ts_ns: int, body: bytes) -> TlsClientHello:
    reader = _Reader(body)
    legacy_version = reader.number(2)
    random = reader.take(32)
    reader.vector(1)  # legacy_session_id
    suites_vector = reader.vector(2)
    suites = []
    while suites_vector.left >= 2:
        suite = suites_vector.number(2)
        if not _is_grease(suite) and len(suites) < MAX_LISTED:
            suites.append(suite)
    reader.vector(1)  # legacy_compression_methods
    versions: list[int] = []
    server_name = ""
    alpn: list[str] = []
    for extension_type, data in _extensions(reader):
        if extension_type == ExtensionType.SERVER_NAME and data.left:
            names = data.vector(2)
            while names.left and not server_name:
                name_type = names.number(1)
                name = names.vector(2)
                if name_type == 0:  # host_name
                    server_name = _text(name.take(name.left))
        elif extension_type == ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION:
            protocols = data.vector(2)
            while protocols.left:
                name = protocols.vector(1)
                if len(alpn) < MAX_LISTED:
                    alpn.append(_text(name.take(name.left)))
        elif extension_type == ExtensionType.SUPPORTED_VERSIONS:
            listed = data.vector(1)
            while listed.left >= 2:
                version = listed.number(2)
                if not _is_grease(version) and len(versions) < MAX_LISTED:
                    versions.append(version)
    return TlsClientHello(direction, ts_ns, legacy_version, tuple(versions), tuple(suites), server_name, tuple(alpn), random)


def _encrypted_extensions_alpn(body: bytes) -> str:
    """The protocol TLS 1.3's EncryptedExtensions chose (RFC 8446 4.3.1), "" if none or malformed."""
    try:
        for extension_type, data in _extensions(_Reader(body)):
            if extension_type == ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION:
                name = data.vector(2).vector(1)
                return _text(name.take(name.left))
    except _Malformed:
        pass
    return ""


def _server_hello(direction: Direction, ts_ns: int, body: bytes) -> TlsServerHello:
    reader = _Reader(body)
    legacy_version = reader.number(2)
    random = reader.take(32)
    reader.vector(1)  # legacy_session_id_echo
    cipher_suite = reader.number(2)
    reader.take(1)  # legacy_compression_method
    version = legacy_version
    alpn = ""
    for extension_type, data in _extensions(reader):
        if extension_type == ExtensionType.SUPPORTED_VERSIONS:
            version = data.number(2)
        elif extension_type == ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION:
            protocols = data.vector(2)
            name = protocols.vector(1)
            alpn = _text(name.take(name.left))
    return TlsServerHello(direction, ts_ns, legacy_version, version, cipher_suite, alpn, random == HELLO_RETRY_RANDOM, random)
