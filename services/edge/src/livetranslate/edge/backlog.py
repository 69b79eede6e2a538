"""The bounded queue of frames waiting for one browser.

Each socket has its own backlog, so a slow browser only ever slows itself.
When the backlog is full, partial revisions give way: a later revision or
the final supersedes them anyway. Finals are never dropped; a final that
finds no partial to evict waits for room, which holds back this socket's
own consumer (JetStream flow control) and nothing else.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

__all__ = ["Backlog", "Frame"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One text frame for the browser, with what the backlog needs to know about it."""

    seq: int
    """Stream sequence of the message the frame came from."""

    text: str
    droppable: bool
    """True for a partial revision, which a later message supersedes."""


class Backlog:
    """A bounded FIFO of frames where, when full, the oldest partial is evicted first."""

    def __init__(self, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError(f"a backlog needs room for at least one frame; got {max_frames}")
        self.max_frames = max_frames
        self.dropped = 0
        """Partials evicted or refused so far."""

        self._frames: deque[Frame] = deque()
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._frames)

    async def put(self, frame: Frame) -> None:
        """Queue ``frame``; may drop a partial, and waits only when full of finals."""
        async with self._changed:
            while len(self._frames) >= self.max_frames and not self._evict_partial():
                if frame.droppable:
                    self.dropped += 1
                    return
                await self._changed.wait()
            self._frames.append(frame)
            self._changed.notify_all()

    async def get(self) -> Frame:
        """The oldest queued frame, waiting for one if none is queued."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._frames))
            frame = self._frames.popleft()
            self._changed.notify_all()

            return frame

    def _evict_partial(self) -> bool:
        # The oldest partial is the most stale one; the frames around it keep
        # their order, so the browser still sees stream order with gaps.
        for frame in self._frames:
            if frame.droppable:
                self._frames.remove(frame)
                self.dropped += 1
                return True
        return False
