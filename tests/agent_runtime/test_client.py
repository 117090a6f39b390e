from __future__ import annotations

import asyncio
import time

import pytest
import ray

from agent_runtime.client import Deployment
from agent_runtime.routing import Backpressure
from agent_runtime.spec import DeploymentSpec
from agent_runtime.supervisor import DeploymentRefused

pytestmark = pytest.mark.ray

COUNTER = "tests.agent_runtime.agents:Counter"


def _spec(name: str, **agent: object) -> DeploymentSpec:
    base = {"name": "a", "import": COUNTER, "resources": {"num_cpus": 0.1}}
    return DeploymentSpec.model_validate(
        {"name": name, "agents": [{**base, **agent}], "health": {"interval_s": 0.5}}
    )


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def deploy(ray_cluster):
    started: list[Deployment] = []

    def start(spec: DeploymentSpec) -> Deployment:
        deployment = run(Deployment.start(spec))
        started.append(deployment)
        return deployment

    yield start
    for deployment in started:
        run(deployment.stop(purge=True))


def test_keyed_messages_stick_to_one_replica_and_keep_state(deploy):
    group = deploy(_spec("sticky", replicas=3, routing_key="key")).group("a")

    async def send():
        return await asyncio.gather(*(group.call({"key": f"k{i % 5}"}) for i in range(50)))

    results = run(send())
    replicas: dict[str, set[int]] = {}
    for result in results:
        replicas.setdefault(result["key"], set()).add(result["replica"])
    assert all(len(owners) == 1 for owners in replicas.values())
    assert max(r["count"] for r in results if r["key"] == "k0") == 10
    # The bulk path: one call per replica involved, answers in the caller's order.
    payloads = [{"key": f"k{i % 5}"} for i in range(20)]
    bulk = run(group.call_many(payloads))
    assert [r["key"] for r in bulk] == [p["key"] for p in payloads]
    assert all(replicas[r["key"]] == {r["replica"]} for r in bulk)
    assert max(r["count"] for r in bulk if r["key"] == "k0") == 14
    with pytest.raises(ValueError, match="routes by 'key' but the payload has no such field"):
        run(group.call({"other": 1}))


def test_redelivered_message_is_answered_once(deploy):
    deployment = deploy(_spec("dedup", replicas=1))
    group = deployment.group("a")

    async def send_twice():
        first = await group.call({"key": "x"}, message_id="m-1")
        again = await group.call({"key": "x"}, message_id="m-1")
        fresh = await group.call({"key": "x"}, message_id="m-2")
        return first, again, fresh

    first, again, fresh = run(send_twice())
    assert first == again
    assert fresh["count"] == 2
    # Another driver finds the deployment by name and shares the replicas' dedup memory.
    other = run(Deployment.connect("dedup")).group("a")
    assert run(other.call({"key": "x"}, message_id="m-2")) == fresh
    info = run(deployment.status())["replicas"][0]
    assert (info["processed"], info["duplicates"]) == (2, 2)


def test_restarted_replica_resumes_from_checkpoint(deploy):
    deployment = deploy(_spec("resume", replicas=1, checkpoint_every=1))
    group = deployment.group("a")
    run(asyncio.wait_for(_count(group, 5), 30))
    replicas = ray.get(deployment.supervisor.replicas.remote("a"))
    # Kill the process but allow Ray to restart it (what a crash looks like).
    ray.kill(replicas[0][1], no_restart=False)
    result = run(asyncio.wait_for(group.call({"key": "k"}), 30))
    assert result["count"] == 6
    assert run(asyncio.wait_for(_reachable_replica(deployment), 30))["restored"] is True


async def _count(group, n: int) -> None:
    for _ in range(n):
        await group.call({"key": "k"})


async def _reachable_replica(deployment: Deployment) -> dict:
    """The first replica's status once it answered the supervisor: a restarted actor whose
    info call timed out (a loaded machine) is reported with what it said before the crash."""
    while not (replica := (await deployment.status())["replicas"][0])["reachable"]:
        await asyncio.sleep(0.2)
    return replica


def test_backpressure_raises_instead_of_queueing(deploy):
    spec = DeploymentSpec.model_validate(
        {
            "name": "slow",
            "agents": [
                {
                    "name": "a",
                    "import": "tests.agent_runtime.agents:Slow",
                    "resources": {"num_cpus": 0.1},
                    "max_in_flight": 2,
                }
            ],
        }
    )
    group = deploy(spec).group("a", block=False)

    async def flood():
        calls = [asyncio.ensure_future(group.call({"sleep": 0.5})) for _ in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run(flood())
    assert sum(isinstance(o, Backpressure) for o in outcomes) == 1
    assert sum(isinstance(o, dict) for o in outcomes) == 2


def test_cordoned_node_is_drained_under_traffic_and_refilled_after_recovery(deploy):
    deployment = deploy(_spec("drain", replicas=4, routing_key="key", checkpoint_every=10))
    monitor = ray.get_actor("mcp-health-monitor")
    status, counts = run(_cordon_under_traffic(deployment, monitor))
    victim = status["victim"]
    assert victim not in {r["node_id"] for r in status["replicas"]}, status
    assert status["nodes"][victim]["status"] == "cordoned"
    assert len(counts) == 600  # every message answered: none lost in the move
    ray.get(monitor.uncordon.remote(victim))
    report = ray.get(monitor.report.remote(fresh=True))
    assert report[victim]["status"] == "unhealthy"  # recovering: needs recover_after samples
    deadline = time.monotonic() + 15
    while ray.get(monitor.report.remote())[victim]["status"] != "healthy":
        assert time.monotonic() < deadline
        time.sleep(0.5)


async def _cordon_under_traffic(deployment: Deployment, monitor) -> tuple[dict, list]:
    status = await deployment.status()
    victim = next(r["node_id"] for r in status["replicas"] if r["node_id"])
    group = deployment.group("a")

    async def send(i: int):
        await asyncio.sleep(0.01 * (i % 300))  # 3 s of traffic, spanning the move
        return await group.call({"key": f"k{i % 20}"})

    traffic = asyncio.ensure_future(asyncio.gather(*(send(i) for i in range(600))))
    await monitor.cordon.remote(victim, "test maintenance")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = await deployment.status()
        moved = victim not in {r["node_id"] for r in status["replicas"]}
        if moved and all(r["reachable"] for r in status["replicas"]):
            break
        await asyncio.sleep(0.25)
    return {**status, "victim": victim}, await asyncio.wait_for(traffic, 60)


def test_supervisor_crash_recreates_replicas_from_checkpoints(deploy):
    deployment = deploy(_spec("phoenix", replicas=2, routing_key="key", checkpoint_every=1))
    group = deployment.group("a")
    run(asyncio.wait_for(_count(group, 3), 30))
    # Ray restarts the supervisor; its replicas died with it (they are owned by it).
    ray.kill(deployment.supervisor, no_restart=False)
    result = run(asyncio.wait_for(group.call({"key": "k"}), 60))
    assert result["count"] == 4


def test_a_failing_agent_fails_the_deployment_and_frees_its_name(ray_cluster):
    spec = _spec("broken", replicas=1, **{"import": "tests.agent_runtime.agents:Missing"})
    # Refused before any replica is created (the import is checked in a task first).
    with pytest.raises(DeploymentRefused, match="has no attribute 'Missing'"):
        run(Deployment.start(spec))
    deadline = time.monotonic() + 10  # ray.kill is asynchronous
    while "broken-supervisor" in {a["name"] for a in ray.util.list_named_actors(True)}:
        assert time.monotonic() < deadline, "supervisor name still taken"
        time.sleep(0.2)
