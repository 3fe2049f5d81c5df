"""dashboard.live.follow and the Live page's callback as plain functions, over a pcap written
progressively by PcapWriter from the packets of a bundled capture; and the folders the Live page
may follow (a path counts by its real path)."""

from __future__ import annotations

import importlib
import os
import shutil
import struct
import threading

import dash
import pytest

from dashboard import ids
from dashboard.app import create_app
from dashboard.live import ALLOWED_FOLDERS, COUNTS, LiveFollower, follow, summary_text
from inspector import cli
from dashboard.store import TableStore
from inspector.analysis.pipeline import Analysis, analyze_captures
from inspector.capture.files import CaptureInfo, read_packets
from inspector.capture.writers import PcapngWriter, PcapWriter
from tests.conftest import BUNDLED
from tests.dashboard.conftest import walk_components

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
    follower = LiveFollower(roots=[tmp_path], keep=2)
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
    store = TableStore([], live_dirs=[tmp_path])
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


# --- allowed folders -----------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path):
    """tmp/allowed (a root) and tmp/outside (not one), each with a copy of chat.pcap."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    for folder in (allowed, outside):
        folder.mkdir()
        shutil.copyfile(CHAT, folder / "chat.pcap")
    return allowed, outside


def chat_packet_count() -> int:
    return int(analyze_captures([CHAT])["captures"].iloc[0]["packets"])


def assert_refused(summary, path, roots):
    error = summary["error"]
    assert error == (f"{path}: not inside a folder the Live page may follow ({ALLOWED_FOLDERS}); "
                     "start the dashboard with --live-dir DIR to add one")
    assert not any(str(root) in error.replace(str(path), "") for root in roots)  # no server path but the one typed
    assert "\n" not in error and summary["packets"] == 0 and summary["size"] == -1


def counting_analyze(calls):
    def analyze(paths):
        calls.append(paths)
        return analyze_captures(paths)

    return analyze


def test_a_file_inside_an_allowed_folder_is_followed(folders):
    allowed, _ = folders
    calls = []
    follower = LiveFollower(roots=[allowed], analyze=counting_analyze(calls))
    assert follower.roots == (allowed.resolve(),)
    summary = follower.follow(str(allowed / "chat.pcap"))
    assert summary["error"] is None and summary["packets"] == chat_packet_count()
    assert len(calls) == 1
    # a path that leaves and comes back into the folder resolves inside it: allowed
    summary = follower.follow(f"{allowed}/../{allowed.name}/chat.pcap")
    assert summary["error"] is None and summary["packets"] == chat_packet_count()


@pytest.mark.parametrize("escape", [
    lambda allowed, outside: f"{allowed}/../outside/chat.pcap",         # `..` out of the folder
    lambda allowed, outside: str(outside / "chat.pcap"),                # absolute path elsewhere
    lambda allowed, outside: f"{allowed}-evil/chat.pcap",               # a sibling sharing the prefix
    lambda allowed, outside: "/etc/passwd",
])
def test_paths_outside_the_allowed_folders_are_refused_unread(folders, escape):
    allowed, outside = folders
    (allowed.parent / f"{allowed.name}-evil").mkdir()
    shutil.copyfile(CHAT, allowed.parent / f"{allowed.name}-evil" / "chat.pcap")
    calls = []
    follower = LiveFollower(roots=[allowed], analyze=counting_analyze(calls))
    path = escape(allowed, outside)
    assert_refused(follower.follow(path), path, [allowed])
    assert calls == [] and follower._states == {}


def test_a_symlink_inside_pointing_outside_is_refused(folders):
    allowed, outside = folders
    link = allowed / "link.pcap"
    link.symlink_to(outside / "chat.pcap")
    (allowed / "linked-dir").symlink_to(outside, target_is_directory=True)
    inner = allowed / "inner.pcap"
    inner.symlink_to(allowed / "chat.pcap")
    calls = []
    follower = LiveFollower(roots=[allowed], analyze=counting_analyze(calls))
    assert_refused(follower.follow(str(link)), link, [allowed])
    assert_refused(follower.follow(str(allowed / "linked-dir" / "chat.pcap")), allowed / "linked-dir" / "chat.pcap", [allowed])
    assert calls == []
    # a symlink that stays inside is followed, and messages name the path as typed
    assert follower.follow(str(inner))["packets"] == chat_packet_count()
    (allowed / "notes.txt").write_text("hello, not a capture\n")
    (allowed / "notes-link").symlink_to(allowed / "notes.txt")
    assert follower.follow(str(allowed / "notes-link"))["error"] == (
        f"{allowed / 'notes-link'}: not a pcap or pcapng capture (magic 68656c6c)")


def test_a_refused_path_says_the_same_whether_or_not_it_exists(folders):
    allowed, outside = folders
    follower = LiveFollower(roots=[allowed])
    there, missing = follower.follow(str(outside / "chat.pcap")), follower.follow(str(outside / "missing.pcap"))
    assert there["error"].replace("chat.pcap", "X") == missing["error"].replace("missing.pcap", "X")


def test_a_symlinked_root_allows_the_folder_it_points_to(folders, tmp_path):
    allowed, _ = folders
    alias = tmp_path / "alias"
    alias.symlink_to(allowed, target_is_directory=True)
    follower = LiveFollower(roots=[alias])
    assert follower.roots == (allowed.resolve(),)
    assert follower.follow(str(alias / "chat.pcap"))["packets"] == chat_packet_count()
    assert follower.follow(str(allowed / "chat.pcap"))["packets"] == chat_packet_count()


def test_no_roots_follows_nothing(folders):
    allowed, _ = folders
    assert_refused(LiveFollower().follow(str(allowed / "chat.pcap")), allowed / "chat.pcap", [allowed])


def test_store_roots_are_cwd_capture_folders_upload_folder_and_live_dirs(folders, tmp_path, monkeypatch):
    allowed, outside = folders
    work, captures, extra = tmp_path / "work", tmp_path / "captures", tmp_path / "extra"
    for folder in (work, captures, extra):
        folder.mkdir()
    shutil.copyfile(CHAT, captures / "a.pcap")
    shutil.copyfile(CHAT, extra / "live.pcap")
    monkeypatch.chdir(work)
    store = TableStore([captures, allowed / "chat.pcap"], live_dirs=[extra])
    assert store.live.roots == (work.resolve(), captures.resolve(), allowed.resolve(), extra.resolve())
    shutil.copyfile(CHAT, work / "here.pcap")
    for path in ("here.pcap", captures / "a.pcap", allowed / "chat.pcap", extra / "live.pcap"):
        summary = store.live.follow(str(path))
        assert summary["error"] is None and summary["packets"] == chat_packet_count(), path
    assert_refused(store.live.follow(str(outside / "chat.pcap")), outside / "chat.pcap", store.live.roots)
    assert_refused(store.live.follow("../outside/chat.pcap"), "../outside/chat.pcap", store.live.roots)
    # the upload folder joins once the store makes it
    upload = store.upload_dir
    assert store.live.roots[-1] == upload.resolve()
    shutil.copyfile(CHAT, upload / "up.pcap")
    assert store.live.follow(str(upload / "up.pcap"))["packets"] == chat_packet_count()
    # without --live-dir the same file is refused
    assert_refused(TableStore([captures]).live.follow(str(extra / "live.pcap")), extra / "live.pcap", [work, captures])


def test_the_cli_live_dir_option_adds_a_root(folders, tmp_path, monkeypatch):
    allowed, outside = folders
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["dashboard", str(CHAT), "--live-dir", str(allowed), "--live-dir", str(outside)])
    store = TableStore(cli.dashboard_sources(args.sources), live_dirs=cli.live_dirs(args.live_dirs))
    assert store.live.roots == (tmp_path.resolve(), CHAT.parent.resolve(), allowed.resolve(), outside.resolve())
    assert store.live.follow(str(outside / "chat.pcap"))["packets"] == chat_packet_count()


def test_page_describes_the_allowed_folders_and_shows_a_refusal_as_text(live_page, folders):
    allowed, outside = folders
    store = TableStore([], live_dirs=[allowed])
    tree = live_page.build_layout()
    (roots_line,) = [c for c in walk_components(tree) if getattr(c, "id", None) == ids.LIVE_ROOTS]
    assert roots_line.children == live_page.ROOTS_TEXT and ALLOWED_FOLDERS in roots_line.children
    assert str(allowed) not in str(tree)  # no server path on the page
    hostile = f"{outside}/<img src=x onerror=alert(1)>.pcap"
    status, warnings, _, data = live_page.handle_live(store, hostile, None)
    assert isinstance(status, str) and status.startswith(f"{hostile}: not inside a folder")
    assert str(allowed) not in status and warnings == "" and data == {"path": hostile, "size": -1}


def test_an_analysis_that_crashes_is_one_line_analysed_once_per_change(folders):
    """A capture that crashes the analysis (not an InspectorError) gives its one line, kept
    until the file changes: never an exception out of the page's callback on every refresh."""
    allowed, _ = folders
    calls = []

    def crashing(paths):
        calls.append(paths)
        raise struct.error("unpack requires a buffer of 16 bytes")

    follower = LiveFollower(roots=[allowed], analyze=crashing)
    path = str(allowed / "chat.pcap")
    for _ in range(3):
        summary = follower.follow(path)
        assert summary["error"] == f"{path}: the analysis failed (error: unpack requires a buffer of 16 bytes)"
    assert len(calls) == 1
    typed = f"{allowed}/../{allowed.name}/./chat.pcap"  # the real path is read; the one typed is named
    assert follower.follow(typed)["error"].startswith(f"{typed}: the analysis failed")


