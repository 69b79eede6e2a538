"""Tests for :mod:`livetranslate.transcribe.engine`.

The ``model`` tests run the bundled Whisper tiny.en on the LibriVox recordings
in ``tests/data/librivox`` and on synthetic silence, noise and tones; one
recogniser is loaded per module.
"""

from __future__ import annotations

import re
import socket
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jiwer
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from livetranslate.transcribe import engine
from livetranslate.transcribe.engine import (
    ModelUnavailableError,
    Recognition,
    RecognitionJob,
    RecognizerOptions,
    WhisperRecognizer,
)

Audio = npt.NDArray[np.float32]

SAMPLE_RATE_HZ = 16_000
LIBRIVOX = Path(__file__).parents[3] / "tests" / "data" / "librivox"
DEBIAN_LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
MAX_WER = 0.15


def references() -> dict[Path, str]:
    """Each LibriVox recording with its reference words (the project's copy first)."""
    if (LIBRIVOX / "transcription.txt").is_file():
        lines = (LIBRIVOX / "transcription.txt").read_text().splitlines()
        return {
            LIBRIVOX / f"{stem}.wav": text
            for stem, _, text in (line.partition("\t") for line in lines)
        }
    pairs = re.findall(r"<s> (.*) </s> \((.*)\)", (DEBIAN_LIBRIVOX / "transcription").read_text())
    return {DEBIAN_LIBRIVOX / f"{stem}.wav": text for text, stem in pairs}


def read_wav(path: Path) -> Audio:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == SAMPLE_RATE_HZ
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)

    return pcm.astype(np.float32) / 32768.0


