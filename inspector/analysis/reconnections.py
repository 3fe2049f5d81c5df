"""Server-Sent Event streams that reconnect: the table sse_reconnections and its findings.

An EventSource whose stream drops connects again after the retry time, sending the last event ID it
saw as Last-Event-ID, and the server goes on after it (WHATWG HTML 9.2).  Here a request with a
Last-Event-ID header whose response is a text/event-stream (sse_events rows) resumes the latest
stream before it from the same client address to the same server address, port and target: on a
new connection, or on the same one after the stream's response ended.  Each gets a row: the gap
from the previous stream's last event, and from its end, to the first event after the reconnection,
and what the event IDs show.

IDs are only judged where they can be: the ID sent and the first ID after it are numbers (ASCII
digits), and the IDs of both streams are numbers that never go down.  Then a first ID not above the
one sent repeats events the client had (`repeats`, a finding); one more than it is `next`; more
than one past it is `skips` (a finding) only when both streams' IDs go up by one from event to
event, else `after` (nothing the IDs can show was lost).  Anything else is not judged ("").

The streams are summed up from the tables with one DuckDB query, the same over the tables of a
capture in memory (analyze_captures) and over a store's parts (store.build), then matched here.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from inspector.analysis.tables import make_table

# The text/event-stream responses of the same client, server and target as a request that sent a
# Last-Event-ID (only those: a capture of a million streams that never reconnect costs one scan),
# each with its request (the Last-Event-ID it sent, if any), its events' times and IDs, and its
# response's end.  IDs are numbers when 1 to 18 ASCII digits (int64); the header's value is read as
# the table keeps an event ID, 200 characters at most.
STREAMS_SQL = r"""
WITH requests AS (
    SELECT c.capture, r.conn_id, r.exchange_id, r.stream_id, c.client_ip, c.server_ip, c.server_port, r.target, r.ts AS request_ts,
           regexp_matches(r.headers, '(?im)^last-event-id[ \t]{0,16}:') AS resumes,
           rtrim(regexp_extract(r.headers, '(?im)^last-event-id[ \t]{0,16}:[ \t]{0,16}([^\r\n]{0,200})', 1), ' \t') AS sent_id
    FROM http_messages r JOIN connections c USING (conn_id)
    WHERE r.direction = 'client' AND r.method IS NOT NULL AND (r.conn_id, r.exchange_id) IN (SELECT conn_id, exchange_id FROM sse_events)),
wanted AS (
    SELECT * FROM requests WHERE (capture, client_ip, server_ip, server_port, target) IN (
        SELECT capture, client_ip, server_ip, server_port, target FROM requests WHERE resumes)),
events AS (
    SELECT e.conn_id, e.exchange_id, e.item_id, e.ts, e.last_event_id,
           CASE WHEN regexp_full_match(e.last_event_id, '[0-9]{1,18}') THEN CAST(e.last_event_id AS BIGINT) END AS number
    FROM sse_events e SEMI JOIN wanted w ON e.conn_id = w.conn_id AND e.exchange_id = w.exchange_id
    WHERE e.kind = 'event'),
steps AS (
    SELECT *, number - lag(number) OVER (PARTITION BY conn_id, exchange_id ORDER BY item_id) AS step FROM events),
summed AS (
    SELECT conn_id, exchange_id, count(*) AS events, min(ts) AS first_ts, max(ts) AS last_ts,
           arg_min(last_event_id, item_id) AS first_event_id, arg_max(last_event_id, item_id) AS last_event_id,
           arg_min(number, item_id) FILTER (WHERE number IS NOT NULL) AS first_number,
           bool_and(number IS NOT NULL OR last_event_id = '') AS numbered,
           bool_and(coalesce(step, 0) >= 0) AS increasing,
           bool_and(coalesce(step, 0) IN (0, 1)) AS consecutive
    FROM steps GROUP BY conn_id, exchange_id)
SELECT w.*, response.end_ts, coalesce(e.events, 0) AS events, e.first_ts, e.last_ts, e.first_event_id, e.last_event_id,
       e.first_number, coalesce(e.numbered AND e.increasing, false) AS increasing, coalesce(e.consecutive, false) AS consecutive
FROM wanted w
LEFT JOIN http_messages response ON response.conn_id = w.conn_id AND response.exchange_id = w.exchange_id
                                    AND response.status >= 200 AND response.direction = 'server'
