"""Risk pipeline: transaction stream -> N parallel risk scorers -> quorum vote -> decision.

Fed by this driver (`python -m agent_runtime.examples.risk`), or from a Kafka topic: the
`flow` agent runs the same pipeline for each message a source gives it
(agent_runtime/examples/risk_stream.yaml: `transactions` in, `decisions` out).

Three independent scorers look at every transaction (a rule set, a small MLP trained at
start-up on synthetic labelled data, and a per-account velocity check routed by account).
The decision agent needs `quorum` votes to decide alone: a majority of "fraud" votes
declines, otherwise approves; with fewer votes in time it sends the transaction to review.
"""

from __future__ import annotations

import asyncio
from typing import Any

import torch

from agent_runtime.agent import Agent, Message
from agent_runtime.client import Deployment
from agent_runtime.examples import common
from agent_runtime.examples.traffic import transaction
from agent_runtime.models import BatchedModel
from agent_runtime.spec import DeploymentSpec

MODULE = "agent_runtime.examples.risk"  # not __name__: that is "__main__" under -m
SCORERS = ("rules", "model", "velocity")


def features(tx: dict[str, Any]) -> list[float]:
    return [
        min(tx["amount"], 20_000) / 2_000,
        float(tx["foreign"]),
        float(tx["night"]),
        float(tx["new_device"]),
    ]


class RuleScorer(Agent):
    async def decide(self, tx: dict[str, Any]) -> dict[str, Any]:
        hits = (tx["amount"] > 1_000) + tx["foreign"] + tx["new_device"]
        return {"scorer": "rules", "fraud": hits >= 2, "score": hits / 3}


class ModelScorer(Agent):
    async def setup(self) -> None:
        torch.manual_seed(0)
        data = [transaction(-i - 1, fraud_rate=0.3) for i in range(4096)]
        inputs = torch.tensor([features(tx) for tx in data])
        labels = torch.tensor([int(tx["fraud"]) for tx in data])
        module = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )
        common.train(module, inputs, labels, steps=300)
        self.model = BatchedModel(
            module, max_batch_size=256, max_wait_ms=self.config.get("max_wait_ms", 1.0),
            name="risk-mlp",
        )  # fmt: skip

    async def decide(self, tx: dict[str, Any]) -> dict[str, Any]:
        logits = await self.model.infer(torch.tensor(features(tx)))
        probability = float(torch.softmax(logits, dim=0)[1])
        return {"scorer": "model", "fraud": probability > 0.5, "score": probability}


class VelocityScorer(Agent):
    """Stateful per account (routed by account): many large transactions in a row is fraud."""

    async def decide(self, tx: dict[str, Any]) -> dict[str, Any]:
        recent = self.state.setdefault(tx["account"], [])
        recent.append(tx["amount"])
        del recent[:-5]
        large = sum(amount > 500 for amount in recent)
        return {
            "scorer": "velocity",
            "fraud": large >= 2 and tx["amount"] > 500,
            "score": large / 5,
        }


class QuorumDecision(Agent):
    async def decide(self, ballot: dict[str, Any]) -> dict[str, Any]:
        votes = ballot["votes"]
        quorum = self.config.get("quorum", 2)
        fraud_votes = sum(vote["fraud"] for vote in votes)
        if len(votes) < quorum:
            verdict = "review"
        elif fraud_votes * 2 > len(votes):
            verdict = "decline"
        else:
            verdict = "approve"
        return {
            "tx": ballot["tx"],
            "verdict": verdict,
            "votes": len(votes),
            "fraud_votes": fraud_votes,
        }

    def update(self, observation: Any, decision: dict[str, Any], result: Any) -> None:
        counts = self.state.setdefault("verdicts", {})
        counts[decision["verdict"]] = counts.get(decision["verdict"], 0) + 1


def _agent(name: str, cls: str, replicas: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "import": f"{MODULE}:{cls}",
        "replicas": replicas,
        "resources": {"num_cpus": 0.2},
        **extra,
    }


