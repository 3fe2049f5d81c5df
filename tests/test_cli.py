"""`inspector analyze` from the command line.

Run as a real subprocess (exit codes, stderr, no tracebacks) and in-process
through `inspector.cli.main(argv)` where captured output is enough.  Numbers
are checked against the bundled captures' ground truth (the recording sidecars
quoted in captures/README.md, written by the `inspector record` scenarios that
made them), against the pcap records themselves, or against tshark.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import SCHEMAS, TABLE_NAMES
from inspector.cli import main
from tests import tshark_oracle as oracle
from tests.conftest import BUNDLED, REPO
from tests.factories import gzip_bomb, pcapng_file

EXIT_BAD_INPUT = 2
FORMATS = ("csv", "parquet", "json")


def _pcap_records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, caplen, orig_len) of each record of a little-endian pcap (microsecond or nanosecond)."""
    assert struct.unpack_from("<I", data, 0)[0] in (0xA1B2C3D4, 0xA1B23C4D)
    records, pos = [], 24
    while pos < len(data):
        _sec, _frac, caplen, orig_len = struct.unpack_from("<IIII", data, pos)
        records.append((pos, caplen, orig_len))
        pos += 16 + caplen
    assert pos == len(data)
    return records


def bundled_truth() -> dict[str, dict[str, Any]]:
    """File name -> what the tests expect of it, from the ground-truth JSON
    block (the recording sidecar) of captures/README.md."""
    text = (BUNDLED / "README.md").read_text(encoding="utf-8")
    truth = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        name = section.split("\n", 1)[0].strip()
        block = re.search(r"```json\n(.*?)\n```", section, flags=re.S)
        if block:
            truth[name] = _expected(json.loads(block.group(1)), BUNDLED / name)
    return truth


def _expected(sidecar: dict[str, Any], path: Path) -> dict[str, Any]:
    """Counts the analysis must find, from what the recorded scenario sent.

    REST variants: one request and one response per exchange; WebSocket
    variants: one upgrade (GET -> 101) per connection, then data messages; SSE
    variants: an exchange per stream (its request is the client's message),
    then its events, each a message.
    """
    variants = sidecar["variants"]
    rest = [v for v in variants if v["protocol"] in ("rest", "sse")]
    ws = [v for v in variants if v["protocol"] == "websocket"]
    rest_requests = sum(v["messages_sent"]["client"] for v in rest)
    ws_connections = sum(len(v["client_ports"]) for v in ws)
    return {
        "sidecar": sidecar,
        "captured_packets": len(_pcap_records(path.read_bytes())) if path.exists() else None,
        "tcp_connections": sum(len(v["client_ports"]) for v in variants),
        "client_ports": sorted(p for v in variants for p in v["client_ports"]),
        "rest_requests": rest_requests,
        "http_requests": rest_requests + ws_connections,
        "ws_connections": ws_connections,
        "ws_messages": sum(sum(v["messages_sent"].values()) for v in ws),
        # variant -> (connections, application messages) as the summary counts them
        # (SSE: the requests and the events, as the ledger counts them)
        "variants": {v["name"]: (len(v["client_ports"]), sum(v["messages_sent"].values()) if v["protocol"] in ("websocket", "sse") else v["messages_sent"]["client"]) for v in variants},
        "variant_of_port": {p: v["name"] for v in variants for p in v["client_ports"]},
    }


TRUTH = bundled_truth()
BUNDLED_NAMES = sorted(TRUTH)


def test_bundled_truth_covers_every_bundled_capture() -> None:
    assert BUNDLED_NAMES == sorted(p.name for p in BUNDLED.glob("*.pcap"))


class Run(NamedTuple):
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path) -> Run:
    """`python -m inspector.cli ARGS` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-m", "inspector.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_main(capsys: pytest.CaptureFixture, *args: str | Path) -> Run:
    """`inspector.cli.main([...ARGS])` in this process."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return Run(code, out.out, out.err)


# --- the summary -------------------------------------------------------------------

