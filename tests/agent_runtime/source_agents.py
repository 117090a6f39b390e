"""Agents the source tests deploy (importable by Ray workers)."""

from __future__ import annotations

import asyncio
from typing import Any

from agent_runtime.agent import Agent, Message


class Doubler(Agent):
    """Answers {"n": 2n}; raises for a payload with "boom"; `config.sleep_s` slows each
    call (backpressure)."""

    async def handle_batch(self, messages: list[Message]) -> list[Any]:
        if self.config.get("sleep_s"):
            await asyncio.sleep(self.config["sleep_s"])
        if any("boom" in message.payload for message in messages):
            raise RuntimeError("boom in this batch")
        return [
            {"n": message.payload["n"] * 2, "replica": self.context.replica} for message in messages
        ]
