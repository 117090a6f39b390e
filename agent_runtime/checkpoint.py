"""Agent state checkpoints in Ray's GCS-backed internal KV.

The GCS outlives any worker node, so a replica restarted elsewhere (by Ray after a node loss,
or by the supervisor when it drains a node) finds its state there. The KV is namespaced per
deployment so `stop` can delete a deployment's checkpoints in one sweep.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

from ray.experimental import internal_kv

from agent_runtime.constants import NAMESPACE


@dataclass
class Checkpoint:
    agent_state: Any
    # Recent message ids with their results: a message redelivered after a restart is
    # answered from here instead of being applied to the state twice.
    recent: dict[str, Any] = field(default_factory=dict)
    processed: int = 0
    # A keyed agent that autoscales: the replica weights of the ring its keys were last
    # handed over by (None: never), and the routing key of each recent id, so both move
    # with the keys (a restarted replica answers Moved for keys it gave away).
    ring: dict[str, float] | None = None
    recent_keys: dict[str, str] = field(default_factory=dict)


def _key(deployment: str, agent: str, replica: int) -> bytes:
    return f"ckpt/{deployment}/{agent}/{replica}".encode()


def save(deployment: str, agent: str, replica: int, checkpoint: Checkpoint) -> None:
    internal_kv._internal_kv_put(
        _key(deployment, agent, replica),
        pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL),
        overwrite=True,
        namespace=NAMESPACE,
    )


def load(deployment: str, agent: str, replica: int) -> Checkpoint | None:
    blob = internal_kv._internal_kv_get(_key(deployment, agent, replica), namespace=NAMESPACE)
    return pickle.loads(blob) if blob else None


def delete_deployment(deployment: str) -> int:
    prefix = f"ckpt/{deployment}/".encode()
    keys = internal_kv._internal_kv_list(prefix, namespace=NAMESPACE)
    for key in keys:
        internal_kv._internal_kv_del(key, namespace=NAMESPACE)
    return len(keys)
