"""When an autoscaled agent should have another number of replicas (the decision only; the
supervisor adds and drains them).

The load is concurrency, as Little's law has it: messages queued at the gateways plus those
in the replicas' hands. Divided by `target_in_flight` it gives the replicas wanted. Up as
soon as that has held for `upscale_after_s`, to the latest count wanted; down only after
`downscale_after_s` of wanting fewer, to the most wanted during that quiet spell, so a lull
between bursts does not take away what the next burst needs.
"""

from __future__ import annotations

import math

from agent_runtime.spec import Autoscaling


class Scaler:
    def __init__(self, policy: Autoscaling) -> None:
        self.policy = policy
        self._direction = 0  # +1 wanting more, -1 wanting fewer, 0 content
        self._since = 0.0
        self._peak = 0

    def wanted(self, load: float) -> int:
        """Replicas for this load, within the policy's bounds."""
        count = math.ceil(load / self.policy.target_in_flight) if load > 0 else 0
        return min(max(count, self.policy.min_replicas), self.policy.max_replicas)

    def decide(self, current: int, load: float, now: float) -> int | None:
        """The replica count to move to now, or None to stay."""
        wanted = self.wanted(load)
        direction = (wanted > current) - (wanted < current)
        if direction == 0:
            self._direction = 0
            return None
        if direction != self._direction:
            self._direction, self._since, self._peak = direction, now, wanted
        self._peak = max(self._peak, wanted)
        if direction > 0:
            if now - self._since < self.policy.upscale_after_s:
                return None
            target = wanted
        else:
            if now - self._since < self.policy.downscale_after_s:
                return None
            target = self._peak
        self._direction = 0
        return target
