"""The sandbox gateway: what an air-gapped site serves its nodes, on the network's gateway address.

- a Python wheelhouse over HTTP (pip `--find-links`), and
- a TCP relay to the apt proxy (apt-cacher-ng listens on loopback only).

The sockets use IP_FREEBIND so they can bind the gateway address before Podman brings the bridge
up (it does so at the first container), which lets Molecule use the gateway before any node runs.

Run as `python -m mcpctl.sandbox.gateway`; `services.py` starts and stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import socket
import socketserver
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

RELAY_BUFFER = 64 * 1024
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux's value; Python 3.11 lacks the name


def _freebind(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


class WheelhouseServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        _freebind(self.socket)
        super().server_bind()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


class RelayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        super().__init__(listen, RelayHandler)

    def server_bind(self) -> None:
        _freebind(self.socket)
        super().server_bind()


class RelayHandler(socketserver.BaseRequestHandler):
    server: RelayServer

    def handle(self) -> None:
        with socket.create_connection(self.server.upstream, timeout=30) as upstream:
            upstream.settimeout(None)
            pump = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            pump.start()
            _pump(self.request, upstream)
            pump.join()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(RELAY_BUFFER):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--wheelhouse", required=True)
    parser.add_argument("--wheelhouse-port", type=int, required=True)
    parser.add_argument("--apt-port", type=int, required=True)
    parser.add_argument("--apt-upstream-port", type=int, required=True)
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    handler = functools.partial(QuietHandler, directory=args.wheelhouse)
    wheelhouse = WheelhouseServer((args.bind, args.wheelhouse_port), handler)
    relay = RelayServer((args.bind, args.apt_port), ("127.0.0.1", args.apt_upstream_port))
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    print(
        f"gateway: wheelhouse http://{args.bind}:{args.wheelhouse_port}/, "
        f"apt proxy http://{args.bind}:{args.apt_port}",
        flush=True,
    )
    wheelhouse.serve_forever()


if __name__ == "__main__":
    main()
