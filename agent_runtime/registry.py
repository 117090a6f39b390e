"""Which deployments are meant to be running: one entry per deployment in the GCS's internal
KV, beside the checkpoints.

The deployment's driver writes its entry once every replica is up and deletes it when it is
stopped; a deployment whose entry is here but whose last job ended otherwise (with the head,
or by a crash) is one the keeper brings back. The KV outlives the head's processes where the
GCS keeps its state on disk (the ray_cluster role's default: GCS fault tolerance, RocksDB).
"""

from __future__ import annotations

from ray.experimental import internal_kv

from agent_runtime.constants import NAMESPACE

_PREFIX = "deployment/"


def _key(deployment: str) -> bytes:
    return f"{_PREFIX}{deployment}".encode()


def record(deployment: str) -> None:
    internal_kv._internal_kv_put(_key(deployment), b"running", overwrite=True, namespace=NAMESPACE)


def forget(deployment: str) -> None:
    internal_kv._internal_kv_del(_key(deployment), namespace=NAMESPACE)


def recorded() -> set[str]:
    keys = internal_kv._internal_kv_list(_PREFIX.encode(), namespace=NAMESPACE)
    return {key.decode()[len(_PREFIX) :] for key in keys}
