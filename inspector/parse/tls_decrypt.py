"""TLS record decryption with logged secrets (RFC 8446, RFC 5246, RFC 5288, RFC 7905; sans-IO).

Every primitive comes from the `cryptography` package: the AEAD ciphers (AESGCM,
AESCCM, ChaCha20Poly1305), HKDF-Expand and HMAC.  What is ours is only how TLS uses
them: TLS 1.3's HKDF-Expand-Label and traffic keys, TLS 1.2's PRF and key block, the
per-record nonce and additional data.

`session_keys(keylog, client_random, server_random, version, suite)` gives a
`SessionKeys` for a connection, or raises NoKey / UnsupportedCipher (they become
`tls-no-key` and `tls-unsupported-cipher` findings).  Each direction then gets a
`DirectionDecrypter` that opens its encrypted records in order: it keeps the
sequence number, and in TLS 1.3 moves from the handshake to the application
traffic secret after the sender's Finished (`finish_handshake`) and to the next
secret after each KeyUpdate (`update_key`).

Supported: TLS 1.3 with AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, AES-128-CCM(-8);
TLS 1.2 with the AEAD suites (AES-GCM with its explicit 8-byte nonce, ChaCha20-Poly1305),
whatever the key exchange (ECDHE, DHE, RSA: the key log gives the master secret).  Not:
CBC and stream suites (MAC-then-encrypt), TLS 1.3 early data (0-RTT), TLS 1.2
renegotiation, SSL 3.0 to TLS 1.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from inspector.parse.keylog import KeyLog, Label

__all__ = ["DecryptError", "DirectionDecrypter", "NoKey", "Opened", "SessionKeys", "UnsupportedCipher", "hkdf_expand_label",
           "session_keys", "tls12_prf"]

TLS_1_2 = 0x0303
TLS_1_3 = 0x0304
AEAD_TAG_BYTES = 16
EXPLICIT_NONCE_BYTES = 8  # TLS 1.2 AES-GCM and AES-CCM (RFC 5288 section 3)
RECORD_HEADER_BYTES = 5
MAX_SEQUENCE = (1 << 64) - 1


class DecryptError(Exception):
    """A record that does not open: wrong key, a lost record before it, tampering, or a lie."""


class NoKey(Exception):
    """The key log has no (complete) secrets for this connection's client random."""


class UnsupportedCipher(Exception):
    """A suite or version this module does not decrypt."""


@dataclass(frozen=True)
class _Suite:
    aead: type  # a cryptography AEAD class
    key_bytes: int
    iv_bytes: int  # TLS 1.3 and ChaCha: the whole 12-byte IV; TLS 1.2 GCM/CCM: the 4-byte salt
    hash: type  # a cryptography HashAlgorithm class (HKDF, PRF)
    tag_bytes: int = AEAD_TAG_BYTES

    def cipher(self, key: bytes):
        if self.aead is AESCCM:
            return AESCCM(key, tag_length=self.tag_bytes)
        return self.aead(key)

    @property
    def explicit_nonce(self) -> bool:
        """TLS 1.2 sends 8 bytes of each record's nonce with it (not ChaCha20, RFC 7905)."""
        return self.iv_bytes == 4


# IANA cipher suite numbers (RFC 8446 B.4; RFC 5288, 6655, 7905, 5289).
TLS13_SUITES = {
    0x1301: _Suite(AESGCM, 16, 12, hashes.SHA256),
    0x1302: _Suite(AESGCM, 32, 12, hashes.SHA384),
    0x1303: _Suite(ChaCha20Poly1305, 32, 12, hashes.SHA256),
    0x1304: _Suite(AESCCM, 16, 12, hashes.SHA256),
    0x1305: _Suite(AESCCM, 16, 12, hashes.SHA256, tag_bytes=8),
}
_GCM128, _GCM256 = _Suite(AESGCM, 16, 4, hashes.SHA256), _Suite(AESGCM, 32, 4, hashes.SHA384)
_CHACHA = _Suite(ChaCha20Poly1305, 32, 12, hashes.SHA256)
TLS12_SUITES = {
    0xC02B: _GCM128, 0xC02F: _GCM128, 0x009E: _GCM128, 0x009C: _GCM128,  # ECDHE-ECDSA, ECDHE-RSA, DHE-RSA, RSA
    0xC02C: _GCM256, 0xC030: _GCM256, 0x009F: _GCM256, 0x009D: _GCM256,
    0xCCA8: _CHACHA, 0xCCA9: _CHACHA, 0xCCAA: _CHACHA,
}


# --- key derivation -------------------------------------------------------------------------


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int, hash_type: type) -> bytes:
    """RFC 8446 section 7.1: HKDF-Expand(Secret, HkdfLabel, Length), the label prefixed "tls13 "."""
    full_label = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full_label)]) + full_label + bytes([len(context)]) + context
    return HKDFExpand(hash_type(), length, info).derive(secret)


