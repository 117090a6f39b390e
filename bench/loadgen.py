"""Multi-process load generator for the ingress gateway's protocol (and its echo stand-ins).

Each client process runs uvloop with hand-written asyncio Protocols (WebSocket frames built
from templates, HTTP answers parsed by httptools), so that the client costs far less per
message than any server it drives; it binds its own loopback source address (127.0.1.N) so
that ephemeral ports (about 28k per source/destination pair) do not run out, and holds at
most ``connections`` sockets (the per-process open-file hard limit is 20,000 here).

Every message carries an id unique on its connection; every answer is checked against the
ids outstanding there: an answer to an id already answered counts as duplicated, one to an
id never sent as unexpected, and ids still outstanding after the drain as lost.

Modes (``LoadSpec.mode``):
- ``ws``: WebSocket, ``window`` messages in flight per connection (closed loop).
- ``http``: HTTP/1.1 keep-alive POSTs, ``window`` requests in flight per connection
  (1 = no pipelining).
- ``open_loop``: WebSocket at a fixed total ``rate`` whatever the answers do (sending never
  waits for answers, so a slow server cannot slow the offered load); latency is from the
  write to the answer. The sender wakes every millisecond (the loop's timer resolution) and
  sends what is due, so messages leave in bursts of rate/1000 per process.
- ``hold``: open the connections, report how many are held, wait for the go, then send one
  message on every ``sample_every``-th connection and check the answers.

``run_load(spec, processes)`` starts the processes, lines them up (all connected before any
measurement starts), and adds up their results.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Callable
from queue import Empty
from typing import Any

import msgspec

from bench.echo_servers import parse_ws_frames, raise_open_file_limit

# A fixed Sec-WebSocket-Key: the client checks the 101 status, not the accept hash.
_WS_UPGRADE = (
    "GET {path} HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
    "authorization: Bearer {token}\r\n\r\n"
)
# The id goes in the body (the echo servers read it there) and as the Idempotency-Key (the
# gateway's HTTP id; its body is the payload, the whole message here).
_HTTP_POST = (
    "POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
    "content-type: application/json\r\nidempotency-key: %d\r\ncontent-length: %d\r\n\r\n"
)
# Client frames must be masked (RFC 6455 5.3); an all-zero key leaves the payload as it is,
# so the client spends nothing on masking. Servers cannot tell and must unmask anyway.
_ZERO_MASK = b"\0\0\0\0"
_MESSAGE = b'{"id":%d,"payload":{"n":%d,"text":"hello"}}'


class Answer(msgspec.Struct):
    id: int | str  # the gateway answers with the id as a string
    result: Any = None


_decode_answer = msgspec.json.Decoder(Answer | list[Answer]).decode


@dataclasses.dataclass
class LoadSpec:
    mode: str  # ws | http | open_loop | hold
    port: int
    host: str = "127.0.0.1"
    connections: int = 64  # in all, split over the processes
    window: int = 16
    duration_s: float = 5.0
    warmup_s: float = 1.0
    rate: float = 2000.0  # open_loop: messages/s in all
    sample_every: int = 100  # hold
    connect_concurrency: int = 200  # per process
    connect_timeout_s: float = 60.0
    drain_s: float = 3.0
    deployment: str = "bench"
    agent: str = "echo"
    token: str = "bench-token"
    source: str = "127.0.1.1"  # set per process by run_load


@dataclasses.dataclass
class LoadResult:
    connections: int = 0  # established (hold: still open at sample time)
    failed_connections: int = 0
    answered: int = 0  # within the measured window
    all_answered: int = 0  # warm-up and drain included: per server CPU-second figures
    seconds: float = 0.0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    errors: int = 0  # non-200 answers, malformed frames
    sampled: int = 0
    sample_answered: int = 0
    client_cpu_s: float = 0.0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)

    @property
    def msgs_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if len(self.latencies_ms) < 2:
            return None
        return statistics.quantiles(self.latencies_ms, n=1000)[int(q * 10) - 1]

    def add(self, other: LoadResult) -> None:
        for field in dataclasses.fields(self):
            if field.name == "seconds":
                self.seconds = max(self.seconds, other.seconds)
            else:
                setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class Tally:
    """What one process's connections have seen; measuring gates the throughput count."""

    def __init__(self) -> None:
        self.result = LoadResult()
        self.measuring = False
        self.record_latency = False


