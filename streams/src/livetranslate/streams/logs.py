"""Structured logging for every process: structlog over the standard library."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["FASTSTREAM_LOGGER", "configure"]

FASTSTREAM_LOGGER = "faststream.livetranslate"
"""The logger stages hand to FastStream."""

NOISY = ("faststream", "nats", "uvicorn.access", "faster_whisper")
"""Libraries that log every message (or every utterance) at INFO."""


class _PullTimeoutFilter(logging.Filter):
    """Drop FastStream's report of a pull fetch that timed out with no message.

    nats-py (2.16) raises the built-in ``TimeoutError`` on one early-deadline
    path of ``fetch``; FastStream (0.7) suppresses only nats-py's own
    ``TimeoutError`` there, so its supervisor logs a traceback and restarts
    the fetch loop, which is all that should happen. Nothing is lost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        restarted = "raised an exception, retrying" in record.getMessage()
        return not (restarted and type(exc) is TimeoutError)


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written.

    Binding the stream object at configuration time breaks once a caller
    (a test runner capturing output, say) swaps stderr and closes its copy.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", fmt: str = "console") -> None:
    """Route structlog and stdlib logging to stderr at ``level``."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=level, stream=_CurrentStderr(), format="%(levelname)s %(name)s %(message)s"
    )
    logging.getLogger(FASTSTREAM_LOGGER).addFilter(_PullTimeoutFilter())
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
