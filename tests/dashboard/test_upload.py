"""Uploads without a browser: the store's UploadQueue (written to disk in blocks, analysed by its
worker thread, a status per job), the upload URL through Flask's test client, and the Upload
page's polling callback as a plain function."""

from __future__ import annotations

import gzip
import importlib
import io
import struct
import threading

import pytest
from dash import html

from dashboard import uploads
from dashboard.app import REQUEST_MAX_BYTES, create_app
from dashboard.store import TableStore
from inspector.analysis.pipeline import analyze_captures
from tests.conftest import BUNDLED
from tests.dashboard.conftest import small_table_records, walk_components

HOSTILE = "<img src=x onerror=alert(1)>.pcap"
CHAT = BUNDLED / "chat.pcap"
WAIT = 60


@pytest.fixture(scope="module")
def page():
    # page modules call dash.register_page, which needs a pages app to exist first
    create_app(TableStore([]), start=False)
    return importlib.import_module("dashboard.pages.upload")


@pytest.fixture
def counted():
    calls = []

    def analyze(paths, progress=None):
        calls.append(list(paths))
        return analyze_captures(paths, progress=progress)

    store = TableStore([], analyze_upload=analyze)
    assert store.wait(30)
    yield store, calls
    store.close()


def upload(store, raw: bytes, name, length: int | None = -1):
    """Send `raw` as an upload (declaring its length unless told otherwise) and wait for its analysis."""
    job = store.uploads.receive(io.BytesIO(raw), name, len(raw) if length == -1 else length)
    return store.uploads.wait(job.id, WAIT)


