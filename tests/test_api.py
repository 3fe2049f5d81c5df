"""The Python API (`inspector.analyze`): the README's example run as written and checked against
tshark, and the tables equal to the analysis's own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

import inspector
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import TABLE_NAMES
from inspector.errors import CaptureError, InspectorError
from inspector.store import StoreError
from tests import tshark_oracle as oracle
from tests.conftest import BUNDLED, REPO

CHAT = BUNDLED / "chat.pcap"


def readme_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _last_table(output: str) -> pd.DataFrame:
    """The last DataFrame the example printed: its rows, as (variant, messages, per message)."""
    rows = [line.split() for line in output.splitlines()[::-1]]
    table = []
    for cells in rows:
        if cells[0] == "variant" or len(cells) != 4:
            break
        table.append((cells[1], int(cells[2]), float(cells[3])))
    table.reverse()
    return pd.DataFrame(table, columns=["variant", "messages", "per_message"]).set_index("variant")


@pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")
def test_readme_example_runs_as_written_and_its_numbers_are_tsharks() -> None:
    proc = subprocess.run([sys.executable, "-c", readme_example()], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    printed = _last_table(proc.stdout)
    # What each variant put on the wire (tshark's frame.len over its connections) per message its
    # clients and servers sent (the recording's ledger).
    sidecar = json.loads(CHAT.with_suffix(".json").read_text(encoding="utf-8"))
    frame_bytes = defaultdict(int)
    for endpoints, size in oracle.tcp_frame_bytes_by_endpoints(CHAT).items():
        frame_bytes[frozenset(port for _ip, port in endpoints)] += size
    expected = {}
    for variant in sidecar["variants"]:
        wire = sum(frame_bytes[frozenset((port, variant["server_port"]))] for port in variant["client_ports"])
        messages = sum(variant["messages_sent"].values())
        expected[variant["name"]] = (messages, round(wire / messages, 1))
    assert {name: (row.messages, row.per_message) for name, row in printed.iterrows()} == expected
    assert list(printed["per_message"]) == sorted(printed["per_message"])  # ORDER BY
    # The README says the same in words.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    words = re.search(r"about (\d+) bytes a message over\s+one keep-alive connection, (\d+) with a connection per request, (\d+) over a\s+WebSocket and (\d+)\s+with permessage-deflate", readme)
    assert words is not None
    said = dict(zip(["rest-keepalive", "rest-per-request", "ws", "ws-deflate"], map(int, words.groups())))
    assert said == {name: round(per_message) for name, (_messages, per_message) in expected.items()}


def test_tables_are_the_analysis_tables_and_sql_binds_values(tmp_path: Path) -> None:
    reference = analyze_captures([CHAT])
    with inspector.analyze(CHAT) as a:
        assert a.tables == TABLE_NAMES and set(TABLE_NAMES) <= set(dir(a))
        for name in TABLE_NAMES:
            pd.testing.assert_frame_equal(getattr(a, name), reference[name])
        assert getattr(a, "connections") is a.connections  # read once
        kinds = a.sql("SELECT count(*) AS n FROM connections WHERE kind = ?", ["websocket"])
        assert int(kinds["n"].iloc[0]) == int((reference["connections"]["kind"] == "websocket").sum())
        assert a.summary().startswith(f"{CHAT}: pcap, ")
        with pytest.raises(AttributeError, match="no table 'nope'"):
            a.nope
        with pytest.raises(StoreError, match="query failed"):
            a.sql("SELECT * FROM no_such_table")
    # Taken from the cache the second time: the same store.
    again = inspector.analyze(CHAT)
    assert again.folder == a.folder
    again.close()


def test_store_folder_and_temporary_store(tmp_path: Path) -> None:
    target = tmp_path / "chat-store"
    with inspector.analyze(CHAT, store=target) as a:
        assert a.folder == target and len(a.ws_messages) == 80
    query = subprocess.run([sys.executable, "-m", "inspector", "query", str(target), "SELECT count(*) AS n FROM ws_messages"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert query.returncode == 0 and "80" in query.stdout
    temporary = inspector.analyze(CHAT, cache=False)
    assert temporary.folder.is_dir() and len(temporary.http_messages) == 84  # 40 REST exchanges, 2 WebSocket upgrades
    temporary.close()
    assert not temporary.folder.exists()


def test_bad_input_is_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError) as missing:
        inspector.analyze(tmp_path / "missing.pcap")
    assert str(tmp_path / "missing.pcap") in str(missing.value) and "\n" not in str(missing.value)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all" * 10)
    with pytest.raises(InspectorError) as bad:
        inspector.analyze(junk, cache=False)
    assert str(junk) in str(bad.value) and "\n" not in str(bad.value)
    with pytest.raises(TypeError):
        inspector.analyze()
