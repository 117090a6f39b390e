"""librdkafka settings for a source: the same for a real cluster and the tests' mock one
(only the bootstrap address differs).

Secrets are read from their files here, on the node, when a consumer starts: agents.yaml
and the job's environment (which Ray's Jobs API shows to anyone who can list jobs) hold
only paths. The dicts built here hold passwords, so nothing prints them; `redacted` is
what may be shown.
"""

from __future__ import annotations

from pathlib import Path

from agent_runtime.sources.spec import SourceSpec

_SECRET_KEYS = ("sasl.password", "ssl.key.password")


def read_secret(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        # The path, never the content.
        raise ValueError(f"cannot read secret file {path}: {error.strerror}") from None


def _common(source: SourceSpec) -> dict[str, str | int | float | bool]:
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": ",".join(source.bootstrap_servers)
    }
    if source.sasl is not None:
        config["security.protocol"] = "SASL_SSL" if source.tls else "SASL_PLAINTEXT"
        config["sasl.mechanism"] = source.sasl.mechanism
        config["sasl.username"] = source.sasl.username
        config["sasl.password"] = read_secret(source.sasl.password_file)
    elif source.tls is not None:
        config["security.protocol"] = "SSL"
    tls = source.tls
    if tls is not None:
        if tls.ca_file:
            config["ssl.ca.location"] = tls.ca_file
        if tls.cert_file and tls.key_file:
            config["ssl.certificate.location"] = tls.cert_file
            config["ssl.key.location"] = tls.key_file
        if tls.key_password_file:
            config["ssl.key.password"] = read_secret(tls.key_password_file)
    return config


def consumer_config(source: SourceSpec, client_id: str) -> dict[str, str | int | float | bool]:
    return {
        **_common(source),
        "group.id": source.group,
        "client.id": client_id,
        # Offsets are committed by the consumer itself, only up to what was processed.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(source.session_timeout_s * 1000),
        "heartbeat.interval.ms": max(100, int(source.session_timeout_s * 1000 / 3)),
        # Partitions move one at a time on a rebalance instead of all stopping at once.
        "partition.assignment.strategy": "cooperative-sticky",
    }


def producer_config(source: SourceSpec, client_id: str) -> dict[str, str | int | float | bool]:
    return {
        **_common(source),
        "client.id": client_id,
        # Broker-side dedup of the producer's own retries: a result is written once per try.
        "enable.idempotence": True,
        "linger.ms": 5,
    }


def redacted(config: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
    return {key: "***" if key in _SECRET_KEYS else value for key, value in config.items()}