class LoadConnection(asyncio.Protocol):
    """Sends numbered messages and matches the answers; subclasses do the framing."""

    def __init__(self, spec: LoadSpec, tally: Tally, refill: bool) -> None:
        self.spec = spec
        self.tally = tally
        self.refill = refill  # closed loop: every answer lets one more message go
        self.sending = True
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = False
        # Ids unique across connections and processes: the gateway takes them as idempotency
        # keys, and a repeated one would be answered from a replica's memory, not handled.
        self.first_id = random.getrandbits(36) << 24
        self.next_id = self.first_id
        self.outstanding: dict[int, float] = {}
        self.buffer = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.on_connected()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before it opened"))

    def on_connected(self) -> None:
        self.opened.set_result(None)

    def send(self, count: int) -> None:
        if self.closed or count <= 0:
            return
        now = time.perf_counter()
        first = self.next_id
        self.next_id += count
        for message_id in range(first, self.next_id):
            self.outstanding[message_id] = now
        self.transport.write(
            b"".join(self.frame(_MESSAGE % (i, i), i) for i in range(first, self.next_id))
        )

    def frame(self, body: bytes, message_id: int) -> bytes:
        raise NotImplementedError

    def answered(self, ids: list[int]) -> None:
        now = time.perf_counter()
        result = self.tally.result
        matched = 0
        for message_id in ids:
            sent_at = self.outstanding.pop(message_id, None)
            if sent_at is None:
                if self.first_id <= message_id < self.next_id:
                    result.duplicated += 1
                else:
                    result.unexpected += 1
                continue
            matched += 1
            result.all_answered += 1
            if self.tally.measuring:
                result.answered += 1
                if self.tally.record_latency:
                    result.latencies_ms.append((now - sent_at) * 1000)
        if self.refill and self.sending:
            self.send(matched)

    def answer_ids(self, body: bytes) -> list[int]:
        try:
            answer = _decode_answer(body)
        except msgspec.DecodeError:
            self.tally.result.errors += 1
            return []
        items = answer if isinstance(answer, list) else [answer]
        try:
            return [int(item.id) for item in items]
        except ValueError:
            self.tally.result.errors += 1
            return []


class WebSocketConnection(LoadConnection):
    def on_connected(self) -> None:
        path = f"/v1/{self.spec.deployment}/{self.spec.agent}/stream"
        upgrade = _WS_UPGRADE.format(path=path, host=self.spec.host, token=self.spec.token)
        self.transport.write(upgrade.encode())

    def frame(self, body: bytes, message_id: int) -> bytes:
        return bytes((0x81, 0x80 | len(body))) + _ZERO_MASK + body

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.opened.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:12])
            del self.buffer[: end + 4]
            if status != b"HTTP/1.1 101":
                self.opened.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                self.transport.close()
                return
            self.opened.set_result(None)
        ids = []
        for opcode, payload in parse_ws_frames(self.buffer):
            if opcode in (1, 2):
                ids.extend(self.answer_ids(payload))
        if ids:
            self.answered(ids)


class HTTPConnection(LoadConnection):
    def __init__(self, spec: LoadSpec, tally: Tally, refill: bool) -> None:
        import httptools

        super().__init__(spec, tally, refill)
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        path = f"/v1/{spec.deployment}/{spec.agent}"
        self.head = _HTTP_POST.format(path=path, host=spec.host, token=spec.token).encode()

    def frame(self, body: bytes, message_id: int) -> bytes:
        return self.head % (message_id, len(body)) + body

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        self.body = []
        if self.parser.get_status_code() != 200:
            self.tally.result.errors += 1
            return
        self.answered(self.answer_ids(body))


async def open_connections(
    spec: LoadSpec, tally: Tally, kind: type[LoadConnection], refill: bool
) -> list[LoadConnection]:
    """Open spec.connections from spec.source, a bounded number at a time."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(spec.connect_concurrency)

    async def one() -> LoadConnection | None:
        async with gate:
            try:
                _, connection = await loop.create_connection(
                    lambda: kind(spec, tally, refill),
                    spec.host,
                    spec.port,
                    local_addr=(spec.source, 0),
                )
                await asyncio.wait_for(connection.opened, 10)
                return connection
            except (OSError, TimeoutError):
                return None

    attempts = [asyncio.ensure_future(one()) for _ in range(spec.connections)]
    done, pending = await asyncio.wait(attempts, timeout=spec.connect_timeout_s)
    for attempt in pending:
        attempt.cancel()
    connections = [attempt.result() for attempt in done if attempt.result() is not None]
    tally.result.failed_connections = spec.connections - len(connections)
    return connections


async def drain(connections: list[LoadConnection], spec: LoadSpec) -> None:
    for connection in connections:
        connection.sending = False
    deadline = time.perf_counter() + spec.drain_s
    while time.perf_counter() < deadline and any(c.outstanding for c in connections):
        await asyncio.sleep(0.05)


async def closed_loop(connections: list[LoadConnection], tally: Tally, spec: LoadSpec) -> None:
    for connection in connections:
        connection.send(spec.window)
    await asyncio.sleep(spec.warmup_s)
    tally.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(spec.duration_s)
    tally.measuring = False
    tally.result.seconds = time.perf_counter() - started


async def open_loop(connections: list[LoadConnection], tally: Tally, spec: LoadSpec) -> None:
    """spec.rate messages/s (this process's share), round robin over its connections."""
    tally.measuring = tally.record_latency = True
    started = time.perf_counter()
    sent = 0
    total = int(spec.rate * spec.duration_s)
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * spec.rate) + 1)
        for index in range(sent, due):
            connection = connections[index % len(connections)]
            connection.send(1)
        sent = due
        await asyncio.sleep(0.001)
    tally.result.seconds = time.perf_counter() - started


