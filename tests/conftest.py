"""Shared fixtures: the public capture corpus and cached analyses."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
def analyze_cached(path: str) -> Analysis:
    return analyze_captures([path])


def corpus_params():
    """Parametrize over corpus files, or one skipped case saying why."""
    files = corpus_files()
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=CORPUS_MISSING), id="no-corpus")]
    return [pytest.param(p, id=p.name) for p in files]
