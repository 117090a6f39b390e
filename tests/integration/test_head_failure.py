"""A sandbox of its own with the operations pipeline behind the ingress:

- every TCP port of every node scanned from this machine, which is outside the cluster's
  network but in the ingress's allowed networks: only SSH and the ingress port answer;
- then, under a steady stream of messages through the ingress, four faults in turn: kill -9
  of the head's GCS, of the head's raylet, a restart of the head's container, kill -9 of a
  worker's raylet. After each the cluster and the deployment are back by themselves (the
  keeper resubmits it; its replicas resume from their checkpoints), and no message that was
  acknowledged is missing from the agents' state.

The drill itself is bench/recovery.py's, which prints the times; this asserts on its counts."""

from __future__ import annotations

import asyncio
import errno
import resource
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import recovery
from mcpctl.spec import load_spec

pytestmark = pytest.mark.integration

# Per host; with inbound drop every closed port is a timeout: 65,535 / 4,096 x 3 s, ~50 s.
SCAN_CONCURRENCY = 4096
SCAN_TIMEOUT_S = 3.0
# Unanswered or refused: closed to this host. Anything else (out of descriptors, no route)
# would hide an open port, so it fails the scan instead.
_CLOSED = (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[tuple[recovery.Sandbox, list[str], str]]:
    with pytest.MonkeyPatch.context() as patch:
        # Recorded here, so the sandbox's settings (which the drill sets) are undone after.
        for name, value in recovery.SANDBOX_ENV.items():
            patch.setenv(name, value)
        for name in ("MCP_SPEC", "MCP_RAY_ADDRESS", "MCP_RAY_TOKEN", "MCP_RAY_TOKEN_FILE"):
            patch.delenv(name, raising=False)
        with recovery.sandbox_cluster(keep=False) as sandbox:
            urls, token = recovery.deploy_example(tmp_path_factory.mktemp("drill"))
            yield sandbox, urls, token


async def _open_ports(host: str) -> list[int]:
    """Every TCP port of `host` that accepts a connection from here. A fixed pool of probes
    (not one task per port, whose creation alone would hold the loop for longer than a
    probe's timeout) keeps each answer handled within milliseconds of its arrival."""
    ports = iter(range(1, 65536))
    found = []

    async def prober() -> None:
        for port in ports:
            try:
                connecting = asyncio.open_connection(host, port)
                _, writer = await asyncio.wait_for(connecting, SCAN_TIMEOUT_S)
            except TimeoutError:
                continue  # dropped
            except OSError as error:
                if error.errno in _CLOSED:
                    continue
                raise
            found.append(port)
            writer.close()

    await asyncio.gather(*(prober() for _ in range(SCAN_CONCURRENCY)))
    return sorted(found)


def test_from_outside_the_cluster_only_ssh_and_the_ingress_answer(deployed) -> None:
    sandbox, urls, _ = deployed
    spec = load_spec(Path(sandbox.layout.spec_file))
    nodes = [node.address for node in spec.nodes]
    # Gateways run on the nodes that host agents: their port listens there.
    serving = {urllib.parse.urlsplit(url).hostname for url in urls}
    assert len(nodes) == 3 and serving, urls

    async def scan_all() -> list[list[int]]:
        return list(await asyncio.gather(*(_open_ports(node) for node in nodes)))

    # A socket per probe in flight, on every node at once.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(nodes) * SCAN_CONCURRENCY + 1024
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    for node, ports in zip(nodes, asyncio.run(scan_all()), strict=True):
        expected = {spec.ssh.port} | ({spec.ingress.port} if node in serving else set())
        assert ports == sorted(expected), node


def test_four_faults_lose_no_deployment_and_no_acknowledged_message(deployed) -> None:
    sandbox, _, token = deployed
    # Each drill waits, up to its timeout, for an acknowledgement of a message sent after
    # the fault and for the deployment to run again: a TimeoutError otherwise.
    drilled = recovery.drill_all(sandbox, token, rate=20)
    result = recovery.figures(drilled)

    assert set(drilled["faults"]) == set(recovery.FAULTS)
    assert result["deployments_lost"] == 0
    assert drilled["acked"] > 100 and result["acknowledged_lost"] == 0, result
    # Each message is applied once: a redelivered one is answered from the replica's memory.
    assert drilled["processed"] <= drilled["sent"], result
