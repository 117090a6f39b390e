"""Errors that end a command with a clear message and a chosen exit code."""


class McpError(Exception):
    """A failure the operator can act on; `main` prints it without a traceback."""

    exit_code = 1


class UsageError(McpError):
    """Bad input (spec, flags, files): nothing was changed."""

    exit_code = 2