def words_only(text: str) -> str:
    """Lower case without punctuation; hyphens split words, as the references do."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def word_error_rate(recognizer: WhisperRecognizer) -> float:
    pairs = references()
    hypotheses = [recognizer.recognize(read_wav(path), language="en").text for path in pairs]

    return float(
        jiwer.wer([words_only(r) for r in pairs.values()], [words_only(h) for h in hypotheses])
    )


def white_noise(rms: float, seconds: float = 5.0) -> Audio:
    rng = np.random.default_rng(11)
    return (rng.standard_normal(round(seconds * SAMPLE_RATE_HZ)) * rms).astype(np.float32)


def tone(hz: float, amplitude: float = 0.1, seconds: float = 5.0) -> Audio:
    time_s = np.arange(round(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (amplitude * np.sin(2 * np.pi * hz * time_s)).astype(np.float32)


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    return WhisperRecognizer(RecognizerOptions(max_jobs=3))


@pytest.fixture(scope="module")
def full_window_recognizer() -> WhisperRecognizer:
    return WhisperRecognizer(RecognizerOptions(short_window=False))


@pytest.mark.model
def test_librivox_word_error_rate_is_low_with_default_options(
    recognizer: WhisperRecognizer,
) -> None:
    assert word_error_rate(recognizer) <= MAX_WER


@pytest.mark.model
def test_librivox_word_error_rate_is_low_with_the_full_window(
    full_window_recognizer: WhisperRecognizer,
) -> None:
    assert word_error_rate(full_window_recognizer) <= MAX_WER


@pytest.mark.model
def test_words_are_timed_within_the_audio_and_in_order(recognizer: WhisperRecognizer) -> None:
    path = next(iter(references()))
    audio = read_wav(path)

    recognition = recognizer.recognize(audio, language="en")

    assert recognition.words
    starts = [word.start_s for word in recognition.words]
    assert starts == sorted(starts)
    for word in recognition.words:
        assert 0.0 <= word.start_s <= word.end_s <= len(audio) / SAMPLE_RATE_HZ
        assert 0.0 <= word.probability <= 1.0
        assert word.text and word.text == word.text.strip()
    assert recognition.language == "en"
    assert recognition.dropped is None
    assert recognition.processing_s > 0.0


@pytest.mark.model
def test_without_word_timestamps_only_text_comes_back(recognizer: WhisperRecognizer) -> None:
    audio = read_wav(next(iter(references())))

    recognition = recognizer.recognize(audio, language="en", word_timestamps=False)

    assert recognition.words == ()
    assert "dashwood" in recognition.text.lower()


@pytest.mark.model
def test_a_prompt_of_any_length_is_accepted(recognizer: WhisperRecognizer) -> None:
    audio = read_wav(next(iter(references())))

    for prompt in ("Mr. John Dashwood.", "A long meeting about nothing much. " * 200):
        recognition = recognizer.recognize(audio, language="en", prompt=prompt)

        assert "dashwood" in recognition.text.lower()


@pytest.mark.model
def test_digital_silence_is_dropped_as_silence(recognizer: WhisperRecognizer) -> None:
    before = recognizer.drops["silence"]

    recognition = recognizer.recognize(np.zeros(10 * SAMPLE_RATE_HZ, np.float32), language="en")

    assert (recognition.text, recognition.words, recognition.dropped) == ("", (), "silence")
    assert recognizer.drops["silence"] == before + 1


@pytest.mark.model
@pytest.mark.parametrize("rms", [0.003, 0.03, 0.1])
def test_white_noise_gives_no_words(recognizer: WhisperRecognizer, rms: float) -> None:
    recognition = recognizer.recognize(white_noise(rms), language="en")

    assert_nothing_heard(recognition)


@pytest.mark.model
def test_a_440_hz_tone_gives_no_words(recognizer: WhisperRecognizer) -> None:
    assert_nothing_heard(recognizer.recognize(tone(440.0), language="en"))


@pytest.mark.model
def test_noise_gives_no_words_with_the_full_window(
    full_window_recognizer: WhisperRecognizer,
) -> None:
    for audio in (white_noise(0.003), white_noise(0.1), tone(440.0)):
        assert_nothing_heard(full_window_recognizer.recognize(audio, language="en"))


def assert_nothing_heard(recognition: Recognition) -> None:
    assert recognition.text == ""
    assert recognition.words == ()
    assert recognition.dropped is not None


@pytest.mark.model
@pytest.mark.parametrize("rms", [0.003, 0.03, 0.1])
def test_a_draft_of_noise_gives_no_words_without_a_second_decode(
    recognizer: WhisperRecognizer, rms: float
) -> None:
    retries = recognizer.full_window_retries

    recognition = recognizer.recognize(
        white_noise(rms), language="en", word_timestamps=False, draft=True
    )

    assert_nothing_heard(recognition)
    assert recognizer.full_window_retries == retries


@pytest.mark.model
def test_an_english_only_model_detects_english(recognizer: WhisperRecognizer) -> None:
    assert recognizer.detect_language(read_wav(next(iter(references())))) == ("en", 1.0)


@pytest.mark.model
def test_the_plain_offline_transcription_hears_the_recording(
    recognizer: WhisperRecognizer,
) -> None:
    path, reference = next(iter(references().items()))

    text = recognizer.transcribe_plain(read_wav(path), language="en")

    assert words_only(reference).split()[-4:] == words_only(text).split()[-4:]


@pytest.mark.model
def test_calls_from_two_threads_agree_with_calls_from_one(
    recognizer: WhisperRecognizer,
) -> None:
    clips = [read_wav(path) for path in list(references())[:4]]
    alone = [recognizer.recognize(clip, language="en").text for clip in clips]

    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(
            pool.map(lambda clip: recognizer.recognize(clip, language="en").text, clips)
        )

    assert together == alone


def amiable_as_the_vad_cut_it() -> Audio:
    """The LibriVox "amiable himself" sentence as the VAD stage once cut it.

    124 ms of digital silence before it and its last 70 ms cut off: from this,
    a greedy short-window decode wrote "made am you, himself?".
    """
    path = next(p for p in references() if p.stem.endswith("0930"))
    speech = read_wav(path)[:51_520]

    return np.concatenate([np.zeros(1_984, np.float32), speech])


@pytest.mark.model
def test_a_final_with_an_unsure_word_is_decoded_again_with_a_wider_beam() -> None:
    greedy = WhisperRecognizer(RecognizerOptions(second_opinion_beam_size=1))
    second = WhisperRecognizer()
    audio = amiable_as_the_vad_cut_it()

    alone = greedy.recognize(audio, language="en")
    checked = second.recognize(audio, language="en")

    assert "amiable" not in words_only(alone.text)
    assert (greedy.second_opinions, second.second_opinions) == (0, 1)
    assert words_only(checked.text).endswith("made amiable himself")


@pytest.mark.model
def test_a_sure_final_and_a_draft_get_no_second_opinion(recognizer: WhisperRecognizer) -> None:
    path = next(p for p in references() if p.stem.endswith("0920"))
    before = recognizer.second_opinions

    recognizer.recognize(read_wav(path), language="en")
    recognizer.recognize(amiable_as_the_vad_cut_it(), language="en", draft=True)

    assert recognizer.second_opinions == before


@pytest.mark.model
def test_utterances_recognised_together_read_as_they_do_alone(
    recognizer: WhisperRecognizer,
) -> None:
    paths = list(references())
    clips = [read_wav(paths[0]), read_wav(paths[0]).copy(), read_wav(paths[1])]
    alone = [recognizer.recognize(clip, language="en") for clip in clips]
    before = recognizer.batched_encodes

    together = recognizer.recognize_many([RecognitionJob(clip, "en") for clip in clips])

    # The two copies have windows of one size: batched, they read exactly as alone.
    assert recognizer.batched_encodes == before + 1
    assert [r.text for r in together[:2] if isinstance(r, Recognition)] == [
        alone[0].text,
        alone[1].text,
    ]
    third = together[2]
    assert isinstance(third, Recognition) and third.text == alone[2].text
    assert recognizer.batch_waits_expired == 0


@pytest.mark.model
def test_a_failing_or_silent_job_neither_holds_up_nor_spoils_its_batch(
    recognizer: WhisperRecognizer,
) -> None:
    clip = read_wav(next(iter(references())))
    jobs = [
        RecognitionJob(np.zeros(16_000, np.int16), "en"),
        RecognitionJob(np.zeros(32_000, np.float32), "en"),
        RecognitionJob(clip, "en"),
    ]

    refused, silent, heard = recognizer.recognize_many(jobs)

    assert isinstance(refused, ValueError)
    assert isinstance(silent, Recognition) and silent.dropped == "silence"
    assert isinstance(heard, Recognition)
    assert heard.text == recognizer.recognize(clip, language="en").text
    assert recognizer.batch_waits_expired == 0


@pytest.mark.model
def test_audio_that_is_not_mono_float32_is_refused(recognizer: WhisperRecognizer) -> None:
    with pytest.raises(ValueError, match="expected mono float32"):
        recognizer.recognize(np.zeros(16_000, np.int16), language="en")
    with pytest.raises(ValueError, match="expected mono float32"):
        recognizer.recognize(np.zeros((2, 16_000), np.float32), language="en")


def fake_segment(
    text: str,
    *,
    seek: int = 0,
    start_s: float = 0.0,
    end_s: float = 2.0,
    no_speech_prob: float = 0.05,
    avg_logprob: float = -0.3,
    compression_ratio: float = 1.2,
    word_probability: float = 0.9,
) -> SimpleNamespace:
    """A stand-in for faster-whisper's Segment, its words spread over its time."""
    texts = [f" {word}" for word in text.split()]
    step_s = (end_s - start_s) / max(len(texts), 1)
    words = [
        SimpleNamespace(
            word=word,
            start=start_s + i * step_s,
            end=start_s + (i + 1) * step_s,
            probability=word_probability,
        )
        for i, word in enumerate(texts)
    ]
    return SimpleNamespace(
        text=" " + text,
        seek=seek,
        start=start_s,
        end=end_s,
        tokens=[0] * (len(texts) + 2),
        no_speech_prob=no_speech_prob,
        avg_logprob=avg_logprob,
        compression_ratio=compression_ratio,
        words=words,
    )


