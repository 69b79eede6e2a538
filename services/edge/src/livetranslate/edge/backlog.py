"""The bounded queue of frames waiting for one browser.

Each socket has its own backlog, so a slow browser only ever slows itself.
When the backlog is full, partial revisions give way: a later revision or
the final supersedes them anyway. Finals are never dropped. A final that
finds no partial to evict either waits for room (``put``: the socket's own
catch-up consumer, held back by JetStream flow control) or is refused
(``offer``: the session's shared live feed, which waits for no one).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
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

    contract: str = ""
    published_at_s: float | None = None
    """When the stage published the message (Unix time), for contracts that say so."""

    live: bool = False
    """True when it came from the session's live feed: history is not a latency figure."""


class Backlog:
    """A bounded FIFO of frames where, when full, the oldest partial is evicted first.

    One task takes frames out (``get``); frames go in through ``put`` or
    ``offer``, one caller at a time.
    """

    def __init__(self, max_frames: int, on_drop: Callable[[], None] | None = None) -> None:
        if max_frames < 1:
            raise ValueError(f"a backlog needs room for at least one frame; got {max_frames}")
        self.max_frames = max_frames
        self.dropped = 0
        """Partials evicted or refused so far."""

        self._on_drop = on_drop
        self._frames: deque[Frame] = deque()
        self._filled = asyncio.Event()
        self._emptied = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._frames)

    def close(self) -> None:
        """The browser has gone: from now on frames are let go, and no ``put`` waits."""
        self._closed = True
        self._frames.clear()
        self._emptied.set()

    def offer(self, frame: Frame) -> bool:
        """Queue ``frame`` without waiting; False when it is a final and only finals fill it."""
        if self._closed:
            return True
        if len(self._frames) >= self.max_frames and not self._evict_partial():
            if not frame.droppable:
                return False
            self._count_drop()
            return True
        self._frames.append(frame)
        self._filled.set()
        return True

    async def put(self, frame: Frame) -> None:
        """Queue ``frame``; may drop a partial, and waits only when full of finals."""
        while not self.offer(frame):
            self._emptied.clear()
            await self._emptied.wait()

    async def get(self) -> Frame:
        """The oldest queued frame, waiting for one if none is queued."""
        while not self._frames:
            self._filled.clear()
            await self._filled.wait()
        frame = self._frames.popleft()
        self._emptied.set()

        return frame

    def _evict_partial(self) -> bool:
        # The oldest partial is the most stale one; the frames around it keep
        # their order, so the browser still sees stream order with gaps.
        for frame in self._frames:
            if frame.droppable:
                self._frames.remove(frame)
                self._count_drop()
                return True
        return False

    def _count_drop(self) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop()
