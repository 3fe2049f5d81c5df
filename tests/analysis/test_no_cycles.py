"""The analysis pauses the cycle collector; that is only safe while it creates no cycles."""

from __future__ import annotations

import gc

from inspector.analysis.pipeline import analyze_captures
from tests.conftest import BUNDLED, corpus_files


def test_analysis_leaves_no_reference_cycles():
    paths = [*BUNDLED.glob("*.pcap"), *corpus_files()]
    gc.collect()
    gc.disable()
    try:
        for path in paths:
            analyze_captures([path], jobs=1)
        assert gc.collect() == 0
    finally:
        gc.enable()
