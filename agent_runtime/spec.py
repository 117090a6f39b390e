"""agents.yaml: which agents to run, how many, with what resources and routing.

Errors name the file, the line of the offending value and the fix, as the cluster spec's do:
both are read by `specfile` (duplicate keys refused, every field's line kept).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent_runtime.sources.spec import SourceSpec
from specfile.errors import SpecError, SpecFault, SpecProblem
from specfile.messages import problems_from_validation_error
from specfile.yamlmap import parse_yaml

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,40}$"
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_UNITS.update({"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Resources(_Strict):
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    memory: int | None = Field(default=None, description="bytes; '512Mi', '2G' accepted")

    @field_validator("num_gpus")
    @classmethod
    def _gpu_share(cls, value: float) -> float:
        # Ray accepts a fraction of one GPU or whole GPUs, not 1.5.
        if value > 1 and value != int(value):
            raise SpecFault(
                f"num_gpus {value:g} is neither a fraction of one GPU nor whole GPUs",
                "use a share of one GPU (0.25) or a whole number (2)",
            )
        return value

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> Any:
        if value is None or isinstance(value, int):
            return value
        match = _MEMORY.match(str(value).strip())
        if not match:
            raise SpecFault(
                f"memory {value!r} is not a size", "use bytes or a size like 512Mi, 2Gi, 1G"
            )
        return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            options["memory"] = self.memory
        return options


class Autoscaling(_Strict):
    """Replicas follow the load: messages queued at the gateways plus those in the replicas'
    hands, divided by `target_in_flight`, within [min_replicas, max_replicas]."""

    min_replicas: int = Field(default=1, ge=1, le=1024)
    max_replicas: int = Field(ge=1, le=1024)
    target_in_flight: float = Field(
        default=32.0, gt=0, description="messages queued or in flight per replica, aimed at"
    )
    upscale_after_s: float = Field(default=1.0, ge=0, description="above target this long")
    downscale_after_s: float = Field(default=30.0, ge=0, description="below target this long")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise SpecFault(
                f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}",
                "make min_replicas at most max_replicas",
            )
        return self


class AgentSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    import_path: str = Field(alias="import", pattern=r"^[\w.]+:\w+$")
    replicas: int = Field(default=1, ge=1, le=1024)
    resources: Resources = Field(default_factory=Resources)
    routing_key: str | None = Field(
        default=None, description="payload field whose value picks the replica (sticky state)"
    )
    weight: float = Field(default=1.0, gt=0, description="share of unkeyed work per replica")
    max_in_flight: int = Field(default=64, ge=1, le=5000)
    max_concurrency: int = Field(default=256, ge=1)
    checkpoint_every: int = Field(default=100, ge=1, description="messages between checkpoints")
    dedup_window: int = Field(default=4096, ge=0, description="recent message ids remembered")
    autoscaling: Autoscaling | None = Field(default=None, description="omit: fixed replicas")
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _scalable(self) -> AgentSpec:
        scaling = self.autoscaling
        if scaling is None:
            return self
        if not scaling.min_replicas <= self.replicas <= scaling.max_replicas:
            raise SpecFault(
                f"replicas {self.replicas} (where it starts) is outside autoscaling's "
                f"{scaling.min_replicas}..{scaling.max_replicas}",
                f"set replicas between min_replicas and max_replicas, e.g. {scaling.min_replicas}",
            )
        return self


class HealthSpec(_Strict):
    interval_s: float = Field(default=1.0, gt=0)
    probe_timeout_s: float = Field(default=3.0, gt=0)
    recover_after: int = Field(default=3, ge=1, description="good samples before un-draining")
    cpu_percent: float = Field(default=100.0, gt=0)
    memory_percent: float = Field(default=95.0, gt=0)
    disk_percent: float = Field(default=95.0, gt=0)
    load_per_cpu: float = Field(default=8.0, gt=0)
    gpu_temperature_c: float = Field(default=85.0, gt=0)
    gpu_memory_percent: float = Field(default=100.0, gt=0)
    gpu_ecc_errors: int = Field(default=0, ge=0, description="uncorrected ECC errors tolerated")
    gpu_xid_errors: int = Field(default=0, ge=0, description="critical XID events tolerated")


class IngressLimits(_Strict):
    """Bounds on what one client can make a gateway hold; beyond them it answers 4xx/429."""

    max_body_bytes: int = Field(default=1 << 20, ge=1, description="HTTP request body")
    max_frame_bytes: int = Field(default=1 << 20, ge=1, description="WebSocket message")
    max_messages_per_request: int = Field(default=1024, ge=1, description="HTTP batch length")
    max_connections: int = Field(default=10_000, ge=1, description="per gateway process")
    max_header_bytes: int = Field(
        default=8190, ge=256, description="request line and headers together"
    )
    idle_timeout_s: float = Field(default=60.0, gt=0, description="idle connection closed")
    max_pending_per_replica: int = Field(
        default=4096, ge=1, description="messages queued or in flight per replica, per gateway"
    )
    max_in_flight_per_connection: int = Field(
        default=1024, ge=1, description="WebSocket messages unanswered before reading pauses"
    )
    send_timeout_s: float = Field(
        default=30.0, gt=0, description="a client that reads nothing this long is dropped"
    )


class IngressTls(_Strict):
    cert_file: str = Field(description="PEM certificate chain, path on the nodes")
    key_file: str = Field(description="PEM private key, path on the nodes")


class IngressSpec(_Strict):
    """Gateways on the nodes that take HTTP/WebSocket from outside the cluster."""

    port: int = Field(default=8300, ge=0, le=65535, description="0: any free port (tests)")
    host: str | None = Field(default=None, description="default: the node's cluster address")
    nodes: list[str] = Field(
        default_factory=list, description="hostnames; default: the nodes hosting agents"
    )
    processes_per_node: int = Field(default=1, ge=1, le=64)
    token_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 hex of the clients' bearer token (mcpctl fills it in)",
    )
    tls: IngressTls | None = None
    max_batch_size: int = Field(default=256, ge=1, description="messages per actor call")
    calls_per_replica: int = Field(
        default=4, ge=1, le=256, description="actor calls in flight per replica, per gateway"
    )
    limits: IngressLimits = Field(default_factory=IngressLimits)


class DeploymentSpec(_Strict):
    SPEC_REFERENCE: ClassVar[str] = "agent_runtime/README.md"

    name: str = Field(pattern=NAME_PATTERN)
    agents: list[AgentSpec] = Field(min_length=1)
    health: HealthSpec = Field(default_factory=HealthSpec)
    ingress: IngressSpec | None = Field(default=None, description="omit: no gateways")
    sources: list[SourceSpec] = Field(
        default_factory=list, description="Kafka topics feeding agents"
    )

    @field_validator("agents")
    @classmethod
    def _unique_names(cls, agents: list[AgentSpec]) -> list[AgentSpec]:
        names = [agent.name for agent in agents]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise SpecFault(
                f"agent names must be unique; repeated: {', '.join(duplicates)}",
                "give each agent its own name",
            )
        return agents

    @model_validator(mode="after")
    def _sources_feed_agents(self) -> DeploymentSpec:
        known = [agent.name for agent in self.agents]
        for i, source in enumerate(self.sources):
            if source.agent not in known:
                raise SpecFault(
                    f"no agent {source.agent!r} in this deployment",
                    f"name one of its agents: {', '.join(known)}",
                    path=("sources", i, "agent"),
                )
        return self

    def agent(self, name: str) -> AgentSpec:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)


def parse_spec(text: str, source: str = "<string>") -> DeploymentSpec:
    document = parse_yaml(text, source)
    if not isinstance(document.data, dict):
        problem = SpecProblem(
            "expected a mapping with 'name:' and 'agents:'",
            "start with 'name: <deployment>' and an 'agents:' list (see the examples)",
            line=1,
        )
        raise SpecError(source, [problem])
    try:
        return DeploymentSpec.model_validate(document.data)
    except ValidationError as error:
        problems = problems_from_validation_error(error, document, DeploymentSpec)
        raise SpecError(source, problems) from None


def load_spec(path: str | Path) -> DeploymentSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        problem = SpecProblem(f"cannot read: {error.strerror}", "check the path")
        raise SpecError(str(path), [problem]) from None
    return parse_spec(text, str(path))
