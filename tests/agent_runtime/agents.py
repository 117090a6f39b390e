"""Small agents the tests deploy (importable by Ray workers as tests.agent_runtime.agents)."""

from __future__ import annotations

import asyncio
from typing import Any

from agent_runtime.agent import Agent, Message


class Counter(Agent):
    """Counts messages per key; the count is its checkpointed state."""

    async def decide(self, observation: dict[str, Any]) -> dict[str, Any]:
        key = observation["key"]
        self.state[key] = self.state.get(key, 0) + 1
        return {"key": key, "count": self.state[key], "replica": self.context.replica}


class Slow(Agent):
    async def handle(self, message: Message) -> Any:
        await asyncio.sleep(message.payload.get("sleep", 0.5))
        return message.payload
