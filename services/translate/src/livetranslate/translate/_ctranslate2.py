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
``CTranslate2Model.target_prefix`` carries per pair (``("por_Latn",)`` for NLLB),
or which ``family`` derives from the pair. One folder may serve many pairs (an
NLLB model, say); it is loaded once and shared by them.

Context: OPUS-MT, NLLB and M2M100 are sentence-level models, but their training
lines often hold two or three sentences, so they read an earlier sentence well
when it comes first in the source. The earlier source sentence(s) are put
before the text, and the translation already published for them is forced as
the start of the output (CTranslate2's ``target_prefix``, after the language
token of a multilingual model); the model continues from there and the forced
part is cut off again. The output therefore agrees with what viewers already
read. ``CTranslate2Model.context`` turns this off for a model that does worse
with it, and ``CTranslate2Options.max_context_chars`` bounds the extra input.
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
from pydantic import BaseModel, ConfigDict, Field

from livetranslate.translate._families import Family, language_token
from livetranslate.translate._pairs import (
    LanguagePair,
    format_pairs,
    normalize_pair,
    served_pair,
)
from livetranslate.translate.context import Context, ContextPair, contexts_for
from livetranslate.translate.errors import ModelFolderError, TranslationFailed
from livetranslate.translate.sentences import joiner, split_texts, translate_in_pieces

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

    max_context_chars: int = Field(default=300, ge=0)
    """Characters of earlier source text put before a sentence, newest first;
    context costs decoding time, and 0 turns it off for every model."""


class CTranslate2Model(BaseModel):
    """One model folder and the tokens that frame its inputs and outputs."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    folder: Path
    """The converted model; the module docstring shows the files it must hold."""

    family: Family = "marian"
    """"nllb" or "m2m100" derive the language tokens below from the pair when
    they are not given; "marian" (OPUS-MT) models need none."""

    source_prefix: tuple[str, ...] = ()
    """Tokens before each source sentence: ("eng_Latn",) for NLLB, ("__en__",) for
    M2M100, none for OPUS-MT."""

    target_prefix: tuple[str, ...] = ()
    """Tokens the output starts with, which pick the output language of a
    multilingual model: ("por_Latn",) for NLLB, ("__pt__",) for M2M100."""

    append_source_eos: bool = True
    """Add the end-of-sentence token after the source, as Marian, NLLB and M2M100
    were trained, unless config.json says the model adds it itself."""

    context: bool = True
    """Give the model the session's earlier sentences (see the module docstring)."""

    def framed_for(self, pair: LanguagePair) -> CTranslate2Model:
        """This model with the language tokens of ``pair`` filled in for its family."""
        if self.family == "marian" or (self.source_prefix and self.target_prefix):
            return self
        source, target = (language_token(self.family, language) for language in pair)

        return self.model_copy(
            update={
                "source_prefix": self.source_prefix or (source,),
                "target_prefix": self.target_prefix or (target,),
            }
        )


@dataclass(frozen=True, slots=True)
class _Tokenizers:
    source: Path
    target: Path


