"""Server-Sent Events in captures built here (tests/hostile.py's frames): what reconnections' event
IDs show, judged only where they can be; and hostile event streams through the whole analysis
(issue 13, section 5): a 50 MB `data:` line without an end, a million empty events, every kind of
line end with BOMs, bytes that are not UTF-8, NULs: findings, no traceback, bytes that reconcile,
and what is held bounded (by bytes traced or peak RSS against a small instance: no clock)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tracemalloc

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.store import open_store
from tests import hostile
from tests.analysis import test_reconciliation
from tests.factories import chunked_body, http_request, http_response
from tests.hostile import FIRST_TS_NS, Flow, client, pcap_file

SSE = {"Content-Type": "text/event-stream"}


def _stream(ids: list[str], start: int = 0) -> bytes:
    return b"".join(f"id: {event_id}\ndata: {start + index}\n\n".encode() for index, event_id in enumerate(ids))


def _sse_connection(index: int, target: str, body: bytes, last_event_id: str | None, ts_ns: int) -> list[tuple[int, bytes]]:
    """One client connection: a GET of `target` (with Last-Event-ID when given) and a chunked event stream."""
    flow = Flow(*client(index))
    headers = {"Host": "example", **({"Last-Event-ID": last_event_id} if last_event_id is not None else {})}
    response = http_response(200, headers={**SSE, "Transfer-Encoding": "chunked"}, body=chunked_body([body]), content_length=False)
    frames = flow.handshake() + flow.exchange(http_request("GET", target, headers=headers), response) + flow.close()
    return [(ts_ns + offset * 1000, frame) for offset, frame in enumerate(frames)]


# target: (the first stream's IDs, the Last-Event-ID sent, the resumed stream's IDs), and what they show
RESUMED = {
    "/next": (["1", "2", "3"], "3", ["4", "5"], "next"),
    "/repeats": (["1", "2", "3"], "3", ["3", "4"], "repeats"),
    "/skips": (["1", "2", "3"], "3", ["6", "7"], "skips"),
    "/after": (["10", "20", "30"], "30", ["50", "60"], "after"),  # the IDs do not go up by one: nothing the IDs can show is lost
    "/words": (["a", "b", "c"], "c", ["d"], ""),  # not numbers: not judged
    "/down": (["3", "2", "1"], "1", ["1"], ""),  # numbers that go down: not judged
}


def test_what_a_reconnection_s_ids_show_and_the_findings(tmp_path):
    stamped, index = [], 0
    for target, (first, sent, resumed, _check) in RESUMED.items():
        stamped += _sse_connection(index, target, _stream(first), None, FIRST_TS_NS + index * 10**9)
        stamped += _sse_connection(index + 1, target, _stream(resumed, 100), sent, FIRST_TS_NS + (index + 1) * 10**9)
        index += 2
    stamped += _sse_connection(index, "/orphan", _stream(["8"]), "7", FIRST_TS_NS + index * 10**9)  # no stream before it here
    path = tmp_path / "reconnections.pcap"
    path.write_bytes(pcap_file(stamped))
    analysis = analyze_captures([path])
    rows = analysis["sse_reconnections"].merge(analysis["http_messages"][["conn_id", "target"]].dropna(), on="conn_id")
    checks = dict(zip(rows["target"], rows["id_check"]))
    assert checks == {**{target: check for target, (*_, check) in RESUMED.items()}, "/orphan": ""}
    next_row = rows[rows["target"] == "/next"].iloc[0]
    assert (next_row.previous_last_event_id, next_row.last_event_id, next_row.first_event_id) == ("3", "3", "4")
    assert next_row.gap_s > 0.9 and next_row.gap_from_end_s > 0.9  # a second between the two connections, less the stream
    orphan = rows[rows["target"] == "/orphan"].iloc[0]
    assert pd.isna(orphan.previous_conn_id) and orphan.previous_last_event_id == ""
    findings = analysis["findings"]
    assert sorted(findings["rule"]) == ["sse-resume-repeats-ids", "sse-resume-skips-ids"]
    skipped = findings[findings["rule"] == "sse-resume-skips-ids"].iloc[0]
    assert skipped.conn_id == rows.loc[rows["target"] == "/skips", "conn_id"].iloc[0] and "2 IDs skipped" in skipped.detail


def _traced_peak(capture: hostile.HostileCapture, folder) -> tuple[int, object]:
    """Bytes the analysis of `capture` held at most (tracemalloc: what Python allocated), and the analysis."""
    path = capture.write(folder)
    tracemalloc.start()
    try:
        analysis = analyze_captures([path], jobs=1)
        return tracemalloc.get_traced_memory()[1], analysis
    finally:
        tracemalloc.stop()


def test_a_50_mb_data_line_without_an_end(tmp_path):
    plain, _ = _traced_peak(hostile.sse_long_line(1, content_type="text/plain"), tmp_path)  # the same 50 MB body, not events
    small, _ = _traced_peak(hostile.sse_long_line(0.1), tmp_path)  # a 5 MB line
    peak, analysis = _traced_peak(hostile.sse_long_line(1), tmp_path)  # a 50 MB line
    # Reading the body as events holds the line up to the parser's limit (1 MiB), the rest only
    # counted: ten times the line, not ten times what reading it as events adds.
    assert peak - plain < (2 << 20), (peak, plain)
    assert peak - plain < small - _traced_peak(hostile.sse_long_line(0.1, content_type="text/plain"), tmp_path)[0] + (1 << 20)
    events = analysis["sse_events"]
    assert events["control"].tolist() == ["comment", "unterminated"]
    assert events["decoded_bytes"].iloc[1] == len(b"data: ") + 50_000_000
    assert sorted(analysis["findings"]["rule"]) == ["sse-line-too-long", "sse-unterminated-event"]
    connections = analysis["connections"]
    assert (connections[list(BYTE_CATEGORIES)].sum(axis=1) == connections["wire_bytes"]).all()
    assert events["wire_bytes"].sum() == analysis["http_messages"]["body_wire_bytes"].sum()


def _analyse_in_a_process(capture: hostile.HostileCapture, folder) -> tuple[int, object]:
    """Peak RSS (KiB) of `inspector analyze CAPTURE --store` in a process of its own, and the store."""
    path = capture.write(folder)
    store = folder / f"{path.stem}.store"
    measure = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "inspector", "analyze", str(path), "--store", str(store),
                          "--jobs", "1"], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1]), open_store(store)


def test_a_million_empty_events_are_rows_in_bounded_memory(tmp_path):
    small_rss, _ = _analyse_in_a_process(hostile.sse_empty_events(0.01), tmp_path)  # 10,000 events
    rss, store = _analyse_in_a_process(hostile.sse_empty_events(1), tmp_path)  # 1,000,000 events, 7 MB
    # Their items and ranges go to disk as they pass a bound, their rows to the store as they
    # come: a hundred times the events, a few bytes more each (measured: +55 MiB; 420 MiB more
    # when a connection's items waited for the sweeps of packets, which 110 packets never reach).
    assert rss - small_rss < 150 * 1024, (rss, small_rss)
    counts = store.sql("SELECT kind, control, count(*) AS n, sum(data_bytes) AS data FROM sse_events GROUP BY ALL ORDER BY ALL")
    assert counts.to_dict("records") == [{"kind": "control", "control": "end", "n": 1, "data": 0},
                                         {"kind": "event", "control": "", "n": 1_000_000, "data": 0}]
    body = store.sql("SELECT body_wire_bytes FROM http_messages WHERE direction = 'server'")["body_wire_bytes"].iloc[0]
    assert store.sql("SELECT sum(wire_bytes) AS wire FROM sse_events")["wire"].iloc[0] == body
    costs = store.sql("SELECT item, count(*) AS n, sum(payload_messages) AS carried FROM message_costs WHERE item LIKE 'sse%' GROUP BY item")
    assert costs.set_index("item")["n"].get("sse_event") == 1_000_000
    assert int(costs.set_index("item")["carried"].get("sse_event")) == 0  # empty data: cost, not work
    connection = store.table("connections").iloc[0]
    assert sum(connection[category] for category in BYTE_CATEGORIES) == connection["wire_bytes"]
    total = store.sql("SELECT sum(wire_bytes) AS wire FROM message_costs")["wire"].iloc[0]
    assert abs(total - connection["wire_bytes"]) < 1e-6 * connection["wire_bytes"]
    assert len(store.table("findings")) == 0


def test_hostile_lines_every_line_end_bom_bad_utf8_and_nul(tmp_path):
    capture = hostile.sse_hostile_lines(0.1)  # 10,000 blocks, 1.5 MB
    path = capture.write(tmp_path)
    analysis = analyze_captures([path])
    events = analysis["sse_events"]
    dispatched = events[events["kind"] == "event"]
    blocks = 10_000
    # Per block: "bom" (the first block only: later BOMs make a field name), "cr", "crlf", the
    # bad bytes, "nul" (its id ignored), " two spaces\n"; the fields-only block dispatches nothing.
    assert len(dispatched) == 1 + 5 * blocks
    assert dispatched["data_text"].iloc[:6].tolist() == ["bom", "cr", "crlf", "\ufffd\ufffd\ufffd", "nul", " two spaces\n"]
    assert dispatched["last_event_id"].iloc[:6].tolist() == ["", "1", "2", "2", "2", "4"]  # "3\0" ignored; "4" set by fields only
    assert (~dispatched["text_valid"]).sum() == blocks and dispatched["retry_ms"].isna().all()
    findings = analysis["findings"]
    assert findings["rule"].tolist() == ["sse-invalid-utf8"] * 101  # 100 listed, one row counting the rest
    assert "9900 more sse-invalid-utf8" in findings["detail"].iloc[-1]
    for check in (test_reconciliation.test_categories_sum_to_wire_bytes, test_reconciliation.test_message_costs_sum_to_wire_bytes,
                  test_reconciliation.test_http_categories_match_messages):
        check(str(path))


@pytest.mark.parametrize("name", ["sse-long-line", "sse-empty-events", "sse-hostile-lines"])
def test_the_cli_reads_them_without_a_traceback(name, tmp_path):
    path = hostile.small(name).write(tmp_path)
    result = subprocess.run([sys.executable, "-m", "inspector", "analyze", str(path), "--no-cache", "--export", str(tmp_path / "out"),
                             "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads((tmp_path / "out" / "sse_events.json").read_text())
