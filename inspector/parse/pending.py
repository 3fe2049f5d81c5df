"""The events a parser or reassembler has made and not handed out yet (sans-IO).

Parsers append their events to a plain list, `_events`.  A caller takes them
one at a time with `next_event()` (h11's pull style; NEED_DATA when none is
left) or all at once with `take_events()`, which costs one call however many
events a chunk of data produced.
"""

from __future__ import annotations

from inspector.events import NEED_DATA


class PendingEvents:
    """Mixin: `_events` (a list) and `_handed` (how many of it next_event already gave out)."""

    __slots__ = ()  # slotted subclasses (the TCP reassembler) stay without a __dict__
    _events: list
    _handed: int

    def next_event(self):
        events = self._events
        handed = self._handed
        if handed < len(events):
            event = events[handed]
            if handed + 1 == len(events):
                events.clear()
                self._handed = 0
            else:
                self._handed = handed + 1
            return event
        return NEED_DATA

    def take_events(self) -> list:
        """The events not handed out yet, in one list; afterwards the parser holds none."""
        events = self._events
        self._events = []
        if self._handed:
            del events[:self._handed]
            self._handed = 0
        return events
