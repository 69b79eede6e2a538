"""What the CLI's commands do, as coroutines the CLI runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
import structlog
import typer

from livetranslate.cli import render
from livetranslate.cli.pipeline import (
    apply_to,
    broker,
    check_reachable,
    check_settings,
    ignore_errors,
    stages,
    stages_served,
)
from livetranslate.cli.session import Caption, CaptionCallback, SessionWatch
from livetranslate.cli.stages import PIPELINE, StageName
from livetranslate.contracts import subjects, v1

__all__ = [
    "GlossaryFileError",
    "SessionRequest",
    "publish",
    "read_glossary",
    "run_edge",
    "run_stages",
    "transcribe",
    "up",
]

log = structlog.get_logger(__name__)
FINISH_TIMEOUT_S = 600.0


class GlossaryFileError(ValueError):
    """A ``--glossary`` file is missing or is not a glossary; the message says which."""


@dataclass(frozen=True)
class SessionRequest:
    """What a producer asks of a new session."""

    session_id: str
    targets: tuple[str, ...]
    language: str | None
    chunk_ms: int
    glossary_file: Path | None = None

    def config(self) -> v1.SessionConfig:
        """The session's config, its targets and glossary checked against this
        machine's translation engines: a pair none serves stops here, not later."""
        from livetranslate.translate.languages import normalize_language

        source = normalize_language(self.language) if self.language else None
        return v1.SessionConfig(
            session_id=subjects.validate_session_id(self.session_id),
            source_language=source,
            target_languages=self._checked_targets(source),
            glossary=self._checked_glossary(),
        )

    def _checked_glossary(self) -> dict[str, dict[str, str]]:
        from livetranslate.translate.configuration import check_glossary

        try:
            return check_glossary(read_glossary(self.glossary_file))
        except GlossaryFileError:
            raise
        except ValueError as exc:
            raise GlossaryFileError(f"glossary {self.glossary_file}: {exc}") from exc

    def _checked_targets(self, source: str | None) -> tuple[str, ...]:
        if not self.targets:
            return ()
        from livetranslate.streams.settings import load
        from livetranslate.translate.configuration import check_targets
        from livetranslate.translate.stage import TranslateSettings

        return check_targets(source, self.targets, load(TranslateSettings).router())


