"""The embedded bus's tail: the bodies of the events it committed most recently, in memory, so
that subscribers that keep up need not read back what was just written (see bus/sqlite.py)."""

from __future__ import annotations

import bisect


class Tail:
    """Committed events in offset order; it holds every one with an offset above
    :attr:`complete_after` (older ones are only in the file)."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.bodies: list[bytes] = []
        self.size = 0  # bytes of the bodies held
        self.complete_after = 0

    def add(self, stored: list[tuple[int, bytes]], max_events: int, max_bytes: int) -> None:
        """Append newly committed ``(offset, body)`` pairs, then drop the oldest beyond the bounds."""
        for offset, body in stored:
            self.offsets.append(offset)
            self.bodies.append(body)
            self.size += len(body)
        over, size = 0, self.size
        while len(self.offsets) - over > max_events or size > max_bytes:
            size -= len(self.bodies[over])
            over += 1
        self._drop(over)

    def reset(self, head: int) -> None:
        """Hold nothing; everything up to ``head`` is in the file only."""
        self._drop(len(self.offsets))
        self.complete_after = max(self.complete_after, head)

    def read(self, position: int, limit: int) -> list[tuple[int, bytes]] | None:
        """Up to ``limit`` entries after offset ``position``; ``None`` when the tail does not reach
        back that far."""
        if position < self.complete_after:
            return None
        first = bisect.bisect_right(self.offsets, position)
        end = min(first + limit, len(self.offsets))
        return list(zip(self.offsets[first:end], self.bodies[first:end], strict=True))

    def drop_through(self, offset: int) -> None:
        """Let go of every entry at or before ``offset`` (all readers are past it)."""
        self._drop(bisect.bisect_right(self.offsets, offset))

    def _drop(self, count: int) -> None:
        if count <= 0:
            return
        self.complete_after = max(self.complete_after, self.offsets[count - 1])
        self.size -= sum(len(body) for body in self.bodies[:count])
        del self.offsets[:count], self.bodies[:count]


__all__ = ["Tail"]
