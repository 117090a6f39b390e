"""The runtime's names, timeouts and back-offs, each defined once.

Every actor and KV entry of the runtime lives in one Ray namespace, so a driver that
connects with it finds supervisors, the health monitor and checkpoints by name.
"""

from __future__ import annotations

import os

NAMESPACE = "mcp-agents"
MONITOR_NAME = "mcp-health-monitor"
KEEPER_NAME = "mcp-keeper"
SUPERVISOR_SUFFIX = "-supervisor"

# A deployment's jobs carry its name under this metadata key (`mcpctl agents list` finds them
# by it; the keeper resubmits the last one).
DEPLOYMENT_METADATA_KEY = "mcp-agents"
# A Ray job in these states is still going (its driver may run or be about to).
ACTIVE_JOB_STATUSES = ("PENDING", "RUNNING")
# How `mcpctl agents deploy` hands the agents.yaml to the job, and the log lines it reads back.
SPEC_ENV = "MCP_AGENTS_SPEC"
# The SHA-256 of the clients' ingress token: the job sees only the digest, never the token.
INGRESS_TOKEN_DIGEST_ENV = "MCP_INGRESS_TOKEN_SHA256"
READY_MARKER = "MCP-READY "
REPORT_MARKER = "MCP-REPORT "
# One line per reason the cluster refused a deployment before starting any replica.
REFUSED_MARKER = "MCP-REFUSED "
# Followed by JSON: the deployment, its agents and its gateways' addresses (jobs.ingress_line).
INGRESS_MARKER = "MCP-INGRESS "

# The keeper's admin API (status, cordon, uncordon) on the head's loopback, which mcpctl's SSH
# tunnel forwards beside the dashboard; next to the dashboard's 8265. MCP_ADMIN_PORT moves it
# (on the head's Ray unit, and for mcpctl) where that port is taken.
ADMIN_PORT = 8266
ADMIN_PORT_ENV = "MCP_ADMIN_PORT"
# How often the keeper looks for deployments whose job ended with the head, and the back-off
# between two resubmissions of one deployment (a deployment that fails by itself after it
# was ready is resubmitted too, but not in a tight loop).
KEEPER_EVERY_S = 2.0
RESUBMIT_FIRST_DELAY_S = 5.0
RESUBMIT_MAX_DELAY_S = 300.0

# A replica's info call; beyond this the supervisor reports it unreachable.
INFO_TIMEOUT_S = 2.0
# Includes each agent's setup(), e.g. training a model.
READY_TIMEOUT_S = 300.0
# Long enough for Ray to restart a replica on another node, short enough to surface a
# deployment that cannot be placed at all.
REDELIVERY_DEADLINE_S = 60.0
# Back-off between redeliveries of a call whose replica died: first wait, and the cap.
REDELIVERY_FIRST_DELAY_S = 0.05
REDELIVERY_MAX_DELAY_S = 1.0
# How often the supervisor weighs autoscaled agents' load: scale-up within about a second.
SCALE_EVERY_S = 0.5
# A replica added under load that is not up by then is given up (and tried again later).
SCALE_READY_TIMEOUT_S = 60.0
# How long a replica being removed may take to finish what it holds.
DRAIN_TIMEOUT_S = 30.0
# How often a driver's AgentGroup asks for the current replicas unprompted (scaling changes
# them; a failure makes it ask at once).
GROUP_REFRESH_S = 2.0
# How often the deployment's driver logs its replicas.
STATUS_EVERY_S = 30.0


def supervisor_name(deployment: str) -> str:
    return f"{deployment}{SUPERVISOR_SUFFIX}"


def replica_id(agent: str, index: int) -> str:
    """A replica's name on the hash ring: stable across re-creation, so a key keeps mapping
    to the same replica (and its state)."""
    return f"{agent}.{index}"


def admin_port() -> int:
    """The keeper's admin port on the head ($MCP_ADMIN_PORT, else ADMIN_PORT)."""
    return int(os.environ.get(ADMIN_PORT_ENV, ADMIN_PORT))


def deployment_submission_id(deployment: str, now_s: float) -> str:
    """The id of a deployment's job (submitted by `mcpctl agents deploy`, or by the keeper)."""
    return f"mcp-agents-{deployment}-{int(now_s)}"
