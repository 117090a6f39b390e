"""Agents the ingress tests deploy (importable by Ray workers)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from agent_runtime.agent import Agent, Message


class Recorder(Agent):
    """Answers each message with its payload and which actor call carried it, so a test can
    count messages per call. `config.sleep_s` makes each call that slow; `config.echo: false`
    leaves the payload out of the answer."""

    _calls = itertools.count()

    async def handle_batch(self, messages: list[Message]) -> list[Any]:
        call = f"{self.context.replica}.{next(self._calls)}"
        if self.config.get("sleep_s"):
            await asyncio.sleep(self.config["sleep_s"])
        self.state["handled"] = self.state.get("handled", 0) + len(messages)
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
