"""TLS secrets in the NSS key log format (sans-IO).

The format SSLKEYLOGFILE, Chromium's --ssl-key-log-file, Firefox, curl and Python's
`ssl.SSLContext.keylog_filename` write, and Wireshark reads
(https://udn.realityripple.com/docs/Mozilla/Projects/NSS/Key_Log_Format, and
draft-ietf-tls-keylogfile): one secret a line,

    <label> <client random, 64 hex digits> <secret, hex>

with `#` comment lines and blank lines.  TLS 1.2 and earlier log the master secret
(CLIENT_RANDOM); TLS 1.3 its traffic secrets (CLIENT_HANDSHAKE_TRAFFIC_SECRET ...).
Everything is keyed by the ClientHello's random, which is how a connection finds its own.

Lines that are not a secret (an unknown label, a wrong field count, bad hex, a client
random that is not 32 bytes, RSA lines, which are keyed by the encrypted premaster and so
useless without the server's key) are counted as junk and skipped: a key log is often
appended to by several programs, and one bad line must not cost the others.

A KeyLog is small and picklable: the CLI parses the file once and the analysis workers
get it as a parameter; secrets in a capture's pcapng Decryption Secrets Blocks are added
to a worker's own copy as they are read (`add_text`).
"""

from __future__ import annotations

import hashlib

__all__ = ["CLIENT_RANDOM_BYTES", "KeyLog", "Label"]

CLIENT_RANDOM_BYTES = 32
# The longest secret a label carries: a TLS 1.2 master secret is 48 bytes, a TLS 1.3 traffic
# secret the size of the suite's hash (SHA-384: 48 bytes); a longer one is junk.
MAX_SECRET_BYTES = 64


class Label:
    """The labels of the key log format that carry a secret we use or keep."""

    CLIENT_RANDOM = "CLIENT_RANDOM"  # TLS 1.2 and earlier: the 48-byte master secret
    CLIENT_EARLY_TRAFFIC_SECRET = "CLIENT_EARLY_TRAFFIC_SECRET"
    CLIENT_HANDSHAKE_TRAFFIC_SECRET = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
    SERVER_HANDSHAKE_TRAFFIC_SECRET = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
    CLIENT_TRAFFIC_SECRET_0 = "CLIENT_TRAFFIC_SECRET_0"
    SERVER_TRAFFIC_SECRET_0 = "SERVER_TRAFFIC_SECRET_0"
    EARLY_EXPORTER_SECRET = "EARLY_EXPORTER_SECRET"
    EXPORTER_SECRET = "EXPORTER_SECRET"


KNOWN_LABELS = frozenset(value for name, value in vars(Label).items() if name.isupper())


class KeyLog:
    """Secrets by client random, then by label; with counts of what the text held."""

    __slots__ = ("secrets", "lines", "comments", "junk", "first_junk")

    def __init__(self) -> None:
        self.secrets: dict[bytes, dict[str, bytes]] = {}
        self.lines = 0  # non-blank lines read
        self.comments = 0
        self.junk = 0  # lines skipped: not a secret we can use
        self.first_junk = 0  # the number of the first junk line (1-based), 0 when none

    @classmethod
    def from_text(cls, text: bytes | str) -> KeyLog:
        keylog = cls()
        keylog.add_text(text)
        return keylog

    def add_text(self, text: bytes | str) -> None:
        """Read the lines of a key log (bytes are decoded as ASCII; other bytes make a line junk)."""
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        secrets = self.secrets
        for line in text.splitlines():
            fields = line.split()
            if not fields:
                continue
            self.lines += 1
            if fields[0].startswith("#"):
                self.comments += 1
                continue
            entry = _entry(fields)
            if entry is None:
                self.junk += 1
                if not self.first_junk:
                    self.first_junk = self.lines
                continue
            label, client_random, secret = entry
            by_label = secrets.get(client_random)
            if by_label is None:
                by_label = secrets[client_random] = {}
            by_label[label] = secret

    def update(self, other: KeyLog) -> None:
        """Add `other`'s secrets (and counts) to these; a secret in both is `other`'s."""
        for client_random, by_label in other.secrets.items():
            self.secrets.setdefault(client_random, {}).update(by_label)
        self.lines += other.lines
        self.comments += other.comments
        self.junk += other.junk

    def copy(self) -> KeyLog:
        keylog = KeyLog()
        keylog.update(self)
        keylog.first_junk = self.first_junk
        return keylog

    def secret(self, client_random: bytes, label: str) -> bytes | None:
        by_label = self.secrets.get(client_random)
        return None if by_label is None else by_label.get(label)

    def __len__(self) -> int:
        """Client randoms with at least one secret."""
        return len(self.secrets)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __getstate__(self):
        return self.secrets, self.lines, self.comments, self.junk, self.first_junk

    def __setstate__(self, state) -> None:
        self.secrets, self.lines, self.comments, self.junk, self.first_junk = state

    def digest(self) -> str:
        """sha256 of the secrets, whatever the order of their lines: names an analysis made with them."""
        hasher = hashlib.sha256()
        for client_random in sorted(self.secrets):
            for label, secret in sorted(self.secrets[client_random].items()):
                hasher.update(b"%s %s %s\n" % (label.encode(), client_random.hex().encode(), secret.hex().encode()))
        return hasher.hexdigest()

    def describe(self) -> str:
        """A short account, for a note: secrets for how many connections, junk lines skipped."""
        junk = f", {self.junk} lines skipped (not a secret; the first is line {self.first_junk})" if self.junk else ""
        return f"TLS secrets for {len(self.secrets)} connections{junk}"


def _entry(fields: list[str]) -> tuple[str, bytes, bytes] | None:
    """(label, client random, secret) of a line's fields, None if it is not one."""
    if len(fields) != 3 or fields[0] not in KNOWN_LABELS:
        return None
    label, random_hex, secret_hex = fields
    if len(random_hex) != 2 * CLIENT_RANDOM_BYTES or len(secret_hex) > 2 * MAX_SECRET_BYTES:
        return None
    try:
        client_random = bytes.fromhex(random_hex)
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        return None
    if not secret:
        return None
    return label, client_random, secret