async def sample_held(connections: list[LoadConnection], tally: Tally, spec: LoadSpec) -> None:
    """One message on every sample_every-th connection: held ones must still answer."""
    tally.measuring = True
    sampled = [c for c in connections[:: spec.sample_every] if not c.closed]
    started = time.perf_counter()
    for connection in sampled:
        connection.send(1)
    tally.result.sampled = len(sampled)
    await drain(sampled, spec)
    tally.result.sample_answered = tally.result.answered
    tally.result.seconds = time.perf_counter() - started


async def wait_for_go(go, parent: int, limit_s: float) -> None:
    deadline = time.perf_counter() + limit_s
    while not go.is_set():
        if os.getppid() != parent or time.perf_counter() > deadline:
            raise TimeoutError("no go from the bench")
        await asyncio.sleep(0.01)


async def client_main(spec: LoadSpec, ready, go) -> LoadResult:
    parent = os.getppid()
    tally = Tally()
    kind = HTTPConnection if spec.mode == "http" else WebSocketConnection
    refill = spec.mode in ("ws", "http")
    connections = await open_connections(spec, tally, kind, refill)
    ready.put(len(connections))
    await wait_for_go(go, parent, spec.connect_timeout_s + 60)
    cpu_before = time.process_time()
    if spec.mode == "hold":
        tally.result.connections = sum(not c.closed for c in connections)
        await sample_held(connections, tally, spec)
    else:
        tally.result.connections = len(connections)
        if connections:
            await (open_loop if spec.mode == "open_loop" else closed_loop)(connections, tally, spec)
        await drain(connections, spec)
    tally.result.client_cpu_s = time.process_time() - cpu_before
    tally.result.lost = sum(len(c.outstanding) for c in connections)
    for connection in connections:
        connection.transport.abort()
    return tally.result


def client_process(spec: LoadSpec, ready, go, results) -> None:
    import uvloop

    raise_open_file_limit()
    try:
        result = uvloop.run(client_main(spec, ready, go))
    except Exception as error:  # report, don't hang the bench waiting for us
        results.put(("error", f"{spec.source}: {error!r}"))
        return
    results.put(("ok", result))


def process_specs(spec: LoadSpec, processes: int) -> list[LoadSpec]:
    """Split connections and rate over processes, each from its own source address."""
    specs = []
    for index in range(processes):
        share = spec.connections // processes + (index < spec.connections % processes)
        specs.append(
            dataclasses.replace(
                spec,
                connections=max(1, share),
                rate=spec.rate / processes,
                source=f"127.0.1.{index + 1}",
            )
        )
    return specs


def collect(queue, workers: list, timeout_s: float) -> list:
    """One item per worker, failing fast if a worker dies instead of waiting out the timeout."""
    items = []
    deadline = time.monotonic() + timeout_s
    while len(items) < len(workers):
        try:
            items.append(queue.get(timeout=0.5))
        except Empty:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"load generator processes failed or hung: {dead}") from None
    return items


def run_load(
    spec: LoadSpec, processes: int = 1, on_ready: Callable[[int], None] | None = None
) -> LoadResult:
    """Run spec over processes; on_ready(connections) runs once all are connected, before go."""
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    workers = [
        context.Process(target=client_process, args=(s, ready, go, results), daemon=True)
        for s in process_specs(spec, processes)
    ]
    for worker in workers:
        worker.start()
    limit_s = spec.connect_timeout_s + spec.warmup_s + spec.duration_s + spec.drain_s + 60
    try:
        connected = sum(collect(ready, workers, spec.connect_timeout_s + 30))
        if on_ready is not None:
            on_ready(connected)
        go.set()
        total = LoadResult()
        for status, result in collect(results, workers, limit_s):
            if status != "ok":
                raise RuntimeError(result)
            total.add(result)
        return total
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