def spec(
    replicas: int = 2, name: str = "risk", source: dict[str, Any] | None = None
) -> DeploymentSpec:
    """The pipeline's agents; with `source` (a `sources:` entry less its agent), also the
    `flow` agent that the topic feeds."""
    agents = [
        _agent("rules", "RuleScorer", replicas),
        _agent("model", "ModelScorer", replicas),
        _agent("velocity", "VelocityScorer", replicas, routing_key="account"),
        _agent("decision", "QuorumDecision", 1, config={"quorum": 2}),
    ]
    document: dict[str, Any] = {"name": name, "agents": agents}
    if source is not None:
        agents.append(_agent("flow", "RiskFlow", replicas, max_concurrency=1024))
        document["sources"] = [{"agent": "flow", **source}]
    return DeploymentSpec.model_validate(document)


class RiskPipeline:
    def __init__(self, deployment: Deployment, vote_timeout_s: float = 1.0) -> None:
        self.scorers = [deployment.group(name) for name in SCORERS]
        self.decision = deployment.group("decision")
        self.vote_timeout_s = vote_timeout_s

    async def process(self, i: int) -> dict[str, Any]:
        tx = transaction(i)
        calls = [asyncio.ensure_future(scorer.call(tx)) for scorer in self.scorers]
        # Votes that miss the deadline do not count; the quorum rule decides what that means.
        done, late = await asyncio.wait(calls, timeout=self.vote_timeout_s)
        for call in late:
            call.cancel()
        votes = [call.result() for call in done if call.exception() is None]
        decision = await self.decision.call({"tx": tx["tx"], "votes": votes})
        return {**decision, "fraud": tx["fraud"]}


class RiskFlow(Agent):
    """The pipeline as one agent, for a topic to feed: each message a transaction, each
    result its decision. A batch (what the source's lane coalesced into one call) goes to
    each scorer and to the decision agent as one `call_many` per replica, with ids derived
    from the messages', so a redelivered transaction is answered from the replicas' memory
    (the velocity scorer's per-account state is not counted twice). Its deployment's
    agents are found through the supervisor on the first message, not in setup: the
    supervisor answers for replicas only once all of them are set up."""

    _deployment: asyncio.Task[Deployment] | None = None

    async def handle(self, message: Message) -> dict[str, Any]:
        return (await self.handle_batch([message]))[0]

    async def handle_batch(self, messages: list[Message]) -> list[dict[str, Any]]:
        if self._deployment is None:  # concurrent first batches share one connection
            self._deployment = asyncio.ensure_future(Deployment.connect(self.context.deployment))
        deployment = await self._deployment
        txs = [message.payload for message in messages]
        timeout_s = self.config.get("vote_timeout_s", 1.0)

        async def votes_of(name: str) -> list[Any]:
            ids = [f"{message.id}:{name}" for message in messages]
            return await deployment.group(name).call_many(txs, message_ids=ids)

        calls = [asyncio.ensure_future(votes_of(name)) for name in SCORERS]
        # As in RiskPipeline: a scorer late for the deadline casts no votes for this batch.
        done, late = await asyncio.wait(calls, timeout=timeout_s)
        for call in late:
            call.cancel()
        answered = [call.result() for call in calls if call in done and call.exception() is None]
        ballots = [
            {"tx": tx["tx"], "votes": [votes[i] for votes in answered]} for i, tx in enumerate(txs)
        ]
        ids = [f"{message.id}:decision" for message in messages]
        decisions = await deployment.group("decision").call_many(ballots, message_ids=ids)
        return [
            {**decision, "fraud": tx.get("fraud")}
            for decision, tx in zip(decisions, txs, strict=True)
        ]


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    declined = [r for r in results if r["verdict"] == "decline"]
    return {
        "decisions": len(results),
        "declined": len(declined),
        "review": sum(r["verdict"] == "review" for r in results),
        "fraud_in_stream": sum(r["fraud"] for r in results),
        "fraud_declined": sum(r["fraud"] for r in declined),
    }


def main() -> None:
    common.main(__doc__, "risk", spec, RiskPipeline, summarise)


if __name__ == "__main__":
    main()
