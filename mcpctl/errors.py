"""Errors that end a command with a clear message and a chosen exit code."""


class McpError(Exception):
    """A failure the operator can act on; `main` prints it without a traceback."""

    exit_code = 1


class UsageError(McpError):
    """Bad input (spec, flags, files): nothing was changed."""

    exit_code = 2


# Why a command could not talk to the cluster's Jobs API; each message starts with which.
class HeadUnreachable(McpError):
    """SSH to the head failed (network, host key, authentication)."""


class TunnelFailed(McpError):
    """SSH works, but the forward to the dashboard's port does not."""


class NoToken(McpError):
    """No Ray token: none on the head, or none given for a cluster that wants one."""


class WrongToken(McpError):
    """The Jobs API refused the token (HTTP 401/403)."""