class _Runtime:
    """One model folder in memory with its tokenizers; shared by the pairs it serves."""

    def __init__(self, folder: Path, options: CTranslate2Options) -> None:
        tokenizers = _tokenizers(folder)
        self.translator = ctranslate2.Translator(
            str(folder),
            device=options.device,
            compute_type=options.compute_type,
            inter_threads=options.inter_threads,
            intra_threads=options.intra_threads,
        )
        self.source = sentencepiece.SentencePieceProcessor(model_file=str(tokenizers.source))
        self.target = sentencepiece.SentencePieceProcessor(model_file=str(tokenizers.target))
        self.config = _config(folder)


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One piece ready for the model: its source tokens and its forced output start."""

    source: list[str]
    target_prefix: list[str]
    own_length: int
    """Source tokens of the piece itself, without context: the output cap follows it."""


class _LoadedModel:
    """A loaded model and the framing of its sequences for one pair."""

    def __init__(self, runtime: _Runtime, model: CTranslate2Model, pair: LanguagePair) -> None:
        self.translator = runtime.translator
        self._runtime = runtime
        self._pair = pair
        self._prefix = list(model.source_prefix)
        self._suffix = _source_suffix(model, runtime.config)
        self._target_prefix = list(model.target_prefix)
        self.uses_context = model.context

    def encode(self, text: str, context: Context = ()) -> _Encoded:
        pieces: list[str] = self._runtime.source.encode(text, out_type=str)
        before: list[str] = []
        forced: list[str] = []
        if context:
            source, target = self._pair
            before = self._runtime.source.encode(_joined(context, "source", source), out_type=str)
            forced = self._runtime.target.encode(_joined(context, "target", target), out_type=str)

        return _Encoded(
            source=self._prefix + before + pieces + self._suffix,
            target_prefix=self._target_prefix + forced,
            own_length=len(self._prefix) + len(pieces) + len(self._suffix),
        )

    def decode(self, tokens: list[str], encoded: _Encoded) -> str:
        # CTranslate2 returns the target prefix as part of every hypothesis.
        return str(self._runtime.target.decode(tokens[len(encoded.target_prefix) :]))


class CTranslate2Engine:
    """Translates the pairs it has CTranslate2 model folders for.

    Folders are checked when the engine is built; a model is loaded on the first
    request for one of its pairs (or all at once by ``load``) and kept.
    """

    name = "ctranslate2"

    def __init__(
        self,
        models: Mapping[tuple[str, str], Path | str | CTranslate2Model],
        options: CTranslate2Options | None = None,
    ) -> None:
        self._models: dict[LanguagePair, CTranslate2Model] = {}
        for key, model in models.items():
            pair = normalize_pair(*key)
            self._models[pair] = _as_model(model).framed_for(pair)
        for pair, model in self._models.items():
            _check_folder(model.folder, pair)
        self._options = options or CTranslate2Options()
        self._runtimes: dict[Path, _Runtime] = {}
        self._loaded: dict[LanguagePair, _LoadedModel] = {}
        self._lock = threading.Lock()

    def pairs(self) -> frozenset[LanguagePair]:
        return frozenset(self._models)

    def folders(self) -> dict[LanguagePair, Path]:
        """The model folder of each pair, for people choosing or checking models."""
        return {pair: model.folder for pair, model in self._models.items()}

    def translate(
        self,
        texts: Sequence[str],
        source: str,
        target: str,
        *,
        contexts: Sequence[Context] = (),
    ) -> list[str]:
        pair = served_pair(self.name, self.pairs(), source, target)
        given = contexts_for(texts, contexts)
        splits = split_texts(texts, self._options.max_sentence_chars)
        # Only the first piece of a text follows its context; a later piece of a
        # long text goes without, so that all pieces can share one batch.
        piece_contexts = [
            self._trimmed(context) if index == 0 else ()
            for split, context in zip(splits, given, strict=True)
            for index, _ in enumerate(split.pieces)
        ]

        return translate_in_pieces(
            texts,
            self._options.max_sentence_chars,
            pair[1],
            lambda pieces: self._translate_pieces(pair, pieces, piece_contexts),
            splits,
        )

    def load(self) -> None:
        """Load every model now, so that a model that will not load stops start-up."""
        for pair in self._models:
            self._model(pair)

    def _trimmed(self, context: Context) -> Context:
        """The newest pairs of ``context`` whose sources fit ``max_context_chars``."""
        kept: list[ContextPair] = []
        budget = self._options.max_context_chars
        for pair in reversed(context):
            if not pair.source.strip() or not pair.target.strip():
                break
            budget -= len(pair.source) + 1
            if budget < 0:
                break
            kept.append(pair)

        return tuple(reversed(kept))

    def _translate_pieces(
        self, pair: LanguagePair, pieces: list[str], contexts: list[Context]
    ) -> list[str]:
        model = self._model(pair)
        encoded = [
            model.encode(piece, context if model.uses_context else ())
            for piece, context in zip(pieces, contexts, strict=True)
        ]
        # Batching sentences of similar length wastes less padding and lets the
        # length cap of each batch follow its own longest input.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].source))
        outputs = [""] * len(encoded)
        size = self._options.max_batch_size
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            texts = self._run(pair, model, [encoded[i] for i in batch])
            for i, text in zip(batch, texts, strict=True):
                outputs[i] = text

        return outputs

    def _run(self, pair: LanguagePair, model: _LoadedModel, batch: list[_Encoded]) -> list[str]:
        options = self._options
        longest = max(item.own_length for item in batch)
        cap = math.ceil(longest * options.max_length_ratio) + options.max_length_extra_tokens
        prefixes = [item.target_prefix for item in batch]
        try:
            results = model.translator.translate_batch(
                [item.source for item in batch],
                target_prefix=prefixes if any(prefixes) else None,
                beam_size=options.beam_size,
                max_decoding_length=cap + max(len(prefix) for prefix in prefixes),
            )
        except (RuntimeError, ValueError) as exc:
            raise TranslationFailed(
                f"ctranslate2 {format_pairs([pair])} failed on a batch of {len(batch)}: {exc}"
            ) from exc

        return [
            model.decode(result.hypotheses[0], item)
            for result, item in zip(results, batch, strict=True)
        ]

    def _model(self, pair: LanguagePair) -> _LoadedModel:
        with self._lock:
            if pair not in self._loaded:
                model = self._models[pair]
                self._loaded[pair] = _LoadedModel(self._runtime(model.folder, pair), model, pair)

            return self._loaded[pair]

    def _runtime(self, folder: Path, pair: LanguagePair) -> _Runtime:
        if folder not in self._runtimes:
            self._runtimes[folder] = self._load(folder, pair)

        return self._runtimes[folder]

    def _load(self, folder: Path, pair: LanguagePair) -> _Runtime:
        started = time.perf_counter()
        try:
            runtime = _Runtime(folder, self._options)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelFolderError(
                f"model folder {folder} for {format_pairs([pair])} did not load: {exc}"
            ) from exc
        _log.info(
            "loaded ctranslate2 model for %s from %s in %.2f s",
            format_pairs([pair]),
            folder,
            time.perf_counter() - started,
        )

        return runtime


def _joined(context: Context, side: Literal["source", "target"], language: str) -> str:
    return joiner(language).join(getattr(pair, side).strip() for pair in context)


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


def _source_suffix(model: CTranslate2Model, config: Mapping[str, Any]) -> list[str]:
    if not model.append_source_eos or config.get("add_source_eos", False):
        return []

    return [str(config.get("eos_token", "</s>"))]


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    return config
