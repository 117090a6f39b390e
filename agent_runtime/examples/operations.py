"""Operations pipeline: metrics stream -> anomaly detectors -> decision agent -> remediation.

Detectors score each host's metric vector with a small autoencoder trained at start-up on
synthetic normal data (reconstruction error above the 99.9th training percentile is an
anomaly). The decision agent keeps a per-host streak and escalates; the executor only logs
what it would do (dry run).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import torch

from agent_runtime.agent import Agent, Message
from agent_runtime.client import Deployment
from agent_runtime.examples import common
from agent_runtime.examples.traffic import FEATURES, metric_message, normal_metrics
from agent_runtime.models import BatchedModel
from agent_runtime.spec import DeploymentSpec

log = logging.getLogger("mcp.remediation")


def autoencoder() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3),
        torch.nn.ReLU(), torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, FEATURES),
    )  # fmt: skip


class ReconstructionError(torch.nn.Module):
    """Autoencoder plus its error, so the whole numeric path runs once per batch rather than
    as a handful of tiny tensor operations per item."""

    def __init__(self, autoencoder: torch.nn.Module) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.autoencoder(x) - x) ** 2).mean(dim=-1)


class AnomalyDetector(Agent):
    async def setup(self) -> None:
        torch.manual_seed(self.config.get("seed", 0))
        rng = random.Random(self.config.get("seed", 0))
        data = torch.tensor([normal_metrics(rng) for _ in range(4096)])
        module = autoencoder()
        common.train(module, data, data, steps=self.config.get("train_steps", 400))
        scorer = ReconstructionError(module).eval()
        with torch.inference_mode():
            errors = scorer(data)
        self.threshold = float(torch.quantile(errors, 0.999)) * self.config.get("margin", 1.5)
        self.model = BatchedModel(
            scorer,
            max_batch_size=self.config.get("max_batch_size", 256),
            # No wait: at a few hundred messages/s a detector rarely has two requests at once,
            # so any wait would only add its (at least 1 ms) delay to every decision.
            max_wait_ms=self.config.get("max_wait_ms", 0.0),
            name="ops-autoencoder",
        )

    async def decide(self, observation: dict[str, Any]) -> dict[str, Any]:
        return self._verdict(observation, float(await self.model.infer(observation["features"])))

    async def handle_batch(self, messages: list[Message]) -> list[dict[str, Any]]:
        observations = [self.observe(message) for message in messages]
        scores = self.model.infer_many([o["features"] for o in observations])
        verdicts = [self._verdict(o, float(s)) for o, s in zip(observations, scores, strict=True)]
        for observation, verdict in zip(observations, verdicts, strict=True):
            self.update(observation, verdict, verdict)
        return verdicts

    def _verdict(self, observation: dict[str, Any], score: float) -> dict[str, Any]:
        return {
            "host": observation["host"],
            "seq": observation["seq"],
            "score": score,
            "anomaly": score > self.threshold,
        }

    def update(self, observation: Any, decision: dict[str, Any], result: Any) -> None:
        self.state["scored"] = self.state.get("scored", 0) + 1
        self.state["anomalies"] = self.state.get("anomalies", 0) + decision["anomaly"]


class RemediationDecider(Agent):
    """Per-host streaks (routed by host, so one replica owns a host's history)."""

    async def decide(self, observation: dict[str, Any]) -> dict[str, Any]:
        streaks = self.state.setdefault("streaks", {})
        host = observation["host"]
        streaks[host] = streaks.get(host, 0) + 1 if observation["anomaly"] else 0
        escalate_at = self.config.get("drain_after", 3)
        if streaks[host] >= escalate_at:
            action = "drain_host"
        elif streaks[host] >= 1:
            action = "restart_service"
        else:
            action = "none"
        return {**observation, "action": action, "streak": streaks[host]}


class RemediationExecutor(Agent):
    """Dry run: logs the action and counts it; nothing on the host changes."""

    async def handle(self, message: Message) -> dict[str, Any]:
        decision = message.payload
        log.info("DRY-RUN %s on %s (seq %s)", decision["action"], decision["host"], decision["seq"])
        done = self.state.setdefault("executed", {})
        done[decision["action"]] = done.get(decision["action"], 0) + 1
        return {"seq": decision["seq"], "executed": decision["action"], "dry_run": True}


def spec(replicas: int = 2, name: str = "ops", **agent_overrides: Any) -> DeploymentSpec:
    module = "agent_runtime.examples.operations"  # not __name__: "__main__" under -m
    agents = [
        {
            "name": "detector",
            "import": f"{module}:AnomalyDetector",
            "replicas": replicas,
            "resources": {"num_cpus": 0.25},
            "routing_key": "host",
        },
        {
            "name": "decider",
            "import": f"{module}:RemediationDecider",
            "replicas": replicas,
            "resources": {"num_cpus": 0.25},
            "routing_key": "host",
        },
        {
            "name": "executor",
            "import": f"{module}:RemediationExecutor",
            "replicas": 1,
            "resources": {"num_cpus": 0.1},
        },
    ]
    for agent in agents:
        agent.update(agent_overrides)
    return DeploymentSpec.model_validate({"name": name, "agents": agents})


class OperationsPipeline:
    def __init__(self, deployment: Deployment, hosts: int = 50, anomaly_rate: float = 0.02):
        self.detector = deployment.group("detector")
        self.decider = deployment.group("decider")
        self.executor = deployment.group("executor")
        self.hosts = hosts
        self.anomaly_rate = anomaly_rate

    async def process(self, i: int) -> dict[str, Any]:
        message = metric_message(i, self.hosts, self.anomaly_rate)
        scored = await self.detector.call(message)
        decision = await self.decider.call(scored)
        if decision["action"] != "none":
            await self.executor.call(decision)
        return {**decision, "injected": message["injected"]}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "decisions": len(results),
        "actions": sum(r["action"] != "none" for r in results),
        "drains": sum(r["action"] == "drain_host" for r in results),
        "injected_anomalies": sum(r["injected"] for r in results),
        "detected_injected": sum(r["injected"] and r["action"] != "none" for r in results),
    }


def main() -> None:
    common.main(__doc__, "operations", spec, OperationsPipeline, summarise)


if __name__ == "__main__":
    main()
