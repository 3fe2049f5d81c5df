"""Network traffic inspector for REST and WebSocket traffic."""

__version__ = "0.1.0"
