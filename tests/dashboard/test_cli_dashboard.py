"""`inspector dashboard` argument handling, without serving anything."""

from __future__ import annotations

import pytest

from inspector import cli
from tests.conftest import BUNDLED


class FakeApp:
    def __init__(self, calls):
        self.calls = calls

    def run(self, **kwargs):
        self.calls.append(kwargs)


@pytest.fixture
def runs(monkeypatch):
    calls: list[dict] = []
    import dashboard.app

    monkeypatch.setattr(dashboard.app, "create_app", lambda store: FakeApp(calls))
    return calls


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
    assert runs == [{"host": "127.0.0.1", "port": 8050, "debug": False}]
    assert "warning" not in capsys.readouterr().err


def test_binding_elsewhere_warns(capsys, runs):
    assert cli.main(["dashboard", str(BUNDLED / "chat.pcap"), "--host", "0.0.0.0", "--port", "9000", "--debug"]) == 0
    assert runs == [{"host": "0.0.0.0", "port": 9000, "debug": True}]
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err
