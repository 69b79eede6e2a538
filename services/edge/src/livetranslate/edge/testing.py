"""Clients of a running edge, for tests and the load script: sessions, viewers, microphones.

Needs the development dependencies (``httpx``, ``websockets``); the edge
itself never imports this module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

__all__ = [
    "RECEIVE_TIMEOUT_S",
    "closed_with",
    "connected",
    "create_session",
    "receive",
    "refusal",
    "socket_url",
]

RECEIVE_TIMEOUT_S = 5.0


def socket_url(
    address: str,
    session_id: str,
    *,
    token: str | None = None,
    after: int | str | None = None,
    audio: bool = False,
) -> str:
    """The viewer socket of a session (the microphone's with ``audio``)."""
    query = {"token": token, "after": after}
    encoded = urlencode({name: value for name, value in query.items() if value is not None})
    path = f"/ws/sessions/{session_id}{'/audio' if audio else ''}"
    return f"ws://{address}{path}{'?' if encoded else ''}{encoded}"


async def create_session(
    address: str, source_language: str | None = "en", targets: tuple[str, ...] = ("pt",)
) -> dict[str, str]:
    """POST /api/sessions; the edge's answer: session_id, publish_token, view_token, view_url."""
    body = {"source_language": source_language, "target_languages": list(targets)}
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(f"http://{address}/api/sessions", json=body)
    response.raise_for_status()
    created: dict[str, str] = response.json()
    return created


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[ClientConnection]:
    async with connect(url, proxy=None, open_timeout=RECEIVE_TIMEOUT_S) as socket:
        yield socket


async def receive(socket: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` event frames, parsed."""
    frames = []
    for _ in range(count):
        text = await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT_S)
        frames.append(json.loads(text))
    return frames


async def closed_with(socket: ClientConnection) -> Close:
    """The close frame the edge ends ``socket`` with; AssertionError if it sends data first."""
    try:
        data = await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT_S)
    except ConnectionClosed as closed:
        if closed.rcvd is None:
            raise AssertionError("the connection ended without a close frame") from closed
        return closed.rcvd
    raise AssertionError(f"expected a close frame, got data: {data!r}")


async def refusal(url: str) -> Close:
    """The close frame the edge answers ``url`` with, before any event."""
    async with connected(url) as socket:
        return await closed_with(socket)
