"""Shared fixtures: the public capture corpus and cached analyses."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from inspector.analysis.pipeline import Analysis, analyze_captures

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
BUNDLED = REPO / "captures"
CORPUS_MISSING = "corpus folder ../shared/corpus not present"


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))


def bundled_files() -> list[Path]:
    return sorted(p for p in BUNDLED.glob("*.pcap*"))


def corpus_path(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(CORPUS_MISSING)
    return path


@pytest.fixture(scope="session", autouse=True)
def session_analysis_cache(tmp_path_factory: pytest.TempPathFactory):
    """`inspector analyze` and `inspector query` keep a cache of analyses (inspector.store.cache):
    in the tests, and in the processes they start, it is a folder of this session, never the user's."""
    previous = os.environ.get("INSPECTOR_CACHE_DIR")
    os.environ["INSPECTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("analysis-cache"))
    yield Path(os.environ["INSPECTOR_CACHE_DIR"])
    if previous is None:
        del os.environ["INSPECTOR_CACHE_DIR"]
    else:
        os.environ["INSPECTOR_CACHE_DIR"] = previous


def connection_row(analysis, client_port: int):
    """The one connections row of `analysis` from `client_port`."""
    connections = analysis["connections"]
    row = connections[connections["client_port"] == client_port]
    assert len(row) == 1
    return row.iloc[0]


@functools.lru_cache(maxsize=None)
def analyze_cached(path: str) -> Analysis:
    return analyze_captures([path])


def corpus_params():
    """Parametrize over corpus files, or one skipped case saying why."""
    files = corpus_files()
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=CORPUS_MISSING), id="no-corpus")]
    return [pytest.param(p, id=p.name) for p in files]


# --- real loopback traffic, recorded once per session ---------------------------


class LiveTraffic:
    """Records each tests/traffic.py scenario on first use and caches the
    recording and its analysis for the rest of the session."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._recordings: dict = {}
        self._analyses: dict[str, Analysis] = {}

    def recording(self, name: str):
        from tests import traffic

        if name not in self._recordings:
            self._recordings[name] = traffic.SCENARIOS[name](self._tmp.mktemp(f"live-{name}"))
        return self._recordings[name]

    def analysis(self, name: str) -> Analysis:
        if name not in self._analyses:
            self._analyses[name] = analyze_captures([self.recording(name).path])
        return self._analyses[name]


def live_traffic_unavailable() -> str | None:
    """Why real traffic cannot be recorded here, or None if it can."""
    import os
    import shutil

    if shutil.which("tcpdump") is None:
        return "tcpdump not installed (the README's test command installs it)"
    if os.geteuid() != 0:
        return "recording loopback traffic with tcpdump needs root"
    return None


def recorded_and_analysed(record, tmp_path_factory: pytest.TempPathFactory, name: str):
    """(recording, its analysis by one worker) of `record(folder)`, a recorder of real loopback
    traffic (tests/*_traffic.py) whose recording has a `path`; the test skipped, saying why, where
    real traffic cannot be recorded."""
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    recording = record(tmp_path_factory.mktemp(name))
    return recording, analyze_captures([recording.path], jobs=1)


@pytest.fixture(scope="session")
def live_traffic(tmp_path_factory: pytest.TempPathFactory) -> LiveTraffic:
    """Every scenario of tests/traffic.py, recorded at most once per session."""
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    return LiveTraffic(tmp_path_factory)
