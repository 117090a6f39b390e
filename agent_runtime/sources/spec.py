"""The `sources:` section of agents.yaml: Kafka topics feeding agents.

Its own module so that spec.py only gains one field; which agent a source names is checked
there, where the agents are known.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from specfile.errors import SpecFault

# Kafka's own rule for topic names (legal characters, at most 249).
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class KafkaSasl(_Strict):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    username: str = Field(min_length=1)
    password_file: str = Field(
        min_length=1, description="path on the nodes; read by the consumers, never logged"
    )


class KafkaTls(_Strict):
    ca_file: str | None = Field(default=None, description="PEM CA bundle (default: the system's)")
    cert_file: str | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: str | None = Field(default=None, description="client key (mutual TLS)")
    key_password_file: str | None = Field(default=None, description="if the key is encrypted")

    @model_validator(mode="after")
    def _pair(self) -> KafkaTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise SpecFault(
                "cert_file and key_file go together (mutual TLS)",
                "give both, or neither for server-only TLS",
            )
        return self


class SourceSpec(_Strict):
    """One topic feeding one agent through `consumers` consumers of one consumer group."""

    agent: str = Field(description="the agent its messages go to")
    bootstrap_servers: list[str] = Field(min_length=1, description="host:port of some brokers")
    topic: str = Field(pattern=TOPIC_PATTERN)
    group: str = Field(min_length=1, description="consumer group: the consumers share partitions")
    consumers: int = Field(default=1, ge=1, le=256)
    output_topic: str | None = Field(
        default=None, pattern=TOPIC_PATTERN, description="results as {id, result}; omit: none"
    )
    dead_letter_topic: str | None = Field(
        default=None,
        pattern=TOPIC_PATTERN,
        description="messages the agent cannot take, with the reason; default: <topic>.dead",
    )
    sasl: KafkaSasl | None = None
    tls: KafkaTls | None = Field(default=None, description="omit: plaintext")
    max_batch_size: int = Field(default=256, ge=1, description="messages per actor call")
    calls_per_replica: int = Field(
        default=4, ge=1, le=256, description="actor calls in flight per replica, per consumer"
    )
    max_pending_per_replica: int = Field(
        default=1024, ge=1, description="per replica, per consumer: beyond it partitions pause"
    )
    session_timeout_s: float = Field(
        default=10.0, gt=0, description="a consumer silent this long loses its partitions"
    )
    commit_every_s: float = Field(default=0.5, gt=0, description="how often offsets are committed")

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # Kafka's own form, "host1:9092,host2:9092", as well as a list.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_topic or f"{self.topic}.dead"

    @model_validator(mode="after")
    def _no_loop(self) -> SourceSpec:
        if self.topic in (self.output_topic, self.dead_letter_topic):
            # The consumers would read their own output and feed it back for ever.
            raise SpecFault(
                f"topic {self.topic!r} is also this source's output or dead-letter topic",
                "write results and dead letters to other topics",
            )
        return self
