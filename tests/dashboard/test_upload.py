"""The Upload page's callback as a plain function, over a TableStore of its own."""

from __future__ import annotations

import base64
import gzip
import importlib

import pytest
from dash import html

from dashboard import aggregate
from dashboard.app import create_app
from dashboard.store import TableStore
from inspector.analysis.pipeline import analyze_captures
from tests.conftest import BUNDLED
from tests.dashboard.conftest import small_table_records, walk_components

HOSTILE = "<img src=x onerror=alert(1)>.pcap"
CHAT = BUNDLED / "chat.pcap"


@pytest.fixture(scope="module")
def upload():
    # page modules call dash.register_page, which needs a pages app to exist first
    create_app(TableStore([]), start=False)
    return importlib.import_module("dashboard.pages.upload")


def data_url(raw: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


@pytest.fixture
def counted():
    calls = []

    def analyze(paths):
        calls.append(list(paths))
        return analyze_captures(paths)

    store = TableStore([], analyze=analyze)
    assert store.wait(30)
    return store, calls




def test_valid_capture_is_added_with_the_analysis_counts(upload, counted):
    store, calls = counted
    status, result = upload.handle_upload(store, data_url(CHAT.read_bytes()), "chat.pcap")
    expected = analyze_captures([CHAT])["captures"].iloc[0]
    assert status.startswith("chat.pcap: added: ")
    assert f"{int(expected['packets']):,} packets" in status
    assert f"{int(expected['connections']):,} connections" in status
    assert f"{int(expected['wire_bytes']):,} wire bytes" in status
    assert len(calls) == 1
    # added to what every page reads, under the user's file name, from the store's own folder
    tables = store.tables()
    assert len(tables["connections"]) == int(expected["connections"])
    (capture,) = tables["captures"]["capture"]
    assert aggregate._short(capture) == "chat.pcap" and capture.startswith(str(store.upload_dir))
    row = small_table_records(result[0])[0]
    assert row["packets"] == str(int(expected["packets"])) and row["capture"] == "chat.pcap"


def test_gzip_capture_is_added(upload, counted):
    store, _ = counted
    status, _ = upload.handle_upload(store, data_url(gzip.compress(CHAT.read_bytes())), "chat.pcap.gz")
    assert status.startswith("chat.pcap.gz: added: ")


def test_same_bytes_twice_are_analysed_once_and_added_once(upload, counted):
    store, calls = counted
    upload.handle_upload(store, data_url(CHAT.read_bytes()), "chat.pcap")
    status, result = upload.handle_upload(store, data_url(CHAT.read_bytes()), "again.pcap")
    assert len(calls) == 1
    assert status.startswith("again.pcap: already loaded (same bytes as chat.pcap); nothing added")
    assert len(store.tables()["captures"]) == 1
    assert sorted(p.name for p in store.upload_dir.rglob("*") if p.is_file()) == ["chat.pcap"]


def test_junk_bytes_give_the_inspector_error_as_one_line(upload, counted):
    store, _ = counted
    status, result = upload.handle_upload(store, data_url(b"hello, not a capture\n"), "notes.txt")
    assert status == "Not added: notes.txt: not a pcap or pcapng capture (magic 68656c6c)"
    assert result == [] and "\n" not in status
    assert str(store.upload_dir) not in status  # the temporary path is not shown
    assert len(store.tables()["captures"]) == 0
    assert list(store.upload_dir.iterdir()) == []  # refused files are not kept


def test_oversize_upload_is_refused_before_decoding(upload, counted):
    store, calls = counted
    raw = CHAT.read_bytes()
    status, result = upload.handle_upload(store, data_url(raw), "chat.pcap", max_bytes=len(raw) - 1)
    assert status.startswith("chat.pcap: not uploaded: ") and "over the upload limit" in status
    assert result == [] and calls == []
    status, _ = upload.handle_upload(store, data_url(raw), "chat.pcap", max_bytes=len(raw))
    assert "added" in status
    assert upload.MAX_UPLOAD_BYTES == 64 * 1024 * 1024


def test_hostile_file_name_stays_text(upload, counted):
    store, _ = counted
    status, result = upload.handle_upload(store, data_url(CHAT.read_bytes()), HOSTILE)
    assert status.startswith(HOSTILE + ": added: ")
    assert isinstance(status, str)
    assert small_table_records(result[0])[0]["capture"] == HOSTILE  # a string child of an html.Td: text
    assert not any(isinstance(c, (html.Img, html.Iframe, html.Script)) for part in result for c in walk_components(part))
    status, _ = upload.handle_upload(store, data_url(b"junk"), HOSTILE)
    assert status.startswith("Not added: " + HOSTILE + ": ")


@pytest.mark.parametrize("given, shown", [
    ("chat.pcap", "chat.pcap"),
    ("C:\\Users\\me\\chat.pcap", "chat.pcap"),
    ("../../etc/passwd", "passwd"),
    ("..", "upload"),
    (None, "upload"),
    ("a\x00b\nc.pcap", "abc.pcap"),
    ("é" * 300, "é" * 100),
])
def test_display_name(upload, given, shown):
    assert upload.display_name(given) == shown


def test_no_upload_yet_and_bad_base64(upload, counted):
    store, _ = counted
    assert upload.handle_upload(store, None, None) == ("No capture uploaded yet.", [])
    status, _ = upload.handle_upload(store, "data:;base64,@@@@", "x.pcap")
    assert status == "x.pcap: not added: the upload did not arrive as base64 data."
    status, _ = upload.handle_upload(store, "data:;base64,", "empty.pcap")
    assert status == "empty.pcap: not added: the file is empty."


def test_upload_while_sources_are_still_analysed_is_kept(upload):
    store = TableStore([CHAT])  # not started: add_file first, the background run after
    upload.handle_upload(store, data_url(gzip.compress(CHAT.read_bytes())), "chat.pcap.gz")
    assert store.wait(60)
    captures = store.tables()["captures"]["capture"].map(aggregate._short)
    assert sorted(captures) == ["chat.pcap", "chat.pcap.gz"]
    assert store.tables()["connections"]["conn_id"].is_unique
