"""A client whose gateway dies mid-stream goes on through another node's gateway, and every
message it had an answer for was handled, none twice (real Ray, real gateways, real kill),
over HTTP (GatewayClient) and over WebSocket (StreamClient)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

import pytest
import ray

from agent_runtime.client import Deployment
from agent_runtime.constants import NAMESPACE
from agent_runtime.ingress import token_digest
from agent_runtime.ingress.httpclient import GatewayClient
from agent_runtime.ingress.streamclient import StreamClient
from agent_runtime.spec import DeploymentSpec
from tests.agent_runtime.ingress_agents import Ledger

pytestmark = pytest.mark.ray

TOKEN = "failover-token-not-a-secret"
LEDGER = "failover-test-ledger"
BATCH = 20


def _spec() -> DeploymentSpec:
    return DeploymentSpec.model_validate(
        {
            "name": "failover-t",
            "health": {"interval_s": 0.5},
            "agents": [
                {
                    "name": "work",
                    "import": "tests.agent_runtime.ingress_agents:Recorder",
                    "replicas": 2,
                    "resources": {"num_cpus": 0.1},
                    "config": {"sleep_s": 0.005, "echo": False, "ledger": LEDGER},
                }
            ],
            # Both nodes of the local cluster have this machine's hostname: a gateway on each,
            # each on a port of its own.
            "ingress": {
                "host": "127.0.0.1",
                "port": 0,
                "nodes": [socket.gethostname()],
                "token_sha256": token_digest(TOKEN),
            },
        }
    )


def _post_until(urls: list[str], stop: threading.Event, acknowledged: list[str]) -> int:
    client = GatewayClient(urls, TOKEN, retry_for_s=30)
    batch = 0
    while not stop.is_set():
        key = f"fo-{batch}"
        replies = client.post("failover-t", "work", [{"n": i} for i in range(BATCH)], key=key)
        assert all("result" in reply for reply in replies), replies
        acknowledged.extend(reply["id"] for reply in replies)
        batch += 1
    return client.failovers


def _stream_until(urls: list[str], stop: threading.Event, acknowledged: list[str]) -> int:
    async def stream() -> int:
        async with StreamClient(urls, TOKEN, "failover-t", "work", window=64) as client:

            async def producer(lane: int) -> None:
                n = 0
                while not stop.is_set():
                    message_id = f"ws-{lane}-{n}"
                    reply = await client.send({"n": n}, message_id)
                    assert "result" in reply, reply
                    acknowledged.append(reply["id"])
                    n += 1

            await asyncio.gather(*(producer(lane) for lane in range(32)))
            return client.failovers

    return asyncio.run(stream())


@pytest.mark.parametrize("send_until", [_post_until, _stream_until], ids=["http", "websocket"])
def test_a_client_fails_over_when_its_gateway_dies_and_nothing_acknowledged_is_lost(
    ray_cluster, send_until
):
    ledger = ray.remote(Ledger).options(name=LEDGER, namespace=NAMESPACE).remote()
    deployment = asyncio.run(Deployment.start(_spec()))
    failovers: list[int] = []
    try:
        first, second = asyncio.run(deployment.gateways())
        assert first["port"] != second["port"]
        stop, acknowledged = threading.Event(), []
        sender = threading.Thread(
            target=lambda: failovers.append(
                send_until([first["url"], second["url"]], stop, acknowledged)
            )
        )
        sender.start()
        while len(acknowledged) < 200 and sender.is_alive():
            time.sleep(0.01)
        os.kill(first["pid"], signal.SIGKILL)  # mid-stream: messages are in flight through it
        at_kill = len(acknowledged)
        deadline = time.monotonic() + 30
        while len(acknowledged) < at_kill + 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        sender.join(timeout=60)
    finally:
        asyncio.run(deployment.stop(purge=True))

    handled = ray.get(ledger.all.remote())
    ray.kill(ledger)
    assert failovers and failovers[0] >= 1, "the client did not fail over (or it failed)"
    assert len(acknowledged) >= at_kill + 400, "the client did not go on through the other"
    assert not set(f"c:{reply_id}" for reply_id in acknowledged) - set(handled)
    assert len(handled) == len(set(handled)), "a message was handled twice"
