# Everyday tasks; each is a thin call of uv.

# Transcribe and translate a LibriVox recording on the embedded broker.
demo file="tests/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav":
    uv run livetranslate transcribe {{file}} --translate pt

# Lint, types and tests: what CI runs.
check: lint types test

lint:
    uv run ruff check .
    uv run ruff format --check .

types:
    uv run mypy contracts/src streams/src services/*/src src

test *args:
    uv run pytest {{args}}

# e.g. `just bench tests/data/librivox/*.wav --curve --long-minutes 30 --json out.json`
# Streaming transcription figures through the pipeline (src/livetranslate/cli/bench.py).
bench *args="tests/data/librivox/*.wav --json .livetranslate/bench.json":
    uv run livetranslate bench {{args}}

# Everything up: broker, stages and the page on http://127.0.0.1:8000/.
up:
    uv run livetranslate up

# Re-export the contracts' JSON Schemas after a compatible change.
schemas:
    uv run livetranslate schemas
