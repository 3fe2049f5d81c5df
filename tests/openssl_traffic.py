"""Record TLS 1.3 with a chosen cipher suite and key updates: OpenSSL's own s_server and s_client.

Python's ssl cannot choose a TLS 1.3 suite (it always offers OpenSSL's default list) nor send a
KeyUpdate; the openssl command line does both: `-ciphersuites` on both ends, and the `K`
command on s_client's standard input makes the client send a KeyUpdate asking the server to
update too.  `record_openssl(out_dir, suite)`: s_server -www (it answers `GET /` with a status
page over HTTP/1.0, then closes), s_client writing its secrets with -keylogfile, sending `K`
then the request; tcpdump captures it on `lo`.  Needs the openssl program and root (tcpdump).
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from inspector.workloads.servers import HOST
from tests.tls_factories import certificate
from tests.traffic import tcpdump_capture

# The pauses let each step reach the wire before the next (s_client reads a command per read()).
STEP_S = 0.4


@dataclass
class OpensslRecording:
    path: Path
    keylog: Path
    server_port: int
    client_output: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def record_openssl(out_dir: Path, suite: str, key_updates: int = 1) -> OpensslRecording:
    cert, key = certificate(out_dir)
    path, keylog = out_dir / f"openssl-{suite}.pcap", out_dir / f"openssl-{suite}.keys"
    keylog.unlink(missing_ok=True)
    port = _free_port()
    with tcpdump_capture(path, [port]):
        server = subprocess.Popen(["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", str(cert), "-key", str(key), "-www",
                                   "-tls1_3", "-ciphersuites", suite, "-naccept", "1", "-quiet"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(STEP_S)
            client = subprocess.Popen(["openssl", "s_client", "-connect", f"{HOST}:{port}", "-tls1_3", "-ciphersuites", suite,
                                       "-keylogfile", str(keylog)],  # no -ign_eof: it turns the command letters off
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(STEP_S)
            for _ in range(key_updates):
                client.stdin.write(b"K\n")
                client.stdin.flush()
                time.sleep(STEP_S)
            client.stdin.write(b"GET / HTTP/1.0\r\n\r\n")
            client.stdin.flush()
            # Standard input stays open (its end would end s_client) until the server, having answered, closes.
            client.wait(timeout=20)
            output = client.stdout.read()
            client.stdin.close()
            client.stdout.close()
            server.wait(timeout=20)
        finally:
            server.kill()
    return OpensslRecording(path, keylog, port, output.decode("latin-1"))
