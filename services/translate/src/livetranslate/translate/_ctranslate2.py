"""Any pair for which a converted CTranslate2 model is on disk (OPUS-MT, NLLB, M2M100).

A model folder holds what ``ct2-transformers-converter --copy_files`` or
``ct2-opus-mt-converter`` writes, plus the SentencePiece model(s)::

    model.bin                       the weights
    config.json                     eos token and source affixes (optional)
    shared_vocabulary.json          or source_vocabulary.* and target_vocabulary.*
                                    (.json or .txt)
    source.spm and target.spm       SentencePiece models of each side (OPUS-MT), or
    spm.model                       one shared SentencePiece model, also accepted
                                    as sentencepiece.bpe.model (NLLB, M2M100)

Multilingual models choose the output language by a target prefix token, which
``CTranslate2Model.target_prefix`` carries per pair (``("por_Latn",)`` for NLLB).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ctranslate2
import sentencepiece
from livetranslate.translate._pairs import (
    LanguagePair,
    format_pairs,
    normalize_pair,
    served_pair,
)
from livetranslate.translate.errors import ModelFolderError, TranslationFailed
from livetranslate.translate.sentences import translate_in_pieces
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CTranslate2Engine", "CTranslate2Model", "CTranslate2Options"]

_log = logging.getLogger(__name__)

_SHARED_SPM = ("spm.model", "sentencepiece.bpe.model")
_VOCABULARY_SUFFIXES = (".json", ".txt")


class CTranslate2Options(BaseModel):
    """How every model of a ``CTranslate2Engine`` is run."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    device: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where the models run; "cuda" needs a CUDA build of ctranslate2 and a GPU."""

    compute_type: str = "default"
    """Weight type at run time: "int8" is usually fastest on a CPU, at a small cost
    in quality; "default" keeps the type the model was saved in."""

    inter_threads: int = Field(default=1, ge=1)
    """Batches one model translates at once; raise it when several sessions
    share the engine and there are cores to spare."""

    intra_threads: int = Field(default=0, ge=0)
    """Threads used inside one batch; 0 lets CTranslate2 choose."""

    beam_size: int = Field(default=2, ge=1)
    """Hypotheses kept while decoding; 1 (greedy) is fastest, 4-5 reads best."""

    max_batch_size: int = Field(default=32, ge=1)
    """Sentences decoded together; larger batches pay off only on long backlogs."""

    max_length_ratio: float = Field(default=2.0, gt=0)
    """Output tokens allowed per input token (of the longest input in a batch),
    so that a model stuck repeating itself stops early."""

    max_length_extra_tokens: int = Field(default=10, ge=0)
    """Output tokens allowed on top of the ratio, for very short inputs."""

    max_sentence_chars: int = Field(default=400, ge=20)
    """Longer sentences are cut at a clause mark or space before translation."""


