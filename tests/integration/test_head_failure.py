"""A sandbox of its own, deployed on an older Ray, with the operations pipeline behind the
ingress.

- Every TCP port of every node scanned from this machine, which is outside the cluster's
  network but in the ingress's allowed networks: only SSH, and the ingress port where a
  gateway runs, answer.
- Under a steady stream of messages through the ingress: `mcpctl upgrade` to the spec's Ray (a
  whole-cluster restart), then four faults in turn: kill -9 of the head's GCS, of the head's
raylet, a restart of the head's container, kill -9 of a worker's raylet. After each the
cluster and the deployment are back by themselves (the keeper resubmits it; its replicas
resume from their checkpoints), and no message that was acknowledged is missing from the
agents' state.

The drill itself is bench/recovery.py's, which prints the times; this asserts on its counts."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from agent_runtime.ingress.httpclient import split_gateway_urls
from bench import recovery
from mcpctl.spec import DEFAULT_RAY_VERSION, load_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[tuple[recovery.Sandbox, str, list[str]]]:
    with pytest.MonkeyPatch.context() as patch:
        # Recorded here, so the sandbox's settings (which the drill sets) are undone after.
        for name, value in recovery.SANDBOX_ENV.items():
            patch.setenv(name, value)
        for name in ("MCP_SPEC", "MCP_RAY_ADDRESS", "MCP_RAY_TOKEN", "MCP_RAY_TOKEN_FILE"):
            patch.delenv(name, raising=False)
        with recovery.sandbox_cluster(keep=False) as sandbox:
            token, gateways = recovery.deploy_example(tmp_path_factory.mktemp("drill"))
            yield sandbox, token, gateways


def open_ports(hosts: list[str]) -> dict[str, set[int]]:
    """Every TCP port of each host that answers a SYN from here, by nmap's SYN scan. nmap
    resends unanswered probes and slows down where it sees loss, which a hand-rolled connect
    scan under CI's load did not (it missed sshd). With inbound drop a closed port is a
    dropped probe, so a port nmap calls "filtered" is closed to this host."""
    nmap = shutil.which("nmap")
    assert nmap, "nmap is missing: run `make system-deps`"
    scan = subprocess.run(
        [nmap, "-sS", "-Pn", "-n", "-p", "1-65535", "-T4", "--max-retries", "4",
         "--open", "-oX", "-", *hosts],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    found: dict[str, set[int]] = {host: set() for host in hosts}
    for host in ET.fromstring(scan.stdout).iter("host"):
        address = host.find("address").get("addr")
        found[address] = {int(port.get("portid")) for port in host.iter("port")
                          if port.find("state").get("state") == "open"}  # fmt: skip
    return found


def test_from_outside_the_cluster_only_ssh_and_the_ingress_answer(deployed) -> None:
    sandbox, _, gateways = deployed
    spec = load_spec(sandbox.layout.spec_file)
    nodes = [node.address for node in spec.nodes]
    serving = {url.hostname for url in split_gateway_urls(gateways)}
    assert len(nodes) == 3 and serving and serving <= set(nodes), gateways

    found = open_ports(nodes)

    for node in nodes:
        expected = {spec.ssh.port} | ({spec.ingress.port} if node in serving else set())
        assert found[node] == expected, node


def test_an_upgrade_and_four_faults_lose_no_deployment_and_no_acknowledged_message(
    deployed,
) -> None:
    sandbox, token, _ = deployed
    # Each drill waits, up to its timeout, for an acknowledgement of a message sent after
    # the fault and for the deployment to run again: a TimeoutError otherwise.
    drilled = recovery.drill_all(sandbox, token, rate=20)
    result = recovery.figures(drilled)

    assert set(drilled["faults"]) == set(recovery.FAULTS)
    assert set(drilled["upgrade"]["ray"].values()) == {DEFAULT_RAY_VERSION}, drilled["upgrade"]
    assert result["deployments_lost"] == 0
    assert drilled["acked"] > 100 and result["acknowledged_lost"] == 0, result
    # Each message is applied once: a redelivered one is answered from the replica's memory.
    assert drilled["processed"] <= drilled["sent"], result
