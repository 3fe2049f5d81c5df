"""`inspector dashboard` as a real process served by waitress, over real HTTP: request bodies
refused where they are read (and the server's memory does not grow by them), the Host
allow-list and the security headers on every answer, the grid's page cap, capture names and
never server paths in any page, callback or CSV, uploads analysed by the worker while other
requests are served, and the upload folder removed on SIGTERM and Ctrl-C."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from dashboard.analysing import UPLOAD_MAX_INFLATED_BYTES
from dashboard.components import MAX_ROWS_PER_REQUEST
from dashboard.uploads import MAX_UPLOAD_BYTES
from tests.conftest import BUNDLED
from tests.dashboard.served import DashboardProcess
from tests.factories import gzip_bomb

SECRET = "ZZSECRET"  # in the name of the folders the captures are served from: never in an answer
PAGES = ("/", "/compare", "/connections", "/frames", "/findings", "/upload", "/live")
GiB = 1 << 30
MiB = 1 << 20
POLL = 0.1
WAIT = 60.0


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Captures in two deep folders (each named with SECRET), two of them called feed.pcap; the
    server's own TMPDIR and working directory apart."""
    root = tmp_path_factory.mktemp("served")
    deep = root.joinpath("srv", "a", "b", "c", "d", "e", f"captures-{SECRET}")
    other = root.joinpath("srv", "x", "y", f"other-{SECRET}")
    for folder in (deep, other):
        folder.mkdir(parents=True)
    for stem in ("chat", "feed", "bulk", "idle"):
        for suffix in (".pcap", ".json"):
            shutil.copyfile(BUNDLED / f"{stem}{suffix}", deep / f"{stem}{suffix}")
    shutil.copyfile(BUNDLED / "feed.pcap", other / "feed.pcap")  # no sidecar: other bytes to the store
    tmpdir = root / "tmp"
    tmpdir.mkdir()
    return deep, other, tmpdir


@pytest.fixture(scope="module")
def server(folders):
    deep, other, tmpdir = folders
    served = DashboardProcess([deep, other / "feed.pcap"], tmpdir)
    try:
        assert served.wait_analysed() == "5 of 5 captures analysed"
        yield served
    finally:
        served.stop()


def upload(server, raw: bytes, name: str, **headers) -> tuple[int, dict]:
    status, _, body = server.request("POST", f"/upload-capture?name={name}", raw,
                                     {"Content-Type": "application/octet-stream", **headers})
    return status, json.loads(body)


UPLOAD_OUTPUTS = ["upload-status.children", "upload-result.children", "upload-earlier.children", "upload-poll.disabled"]


def upload_status(server, job_ids: list[str]) -> tuple[str, dict]:
    """The upload page's status line for these jobs, and the whole callback response."""
    response = server.callback_json(UPLOAD_OUTPUTS, {"upload-poll.n_intervals": 1, "upload-jobs.data": job_ids})
    return response["upload-status"]["children"], response


def wait_status(server, job_ids, predicate, timeout=WAIT) -> str:
    deadline = time.monotonic() + timeout
    while not predicate(line := upload_status(server, job_ids)[0]):
        assert time.monotonic() < deadline, line
        time.sleep(POLL)
    return line


def rows(server, table: str, request: dict) -> dict:
    return server.callback_json([f"{table}.getRowsResponse"], {f"{table}.getRowsRequest": request})[table]["getRowsResponse"]


# --- request bodies ------------------------------------------------------------------------


