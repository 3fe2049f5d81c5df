"""Worker processes split a capture by connection; the tables must not change."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.capture.files import read_packets
from inspector.decode import shard_of_ports
from tests.conftest import BUNDLED, CORPUS, CORPUS_MISSING
from tests.factories import pcap_file


def assert_same_tables(path):
    single = analyze_captures([path], jobs=1)
    split = analyze_captures([path], jobs=3)
    for name, table in single.tables.items():
        pd.testing.assert_frame_equal(table, split[name], obj=name)
    assert single.warnings == split.warnings


def test_bundled_capture_same_with_workers():
    assert_same_tables(BUNDLED / "chat.pcap")  # 23 connections, REST and WebSocket


def test_many_connections_and_non_tcp_same_with_workers():
    path = CORPUS / "ndpi-http-raw-ip-android.pcap"
    if not path.exists():
        pytest.skip(CORPUS_MISSING)
    assert_same_tables(path)


def test_several_files_keep_ids_unique_with_workers():
    paths = [BUNDLED / "chat.pcap", BUNDLED / "feed.pcap"]
    analysis = analyze_captures(paths, jobs=2)
    ids = analysis["connections"]["conn_id"]
    assert ids.is_unique and list(ids) == list(range(len(ids)))
    assert len(analysis["captures"]) == 2


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_connections_of_linux_loopback_spread_over_workers(workers):
    # Linux gives ephemeral client ports of one parity: against one server port a plain
    # (port sum) mod 2 sends every connection to the same worker.  chat.pcap's
    # rest-per-request variant is such a set: 20 connections to one server port.
    conns = analyze_captures([BUNDLED / "chat.pcap"], jobs=1)["connections"]
    conns = conns[conns["variant"] == "rest-per-request"]
    assert len(conns) == 20 and conns["server_port"].nunique() == 1
    assert (conns["client_port"] + conns["server_port"]).mod(2).nunique() == 1  # the sums: one parity
    owners = Counter(shard_of_ports(c, s, workers) for c, s in zip(conns["client_port"], conns["server_port"]))
    assert len(owners) == workers and max(owners.values()) <= 0.75 * len(conns), owners
    assert all(shard_of_ports(c, s, workers) == shard_of_ports(s, c, workers) for c, s in zip(conns["client_port"], conns["server_port"]))


def test_progress_is_reported_per_file_and_ends_at_one_with_and_without_workers(tmp_path):
    # a capture of > 2 * 8192 TCP packets: chat.pcap's records over and over
    records = list(read_packets(BUNDLED / "chat.pcap"))
    big = tmp_path / "big.pcap"
    big.write_bytes(pcap_file([(ts, data) for _ in range(60) for ts, _link, _wire, data in records]))
    for jobs in (1, 2):
        seen = []
        analyze_captures([big, BUNDLED / "feed.pcap"], jobs=jobs, progress=lambda path, fraction: seen.append((path, fraction)))
        mine = [f for p, f in seen if p == str(big)]
        assert mine == sorted(mine) and mine[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in mine), (jobs, mine)
        assert [f for p, f in seen if p == str(BUNDLED / "feed.pcap")][-1] == 1.0
        if jobs == 1:
            assert any(0.0 < f < 1.0 for f in mine), mine  # reported along the way, not only at the end


def test_gzip_capture_is_inflated_once_for_all_workers(tmp_path, monkeypatch):
    """The parent inflates a gzip capture once and its forked workers read that copy: not one
    inflated copy (CPU and temporary disk up to the cap) per worker. Each opening of a capture's
    bytes is logged to a file, which the workers' writes reach too."""
    import gzip
    import os

    from inspector.capture import files

    log = tmp_path / "opened"
    enter = files.CaptureBytes.__enter__

    def logged_enter(self):
        with open(log, "a") as out:
            out.write(f"{os.getpid()}\n")
        return enter(self)

    monkeypatch.setattr(files.CaptureBytes, "__enter__", logged_enter)
    path = tmp_path / "chat.pcap.gz"
    path.write_bytes(gzip.compress((BUNDLED / "chat.pcap").read_bytes()))
    split = analyze_captures([path], jobs=3)
    assert log.read_text().split() == [str(os.getpid())]
    log.unlink()
    single = analyze_captures([path], jobs=1)
    for name, table in single.tables.items():
        pd.testing.assert_frame_equal(table, split[name], obj=name)
