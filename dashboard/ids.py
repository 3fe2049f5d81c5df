"""Every component id of the dashboard, in one place.

Pages and callbacks refer to these constants, never to string literals, so a
typo is a NameError at import time rather than a callback that never fires.
"""

from __future__ import annotations

# app shell
NAV = "nav"
PROGRESS = "progress"
PROGRESS_INTERVAL = "progress-interval"

# overview
OVERVIEW_TABLE = "overview-table"
OVERVIEW_CAPTURE = "overview-capture"
OVERVIEW_BYTES = "overview-bytes-by-category"
OVERVIEW_MIX = "overview-protocol-mix"

# compare (REST vs WebSocket)
COMPARE_CAPTURE = "compare-capture"
COMPARE_COST = "compare-cost-split"
COMPARE_EFFICIENCY = "compare-efficiency"
COMPARE_BREAK_EVEN = "compare-break-even"
COMPARE_CROSSOVERS = "compare-crossovers"
COMPARE_LATENCY = "compare-latency"
COMPARE_STALENESS = "compare-staleness"
COMPARE_CLAIMS = "compare-claims"

# connections
CONN_TABLE = "connections-table"
CONN_DETAIL = "connections-detail"
CONN_ATTRIBUTION = "connections-attribution"
CONN_TIMELINE = "connections-timeline"

# frames and messages
FRAMES_TABLE = "frames-table"
FRAMES_DETAIL = "frames-detail"

# findings
FINDINGS_LIST = "findings-list"
