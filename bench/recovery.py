"""Recovery from the head's and a worker's failure, on a sandbox, under a steady stream of
messages to the operations pipeline's detector through the ingress.

    .venv/bin/python -m bench.recovery [--rate 20] [--keep]

It brings up a sandbox of its own (mcp-recovery, 3 nodes), deploys the cluster on an older
Ray (UPGRADE_FROM_RAY, 2.58.0) and the operations example (its detector checkpointing every
message, so that an acknowledged message is in the checkpoint before its reply leaves), then,
one after another, each once the deployment is back from the one before:

    ray_upgrade         `mcpctl upgrade` to the spec's Ray: a whole-cluster restart
    head_gcs_kill       kill -9 of the GCS on the head
    head_raylet_kill    kill -9 of the head's raylet
    head_restart        a restart of the head's container
    worker_raylet_kill  kill -9 of a worker's raylet

A fault's recovery time runs from the fault to the first acknowledgement of a message sent
at least GRACE_S after it (so not one already in flight); a worker's rejoin time, to the
moment Ray has that node alive again; the upgrade's downtime is the longest stretch without
an acknowledgement while it ran. At the end, the detector's replicas' processed
counters (restored from their checkpoints) against the messages acknowledged: fewer would
be an acknowledged message lost. The integration test tests/integration/test_head_failure.py
runs the same drill and asserts on what it finds; this prints the figures: a table and,
last, one line of JSON with head_gcs_kill_recovery_s, head_restart_recovery_s,
worker_rejoin_s, ray_upgrade_downtime_s, deployments_lost and acknowledged_lost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent_runtime.examples.traffic import metric_message
from agent_runtime.ingress.httpclient import GatewayClient, GatewayError
from mcpctl.sandbox.wheelhouse import UPGRADE_FROM_RAY

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SANDBOX_ENV = {"MCP_SANDBOX_NAME": "mcp-recovery", "MCP_SANDBOX_SUBNET": "10.72.0.0/24"}
DEPLOYMENT, AGENT = "ops", "detector"
GRACE_S = 2.0
RECOVERY_TIMEOUT_S = 240.0
HEAD, WORKER = "node1", "node3"


def mcpctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "mcpctl"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def mcpctl_json(*args: str) -> Any:
    done = mcpctl(*args, "-o", "json", timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else None


@dataclass
class Stream:
    """Messages to the detector, one at a time at `rate`, each with its own id; the time
    each was sent and acknowledged."""

    urls: list[str]
    token: str
    rate: float
    sent: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        # Retried and failed over within its window; a message not taken by then is counted
        # as sent and not acknowledged, and the next one goes.
        client = GatewayClient(self.urls, self.token, timeout_s=10, retry_for_s=20)
        i = 0
        while not self._stop.is_set():
            key = f"drill-{os.getpid()}-{i}"
            self.sent[key] = time.monotonic()
            try:
                (reply,) = client.post(DEPLOYMENT, AGENT, [metric_message(i, 8, 0.05)], key)
                if "result" in reply:
                    self.acked[key] = time.monotonic()
                else:
                    self.refused += 1
            except GatewayError:
                self.refused += 1
            i += 1
            self._stop.wait(1 / self.rate)

    def longest_silence(self, start: float, end: float) -> tuple[float, float]:
        """The longest time between acknowledgements (or `start`, `end`) within the span, and
        when it began."""
        moments = [start, *sorted(t for t in self.acked.values() if start < t < end), end]
        return max((later - earlier, earlier) for earlier, later in itertools.pairwise(moments))

    def first_ack_sent_after(self, moment: float) -> float | None:
        times = [self.acked[key] for key, sent in self.sent.items() if sent >= moment
                 and key in self.acked]  # fmt: skip
        return min(times) if times else None

    @contextmanager
    def running(self) -> Iterator[Stream]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(60)


class Sandbox:
    """The drill's sandbox: hosts, SSH and podman, as an operator has them."""

    def __init__(self) -> None:
        from mcpctl.sandbox.paths import SandboxLayout

        self.layout = SandboxLayout.default()

    def spec(self) -> Any:
        from mcpctl.spec import load_spec

        return load_spec(self.layout.spec_file)

    def nodes(self) -> list[str]:
        return [node.name for node in self.spec().nodes]

    def address(self, name: str) -> str:
        """The node's address from the spec: Ray's for the node too (--node-ip-address), known
        even while status has not probed the node since it came back."""
        (address,) = [node.address for node in self.spec().nodes if node.name == name]
        return address

    def older_ray_spec(self) -> Path:
        """The sandbox's spec on UPGRADE_FROM_RAY, beside it (its relative paths hold)."""
        spec = yaml.safe_load(self.layout.spec_file.read_text())
        spec["ray"]["version"] = UPGRADE_FROM_RAY
        older = self.layout.spec_file.with_name(f"cluster-ray-{UPGRADE_FROM_RAY}.yaml")
        older.write_text(yaml.safe_dump(spec, sort_keys=False))
        return older

    def ingress_urls(self) -> list[str]:
        spec = self.spec()
        return [f"http://{node.address}:{spec.ingress.port}" for node in spec.nodes]

    def ssh(self, node: str, command: str) -> str:
        done = mcpctl("sandbox", "ssh", node, "--", command, timeout=60)
        return done.stdout

    def restart(self, node: str) -> None:
        from mcpctl.sandbox.engine import Podman

        Podman(self.layout).run(["restart", "--time", "10", self.layout.container_name(node)])


