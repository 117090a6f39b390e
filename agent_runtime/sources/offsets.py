"""Which offset of each partition may be committed: the first one not yet finished.

Messages of a partition finish out of order (different replicas, batches, dead letters),
but Kafka keeps one offset per partition and a restarted consumer resumes from it. So the
commit point only moves past a message once it and every message before it have finished:
a failure then redelivers what was unfinished (and some finished ones: at least once), and
never skips one. Offsets are tracked in the order they were consumed rather than by +1,
because a topic can have gaps (compaction, transaction markers).
"""

from __future__ import annotations

from collections import deque


class PartitionProgress:
    """One partition: offsets consumed in order, and which of them have finished."""

    __slots__ = ("_done", "_next", "_open")

    def __init__(self) -> None:
        self._open: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = None  # the offset to resume from once all are finished

    def started(self, offset: int) -> None:
        self._open.append(offset)
        self._next = offset + 1

    def finished(self, offset: int) -> None:
        self._done.add(offset)
        while self._open and self._open[0] in self._done:
            self._done.discard(self._open.popleft())

    def commit_point(self) -> int | None:
        """The offset Kafka should hold (the next to consume), None if nothing consumed."""
        if self._open:
            return self._open[0]
        return self._next

    def in_flight(self) -> int:
        return len(self._open)


class Offsets:
    """Every partition this consumer owns now. A revoked partition is forgotten: what of it
    is still in flight finishes, but its new owner resumes from the last commit."""

    def __init__(self) -> None:
        self._partitions: dict[int, PartitionProgress] = {}
        self._committed: dict[int, int] = {}

    def assign(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._partitions.setdefault(partition, PartitionProgress())

    def revoke(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._partitions.pop(partition, None)
            self._committed.pop(partition, None)

    def owned(self, partition: int) -> bool:
        return partition in self._partitions

    def started(self, partition: int, offset: int) -> PartitionProgress:
        """Track a consumed message; call `finished(offset)` on what this returns. A
        message from before a revocation so finishes on its old, forgotten progress, and
        cannot mark the same offset done in a later assignment of the partition."""
        progress = self._partitions[partition]
        progress.started(offset)
        return progress

    def to_commit(self) -> dict[int, int]:
        """Partitions whose commit point moved since the last `committed`."""
        due = {}
        for partition, progress in self._partitions.items():
            point = progress.commit_point()
            if point is not None and point != self._committed.get(partition):
                due[partition] = point
        return due

    def committed(self, points: dict[int, int]) -> None:
        for partition, point in points.items():
            if partition in self._partitions:
                self._committed[partition] = point

    def uncommitted(self, partitions: list[int]) -> None:
        """A commit that failed: commit these again next round."""
        for partition in partitions:
            self._committed.pop(partition, None)

    def position(self, partition: int) -> int | None:
        progress = self._partitions.get(partition)
        return None if progress is None else progress.commit_point()

    def in_flight(self) -> int:
        return sum(progress.in_flight() for progress in self._partitions.values())

    def partitions(self) -> list[int]:
        return sorted(self._partitions)
