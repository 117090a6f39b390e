"""The example pipelines' synthetic input, in plain Python (no torch, no Ray), so a producer
outside the cluster can make it too: host metrics for the operations pipeline, card
transactions for the risk pipeline. Deterministic per index."""

from __future__ import annotations

import random
from typing import Any

FEATURES = 8


def normal_metrics(rng: random.Random) -> list[float]:
    # Correlated signals, like real hosts: load drives cpu, latency and error rate together.
    load = rng.random()
    noise = [rng.gauss(0, 0.03) for _ in range(FEATURES)]
    base = [load, 0.8 * load, 0.3 + 0.2 * load, 0.5, 0.1 * load, 0.6 * load, 0.4, 0.2 + 0.5 * load]
    return [b + n for b, n in zip(base, noise, strict=True)]


def metric_message(i: int, hosts: int, anomaly_rate: float, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed * 1_000_003 + i)
    features = normal_metrics(rng)
    anomalous = rng.random() < anomaly_rate
    if anomalous:
        features[rng.randrange(FEATURES)] += rng.choice([-1, 1]) * rng.uniform(0.5, 1.0)
    return {"host": f"host-{i % hosts}", "seq": i, "features": features, "injected": anomalous}


def transaction(i: int, accounts: int = 500, fraud_rate: float = 0.03) -> dict[str, Any]:
    rng = random.Random(7_000_003 * i + 11)
    fraud = rng.random() < fraud_rate
    amount = rng.lognormvariate(7.5 if fraud else 3.5, 0.6)
    return {
        "tx": i,
        "account": f"acct-{rng.randrange(accounts)}",
        "amount": round(amount, 2),
        "foreign": rng.random() < (0.7 if fraud else 0.05),
        "night": rng.random() < (0.6 if fraud else 0.1),
        "new_device": rng.random() < (0.8 if fraud else 0.05),
        "fraud": fraud,
    }
