"""Workload payloads and parameters: no network, no privileges."""

from __future__ import annotations

import json

import pytest

from inspector.cli import RECORD_SCENARIOS
from inspector.errors import RecordError
from inspector.workloads.payloads import bulk_body, bulk_reply, bulk_request, chat_reply, chat_request, feed_update, seq_of
from inspector.workloads.scenarios import SCENARIOS, VARIANTS
from inspector.workloads.servers import sse_event


def test_cli_knows_every_scenario() -> None:
    assert RECORD_SCENARIOS == tuple(SCENARIOS)


@pytest.mark.parametrize("size", [40, 41, 120, 1000, 5000])
@pytest.mark.parametrize("seq", [1, 9, 10, 12345])
def test_chat_messages_and_replies_have_the_asked_size(seq: int, size: int) -> None:
    request = chat_request(seq, size)
    reply = chat_reply(request)
    assert len(request) == len(reply) == size
    assert json.loads(request)["seq"] == json.loads(reply)["seq"] == seq
    assert request != reply
    assert chat_request(seq, size) == request  # deterministic


def test_too_small_a_size_says_the_minimum() -> None:
    with pytest.raises(ValueError, match="at least"):
        chat_request(1, 10)


@pytest.mark.parametrize("size", [0, 1, 100, 125, 126, 65535, 65536, 70000])
def test_bulk_documents_have_the_asked_size(size: int) -> None:
    ask = bulk_request(3, size)
    assert bulk_reply(ask) == bulk_body(3, size)
    assert len(bulk_body(3, size)) == size


def test_feed_updates() -> None:
    update = feed_update(7, 200)
    assert len(update) == 200 and seq_of(update) == 7 and seq_of(update.decode()) == 7


def test_an_update_is_one_sse_event_of_its_very_bytes() -> None:
    update = feed_update(12, 200)
    assert sse_event(12, update) == b"id: 12\ndata: " + update + b"\n\n"
    with pytest.raises(ValueError, match="line end"):
        sse_event(1, b'{"a":1}\r\n')


def test_scenarios_and_their_variants() -> None:
    push = ("rest-polling", "rest-long-polling", "sse", "ws", "ws-deflate")
    for scenario in SCENARIOS.values():
        assert set(scenario.variants) <= set(VARIANTS)
        assert ("rest-polling" in scenario.variants) == scenario.push
        assert scenario.variants == (push if scenario.push else ("rest-keepalive", "rest-per-request", "ws", "ws-deflate"))
    assert SCENARIOS["chat"].check_variants(None) == [VARIANTS[n] for n in ("rest-keepalive", "rest-per-request", "ws", "ws-deflate")]
    with pytest.raises(RecordError, match="no variant rest-polling"):
        SCENARIOS["bulk"].check_variants(["rest-polling"])


def test_parameters_defaults_and_poll_interval() -> None:
    feed = SCENARIOS["feed"].parameters(rate=10.0)
    assert feed.poll_interval == pytest.approx(0.1)
    assert SCENARIOS["feed"].parameters(rate=10.0, poll_interval=0.5).poll_interval == 0.5
    bulk = SCENARIOS["bulk"].parameters()
    assert [bulk.size(i) for i in (1, 2, 3, 4)] == [100, 1000, 70000, 100]
    assert bulk.as_dict() == {"messages": 3, "sizes": [100, 1000, 70000], "rate": None, "poll_interval": None, "sse_drop_after": None}
    with pytest.raises(RecordError, match="--size 20"):
        SCENARIOS["chat"].parameters(sizes=(20,))


def test_the_feeds_sse_stream_is_dropped_once_halfway_unless_told() -> None:
    feed = SCENARIOS["feed"]
    assert feed.parameters(messages=20, rate=10.0).sse_drop_after == 10
    assert feed.parameters(messages=3, rate=10.0, sse_drop_after=1).as_dict()["sse_drop_after"] == 1
    assert feed.parameters(messages=20, rate=10.0, sse_drop_after=0).sse_drop_after is None  # 0: never
    assert feed.parameters(messages=1, rate=10.0).sse_drop_after is None  # no update before the last
    assert SCENARIOS["idle"].parameters().sse_drop_after is None
    with pytest.raises(RecordError, match="0 \\(never\\) to 19"):
        feed.parameters(messages=20, rate=10.0, sse_drop_after=20)
    with pytest.raises(RecordError, match="for the feed"):
        SCENARIOS["idle"].parameters(sse_drop_after=2)