def tls12_prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_type: type) -> bytes:
    """RFC 5246 section 5: P_hash(secret, label + seed), cut to `length` bytes."""
    seed = label + seed
    out = bytearray()
    block = seed  # A(0)
    while len(out) < length:
        block = _hmac(secret, block, hash_type)  # A(i)
        out += _hmac(secret, block + seed, hash_type)
    return bytes(out[:length])


def _hmac(key: bytes, data: bytes, hash_type: type) -> bytes:
    mac = hmac.HMAC(key, hash_type())
    mac.update(data)
    return mac.finalize()


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """A record opened: its real content type (TLS 1.3's inner one), the plaintext, and the
    bytes of the payload that are not plaintext: `prefix_bytes` before it (TLS 1.2's explicit
    nonce), `overhead_bytes` in all (prefix, tag, TLS 1.3's inner content type and padding)."""

    content_type: int
    plaintext: bytes
    prefix_bytes: int
    overhead_bytes: int


class _Protection:
    """One key and IV of one direction, and its sequence number (RFC 8446 5.3, RFC 5246 6.2.3.3)."""

    __slots__ = ("suite", "cipher", "iv", "sequence", "tls13")

    def __init__(self, suite: _Suite, key: bytes, iv: bytes, tls13: bool) -> None:
        self.suite = suite
        self.cipher = suite.cipher(key)
        self.iv = iv
        self.sequence = 0
        self.tls13 = tls13

    def open(self, header: bytes, payload: bytes) -> Opened:
        if self.sequence > MAX_SEQUENCE:
            raise DecryptError("sequence number past 2^64 - 1")
        sequence = self.sequence
        self.sequence += 1
        suite = self.suite
        tag = suite.tag_bytes
        if self.tls13:
            return self._open13(header, payload, sequence, tag)
        prefix = EXPLICIT_NONCE_BYTES if suite.explicit_nonce else 0
        if len(payload) < prefix + tag:
            raise DecryptError(f"a record of {len(payload)} bytes, shorter than its nonce and tag ({prefix + tag})")
        if prefix:
            nonce = self.iv + payload[:prefix]
        else:
            nonce = _xor_sequence(self.iv, sequence)
        plaintext_length = len(payload) - prefix - tag
        additional = sequence.to_bytes(8, "big") + header[:3] + plaintext_length.to_bytes(2, "big")
        plaintext = self._decrypt(nonce, payload[prefix:], additional)
        return Opened(header[0], plaintext, prefix, prefix + tag)

    def _open13(self, header: bytes, payload: bytes, sequence: int, tag: int) -> Opened:
        if len(payload) <= tag:
            raise DecryptError(f"a record of {len(payload)} bytes, no longer than its tag ({tag})")
        inner = self._decrypt(_xor_sequence(self.iv, sequence), payload, header)
        # TLSInnerPlaintext: content, the real content type, then zero padding (RFC 8446 5.2, 5.4).
        end = len(inner.rstrip(b"\0"))
        if not end:
            raise DecryptError("a record of padding only, no content type (RFC 8446 5.4: unexpected_message)")
        return Opened(inner[end - 1], inner[: end - 1], 0, len(payload) - end + 1)

    def _decrypt(self, nonce: bytes, ciphertext: bytes, additional: bytes) -> bytes:
        try:
            return self.cipher.decrypt(nonce, ciphertext, additional)
        except InvalidTag:
            raise DecryptError("authentication failed (wrong key, or records lost before it)") from None


def _xor_sequence(iv: bytes, sequence: int) -> bytes:
    """The per-record nonce: the IV XOR the sequence number, padded on the left (RFC 8446 5.3)."""
    return (int.from_bytes(iv, "big") ^ sequence).to_bytes(len(iv), "big")


class DirectionDecrypter:
    """The records of one direction, opened in order with that direction's keys."""

    __slots__ = ("_suite", "_tls13", "_protection", "_application_secret", "key_updates")

    def __init__(self, suite: _Suite, tls13: bool, protection: _Protection, application_secret: bytes | None) -> None:
        self._suite = suite
        self._tls13 = tls13
        self._protection = protection
        self._application_secret = application_secret  # TLS 1.3: the traffic secret after the handshake
        self.key_updates = 0

    def open(self, header: bytes, payload: bytes) -> Opened:
        """Open the next record of this direction (`header`: its five header bytes); DecryptError if it does not."""
        return self._protection.open(header, payload)

    def skip(self) -> None:
        """The next record was not captured whole: it cannot be opened, but it took its sequence number."""
        self._protection.sequence += 1

    @property
    def least_overhead(self) -> int:
        """The fewest payload bytes of a record that are not plaintext (nonce, tag, inner content type)."""
        suite = self._suite
        return suite.tag_bytes + (1 if self._tls13 else EXPLICIT_NONCE_BYTES if suite.explicit_nonce else 0)

    def finish_handshake(self) -> None:
        """TLS 1.3: this direction sent its Finished; its next records use the application traffic secret."""
        if self._tls13 and self._application_secret is not None:
            self._protection = _tls13_protection(self._suite, self._application_secret)

    def update_key(self) -> None:
        """TLS 1.3: this direction sent a KeyUpdate; next secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)."""
        if not self._tls13 or self._application_secret is None:
            return
        hash_type = self._suite.hash
        self._application_secret = hkdf_expand_label(self._application_secret, b"traffic upd", b"", hash_type.digest_size, hash_type)
        self._protection = _tls13_protection(self._suite, self._application_secret)
        self.key_updates += 1


