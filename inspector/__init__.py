"""Network traffic inspector for REST and WebSocket traffic."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wire-inspector")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "unknown"
