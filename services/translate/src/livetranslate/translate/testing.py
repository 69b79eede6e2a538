"""Tiny CTranslate2 translation models with random weights, for tests anywhere.

No real translation weights can be downloaded where the tests run, so these
models stand in: the folder layout, the SentencePiece tokenizers, model loading,
batching and decoding are all real; only the words that come out are nonsense.
The end-of-sentence token is made unreachable, so every output runs to the
decoding length cap and the cap can be observed. Building one takes tens of
milliseconds and a few dozen kilobytes.

This lives in the package rather than in ``tests/`` so that any service's tests
can import it: with ``--import-mode=importlib`` a helper beside the tests is not
importable, and the type checker does not see it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import sentencepiece
from ctranslate2.specs import common_spec, transformer_spec

__all__ = ["NLLB_LANGUAGES", "build_tiny_marian", "build_tiny_nllb", "tokenizer"]

NLLB_LANGUAGES: Final = ("eng_Latn", "por_Latn")
"""Language tokens of the tiny NLLB-style model, used as source and target prefixes."""

_WORDS: Final = (
    "the a cat dog sees runs house red blue big small river tree eats bread water "
    "we you they speak listen meeting today tomorrow o gato cão vê corre casa "
    "vermelha azul grande pequeno rio árvore come pão água nós vocês falam reunião hoje"
)
"""The corpus the tokenizers are trained on: words from both sides of en<->pt."""
_EMBEDDING_DIM: Final = 16
_FFN_DIM: Final = 32
_VOCAB_SIZE: Final = 100

_Weights = Callable[..., np.ndarray[Any, np.dtype[np.float32]]]
"""Random float32 weights of the shape given by the arguments."""


def build_tiny_marian(folder: Path, seed: int = 0, always_writes: str | None = None) -> Path:
    """An OPUS-MT-shaped model in ``folder``: post-norm, SiLU, source.spm + target.spm.

    ``always_writes`` adds a token to the vocabulary that the model then writes
    at every step. With a glossary placeholder such as ``"ZX0"`` it stands in
    for a trained model that copies the placeholder through, so that the
    placeholder's way through tokenizing, decoding and restoring can be tested.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    symbols = (always_writes,) if always_writes else ()
    vocab = _train_tokenizer(folder / "source", rng, symbols=symbols)
    spec = transformer_spec.TransformerSpec.from_config(
        num_layers=1, num_heads=2, pre_norm=False, activation=common_spec.Activation.SWISH
    )
    # Marian starts decoding from a zero vector rather than a token embedding.
    spec.decoder.start_from_zero_embedding = True
    spec.config.decoder_start_token = "</s>"
    _save(spec, vocab, rng, folder, favoured=always_writes)
    (folder / "source.model").rename(folder / "source.spm")
    (folder / "target.spm").write_bytes((folder / "source.spm").read_bytes())

    return folder


def build_tiny_nllb(folder: Path, seed: int = 0) -> Path:
    """An NLLB-shaped model in ``folder``: pre-norm, language tokens, one shared
    ``sentencepiece.bpe.model``. Sources start with ``eng_Latn``, outputs with
    ``por_Latn`` given as a target prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = _train_tokenizer(folder / "sentencepiece.bpe", rng, symbols=NLLB_LANGUAGES)
    spec = transformer_spec.TransformerSpec.from_config(num_layers=1, num_heads=2)
    spec.config.decoder_start_token = "</s>"
    _save(spec, vocab, rng, folder)

    return folder


def tokenizer(path: Path) -> Any:
    """A SentencePiece processor for one of the models' tokenizer files."""
    return sentencepiece.SentencePieceProcessor(model_file=str(path))


def _train_tokenizer(prefix: Path, rng: np.random.Generator, symbols: tuple[str, ...]) -> list[str]:
    """Train a SentencePiece model on generated sentences; its pieces, in id order."""
    words = _WORDS.split()
    sentences = [" ".join(rng.choice(words, size=rng.integers(3, 10))) for _ in range(80)]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        vocab_size=_VOCAB_SIZE,
        hard_vocab_limit=False,
        user_defined_symbols=list(symbols),
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    sp = tokenizer(prefix.parent / f"{prefix.name}.model")
    (prefix.parent / f"{prefix.name}.vocab").unlink()

    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _save(
    spec: transformer_spec.TransformerSpec,
    vocab: list[str],
    rng: np.random.Generator,
    folder: Path,
    favoured: str | None = None,
) -> None:
    _fill(spec, len(vocab), lambda *shape: (rng.standard_normal(shape) * 0.2).astype("f4"))
    # A very negative bias keeps </s> from ever being chosen: see the module docstring.
    spec.decoder.projection.bias[vocab.index("</s>")] = -1e4
    if favoured is not None:
        spec.decoder.projection.bias[vocab.index(favoured)] = 1e4
    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    spec.validate()
    spec.save(str(folder))


def _fill(spec: transformer_spec.TransformerSpec, vocab_size: int, weight: _Weights) -> None:
    """Set every variable of a one-input Transformer spec."""
    encoder, decoder = spec.encoder, spec.decoder
    encoder.embeddings[0].weight = weight(vocab_size, _EMBEDDING_DIM)
    decoder.embeddings.weight = weight(vocab_size, _EMBEDDING_DIM)
    _linear(decoder.projection, vocab_size, _EMBEDDING_DIM, weight)
    for layer in encoder.layer:
        _attention(layer.self_attention, weight, fused=3)
        _feed_forward(layer.ffn, weight)
    for layer in decoder.layer:
        _attention(layer.self_attention, weight, fused=3)
        _attention(layer.attention, weight, fused=1)
        _feed_forward(layer.ffn, weight)
    # Pre-norm stacks end with a layer norm; post-norm stacks have none.
    for stack in (encoder, decoder):
        if hasattr(stack, "layer_norm"):
            _norm(stack.layer_norm)


def _attention(spec: Any, weight: _Weights, fused: int) -> None:
    """Self-attention fuses Q, K and V in one matrix (``fused=3``); encoder-decoder
    attention has Q alone, then K and V fused, then the output projection."""
    dim = _EMBEDDING_DIM
    _norm(spec.layer_norm)
    shapes = [3 * dim, dim] if fused == 3 else [dim, 2 * dim, dim]
    for linear, rows in zip(spec.linear, shapes, strict=True):
        _linear(linear, rows, dim, weight)


def _feed_forward(spec: Any, weight: _Weights) -> None:
    _norm(spec.layer_norm)
    _linear(spec.linear_0, _FFN_DIM, _EMBEDDING_DIM, weight)
    _linear(spec.linear_1, _EMBEDDING_DIM, _FFN_DIM, weight)


def _linear(spec: Any, rows: int, columns: int, weight: _Weights) -> None:
    spec.weight = weight(rows, columns)
    spec.bias = weight(rows)


def _norm(spec: Any) -> None:
    spec.gamma = np.ones(_EMBEDDING_DIM, dtype=np.float32)
    spec.beta = np.zeros(_EMBEDDING_DIM, dtype=np.float32)