class CTranslate2Model(BaseModel):
    """One model folder and the tokens that frame its inputs and outputs."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    folder: Path
    """The converted model; the module docstring shows the files it must hold."""

    source_prefix: tuple[str, ...] = ()
    """Tokens before each source sentence: ("eng_Latn",) for NLLB, ("__en__",) for
    M2M100, none for OPUS-MT."""

    target_prefix: tuple[str, ...] = ()
    """Tokens the output starts with, which pick the output language of a
    multilingual model: ("por_Latn",) for NLLB, ("__pt__",) for M2M100."""

    append_source_eos: bool = True
    """Add the end-of-sentence token after the source, as Marian, NLLB and M2M100
    were trained, unless config.json says the model adds it itself."""


@dataclass(frozen=True, slots=True)
class _Tokenizers:
    source: Path
    target: Path


class _LoadedModel:
    """A model in memory with its tokenizers and the framing of its sequences."""

    def __init__(self, model: CTranslate2Model, options: CTranslate2Options) -> None:
        tokenizers = _tokenizers(model.folder)
        self.translator = ctranslate2.Translator(
            str(model.folder),
            device=options.device,
            compute_type=options.compute_type,
            inter_threads=options.inter_threads,
            intra_threads=options.intra_threads,
        )
        self._source = sentencepiece.SentencePieceProcessor(model_file=str(tokenizers.source))
        self._target = sentencepiece.SentencePieceProcessor(model_file=str(tokenizers.target))
        self._prefix = list(model.source_prefix)
        self._suffix = _source_suffix(model)
        self.target_prefix = list(model.target_prefix)

    def encode(self, text: str) -> list[str]:
        pieces: list[str] = self._source.encode(text, out_type=str)

        return self._prefix + pieces + self._suffix

    def decode(self, tokens: list[str]) -> str:
        # CTranslate2 returns the target prefix as part of every hypothesis.
        return str(self._target.decode(tokens[len(self.target_prefix) :]))


class CTranslate2Engine:
    """Translates the pairs it has CTranslate2 model folders for.

    Folders are checked when the engine is built; a model is loaded on the first
    request for its pair (or all at once by ``load``) and kept.
    """

    name = "ctranslate2"

    def __init__(
        self,
        models: Mapping[tuple[str, str], Path | str | CTranslate2Model],
        options: CTranslate2Options | None = None,
    ) -> None:
        self._models = {normalize_pair(*pair): _as_model(model) for pair, model in models.items()}
        for pair, model in self._models.items():
            _check_folder(model.folder, pair)
        self._options = options or CTranslate2Options()
        self._loaded: dict[LanguagePair, _LoadedModel] = {}
        self._lock = threading.Lock()

    def pairs(self) -> frozenset[LanguagePair]:
        return frozenset(self._models)

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        pair = served_pair(self.name, self.pairs(), source, target)

        return translate_in_pieces(
            texts,
            self._options.max_sentence_chars,
            pair[1],
            lambda pieces: self._translate_pieces(pair, pieces),
        )

    def load(self) -> None:
        """Load every model now, so that a model that will not load stops start-up."""
        for pair in self._models:
            self._model(pair)

    def _translate_pieces(self, pair: LanguagePair, pieces: list[str]) -> list[str]:
        model = self._model(pair)
        tokens = [model.encode(piece) for piece in pieces]
        # Batching sentences of similar length wastes less padding and lets the
        # length cap of each batch follow its own longest input.
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
        outputs = [""] * len(tokens)
        size = self._options.max_batch_size
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            texts = self._run(pair, model, [tokens[i] for i in batch])
            for i, text in zip(batch, texts, strict=True):
                outputs[i] = text

        return outputs

    def _run(self, pair: LanguagePair, model: _LoadedModel, batch: list[list[str]]) -> list[str]:
        options = self._options
        longest = max(len(tokens) for tokens in batch)
        cap = math.ceil(longest * options.max_length_ratio) + options.max_length_extra_tokens
        prefix = [model.target_prefix] * len(batch) if model.target_prefix else None
        try:
            results = model.translator.translate_batch(
                batch,
                target_prefix=prefix,
                beam_size=options.beam_size,
                max_decoding_length=cap + len(model.target_prefix),
            )
        except (RuntimeError, ValueError) as exc:
            raise TranslationFailed(
                f"ctranslate2 {format_pairs([pair])} failed on a batch of {len(batch)}: {exc}"
            ) from exc

        return [model.decode(result.hypotheses[0]) for result in results]

    def _model(self, pair: LanguagePair) -> _LoadedModel:
        with self._lock:
            if pair not in self._loaded:
                self._loaded[pair] = self._load(pair)

            return self._loaded[pair]

    def _load(self, pair: LanguagePair) -> _LoadedModel:
        model = self._models[pair]
        started = time.perf_counter()
        try:
            loaded = _LoadedModel(model, self._options)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelFolderError(
                f"model folder {model.folder} for {format_pairs([pair])} did not load: {exc}"
            ) from exc
        _log.info(
            "loaded ctranslate2 model for %s from %s in %.2f s",
            format_pairs([pair]),
            model.folder,
            time.perf_counter() - started,
        )

        return loaded


def _as_model(model: Path | str | CTranslate2Model) -> CTranslate2Model:
    if isinstance(model, CTranslate2Model):
        return model

    return CTranslate2Model(folder=Path(model))


def _check_folder(folder: Path, pair: LanguagePair) -> None:
    """``ModelFolderError`` naming the folder and the first file it lacks."""
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} for {format_pairs([pair])} is missing")
    missing = _missing_file(folder)
    if missing:
        raise ModelFolderError(f"model folder {folder} for {format_pairs([pair])} lacks {missing}")


def _missing_file(folder: Path) -> str | None:
    if not (folder / "model.bin").is_file():
        return "model.bin"
    if not _has_vocabulary(folder, "shared") and not (
        _has_vocabulary(folder, "source") and _has_vocabulary(folder, "target")
    ):
        return "shared_vocabulary.json (or source_ and target_vocabulary.json)"
    try:
        _tokenizers(folder)
    except FileNotFoundError as exc:
        return str(exc)

    return None


def _has_vocabulary(folder: Path, side: str) -> bool:
    return any((folder / f"{side}_vocabulary{s}").is_file() for s in _VOCABULARY_SUFFIXES)


def _tokenizers(folder: Path) -> _Tokenizers:
    """The SentencePiece files; ``FileNotFoundError`` names what is missing."""
    source, target = folder / "source.spm", folder / "target.spm"
    if source.is_file() and target.is_file():
        return _Tokenizers(source, target)
    for name in _SHARED_SPM:
        if (folder / name).is_file():
            return _Tokenizers(folder / name, folder / name)
    lacking = target.name if source.is_file() else source.name

    raise FileNotFoundError(f"{lacking} (or a shared {' or '.join(_SHARED_SPM)})")


def _source_suffix(model: CTranslate2Model) -> list[str]:
    config = _config(model.folder)
    if not model.append_source_eos or config.get("add_source_eos", False):
        return []

    return [str(config.get("eos_token", "</s>"))]


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    return config