def _tls13_protection(suite: _Suite, secret: bytes) -> _Protection:
    key = hkdf_expand_label(secret, b"key", b"", suite.key_bytes, suite.hash)
    iv = hkdf_expand_label(secret, b"iv", b"", suite.iv_bytes, suite.hash)
    return _Protection(suite, key, iv, tls13=True)


@dataclass(frozen=True)
class SessionKeys:
    """Both directions' decrypters of one connection."""

    client: DirectionDecrypter
    server: DirectionDecrypter


def session_keys(keylog: KeyLog, client_random: bytes, server_random: bytes, version: int, suite_number: int) -> SessionKeys:
    if version == TLS_1_3:
        suite = TLS13_SUITES.get(suite_number)
        if suite is None:
            raise UnsupportedCipher(f"cipher suite 0x{suite_number:04X} is not decrypted (TLS 1.3: AES-GCM, ChaCha20-Poly1305, AES-CCM)")
        return _tls13_keys(keylog, client_random, suite)
    if version != TLS_1_2:
        raise UnsupportedCipher(f"version 0x{version:04X} is not decrypted (only TLS 1.2 and 1.3)")
    suite = TLS12_SUITES.get(suite_number)
    if suite is None:
        raise UnsupportedCipher(f"cipher suite 0x{suite_number:04X} is not decrypted (TLS 1.2: AEAD suites only, AES-GCM and "
                                "ChaCha20-Poly1305; CBC suites are not)")
    return _tls12_keys(keylog, client_random, server_random, suite)


def _tls13_keys(keylog: KeyLog, client_random: bytes, suite: _Suite) -> SessionKeys:
    secrets = keylog.secrets.get(client_random) or {}
    labels = (Label.CLIENT_HANDSHAKE_TRAFFIC_SECRET, Label.SERVER_HANDSHAKE_TRAFFIC_SECRET)
    missing = [label for label in labels if label not in secrets]
    if missing:
        raise NoKey(f"no {' or '.join(missing)} for client random {client_random.hex()[:16]}...")
    length = suite.hash.digest_size
    wrong = [label for label in labels if len(secrets[label]) != length]
    if wrong:
        raise NoKey(f"{wrong[0]} of {len(secrets[wrong[0]])} bytes, not the {length} of the suite's hash")

    def direction(handshake_label: str, application_label: str) -> DirectionDecrypter:
        application = secrets.get(application_label)
        if application is not None and len(application) != length:
            application = None
        return DirectionDecrypter(suite, True, _tls13_protection(suite, secrets[handshake_label]), application)

    return SessionKeys(direction(Label.CLIENT_HANDSHAKE_TRAFFIC_SECRET, Label.CLIENT_TRAFFIC_SECRET_0),
                       direction(Label.SERVER_HANDSHAKE_TRAFFIC_SECRET, Label.SERVER_TRAFFIC_SECRET_0))


MASTER_SECRET_BYTES = 48


def _tls12_keys(keylog: KeyLog, client_random: bytes, server_random: bytes, suite: _Suite) -> SessionKeys:
    master = keylog.secret(client_random, Label.CLIENT_RANDOM)
    if master is None:
        raise NoKey(f"no CLIENT_RANDOM for client random {client_random.hex()[:16]}...")
    if len(master) != MASTER_SECRET_BYTES:
        raise NoKey(f"CLIENT_RANDOM master secret of {len(master)} bytes, not {MASTER_SECRET_BYTES}")
    # RFC 5246 6.3: no MAC keys for AEAD suites; client and server write keys, then IVs.
    key, iv = suite.key_bytes, suite.iv_bytes
    block = tls12_prf(master, b"key expansion", server_random + client_random, 2 * (key + iv), suite.hash)
    client_key, server_key = block[:key], block[key : 2 * key]
    client_iv, server_iv = block[2 * key : 2 * key + iv], block[2 * key + iv :]
    return SessionKeys(DirectionDecrypter(suite, False, _Protection(suite, client_key, client_iv, False), None),
                       DirectionDecrypter(suite, False, _Protection(suite, server_key, server_iv, False), None))