LEFT JOIN summed e ON e.conn_id = w.conn_id AND e.exchange_id = w.exchange_id
ORDER BY w.conn_id, w.exchange_id
"""
_SAME_STREAM = ["capture", "client_ip", "server_ip", "server_port", "target"]
_MAX_ID = 10 ** 18
# The tables STREAMS_SQL reads.
TABLES = ("sse_events", "http_messages", "connections")


def of_tables(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """sse_reconnections and its findings, from tables in memory (a capture's)."""
    if not len(tables["sse_events"]):
        return make_table("sse_reconnections"), make_table("findings")
    import duckdb
    import pyarrow as pa

    with duckdb.connect(config={"autoinstall_known_extensions": False}) as connection:
        for name in TABLES:
            # As Arrow: DuckDB's scan of a pandas frame leaves a namedtuple class in a reference
            # cycle at each call (duckdb 1.x), garbage the analysis must not make.
            connection.register(name, pa.Table.from_pandas(tables[name], preserve_index=False))
        return of_connection(connection)


def of_connection(connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """sse_reconnections and its findings, from a DuckDB connection with views (or registered
    frames) named as TABLES (a store's: store.build)."""
    return reconnections(connection.sql(STREAMS_SQL).df())


def reconnections(streams: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sse_reconnections rows and their findings (rows of findings) of the streams."""
    rows, findings = [], []
    streams = streams.sort_values(["request_ts", "conn_id", "exchange_id"], kind="stable")
    for _key, group in streams.groupby(_SAME_STREAM, sort=False, dropna=False):
        previous = None
        # Plain tuples: itertuples' named rows make a namedtuple class at each call, a class in a
        # reference cycle, garbage the analysis must not leave.
        for values in group.itertuples(index=False, name=None):
            stream = SimpleNamespace(**dict(zip(group.columns, values)))
            if stream.resumes:
                row = _reconnection(stream, previous)
                rows.append(row)
                if row["id_check"] in ("repeats", "skips"):
                    findings.append(_finding(stream, row))
            previous = stream
    rows.sort(key=lambda row: (row["conn_id"], row["exchange_id"]))
    return make_table("sse_reconnections", rows), make_table("findings", findings)


def _reconnection(stream, previous) -> dict:
    gap = gap_from_end = float("nan")
    if previous is not None and _known(stream.first_ts):
        if _known(previous.last_ts):
            gap = stream.first_ts - previous.last_ts
        if _known(previous.end_ts):
            gap_from_end = stream.first_ts - previous.end_ts
    return {
        "capture": stream.capture,
        "conn_id": stream.conn_id,
        "exchange_id": stream.exchange_id,
        "stream_id": pd.NA if not _known(stream.stream_id) else int(stream.stream_id),
        "ts": stream.request_ts,
        "last_event_id": stream.sent_id,
        "previous_conn_id": pd.NA if previous is None else int(previous.conn_id),
        "previous_exchange_id": pd.NA if previous is None else int(previous.exchange_id),
        "previous_last_event_id": "" if previous is None or not isinstance(previous.last_event_id, str) else previous.last_event_id,
        "previous_last_ts": float("nan") if previous is None else previous.last_ts,
        "previous_end_ts": float("nan") if previous is None else previous.end_ts,
        "first_ts": stream.first_ts,
        "first_event_id": stream.first_event_id if isinstance(stream.first_event_id, str) else "",
        "gap_s": gap,
        "gap_from_end_s": gap_from_end,
        "id_check": _id_check(stream, previous),
    }


def _id_check(stream, previous) -> str:
    """What the first numbered ID after the reconnection says against the one sent (see the module)."""
    sent = stream.sent_id
    if previous is None or not (sent.isascii() and sent.isdigit() and int(sent) < _MAX_ID) or not _known(stream.first_number):
        return ""
    if not (stream.increasing and previous.increasing):
        return ""
    first, sent = int(stream.first_number), int(sent)
    if first <= sent:
        return "repeats"
    if first == sent + 1:
        return "next"
    return "skips" if stream.consecutive and previous.consecutive else "after"


def _finding(stream, row: dict) -> dict:
    sent, first = row["last_event_id"], int(stream.first_number)
    if row["id_check"] == "repeats":
        detail = (f"the stream resumed with Last-Event-ID {sent} (exchange {stream.exchange_id}) sends event ID {first} first: "
                  "events the client had are sent again (the IDs of both streams are numbers that never go down)")
    else:
        detail = (f"the stream resumed with Last-Event-ID {sent} (exchange {stream.exchange_id}) sends event ID {first} first: "
                  f"{first - int(sent) - 1} IDs skipped where both streams' IDs go up by one")
    return {"conn_id": stream.conn_id, "capture": stream.capture, "ts": stream.first_ts, "direction": "server",
            "rule": f"sse-resume-{row['id_check']}-ids", "detail": detail}


def _known(value) -> bool:
    return value is not None and not pd.isna(value)