def kill(process: str, node: str) -> Callable[[Sandbox], None]:
    def fault(sandbox: Sandbox) -> None:
        sandbox.ssh(node, f"sudo pkill -9 -x {process}")

    return fault


FAULTS: dict[str, Callable[[Sandbox], None]] = {
    "head_gcs_kill": kill("gcs_server", HEAD),
    "head_raylet_kill": kill("raylet", HEAD),
    "head_restart": lambda sandbox: sandbox.restart(HEAD),
    "worker_raylet_kill": kill("raylet", WORKER),
}


def _nodes() -> list[dict[str, Any]]:
    return (mcpctl_json("status") or {"nodes": []})["nodes"]


def node_ids(address: str) -> set[str]:
    """The Ray ids alive now at this address (one just back has not been probed yet, so it
    has no hostname)."""
    return {node["node_id"] for node in _nodes()
            if node["status"] != "dead" and node["address"] == address}  # fmt: skip


def deployment_running() -> bool:
    # A call that outlasts its timeout (a loaded machine, a keeper still coming back) is a
    # "not yet", like any other failed call: the wait around it has its own deadline.
    try:
        return mcpctl("agents", "status", DEPLOYMENT, timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait(check: Callable[[], Any], what: str, timeout_s: float = RECOVERY_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.5)
    return result


def drill(sandbox: Sandbox, stream: Stream, name: str) -> dict[str, float | None]:
    """One fault, and what it took to be back from it."""
    worker = sandbox.address(WORKER) if name.startswith("worker") else None
    before = node_ids(worker) if worker else set()
    struck = time.monotonic()
    FAULTS[name](sandbox)
    acked = wait(lambda: stream.first_ack_sent_after(struck + GRACE_S), f"{name}: an ack")
    wait(deployment_running, f"{name}: {DEPLOYMENT} running")
    figures: dict[str, float | None] = {
        "recovery_s": round(acked - struck, 1),
        "status_running_s": round(time.monotonic() - struck, 1),
    }
    if before:
        wait(lambda: node_ids(worker) - before, f"{name}: {WORKER} alive under a new id")
        figures["rejoin_s"] = round(time.monotonic() - struck, 1)
    return figures


def ray_versions(sandbox: Sandbox) -> dict[str, str]:
    """Each node's Ray as its versions fact (roles/python_env) says."""
    fact = "cat /etc/ansible/facts.d/mcp_python.fact"
    return {node: json.loads(sandbox.ssh(node, fact))["ray"] for node in sandbox.nodes()}


def upgrade(sandbox: Sandbox, stream: Stream) -> dict[str, Any]:
    """The spec's Ray over the older one the cluster was deployed with, under traffic."""
    started = time.monotonic()
    _step("upgrade", "-f", str(sandbox.layout.spec_file))
    finished = time.monotonic()
    wait(deployment_running, f"ray_upgrade: {DEPLOYMENT} running")
    acked = wait(lambda: stream.first_ack_sent_after(finished), "ray_upgrade: an ack after it")
    downtime, silent_from = stream.longest_silence(started, acked)
    return {
        "downtime_s": round(downtime, 1),
        # Where the silence lies in the upgrade's run (which of its plays it spans).
        "silent_from_s": round(silent_from - started, 1),
        "upgrade_s": round(finished - started, 1),
        "ray": ray_versions(sandbox),
    }


def processed_by_detector() -> int:
    report = mcpctl_json("agents", "status", DEPLOYMENT)
    (deployment,) = report["deployments"]
    replicas = [r for r in deployment["replicas"] if r["id"].startswith(f"{AGENT}.")]
    return sum(replica.get("processed", 0) for replica in replicas)


def drill_all(sandbox: Sandbox, token: str, rate: float) -> dict[str, Any]:
    # Every node's ingress port, not only those with a gateway now: a deployment brought back
    # may place its replicas, and so its gateways, elsewhere (the client skips refusals).
    stream = Stream(sandbox.ingress_urls(), token, rate)
    results: dict[str, Any] = {}
    # A deployment of this name may have run before: its counters resume from there.
    before = wait(lambda: processed_by_detector() + 1, "the detector's counters", 60) - 1
    with stream.running():
        wait(lambda: stream.acked, "the first acknowledgement", 60)
        results["ray_upgrade"] = upgrade(sandbox, stream)
        time.sleep(3)
        for name in FAULTS:
            results[name] = drill(sandbox, stream, name)
            time.sleep(3)  # some steady traffic between faults
    processed = wait(processed_by_detector, "the detector's counters", 60) - before
    upgraded = results.pop("ray_upgrade")
    return {"faults": results, "upgrade": upgraded,
            "sent": len(stream.sent), "acked": len(stream.acked),
            "refused": stream.refused, "processed": processed}  # fmt: skip


def deploy_example(spec_dir: Path) -> tuple[str, list[str]]:
    """The operations example, its detector checkpointing every message; its client token
    and its gateways' URLs."""
    text = (REPO / "agent_runtime/examples/operations.yaml").read_text()
    marker = "    routing_key: host          # one replica sees all of a host's metrics\n"
    assert marker in text, "operations.yaml changed: update the drill"
    spec = spec_dir / "operations-drill.yaml"
    spec.write_text(text.replace(marker, marker + "    checkpoint_every: 1\n", 1))
    done = mcpctl("agents", "deploy", str(spec), "-o", "json")
    if done.returncode != 0:
        raise RuntimeError(f"agents deploy failed:\n{done.stdout}\n{done.stderr}")
    deployed = json.loads(done.stdout)
    return Path(deployed["ingress_token_file"]).read_text().strip(), deployed["gateways"]


def _step(*args: str) -> None:
    done = mcpctl(*args, timeout=1800)
    if done.returncode != 0:
        said = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        raise RuntimeError(f"mcpctl {' '.join(args)}:\n{said}")


@contextmanager
def sandbox_cluster(keep: bool) -> Iterator[Sandbox]:
    os.environ.update(SANDBOX_ENV)
    for name in ("MCP_SPEC", "MCP_RAY_ADDRESS", "MCP_RAY_TOKEN", "MCP_RAY_TOKEN_FILE"):
        os.environ.pop(name, None)
    try:
        _step("sandbox", "up", "--nodes", "3")
        sandbox = Sandbox()
        _step("deploy", "-f", str(sandbox.older_ray_spec()))
        yield sandbox
    finally:
        if not keep:
            mcpctl("agents", "stop", DEPLOYMENT)
            mcpctl("sandbox", "down")


def figures(drilled: dict[str, Any]) -> dict[str, Any]:
    def of(fault: str, figure: str = "recovery_s") -> float | None:
        return drilled["faults"].get(fault, {}).get(figure)

    return {
        **{f"{fault}_recovery_s": of(fault) for fault in FAULTS},
        "worker_rejoin_s": of("worker_raylet_kill", "rejoin_s"),
        "ray_upgrade_downtime_s": drilled["upgrade"]["downtime_s"],
        "ray_upgrade_s": drilled["upgrade"]["upgrade_s"],
        "ray_upgrade_silent_from_s": drilled["upgrade"]["silent_from_s"],
        **{f"{fault}_status_running_s": of(fault, "status_running_s") for fault in FAULTS},
        "deployments_lost": 0 if deployment_running() else 1,
        "acknowledged_lost": max(0, drilled["acked"] - drilled["processed"]),
        "sent": drilled["sent"],
        "acked": drilled["acked"],
        "processed": drilled["processed"],
    }


def print_table(result: dict[str, Any]) -> None:
    targets = {"head_gcs_kill_recovery_s": "<= 30", "head_restart_recovery_s": "<= 60",
               "worker_rejoin_s": "<= 15", "ray_upgrade_downtime_s": "<= 30",
               "deployments_lost": "0", "acknowledged_lost": "0"}  # fmt: skip
    print(f"{'figure':32} {'value':>10}  target")
    for name, value in result.items():
        shown = "not drilled" if value is None else value
        print(f"{name:32} {shown!s:>10}  {targets.get(name, '')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = parser.parse_args()
    with sandbox_cluster(args.keep) as sandbox:
        token, _ = deploy_example(sandbox.layout.state_dir)
        result = figures(drill_all(sandbox, token, args.rate))
    print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
