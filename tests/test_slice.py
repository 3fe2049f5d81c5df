"""`inspector slice`: a connection's packets as a capture, read back by tshark: the same packets
(time, length, bytes) as tshark selects in the original with the connection's display filter,
as many and as long as the connection's row says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import inspector
from inspector.slicing import connection_packets, display_filter, write_slice
from inspector.store import open_store
from tests import tshark_oracle as oracle
from tests.conftest import BUNDLED, REPO, corpus_files
from tests.factories import pcap_file, tcp_connection

pytestmark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")


def run_slice(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector", "slice", *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300)


FRAME_FIELDS = ["frame.time_epoch", "frame.len", "frame.md5_hash"]


def tshark_frames(path: Path, display: str | None = None, extra: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """(time, frame length, md5 of the captured bytes, *extra fields) per frame tshark reads, in order."""
    command = ["tshark", "-r", str(path), "-o", "frame.generate_md5_hash:TRUE", "-T", "fields",
               *[arg for field in [*FRAME_FIELDS, *extra] for arg in ("-e", field)]]
    if display:
        command += ["-Y", display]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


def tshark_streams(path: Path) -> dict[int, list[tuple[str, ...]]]:
    """tshark's own split of the capture into TCP connections: first frame number -> its frames."""
    streams: dict[str, list[tuple[str, ...]]] = {}
    firsts: dict[str, int] = {}
    for *frame, number, stream in tshark_frames(path, "tcp", ("frame.number", "tcp.stream")):
        streams.setdefault(stream, []).append(tuple(frame))
        firsts.setdefault(stream, int(number))
    return {firsts[stream]: frames for stream, frames in streams.items()}


def _filter_of(connections, row) -> str:
    later = connections[(connections["client_ip"] == row.client_ip) & (connections["client_port"] == row.client_port)
                        & (connections["server_ip"] == row.server_ip) & (connections["server_port"] == row.server_port)
                        & (connections["first_frame"] > row.first_frame)]
    return display_filter(row.client_ip, row.client_port, row.server_ip, row.server_port, row.first_frame,
                          int(later["first_frame"].min()) if len(later) else None)


def check_slices(capture: Path, tmp_path: Path) -> int:
    """Slice each connection: tshark reads back the packets of tshark's own TCP stream that starts
    at the connection's first frame, as many and as long as its row says; the first and the last
    are checked against the display filter too, and the first is sliced by the CLI (the others by
    the same functions in this process: a process each would be most of the time).  Returns how
    many were sliced."""
    streams = tshark_streams(capture)
    with inspector.analyze(capture) as a, open_store(a.folder) as store:
        connections = a.connections
        for row in connections.itertuples(index=False):
            out = tmp_path / f"conn{row.conn_id}{''.join(capture.suffixes[:1])}"
            if row.conn_id == 0:
                proc = run_slice(capture, "--conn", row.conn_id, "-o", out)
                assert proc.returncode == 0 and proc.stdout == "", proc.stderr
                assert proc.stderr == f"inspector: {row.packets:,} packets of connection {row.conn_id} written to {out}\n"
            else:
                assert write_slice(capture, connection_packets(store, str(capture), [row.conn_id]), out) == row.packets
            sliced = tshark_frames(out)
            assert len(sliced) == row.packets and sum(int(length) for _t, length, _md5 in sliced) == row.wire_bytes
            assert sliced == streams[row.first_frame]
            if row.conn_id in (0, len(connections) - 1):
                assert sliced == tshark_frames(capture, _filter_of(connections, row))
    return len(connections)


def test_every_connection_of_a_bundled_capture(tmp_path: Path) -> None:
    assert check_slices(BUNDLED / "chat.pcap", tmp_path) == 23
    assert (tmp_path / "conn0.pcap").read_bytes()[:4] == (BUNDLED / "chat.pcap").read_bytes()[:4]  # the same pcap (ns) format


@pytest.mark.parametrize("name", ["enough-rest-plus-websocket-2conns.pcapng", "suricata-http-post-null-loopback-ipv6.pcap",
                                  "suricata-websocket-ping-pong-linux-sll.pcap", "arkime-http-post-chunked-retransmissions.pcap"])
def test_corpus_captures_pcapng_ipv6_and_other_link_types(name: str, tmp_path: Path) -> None:
    path = next((p for p in corpus_files() if p.name == name), None)
    if path is None:
        pytest.skip(f"{name}: the public corpus (../shared/corpus) is not here")
    assert check_slices(path, tmp_path) >= 1
    out = next(tmp_path.glob("conn0*"))
    if name.endswith(".pcapng"):
        assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng in, pcapng out


def test_reused_four_tuple_and_several_connections_at_once(tmp_path: Path) -> None:
    talk = [("client", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ("server", b"HTTP/1.1 204 No Content\r\n\r\n")]
    first = tcp_connection(40000, talk, 1_000_000_000)
    other = tcp_connection(40001, talk, 1_005_000_000)
    again = tcp_connection(40000, talk, 2_000_000_000, isn=(777_000, 999_000))  # the same 4-tuple, a new connection
    capture = tmp_path / "reuse.pcap"
    capture.write_bytes(pcap_file(sorted(first + other + again)))
    assert check_slices(capture, tmp_path) == 3
    both = tmp_path / "both.pcap"
    proc = run_slice(capture, "--conn", "2", "--conn", "0", "-o", both)
    assert proc.returncode == 0 and proc.stderr == f"inspector: {len(first) + len(again)} packets of connections 0, 2 written to {both}\n"
    assert tshark_frames(both) == [frame for frame in tshark_frames(capture) if frame not in tshark_frames(tmp_path / "conn1.pcap")]


def test_bad_requests_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    capture = tmp_path / "chat.pcap"
    shutil.copy(BUNDLED / "chat.pcap", capture)
    out = tmp_path / "out.pcap"
    for args, complaint in (
        (["--conn", "99"], f"{capture}: no connection 99 (its connections are 0 to 22)"),
        (["--conn", "1", "--conn", "-3"], f"{capture}: no connection -3 (its connections are 0 to 22)"),
    ):
        proc = run_slice(capture, *args, "-o", out)
        assert proc.returncode == 2 and proc.stderr == f"inspector: error: {complaint}\n" and not out.exists()
    proc = run_slice(capture, "--conn", "0", "-o", capture)
    assert proc.returncode == 2 and "is the capture itself" in proc.stderr and proc.stderr.count("\n") == 1
    missing = run_slice(tmp_path / "missing.pcap", "--conn", "0", "-o", out)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "missing.pcap" in missing.stderr
