"""TLS for the workloads: a certificate made at run time, and the key log of every session.

`inspector record --tls` runs each variant over TLS (HTTPS, WSS).  `TlsSetup(folder,
keylog)` writes a fresh self-signed certificate (EC P-256, made with the `cryptography`
package, valid for localhost and 127.0.0.1) into `folder`, and gives the servers their
ssl context and the clients theirs.  The clients' context writes the secrets of every
session to `keylog` in the NSS key log format (`ssl.SSLContext.keylog_filename`, what
SSLKEYLOGFILE does for browsers and curl), so that the recording can be decrypted: by
`inspector analyze` (the sidecar names the key log) or by Wireshark
(`-o tls.keylog_file:FILE`).

The clients trust that one certificate and no other (hostname checked too), as a real
client trusts its CA.  ALPN offers http/1.1, or h2 for the HTTP/2 variant.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVER_NAME = "localhost"
CERTIFICATE_DAYS = 30


def write_certificate(folder: Path, server_name: str = SERVER_NAME) -> tuple[Path, Path]:
    """A new self-signed certificate (EC P-256) for server_name, localhost and 127.0.0.1,
    written into folder: (certificate, key) paths, PEM."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName(server_name)] + ([x509.DNSName("localhost")] if server_name != "localhost" else [])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
            .add_extension(x509.SubjectAlternativeName([*names, x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsSetup:
    """The ssl contexts of one recording: servers' with the certificate, clients' writing `keylog`."""

    def __init__(self, folder: Path, keylog: Path) -> None:
        self.keylog = keylog
        cert, key = write_certificate(folder)
        self.certificate = (str(cert), str(key))  # for servers that load them themselves (hypercorn)
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(cert, key)
        self.server_context.set_alpn_protocols(["http/1.1"])
        keylog.unlink(missing_ok=True)  # ssl appends: only this recording's sessions
        self.client_context = self._client_context("http/1.1")
        # HTTP/2's own: its client (httpx) sets the ALPN of the context it is given.
        self.client_context_h2 = self._client_context("h2")

    def _client_context(self, alpn: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.certificate[0])  # the chain is checked against the one certificate
        context.set_alpn_protocols([alpn])
        context.keylog_filename = str(self.keylog)
        return context