SUMMARY_TOTALS = re.compile(r"^connections (\d+)\s+REST exchanges (\d+) \((\d+) requests, (\d+) responses\)\s+WebSocket connections (\d+), messages (\d+)\s+findings (\d+)$", re.M)
# One row per kind (rest, http2, websocket, ...), or per recorded variant when a sidecar labels them
# (names with digits too: rest-h2).
KIND_ROW = re.compile(r"^([a-z][a-z0-9-]*)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d,]+)\s", re.M)


@pytest.mark.parametrize("name", BUNDLED_NAMES)
def test_summary_of_bundled_capture(name: str) -> None:
    truth = TRUTH[name]
    path = BUNDLED / name
    result = run_cli("analyze", path)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert re.match(rf"^{re.escape(str(path))}: pcap, {truth['captured_packets']} packets, .*, {truth['tcp_connections']} TCP connections$", lines[0]), lines[0]

    totals = SUMMARY_TOTALS.search(result.stdout)
    assert totals, result.stdout
    connections, exchanges, requests, responses, ws_connections, ws_messages, findings = map(int, totals.groups())
    assert connections == truth["tcp_connections"]
    # The WebSocket upgrade GETs are setup of WebSocket connections, not REST.
    assert (requests, responses) == (truth["rest_requests"], truth["rest_requests"])
    assert ws_connections == truth["ws_connections"]
    assert ws_messages == truth["ws_messages"]
    # A REST exchange is an API call; a WebSocket upgrade is connection setup
    # (as in message_costs and the per-kind table), not a REST exchange.
    assert exchanges == truth["rest_requests"], "WebSocket upgrades counted as REST exchanges"
    assert findings == 0  # conformant aiohttp / websockets traffic
    assert "findings by rule" not in result.stdout

    # The sidecar next to the capture labels every connection with its variant.
    rows = {m.group(1): (int(m.group(2)), int(m.group(3)), int(m.group(5).replace(",", "")), int(m.group(4))) for m in KIND_ROW.finditer(result.stdout)}
    assert {k: v[:2] for k, v in rows.items()} == truth["variants"]
    # Every variant of a scenario does the same work: as many messages carrying payload
    # (a polled feed's empty polls carry none; an event stream's events do), whatever the protocol.
    assert len({v[3] for v in rows.values()}) == 1, rows
    if oracle.tshark_available():
        assert sum(v[2] for v in rows.values()) == oracle.total_frame_bytes(path)


def test_summary_in_process_matches_subprocess(capsys: pytest.CaptureFixture) -> None:
    path = BUNDLED / "chat.pcap"
    assert run_main(capsys, "analyze", path) == run_cli("analyze", path)


