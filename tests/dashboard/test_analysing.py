"""dashboard.analysing.in_child: an analysis run in a child process (from a fork server), its heap never the dashboard's."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from dashboard.analysing import failure_line, in_child
from inspector.capture.files import CaptureLimitError
from inspector.errors import InspectorError


def _pids(progress=None):
    progress("a.pcap", 0.5)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("fork")) as pool:  # as the streamed analysis does
        return os.getpid(), pool.submit(os.getpid).result()


def _raises(exc, progress=None):
    raise exc


class _Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} {b}")


def _raises_unpicklable(progress=None):
    raise _Unpicklable(1, 2)


def test_the_function_runs_in_a_child_that_may_fork_its_own_workers_and_reports_progress():
    import duckdb  # the dashboard's threads (DuckDB's, the server's) running here do not reach the child

    duckdb.connect().sql("SELECT sum(range) FROM range(1000000)").fetchall()
    seen = []
    child, worker = in_child(_pids, progress=lambda *values: seen.append(values))
    assert child != os.getpid() and worker not in (child, os.getpid())
    assert seen == [("a.pcap", 0.5)]


@pytest.mark.parametrize("exc", [InspectorError("x.pcap: not a capture"), CaptureLimitError("too big", 10), OSError(2, "No such file")])
def test_an_error_in_the_child_is_raised_here_and_told_in_one_line_as_before(exc):
    with pytest.raises(type(exc)) as raised:
        in_child(_raises, exc)
    assert failure_line(raised.value, "/srv/x.pcap", "x.pcap") == failure_line(exc, "/srv/x.pcap", "x.pcap")


def test_an_error_that_cannot_be_pickled_is_still_told_in_one_line():
    with pytest.raises(RuntimeError, match="_Unpicklable: 1 2"):
        in_child(_raises_unpicklable)
