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
OVERVIEW_CSV_BUTTON = "overview-csv-button"
OVERVIEW_CSV = "overview-csv-download"
OVERVIEW_CARDS = "overview-headline"
OVERVIEW_CLAIMS = "overview-claims"
OVERVIEW_CLAIMS_SHOWN = "overview-claims-shown"
OVERVIEW_CLAIMS_BOX = "overview-claims-box"
OVERVIEW_HAR = "overview-har-link"

# compare (Push and request/response)
COMPARE_CAPTURE = "compare-capture"
COMPARE_COST = "compare-cost-split"
COMPARE_EFFICIENCY = "compare-efficiency"
COMPARE_PAYLOAD = "compare-payload"
COMPARE_BREAK_EVEN = "compare-break-even"
COMPARE_CROSSOVERS = "compare-crossovers"
COMPARE_LATENCY = "compare-latency"
COMPARE_STALENESS = "compare-staleness"
COMPARE_CLAIMS = "compare-claims"
COMPARE_CSV_BUTTON = "compare-csv-button"
COMPARE_CSV = "compare-csv-download"
COMPARE_PUSH_SUMMARY = "compare-push-summary"
COMPARE_PUSH_TABLE = "compare-push-table"
COMPARE_PUSH_COST = "compare-push-cost"
COMPARE_PUSH_RATES = "compare-push-rates"
COMPARE_PUSH_BREAK_EVEN = "compare-push-break-even"
COMPARE_PUSH_CSV_BUTTON = "compare-push-csv-button"
COMPARE_PUSH_CSV = "compare-push-csv-download"

# connections
CONN_TABLE = "connections-table"
CONN_DETAIL = "connections-detail"
CONN_ATTRIBUTION = "connections-attribution"
CONN_TIMELINE = "connections-timeline"
CONN_WIRESHARK = "connections-wireshark"
CONN_FILTER = "connections-display-filter"
CONN_SLICE = "connections-slice-download"
CONN_CSV_BUTTON = "connections-csv-button"
CONN_CSV = "connections-csv-download"

# frames and messages
FRAMES_TABLE = "frames-table"
FRAMES_DETAIL = "frames-detail"
FRAMES_CSV_BUTTON = "frames-csv-button"
FRAMES_CSV = "frames-csv-download"

# findings
FINDINGS_LIST = "findings-list"
FINDINGS_CSV_BUTTON = "findings-csv-button"
FINDINGS_CSV = "findings-csv-download"

# upload
UPLOAD = "upload"
UPLOAD_STATUS = "upload-status"
UPLOAD_RESULT = "upload-result"
UPLOAD_TABLE = "upload-table"
UPLOAD_EARLIER = "upload-earlier"
UPLOAD_CONFIG = "upload-config"
UPLOAD_JOBS = "upload-jobs"
UPLOAD_POLL = "upload-poll"
UPLOAD_GUARD = "upload-installed"

# live
LIVE_PATH = "live-path"
LIVE_STATE = "live-state"
LIVE_INTERVAL = "live-interval"
LIVE_STATUS = "live-status"
LIVE_WARNINGS = "live-warnings"
LIVE_FIGURE = "live-wire-bytes"
LIVE_ROOTS = "live-allowed-folders"
