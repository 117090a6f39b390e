"""The agent model: a decision cycle (observe -> decide -> act -> update) behind `handle`.

An agent is plain Python; the runtime hosts it in a Ray actor, gives it a message at a time
(concurrently, on one asyncio loop) and checkpoints whatever `get_state` returns.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """One unit of work. `id` makes redelivery detectable: retries reuse it."""

    id: str
    payload: Any
    key: str | None = None


@dataclass(frozen=True, slots=True)
class AgentContext:
    """Where a replica runs; given to the agent so it can name itself in logs and metrics."""

    deployment: str
    agent: str
    replica: int
    node_id: str = ""


class Agent:
    """Base class. Override `decide` (and optionally the other steps) or `handle` itself.

    The steps are separate so that a subclass can reuse the cycle and change one part, and so
    that tests can drive a step alone. Only `handle` is called by the runtime.
    """

    def __init__(self, config: dict[str, Any], context: AgentContext) -> None:
        self.config = config
        self.context = context
        self.state: dict[str, Any] = {}

    async def setup(self) -> None:
        """Expensive start-up (loading or training a model); runs once per process."""

    def observe(self, message: Message) -> Any:
        return message.payload

    async def decide(self, observation: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement decide() or handle()")

    async def act(self, decision: Any) -> Any:
        return decision

    def update(self, observation: Any, decision: Any, result: Any) -> None:
        """Fold the outcome into `self.state`; called after `act` succeeds."""

    async def handle(self, message: Message) -> Any:
        observation = self.observe(message)
        decision = await self.decide(observation)
        result = await self.act(decision)
        self.update(observation, decision, result)
        return result

    async def handle_batch(self, messages: list[Message]) -> list[Any]:
        """Many messages at once (from `AgentGroup.call_many`). Override to process them
        as one batch, e.g. one model pass; the default handles them concurrently."""
        return list(await asyncio.gather(*(self.handle(message) for message in messages)))

    def get_state(self) -> Any:
        """What a restarted replica needs to resume; must be picklable."""
        return self.state

    def set_state(self, state: Any) -> None:
        self.state = state

    def export_keys(self, leaving: Callable[[str], bool]) -> dict[str, Any]:
        """Remove and return the state of the routing keys for which `leaving(key)` holds:
        an autoscaled keyed agent's keys that now belong to another replica, which gets
        them through `import_keys`. The default suits per-key state kept in `self.state`
        as {message.key: value}; override both for another layout."""
        moved = {key: value for key, value in self.state.items() if leaving(key)}
        for key in moved:
            del self.state[key]
        return moved

    def import_keys(self, states: dict[str, Any]) -> None:
        """Take over the keys another replica exported (see `export_keys`)."""
        self.state.update(states)


def load_agent_class(import_path: str) -> type[Agent]:
    """Resolve "package.module:Class"; errors say which part is wrong."""
    module_name, sep, attr = import_path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"import path {import_path!r} must look like 'package.module:Class'")
    module = importlib.import_module(module_name)
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ValueError(f"{import_path!r} is not a subclass of agent_runtime.agent.Agent")
    return cls


def import_problems(import_paths: dict[str, str]) -> list[str]:
    """For each agent name -> import path that does not resolve to an Agent class, why.
    Run where the replicas would run (a Ray task), before any replica is created."""
    problems = []
    for name, import_path in import_paths.items():
        try:
            load_agent_class(import_path)
        except Exception as error:  # an import runs arbitrary module code
            problems.append(f"{name}: import {import_path!r}: {type(error).__name__}: {error}")
    return problems
