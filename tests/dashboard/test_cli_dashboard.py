"""`inspector dashboard` argument handling, without serving anything."""

from __future__ import annotations

import shutil

import pytest

from inspector import cli
from tests.conftest import BUNDLED


@pytest.fixture
def runs(monkeypatch):
    """What each `inspector dashboard` run would have served: host, port, debug, and the Host its app allows."""
    calls: list[dict] = []
    import dashboard.app
    import dashboard.serve

    monkeypatch.setattr(dashboard.app, "create_app", lambda store, host=None: {"store": store, "host": host})
    monkeypatch.setattr(dashboard.serve, "serve", lambda app, store, host, port, debug, announce: calls.append(
        {"host": host, "port": port, "debug": debug, "app_host": app["host"]}))
    return calls


@pytest.fixture
def served(monkeypatch):
    """The TableStore each `inspector dashboard` run would have served."""
    stores = []
    import dashboard.app
    import dashboard.serve

    def create_app(store, host=None):
        stores.append(store)

    monkeypatch.setattr(dashboard.app, "create_app", create_app)
    monkeypatch.setattr(dashboard.serve, "serve", lambda *args, **kwargs: None)
    return stores


def test_bad_path_is_one_line_and_exit_2(capsys, runs):
    assert cli.main(["dashboard", "/no/such/capture.pcap"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/no/such/capture.pcap" in err
    assert runs == []


def test_directory_without_captures_is_exit_2(tmp_path, capsys, runs):
    assert cli.main(["dashboard", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_missing_bundled_captures_is_exit_2(monkeypatch, tmp_path, capsys, runs):
    monkeypatch.setattr(cli, "BUNDLED_CAPTURES", tmp_path / "captures")
    assert cli.main(["dashboard"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_defaults_serve_bundled_captures_locally_without_debug(capsys, runs):
    assert cli.dashboard_sources([]) == [BUNDLED]
    assert cli.main(["dashboard"]) == 0
    assert runs == [{"host": "127.0.0.1", "port": 8050, "debug": False, "app_host": "127.0.0.1"}]
    assert "warning" not in capsys.readouterr().err


def test_binding_elsewhere_warns(capsys, runs):
    assert cli.main(["dashboard", str(BUNDLED / "chat.pcap"), "--host", "0.0.0.0", "--port", "9000", "--debug"]) == 0
    assert runs == [{"host": "0.0.0.0", "port": 9000, "debug": True, "app_host": "0.0.0.0"}]
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err


def test_live_dir_adds_folders_the_live_page_may_follow(tmp_path, monkeypatch, served, capsys):
    work, first, second, outside = (tmp_path / n for n in ("work", "first", "second", "outside"))
    for folder in (work, first, second, outside):
        folder.mkdir()
        shutil.copyfile(BUNDLED / "chat.pcap", folder / "chat.pcap")
    monkeypatch.chdir(work)
    assert cli.main(["dashboard", str(BUNDLED / "chat.pcap"), "--live-dir", str(first), "--live-dir", str(second)]) == 0
    (store,) = served
    assert store.live.roots == (work.resolve(), BUNDLED.resolve(), first.resolve(), second.resolve())
    # the page names no server path: the folders are told where the dashboard was started
    assert f"inspector: the Live page may follow files in: {', '.join(map(str, store.live.roots))}\n" in capsys.readouterr().err
    for folder in (work, first, second):
        summary = store.live.follow(str(folder / "chat.pcap"))
        assert summary["error"] is None and summary["packets"] > 0
    refused = store.live.follow(str(outside / "chat.pcap"))["error"]
    assert refused.startswith(f"{outside / 'chat.pcap'}: not inside a folder") and str(second.resolve()) not in refused
    # without the option, only the working directory and the captures' folder
    assert cli.main(["dashboard", str(BUNDLED / "chat.pcap")]) == 0
    assert served[1].live.roots == (work.resolve(), BUNDLED.resolve())
    assert served[1].live.follow(str(first / "chat.pcap"))["error"].startswith(f"{first / 'chat.pcap'}: not inside")


def test_missing_live_dir_is_one_line_and_exit_2(tmp_path, capsys, served):
    missing = tmp_path / "nowhere"
    assert cli.main(["dashboard", str(BUNDLED / "chat.pcap"), "--live-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"inspector: error: --live-dir {missing}: no such directory\n"
    assert served == []
