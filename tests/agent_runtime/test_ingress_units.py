"""The gateway's parts without Ray or sockets: codecs, auth, envelopes, routing, metrics."""

from __future__ import annotations

import random

import msgspec
import pytest

from agent_runtime.ingress import envelope
from agent_runtime.ingress.auth import BearerAuth, token_digest
from agent_runtime.ingress.coalescer import AgentRoute, describe_failure
from agent_runtime.ingress.codec import JSON, MSGPACK, codec_for
from agent_runtime.ingress.errors import ClientError
from agent_runtime.ingress.stats import GatewayStats
from agent_runtime.spec import AgentSpec, IngressSpec, parse_spec


def test_codecs_by_content_type():
    assert codec_for(None) is JSON
    assert codec_for("application/json; charset=utf-8") is JSON
    assert codec_for("application/x-msgpack") is MSGPACK
    assert codec_for("Application/MsgPack") is MSGPACK
    with pytest.raises(ClientError) as refused:
        codec_for("text/plain")
    assert refused.value.status == 415


@pytest.mark.parametrize(("codec", "data"), [(JSON, b'{"a": '), (MSGPACK, b"\xc1")])
def test_malformed_input_is_a_400_naming_the_encoding(codec, data):
    with pytest.raises(ClientError) as refused:
        codec.decode(data)
    assert refused.value.status == 400 and codec.name in refused.value.reason


class _Array:
    def tolist(self):
        return [1, 2]


def test_unencodable_results_fail_alone():
    replies = [{"id": "a", "result": _Array()}, {"id": "b", "result": object()}]
    for codec, decode in ((JSON, msgspec.json.decode), (MSGPACK, msgspec.msgpack.decode)):
        decoded = decode(codec.encode_replies(replies))
        assert decoded[0] == {"id": "a", "result": [1, 2]}
        assert decoded[1]["id"] == "b" and decoded[1]["status"] == 500
        data, status = codec.encode_reply(replies[1])
        assert status == 500 and "not encodable" in decode(data)["error"]


def test_bearer_token_against_its_digest():
    auth = BearerAuth(token_digest("s3cret"))
    assert auth.allows("Bearer s3cret")
    assert auth.allows("bearer s3cret")
    for header in (None, "", "Bearer", "Bearer s3cre", "Basic s3cret", "s3cret"):
        assert not auth.allows(header), header


def test_bodies_batches_and_ids():
    assert envelope.payloads_of({"a": 1}, 10) == ([{"a": 1}], False)
    assert envelope.payloads_of([[1], 2], 10) == ([[1], 2], True)
    for body, status in (([], 400), ([1] * 11, 413)):
        with pytest.raises(ClientError) as refused:
            envelope.payloads_of(body, 10)
        assert refused.value.status == status
    assert envelope.batch_ids(None, 2, True) == [None, None]
    assert envelope.batch_ids("k", 1, False) == ["k"]
    assert envelope.batch_ids("k", 2, True) == ["k.0", "k.1"]
    assert envelope.check_id(7) == "7"
    for bad in ("", True, None, 1.5, "x" * 257):
        with pytest.raises(ClientError):
            envelope.check_id(bad)


def test_frames_and_routing_keys():
    assert envelope.frame_message({"id": 3, "payload": None}) == ("3", None)
    for frame in ([], {"payload": 1}, {"id": "a"}):
        with pytest.raises(ClientError):
            envelope.frame_message(frame)
    assert envelope.frame_id({"id": "a"}) == "a"
    assert envelope.frame_id({"id": True}) is None
    assert envelope.routing_key({"host": 1}, "host") == "1"
    assert envelope.routing_key({"host": None}, "host") is None
    assert envelope.routing_key([1], None) is None
    for payload in ({"other": 1}, [1], "text"):
        with pytest.raises(ClientError) as refused:
            envelope.routing_key(payload, "host")
        assert refused.value.status == 422


def _route(capacity: int, routing_key: str | None = None) -> AgentRoute:
    agent = AgentSpec.model_validate({"name": "a", "import": "m:A", "routing_key": routing_key})
    ingress = IngressSpec.model_validate({"limits": {"max_pending_per_replica": capacity}})

    async def no_fetch(_agent: str) -> list:
        raise AssertionError("not called")

    route = AgentRoute(agent, ingress, GatewayStats("d"), no_fetch, random.Random(1))
    route.set_replicas([("a.0", None, 1.0), ("a.1", None, 1.0)])
    return route


def test_keyed_messages_are_refused_together_when_their_replica_is_full():
    route = _route(capacity=3, routing_key="k")
    owner = route.assign(["x"])[0]
    assert route.assign(["x"] * 3) == [owner] * 3
    assert route.assign(["x"] * 4) is None  # all or nothing: none of them is queued
    lanes = _route(capacity=10, routing_key="k").assign([f"key-{i}" for i in range(10)])
    assert lanes is not None and {lane.replica_id for lane in lanes} == {"a.0", "a.1"}


def test_unkeyed_messages_fill_whichever_replica_has_room():
    route = _route(capacity=3)
    lanes = route.assign([None] * 6)
    assert (
        lanes is not None and sorted(lane.replica_id for lane in lanes) == ["a.0"] * 3 + ["a.1"] * 3
    )
    assert route.assign([None] * 7) is None


def test_an_agents_failure_is_described_briefly():
    class Wrapped(Exception):
        cause = ValueError("bad input " + "x" * 1000)

    reason = describe_failure(Wrapped())
    assert reason.startswith("ValueError: bad input") and len(reason) <= 300


def test_metrics_render_as_prometheus_text():
    stats = GatewayStats("d")
    stats.messages[("a", "ok")] += 3
    stats.responses[("http", 429)] += 2
    stats.batch("a", 5)
    stats.batch("a", 300)
    text = stats.render(lambda: {"a": {"queued": 4, "in_flight": 1}})
    lines = set(text.splitlines())
    assert 'mcp_ingress_messages_total{deployment="d",agent="a",outcome="ok"} 3' in lines
    assert 'mcp_ingress_rejected_total{deployment="d"} 2' in lines
    assert 'mcp_ingress_queued{deployment="d",agent="a"} 4' in lines
    assert 'mcp_ingress_batch_size_bucket{deployment="d",agent="a",le="8"} 1' in lines
    assert 'mcp_ingress_batch_size_bucket{deployment="d",agent="a",le="+Inf"} 2' in lines
    assert 'mcp_ingress_batch_size_sum{deployment="d",agent="a"} 305' in lines


def test_ingress_section_defaults_and_checks():
    spec = parse_spec("name: x\nagents:\n  - name: a\n    import: m:A\ningress: {}\n")
    ingress = spec.ingress
    assert ingress is not None
    assert (ingress.port, ingress.host, ingress.processes_per_node) == (8300, None, 1)
    assert ingress.limits.max_body_bytes == 1 << 20 and ingress.token_sha256 is None
    assert parse_spec("name: x\nagents:\n  - name: a\n    import: m:A\n").ingress is None
    with pytest.raises(Exception, match="token_sha256"):
        parse_spec(
            "name: x\nagents:\n  - name: a\n    import: m:A\ningress: {token_sha256: short}\n"
        )
