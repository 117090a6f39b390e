"""A sandbox of its own, deployed on an older Ray, with the operations pipeline behind the
ingress, under a steady stream of messages through it: `mcpctl upgrade` to the spec's Ray (a
whole-cluster restart), then four faults in turn: kill -9 of the head's GCS, of the head's
raylet, a restart of the head's container, kill -9 of a worker's raylet. After each the
cluster and the deployment are back by themselves (the keeper resubmits it; its replicas
resume from their checkpoints), and no message that was acknowledged is missing from the
agents' state.

The drill itself is bench/recovery.py's, which prints the times; this asserts on its counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import recovery
from mcpctl.spec import DEFAULT_RAY_VERSION

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[tuple[recovery.Sandbox, str]]:
    with pytest.MonkeyPatch.context() as patch:
        # Recorded here, so the sandbox's settings (which the drill sets) are undone after.
        for name, value in recovery.SANDBOX_ENV.items():
            patch.setenv(name, value)
        for name in ("MCP_SPEC", "MCP_RAY_ADDRESS", "MCP_RAY_TOKEN", "MCP_RAY_TOKEN_FILE"):
            patch.delenv(name, raising=False)
        with recovery.sandbox_cluster(keep=False) as sandbox:
            token = recovery.deploy_example(tmp_path_factory.mktemp("drill"))
            yield sandbox, token


def test_an_upgrade_and_four_faults_lose_no_deployment_and_no_acknowledged_message(
    deployed,
) -> None:
    sandbox, token = deployed
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
