"""A load generator for the example pipelines through the ingress: prints their synthetic
input, one JSON message a line, for `mcpctl agents send` (or any HTTP client) to post to the
gateways. Plain Python: it runs on any machine that reaches them.

    python -m agent_runtime.examples.produce metrics --messages 1000 \\
        | mcpctl agents send ops/detector -i -
    python -m agent_runtime.examples.produce transactions --rate 200 > transactions.jsonl

With --rate, lines come at that many a second (open loop), so the gateways see a stream
rather than one burst. With --kafka, the messages go to a topic instead (a source's, see
agent_runtime/examples/risk_stream.yaml), keyed by host or account so that each keeps its
order within one partition:

    python -m agent_runtime.examples.produce transactions --kafka kafka-1:9092 \\
        --topic transactions --messages 10000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from agent_runtime.examples.traffic import metric_message, transaction

KINDS: dict[str, Callable[[int, argparse.Namespace], dict[str, Any]]] = {
    "metrics": lambda i, args: metric_message(i, args.hosts, args.anomaly_rate, args.seed),
    "transactions": lambda i, args: transaction(i, args.accounts, args.fraud_rate),
}
# Kafka message keys: the field the example's keyed agent routes by.
KEY_FIELDS = {"metrics": "host", "transactions": "account"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agent_runtime.examples.produce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=sorted(KINDS), help="metrics (ops) or transactions (risk)")
    parser.add_argument("--messages", type=int, default=1000, help="how many (default 1000)")
    parser.add_argument("--start", type=int, default=0, help="index of the first one")
    parser.add_argument("--rate", type=float, help="lines per second (default: as fast as read)")
    parser.add_argument("--hosts", type=int, default=50, help="metrics: distinct hosts")
    parser.add_argument("--anomaly-rate", type=float, default=0.02, help="metrics: injected")
    parser.add_argument("--seed", type=int, default=0, help="metrics: random seed")
    parser.add_argument("--accounts", type=int, default=500, help="transactions: accounts")
    parser.add_argument("--fraud-rate", type=float, default=0.03, help="transactions: fraud")
    parser.add_argument("--kafka", metavar="BOOTSTRAP", help="host:port[,...]: write to Kafka")
    parser.add_argument("--topic", help="with --kafka: the topic (default: the kind)")
    args = parser.parse_args(argv)
    if args.messages < 0 or (args.rate is not None and args.rate <= 0):
        parser.error("--messages must be at least 0 and --rate above 0")
    if args.topic is not None and args.kafka is None:
        parser.error("--topic goes with --kafka")
    return args


def lines(args: argparse.Namespace) -> Iterator[str]:
    make = KINDS[args.kind]
    for i in range(args.start, args.start + args.messages):
        yield json.dumps(make(i, args), separators=(",", ":"))


def to_kafka(args: argparse.Namespace) -> int:
    # Imported here: printing lines needs no Kafka client.
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": args.kafka, "linger.ms": 5})
    topic = args.topic or args.kind
    field = KEY_FIELDS[args.kind]
    failed: list[str] = []

    def delivered(error: object, _: object) -> None:
        if error is not None:
            failed.append(str(error))

    started = time.monotonic()
    for n, line in enumerate(lines(args)):
        if args.rate is not None:
            time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
        key = str(json.loads(line)[field]).encode()
        while True:
            try:
                producer.produce(topic, line.encode(), key, on_delivery=delivered)
                break
            except BufferError:  # the client's queue is full: let it send some
                producer.poll(0.1)
        producer.poll(0)
    producer.flush()
    if failed:
        print(f"{len(failed)} messages not written to {topic}: {failed[0]}", file=sys.stderr)
        return 1
    print(f"{args.messages} messages written to {topic}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.kafka is not None:
        return to_kafka(args)
    started = time.monotonic()
    for n, line in enumerate(lines(args)):
        if args.rate is not None:
            time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
        try:
            sys.stdout.write(line + "\n")
            if args.rate is not None:
                sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early: not an error of ours
            return 0
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
