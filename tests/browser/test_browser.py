"""The page in a real Chromium: a WAV file as the microphone, captions and a viewer.

The whole pipeline runs in this process on the test broker, the edge under
uvicorn on a free port, and Debian's Chromium (no browser download) plays a
LibriVox recording into ``getUserMedia``. Screenshots of both pages are kept
under ``artifacts/browser/``.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from librivox import FOLDER, normalise, recordings
from playwright.async_api import Browser, Page, async_playwright

from livetranslate.cli.pipeline import stages
from livetranslate.cli.stages import PIPELINE
from livetranslate.edge import EdgeSettings, create_app, serving

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.model]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
RECORDING = FOLDER / "sense_and_sensibility_01_austen_64kb-0870.wav"
LEAD_SILENCE_S = 1.0
TAIL_SILENCE_S = 3.0
"""Chromium loops the file: the tail's silence is what ends each pass's utterance."""

EXPECTED_WORDS = ("john", "leisure", "consider", "power")
CAPTION_TIMEOUT_MS = 45_000


def padded_wav(source: Path, target: Path) -> Path:
    """``source`` with silence before and after, as Chromium's fake microphone will play it."""
    with wave.open(str(source), "rb") as original:
        params = original.getparams()
        frames = original.readframes(original.getnframes())
    silence_frame = b"\x00" * params.sampwidth * params.nchannels
    lead = silence_frame * int(LEAD_SILENCE_S * params.framerate)
    tail = silence_frame * int(TAIL_SILENCE_S * params.framerate)
    with wave.open(str(target), "wb") as padded:
        padded.setparams(params)
        padded.writeframes(lead + frames + tail)
    return target


@pytest_asyncio.fixture
async def edge(nats_url: str) -> AsyncIterator[str]:
    """The pipeline and the edge; yields the edge's ``host:port`` once it is ready."""
    app = create_app(nats_url, settings=EdgeSettings(open_sessions="false"))
    async with stages(nats_url, PIPELINE), serving(app) as address:
        await _wait_until_ready(address)
        yield address


async def _wait_until_ready(address: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(200):
            if (await http.get(f"http://{address}/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"edge did not become ready on {address}")


@pytest.fixture
def microphone(tmp_path: Path) -> Path:
    """The recording Chromium plays as its microphone; skips the test without Chromium."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)")
    return padded_wav(RECORDING, tmp_path / "microphone.wav")


@pytest_asyncio.fixture
async def chromium(microphone: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def final_texts(page: Page) -> list[str]:
    return [text.strip() for text in await page.locator(".line .final").all_inner_texts()]


async def wait_for_expected_words(page: Page) -> None:
    """Until one final caption holds every expected word."""
    await page.wait_for_function(
        """(words) => [...document.querySelectorAll('.line .final')].some((el) => {
            const text = el.textContent.toLowerCase();
            return words.every((word) => text.includes(word));
        })""",
        arg=list(EXPECTED_WORDS),
        timeout=CAPTION_TIMEOUT_MS,
    )


async def wait_for_portuguese(page: Page) -> str:
    translation = page.locator('.translations li[lang="pt"][data-kind="final"]').first
    await translation.wait_for(timeout=CAPTION_TIMEOUT_MS)
    text = await translation.text_content() or ""
    return text.strip().removeprefix("pt").strip()  # less the language tag


async def test_the_microphone_is_captioned_and_translated_for_host_and_viewer(
    chromium: Browser, edge: str
) -> None:
    # ``chromium`` comes first, so that a machine without it skips before loading models.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    host = await chromium.new_page()
    await host.goto(f"http://{edge}/")
    await host.get_by_label("Spoken language").select_option("en")
    await host.get_by_role("checkbox", name="Portuguese").check()
    await host.get_by_role("button", name="Start session and microphone").click()

    await wait_for_expected_words(host)
    portuguese = await wait_for_portuguese(host)
    view_url = await host.locator("#share-link").input_value()
    await host.screenshot(path=ARTIFACTS / "host.png", full_page=True)

    viewer = await chromium.new_page()
    await viewer.goto(view_url)
    await wait_for_expected_words(viewer)
    await wait_for_portuguese(viewer)
    await viewer.screenshot(path=ARTIFACTS / "viewer.png", full_page=True)

    host_first, viewer_first = (await final_texts(host))[0], (await final_texts(viewer))[0]
    await host.get_by_role("button", name="Stop microphone").click()

    stranger = await chromium.new_page()
    await stranger.goto(view_url.replace("#token=", "#token=x"))
    await stranger.locator('#state[data-state="refused"]').wait_for(timeout=10_000)
    refusal = await stranger.locator("#state").inner_text()

    reference = normalise(recordings()[RECORDING])
    assert set(normalise(host_first).split()) >= set(EXPECTED_WORDS)
    assert len(set(normalise(host_first).split()) & set(reference.split())) >= 10
    assert viewer_first == host_first
    assert len(portuguese.split()) >= 5
    assert await viewer.locator("#state").get_attribute("data-state") == "live"
    assert "token not valid" in refusal
    assert await final_texts(stranger) == []