def post_big(server, path: str, declared: int, content_type: str) -> str:
    """POST a body declared `declared` bytes long and send it, block by block, until the server
    stops taking it; the status line the server answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {declared}\r\n\r\n".encode())
        block, sent = b"\0" * MiB, 0
        try:
            while sent < declared:
                sock.sendall(block[: declared - sent])
                sent += len(block)
        except OSError:  # refused: the server answered and closed the connection
            pass
        answer = b""
        try:
            while b"\r\n" not in answer and (data := sock.recv(4096)):
                answer += data
        except ConnectionResetError:
            pass
    return answer.split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("path, content_type, declared", [
    ("/upload-capture?name=big.pcap", "application/octet-stream", GiB),  # over the upload limit: waitress refuses it
    ("/_dash-update-component", "application/json", GiB),
    ("/_dash-update-component", "application/json", 32 * MiB),  # under the upload limit, over a callback's: Flask refuses it
])
def test_a_body_over_the_limit_is_refused_and_not_held(server, path, content_type, declared):
    before = server.rss()
    status = post_big(server, path, declared, content_type)
    grown = server.rss() - before
    assert status.startswith("HTTP/1.1 413"), status
    assert grown < 16 * MiB, f"the server grew by {grown / MiB:.1f} MiB for a {declared / MiB:.0f} MiB body"
    assert server.request("GET", "/")[0] == 200  # and goes on serving


def test_an_upload_of_exactly_the_limit_is_taken(server):
    before = server.rss()
    status, answer = upload(server, b"\0" * MAX_UPLOAD_BYTES, "zeros.pcap")
    assert status == 202, answer
    line = wait_status(server, [answer["job"]], lambda t: t.startswith("Not added"))
    assert line == "Not added: zeros.pcap: not a pcap or pcapng capture (magic 00000000)"
    assert server.rss() - before < MAX_UPLOAD_BYTES  # never held whole, let alone as base64 and JSON


# --- Host allow-list and headers -----------------------------------------------------------


@pytest.mark.parametrize("host, allowed", [
    ("{server}", True), ("127.0.0.1", True), ("localhost:{port}", True), ("LOCALHOST", True), ("localhost.", True),
    ("[::1]:{port}", True), ("[::1]", True),
    ("evil.example", False), ("evil.example:{port}", False), ("localhost.evil.example", False),
    ("127.0.0.1.nip.io:{port}", False), ("127.0.0.1:{port}@evil.example", False), ("", False), ("::1", False),
])
def test_only_the_bound_host_names_are_answered(server, host, allowed):
    host = host.format(server=server.host, port=server.port)
    status, headers, body = server.request("GET", "/", headers={"Host": host})
    assert (status == 200) == allowed, (host, status)
    if not allowed:
        assert status == 400 and body.startswith(b"Host not allowed") and headers["x-frame-options"] == "DENY"
        # refused before any Dash handler: a callback and an upload are refused the same way
        assert server.callback(["progress.children", "progress-interval.disabled"], {"progress-interval.n_intervals": 1},
                               headers={"Host": host})[0] == 400
        assert server.request("POST", "/upload-capture?name=x.pcap", b"x", {"Host": host, "Content-Type": "application/octet-stream"})[0] == 400


def readable(body: bytes) -> str:
    """An answer as text, a JSON one without its escapes (Dash writes "/" as \\u002f)."""
    text = body.decode(errors="replace")
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


def inline_script_hashes(page: str) -> set[str]:
    """The CSP hashes of the scripts a browser runs inline in `page` (not JSON, not in comments)."""
    page = re.sub(r"<!--.*?-->", "", page, flags=re.S)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    return {"'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
            for attrs, body in scripts if "src=" not in attrs and "application/json" not in attrs}


@pytest.mark.parametrize("path", [*PAGES, "/_dash-layout", "/assets/upload.js", "/no/such/page", "/_dash-component-suites/nope.js"])
def test_every_answer_has_the_security_headers(server, path):
    status, headers, body = server.request("GET", path)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "'unsafe-eval'" not in csp
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src
    if path in PAGES:
        assert status == 200 and inline_script_hashes(body.decode()) <= set(script_src.split())


# --- the grid's page cap -------------------------------------------------------------------


@pytest.mark.parametrize("table", ["frames-table", "connections-table"])
def test_a_row_request_gets_at_most_the_cap(server, table):
    response = rows(server, table, {"startRow": 0, "endRow": 10**9})
    assert len(response["rowData"]) == min(MAX_ROWS_PER_REQUEST, response["rowCount"])
    if table == "frames-table":
        assert response["rowCount"] > MAX_ROWS_PER_REQUEST  # the cap really cut it


# --- names, never paths --------------------------------------------------------------------


def test_no_answer_names_a_server_path(server, folders):
    deep, other, tmpdir = folders
    answers: dict[str, bytes] = {}
    for page in PAGES:
        answers[f"GET {page}"] = server.request("GET", page)[2]
        answers[f"content {page}"] = server.callback(["_pages_content.children", "_pages_store.data"],
                                                     {"_pages_location.pathname": page, "_pages_location.search": ""})[1]
    for path in ("/_dash-layout", "/_dash-dependencies"):
        answers[path] = server.request("GET", path)[2]
    answers["progress"] = server.callback(["progress.children", "progress-interval.disabled"], {"progress-interval.n_intervals": 1})[1]
    overview = json.loads(answers["content /"])["response"]["_pages_content"]["children"]
    names = sorted(set(re.findall(r'"value": ?"([^"]+\.pcap[^"]*)"', json.dumps(overview))))
    assert names == ["bulk.pcap", "chat.pcap", "feed.pcap", "feed.pcap (2)", "idle.pcap"]  # the dropdown's values
    for name in names:
        answers[f"overview {name}"] = server.callback(["overview-bytes-by-category.figure", "overview-protocol-mix.figure"],
                                                      {"overview-capture.value": name})[1]
        compare = ["compare-cost-split.figure", "compare-efficiency.figure", "compare-break-even.figure",
                   "compare-latency.figure", "compare-crossovers.children"]
        answers[f"compare {name}"] = server.callback(compare, {"compare-capture.value": name})[1]
        answers[f"compare csv {name}"] = server.callback(["compare-csv-download.data"], {"compare-csv-button.n_clicks": 1},
                                                         {"compare-capture.value": name})[1]
    for page in ("overview", "findings"):
        answers[f"{page} csv"] = server.callback([f"{page}-csv-download.data"], {f"{page}-csv-button.n_clicks": 1})[1]
    for table, page in (("connections-table", "connections"), ("frames-table", "frames")):
        answers[f"{page} rows"] = json.dumps(rows(server, table, {"startRow": 0, "endRow": 500})).encode()
        answers[f"{page} csv"] = server.callback([f"{page}-csv-download.data"], {f"{page}-csv-button.n_clicks": 1},
                                                 {f"{table}.getRowsRequest": None})[1]
    first_frame = json.loads(answers["frames rows"])["rowData"][0]["id"]
    answers["frame detail"] = server.callback(["frames-detail.children"], {"frames-table.cellClicked": {"rowId": first_frame}})[1]
    answers["connection detail"] = server.callback(["connections-attribution.figure", "connections-timeline.figure"],
                                                   {"connections-table.cellClicked": {"rowId": "0"}})[1]
    for raw, name in ((gzip.compress((BUNDLED / "idle.pcap").read_bytes()), "idle.pcap.gz"), (b"junk", "junk.pcap")):
        status, job = upload(server, raw, name)
        answers[f"upload {name}"] = json.dumps(job).encode()
        wait_status(server, [job["job"]], lambda t: t.startswith((f"{name}: added", "Not added")))
        answers[f"upload status {name}"] = json.dumps(upload_status(server, [job["job"]])[1]).encode()
    typed = str(deep / "chat.pcap")  # the Live page echoes what the user typed, and only that
    live = server.callback(["live-status.children", "live-warnings.children", "live-wire-bytes.figure", "live-state.data"],
                           {"live-interval.n_intervals": 1, "live-path.value": typed}, {"live-state.data": None})[1]
    answers["live"] = readable(live).replace(typed, "").encode()
    assert b"packets" in live
    answers["live refused"] = server.callback(
        ["live-status.children", "live-warnings.children", "live-wire-bytes.figure", "live-state.data"],
        {"live-interval.n_intervals": 1, "live-path.value": "/etc/passwd"}, {"live-state.data": None})[1]

    uploads = [p for p in tmpdir.iterdir() if p.name.startswith("inspector-uploads-")]
    assert len(uploads) == 1
    leaks = {what: text for what, body in answers.items()
             for text in [readable(body)]
             if SECRET in text or str(deep.parent) in text or str(tmpdir) in text or uploads[0].name in text}
    assert leaks == {}, {what: text[:200] for what, text in leaks.items()}
    assert b"feed.pcap (2)" in answers["overview csv"] and b"idle.pcap.gz: added" in answers["upload status idle.pcap.gz"]


# --- uploads while a gzip bomb is analysed; SIGTERM and Ctrl-C -----------------------------


def upload_folders(tmpdir: Path) -> list[Path]:
    return [p for p in tmpdir.iterdir() if p.name.startswith("inspector-uploads-")]


def test_a_gzip_bomb_keeps_only_the_worker_busy_and_sigterm_cleans_up(tmp_path):
    """While the worker analyses a bomb, pages, callbacks and uploads are answered (the bomb's
    status says "analysing" before and after them); SIGTERM then stops the server, bomb and
    all, and removes the upload folder."""
    served = DashboardProcess([BUNDLED / "chat.pcap"], tmp_path)
    try:
        served.wait_analysed()
        # just under the inflation cap: minutes of zero-length records for the worker
        gzip_bomb(tmp_path / "bomb.pcap.gz", UPLOAD_MAX_INFLATED_BYTES - 4 * MiB)
        status, bomb = upload(served, (tmp_path / "bomb.pcap.gz").read_bytes(), "bomb.pcap.gz")
        assert status == 202
        wait_status(served, [bomb["job"]], lambda t: t.startswith("bomb.pcap.gz: analysing"))
        assert served.request("GET", "/connections")[0] == 200
        assert rows(served, "connections-table", {"startRow": 0, "endRow": 20})["rowCount"] == 23
        status, chat = upload(served, gzip.compress((BUNDLED / "chat.pcap").read_bytes()), "chat.pcap.gz")
        assert status == 202 and chat["line"] == "chat.pcap.gz: queued for analysis."
        assert upload_status(served, [bomb["job"]])[0].startswith("bomb.pcap.gz: analysing")
        assert upload_status(served, [chat["job"]])[0] == "chat.pcap.gz: queued for analysis."
        (folder,) = upload_folders(tmp_path)
        assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["bomb.pcap.gz", "chat.pcap.gz"]
    finally:
        code = served.stop(signal.SIGTERM)
    assert upload_folders(tmp_path) == [] and code == 0, "".join(served.stderr)


def test_ctrl_c_removes_the_upload_folder(tmp_path):
    served = DashboardProcess([BUNDLED / "chat.pcap"], tmp_path)
    try:
        served.wait_analysed()
        status, job = upload(served, gzip.compress((BUNDLED / "chat.pcap").read_bytes()), "chat.pcap.gz")
        assert status == 202
        wait_status(served, [job["job"]], lambda t: t.startswith("chat.pcap.gz: added"))
        assert len(upload_folders(tmp_path)) == 1
    finally:
        code = served.stop(signal.SIGINT)
    assert upload_folders(tmp_path) == [] and code == 0, "".join(served.stderr)
