"""The sources' parts without a broker or Ray: commit points, client settings, agents.yaml."""

from __future__ import annotations

import pytest

from agent_runtime.sources import kafka
from agent_runtime.sources.offsets import Offsets
from agent_runtime.sources.spec import SourceSpec
from agent_runtime.spec import parse_spec
from specfile.errors import SpecError

BASE = """name: s
agents:
  - name: a
    import: m:C
sources:
  - agent: a
    bootstrap_servers: k1:9092, k2:9092
    topic: transactions
    group: risk
"""


def test_the_commit_point_waits_for_every_earlier_message():
    offsets = Offsets()
    offsets.assign([0, 1])
    progress = {o: offsets.started(0, o) for o in (5, 6, 8)}  # 7: a gap (compaction)
    assert offsets.to_commit() == {0: 5}
    progress[6].finished(6)
    progress[8].finished(8)
    assert offsets.to_commit() == {0: 5}  # 5 is not done: nothing past it
    progress[5].finished(5)
    assert offsets.to_commit() == {0: 9}
    offsets.committed({0: 9})
    assert offsets.to_commit() == {}
    offsets.uncommitted([0])  # the commit failed
    assert offsets.to_commit() == {0: 9}


def test_a_message_from_before_a_revocation_does_not_count_in_the_next_assignment():
    offsets = Offsets()
    offsets.assign([0])
    old = offsets.started(0, 10)
    offsets.revoke([0])
    offsets.assign([0])
    offsets.started(0, 10)  # redelivered to us after the rebalance
    old.finished(10)
    assert offsets.to_commit() == {0: 10}
    assert offsets.in_flight() == 1


def test_secrets_come_from_files_and_are_never_shown(tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    source = SourceSpec.model_validate(
        {
            "agent": "a",
            "bootstrap_servers": "k1:9093",
            "topic": "t",
            "group": "g",
            "sasl": {"username": "risk", "password_file": str(password)},
            "tls": {"ca_file": "/etc/ca.pem"},
        }
    )
    config = kafka.consumer_config(source, "c")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "s3cret"
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert "s3cret" not in repr(source) and "s3cret" not in str(kafka.redacted(config))
    with pytest.raises(ValueError, match="cannot read secret file") as error:
        kafka.read_secret(str(tmp_path / "missing"))
    assert "s3cret" not in str(error.value)


def test_agents_yaml_sources():
    spec = parse_spec(BASE, "agents.yaml")
    (source,) = spec.sources
    assert source.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert source.dead_letters == "transactions.dead" and source.consumers == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "  - agent: b\n    topic: t\n    group: g\n    bootstrap_servers: [k:1]\n",
            "agents.yaml:10: sources[1].agent: no agent 'b' in this deployment — name one of",
        ),
        ("    output_topic: transactions\n", "agents.yaml:6: sources[0]: topic 'transactions' is"),
        (
            "    consumers: 0\n",
            "agents.yaml:10: sources[0].consumers: 0 is out of range — use a number at least 1",
        ),
        ("    tls: {cert_file: c.pem}\n", "agents.yaml:10: sources[0].tls: cert_file and key_file"),
    ],
)
def test_agents_yaml_source_errors_name_the_line(change, expected):
    with pytest.raises(SpecError) as error:
        parse_spec(BASE + change, "agents.yaml")
    assert str(error.value).startswith(expected), str(error.value)