@pytest.mark.skipif(shutil.which("inspector") is None, reason="`inspector` script not installed (pip install -e .)")
def test_console_script() -> None:
    path = BUNDLED / "chat.pcap"
    proc = subprocess.run(["inspector", "analyze", str(path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert (proc.returncode, proc.stdout, proc.stderr) == tuple(run_cli("analyze", path))


# --- export ------------------------------------------------------------------------------


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def _truth_counts(names: list[str]) -> dict[str, int]:
    """Rows the ground truth fixes for some tables."""
    truths = [TRUTH[n] for n in names]
    return {
        "captures": len(names),
        "connections": sum(t["tcp_connections"] for t in truths),
        "http_messages": sum(2 * t["http_requests"] for t in truths),
        "ws_messages": sum(t["ws_messages"] for t in truths),
        "findings": 0,
    }


@pytest.fixture(scope="module")
def bundled_analysis():
    return analyze_captures([BUNDLED / n for n in BUNDLED_NAMES])


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_one_file_per_table_with_schema_columns(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture, bundled_analysis) -> None:
    out = tmp_path / "tables"
    result = run_main(capsys, "analyze", *(BUNDLED / n for n in BUNDLED_NAMES), "--export", out, "--format", fmt)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.{fmt}" for name in TABLE_NAMES)
    truth = _truth_counts(BUNDLED_NAMES)
    for name, schema in SCHEMAS.items():
        path = out / f"{name}.{fmt}"
        columns = list(schema)
        want_rows = len(bundled_analysis[name])
        if name in truth:
            assert want_rows == truth[name], name
        if fmt == "csv":
            header, rows = _csv_rows(path)
            assert header == columns, name
            assert len(rows) == want_rows, name
            for column, dtype in schema.items():
                values = {row[columns.index(column)] for row in rows}
                if dtype == "bool":
                    assert values <= {"true", "false"}, (name, column, values)
                elif dtype == "boolean":  # nullable: empty when unknown
                    assert values <= {"true", "false", ""}, (name, column, values)
        elif fmt == "parquet":
            table = pd.read_parquet(path)
            assert list(table.columns) == columns, name
            assert len(table) == want_rows, name
            for column, dtype in schema.items():
                if dtype in ("int64", "float64", "bool", "Int64", "boolean"):
                    assert str(table[column].dtype) == dtype, (name, column)
        else:
            records = json.loads(path.read_text(encoding="utf-8"))
            assert isinstance(records, list), name
            assert len(records) == want_rows, name
            for record in records:
                assert list(record) == columns, name
            for column, dtype in schema.items():
                if dtype == "bool":
                    assert all(type(r[column]) is bool for r in records), (name, column)


def test_csv_booleans_are_true_false(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """chat.pcap: client frames are masked, server frames are not; only ws-deflate deflates."""
    truth = TRUTH["chat.pcap"]
    result = run_main(capsys, "analyze", BUNDLED / "chat.pcap", "--export", tmp_path, "--format", "csv")
    assert result.code == 0
    header, rows = _csv_rows(tmp_path / "ws_frames.csv")
    masked = [(r[header.index("direction")], r[header.index("masked")]) for r in rows]
    assert set(masked) == {("client", "true"), ("server", "false")}
    # Every data message is one frame; the close handshake adds one frame each way.
    assert len(masked) == truth["ws_messages"] + 2 * truth["ws_connections"]
    header, rows = _csv_rows(tmp_path / "connections.csv")
    variants = [truth["variant_of_port"][int(r[header.index("client_port")])] for r in rows]
    assert [r[header.index("variant")] for r in rows] == variants
    assert [r[header.index("ws_deflate")] for r in rows] == ["true" if v == "ws-deflate" else "false" for v in variants]
    assert [r[header.index("handshake_seen")] for r in rows] == ["true"] * len(rows)
    # The client library checked Sec-WebSocket-Accept; a yes/no column, even
    # if its dtype is object so that it can be empty for non-WebSocket rows.
    assert [r[header.index("ws_accept_valid")] for r in rows] == ["true" if v.startswith("ws") else "" for v in variants]


def test_export_subprocess(tmp_path: Path) -> None:
    result = run_cli("analyze", BUNDLED / "feed.pcap", "--export", tmp_path, "--format", "json")
    assert result.code == 0, result.stderr
    connections = json.loads((tmp_path / "connections.json").read_text(encoding="utf-8"))
    truth = TRUTH["feed.pcap"]
    assert sorted(c["client_port"] for c in connections) == truth["client_ports"]
    assert all(c["ws_deflate"] is (c["variant"] == "ws-deflate") for c in connections)
    # The feed's staleness, from the sidecar.
    staleness = json.loads((tmp_path / "staleness.json").read_text(encoding="utf-8"))
    assert len(staleness) == len(truth["sidecar"]["staleness"])


# --- bad input -------------------------------------------------------------------------------


def _pcap_header(link_type: int) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link_type)


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    text = tmp / "notes.txt"
    text.write_text("GET / HTTP/1.1\r\nthis is not a capture\r\n")
    empty = tmp / "empty.pcap"
    empty.write_bytes(b"")
    header_only = tmp / "linktype147.pcap"
    header_only.write_bytes(_pcap_header(147))
    with_packet = tmp / "linktype147-one-packet.pcap"
    with_packet.write_bytes(_pcap_header(147) + struct.pack("<IIII", 1, 0, 4, 4) + b"abcd")
    short_header = tmp / "short-header.pcap"
    short_header.write_bytes(_pcap_header(1)[:10])
    folder = tmp / "a-folder"
    folder.mkdir()
    # An enhanced packet block of 12 bytes (no fields at all) at the end of the file.
    short_block = tmp / "short-block.pcapng"
    short_block.write_bytes(pcapng_file([(1, 6)], []) + struct.pack("<III", 6, 12, 12))
    return {
        "missing": tmp / "does-not-exist.pcap",
        "text": text,
        "empty": empty,
        "linktype147-header-only": header_only,
        "linktype147-with-packet": with_packet,
        "short-header": short_header,
        "directory": folder,
        "pcapng-short-block": short_block,
    }


BAD_INPUTS = ["missing", "text", "empty", "linktype147-header-only", "linktype147-with-packet", "short-header", "directory",
              "pcapng-short-block"]


def _assert_bad_input(result: Run, path: Path) -> None:
    assert result.code == EXIT_BAD_INPUT, (result.code, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert str(path) in lines[0]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_subprocess(case: str, tmp_path: Path) -> None:
    path = _bad_inputs(tmp_path)[case]
    _assert_bad_input(run_cli("analyze", path), path)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_in_process(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _bad_inputs(tmp_path)[case]
    _assert_bad_input(run_main(capsys, "analyze", path), path)


def test_bad_input_among_good_ones(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pcap"
    _assert_bad_input(run_cli("analyze", BUNDLED / "chat.pcap", missing), missing)


def run_cli_on_pipe(data: bytes, *args: str, times: int = 1) -> tuple[Run, str]:
    """`inspector analyze /dev/fd/N ARGS` reading `data` (`times` over) from a real pipe,
    as `inspector analyze <(zcat capture.pcap.gz)` does; and the name it was given."""
    read_end, write_end = os.pipe()
    name = f"/dev/fd/{read_end}"
    proc = subprocess.Popen([sys.executable, "-m", "inspector.cli", "analyze", name, *args], pass_fds=(read_end,),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    os.close(read_end)

    def feed() -> None:
        try:
            with os.fdopen(write_end, "wb") as pipe:
                for _ in range(times):
                    pipe.write(data)
        except BrokenPipeError:
            pass  # the reader gave up; its verdict is checked by the caller

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    stdout, stderr = proc.communicate(timeout=300)
    writer.join(timeout=10)
    return Run(proc.returncode, stdout, stderr), name


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_capture_read_from_a_pipe(jobs: str) -> None:
    """A pipe cannot be memory-mapped or read twice: it is copied to a temporary file in
    blocks and analysed by one process, whatever --jobs says (two workers each reading
    the pipe used to split its bytes between them)."""
    result, name = run_cli_on_pipe((BUNDLED / "chat.pcap").read_bytes(), "--jobs", jobs)
    assert result.code == 0, result.stderr
    assert f"{name}: pcap, {TRUTH['chat.pcap']['captured_packets']} packets" in result.stdout


def test_pipe_longer_than_the_cap_is_one_line() -> None:
    data = (BUNDLED / "chat.pcap").read_bytes()
    result, name = run_cli_on_pipe(data, "--max-inflated", "1M", times=100)  # 6 MB of pcap
    _assert_bad_input(result, Path(name))
    assert "a pipe or device giving more than 1,048,576 bytes" in result.stderr and "--max-inflated" in result.stderr


def test_device_of_zeros_is_refused_at_once() -> None:
    """/dev/zero used to be read whole into memory until MemoryError; its first bytes
    say it is no capture.  Run under a 2 GiB address-space limit, so that a regression
    fails here instead of taking the machine's memory."""
    def limit_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    proc = subprocess.run([sys.executable, "-m", "inspector.cli", "analyze", "/dev/zero"], capture_output=True, text=True,
                          cwd=REPO, timeout=120, preexec_fn=limit_memory)
    _assert_bad_input(Run(proc.returncode, proc.stdout, proc.stderr), Path("/dev/zero"))
    assert "not a pcap or pcapng capture (magic 00000000)" in proc.stderr


def test_gzip_bomb_is_one_line_saying_the_cap_and_how_to_raise_it(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pcap.gz"
    gzip_bomb(path, 8 << 20)
    result = run_cli("analyze", path, "--max-inflated", "2M")
    _assert_bad_input(result, path)
    assert "more than 2,097,152 bytes" in result.stderr and "--max-inflated BYTES" in result.stderr
    raised = run_cli("analyze", path, "--max-inflated", "8M")
    assert raised.code == 0 and "Traceback" not in raised.stderr, raised.stderr


@pytest.mark.parametrize("option, value", [("--max-ws-message", "-1"), ("--max-ws-message", "0"), ("--max-ws-message", "lots"),
                                           ("--max-ws-message", "1e999"), ("--max-inflated", "0"), ("--max-inflated", "5X"),
                                           ("--jobs", "0"), ("--jobs", "-2"), ("--jobs", "100000"), ("--jobs", "two")])
def test_bad_option_value_is_one_line(option: str, value: str) -> None:
    result = run_cli("analyze", BUNDLED / "chat.pcap", option, value)
    assert result.code == EXIT_BAD_INPUT and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("inspector analyze: error: argument") and option in lines[0], lines
    assert repr(value) in lines[0]


@pytest.mark.parametrize("argv", [["capture", "-o", "x.pcap", "--duration", "nan"], ["capture", "-o", "x.pcap", "--duration", "0"],
                                  ["record", "chat", "-o", "x.pcap", "--rate", "inf"],
                                  ["record", "chat", "-o", "x.pcap", "--poll-interval", "-1"],
                                  ["analyze", "x.pcap", "--max-decompressed", "0"],
                                  ["analyze", "x.pcap", "--max-decompressed-per-connection", "-5"]])
def test_bad_number_is_a_usage_error_before_anything_runs(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    """float() takes nan and inf: durations and rates must be finite and above 0."""
    from inspector.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == EXIT_BAD_INPUT
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and argv[-2] in lines[0] and repr(argv[-1]) in lines[0], lines


def test_byte_count_options_take_units(capsys: pytest.CaptureFixture) -> None:
    from inspector.cli import build_parser

    args = build_parser().parse_args(["analyze", "x.pcap", "--max-ws-message", "64k", "--max-inflated", "2GiB", "--jobs", "3"])
    assert (args.max_ws_message, args.max_inflated, args.jobs) == (64 << 10, 2 << 30, 3)


# --- a capture cut short --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["record-data", "record-header"])
def test_truncated_capture(where: str, tmp_path: Path) -> None:
    source = BUNDLED / "chat.pcap"
    data = source.read_bytes()
    records = _pcap_records(data)
    keep = len(records) // 2
    offset, caplen, _orig = records[keep]
    cut = offset + 16 + caplen // 2 if where == "record-data" else offset + 8
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:cut])
    kept_wire = sum(orig for _o, _c, orig in records[:keep])

    export = tmp_path / "tables"
    result = run_cli("analyze", path, "--export", export, "--format", "csv")
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and str(path) in warnings[0] and "warning" in warnings[0], warnings
    assert f"{path}: pcap, {keep} packets" in result.stdout

    header, (capture,) = _csv_rows(export / "captures.csv")
    row = dict(zip(header, capture))
    assert (int(row["packets"]), int(row["wire_bytes"]), row["truncated"]) == (keep, kept_wire, "true")
    assert str(path) in row["warnings"]
    connections = pd.read_csv(export / "connections.csv")
    assert connections["packets"].sum() == keep
    assert connections["wire_bytes"].sum() == kept_wire
    if oracle.tshark_available():
        # tshark reads up to the cut too.
        assert oracle.frame_count(path) == keep
        http = pd.read_csv(export / "http_messages.csv", keep_default_na=False)
        assert pd.Series([m for m in http["method"] if m]).value_counts().to_dict() == dict(oracle.http_request_methods(path))
        assert pd.Series([int(s) for s in http["status"] if s != ""], dtype="int64").value_counts().to_dict() == dict(oracle.http_response_codes(path))


# --- several captures in one run ------------------------------------------------------------


def test_several_captures_in_one_run(tmp_path: Path) -> None:
    paths = [BUNDLED / n for n in BUNDLED_NAMES]
    result = run_cli("analyze", *paths, "--export", tmp_path, "--format", "csv")
    assert result.code == 0, result.stderr
    for path in paths:
        assert sum(1 for line in result.stdout.splitlines() if line.startswith(f"{path}: pcap, ")) == 1
    captures = pd.read_csv(tmp_path / "captures.csv", keep_default_na=False)
    assert list(captures["capture"]) == [str(p) for p in paths]
    assert list(captures["packets"]) == [TRUTH[n]["captured_packets"] for n in BUNDLED_NAMES]
    assert list(captures["connections"]) == [TRUTH[n]["tcp_connections"] for n in BUNDLED_NAMES]

    connections = pd.read_csv(tmp_path / "connections.csv", keep_default_na=False)
    assert connections["conn_id"].is_unique
    assert connections.groupby("capture").size().to_dict() == {str(p): TRUTH[p.name]["tcp_connections"] for p in paths}
    for path in paths:
        mine = connections[connections["capture"] == str(path)]
        assert sorted(mine["client_port"]) == TRUTH[path.name]["client_ports"]
    # Every row of every other table points at a connection of the right file.
    known = set(connections["conn_id"])
    for name in ("http_messages", "ws_frames", "ws_messages", "message_costs"):
        table = pd.read_csv(tmp_path / f"{name}.csv", keep_default_na=False)
        assert set(table["conn_id"]) <= known, name
    messages = pd.read_csv(tmp_path / "ws_messages.csv", keep_default_na=False).merge(connections[["conn_id", "capture"]], on="conn_id")
    per_file = messages.groupby("capture").size().to_dict()
    want = {str(p): TRUTH[p.name]["ws_messages"] for p in paths}
    assert per_file == {k: v for k, v in want.items() if v}


def test_progress_line_on_a_terminal_only(tmp_path: Path) -> None:
    """On a terminal, stderr shows `analysing NAME: N%` rewritten in place and then
    wiped; in a pipe (every other test here) nothing of it appears."""
    import pty

    main, terminal = pty.openpty()
    try:
        # --no-cache: analysed whatever ran before (the analysis of a cache hit shows no progress)
        proc = subprocess.run([sys.executable, "-m", "inspector.cli", "analyze", "--no-cache", str(BUNDLED / "chat.pcap"),
                               str(BUNDLED / "feed.pcap")], stdout=subprocess.PIPE, stderr=terminal, text=True, cwd=REPO, timeout=300)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0
    text = shown.decode()
    assert "\ranalysing chat.pcap: 100%" in text and "\ranalysing feed.pcap: 100%" in text, repr(text)
    last = text.rsplit("\r", 2)
    assert last[-1] == "" and last[-2].strip() == "", repr(text)  # the line is wiped at the end
    assert "analysing" not in proc.stdout
    piped = run_cli("analyze", BUNDLED / "chat.pcap")
    assert "analysing" not in piped.stderr


# --- untrusted text on the terminal ---------------------------------------------------------

TITLE, CLEAR = "\x1b]0;owned\x07", "\x1b[2J"


def test_names_from_files_and_sidecars_are_printed_escaped(tmp_path: Path) -> None:
    """A capture's file name and its sidecar's variant names reach the terminal as text:
    ESC ] 0 ; (retitle) and ESC [ 2 J (clear screen) are printed as \\x1b..., never sent."""
    capture = tmp_path / f"{TITLE}chat{CLEAR}.pcap"
    shutil.copy(BUNDLED / "chat.pcap", capture)
    sidecar = json.loads((BUNDLED / "chat.json").read_text(encoding="utf-8"))
    for variant in sidecar["variants"]:
        variant["name"] = f"{CLEAR}{variant['name']}"
    capture.with_suffix(".json").write_text(json.dumps(sidecar), encoding="utf-8")
    broken = tmp_path / f"feed{CLEAR}.pcap"  # a broken sidecar: the warning names it
    shutil.copy(BUNDLED / "feed.pcap", broken)
    broken.with_suffix(".json").write_text("{not json", encoding="utf-8")

    result = run_cli("analyze", capture, broken, "--export", tmp_path / f"out{TITLE}")
    assert result.code == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert f"{tmp_path}/\\x1b]0;owned\\x07chat\\x1b[2J.pcap: pcap, {TRUTH['chat.pcap']['captured_packets']} packets" in result.stdout
    assert "\n\\x1b[2Jws-deflate " in result.stdout  # the summary row of the variant
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("inspector: warning: ") and "feed\\x1b[2J.json" in warning
    assert "out\\x1b]0;owned\\x07/" in result.stdout  # where the tables went
    # The data itself keeps the names as they are.
    assert (tmp_path / f"out{TITLE}" / "connections.csv").read_text(encoding="utf-8").count(CLEAR) > 0


def test_error_naming_a_hostile_or_undecodable_file_is_escaped(tmp_path: Path) -> None:
    missing = tmp_path / f"gone{TITLE}.pcap"
    result = run_cli("analyze", missing)
    assert result.code == EXIT_BAD_INPUT and "\x1b" not in result.stderr
    assert result.stderr == f"inspector: error: {tmp_path}/gone\\x1b]0;owned\\x07.pcap: no such file\n"
    # A name that is not UTF-8 (a lone surrogate for Python) could not even be printed on stdout.
    undecodable = os.fsdecode(os.fsencode(tmp_path) + b"/\xff\xfe.pcap")
    shutil.copy(BUNDLED / "idle.pcap", undecodable)
    result = run_cli("analyze", undecodable)
    assert result.code == 0 and "Traceback" not in result.stderr, result.stderr
    assert f"{tmp_path}/\\xff\\xfe.pcap: pcap" in result.stdout  # its bytes, as in the tables
    result = run_cli("analyze", undecodable + "-gone")
    assert result.stderr == f"inspector: error: {tmp_path}/\\xff\\xfe.pcap-gone: no such file\n"


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    from inspector.report import printable

    assert printable("plain name.pcap") == "plain name.pcap"
    assert printable("caf\u00e9 \u6f22\u5b57") == "caf\u00e9 \u6f22\u5b57"  # printable non-ASCII stays
    assert printable("a\x1b[2Jb\nc\td\x7f\u202ee\udcff\ud800") == "a\\x1b[2Jb\\nc\\td\\x7f\\u202ee\\xff\\ud800"


def test_csv_export_defuses_formulas_from_a_sidecar(tmp_path: Path) -> None:
    """Variant names come from a sidecar anyone can write: in the CSV export a name
    starting like a formula is text (a leading apostrophe); numbers are left as they are."""
    capture = tmp_path / "chat.pcap"
    shutil.copy(BUNDLED / "chat.pcap", capture)
    sidecar = json.loads((BUNDLED / "chat.json").read_text(encoding="utf-8"))
    formulas = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]
    for variant, formula in zip(sidecar["variants"], formulas):
        variant["name"] = formula
    capture.with_suffix(".json").write_text(json.dumps(sidecar), encoding="utf-8")
    result = run_cli("analyze", capture, "--export", tmp_path / "out", "--format", "csv")
    assert result.code == 0, result.stderr
    header, rows = _csv_rows(tmp_path / "out" / "connections.csv")
    assert {r[header.index("variant")] for r in rows} == {"'" + f for f in formulas}
    assert all(r[header.index("client_port")].isdigit() for r in rows)
    header, rows = _csv_rows(tmp_path / "out" / "overhead.csv")
    assert {r[header.index("variant")] for r in rows} == {"'" + f for f in formulas}


# --- --version, python -m inspector -------------------------------------------------------------


def test_version_is_the_packages_and_python_m_inspector_is_the_program() -> None:
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    for command in ([sys.executable, "-m", "inspector", "--version"], [sys.executable, "-m", "inspector.cli", "--version"]):
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert proc.returncode == 0 and proc.stdout == f"inspector {declared}\n", proc
    proc = subprocess.run([sys.executable, "-m", "inspector", "analyze", str(BUNDLED / "chat.pcap")], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(f"{BUNDLED / 'chat.pcap'}: pcap, ") and "bytes by category:" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "inspector", "analyze", "/nonexistent.pcap"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "/nonexistent.pcap" in bad.stderr