def decoded(*segments: SimpleNamespace, passes: int = 1) -> engine._Decoded:
    return engine._Decoded(
        segments=segments,
        language="en",
        language_probability=1.0,
        window_frames=400,
        encoder_passes=passes,
        max_new_tokens=50,
    )


REQUEST = engine._Request(language="en", prompt=None, word_timestamps=True, duration_s=3.0)
OPTIONS = RecognizerOptions()


def screen(*segments: SimpleNamespace) -> Recognition:
    return engine._screen(decoded(*segments), REQUEST, OPTIONS)


def test_a_window_the_model_calls_silent_and_unsure_is_dropped_as_no_speech() -> None:
    recognition = screen(fake_segment("thank you", no_speech_prob=0.9, avg_logprob=-1.2))

    assert (recognition.text, recognition.dropped) == ("", "no_speech")


def test_a_window_called_silent_but_decoded_confidently_is_kept() -> None:
    recognition = screen(fake_segment("thank you", no_speech_prob=0.9, avg_logprob=-0.4))

    assert recognition.text == "thank you"


def test_a_repetitive_window_is_dropped_as_repetition() -> None:
    recognition = screen(fake_segment("beep " * 12, compression_ratio=4.3))

    assert recognition.dropped == "repetition"


def test_a_very_unsure_window_is_dropped_as_low_confidence() -> None:
    assert screen(fake_segment("it's a great place", avg_logprob=-1.8)).dropped == (
        "low_confidence"
    )


