"""Conformance findings on real captures that break the rules."""

from __future__ import annotations

from tests.conftest import analyze_cached, corpus_path


def rules(name: str) -> set[str]:
    return set(analyze_cached(str(corpus_path(name)))["findings"]["rule"])


def test_wrong_accept_header_is_flagged():
    analysis = analyze_cached(str(corpus_path("zeek-websocket-wrong-accept-header.pcap")))
    assert "ws-bad-accept" in set(analysis["findings"]["rule"])
    assert analysis["connections"]["ws_accept_valid"].tolist() == [False]


def test_valid_accept_is_not_flagged():
    analysis = analyze_cached(str(corpus_path("zeek-websocket-permessage-deflate.pcap")))
    assert analysis["connections"]["ws_accept_valid"].tolist() == [True]
    assert analysis["findings"].empty


def test_unmasked_client_ping():
    assert "ws-unmasked-client-frame" in rules("suricata-websocket-ping-pong-linux-sll.pcap")


def test_oversized_close_with_non_minimal_64_bit_length():
    analysis = analyze_cached(str(corpus_path("zeek-websocket-oversized-close-len64.pcapng")))
    assert {"ws-control-frame-too-long", "ws-non-minimal-length"} <= set(analysis["findings"]["rule"])
    close = analysis["ws_frames"].query("opcode == 8")
    assert close["payload_length"].tolist() == [258] and close["header_bytes"].tolist() == [10]


def test_te_and_cl_smuggling_attempt():
    analysis = analyze_cached(str(corpus_path("zeek-http-raw-ipv4-te-cl-desync.pcap")))
    assert "http-te-and-cl" in set(analysis["findings"]["rule"])
    # Transfer-Encoding wins (RFC 9112 6.3): the smuggled GET is a request of its own.
    assert sorted(analysis["http_messages"]["method"].dropna()) == ["GET", "POST"]


def test_non_websocket_upgrade_is_not_parsed_as_websocket():
    analysis = analyze_cached(str(corpus_path("zeek-http-docker-upgrade-chunked.pcap")))
    assert analysis["ws_frames"].empty
    upgraded = analysis["connections"].query("unparsed_bytes > 0")
    assert len(upgraded) == 1 and upgraded["kind"].tolist() == ["rest"]


def test_permessage_deflate_sizes():
    analysis = analyze_cached(str(corpus_path("zeek-websocket-permessage-deflate.pcap")))
    messages = analysis["ws_messages"]
    assert messages["compressed"].all()
    assert (messages["payload_bytes"] > messages["wire_payload_bytes"]).all()
    baseline = analyze_cached(str(corpus_path("zeek-websocket-uncompressed-baseline.pcap")))["ws_messages"]
    # The same exchange without compression: the same decompressed sizes.
    assert sorted(messages["payload_bytes"]) == sorted(baseline["payload_bytes"])
    assert sorted(messages["payload_text"]) == sorted(baseline["payload_text"])


def test_control_frame_inside_fragmented_message():
    analysis = analyze_cached(str(corpus_path("suricata-websocket-ping-inside-fragmented-msg.pcap")))
    messages = analysis["ws_messages"]
    assert len(messages) == 1 and messages["frames"].tolist() == [2] and messages["complete"].all()
    frames = analysis["ws_frames"]
    ping = frames.query("opcode == 9")
    assert ping["message_id"].isna().all()


def test_close_codes_and_reason():
    frames = analyze_cached(str(corpus_path("zeek-websocket-close-1009-message-too-big.pcap")))["ws_frames"]
    closes = frames.query("opcode == 8")
    assert sorted(closes["close_code"].tolist()) == [1000, 1009]
    assert closes.query("close_code == 1009")["close_reason"].tolist() == ["over size limit (4 > 2 bytes)"]


def test_http_101_and_ping_in_one_segment():
    analysis = analyze_cached(str(corpus_path("zeek-websocket-101-and-ping-coalesced.pcap")))
    frames = analysis["ws_frames"]
    assert frames.query("direction == 'server'")["opcode"].iloc[0] == 9
    assert analysis["connections"]["unparsed_bytes"].tolist() == [0]


def test_midstream_websocket_without_handshake():
    analysis = analyze_cached(str(corpus_path("ndpi-websocket-midstream-no-handshake.pcap")))
    frames = analysis["ws_frames"]
    assert sorted(frames.query("direction == 'client'")["payload_length"]) == [12, 15]
    assert sorted(frames.query("direction == 'server'")["payload_length"]) == [23, 50, 53]
    assert frames.query("direction == 'client'")["masked"].all()
