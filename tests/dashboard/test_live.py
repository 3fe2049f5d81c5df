"""dashboard.live.follow and the Live page's callback as plain functions, over a pcap written
progressively by PcapWriter from the packets of a bundled capture."""

from __future__ import annotations

import importlib
import os
import shutil

import dash
import pytest

from dashboard.app import create_app
from dashboard.live import COUNTS, LiveFollower, follow, summary_text
from dashboard.store import TableStore
from inspector.analysis.pipeline import analyze_captures
from inspector.capture.files import CaptureInfo, read_packets
from inspector.capture.writers import PcapngWriter, PcapWriter
from tests.conftest import BUNDLED

CHAT = BUNDLED / "chat.pcap"


def chat_packets():
    info = CaptureInfo(path=str(CHAT))
    packets = list(read_packets(CHAT, info))
    (link_type,) = info.link_types
    return packets, link_type


def write(writer, packets):
    for ts_ns, _link_type, wire_len, data in packets:
        writer.write(ts_ns, data, wire_len)
    writer.flush()


def expected_counts(path) -> dict:
    row = analyze_captures([path])["captures"].iloc[0]
    return {"packets": int(row["packets"]), "connections": int(row["connections"]), "wire_bytes": int(row["wire_bytes"])}


@pytest.fixture(scope="module")
def packets():
    return chat_packets()


def test_record_layout(packets):
    # PacketRecord is (ts_ns, link_type, wire_len, data): the fields write() uses
    records, _ = packets
    assert records and all(isinstance(r[3], (bytes, bytearray, memoryview)) for r in records)


@pytest.mark.parametrize("writer_class", [PcapWriter, PcapngWriter])
def test_counts_grow_and_equal_the_analysis_of_the_same_bytes(packets, writer_class, tmp_path):
    records, link_type = packets
    path = tmp_path / ("live.pcapng" if writer_class is PcapngWriter else "live.pcap")
    writer = writer_class(path, link_type, nanosecond=True)
    state, summary = follow(str(path), None)
    assert summary["error"] is None and summary["packets"] == 0 and summary["changed"]
    seen = []
    steps = [len(records) // 3, 2 * len(records) // 3, len(records)]
    done = 0
    for step in steps:
        write(writer, records[done:step])
        done = step
        snapshot = tmp_path / f"snapshot-{step}{path.suffix}"
        shutil.copyfile(path, snapshot)  # the same bytes, analysed directly
        state, summary = follow(str(path), state)
        assert summary["changed"] and summary["error"] is None
        expected = expected_counts(snapshot)
        assert {k: summary[k] for k in expected} == expected
        full = analyze_captures([snapshot])
        overview_ws = int(full["connections"]["ws_messages"].sum())
        assert summary["ws_messages"] == overview_ws
        seen.append(summary["packets"])
    writer.close()
    assert seen == sorted(seen) and seen[0] < seen[-1] == len(records)
    # the finished file: the same numbers as the original capture's analysis
    original = analyze_captures([CHAT])["captures"].iloc[0]
    assert summary["packets"] == int(original["packets"]) and summary["wire_bytes"] == int(original["wire_bytes"])
    assert summary["mix"] and {m["kind"] for m in summary["mix"]} <= {"rest", "websocket", "other"}


def test_unchanged_file_is_not_analysed_again(packets, tmp_path):
    records, link_type = packets
    path = tmp_path / "live.pcap"
    calls = []

    def analyze(paths):
        calls.append(paths)
        return analyze_captures(paths)

    with PcapWriter(path, link_type) as writer:
        write(writer, records[:10])
        state, first = follow(path, None, analyze=analyze)
        again, second = follow(path, state, analyze=analyze)
        assert again is state and not second["changed"] and len(calls) == 1
        assert {k: second[k] for k in COUNTS} == {k: first[k] for k in COUNTS}
        write(writer, records[10:20])
        _, third = follow(path, state, analyze=analyze)
        assert third["changed"] and third["packets"] == 20 and len(calls) == 2


def test_cut_last_record_is_analysed_up_to_the_cut(packets, tmp_path):
    records, link_type = packets
    path = tmp_path / "live.pcap"
    with PcapWriter(path, link_type) as writer:
        write(writer, records[:5])
    with open(path, "ab") as f:  # half of a record, as a writer without whole-record flushes would leave
        f.write(os.urandom(10))
    _, summary = follow(path, None)
    assert summary["error"] is None and summary["packets"] == 5
    assert any("cut short" in w for w in summary["warnings"])


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.pcap", "missing.pcap: no such file"),
    (lambda d: d, "not a regular file"),
])
def test_missing_file_and_directory_are_one_line_errors(tmp_path, make, message):
    state, summary = follow(str(make(tmp_path)), None)
    assert summary["error"].endswith(message) and "\n" not in summary["error"]
    assert state.analysis is None and summary_text(summary) == summary["error"]


def test_not_a_capture_is_the_inspector_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello, not a capture\n")
    _, summary = follow(str(notes), None)
    assert summary["error"] == f"{notes}: not a pcap or pcapng capture (magic 68656c6c)"
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    _, summary = follow(str(empty), None)
    assert summary["error"] == f"{empty}: not a capture file (only 0 bytes)"


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_hostile_paths_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "fifo.pcap"
    os.mkfifo(fifo)  # opening it would block: never opened
    _, summary = follow(str(fifo), None)
    assert summary["error"] == f"{fifo}: not a regular file"
    _, summary = follow("/dev/null", None)
    assert summary["error"] == "/dev/null: not a regular file"
    _, summary = follow("<img src=x onerror=alert(1)>\n\x00.pcap", None)
    assert summary["error"] == "<img src=x onerror=alert(1)>.pcap: no such file"
    _, summary = follow("   ", None)
    assert summary["error"] == "No capture file given."


def test_follower_keeps_a_few_files_only(packets, tmp_path):
    records, link_type = packets
    follower = LiveFollower(keep=2)
    for i in range(4):
        with PcapWriter(tmp_path / f"{i}.pcap", link_type) as writer:
            write(writer, records[:3])
        assert follower.follow(str(tmp_path / f"{i}.pcap"))["packets"] == 3
    assert list(follower._states) == [str(tmp_path / "2.pcap"), str(tmp_path / "3.pcap")]


@pytest.fixture(scope="module")
def live_page():
    create_app(TableStore([]), start=False)  # page modules need a pages app first
    return importlib.import_module("dashboard.pages.live")


def test_page_callback_updates_only_on_change(live_page, packets, tmp_path):
    records, link_type = packets
    store = TableStore([])
    path = tmp_path / "live.pcap"
    status, warnings, figure, data = live_page.handle_live(store, "", None)
    assert status == live_page.HINT and data == {"path": "", "size": -1}
    assert live_page.handle_live(store, "", data) == (dash.no_update,) * 4
    with PcapWriter(path, link_type) as writer:
        write(writer, records[:7])
        status, warnings, figure, data = live_page.handle_live(store, str(path), data)
        assert status.startswith("7 packets, ") and data == {"path": str(path), "size": path.stat().st_size}
        assert figure.layout.title.text == live_page.FIGURE_TITLE
        assert live_page.handle_live(store, str(path), data) == (dash.no_update,) * 4
        write(writer, records[7:])
        status, _, _, data = live_page.handle_live(store, str(path), data)
        assert status.startswith(f"{len(records):,} packets, ")
    status, _, _, data = live_page.handle_live(store, str(tmp_path / "gone.pcap"), data)
    assert status == f"{tmp_path / 'gone.pcap'}: no such file"
