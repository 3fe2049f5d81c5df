"""How many decompressed bytes a connection and a capture may still produce.

Decompressed sizes cost time and memory in proportion to the *inflated*
bytes, which an attacker chooses freely (a 60 MiB message is 60 KiB on the
wire).  Each body or message has its own cap (the parsers' max_decompressed,
max_message_bytes, both DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE by default);
these budgets bound the total over a connection and over a capture, shared
by HTTP bodies and WebSocket messages.  When one is spent,
decompression stops and sizes are reported as unknown (None), never as the
bytes counted so far; the parser that meets it first in a connection reports
a finding.

A body or message whose decompression fails (a corrupt stream) spends
nothing: what it produced before the error is given back.  zlib drops the
output of the call that raises, so what was produced before the error
depends on how the bytes were split into calls (one call: nothing; several:
what the earlier ones gave); given back, the budget left does not.
"""

from __future__ import annotations

DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE = 64 * 1024 * 1024  # one HTTP body or one WebSocket message
DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION = 256 * 1024 * 1024
DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE = 1024 * 1024 * 1024


class DecompressionBudget:
    """Bytes left to decompress in one scope; a connection's draws on its capture's too."""

    __slots__ = ("scope", "limit", "remaining", "parent", "_reported")

    def __init__(self, limit: int, scope: str = "capture", parent: DecompressionBudget | None = None) -> None:
        if limit < 0:
            raise ValueError("a decompression budget must be >= 0 bytes")
        self.scope = scope
        self.limit = limit
        self.remaining = limit
        self.parent = parent
        self._reported = False

    def for_connection(self, limit: int) -> DecompressionBudget:
        return DecompressionBudget(limit, "connection", self)

    def room(self) -> int:
        """Bytes that may still be produced (asked once per compressed message: a loop, not a call per scope)."""
        room = self.remaining
        outer = self.parent
        while outer is not None:
            if outer.remaining < room:
                room = outer.remaining
            outer = outer.parent
        return room if room > 0 else 0

    def spend(self, produced: int) -> None:
        budget: DecompressionBudget | None = self
        while budget is not None:
            budget.remaining -= produced
            budget = budget.parent

    def give_back(self, produced: int) -> None:
        """Undo spend(produced): for output whose decompression then failed."""
        self.spend(-produced)

    def spent(self) -> DecompressionBudget:
        """The budget (this or an outer one) that has no room left."""
        if self.remaining <= 0 or self.parent is None:
            return self
        return self.parent.spent()

    def first_report(self) -> bool:
        """True the first time it is asked: one finding per connection."""
        first = not self._reported
        self._reported = True
        return first

    def describe(self) -> str:
        spent = self.spent()
        return f"the {spent.scope}'s decompression budget ({spent.limit} bytes) is spent"
