"""Serving the edge under uvicorn."""

from __future__ import annotations

import asyncio
import socket

import pytest

from livetranslate.edge import EdgeStartError, create_app, serve, serving
from livetranslate.streams.server import free_port


async def test_a_taken_port_is_an_edge_start_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(f"nats://127.0.0.1:{free_port()}")

        with pytest.raises(EdgeStartError, match=str(port)):
            await asyncio.wait_for(serve(app, port=port, stop=asyncio.Event()), 10)


async def test_serving_a_taken_port_raises_rather_than_take_the_holder_for_itself() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()  # accepts connections: asking the port would find it open
        port = taken.getsockname()[1]
        app = create_app(f"nats://127.0.0.1:{free_port()}")

        with pytest.raises(EdgeStartError, match=str(port)):
            async with serving(app, port=port):
                pytest.fail("the block ran although the edge never listened")