def test_warnings_name_the_path_as_typed(folders, monkeypatch):
    allowed, _ = folders
    monkeypatch.chdir(allowed)

    def warning(paths):
        analysis = analyze_captures(paths)
        return Analysis(analysis.tables, [f"{paths[0]}: capture is cut short after 3 complete packets"])

    summary = LiveFollower(roots=[allowed], analyze=warning).follow("chat.pcap")
    assert summary["warnings"] == ["chat.pcap: capture is cut short after 3 complete packets"]


def test_a_refresh_does_not_wait_for_another_refresh_s_analysis(live_page, folders):
    """While one refresh analyses, the others answer at once (busy), so slow captures never
    hold more than one of the server's threads."""
    allowed, _ = folders
    started, release = threading.Event(), threading.Event()

    def slow(paths):
        started.set()
        assert release.wait(30)
        return analyze_captures(paths)

    store = TableStore([], live_dirs=[allowed])
    store.live = LiveFollower(roots=[allowed], analyze=slow)
    path = str(allowed / "chat.pcap")
    first = threading.Thread(target=store.live.follow, args=(path,))
    first.start()
    assert started.wait(30)
    assert store.live.follow(path)["busy"]
    status, warnings, figure, data = live_page.handle_live(store, path, {"path": path, "size": 10})
    assert status == f"{path}: analysing (the page updates when it is done)"
    assert (warnings, figure, data) == (dash.no_update, dash.no_update, None)  # the next refresh shows all
    release.set()
    first.join(30)
    status, _, _, _ = live_page.handle_live(store, path, None)
    assert status.startswith(f"{chat_packet_count():,} packets, ")