def read_glossary(path: Path | None) -> dict[str, dict[str, str]]:
    """A glossary file: JSON, per target language, source term -> required translation."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GlossaryFileError(f"cannot read glossary {path}: {exc}") from exc
    if not isinstance(document, dict) or not all(
        isinstance(terms, dict) and all(isinstance(t, str) for t in terms.values())
        for terms in document.values()
    ):
        raise GlossaryFileError(
            f'glossary {path} must look like {{"pt": {{"pipeline": "pipeline"}}}}'
        )
    return document


async def up(
    nats_url: str | None,
    data_dir: Path,
    host: str,
    port: int,
    broker_port: int,
    stop: asyncio.Event,
) -> None:
    """Broker, stages and edge; on stop the edge goes first, the broker last."""
    from livetranslate.edge.app import create_app
    from livetranslate.edge.server import check_port_free, serving

    check_settings(PIPELINE)  # before the broker and the models, not after
    check_port_free(host, port)
    async with broker(nats_url, data_dir, broker_port) as url:
        if nats_url is not None:
            await apply_to(url)
        async with stages(url, PIPELINE), serving(create_app(url), host, port) as address:
            typer.echo(f"LiveTranslate is up: page http://{address}/  broker {url}", err=True)
            await stop.wait()


async def run_stages(url: str, names: Sequence[StageName], stop: asyncio.Event) -> None:
    await check_reachable(url)
    async with stages(url, names):
        await stop.wait()


async def run_edge(url: str, host: str, port: int, stop: asyncio.Event) -> None:
    from livetranslate.edge.app import create_app
    from livetranslate.edge.server import serve

    await serve(create_app(url), host=host, port=port, stop=stop)


async def publish(file: Path, url: str, request: SessionRequest, *, realtime: bool) -> None:
    from livetranslate.ingest.decode import decode_file

    config = request.config()
    samples = await asyncio.to_thread(decode_file, file)
    await _publish_session(url, config, samples, request.chunk_ms, realtime)
    seconds = len(samples) / v1.SAMPLE_RATE_HZ
    typer.echo(f"published {seconds:.1f} s of audio to {subjects.audio_ingest(config.session_id)}")


async def transcribe(
    file: Path, nats_url: str | None, request: SessionRequest, output: str, *, realtime: bool
) -> None:
    from livetranslate.ingest.decode import decode_file

    config = request.config()
    samples = await asyncio.to_thread(decode_file, file)
    duration_s = len(samples) / v1.SAMPLE_RATE_HZ
    check_settings(PIPELINE)
    with _progress(duration_s) as advance:
        async with (
            broker(nats_url, None) as url,
            stages(url, await _stages_to_run(url) if nats_url else PIPELINE),
        ):
            client = await nats.connect(url, error_cb=ignore_errors)
            watch = SessionWatch(
                client,
                config.session_id,
                config.target_languages,
                on_caption=_caption_printer(output, advance),
                on_partial=_print_partial if output == "text" and sys.stdout.isatty() else None,
                speakers=StageName.diarize in PIPELINE,
            )
            try:
                await watch.start()
                await _publish_session(url, config, samples, request.chunk_ms, realtime)
                await watch.wait(FINISH_TIMEOUT_S + duration_s)
            finally:
                # Closed before the embedded broker stops, so nothing reports its loss.
                await client.close()
    _print_result(output, config.session_id, watch)
    if not watch.ordered():
        # Silence, noise or music: say so, or an empty output looks like a fault.
        typer.echo(f"no speech found in {file}", err=True)


async def _stages_to_run(url: str) -> list[StageName]:
    """The pipeline's stages that no process runs on a shared broker at ``url`` yet.

    Says which running ones it uses. An embedded broker has none: it is not asked.
    """
    served = await stages_served(url, PIPELINE)
    if served:
        names = ", ".join(name.value for name in PIPELINE if name in served)
        typer.echo(f"using the stages already running at {url}: {names}", err=True)
    return [name for name in PIPELINE if name not in served]


LONG_FILE_S = 60.0
"""Files longer than this get a progress bar on a terminal."""


@contextlib.contextmanager
def _progress(duration_s: float) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr for long files, advanced to a caption's end time."""
    if duration_s < LONG_FILE_S or not sys.stderr.isatty():
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("transcribing", total=duration_s)
        yield lambda end_s: progress.update(task, completed=min(end_s, duration_s))


def _caption_printer(output: str, advance: Callable[[float], None]) -> CaptionCallback:
    def on_caption(caption: Caption) -> None:
        advance(caption.end_s)
        if output == "text":
            _print_caption(caption)

    return on_caption


async def _publish_session(
    url: str, config: v1.SessionConfig, samples: object, chunk_ms: int, realtime: bool
) -> None:
    from livetranslate.ingest.publish import publish_samples
    from livetranslate.streams import Publisher
    from livetranslate.streams.sessions import SessionStore
    from livetranslate.streams.stage import connect_broker

    await apply_to(url)  # fails fast, naming the URL, when no broker answers
    producer = connect_broker(url)
    client = await producer.connect()
    try:
        store = SessionStore(client)
        await store.open()
        await store.put(config)
        await publish_samples(
            Publisher(producer), config.session_id, samples,  # type: ignore[arg-type]
            chunk_ms=chunk_ms, realtime=realtime,
        )  # fmt: skip
    finally:
        await producer.stop()


def _print_caption(caption: Caption) -> None:
    if sys.stdout.isatty():
        sys.stdout.write("\r\033[K")
    print(render.caption_line(caption), flush=True)


def _print_partial(partial: v1.Transcript) -> None:
    sys.stdout.write(f"\r\033[K\033[2m… {partial.text.strip()[-100:]}\033[0m")
    sys.stdout.flush()


def _print_result(output: str, session_id: str, watch: SessionWatch) -> None:
    if output == "json":
        print(render.document(session_id, watch.language, watch.ordered()))
    elif output == "srt":
        print(render.srt(watch.ordered()), end="")
