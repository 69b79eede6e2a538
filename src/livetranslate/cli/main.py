"""livetranslate: real-time transcription and translation on NATS JetStream.

Transcribe a file and print its captions (transcribe), start the whole
pipeline with an embedded broker and the page (up), run one stage against a
broker (run), publish a file as a live session (publish), apply the
topology (streams apply), list the translation pairs on offer (models),
measure latency, accuracy and CPU (bench), write the contracts' JSON
Schemas (schemas).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from livetranslate.cli.stages import StageName

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
streams_app = typer.Typer(no_args_is_help=True, help="JetStream topology.")
app.add_typer(streams_app, name="streams")

NatsOption = Annotated[
    str | None,
    typer.Option(
        "--nats", envvar="LIVETRANSLATE_NATS_URL", help="Broker URL; unset embeds a broker."
    ),
]
BrokerOption = Annotated[
    str,
    typer.Option(
        "--nats", envvar="LIVETRANSLATE_NATS_URL", help="Broker URL of the running pipeline."
    ),
]
TranslateOption = Annotated[
    list[str] | None,
    typer.Option("--translate", "-t", help="Target language; repeat for several."),
]
LanguageOption = Annotated[
    str | None, typer.Option("--language", "-l", help="Spoken language; unset detects it.")
]
GlossaryOption = Annotated[
    Path | None,
    typer.Option(help='JSON file of required translations: {"pt": {"pipeline": "pipeline"}}.'),
]


DEFAULT_URL = "nats://127.0.0.1:4222"
"""Where ``up`` puts its embedded broker."""


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    srt = "srt"


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command()
def up(
    nats: NatsOption = None,
    data_dir: Annotated[
        Path, typer.Option(help="Embedded broker's store: sessions stay replayable here.")
    ] = Path(".livetranslate/nats"),
    host: Annotated[str, typer.Option(help="Address the edge listens on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the edge's page and WebSocket.")
    ] = 8000,
    broker_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the embedded broker (127.0.0.1 only).")
    ] = 4222,
) -> None:
    """Run the broker (unless --nats), every stage and the edge, until Ctrl-C."""
    from livetranslate.cli import commands

    _setup_logging()
    _run(lambda stop: commands.up(nats, data_dir, host, port, broker_port, stop))


@app.command()
def run(
    stage: Annotated[
        str, typer.Argument(help="vad, transcribe, translate, diarize, analytics or edge.")
    ],
    nats: BrokerOption = DEFAULT_URL,
    host: Annotated[str, typer.Option(help="Edge only: listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Edge only: port.")] = 8000,
) -> None:
    """Run one stage against a broker, until Ctrl-C."""
    from livetranslate.cli import commands

    _setup_logging()
    url = nats
    if stage == "edge":
        _run(lambda stop: commands.run_edge(url, host, port, stop))
        return
    try:
        name = StageName(stage)
    except ValueError:
        raise fail(
            f"unknown stage {stage!r}; choose from "
            + ", ".join([*(known.value for known in StageName), "edge"])
        ) from None
    _run(lambda stop: commands.run_stages(url, [name], stop))


@streams_app.command("apply")
def streams_apply(nats: BrokerOption = DEFAULT_URL) -> None:
    """Create or update the streams, consumers and session bucket on a broker."""
    from livetranslate.cli.pipeline import apply_to

    try:
        lines = asyncio.run(apply_to(nats))
    except ConnectionError as exc:
        raise fail(str(exc)) from None
    for line in lines:
        typer.echo(line)


@app.command()
def publish(
    file: Annotated[Path, typer.Argument(help="Audio file: wav, flac, mp3, ogg, webm, mp4…")],
    session: Annotated[str, typer.Option(help="Session id: letters, digits, '_' or '-'.")],
    nats: BrokerOption = DEFAULT_URL,
    fast: Annotated[bool, typer.Option(help="As fast as the broker takes it.")] = False,
    translate: TranslateOption = None,
    language: LanguageOption = None,
    chunk_ms: Annotated[int, typer.Option(min=20, max=100, help="Chunk length in ms.")] = 100,
    glossary: GlossaryOption = None,
) -> None:
    """Publish a file to audio.ingest.<session> as a live source would."""
    from livetranslate.cli import commands

    _setup_logging("WARNING")
    request = commands.SessionRequest(session, tuple(translate or ()), language, chunk_ms, glossary)
    url = nats
    _run(lambda _: commands.publish(file, url, request, realtime=not fast), drains=False)


@app.command()
def transcribe(
    file: Annotated[Path, typer.Argument(help="Audio file: wav, flac, mp3, ogg, webm, mp4…")],
    translate: TranslateOption = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    nats: NatsOption = None,
    realtime: Annotated[bool, typer.Option(help="Publish at real-time pace.")] = False,
    language: LanguageOption = None,
    session: Annotated[str | None, typer.Option(help="Session id; default random.")] = None,
    glossary: GlossaryOption = None,
) -> None:
    """Transcribe (and translate) a file through the pipeline and print its captions."""
    from livetranslate.cli import commands

    _setup_logging("WARNING")
    session_id = session or f"file-{uuid.uuid4().hex[:12]}"
    request = commands.SessionRequest(session_id, tuple(translate or ()), language, 100, glossary)
    _run(
        lambda _: commands.transcribe(file, nats, request, output.value, realtime=realtime),
        drains=False,
    )


@app.command()
def models() -> None:
    """List the language pairs the configured translation engines serve."""
    from livetranslate.cli.models import pair_lines
    from livetranslate.streams.settings import load
    from livetranslate.translate.errors import ModelFolderError
    from livetranslate.translate.stage import TranslateSettings

    try:
        lines = pair_lines(load(TranslateSettings))
    except ModelFolderError as exc:
        raise fail(str(exc)) from None
    for line in lines:
        typer.echo(line)


def _session_counts(text: str) -> tuple[int, ...]:
    """``--sessions``: one count or a comma-separated list, each from 1 to the most."""
    from livetranslate.cli import bench as benchmark

    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1 or max(counts) > benchmark.MAX_SESSIONS:
        raise fail(
            f"--sessions {text!r}: expected counts from 1 to {benchmark.MAX_SESSIONS}, "
            "such as 4 or 1,2,4,8"
        )
    return counts


@app.command()
def bench(
    files: Annotated[list[Path], typer.Argument(help="Recordings; references beside them.")],
    sessions: Annotated[
        str, typer.Option(help="Simultaneous sessions, or a list (1,2,4,8) for a curve.")
    ] = "1",
    curve: Annotated[bool, typer.Option(help="Same as --sessions 1,2,4,8.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    long_minutes: Annotated[
        float | None, typer.Option(help="Also one session this long (files repeated).")
    ] = None,
    pause_s: Annotated[float, typer.Option(help="Silence between two files.")] = 2.0,
    model: Annotated[str | None, typer.Option(help="Model; unset: the stage's.")] = None,
    language: LanguageOption = None,
    translation: Annotated[
        bool, typer.Option(help="Also translation latency and sentences/s (1 and 8 sessions).")
    ] = False,
    speakers: Annotated[
        Path | None,
        typer.Option(help="Also speaker labels on this recording (DER with an .rttm beside it)."),
    ] = None,
) -> None:
    """Measure streaming transcription through the pipeline against faster-whisper offline."""
    import json

    from livetranslate.cli import bench as benchmark

    _setup_logging("WARNING")
    try:
        options = benchmark.BenchOptions(
            files=tuple(files),
            sessions=(1, 2, 4, 8) if curve else _session_counts(sessions),
            long_minutes=long_minutes,
            pause_s=pause_s,
            model=model,
            language=language,
        )
    except ValueError as exc:
        raise fail(f"invalid benchmark options: {exc}") from None
    report: dict[str, object] = {}
    _run(lambda _: benchmark.run(options, report), drains=False)
    if translation:
        report["translation"] = _measured(_translation_figures)
    if speakers is not None:
        report["speakers"] = _measured(lambda: _speaker_figures(speakers))
    benchmark.print_report(report)
    for part in ("translation", "speakers"):
        if part in report:
            typer.echo(f"{part}: {json.dumps(report[part], indent=2)}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")


def _measured(measure: Callable[[], Awaitable[dict[str, object]]]) -> dict[str, object]:
    figures: dict[str, object] = {}

    async def into(_: asyncio.Event) -> None:
        figures.update(await measure())

    _run(into)
    return figures


async def _translation_figures() -> dict[str, object]:
    from livetranslate.cli.translation_bench import measure_translation

    return dict(await measure_translation())


async def _speaker_figures(recording: Path) -> dict[str, object]:
    from livetranslate.cli.speaker_bench import measure_speakers

    return dict(await measure_speakers(recording))


@app.command()
def schemas(
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("contracts/schemas"),
) -> None:
    """Export the JSON Schema of every contract."""
    from livetranslate.contracts.schema import export

    for path in export(out):
        typer.echo(path)


def _setup_logging(floor: str | None = None) -> None:
    from livetranslate.streams.logs import configure
    from livetranslate.streams.settings import BrokerSettings, load

    settings = load(BrokerSettings)
    configure(floor or settings.log_level, settings.log_format)


INTERRUPTED = 130
"""Exit status after Ctrl-C, as shells report it."""


def _run(main: Callable[[asyncio.Event], Awaitable[None]], *, drains: bool = True) -> None:
    """Run a command until it ends, or until Ctrl-C / SIGTERM.

    A command that ``drains`` watches its stop event: the first signal sets
    it, so servers drain and every ``finally`` runs, and a second signal
    cancels the command. Any other command is cancelled by the first.
    """
    interrupted = False

    async def guarded() -> None:
        nonlocal interrupted
        stop = asyncio.Event()
        task = asyncio.ensure_future(main(stop))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _on_signal, stop, task, drains)
        try:
            await task
        except asyncio.CancelledError:
            interrupted = True
        interrupted = interrupted or stop.is_set()

    try:
        asyncio.run(guarded())
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    if interrupted:
        raise typer.Exit(INTERRUPTED)


def _on_signal(stop: asyncio.Event, task: asyncio.Future[None], drains: bool) -> None:
    if stop.is_set() or not drains:
        task.cancel()
    stop.set()


def _user_errors() -> tuple[type[Exception], ...]:
    from livetranslate.cli.commands import GlossaryFileError
    from livetranslate.contracts.subjects import InvalidSubjectError
    from livetranslate.edge.server import EdgeStartError
    from livetranslate.ingest.decode import AudioDecodeError
    from livetranslate.streams.server import PortInUseError
    from livetranslate.transcribe.engine import ModelUnavailableError
    from livetranslate.translate.errors import (
        ModelFolderError,
        UnsupportedLanguageError,
        UnsupportedPairError,
    )

    return (
        AudioDecodeError,
        InvalidSubjectError,
        UnsupportedLanguageError,
        UnsupportedPairError,
        ModelFolderError,
        GlossaryFileError,
        EdgeStartError,
        PortInUseError,
        ModelUnavailableError,
        ConnectionError,
        TimeoutError,
    )


if __name__ == "__main__":
    sys.exit(app())
