"""roles/gcs_redis's files rendered with its defaults, and the facts it shares with ray_cluster
and the spec."""

from __future__ import annotations

from typing import Any

import jinja2

from mcpctl.spec import DEFAULT_REDIS_PORT, RaySpec
from tests.unit.roles import REPO, defaults, load

ROLE = REPO / "roles/gcs_redis"


def render(template: str, **variables: Any) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["bool"] = lambda value: str(value).lower() in ("true", "yes", "1")
    given = {**defaults("gcs_redis"), **load("roles/gcs_redis/vars/main.yml")}
    given |= {"ansible_managed": "Ansible managed", "gcs_redis_port": 6390}
    given |= {"gcs_redis_bind_addresses": ["10.0.0.2", "127.0.0.1"], **variables}
    return env.from_string((ROLE / "templates" / template).read_text()).render(given)


def test_the_head_reads_the_password_where_gcs_redis_keeps_it():
    assert (
        defaults("ray_cluster")["ray_cluster_redis_password_file"]
        == defaults("gcs_redis")["gcs_redis_password_file"]
    )


def test_the_roles_default_port_is_the_specs():
    assert RaySpec().redis_port == DEFAULT_REDIS_PORT
    for role, variable in (
        ("gcs_redis", "gcs_redis_port"),
        ("ray_cluster", "ray_cluster_redis_port"),
    ):
        assert f"default({DEFAULT_REDIS_PORT})" in defaults(role)[variable]


def test_redis_asks_for_the_password_and_keeps_an_append_only_file():
    lines = render("redis.conf.j2", gcs_redis_requirepass="s3cret").splitlines()

    assert "bind 10.0.0.2 127.0.0.1" in lines
    assert "port 6390" in lines
    assert "requirepass s3cret" in lines
    assert "protected-mode yes" in lines
    assert "appendonly yes" in lines
    assert "maxmemory-policy noeviction" in lines


def test_the_drop_in_starts_redis_with_its_configuration_without_capabilities():
    lines = render("redis-server.dropin.conf.j2").splitlines()

    # An empty ExecStart= first: a drop-in adds to the package's ExecStart otherwise.
    assert lines.index("ExecStart=") + 1 == lines.index(
        "ExecStart=/usr/bin/redis-server /etc/redis/mcp-gcs.conf"
    )
    assert "CapabilityBoundingSet=" in lines
    assert lines.index("ReadWritePaths=") + 1 == lines.index("ReadWritePaths=/var/lib/redis")


def test_without_hardening_only_the_configuration_changes():
    lines = render("redis-server.dropin.conf.j2", gcs_redis_hardening=False).splitlines()

    assert [line for line in lines if line and not line.startswith("#")] == [
        "[Service]",
        "ExecStart=",
        "ExecStart=/usr/bin/redis-server /etc/redis/mcp-gcs.conf",
    ]
