"""Pipelined requests are paired FIFO with their responses, where tshark 4.0 mis-pairs them.

RFC 9112 section 9.3.2: a server MUST send responses to pipelined requests in
the order the requests were received, so the i-th response answers the i-th
request.  tshark pairs a response with the latest request of the segment that
carried several, leaving other requests without a response and responses
without a request.
"""

from __future__ import annotations

import pytest

from tests import tshark_oracle as oracle
from tests.conftest import analyze_cached, corpus_path


def exchanges(path):
    http = analyze_cached(str(path))["http_messages"]
    requests = http[http["direction"] == "client"].set_index(["conn_id", "exchange_id"])
    responses = http[http["direction"] == "server"].set_index(["conn_id", "exchange_id"])
    return requests.merge(responses, left_index=True, right_index=True, suffixes=("_req", "_resp"), how="outer")


def test_two_requests_in_one_segment_paired_fifo():
    path = corpus_path("suricata-http-pipelined-2req-1segment.pcap")
    pairs = exchanges(path).sort_values("ts_req")
    assert list(pairs["target_req"]) == ["/bar/", "/foo/"]
    assert list(pairs["status_resp"]) == [200, 200]
    # Each request gets its own response, the earlier request the earlier one.
    assert pairs["ts_resp"].is_monotonic_increasing and pairs["ts_resp"].nunique() == 2
    assert (pairs["ts_resp"] > pairs["ts_req"]).all()


@pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed")
def test_tshark_mis_pairs_the_same_capture():
    path = corpus_path("suricata-http-pipelined-2req-1segment.pcap")
    pairs = oracle.http_pairs(path)
    answered = [p.response_frame for p in pairs if p.request_frame is not None]
    # Both requests claim the same response and the second response has no request.
    assert len(answered) == 2 and len(set(answered)) == 1
    assert any(p.request_frame is None for p in pairs)


def test_forty_pipelined_requests_with_retransmissions():
    path = corpus_path("suricata-http-pipelined-40req-retrans.pcap")
    pairs = exchanges(path)
    assert len(pairs) == 40
    assert pairs["method_req"].eq("GET").all() and pairs["status_resp"].eq(404).all()
    ordered = pairs.sort_values("ts_req", kind="stable")
    assert ordered["ts_resp"].is_monotonic_increasing
    assert (pairs["ts_resp"] >= pairs["ts_req"]).all()


@pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed")
def test_tshark_pairs_few_of_the_forty():
    path = corpus_path("suricata-http-pipelined-40req-retrans.pcap")
    pairs = oracle.http_pairs(path)
    paired_responses = {p.response_frame for p in pairs if p.request_frame is not None and p.response_frame is not None}
    unpaired_responses = [p for p in pairs if p.request_frame is None]
    assert len(paired_responses) < 40 and len(unpaired_responses) > 0
