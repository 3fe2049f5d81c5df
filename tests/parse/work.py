"""Operation counts showing that work grows linearly with the input (never wall-clock time).

Compare a run at 1x with one at 8x: linear work grows about 8 times, a
quadratic path about 64 times.
"""

from __future__ import annotations

import sys


class SearchCountingBuffer(bytearray):
    """A bytearray that counts the bytes its find and rfind calls look through."""

    searched = 0

    def find(self, sub, start=0, end=None):
        end = len(self) if end is None else min(end, len(self))
        index = super().find(sub, start, end)
        self.searched += max((index + 1 if index >= 0 else end) - start, 0)
        return index

    def rfind(self, sub, start=0, end=None):
        end = len(self) if end is None else min(end, len(self))
        index = super().rfind(sub, start, end)
        self.searched += max(end - (index if index >= 0 else start), 0)
        return index


def lines_executed(function, path_part: str = "") -> int:
    """Python lines that `function()` executes, in every frame it calls whose file's path
    contains `path_part` (every file by default)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    def calls(frame, event, arg):
        return tracer if path_part in frame.f_code.co_filename else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        function()
    finally:
        sys.settrace(previous)
    return count


def assert_linear(work_1x: int, work_8x: int) -> None:
    """Work at 8x input is at most about 8 times the work at 1x (a quadratic path gives about 64)."""
    assert work_1x > 0
    assert work_8x <= 12 * work_1x, f"work grew {work_8x / work_1x:.1f} times for 8 times the input"


def assert_linear_in(run, size: int) -> None:
    """`run(n)` returns operation counts for an input of size n: each grows linearly from `size` to 8 times it."""
    for work_1x, work_8x in zip(run(size), run(8 * size), strict=True):
        assert_linear(work_1x, work_8x)
