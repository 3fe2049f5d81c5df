"""Worker processes split a capture by connection; the tables must not change."""

from __future__ import annotations

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from tests.conftest import BUNDLED, CORPUS, CORPUS_MISSING


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