def test_improbable_words_are_dropped_as_low_confidence() -> None:
    recognition = screen(fake_segment("I'm going to go ahead", word_probability=0.1))

    assert (recognition.text, recognition.dropped) == ("", "low_confidence")


def test_a_bad_window_is_cut_and_the_good_one_kept() -> None:
    recognition = screen(
        fake_segment("he was not an ill disposed young man"),
        fake_segment("thank you", start_s=2.0, end_s=3.0, no_speech_prob=0.9, avg_logprob=-1.3),
    )

    assert recognition.text == "he was not an ill disposed young man"
    assert (recognition.dropped, recognition.cuts) == (None, ("no_speech",))


def test_a_loop_is_cut_to_one_copy_and_noted() -> None:
    recognition = screen(fake_segment("so I said go on go on go on go on"))

    assert recognition.text == "so I said go on"
    assert [word.text for word in recognition.words] == ["so", "I", "said", "go", "on"]
    assert recognition.cuts == ("repetition",)


def test_a_window_holding_only_a_full_stop_is_no_speech_without_a_cut() -> None:
    recognition = screen(fake_segment("."))

    assert (recognition.text, recognition.dropped, recognition.cuts) == ("", "no_speech", ())


def doubt(*segments: SimpleNamespace, passes: int = 1, text: str = "x") -> str | None:
    recognition = Recognition(text=text)
    window = decoded(*segments, passes=passes)

    return engine._short_window_doubt(window, recognition, REQUEST, OPTIONS)


def test_a_clean_short_window_decode_is_trusted() -> None:
    assert doubt(fake_segment("he might even have been made amiable himself")) is None


SENTENCE_RUN_ON = "he might even have been made amiable himself he might even have"
CLOSED_EARLY = fake_segment("it was late", end_s=2.8)


@pytest.mark.parametrize(
    ("segments", "passes", "expected"),
    [
        ([fake_segment("thank you thank you")], 1, "doubled ending"),
        ([fake_segment(SENTENCE_RUN_ON)], 1, "repeated run"),
        ([fake_segment("yes yes yes yes")], 1, "loop"),
        ([fake_segment("it was late", start_s=2.0, end_s=5.0)], 1, "word after the end"),
        ([CLOSED_EARLY, fake_segment("and", seek=280)], 2, "unclosed window"),
        ([fake_segment("it was late", end_s=1.5)], 2, "unclosed window"),
    ],
)
def test_signs_of_a_runaway_short_window_decode_are_doubted(
    segments: list[SimpleNamespace], passes: int, expected: str
) -> None:
    assert doubt(*segments, passes=passes) == expected


def test_a_second_window_over_the_padded_tail_with_no_words_is_trusted() -> None:
    segments = (fake_segment("it was late", end_s=2.7), fake_segment(".", seek=270))

    assert doubt(*segments, passes=2) is None


def test_a_short_window_that_kept_nothing_is_doubted() -> None:
    assert doubt(fake_segment("yes"), text="") == "nothing kept"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Make every outgoing connection fail, and record the attempts."""
    attempts: list[Any] = []

    def refuse(_socket: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts


def test_a_model_name_not_on_disk_fails_clearly_without_the_network(
    no_network: list[Any], tmp_path: Path
) -> None:
    options = RecognizerOptions(model="tiny", model_cache_dir=tmp_path)

    with pytest.raises(ModelUnavailableError, match=r"model='tiny'.*never downloaded"):
        WhisperRecognizer(options)
    assert no_network == []


def test_a_folder_that_does_not_exist_fails_clearly(no_network: list[Any]) -> None:
    with pytest.raises(ModelUnavailableError, match="model='/nonexistent/whisper'"):
        WhisperRecognizer(RecognizerOptions(model="/nonexistent/whisper"))
    assert no_network == []


def test_a_folder_without_model_files_fails_naming_them(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")

    with pytest.raises(ModelUnavailableError, match=r"lacks tokenizer\.json"):
        WhisperRecognizer(RecognizerOptions(model=str(tmp_path)))


def test_options_refuse_unknown_devices_and_fields() -> None:
    with pytest.raises(ValidationError, match="device"):
        RecognizerOptions(device="tpu")
    with pytest.raises(ValidationError, match="beam"):
        RecognizerOptions(beams=5)  # type: ignore[call-arg]


def test_options_are_frozen() -> None:
    options = RecognizerOptions()

    with pytest.raises(ValidationError):
        options.beam_size = 5  # type: ignore[misc]