def files_in(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_valid_capture_is_added_with_the_analysis_counts(page, counted):
    store, calls = counted
    job = upload(store, CHAT.read_bytes(), "chat.pcap")
    expected = analyze_captures([CHAT])["captures"].iloc[0]
    assert job.state == uploads.ADDED and job.line.startswith("chat.pcap: added: ")
    assert f"{int(expected['packets']):,} packets" in job.line
    assert f"{int(expected['connections']):,} connections" in job.line
    assert f"{int(expected['wire_bytes']):,} wire bytes" in job.line
    assert len(calls) == 1
    # added to what every page reads, under the user's file name (never a server path)
    tables = store.tables()
    assert len(tables["connections"]) == int(expected["connections"])
    assert list(tables["captures"]["capture"]) == ["chat.pcap"] and set(tables["connections"]["capture"]) == {"chat.pcap"}
    assert files_in(store.upload_dir) == ["chat.pcap"]
    status, result, earlier, done = page.upload_status(store, [job.id])
    assert status == job.line and earlier == [] and done
    row = small_table_records(result[0])[0]
    assert row["packets"] == str(int(expected["packets"])) and row["capture"] == "chat.pcap"


def test_gzip_capture_is_added(counted):
    store, _ = counted
    assert upload(store, gzip.compress(CHAT.read_bytes()), "chat.pcap.gz").line.startswith("chat.pcap.gz: added: ")


def test_same_bytes_twice_are_analysed_once_and_added_once(counted):
    store, calls = counted
    upload(store, CHAT.read_bytes(), "chat.pcap")
    job = upload(store, CHAT.read_bytes(), "again.pcap")
    assert len(calls) == 1
    assert job.state == uploads.LOADED
    assert job.line.startswith("again.pcap: already loaded (same bytes as chat.pcap); nothing added")
    assert len(store.tables()["captures"]) == 1
    assert files_in(store.upload_dir) == ["chat.pcap"]


def test_two_captures_of_one_name_keep_apart(counted):
    store, _ = counted
    upload(store, CHAT.read_bytes(), "feed.pcap")
    upload(store, gzip.compress(CHAT.read_bytes()), "feed.pcap")
    assert sorted(store.tables()["captures"]["capture"]) == ["feed.pcap", "feed.pcap (2)"]
    assert files_in(store.upload_dir) == ["feed.pcap", "feed.pcap"]  # each upload has a folder of its own


def test_junk_bytes_give_the_inspector_error_as_one_line_and_leave_no_file(counted):
    store, _ = counted
    job = upload(store, b"hello, not a capture\n", "notes.txt")
    assert job.state == uploads.FAILED
    assert job.line == "Not added: notes.txt: not a pcap or pcapng capture (magic 68656c6c)"
    assert str(store.upload_dir) not in job.line  # the temporary path is not shown
    assert len(store.tables()["captures"]) == 0
    assert list(store.upload_dir.iterdir()) == []  # refused files are not kept, nor their folders


def test_a_gzip_bomb_stops_at_the_inflation_cap_and_leaves_no_file(monkeypatch, tmp_path):
    """Uploads inflate under the dashboard's cap (the CLI's): over it, one line naming the cap,
    never the CLI option a browser user does not have, and the file is gone."""
    from dashboard import analysing
    from tests.factories import gzip_bomb

    monkeypatch.setattr(analysing, "UPLOAD_MAX_INFLATED_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.pcap.gz"
    gzip_bomb(bomb, 8 << 20)
    store = TableStore([])  # uploads through analyze_untrusted, as served
    assert store.wait(30)
    try:
        job = upload(store, bomb.read_bytes(), "bomb.pcap.gz")
        assert job.state == uploads.FAILED
        assert job.line == ("Not added: bomb.pcap.gz: inflates to more than 1,048,576 bytes, "
                            "the dashboard's cap on a compressed capture's data")
        assert list(store.upload_dir.iterdir()) == []
        assert upload(store, gzip.compress(CHAT.read_bytes()), "chat.pcap.gz").state == uploads.ADDED
    finally:
        store.close()


def test_an_analysis_that_crashes_fails_its_upload_only(counted):
    store, _ = counted

    def crashing(paths, progress=None):
        raise struct.error("unpack requires a buffer of 16 bytes")

    store._analyze_upload = crashing
    job = upload(store, CHAT.read_bytes(), "crash.pcap")
    assert job.state == uploads.FAILED
    assert job.line == "Not added: crash.pcap: the analysis failed (error: unpack requires a buffer of 16 bytes)"
    assert list(store.upload_dir.iterdir()) == []
    store._analyze_upload = analyze_captures  # the worker goes on with the next upload
    assert upload(store, CHAT.read_bytes(), "chat.pcap").state == uploads.ADDED


def test_analysis_runs_in_the_worker_with_a_status(page, counted):
    """The request only writes the file and queues it: it returns while the analysis is stuck,
    whose progress the status shows, and the uploads after it wait in the queue."""
    store, _ = counted
    started, release = threading.Event(), threading.Event()

    def slow(paths, progress=None):
        progress(str(paths[0]), 0.25)
        started.set()
        assert release.wait(WAIT)
        return analyze_captures(paths, progress=progress)

    store._analyze_upload = slow
    first = store.uploads.receive(io.BytesIO(CHAT.read_bytes()), "bomb.pcap", None)
    assert first.line == "bomb.pcap: queued for analysis."
    assert started.wait(WAIT)
    second = store.uploads.receive(io.BytesIO(gzip.compress(CHAT.read_bytes())), "next.pcap.gz", None)
    assert store.uploads.job(first.id).line == "bomb.pcap: analysing: 25%."
    status, _result, earlier, done = page.upload_status(store, [first.id, second.id])
    assert status == "next.pcap.gz: queued for analysis." and not done
    assert [li.children for li in earlier] == ["bomb.pcap: analysing: 25%."]
    release.set()
    assert store.uploads.wait(second.id, WAIT).state == uploads.ADDED
    assert store.uploads.job(first.id).state == uploads.ADDED
    assert page.upload_status(store, [first.id, second.id])[3]  # all done: the page stops polling


class Unreadable(io.RawIOBase):
    def read(self, *_):
        raise AssertionError("the body was read")


def test_a_declared_length_over_the_limit_is_refused_unread(counted):
    store, calls = counted
    with pytest.raises(uploads.UploadRefused) as refused:
        store.uploads.receive(Unreadable(), "big.pcap", uploads.MAX_UPLOAD_BYTES + 1)
    assert refused.value.status == 413
    assert refused.value.line == "big.pcap: not uploaded: 64.0 MiB is over the upload limit of 64.0 MiB."
    assert calls == [] and list(store.upload_dir.iterdir()) == []


class Counting(io.RawIOBase):
    """An endless body that counts what is read of it."""

    def __init__(self):
        self.read_bytes = 0

    def read(self, n=-1):
        self.read_bytes += n
        return b"\0" * n


def test_a_body_without_length_is_read_up_to_the_limit_only(counted):
    store, _ = counted
    body = Counting()
    with pytest.raises(uploads.UploadRefused) as refused:
        store.uploads.receive(body, "endless.pcap", None, limit=3 * uploads.UPLOAD_BLOCK_BYTES)
    assert refused.value.status == 413 and "over the upload limit" in refused.value.line
    assert body.read_bytes == 3 * uploads.UPLOAD_BLOCK_BYTES + 1
    assert list(store.upload_dir.iterdir()) == []
    assert uploads.MAX_UPLOAD_BYTES == 64 * 1024 * 1024


def test_empty_and_cut_short_uploads_are_refused(counted):
    store, _ = counted
    for raw, length, line in [(b"", 0, "empty.pcap: not added: the file is empty."),
                              (b"abc", 10, "empty.pcap: not uploaded: the upload was cut short (3 of 10 bytes).")]:
        with pytest.raises(uploads.UploadRefused) as refused:
            store.uploads.receive(io.BytesIO(raw), "empty.pcap", length)
        assert refused.value.status == 400 and refused.value.line == line
    assert list(store.upload_dir.iterdir()) == []


def test_a_full_queue_refuses_more(counted, monkeypatch):
    store, _ = counted
    release = threading.Event()
    store._analyze_upload = lambda paths, progress=None: (release.wait(WAIT), analyze_captures(paths))[1]
    monkeypatch.setattr(uploads, "MAX_WAITING_UPLOADS", 2)
    jobs = [store.uploads.receive(io.BytesIO(CHAT.read_bytes()), f"{n}.pcap", None) for n in range(3)]  # one analysing
    with pytest.raises(uploads.UploadRefused) as refused:
        store.uploads.receive(io.BytesIO(CHAT.read_bytes()), "more.pcap", None)
    assert refused.value.status == 503 and "2 uploads are waiting" in refused.value.line
    release.set()
    assert all(store.uploads.wait(job.id, WAIT).finished for job in jobs)


def test_hostile_file_name_stays_text(page, counted):
    store, _ = counted
    job = upload(store, CHAT.read_bytes(), HOSTILE)
    assert job.line.startswith(HOSTILE + ": added: ")
    _status, result, _earlier, _done = page.upload_status(store, [job.id])
    assert small_table_records(result[0])[0]["capture"] == HOSTILE  # a string child of an html.Td: text
    assert not any(isinstance(c, (html.Img, html.Iframe, html.Script)) for part in result for c in walk_components(part))
    assert upload(store, b"junk", HOSTILE).line.startswith("Not added: " + HOSTILE + ": ")


@pytest.mark.parametrize("given, shown", [
    ("chat.pcap", "chat.pcap"),
    ("C:\\Users\\me\\chat.pcap", "chat.pcap"),
    ("../../etc/passwd", "passwd"),
    ("..", "upload"),
    (None, "upload"),
    ("a\x00b\nc.pcap", "abc.pcap"),
    ("é" * 300, "é" * 100),
])
def test_display_name(given, shown):
    assert uploads.display_name(given) == shown


def test_polling_takes_only_known_job_ids(page, counted):
    store, _ = counted
    assert page.upload_status(store, None) == (page.NO_UPLOAD, [], [], True)
    assert page.upload_status(store, ["nope", 3, {"a": 1}]) == (page.NO_UPLOAD, [], [], True)
    assert page.upload_status(store, "not a list") == (page.NO_UPLOAD, [], [], True)


def test_upload_while_sources_are_still_analysed_is_kept():
    store = TableStore([CHAT])  # not started: the upload first, the background run after
    job = upload(store, gzip.compress(CHAT.read_bytes()), "chat.pcap.gz")
    assert job.state == uploads.ADDED
    assert store.wait(60)
    assert sorted(store.tables()["captures"]["capture"]) == ["chat.pcap", "chat.pcap.gz"]
    assert store.tables()["connections"]["conn_id"].is_unique
    store.close()


def test_the_same_bytes_as_a_source_are_already_loaded(tmp_path):
    source = tmp_path / "chat.pcap"  # without its sidecar, which changes the labels and so the content key
    source.write_bytes(CHAT.read_bytes())
    store = TableStore([source])
    assert store.wait(60)
    job = upload(store, CHAT.read_bytes(), "mine.pcap")
    assert job.line.startswith("mine.pcap: already loaded (same bytes as chat.pcap)")
    store.close()


def test_close_removes_the_upload_folder(counted):
    store, _ = counted
    upload(store, CHAT.read_bytes(), "chat.pcap")
    folder = store.upload_dir
    store.close()
    assert not folder.exists()
    with pytest.raises(uploads.UploadRefused) as refused:
        store.uploads.receive(io.BytesIO(b"x"), "late.pcap", 1)
    assert refused.value.status == 503


@pytest.fixture
def client(counted):
    store, _ = counted
    app = create_app(store)
    return store, app.server.test_client()


def test_the_upload_url_takes_the_bytes_and_answers_a_job(client):
    store, http = client
    answer = http.post("/upload-capture?name=chat.pcap", data=CHAT.read_bytes(), content_type="application/octet-stream")
    assert answer.status_code == 202 and answer.json["line"] == "chat.pcap: queued for analysis."
    assert store.uploads.wait(answer.json["job"], WAIT).state == uploads.ADDED
    form = http.post("/upload-capture?name=x.pcap", data={"file": (io.BytesIO(b"abc"), "x.pcap")})
    assert form.status_code == 415  # a form another site could send without asking is not taken
    too_big = http.post("/upload-capture?name=big.pcap", input_stream=io.BytesIO(b""), content_type="application/octet-stream",
                        environ_overrides={"CONTENT_LENGTH": str(uploads.MAX_UPLOAD_BYTES + 1)})
    assert too_big.status_code == 413 and "over the upload limit" in too_big.json["line"]


def test_other_requests_over_the_request_limit_are_refused(client):
    _store, http = client
    body = b"{" + b" " * REQUEST_MAX_BYTES + b"}"
    answer = http.post("/_dash-update-component", data=body, content_type="application/json")
    assert answer.status_code == 413


def test_an_upload_is_streamed_into_a_store_on_disk_by_a_child_process(tmp_path, monkeypatch):
    """As served (no analyze_upload given): the upload's tables are those of analyze_captures,
    read from a store in the dashboard's temporary folder, made by another process (the
    dashboard's heap never holds the analysis) with the upload limits, and the user's cache of
    analyses is not used."""
    import dashboard.store as store_module
    from dashboard import analysing
    from inspector.analysis.tables import TABLE_NAMES

    children = []

    def counting_child(function, *args, progress=None):
        children.append(function)
        return analysing.in_child(function, *args, progress=progress)

    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(store_module, "in_child", counting_child)
    store = TableStore([])
    assert store.wait(30)
    try:
        assert upload(store, CHAT.read_bytes(), "chat.pcap").state == uploads.ADDED
        assert len(children) == 1 and children[0].keywords == {"max_inflated_bytes": analysing.UPLOAD_MAX_INFLATED_BYTES}
        (loaded,) = store._shown
        assert loaded.store.folder.is_relative_to(store._scratch.name)
        expected = analyze_captures([loaded.store.table("captures")["capture"].iloc[0]]).tables
        for name in TABLE_NAMES:
            assert len(loaded.store.table(name)) == len(expected[name]), name
        assert not (tmp_path / "cache").exists()
    finally:
        store.close()
