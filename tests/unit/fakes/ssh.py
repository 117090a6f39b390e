"""A stand-in for OpenSSH's `ssh`, for the options mcpctl passes, with ssh's own messages.

The "remote host" is this machine: `sudo -n cat PATH` reads $FAKE_SSH_ROOT/PATH, and
`-N -L bind:port:host:hostport` forwards as ssh does (each local connection to host:hostport,
closed if nothing listens there). Host keys are checked strictly against UserKnownHostsFile,
the identity file must exist, and $FAKE_SSH_UNREACHABLE makes the host unreachable. Each call
is appended to $FAKE_SSH_LOG as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

VALUE_OPTIONS = {"-F", "-o", "-i", "-p", "-J", "-L"}


def parse(argv: list[str]) -> tuple[dict[str, list[str]], list[str], str, list[str]]:
    options: dict[str, list[str]] = {}
    flags = []
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        if argv[index] in VALUE_OPTIONS:
            options.setdefault(argv[index], []).append(argv[index + 1])
            index += 2
        else:
            flags.append(argv[index])
            index += 1
    return options, flags, argv[index], argv[index + 1 :]


def fail(message: str, code: int = 255) -> None:
    sys.stderr.write(message + "\r\n")
    sys.exit(code)


def check_connection(settings: dict[str, str], options: dict, host: str, port: str) -> None:
    if os.environ.get("FAKE_SSH_UNREACHABLE"):
        fail(f"ssh: connect to host {host} port {port}: No route to host")
    known_hosts = Path(os.path.expanduser(settings.get("UserKnownHostsFile", "~/.ssh/known_hosts")))
    known = (
        {line.split()[0] for line in known_hosts.read_text().splitlines() if line.strip()}
        if known_hosts.is_file()
        else set()
    )
    if host not in known:
        if settings.get("StrictHostKeyChecking") != "yes":
            fail("the fake refuses to trust on first use", 99)
        fail(
            f"No ED25519 host key is known for {host} and you have requested strict checking."
            "\r\nHost key verification failed."
        )
    key = options.get("-i", ["~/.ssh/id_ed25519"])[0]
    if not Path(os.path.expanduser(key)).is_file():
        sys.stderr.write(
            f"Warning: Identity file {key} not accessible: No such file or directory.\r\n"
        )
        fail(f"{os.environ.get('USER', 'user')}@{host}: Permission denied (publickey).")


def run_remote(command: list[str]) -> None:
    if command[:3] != ["sudo", "-n", "cat"] or len(command) != 4:
        fail(f"fake ssh: cannot run {command!r}", 127)
    if os.environ.get("FAKE_SSH_SUDO_PASSWORD"):
        fail("sudo: a password is required", 1)
    path = Path(os.environ["FAKE_SSH_ROOT"] + command[3])
    if not path.is_file():
        fail(f"cat: {command[3]}: No such file or directory", 1)
    sys.stdout.write(path.read_text())


def forward(spec: str) -> None:
    bind, port, host, host_port = spec.split(":")
    listener = socket.socket()
    try:
        listener.bind((bind, int(port)))
    except OSError:
        fail(
            f"bind [{bind}]:{port}: Address already in use\r\n"
            f"channel_setup_fwd_listener_tcpip: cannot listen to port: {port}\r\n"
            "Could not request local forwarding."
        )
    listener.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, host, int(host_port)), daemon=True).start()


def relay(client: socket.socket, host: str, port: int) -> None:
    try:
        upstream = socket.create_connection((host, port))
    except OSError:
        sys.stderr.write("channel 2: open failed: connect failed: Connection refused\r\n")
        client.close()
        return

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the other side went: so does this one
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    pump(client, upstream)


def main() -> None:
    argv = sys.argv[1:]
    with open(os.environ["FAKE_SSH_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    options, flags, destination, command = parse(argv)
    settings = dict(value.split("=", 1) for value in options.get("-o", []))
    if settings.get("BatchMode") != "yes":
        fail("the fake refuses to prompt: BatchMode=yes expected", 99)
    host = destination.split("@")[-1]
    check_connection(settings, options, host, options.get("-p", ["22"])[0])
    if "-N" in flags:
        forward(options["-L"][0])
    else:
        run_remote(command)


if __name__ == "__main__":
    main()
