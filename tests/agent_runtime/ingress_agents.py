"""Agents the ingress tests deploy (importable by Ray workers)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import ray

from agent_runtime.agent import Agent, Message
from agent_runtime.constants import NAMESPACE


class Recorder(Agent):
    """Answers each message with its payload and which actor call carried it, so a test can
    count messages per call. `config.sleep_s` makes each call that slow; `config.echo: false`
    leaves the payload out of the answer; `config.ledger` names a Ledger actor told the id
    of every message handled (a test then sees any handled twice, or never)."""

    _calls = itertools.count()

    async def handle_batch(self, messages: list[Message]) -> list[Any]:
        call = f"{self.context.replica}.{next(self._calls)}"
        if self.config.get("sleep_s"):
            await asyncio.sleep(self.config["sleep_s"])
        self.state["handled"] = self.state.get("handled", 0) + len(messages)
        if self.config.get("ledger"):
            ledger = ray.get_actor(self.config["ledger"], namespace=NAMESPACE)
            await ledger.add.remote([message.id for message in messages])
        return [
            {
                "payload": message.payload if self.config.get("echo", True) else None,
                "call": call,
                "batch": len(messages),
                "replica": self.context.replica,
                "handled": self.state["handled"],
            }
            for message in messages
        ]


class KeyCounter(Agent):
    """Counts each key's messages in `self.state[key]` and answers the count with this one:
    a key whose messages are sent one after another gets 1, 2, 3... only if its state is
    never lost, doubled or split while autoscaling hands keys between replicas.
    `config.sleep_s` makes each call that slow."""

    async def handle_batch(self, messages: list[Message]) -> list[Any]:
        if self.config.get("sleep_s"):
            await asyncio.sleep(self.config["sleep_s"])
        answers = []
        for message in messages:
            assert message.key is not None
            self.state[message.key] = self.state.get(message.key, 0) + 1
            answers.append({"count": self.state[message.key], "replica": self.context.replica})
        return answers

    async def handle(self, message: Message) -> Any:
        (answer,) = await self.handle_batch([message])
        return answer


class Ledger:
    """Every message id a Recorder handled, in order, duplicates kept."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def add(self, ids: list[str]) -> None:
        self.ids.extend(ids)

    def all(self) -> list[str]:
        return self.ids
