"""The commented starter spec that `mcpctl init` writes (and the sandbox writes for itself)."""

from __future__ import annotations

from typing import Literal

from mcpctl.spec import IngressSpec, NvidiaSpec, PythonSpec, RaySpec, SshSpec, parse_spec
from mcpctl.templating import render

HEAD_NAME = "head"
WORKER_PREFIX = "worker-"


def default_node_names(head_address: str, worker_addresses: list[str]) -> list[tuple[str, str]]:
    """(name, address) pairs as `mcpctl init` names them: `head`, then `worker-1..N`."""
    workers = [
        (f"{WORKER_PREFIX}{number}", address)
        for number, address in enumerate(worker_addresses, start=1)
    ]
    return [(HEAD_NAME, head_address), *workers]


def render_starter_spec(
    name: str,
    nodes: list[tuple[str, str]],
    *,
    user: str,
    key: str,
    gpu: bool | Literal["auto", "true", "false"] = "auto",
    known_hosts: str | None = None,
    apt_proxy: str | None = None,
    wheelhouse: str | None = None,
    allowed_networks: list[str] | None = None,
    ingress_allowed_networks: list[str] | None = None,
) -> str:
    """A commented cluster spec. `nodes` are (name, address); the first is the head.

    The text is checked before it is returned, so it always validates: bad input raises
    SpecError (a UsageError) naming the field, e.g. `nodes[3].address: ... is not an IP`.
    """
    text = render(
        "cluster.yaml.j2",
        name=name,
        nodes=[
            {"name": node_name, "address": address, "role": "head" if index == 0 else "worker"}
            for index, (node_name, address) in enumerate(nodes)
        ],
        user=user,
        key=key,
        gpu=_gpu_setting(gpu),
        known_hosts=known_hosts,
        apt_proxy=apt_proxy,
        wheelhouse=wheelhouse,
        allowed_networks=allowed_networks or [],
        ingress_allowed_networks=ingress_allowed_networks or [],
        ssh=SshSpec(),
        ray=RaySpec(),
        python=PythonSpec(),
        nvidia=NvidiaSpec(),
        ingress=IngressSpec(),
    )
    # Without a base directory relative paths stay as written; only validity matters here.
    parse_spec(text, source="starter spec", base_dir=None)
    return text


def _gpu_setting(gpu: bool | str) -> bool | str:
    if isinstance(gpu, str) and gpu in ("true", "false"):
        return gpu == "true"
    return gpu
