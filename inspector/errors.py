"""One exception tree for everything the inspector reports as bad input.

The CLI turns any InspectorError into a one-line message and exit code 2;
anything else escaping is a bug.
"""


class InspectorError(Exception):
    """Base of every error the inspector raises on purpose."""


class CaptureError(InspectorError):
    """A capture file cannot be read: missing, not a capture, unsupported link type."""


class ParseError(InspectorError):
    """Bytes that cannot be parsed as the protocol they were handed to."""


class RecordError(InspectorError):
    """A workload cannot be recorded: bad parameters, or the workload did not do what it should."""


class StoreError(InspectorError):
    """A store folder cannot be written or read: not a store, half-written, from a newer
    version, a full disk, a query that fails."""


class OutdatedStoreError(StoreError):
    """A store written with an older table schema or layout: analyse the captures again
    rather than read it (the cache does so by itself)."""
