"""`inspector capture` and LiveCapture on real loopback traffic, against tcpdump.

Every capture here is filtered on the ephemeral ports of servers the test
started itself, so unrelated loopback traffic cannot get in.  Needs root (CI
runs as root); the unknown-interface test runs anywhere.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from inspector.capture.files import CaptureInfo, read_packets
from inspector.capture.live import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LiveCapture, filter_expression, list_interfaces
from inspector.errors import CaptureError
from tests.capture.tools import (
    HOST,
    InspectorCapture,
    echo_exchanges,
    echo_server,
    echo_traffic_flowing,
    live_capture_unavailable,
    require_wireshark_tools,
    run_tool,
    wait_until_quiet,
)

needs_root = pytest.mark.skipif(live_capture_unavailable() is not None, reason=live_capture_unavailable() or "")


def read_back(path):
    info = CaptureInfo(path=str(path))
    records = [(ts, link, wire, bytes(data)) for ts, link, wire, data in read_packets(path, info)]
    return records, info


def port_args(*ports: int) -> list[str]:
    return [arg for port in ports for arg in ("--port", str(port))]


def capinfos_count(path) -> int:
    out = run_tool("capinfos", "-M", "-c", "-T", "-r", str(path))
    return int(out.split("\t")[-1])


def tshark_reads(path) -> int:
    """Frames tshark dissects from `path`, failing on any error it reports."""
    return len(run_tool("tshark", "-r", str(path), "-T", "fields", "-e", "frame.number").splitlines())


def rest_and_ws_exchange(lt, rest, wss) -> None:
    """A few REST requests (keep-alive and one connection each) and a WebSocket echo."""
    from websockets.asyncio.client import connect

    conn = http.client.HTTPConnection(HOST, rest.port, timeout=10)
    for path in ("/api/items", "/api/items/2", "/api/stream?chunks=5&size=3000"):
        conn.request("GET", path)
        assert conn.getresponse().read()
    conn.request("POST", "/api/echo", body=b'{"x": "' + b"y" * 70000 + b'"}', headers={"Content-Type": "application/json"})
    assert conn.getresponse().read()
    conn.close()
    one = http.client.HTTPConnection(HOST, rest.port, timeout=10)
    one.request("GET", "/api/items/3", headers={"Connection": "close"})
    one.getresponse().read()
    one.close()

    async def ws_client() -> None:
        async with connect(f"ws://{HOST}:{wss.port}/", compression=None, ping_interval=None) as ws:
            for message in ("hello", "x" * 200, "y" * 70000):
                await ws.send(message)
                assert await ws.recv() == message
            await ws.close()

    lt.run(ws_client())


# --- the same packets as tcpdump ---------------------------------------------------


@needs_root
@pytest.mark.parametrize("suffix", ["pcap", "pcapng"])
def test_same_packets_as_tcpdump(tmp_path, suffix):
    from tests import traffic

    ours = tmp_path / f"inspector.{suffix}"
    theirs = tmp_path / "tcpdump.pcap"
    with traffic.servers(rest=True, ws=[{"compression": None}]) as (lt, rest, (wss,)):
        ports = (rest.port, wss.port)
        capture = InspectorCapture("-o", str(ours), *port_args(*ports))
        try:
            capture.wait_ready()
            with traffic.tcpdump_capture(theirs, ports) as tcpdump:
                rest_and_ws_exchange(lt, rest, wss)
            wait_until_quiet(ours)
        finally:
            rc = capture.finish(signal.SIGINT)
    assert rc == 0, capture.stderr
    assert tcpdump.packets_dropped == 0

    our_records, our_info = read_back(ours)
    their_records, _ = read_back(theirs)
    assert our_info.format == suffix and not our_info.warnings
    assert {r[1] for r in our_records} == {r[1] for r in their_records} == {LINKTYPE_ETHERNET}
    assert len(our_records) == len(their_records) == tcpdump.packets_captured
    # Raw bytes, packet for packet: the multisets are equal (no duplicates, nothing missing).
    assert Counter(r[3] for r in our_records) == Counter(r[3] for r in their_records)
    assert sum(r[2] for r in our_records) == sum(r[2] for r in their_records)
    assert sum(len(r[3]) for r in our_records) == sum(len(r[3]) for r in their_records)
    # Same order, and kernel timestamps within a few milliseconds of tcpdump's.
    assert [r[3] for r in our_records] == [r[3] for r in their_records]
    assert all(abs(a[0] - b[0]) < 50_000_000 for a, b in zip(our_records, their_records))
    assert f"captured {len(our_records):,} packets" in capture.stderr


@needs_root
def test_any_interface_writes_linux_cooked_with_the_same_ip_packets_as_tcpdump(tmp_path):
    ours = tmp_path / "any.pcap"
    theirs = tmp_path / "tcpdump-any.pcap"
    from tests import traffic

    with echo_server() as port:
        capture = LiveCapture(ours, interface="any", ports=[port])
        with capture, traffic.tcpdump_capture(theirs, [port], interface="any"):
            echo_exchanges(port, 20, 1000)
            time.sleep(0.3)
    our_records, _ = read_back(ours)
    their_records, _ = read_back(theirs)
    assert {r[1] for r in our_records} == {LINKTYPE_LINUX_SLL}
    their_header = {113: 16, 276: 20}[their_records[0][1]]  # tcpdump 4.99 writes SLL2
    assert Counter(r[3][16:] for r in our_records) == Counter(r[3][their_header:] for r in their_records)
    # SLL: packet type "to us" (0), ARPHRD_LOOPBACK, IPv4.
    assert {(r[3][:4], r[3][14:16]) for r in our_records} == {(b"\x00\x00\x03\x04", b"\x08\x00")}


@needs_root
def test_full_size_loopback_segments_are_kept_whole(tmp_path):
    """libpcap compiles `ret #65535` for scapy; raised to the snap length, 65,549-byte frames stay whole."""
    with echo_server() as port:
        with LiveCapture(tmp_path / "big.pcap", ports=[port]) as capture:
            echo_exchanges(port, 2, 1_000_000)
            time.sleep(0.2)
    records, _ = read_back(tmp_path / "big.pcap")
    assert len(records) == capture.stats.packets
    assert max(r[2] for r in records) > 65535
    assert all(len(r[3]) == r[2] for r in records)


@needs_root
def test_ipv6_loopback(tmp_path):
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    port = server.getsockname()[1]
    with server, LiveCapture(tmp_path / "v6.pcap", ports=[port]) as capture:
        client = socket.create_connection(("::1", port))
        conn, _ = server.accept()
        client.sendall(b"ping")
        assert conn.recv(10) == b"ping"
        client.close()
        conn.close()
        time.sleep(0.2)
    records, _ = read_back(tmp_path / "v6.pcap")
    assert len(records) >= 7 and len(records) == capture.stats.packets  # handshake, data, ack, FINs
    assert {r[3][12:14] for r in records} == {b"\x86\xdd"}


@needs_root
def test_file_is_complete_while_the_capture_runs(tmp_path):
    """Packets reach the file within about half a second, in whole records, without stop()."""
    out = tmp_path / "running.pcapng"
    with echo_server() as port:
        with LiveCapture(out, ports=[port]) as capture:
            echo_exchanges(port, 50, 300)
            wait_until_quiet(out)
            records, info = read_back(out)
            assert len(records) == capture.stats.packets > 100
            assert not info.truncated and not info.warnings


# --- stopping ----------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize(("sig", "suffix"), [(signal.SIGINT, "pcap"), (signal.SIGTERM, "pcapng"), (signal.SIGINT, "pcapng")])
def test_signal_while_traffic_flows_leaves_a_complete_file(tmp_path, sig, suffix):
    require_wireshark_tools()
    out = tmp_path / f"cut.{suffix}"
    with echo_server() as port:
        capture = InspectorCapture("-o", str(out), *port_args(port))
        capture.wait_ready()
        with echo_traffic_flowing(port):
            time.sleep(1.5)
            rc = capture.finish(sig)  # while packets are still arriving
    assert rc == 0, capture.stderr
    records, info = read_back(out)
    assert len(records) > 100
    assert not info.truncated and not info.warnings
    assert tshark_reads(out) == capinfos_count(out) == len(records)
    assert f"captured {len(records):,} packets" in capture.stderr


@needs_root
def test_count_stops_by_itself(tmp_path):
    out = tmp_path / "count.pcap"
    with echo_server() as port:
        capture = InspectorCapture("-o", str(out), "--count", "25", *port_args(port))
        capture.wait_ready()
        with echo_traffic_flowing(port):
            rc = capture.finish(sig=None)
    assert rc == 0, capture.stderr
    records, info = read_back(out)
    assert len(records) == 25 and not info.warnings


@needs_root
def test_duration_stops_by_itself(tmp_path):
    out = tmp_path / "duration.pcapng"
    with echo_server() as port:
        capture = InspectorCapture("-o", str(out), "--duration", "1.0", *port_args(port))
        capture.wait_ready()
        started = time.monotonic()
        with echo_traffic_flowing(port):
            rc = capture.finish(sig=None, timeout=20)
        took = time.monotonic() - started
    assert rc == 0, capture.stderr
    assert 0.8 < took < 5.0
    records, info = read_back(out)
    assert records and not info.warnings
    span_s = (records[-1][0] - records[0][0]) / 1e9
    assert span_s <= 1.5


# --- bad input and privileges --------------------------------------------------------


def test_unknown_interface_lists_the_interfaces(tmp_path):
    capture = InspectorCapture("-i", "eth9", "-o", str(tmp_path / "x.pcap"))
    assert capture.finish(sig=None) == 2
    lines = capture.error_lines()
    assert len(lines) == 1 and "Traceback" not in capture.stderr
    names = [name for _, name in socket.if_nameindex()]
    assert lines[0] == f"inspector: error: no interface 'eth9'; interfaces: {', '.join(names + ['any'])}"
    assert list_interfaces() == names + ["any"]
    assert not (tmp_path / "x.pcap").exists()


def _unprivileged_prefixes():
    setpriv = shutil.which("setpriv")
    reason = None if setpriv else "setpriv (util-linux) not installed"
    # Root without any capability (empty bounding set): no CAP_NET_RAW.
    yield pytest.param((setpriv or "setpriv", "--bounding-set=-all", "--inh-caps=-all"), id="root-without-capabilities",
                       marks=pytest.mark.skipif(reason is not None or live_capture_unavailable() is not None,
                                                reason=reason or live_capture_unavailable() or ""))
    # (Running as the user nobody would test the same check, but this Python
    # lives under /root, which nobody cannot read.)


@pytest.mark.parametrize("prefix", list(_unprivileged_prefixes()))
def test_without_privileges_one_line_and_exit_2(tmp_path, prefix):
    probe = subprocess.run([*prefix, sys.executable, "-c", "import inspector.cli, scapy"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this Python cannot run as {prefix[1]} here (e.g. it lives under a private /root): "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    tmp_path.chmod(0o777)
    capture = InspectorCapture("-o", str(tmp_path / "x.pcap"), "--port", "80", preexec_prefix=prefix)
    assert capture.finish(sig=None) == 2
    assert capture.error_lines() == ["inspector: error: live capture needs root or CAP_NET_RAW"]
    assert not (tmp_path / "x.pcap").exists()


def test_bad_filter_names_the_filter(tmp_path):
    capture = InspectorCapture("-o", str(tmp_path / "x.pcap"), "--port", "80", "--filter", "tcp portt 1")
    assert capture.finish(sig=None) == 2
    lines = capture.error_lines()
    assert len(lines) == 1 and lines[0].startswith("inspector: error: bad capture filter '(tcp port 80) and (tcp portt 1)'")


def test_filter_expression_combines_ports_and_filter():
    assert filter_expression() is None
    assert filter_expression([80]) == "tcp port 80"
    assert filter_expression([80, 8080]) == "tcp port 80 or tcp port 8080"
    assert filter_expression([80, 81], "host 127.0.0.1") == "(tcp port 80 or tcp port 81) and (host 127.0.0.1)"
    assert filter_expression((), " udp ") == "udp"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"count": 0}, "packet count must be positive"),
    ({"duration": -1}, "duration must be positive"),
    ({"ports": [70000]}, "port 70000 is not between 1 and 65535"),
])
def test_bad_limits_are_capture_errors(tmp_path, kwargs, message):
    with pytest.raises(CaptureError, match=message):
        LiveCapture(tmp_path / "x.pcap", **kwargs)


# --- --analyze, and the API the recorder uses --------------------------------------------


@needs_root
def test_analyze_prints_the_summary(tmp_path):
    from tests import traffic

    out = tmp_path / "analyze.pcap"
    with traffic.servers(rest=True) as (_lt, rest, _):
        capture = InspectorCapture("-o", str(out), "--analyze", *port_args(rest.port))
        capture.wait_ready()
        conn = http.client.HTTPConnection(HOST, rest.port, timeout=10)
        for _ in range(3):
            conn.request("GET", "/api/items")
            conn.getresponse().read()
        conn.close()
        wait_until_quiet(out)
        rc = capture.finish(signal.SIGINT)
    assert rc == 0, capture.stderr
    assert f"{out}: pcap, " in capture.stdout
    assert "REST exchanges 3 (3 requests, 3 responses)" in capture.stdout
    assert "bytes by category:" in capture.stdout
    # Analysed as `inspector analyze` does, into the cache: the dashboard and a later analyze find it there.
    from inspector.parse.connection import ParserOptions
    from inspector.store import cached_store, store_inputs

    cached = cached_store(store_inputs([out], ParserOptions()))
    assert cached is not None
    with cached as store:
        assert len(store.table("http_messages")) == 6


@needs_root
def test_live_capture_api(tmp_path):
    progress = []
    with echo_server() as port:
        capture = LiveCapture(tmp_path / "api.pcapng", ports=[port], count=10, on_progress=progress.append)
        assert capture.stats.packets == 0
        capture.start()
        assert capture.link_type == LINKTYPE_ETHERNET
        assert not capture.wait(0.01)
        echo_exchanges(port, 10)  # far more than 10 packets
        assert capture.wait(10)
        stats = capture.stop()
        assert capture.stop() == stats  # idempotent
    assert stats.packets == 10 and stats.kernel_drops == 0 and stats.bytes > 10 * 54
    assert progress and progress[-1] == stats
    records, info = read_back(tmp_path / "api.pcapng")
    assert len(records) == 10 and sum(r[2] for r in records) == stats.bytes and info.format == "pcapng"
    # SYN first: nothing before start() was missed, nothing from other ports got in.
    assert records[0][3][47] == 0x02 and {int.from_bytes(r[3][34:36], "big") for r in records} >= {port}


@needs_root
def test_stop_without_traffic_and_unstarted_stop(tmp_path):
    idle = LiveCapture(tmp_path / "never.pcap", ports=[9])
    assert idle.stop().packets == 0 and not (tmp_path / "never.pcap").exists()
    with LiveCapture(tmp_path / "empty.pcap", ports=[9]) as capture:
        pass
    assert capture.stats.packets == 0
    records, info = read_back(tmp_path / "empty.pcap")
    assert records == [] and info.link_types == {LINKTYPE_ETHERNET} and not info.warnings
