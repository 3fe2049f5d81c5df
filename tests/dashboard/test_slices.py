"""A connection taken from the dashboard to Wireshark (dashboard.slices): the display filter its
detail shows selects, in tshark, exactly that connection's packets in the original capture, and
the packets downloaded from /slice/<conn_id> are those packets, as many and as long as its row
says.  The dashboard numbers connections across all its captures, so the app here holds two (the
second's connections are not its store's own numbers).  A capture moved or changed since it was
analysed, or a connection that does not exist, is a one-line answer, never another file's bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dashboard import ids
from dashboard.app import create_app
from dashboard.store import TableStore
from tests import tshark_oracle as oracle
from tests.conftest import BUNDLED
from tests.dashboard.conftest import walk_components
from tests.test_slice import tshark_frames, tshark_streams

pytestmark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")
ANALYSIS_TIMEOUT = 120


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An app over copies of chat.pcap and tls.pcap (with its key log sidecar) in tmp_path, its Flask test client."""
    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("chat.pcap", "chat.json", "tls.pcap", "tls.json", "tls.keylog"):
        shutil.copy(BUNDLED / name, tmp_path / name)
    store = TableStore([str(tmp_path / "chat.pcap"), str(tmp_path / "tls.pcap")])
    app = create_app(store)
    assert store.wait(ANALYSIS_TIMEOUT) and store.progress().errors == (), store.progress().text
    yield store, app.server.test_client(), tmp_path
    store.close()


def wireshark_detail(views, conn_id):
    from dashboard.pages.connections import wireshark_detail  # a page module: importable once an app exists

    return wireshark_detail(views, conn_id)


def shown(children: list, element_id: str):
    """The component `element_id` among a detail's `children`."""
    return next(c for child in children for c in walk_components(child) if getattr(c, "id", None) == element_id)


def test_every_connection_of_two_captures_downloads_its_packets_and_its_filter_selects_them(served):
    store, client, folder = served
    connections = store.views().catalog.sql("SELECT conn_id, capture, first_frame, packets, wire_bytes FROM connections ORDER BY conn_id")
    assert set(connections["capture"]) == {"chat.pcap", "tls.pcap"}
    streams = {name: tshark_streams(folder / name) for name in ("chat.pcap", "tls.pcap")}
    for row in connections.itertuples(index=False):
        original = folder / row.capture
        detail = wireshark_detail(store.views(), int(row.conn_id))
        link = shown(detail, ids.CONN_SLICE)
        assert link.href == f"/slice/{row.conn_id}"
        answer = client.get(link.href)
        assert answer.status_code == 200, answer.data
        name = f"{original.stem}-conn{row.conn_id}.pcap"
        assert answer.headers["Content-Disposition"] == f"attachment; filename={name}"
        sliced = folder / name
        sliced.write_bytes(answer.data)
        frames = tshark_frames(sliced)
        assert len(frames) == row.packets and sum(int(length) for _t, length, _md5 in frames) == row.wire_bytes
        assert frames == streams[row.capture][row.first_frame]  # tshark's own TCP stream starting there
        assert tshark_frames(original, shown(detail, ids.CONN_FILTER).children) == frames


def test_a_capture_changed_or_moved_since_its_analysis_is_refused_in_one_line(served):
    store, client, folder = served
    conn_id = int(store.views().catalog.sql("SELECT min(conn_id) AS c FROM connections WHERE capture = 'tls.pcap'")["c"].iloc[0])

    with open(folder / "tls.pcap", "ab") as capture:
        capture.write(b"\0" * 16)  # same name, other bytes: its packets are not the analysed ones
    answer = client.get(f"/slice/{conn_id}")
    assert answer.status_code == 409
    assert answer.data.decode() == f"tls.pcap: {folder / 'tls.pcap'} has changed since it was analysed\n"

    (folder / "tls.pcap").rename(folder / "elsewhere.pcap")
    answer = client.get(f"/slice/{conn_id}")
    assert answer.status_code == 409
    assert answer.data.decode() == f"tls.pcap: the capture file is no longer at {folder / 'tls.pcap'}\n"
    detail = wireshark_detail(store.views(), conn_id)
    assert shown(detail, ids.CONN_SLICE).children == f"Its packets cannot be downloaded: the capture file is no longer at {folder / 'tls.pcap'}"
    assert "tcp.srcport" in shown(detail, ids.CONN_FILTER).children  # the filter is still shown

    for missing in (10_000, 2**40):
        answer = client.get(f"/slice/{missing}")
        assert (answer.status_code, answer.data.decode()) == (404, f"no connection {missing}\n")
    assert "Content-Disposition" not in client.get("/slice/-1").headers  # not a number: Dash's page-not-found, no file
    assert wireshark_detail(store.views(), None) == []
